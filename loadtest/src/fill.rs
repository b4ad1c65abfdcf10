//! `--fill-holds N` and `--fill-skus N`: what a big sale costs in memory and how fast the
//! server comes back from it. Spawns holdfast on a temp data dir, fills it (open holds of
//! 1 to 3 lines over 1,000 SKUs, 36-character idempotency keys, 10-character customer
//! ids, each hold on one of four channels; or a stock feed of N SKUs), then measures:
//! resident memory empty, at its peak during the fill (`VmHWM`, the kernel's own
//! high-water mark, so no sample can miss it) and settled after it; the snapshots written
//! and their size on disk; and the time from start to `/health/ready` after a `kill -9`
//! and after a SIGTERM, with the peak and settled memory of each restart. Numbers for
//! `docs/PERFORMANCE.md` come from here, never from a timed test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::process::Child;

use crate::lanes::Lanes;
use crate::spawn::{holdfast_bin, signal, start_holdfast};
use crate::Error;

/// SKUs the holds spread over.
const FILL_SKUS: u64 = 1_000;
/// The four channels; each hold is on one, named by the admin key.
const CHANNELS: [&str; 4] = ["web", "app", "marketplace", "store"];
const ADMIN_KEY: &str = "fill-admin-key";
/// Longest a restart may take before the run gives up on it.
const READY_WAIT_MAX: Duration = Duration::from_secs(300);

/// What to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    Holds(u64),
    Skus(u64),
}

