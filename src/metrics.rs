//! Metric names, their descriptions, and the Prometheus recorder. Names follow
//! `holdfast_<noun>_<unit>[_total]`; label values come from closed sets (route patterns,
//! status classes, outcomes) or from bounded configuration (the watched SKUs, the
//! configured channels, the admission queues: `global` and at most `--sales-max` sales),
//! never from what a shopper's request names.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::HoldStatus;

pub const HTTP_REQUESTS_TOTAL: &str = "holdfast_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "holdfast_http_request_duration_seconds";
pub const HOLD_OUTCOMES_TOTAL: &str = "holdfast_hold_outcomes_total";
pub const HOLD_DURATION_SECONDS: &str = "holdfast_hold_duration_seconds";
pub const HOLDS_ENDED_TOTAL: &str = "holdfast_holds_ended_total";
pub const JOURNAL_BATCH_EVENTS: &str = "holdfast_journal_batch_events";
pub const JOURNAL_BATCH_BYTES: &str = "holdfast_journal_batch_bytes";
pub const JOURNAL_FLUSH_DURATION_SECONDS: &str = "holdfast_journal_flush_duration_seconds";
pub const SNAPSHOT_DURATION_SECONDS: &str = "holdfast_snapshot_duration_seconds";
pub const JOURNAL_ENTRIES: &str = "holdfast_journal_entries";
pub const JOURNAL_FAILING: &str = "holdfast_journal_failing";
pub const JOURNAL_WRITE_ERRORS_TOTAL: &str = "holdfast_journal_write_errors_total";
pub const RECOVERY_DURATION_SECONDS: &str = "holdfast_recovery_duration_seconds";
pub const BUILD_INFO: &str = "holdfast_build_info";
pub const ADMISSION_DECISIONS_TOTAL: &str = "holdfast_admission_decisions_total";
pub const ADMISSION_WAIT_SECONDS: &str = "holdfast_admission_wait_seconds";
pub const ADMISSION_QUEUE_LENGTH: &str = "holdfast_admission_queue_length";
pub const ADMISSION_IN_FLIGHT: &str = "holdfast_admission_in_flight";
pub const ADMISSION_QUEUE_MAX: &str = "holdfast_admission_queue_max";
pub const ADMISSION_IN_FLIGHT_MAX: &str = "holdfast_admission_in_flight_max";
pub const SKU_STOCK_EVENTS_TOTAL: &str = "holdfast_sku_stock_events_total";
pub const SKU_UNITS: &str = "holdfast_sku_units";
pub const SKU_CHANNEL_UNITS: &str = "holdfast_sku_channel_units";
pub const LOCATION_UNITS: &str = "holdfast_location_units";
pub const SKU_MAILBOX_DEPTH_MAX: &str = "holdfast_sku_mailbox_depth_max";
pub const SKUS: &str = "holdfast_skus";
pub const HOLDS: &str = "holdfast_holds";
pub const IDEMPOTENCY_KEYS: &str = "holdfast_idempotency_keys";
pub const READY: &str = "holdfast_ready";
pub const ALLOCATION_CONFLICTS_TOTAL: &str = "holdfast_allocation_conflicts_total";
pub const STOCK_EVENTS_PUBLISHED_TOTAL: &str = "holdfast_stock_events_published_total";
pub const STOCK_SUBSCRIBERS: &str = "holdfast_stock_subscribers";
pub const STOCK_SUBSCRIBERS_CUT_TOTAL: &str = "holdfast_stock_subscribers_cut_total";
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "holdfast_webhook_deliveries_total";
pub const WEBHOOK_DELIVERY_LAG_SECONDS: &str = "holdfast_webhook_delivery_lag_seconds";
pub const WEBHOOK_ENDPOINTS_DISABLED: &str = "holdfast_webhook_endpoints_disabled";
pub const WEBHOOK_DISABLED_TOTAL: &str = "holdfast_webhook_disabled_total";

