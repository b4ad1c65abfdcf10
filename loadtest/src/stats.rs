//! Latency histograms per operation and outcome counters, shared by all customers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Operations the report measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Hold,
    /// A hold attempt answered 429 by the admission queue.
    HoldQueueFull,
    Confirm,
    Release,
    Availability,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Hold,
        Op::HoldQueueFull,
        Op::Confirm,
        Op::Release,
        Op::Availability,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Hold => "hold",
            Op::HoldQueueFull => "hold_queue_full",
            Op::Confirm => "confirm",
            Op::Release => "release",
            Op::Availability => "availability",
        }
    }
}

/// Outcome counters (API.md's report `outcomes`).
#[derive(Debug, Default)]
pub struct Outcomes {
    pub held: AtomicU64,
    pub sold_out: AtomicU64,
    pub queue_full: AtomicU64,
    pub confirmed: AtomicU64,
    pub released: AtomicU64,
    pub abandoned: AtomicU64,
    pub errors: AtomicU64,
}

impl Outcomes {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Microsecond histograms from 1 µs to 60 s, 3 significant digits.
pub struct Latencies {
    histograms: Mutex<BTreeMap<Op, Histogram<u64>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            histograms: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Latencies {
    pub fn record(&self, op: Op, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 60_000_000);
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = histograms
            .entry(op)
            .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"));
        let _ = histogram.record(micros);
    }

    pub fn count(&self, op: Op) -> u64 {
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        histograms.get(&op).map_or(0, Histogram::len)
    }

    pub fn summary(&self, op: Op) -> Option<LatencySummary> {
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        let h = histograms.get(&op)?;
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Some(LatencySummary {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}