pub struct FillArgs {
    pub fill: Fill,
    /// Requests in flight while filling holds.
    pub concurrency: usize,
    pub holdfast_bin: Option<PathBuf>,
    /// Extra server flags, after the ones the fill needs.
    pub server_args: Vec<String>,
    pub seed: u64,
    /// How long the server is left alone after the fill (and after each restart) before
    /// its memory is read, so the compactor's snapshot of the fill is part of it. At
    /// least 2 s: the server samples its gauges every second.
    pub settle: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Resident after start, before anything is filled.
    pub empty_mb: f64,
    /// The process's peak resident memory over the fill and the snapshots it caused.
    pub peak_fill_mb: f64,
    /// Resident once the fill is done and the compactor has settled.
    pub settled_mb: f64,
    /// (settled - empty) / items.
    pub bytes_per_item: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Restart {
    /// From starting the process to the first 200 from `/health/ready`.
    pub ready_s: f64,
    /// Peak resident memory of the restarted process up to ready.
    pub peak_mb: f64,
    /// Resident once ready and settled.
    pub settled_mb: f64,
    /// Open holds (or SKUs) the restarted server has: the fill's, if nothing was lost.
    pub items: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshots {
    /// Snapshots the server wrote during the fill and the settle time.
    pub written: u64,
    /// Their mean duration (the server's `holdfast_snapshot_duration_seconds`).
    pub mean_s: f64,
    pub snapshots_dir_mb: f64,
    pub journal_dir_mb: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FillReport {
    pub fill: Fill,
    /// Items the server took (holds placed, or feed lines applied).
    pub items: u64,
    pub fill_s: f64,
    pub items_per_s: f64,
    pub memory: Memory,
    pub snapshots: Snapshots,
    pub restart_after_kill9: Restart,
    pub restart_after_sigterm: Restart,
}

fn status_kb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mb(kb: Option<f64>) -> f64 {
    kb.map_or(0.0, |kb| kb / 1024.0)
}

fn dir_mb(path: &Path) -> f64 {
    fn walk(path: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => walk(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(path) as f64 / (1024.0 * 1024.0)
}

/// A series' value on a Prometheus text page.
fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

struct Server {
    child: Child,
    pid: u32,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(bin: &Path, data: &Path, args: &[String]) -> Result<(Self, f64), Error> {
        let started = Instant::now();
        let (child, port) = start_holdfast(bin, data, args).await?;
        let pid = child.id().ok_or("holdfast has no pid")?;
        let server = Self {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()?,
        };
        loop {
            let ready = server
                .http
                .get(format!("{}/health/ready", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if started.elapsed() > READY_WAIT_MAX {
                return Err("holdfast was not ready within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((server, started.elapsed().as_secs_f64()))
    }

    fn rss_mb(&self) -> f64 {
        mb(status_kb(self.pid, "VmRSS:"))
    }

    fn peak_mb(&self) -> f64 {
        mb(status_kb(self.pid, "VmHWM:"))
    }

    async fn metrics(&self) -> Result<String, Error> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?)
    }

    async fn feed(&self, body: String) -> Result<u64, Error> {
        let answer: serde_json::Value = self
            .http
            .post(format!("{}/v1/feeds/stock", self.base))
            .bearer_auth(ADMIN_KEY)
            .body(body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if answer["errors_total"].as_u64().unwrap_or(0) > 0 {
            return Err(format!("the feed had bad lines: {}", answer["errors"]).into());
        }
        Ok(answer["applied"].as_u64().unwrap_or(0))
    }

    async fn stop(mut self, how: &str) -> Result<(), Error> {
        signal(&self.child, how).await;
        tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .map_err(|_| "holdfast did not exit within 120 s")??;
        Ok(())
    }
}

fn sku(index: u64) -> String {
    format!("FILL-{index:05}")
}

/// A 36-character key in the UUID layout, as checkout systems send.
fn idempotency_key(rng: &mut impl Rng) -> String {
    let bits: u128 = rng.random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn hold_body(index: u64, rng: &mut impl Rng) -> String {
    let lines = rng.random_range(1..=3u64);
    let mut first = rng.random_range(0..FILL_SKUS);
    let mut parts = Vec::with_capacity(3);
    for _ in 0..lines {
        parts.push(format!(
            r#"{{"sku":"{}","quantity":{}}}"#,
            sku(first),
            rng.random_range(1..=2u64)
        ));
        // Steps under a third of the SKUs: three lines never name one SKU twice.
        first = (first + rng.random_range(1..FILL_SKUS / 3)) % FILL_SKUS;
    }
    let channel = CHANNELS[usize::try_from(index % 4).unwrap_or(0)];
    format!(
        r#"{{"lines":[{}],"customer_id":"c-{:08}","channel":"{channel}","ttl_seconds":3600}}"#,
        parts.join(","),
        index % 100_000_000
    )
}

async fn fill_holds(server: &Server, holds: u64, args: &FillArgs) -> Result<u64, Error> {
    let stock: String = (0..FILL_SKUS)
        .map(|i| format!("{{\"sku\":\"{}\",\"on_hand\":1000000000}}\n", sku(i)))
        .collect();
    server.feed(stock).await?;
    let lanes = Arc::new(Lanes::new(&server.base, args.concurrency)?);
    let next = Arc::new(AtomicU64::new(0));
    let placed = Arc::new(AtomicU64::new(0));
    let bearer = format!("Bearer {ADMIN_KEY}");
    let mut workers = Vec::with_capacity(args.concurrency);
    for worker in 0..args.concurrency {
        let (lanes, next, placed, bearer) = (
            Arc::clone(&lanes),
            Arc::clone(&next),
            Arc::clone(&placed),
            bearer.clone(),
        );
        let seed = args.seed.wrapping_add(worker as u64);
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= holds {
                    return Ok::<(), Error>(());
                }
                let key = idempotency_key(&mut rng);
                let body = Bytes::from(hold_body(index, &mut rng));
                let headers = [
                    ("authorization", bearer.as_str()),
                    ("idempotency-key", key.as_str()),
                ];
                let reply = lanes
                    .send(Method::POST, "/v1/holds", &headers, Some(body))
                    .await?;
                if reply.status != 201 {
                    return Err(format!(
                        "hold {index}: {} {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    )
                    .into());
                }
                placed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(placed.load(Ordering::Relaxed))
}

async fn fill_skus(server: &Server, skus: u64) -> Result<u64, Error> {
    let feed: String = (0..skus)
        .map(|i| format!("{{\"sku\":\"CATALOG-{i:07}\",\"on_hand\":{}}}\n", i % 500))
        .collect();
    server.feed(feed).await
}

/// Runs the fill and the restarts; the spawned server is gone when this returns.
pub async fn run(args: FillArgs) -> Result<FillReport, Error> {
    let bin = holdfast_bin(args.holdfast_bin.as_deref())?;
    let temp = tempfile::tempdir()?;
    let data = temp.path().join("data");
    let mut server_args: Vec<String> = ["--admin-key", ADMIN_KEY]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The channels are configured, as a retailer's are (each with its key); the fill
    // still places every hold with the admin key, naming the channel.
    for channel in CHANNELS {
        server_args.push("--channel-key".into());
        server_args.push(format!("{channel}=fill-{channel}-key"));
    }
    let items_max = match args.fill {
        Fill::Holds(n) | Fill::Skus(n) => n,
    };
    // Room for the fill; the flags after these may still lower them.
    for flag in [
        "--holds-max",
        "--idempotency-keys-max",
        "--sku-hold-lines-max",
    ] {
        server_args.push(flag.into());
        server_args.push((items_max * 2).max(2_000_000).to_string());
    }
    server_args.push("--sku-count-max".into());
    server_args.push((items_max + FILL_SKUS).max(100_000).to_string());
    server_args.extend(args.server_args.iter().cloned());

    let (server, _) = Server::start(&bin, &data, &server_args).await?;
    let empty_mb = server.rss_mb();
    let started = Instant::now();
    let items = match args.fill {
        Fill::Holds(n) => fill_holds(&server, n, &args).await?,
        Fill::Skus(n) => fill_skus(&server, n).await?,
    };
    let fill_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(args.settle).await;
    let page = server.metrics().await?;
    let written = metric(&page, "holdfast_snapshot_duration_seconds_count");
    let snapshot_s = metric(&page, "holdfast_snapshot_duration_seconds_sum");
    let memory = Memory {
        empty_mb,
        peak_fill_mb: server.peak_mb(),
        settled_mb: server.rss_mb(),
        bytes_per_item: (server.rss_mb() - empty_mb) * 1024.0 * 1024.0 / items.max(1) as f64,
    };
    server.stop("-KILL").await?;
    let snapshots = Snapshots {
        written: count(written),
        mean_s: if written > 0.0 {
            snapshot_s / written
        } else {
            0.0
        },
        snapshots_dir_mb: dir_mb(&data.join("snapshots")),
        journal_dir_mb: dir_mb(&data.join("journal")),
    };
    let restart_after_kill9 = restart(&bin, &data, &server_args, &args).await?;
    let restart_after_sigterm = restart(&bin, &data, &server_args, &args).await?;
    Ok(FillReport {
        fill: args.fill,
        items,
        fill_s,
        items_per_s: items as f64 / fill_s.max(1e-9),
        memory,
        snapshots,
        restart_after_kill9,
        restart_after_sigterm,
    })
}

/// Starts the server on the filled data dir, measures it, and stops it with SIGTERM.
async fn restart(
    bin: &Path,
    data: &Path,
    server_args: &[String],
    args: &FillArgs,
) -> Result<Restart, Error> {
    let (server, ready_s) = Server::start(bin, data, server_args).await?;
    let peak_mb = server.peak_mb();
    tokio::time::sleep(args.settle).await;
    let settled_mb = server.rss_mb();
    let page = server.metrics().await?;
    let items = match args.fill {
        Fill::Holds(_) => metric(&page, "holdfast_holds"),
        // The fill's SKUs and the 0 seeded before a hold fill.
        Fill::Skus(_) => metric(&page, "holdfast_skus"),
    };
    server.stop("-TERM").await?;
    Ok(Restart {
        ready_s,
        peak_mb,
        settled_mb,
        items: count(items),
    })
}

impl FillReport {
    pub fn print(&self) {
        let what = match self.fill {
            Fill::Holds(_) => "holds",
            Fill::Skus(_) => "SKUs",
        };
        println!(
            "filled {} {what} in {:.1} s ({:.0}/s)",
            self.items, self.fill_s, self.items_per_s
        );
        let m = &self.memory;
        println!(
            "memory: empty {:.0} MB, peak {:.0} MB, settled {:.0} MB: {:.0} bytes per {}",
            m.empty_mb,
            m.peak_fill_mb,
            m.settled_mb,
            m.bytes_per_item,
            what.trim_end_matches('s')
        );
        let s = &self.snapshots;
        println!(
            "snapshots: {} written, {:.2} s each on average; on disk {:.0} MB snapshots, {:.0} MB journal",
            s.written, s.mean_s, s.snapshots_dir_mb, s.journal_dir_mb
        );
        for (name, r) in [
            ("kill -9", &self.restart_after_kill9),
            ("SIGTERM", &self.restart_after_sigterm),
        ] {
            println!(
                "restart after {name}: ready in {:.2} s with {} {what}, peak {:.0} MB, settled {:.0} MB",
                r.ready_s, r.items, r.peak_mb, r.settled_mb
            );
        }
    }

    /// This report's figures beside an earlier one's, with the ratio new / old.
    pub fn print_comparison(&self, old: &FillReport) {
        let rows = [
            ("items/s", self.items_per_s, old.items_per_s),
            ("peak MB", self.memory.peak_fill_mb, old.memory.peak_fill_mb),
            ("settled MB", self.memory.settled_mb, old.memory.settled_mb),
            (
                "bytes per item",
                self.memory.bytes_per_item,
                old.memory.bytes_per_item,
            ),
            ("snapshot s", self.snapshots.mean_s, old.snapshots.mean_s),
            (
                "ready after kill -9 s",
                self.restart_after_kill9.ready_s,
                old.restart_after_kill9.ready_s,
            ),
            (
                "ready after SIGTERM s",
                self.restart_after_sigterm.ready_s,
                old.restart_after_sigterm.ready_s,
            ),
        ];
        println!("{:<24} {:>12} {:>12} {:>8}", "", "now", "before", "ratio");
        for (name, now, before) in rows {
            let ratio = if before > 0.0 { now / before } else { 0.0 };
            println!("{name:<24} {now:>12.2} {before:>12.2} {ratio:>7.2}x");
        }
    }
}

/// A count read from the metrics page, where Prometheus writes every value as a float.
#[expect(
    clippy::cast_possible_truncation,
    reason = "a whole, non-negative count; a NaN reads as 0"
)]
fn count(value: f64) -> u64 {
    value.max(0.0) as u64
}
