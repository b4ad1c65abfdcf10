//! The JSON report (API.md, "Load harness"), the table printed at the end, and
//! `--compare old.json`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::Check;
use crate::driver::Outcome;
use crate::stats::{LatencySummary, Op, Outcomes};
use crate::Scenario;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub ops: BTreeMap<&'static str, OpReport>,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// The outcomes per shopper channel, with several channels. An open-loop arrival the
    /// client had no room for is an error in the totals only: it never got a channel.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes_by_channel: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub invariants: Invariants,
    /// Change of each holdfast counter (and histogram count) over the run.
    pub server_metrics: BTreeMap<String, f64>,
    /// The server's own latency for placed holds over the run, from its histogram: each
    /// percentile is the bucket bound it falls under. The gap to the harness's figures is
    /// time outside the handler: sockets, scheduling, the client itself.
    pub server_hold_latency_ms: Option<BucketPercentiles>,
    /// How long the server's journal batches took to write and flush over the run, from
    /// its histogram. Every durable answer waits for its batch's flush, so a p99.9 or max
    /// in the tens of milliseconds is the disk stalling, and the holds' tail with it.
    pub server_journal_flush_ms: Option<BucketPercentiles>,
}

#[derive(Debug, Serialize)]
pub struct BucketPercentiles {
    pub p50_at_most: f64,
    pub p99_at_most: f64,
    pub p999_at_most: f64,
    pub max_at_most: f64,
}

#[derive(Debug, Serialize)]
pub struct OpReport {
    pub count: u64,
    pub per_s: f64,
    pub latency_ms: LatencySummary,
}

#[derive(Debug, Serialize)]
pub struct Invariants {
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// Counter-like series (`_total`, histogram `_count`) from a Prometheus text page.
fn counters(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| line.starts_with("holdfast_"))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let name = series.split('{').next().unwrap_or_default();
            name.ends_with("_total") || name.ends_with("_count")
        })
        .filter_map(|(series, value)| Some((series.to_owned(), value.parse().ok()?)))
        .collect()
}

/// Series of the server's hold latency histogram for placed holds; `le` follows.
const HELD_BUCKET: &str = "holdfast_hold_duration_seconds_bucket{outcome=\"held\",le=\"";
/// Series of the server's journal flush histogram; `le` follows.
const FLUSH_BUCKET: &str = "holdfast_journal_flush_duration_seconds_bucket{le=\"";

/// Cumulative bucket counts of one histogram series, by upper bound in seconds.
fn buckets(text: &str, series: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.split_once("\"} "))
        .filter_map(|(le, count)| {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.parse().ok()?))
        })
        .collect()
}

/// Percentiles of what a histogram series recorded between two `/metrics` pages, as
/// bucket bounds in ms (infinite, `null` in JSON, past the largest bucket).
fn bucket_percentiles(before: &str, after: &str, series: &str) -> Option<BucketPercentiles> {
    let before = buckets(before, series);
    let mut run: Vec<(f64, f64)> = buckets(after, series)
        .into_iter()
        .map(|(le, count)| {
            let earlier = before.iter().find(|(b, _)| *b == le).map_or(0.0, |b| b.1);
            (le, count - earlier)
        })
        .collect();
    run.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = run.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let at_most = |q: f64| {
        run.iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(le, _)| le * 1e3)
    };
    Some(BucketPercentiles {
        p50_at_most: at_most(0.5)?,
        p99_at_most: at_most(0.99)?,
        p999_at_most: at_most(0.999)?,
        max_at_most: at_most(1.0)?,
    })
}

/// API.md's `outcomes`. Abandoned holds count as expired once the audit saw them expire.
fn outcome_counts(o: &Outcomes, expired_ok: bool) -> BTreeMap<&'static str, u64> {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    BTreeMap::from([
        ("held", load(&o.held)),
        ("sold_out", load(&o.sold_out)),
        ("queue_full", load(&o.queue_full)),
        ("confirmed", load(&o.confirmed)),
        ("released", load(&o.released)),
        ("abandoned", load(&o.abandoned)),
        ("expired", if expired_ok { load(&o.abandoned) } else { 0 }),
        ("errors", load(&o.errors)),
    ])
}

impl Report {
    pub fn new(
        scenario: &Scenario,
        outcome: &Outcome,
        checks: Vec<Check>,
        before: &str,
        after: &str,
    ) -> Self {
        let seconds = outcome.elapsed.as_secs_f64().max(0.001);
        let ops = Op::ALL
            .iter()
            .filter_map(|op| {
                let latency_ms = outcome.latencies.summary(*op)?;
                let count = outcome.latencies.count(*op);
                Some((
                    op.name(),
                    OpReport {
                        count,
                        per_s: (count as f64 / seconds).round(),
                        latency_ms,
                    },
                ))
            })
            .collect();
        let expired_ok = checks
            .iter()
            .any(|c| c.name == "abandoned_holds_expired" && c.ok);
        let outcomes_by_channel = outcome
            .by_channel
            .iter()
            .map(|(channel, o)| (channel.clone(), outcome_counts(o, expired_ok)))
            .collect();
        let counted_before = counters(before);
        let server_metrics = counters(after)
            .into_iter()
            .map(|(series, value)| {
                let delta = value - counted_before.get(&series).copied().unwrap_or(0.0);
                (series, delta)
            })
            .filter(|(_, delta)| *delta != 0.0)
            .collect();
        Report {
            scenario: scenario.clone(),
            ops,
            outcomes: outcome_counts(&outcome.outcomes, expired_ok),
            outcomes_by_channel,
            invariants: Invariants {
                ok: checks.iter().all(|c| c.ok),
                checks,
            },
            server_metrics,
            server_hold_latency_ms: bucket_percentiles(before, after, HELD_BUCKET),
            server_journal_flush_ms: bucket_percentiles(before, after, FLUSH_BUCKET),
        }
    }