/// Latency buckets from 100 µs to 10 s: a hold is sub-millisecond when idle, a flush is
/// milliseconds, a stalled request is seconds. Millisecond steps up to 5 ms, so a p99
/// near the 5 ms target reads as a figure, not as "somewhere between 2.5 and 5".
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
const BATCH_EVENTS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
const BATCH_BYTES_BUCKETS: &[f64] = &[
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
];

/// How a hold request ended, as counted in `holdfast_hold_outcomes_total{outcome}`.
#[derive(Debug, Clone, Copy)]
pub enum HoldOutcome {
    Held,
    SoldOut,
    QueueFull,
    Limit,
    Rejected,
    Error,
}

impl HoldOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::SoldOut => "sold_out",
            Self::QueueFull => "queue_full",
            Self::Limit => "limit",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

/// Installs the process-wide recorder once and returns its handle; later calls (several
/// servers in one test process) share it.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = build()
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|err| format!("metrics recorder: {err}"))?;
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .map_err(|err| format!("metrics upkeep thread: {err}"))?;
            Ok(handle)
        })
        .clone()
}

fn build() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)?
        .set_buckets_for_metric(
            Matcher::Full(JOURNAL_BATCH_EVENTS.into()),
            BATCH_EVENTS_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(JOURNAL_BATCH_BYTES.into()),
            BATCH_BYTES_BUCKETS,
        )
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests by route pattern, method and status class."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request latency by route pattern."
    );
    describe_counter!(
        HOLD_OUTCOMES_TOTAL,
        Unit::Count,
        "Hold requests by outcome."
    );
    describe_histogram!(
        HOLD_DURATION_SECONDS,
        Unit::Seconds,
        "Time to place a hold, durable, from request to answer."
    );
    describe_counter!(
        HOLDS_ENDED_TOTAL,
        Unit::Count,
        "Holds that left the held state, by new status."
    );
    describe_histogram!(
        JOURNAL_BATCH_EVENTS,
        Unit::Count,
        "Events written under one journal flush."
    );
    describe_histogram!(
        JOURNAL_BATCH_BYTES,
        Unit::Bytes,
        "Encoded bytes written under one journal flush."
    );
    describe_histogram!(
        JOURNAL_FLUSH_DURATION_SECONDS,
        Unit::Seconds,
        "Time to write and flush one journal batch."
    );
    describe_histogram!(
        SNAPSHOT_DURATION_SECONDS,
        Unit::Seconds,
        "Time to write one snapshot and trim the journal."
    );
    describe_gauge!(
        JOURNAL_ENTRIES,
        Unit::Count,
        "Journal events left on disk after the last snapshot deleted the segments it covers."
    );
    describe_gauge!(
        JOURNAL_FAILING,
        Unit::Count,
        "1 while the journal cannot write (full disk, I/O error): changes get 503 and readiness fails."
    );
    describe_counter!(
        JOURNAL_WRITE_ERRORS_TOTAL,
        Unit::Count,
        "Journal writes or syncs that failed (each retried until it succeeds)."
    );
    describe_gauge!(
        RECOVERY_DURATION_SECONDS,
        Unit::Seconds,
        "Time the last start-up spent recovering state."
    );
    describe_counter!(
        ADMISSION_DECISIONS_TOTAL,
        Unit::Count,
        "Hold requests by admission decision."
    );
    describe_histogram!(
        ADMISSION_WAIT_SECONDS,
        Unit::Seconds,
        "Time an admitted hold request waited in the admission queue."
    );
    describe_gauge!(
        ADMISSION_QUEUE_LENGTH,
        Unit::Count,
        "Hold requests waiting for admission, by queue (`global` or a sale id)."
    );
    describe_gauge!(
        ADMISSION_IN_FLIGHT,
        Unit::Count,
        "Hold requests admitted and running, by queue."
    );
    describe_gauge!(
        ADMISSION_QUEUE_MAX,
        Unit::Count,
        "Configured maximum of waiting hold requests, by queue."
    );
    describe_gauge!(
        ADMISSION_IN_FLIGHT_MAX,
        Unit::Count,
        "Configured maximum of hold requests running at once, by queue."
    );
    describe_counter!(
        SKU_STOCK_EVENTS_TOTAL,
        Unit::Count,
        "SKUs selling out or coming back in stock."
    );
    describe_gauge!(
        SKU_UNITS,
        Unit::Count,
        "Units of each watched SKU by state (on_hand, held, committed, available)."
    );
    describe_gauge!(
        LOCATION_UNITS,
        Unit::Count,
        "Units at each location over all SKUs by state (on_hand, held, committed, available)."
    );
    describe_gauge!(
        SKU_CHANNEL_UNITS,
        Unit::Count,
        "Units of each watched SKU per channel by state (held, committed)."
    );
    describe_gauge!(
        SKU_MAILBOX_DEPTH_MAX,
        Unit::Count,
        "Deepest SKU actor mailbox: messages sent and not yet answered."
    );
    describe_gauge!(SKUS, Unit::Count, "SKUs the server tracks.");
    describe_counter!(
        ALLOCATION_CONFLICTS_TOTAL,
        Unit::Count,
        "Stock changes that left channel quotas above sellable stock."
    );
    describe_gauge!(HOLDS, Unit::Count, "Holds in memory, live and ended.");
    describe_counter!(
        STOCK_EVENTS_PUBLISHED_TOTAL,
        Unit::Count,
        "Availability events published to the stream, the change feed and webhooks (durable changes)."
    );
    describe_gauge!(
        STOCK_SUBSCRIBERS,
        Unit::Count,
        "Availability stream (SSE) subscribers connected."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        Unit::Count,
        "Webhook delivery attempts by outcome (delivered, failed, gone)."
    );
    describe_histogram!(
        WEBHOOK_DELIVERY_LAG_SECONDS,
        Unit::Seconds,
        "From an availability change to its webhook delivery succeeding."
    );
    describe_gauge!(
        WEBHOOK_ENDPOINTS_DISABLED,
        Unit::Count,
        "Webhook endpoints disabled (410 Gone, or too many failures in a row)."
    );
    describe_counter!(
        WEBHOOK_DISABLED_TOTAL,
        Unit::Count,
        "Webhook endpoints the server disabled."
    );
    describe_counter!(
        STOCK_SUBSCRIBERS_CUT_TOTAL,
        Unit::Count,
        "Availability stream subscribers cut off with a reset because they fell behind what is kept."
    );
    describe_gauge!(
        IDEMPOTENCY_KEYS,
        Unit::Count,
        "Idempotency keys remembered."
    );
    describe_gauge!(
        READY,
        Unit::Count,
        "1 while serving, 0 while recovering or shutting down."
    );
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the version label tells the build."
    );
}

