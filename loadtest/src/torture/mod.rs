//! The crash torture suite: rounds of mixed load against the real server, each ended by a
//! graceful stop, a `kill -9` at a random instant, or a kill followed by a power cut
//! (LazyFS drops every byte that was not synced), then a restart and a check that every
//! acknowledged change is there (holds, statuses, stock, quotas, idempotent answers),
//! every SKU is conserved, no hold is held past its deadline, and the server was ready
//! within the bound. Snapshots every few hundred events and small journal segments make
//! kills land mid-snapshot and mid segment roll. Seeded: the same `--seed` makes the same
//! choices (the instants still vary with timing); a failure prints the seed.

pub mod lazyfs;
pub mod ledger;
pub mod load;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::process::Child;

use crate::spawn::{signal, start_holdfast};
use crate::Error;
use ledger::{get_json, Ledger, SetStock, ShopStock};
use load::{BackOffice, SharedLedger, Shopper};

const SHOP_SKUS: usize = 6;
const SET_SKUS: usize = 4;
const SHOP_STOCK: u64 = 100_000;
/// Stock of each shop SKU at each named location (`wh-a`, `wh-b`, routed to before the
/// default location): small, so rounds route lines to all three and sometimes split them.
const SHOP_STOCK_AT: u64 = 40;
/// The named locations, by priority; the default location comes after them.
pub const LOCATIONS: [&str; 2] = ["wh-a", "wh-b"];
const SAFETY_STOCK: u64 = 2;
/// Every this many rounds (and round 0, empty) a graceful stop; the others are kills, so
/// a run's mix is known from its length.
const GRACEFUL_EVERY: u32 = 7;

#[derive(Debug, Clone)]
pub struct Options {
    pub holdfast_bin: PathBuf,
    pub seed: u64,
    pub rounds: u32,
    /// Every this many rounds, a power cut (0: never). Needs `lazyfs`.
    pub power_cut_every: u32,
    /// The LazyFS binary; without it there are no power cuts.
    pub lazyfs: Option<PathBuf>,
    /// `--durability` of the server under test.
    pub durability: String,
    pub shoppers: usize,
    /// Longest load before the stop, in milliseconds.
    pub load_ms_max: u64,
    /// A restart must be ready within this, in seconds.
    pub ready_within_s: u64,
    /// Data dir and mounts go here (a temporary dir if None).
    pub work_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            holdfast_bin: PathBuf::from("target/release/holdfast"),
            seed: 1,
            rounds: 30,
            power_cut_every: 3,
            lazyfs: None,
            durability: "fsync".into(),
            shoppers: 12,
            load_ms_max: 1_500,
            ready_within_s: 10,
            work_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Kill9,
    PowerCut,
}

/// What a run did; `failures` is empty when every check passed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rounds: u32,
    pub kills: u32,
    pub power_cuts: u32,
    pub graceful: u32,
    pub holds_acknowledged: usize,
    pub slowest_ready_ms: u128,
    /// The first failing round's problems, each naming the round and seed.
    pub failures: Vec<String>,
}

struct Running {
    child: Child,
    base: String,
}

impl Running {
    /// Kills the server and waits until it is gone, so nothing holds files on the mount
    /// when it is unmounted.
    async fn kill(mut self) {
        signal(&self.child, "-KILL").await;
        let _ = self.child.wait().await;
    }
}

/// Runs the rounds; stops at the first round whose checks fail.
pub async fn run(options: &Options) -> Result<Outcome, Error> {
    let work = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let mount = match &options.lazyfs {
        Some(bin) => Some(lazyfs::Mount::start(bin, work.path()).await?),
        None => None,
    };
    let data = match &mount {
        Some(mount) => mount.dir.join("data"),
        None => work.path().join("data"),
    };
    let result = rounds(options, &data, mount.as_ref()).await;
    if let Some(mount) = mount {
        mount.stop().await;
    }
    result
}