    pub fn print_table(&self) {
        println!(
            "{:<13} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "op", "count", "per_s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for (name, op) in &self.ops {
            let l = &op.latency_ms;
            println!(
                "{name:<13} {:>9} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                op.count, op.per_s, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        let line = |counts: &BTreeMap<&str, u64>| {
            let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
            counts.join(", ")
        };
        println!("outcomes: {}", line(&self.outcomes));
        for (channel, counts) in &self.outcomes_by_channel {
            println!("  {channel}: {}", line(counts));
        }
        let server = [
            (
                "server's own time for placed holds",
                &self.server_hold_latency_ms,
            ),
            ("server's journal flushes", &self.server_journal_flush_ms),
        ];
        for (what, percentiles) in server {
            if let Some(p) = percentiles {
                println!(
                    "{what}: p50 <= {} ms, p99 <= {} ms, p99.9 <= {} ms, max <= {} ms",
                    p.p50_at_most, p.p99_at_most, p.p999_at_most, p.max_at_most
                );
            }
        }
        for check in &self.invariants.checks {
            println!(
                "{} {:<34} {}",
                if check.ok { "ok  " } else { "FAIL" },
                check.name,
                check.detail
            );
        }
    }
}

#[derive(Deserialize)]
struct OldReport {
    ops: BTreeMap<String, OldOp>,
}

#[derive(Deserialize)]
struct OldOp {
    per_s: f64,
    latency_ms: BTreeMap<String, f64>,
}

/// Prints per-operation throughput and p99 against an earlier report.
pub fn print_comparison(report: &Report, old: &Value) -> Result<(), String> {
    let old: OldReport =
        serde_json::from_value(old.clone()).map_err(|e| format!("old report: {e}"))?;
    println!(
        "{:<13} {:>10} {:>10} {:>7} {:>9} {:>9} {:>7}",
        "op", "old per_s", "per_s", "ratio", "old p99", "p99", "ratio"
    );
    for (name, op) in &report.ops {
        let Some(before) = old.ops.get(*name) else {
            continue;
        };
        let old_p99 = before.latency_ms.get("p99").copied().unwrap_or(f64::NAN);
        println!(
            "{name:<13} {:>10.0} {:>10.0} {:>7.2} {:>9.2} {:>9.2} {:>7.2}",
            before.per_s,
            op.per_s,
            op.per_s / before.per_s,
            old_p99,
            op.latency_ms.p99,
            op.latency_ms.p99 / old_p99
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(counts: [u64; 4]) -> String {
        let bounds = ["0.001", "0.005", "0.025", "+Inf"];
        let mut text = String::from("holdfast_hold_duration_seconds_count{outcome=\"held\"} 0\n");
        for (le, count) in bounds.iter().zip(counts) {
            text += &format!("{HELD_BUCKET}{le}\"}} {count}\n");
            // Another outcome's buckets must not be mixed in.
            text += &format!(
                "holdfast_hold_duration_seconds_bucket{{outcome=\"sold_out\",le=\"{le}\"}} 999\n"
            );
        }
        text
    }

    #[test]
    fn server_percentiles_count_only_the_holds_of_the_run() {
        // Before the run: 100 holds, all under 1 ms. The run adds 1,000: 900 under 1 ms,
        // 85 more under 5 ms, 10 more under 25 ms, 5 slower.
        let before = page([100, 100, 100, 100]);
        let after = page([1_000, 1_085, 1_095, 1_100]);
        let p = bucket_percentiles(&before, &after, HELD_BUCKET).expect("holds were placed");
        assert_eq!((p.p50_at_most, p.p99_at_most), (1.0, 25.0));
        assert_eq!(
            (p.p999_at_most, p.max_at_most),
            (f64::INFINITY, f64::INFINITY)
        );
        let fast = page([1_000, 1_100, 1_100, 1_100]);
        let fast = bucket_percentiles(&before, &fast, HELD_BUCKET).unwrap();
        assert_eq!((fast.p99_at_most, fast.p999_at_most), (5.0, 5.0));
        assert_eq!(fast.max_at_most, 5.0);
    }

    #[test]
    fn journal_flushes_are_read_from_their_own_series() {
        let flushes = |counts: [u64; 3]| {
            let bounds = ["0.001", "0.1", "+Inf"];
            let lines = bounds.iter().zip(counts);
            lines
                .map(|(le, n)| format!("{FLUSH_BUCKET}{le}\"}} {n}\n"))
                .collect::<String>()
        };
        // 2,000 flushes in the run, 1 of them a 100 ms stall of the disk: the holds' own
        // buckets (all under 1 ms) must not hide it.
        let before = page([0, 0, 0, 0]) + &flushes([0, 0, 0]);
        let after = page([500, 500, 500, 500]) + &flushes([1_999, 2_000, 2_000]);
        let p = bucket_percentiles(&before, &after, FLUSH_BUCKET).expect("flushes recorded");
        assert_eq!((p.p50_at_most, p.p999_at_most), (1.0, 1.0));
        assert_eq!(p.max_at_most, 100.0);
        let held = bucket_percentiles(&before, &after, HELD_BUCKET).expect("holds were placed");
        assert_eq!(held.max_at_most, 1.0);
    }

    #[test]
    fn no_holds_in_the_run_means_no_server_percentiles() {
        let page = page([5, 5, 5, 5]);
        assert!(bucket_percentiles(&page, &page, HELD_BUCKET).is_none());
        assert!(bucket_percentiles("", "", HELD_BUCKET).is_none());
        assert!(bucket_percentiles(&page, &page, FLUSH_BUCKET).is_none());
    }
}