pub fn http_request(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route).record(elapsed.as_secs_f64());
    counter!(HTTP_REQUESTS_TOTAL, "route" => route, "method" => method, "status" => class)
        .increment(1);
}

pub fn hold_outcome(outcome: HoldOutcome, elapsed: Duration) {
    counter!(HOLD_OUTCOMES_TOTAL, "outcome" => outcome.label()).increment(1);
    histogram!(HOLD_DURATION_SECONDS, "outcome" => outcome.label()).record(elapsed.as_secs_f64());
}

pub fn hold_ended(status: HoldStatus) {
    counter!(HOLDS_ENDED_TOTAL, "status" => status.as_str()).increment(1);
}

pub fn journal_batch(events: usize, bytes: usize, elapsed: Duration) {
    histogram!(JOURNAL_BATCH_EVENTS).record(count_f64(events));
    histogram!(JOURNAL_BATCH_BYTES).record(count_f64(bytes));
    histogram!(JOURNAL_FLUSH_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

pub fn journal_failing(failing: bool) {
    gauge!(JOURNAL_FAILING).set(if failing { 1.0 } else { 0.0 });
}

pub fn journal_write_error() {
    counter!(JOURNAL_WRITE_ERRORS_TOTAL).increment(1);
}

pub fn recovery(elapsed: Duration) {
    gauge!(RECOVERY_DURATION_SECONDS).set(elapsed.as_secs_f64());
}

pub fn snapshot(elapsed: Duration, journal_entries: usize) {
    histogram!(SNAPSHOT_DURATION_SECONDS).record(elapsed.as_secs_f64());
    gauge!(JOURNAL_ENTRIES).set(count_f64(journal_entries));
}

/// Counts fit f64 exactly up to 2^53; ours are far below.
fn count_f64(count: usize) -> f64 {
    u32::try_from(count).map_or(f64::from(u32::MAX), f64::from)
}

/// What the admission queue did with a hold request.
#[derive(Debug, Clone, Copy)]
pub enum AdmissionDecision {
    Admitted,
    AdmittedAfterWait,
    QueueFull,
    SoldOut,
}

pub fn admission_decision(decision: AdmissionDecision) {
    let label = match decision {
        AdmissionDecision::Admitted => "admitted",
        AdmissionDecision::AdmittedAfterWait => "admitted_after_wait",
        AdmissionDecision::QueueFull => "queue_full",
        AdmissionDecision::SoldOut => "sold_out",
    };
    counter!(ADMISSION_DECISIONS_TOTAL, "decision" => label).increment(1);
}

pub fn admission_wait(elapsed: Duration) {
    histogram!(ADMISSION_WAIT_SECONDS).record(elapsed.as_secs_f64());
}

/// The gauges of one admission queue, labelled `queue`: `global`, or the id of a sale
/// with its own queue (sales are capped, so the label set is bounded). Registered once
/// per queue; the queue sets them as it ticks.
pub struct QueueGauges {
    pub length: metrics::Gauge,
    pub in_flight: metrics::Gauge,
    pub length_max: metrics::Gauge,
    pub in_flight_max: metrics::Gauge,
}

impl QueueGauges {
    pub fn new(queue: &str) -> Self {
        let label = || ("queue", queue.to_owned());
        Self {
            length: gauge!(ADMISSION_QUEUE_LENGTH, &[label()]),
            in_flight: gauge!(ADMISSION_IN_FLIGHT, &[label()]),
            length_max: gauge!(ADMISSION_QUEUE_MAX, &[label()]),
            in_flight_max: gauge!(ADMISSION_IN_FLIGHT_MAX, &[label()]),
        }
    }

    pub fn set(&self, queued: usize, in_flight: usize, queue_max: usize, in_flight_max: usize) {
        self.length.set(count_f64(queued));
        self.in_flight.set(count_f64(in_flight));
        self.length_max.set(count_f64(queue_max));
        self.in_flight_max.set(count_f64(in_flight_max));
    }
}

/// A SKU crossing zero availability, counted without a SKU label.
#[derive(Debug, Clone, Copy)]
pub enum StockEvent {
    LowStock,
    SoldOut,
    BackInStock,
}

pub fn stock_event(event: StockEvent) {
    let label = match event {
        StockEvent::LowStock => "low_stock",
        StockEvent::SoldOut => "sold_out",
        StockEvent::BackInStock => "back_in_stock",
    };
    counter!(SKU_STOCK_EVENTS_TOTAL, "event" => label).increment(1);
}

/// Events the journal writer published (not those recovery put back in the ring).
pub fn stock_events_published(count: usize) {
    counter!(STOCK_EVENTS_PUBLISHED_TOTAL).increment(count as u64);
}

pub fn stock_subscribers(count: usize) {
    gauge!(STOCK_SUBSCRIBERS).set(count as f64);
}

pub fn webhook_delivery(outcome: &'static str) {
    counter!(WEBHOOK_DELIVERIES_TOTAL, "outcome" => outcome).increment(1);
}

pub fn webhook_lag(lag: Duration) {
    histogram!(WEBHOOK_DELIVERY_LAG_SECONDS).record(lag.as_secs_f64());
}

/// An endpoint the server just disabled (the registry sets the gauge's exact value on
/// every registration).
pub fn webhook_disabled() {
    counter!(WEBHOOK_DISABLED_TOTAL).increment(1);
    gauge!(WEBHOOK_ENDPOINTS_DISABLED).increment(1.0);
}

pub fn webhooks_disabled(count: usize) {
    gauge!(WEBHOOK_ENDPOINTS_DISABLED).set(count as f64);
}

pub fn stock_subscriber_cut() {
    counter!(STOCK_SUBSCRIBERS_CUT_TOTAL).increment(1);
}

/// Units of a watched SKU; `sku` comes from the configured watch list, never a request.
pub fn sku_units(sku: &str, state: &'static str, units: u64) {
    gauge!(SKU_UNITS, "sku" => sku.to_owned(), "state" => state).set(units as f64);
}

pub fn sku_channel_units(sku: &str, channel: &str, state: &'static str, units: u64) {
    gauge!(SKU_CHANNEL_UNITS, "sku" => sku.to_owned(), "channel" => channel.to_owned(), "state" => state)
        .set(units as f64);
}

/// The states of `holdfast_location_units`, in the order of [`location_units_moved`]'s
/// deltas.
const LOCATION_STATES: [&str; 4] = ["on_hand", "held", "committed", "available"];

type LocationGauges = [metrics::Gauge; 4];

/// Moves one location's units (over all SKUs) by `deltas` (on hand, held, committed,
/// available). Each SKU actor reports what its changes moved, so the totals need no scan
/// of a million SKUs. Locations are admin-defined and capped by `--locations-max`, so the
/// label set and this cache are bounded; the handles are cached because a registry
/// lookup per reservation showed in a hot SKU's latency.
pub fn location_units_moved(location: &crate::domain::LocationId, deltas: [i64; 4]) {
    static GAUGES: OnceLock<
        parking_lot::RwLock<crate::domain::IdMap<crate::domain::LocationId, LocationGauges>>,
    > = OnceLock::new();
    let cache = GAUGES.get_or_init(Default::default);
    let apply = |gauges: &LocationGauges| {
        for (gauge, delta) in gauges.iter().zip(deltas) {
            if delta != 0 {
                gauge.increment(delta as f64);
            }
        }
    };
    // `default` takes every change of a deployment without locations: no lock for it.
    static DEFAULT: OnceLock<LocationGauges> = OnceLock::new();
    if location.is_default() {
        let gauges = DEFAULT.get_or_init(|| {
            LOCATION_STATES
                .map(|state| gauge!(LOCATION_UNITS, "location" => "default", "state" => state))
        });
        return apply(gauges);
    }
    if let Some(gauges) = cache.read().get(location) {
        return apply(gauges);
    }
    let gauges = LOCATION_STATES
        .map(|state| gauge!(LOCATION_UNITS, "location" => location.to_string(), "state" => state));
    apply(&gauges);
    cache.write().insert(location.clone(), gauges);
}

/// Server-wide gauges sampled once a second.
pub struct Sampled {
    pub skus: usize,
    pub holds: usize,
    pub idempotency_keys: usize,
    pub mailbox_depth_max: u64,
    pub ready: bool,
}

pub fn sampled(s: &Sampled) {
    gauge!(SKUS).set(count_f64(s.skus));
    gauge!(HOLDS).set(count_f64(s.holds));
    gauge!(IDEMPOTENCY_KEYS).set(count_f64(s.idempotency_keys));
    gauge!(SKU_MAILBOX_DEPTH_MAX).set(s.mailbox_depth_max as f64);
    gauge!(READY).set(if s.ready { 1.0 } else { 0.0 });
}

/// Stock fell below the channel quotas (the pool is empty and quotas over-promise).
pub fn allocation_conflict() {
    counter!(ALLOCATION_CONFLICTS_TOTAL).increment(1);
}