async fn rounds(
    options: &Options,
    data: &std::path::Path,
    mount: Option<&lazyfs::Mount>,
) -> Result<Outcome, Error> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let ledger: SharedLedger = Arc::new(Mutex::new(Ledger {
        safety_stock: SAFETY_STOCK,
        ..Ledger::default()
    }));
    let mut outcome = Outcome::default();
    for round in 0..options.rounds {
        let fail = |problems: Vec<String>| -> Vec<String> {
            problems
                .into_iter()
                .map(|p| format!("round {round} (seed {}): {p}", options.seed))
                .collect()
        };
        let args = server_args(options, &mut rng);
        let started = Instant::now();
        let running = match start(options, data, &args).await {
            Ok(running) => running,
            Err(err) => {
                outcome.failures = fail(vec![format!("the server did not start: {err}")]);
                return Ok(outcome);
            }
        };
        let ready_ms = started.elapsed().as_millis();
        outcome.slowest_ready_ms = outcome.slowest_ready_ms.max(ready_ms);
        let mut problems = Vec::new();
        if ready_ms > u128::from(options.ready_within_s) * 1_000 {
            problems.push(format!("ready after {ready_ms} ms"));
        }
        let (found, holds) = verify(&http, &running.base, &ledger).await;
        problems.extend(found);
        outcome.holds_acknowledged = holds;
        if !problems.is_empty() {
            outcome.failures = fail(problems);
            running.kill().await;
            return Ok(outcome);
        }
        outcome.rounds = round;
        // Round 0 stops at once, empty: a stop with nothing to snapshot, then load on it.
        let stop = if round == 0 {
            Stop::Graceful
        } else if options.lazyfs.is_some()
            && options.power_cut_every > 0
            && round % options.power_cut_every == 0
        {
            Stop::PowerCut
        } else if round % GRACEFUL_EVERY == 0 {
            Stop::Graceful
        } else {
            Stop::Kill9
        };
        if round == 1 {
            if let Err(err) = seed_skus(&http, &running.base, &ledger).await {
                running.kill().await;
                return Err(err);
            }
        }
        let load_ms = if round == 0 {
            0
        } else {
            rng.random_range(200..=options.load_ms_max.max(200))
        };
        let stop_flag = Arc::new(AtomicBool::new(false));
        let workers = start_load(options, &running.base, &ledger, &stop_flag, &mut rng, round);
        tokio::time::sleep(Duration::from_millis(load_ms)).await;
        let Running { mut child, .. } = running;
        match stop {
            Stop::Graceful => {
                signal(&child, "-TERM").await;
                let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
                outcome.graceful += 1;
                match status {
                    Ok(Ok(status)) if status.success() => {}
                    other => {
                        stop_flag.store(true, Ordering::Relaxed);
                        signal(&child, "-KILL").await;
                        let _ = child.wait().await;
                        outcome.failures = fail(vec![format!("graceful stop ended {other:?}")]);
                        return Ok(outcome);
                    }
                }
            }
            Stop::Kill9 | Stop::PowerCut => {
                signal(&child, "-KILL").await;
                let _ = child.wait().await;
                outcome.kills += 1;
            }
        }
        stop_flag.store(true, Ordering::Relaxed);
        for worker in workers {
            let _ = worker.await;
        }
        if stop == Stop::PowerCut {
            if let Some(mount) = mount {
                mount.power_cut().await?;
                outcome.power_cuts += 1;
            }
        }
        println!(
            "round {round}: {stop:?} after {load_ms} ms of load, ready in {ready_ms} ms, {} holds acknowledged so far",
            load::lock(&ledger).holds.len()
        );
    }
    // The last round's stop is checked by one more start.
    let running = start(options, data, &server_args(options, &mut rng)).await;
    match running {
        Ok(running) => {
            let (problems, holds) = verify(&http, &running.base, &ledger).await;
            outcome.holds_acknowledged = holds;
            outcome.failures = problems
                .into_iter()
                .map(|p| format!("after the last round (seed {}): {p}", options.seed))
                .collect();
            let Running { mut child, .. } = running;
            signal(&child, "-TERM").await;
            let _ = child.wait().await;
        }
        Err(err) => {
            outcome.failures = vec![format!(
                "the server did not start after the last round: {err}"
            )]
        }
    }
    outcome.rounds = options.rounds;
    Ok(outcome)
}

/// Checks the ledger against the server (no worker runs now); returns the problems and
/// the number of acknowledged holds.
async fn verify(http: &reqwest::Client, base: &str, ledger: &SharedLedger) -> (Vec<String>, usize) {
    let mut owned = std::mem::take(&mut *load::lock(ledger));
    let problems = ledger::verify(http, base, &mut owned).await;
    let holds = owned.holds.len();
    *load::lock(ledger) = owned;
    (problems, holds)
}

