//! The JSON report (API.md, "Load harness"), the table printed at the end, and
//! `--compare old.json`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::Check;
use crate::driver::Outcome;
use crate::stats::{LatencySummary, Op};
use crate::Scenario;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub ops: BTreeMap<&'static str, OpReport>,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub invariants: Invariants,
    /// Change of each holdfast counter (and histogram count) over the run.
    pub server_metrics: BTreeMap<String, f64>,
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
        let o = &outcome.outcomes;
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let expired_ok = checks
            .iter()
            .any(|c| c.name == "abandoned_holds_expired" && c.ok);
        let outcomes = BTreeMap::from([
            ("held", load(&o.held)),
            ("sold_out", load(&o.sold_out)),
            ("queue_full", load(&o.queue_full)),
            ("confirmed", load(&o.confirmed)),
            ("released", load(&o.released)),
            ("abandoned", load(&o.abandoned)),
            ("expired", if expired_ok { load(&o.abandoned) } else { 0 }),
            ("errors", load(&o.errors)),
        ]);
        let before = counters(before);
        let server_metrics = counters(after)
            .into_iter()
            .map(|(series, value)| {
                let delta = value - before.get(&series).copied().unwrap_or(0.0);
                (series, delta)
            })
            .filter(|(_, delta)| *delta != 0.0)
            .collect();
        Report {
            scenario: scenario.clone(),
            ops,
            outcomes,
            invariants: Invariants {
                ok: checks.iter().all(|c| c.ok),
                checks,
            },
            server_metrics,
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
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("outcomes: {}", outcomes.join(", "));
        for check in &self.invariants.checks {
            println!(
                "{} {:<26} {}",
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