/// A short snapshot interval and small segments, varied per round, so a kill lands
/// mid-snapshot and mid segment roll often.
fn server_args(options: &Options, rng: &mut StdRng) -> Vec<String> {
    let snapshot_every = rng.random_range(50..400).to_string();
    let segment_bytes = (rng.random_range(16..128) * 1024).to_string();
    [
        "--durability",
        &options.durability,
        "--snapshot-every-events",
        &snapshot_every,
        "--snapshot-every-s",
        "1",
        "--journal-segment-bytes",
        &segment_bytes,
        "--expiry-tick-ms",
        "50",
        "--http-workers",
        "2",
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn start(
    options: &Options,
    data: &std::path::Path,
    args: &[String],
) -> Result<Running, Error> {
    let (child, port) = start_holdfast(&options.holdfast_bin, data, args).await?;
    let base = format!("http://127.0.0.1:{port}");
    // The ready file is written once ready; say so through the API too.
    let http = reqwest::Client::new();
    let running = Running { child, base };
    match get_json(&http, &format!("{}/health/ready", running.base)).await {
        Ok((200, _)) => Ok(running),
        other => {
            running.kill().await;
            Err(format!("/health/ready answered {other:?} after the ready file").into())
        }
    }
}

fn shop_sku(n: usize) -> String {
    format!("SHOP-{n}")
}

fn set_sku(n: usize) -> String {
    format!("SET-{n}")
}

async fn seed_skus(http: &reqwest::Client, base: &str, ledger: &SharedLedger) -> Result<(), Error> {
    let put = |sku: String, on_hand: u64| async move {
        // The safety stock is the default location's; named ones keep none.
        let safety = if sku.contains('/') { 0 } else { SAFETY_STOCK };
        let body = serde_json::json!({"on_hand": on_hand, "safety_stock": safety});
        let response = http
            .put(format!("{base}/v1/skus/{sku}"))
            .json(&body)
            .send()
            .await?;
        if response.status().as_u16() != 200 {
            return Err(Error::from(format!("seeding {sku}: {}", response.status())));
        }
        Ok(())
    };
    let describe = |id: &'static str, priority: u32| async move {
        let body = serde_json::json!({"name": id, "priority": priority});
        let response = http
            .put(format!("{base}/v1/locations/{id}"))
            .json(&body)
            .send()
            .await?;
        if response.status().as_u16() != 200 {
            return Err(Error::from(format!("location {id}: {}", response.status())));
        }
        Ok(())
    };
    for (priority, id) in (1..).zip(LOCATIONS) {
        describe(id, priority).await?;
    }
    describe("default", 10).await?;
    for n in 0..SHOP_SKUS {
        put(shop_sku(n), SHOP_STOCK).await?;
        for location in LOCATIONS {
            put(
                format!("{}/locations/{location}", shop_sku(n)),
                SHOP_STOCK_AT,
            )
            .await?;
        }
        let mut ledger = load::lock(ledger);
        ledger.shop_skus.insert(
            shop_sku(n),
            ShopStock {
                seeded: SHOP_STOCK + SHOP_STOCK_AT * LOCATIONS.len() as u64,
                ..ShopStock::default()
            },
        );
    }
    for n in 0..SET_SKUS {
        put(set_sku(n), 500).await?;
        let mut ledger = load::lock(ledger);
        ledger.set_skus.insert(
            set_sku(n),
            SetStock {
                on_hand: 500,
                ..SetStock::default()
            },
        );
    }
    Ok(())
}

fn start_load(
    options: &Options,
    base: &str,
    ledger: &SharedLedger,
    stop: &Arc<AtomicBool>,
    rng: &mut StdRng,
    round: u32,
) -> Vec<tokio::task::JoinHandle<()>> {
    if round == 0 {
        return Vec::new();
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let shop_skus: Vec<String> = (0..SHOP_SKUS).map(shop_sku).collect();
    let set_skus: Vec<String> = (0..SET_SKUS).map(set_sku).collect();
    let mut workers: Vec<_> = (0..options.shoppers)
        .map(|worker| {
            let shopper = Shopper {
                http: http.clone(),
                base: base.to_owned(),
                ledger: Arc::clone(ledger),
                rng: StdRng::seed_from_u64(rng.random()),
                key_prefix: format!("s{}-r{round}-w{worker}", options.seed),
                shop_skus: shop_skus.clone(),
                set_skus: set_skus.clone(),
                stop: Arc::clone(stop),
            };
            tokio::spawn(shopper.run())
        })
        .collect();
    let office = BackOffice {
        http,
        base: base.to_owned(),
        ledger: Arc::clone(ledger),
        rng: StdRng::seed_from_u64(rng.random()),
        set_skus,
        stop: Arc::clone(stop),
    };
    workers.push(tokio::spawn(office.run()));
    workers
}
