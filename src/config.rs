//! Settings from flags, environment and an optional TOML file: a flag beats its
//! `HOLDFAST_*` variable, which beats the file, which beats the default. Each setting is
//! declared once below; `validate` runs at start and names the setting that is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{Channel, SkuId};
use crate::store::Durability;

/// The longest hold TTL any configuration may allow: a week.
pub const HOLD_TTL_S_CEILING: u64 = 7 * 24 * 3600;
const HOLD_TTL_S_DEFAULT: u64 = 900;
const HOLD_TTL_S_MAX_DEFAULT: u64 = 3600;
// The defaults themselves must be a valid configuration.
const _: () = assert!(HOLD_TTL_S_DEFAULT <= HOLD_TTL_S_MAX_DEFAULT);
const _: () = assert!(HOLD_TTL_S_MAX_DEFAULT <= HOLD_TTL_S_CEILING);
const JOURNAL_SEGMENT_BYTES_MIN: u64 = 16 * 1024;
const JOURNAL_SEGMENT_BYTES_MAX: u64 = 1 << 30;
/// Longest journal linger allowed, in microseconds: it adds to a quiet server's latency.
const JOURNAL_LINGER_US_CEILING: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr, $env:literal; )*) => {
        /// One layer of settings (flags + env, or the file); unset fields fall through.
        #[derive(Debug, Default, Clone, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct SettingsLayer {
            /// TOML file with any of these settings (snake_case keys).
            #[arg(long, env = "HOLDFAST_CONFIG")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
            /// Admin key: needed for /v1/skus*, may act for any channel on /v1/holds*.
            #[arg(long, env = "HOLDFAST_ADMIN_KEY", hide_env_values = true)]
            pub admin_key: Option<String>,
            /// Channel key as NAME=KEY; repeat the flag, or HOLDFAST_CHANNEL_KEYS="web=k1,app=k2".
            #[arg(long = "channel-key", env = "HOLDFAST_CHANNEL_KEYS", value_delimiter = ',', hide_env_values = true)]
            #[serde(default)]
            pub channel_keys: Vec<String>,
            /// SKUs that get their own metric series (units, per channel); repeat the flag,
            /// or HOLDFAST_METRICS_WATCH_SKUS="A,B". At most metrics_sku_series_max.
            #[arg(long = "metrics-watch-sku", env = "HOLDFAST_METRICS_WATCH_SKUS", value_delimiter = ',')]
            #[serde(default)]
            pub metrics_watch_skus: Vec<String>,
            /// Address ranges webhooks may be delivered to besides public addresses, as
            /// CIDR (e.g. 10.0.0.0/8); repeat the flag, or HOLDFAST_WEBHOOK_ALLOW_CIDRS.
            /// Private, loopback and link-local addresses are refused without one.
            #[arg(long = "webhook-allow-cidr", env = "HOLDFAST_WEBHOOK_ALLOW_CIDRS", value_delimiter = ',')]
            #[serde(default)]
            pub webhook_allow_cidrs: Vec<String>,
            /// Written once the server is ready: JSON `{"listen", "port", "pid"}` with the
            /// bound address (a temp file renamed into place), so a supervisor or a test
            /// learns the port without reading the log.
            #[arg(long, env = "HOLDFAST_READY_FILE")]
            pub ready_file: Option<PathBuf>,
            $( $(#[$doc])* #[arg(long, env = $env)] pub $field: Option<$ty>, )*
        }

        /// Resolved settings; every field has its value.
        #[derive(Debug, Clone)]
        pub struct Settings {
            pub admin_key: Option<String>,
            /// Channel name → key.
            pub channel_keys: BTreeMap<Channel, String>,
            /// SKUs with their own metric series.
            pub metrics_watch_skus: Vec<SkuId>,
            /// Ranges webhooks may reach besides public addresses.
            pub webhook_allow_cidrs: Vec<ipnet::IpNet>,
            /// Where to say that the server is ready, and on which port.
            pub ready_file: Option<PathBuf>,
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl SettingsLayer {
            fn over(self, lower: SettingsLayer) -> SettingsLayer {
                SettingsLayer {
                    config: self.config.or(lower.config),
                    admin_key: self.admin_key.or(lower.admin_key),
                    channel_keys: if self.channel_keys.is_empty() { lower.channel_keys } else { self.channel_keys },
                    metrics_watch_skus: if self.metrics_watch_skus.is_empty() { lower.metrics_watch_skus } else { self.metrics_watch_skus },
                    webhook_allow_cidrs: if self.webhook_allow_cidrs.is_empty() { lower.webhook_allow_cidrs } else { self.webhook_allow_cidrs },
                    ready_file: self.ready_file.or(lower.ready_file),
                    $( $field: self.$field.or(lower.$field), )*
                }
            }

            fn resolve(self) -> Result<Settings, ConfigError> {
                Ok(Settings {
                    channel_keys: parse_channel_keys(&self.channel_keys)?,
                    webhook_allow_cidrs: self
                        .webhook_allow_cidrs
                        .iter()
                        .map(|raw| raw.trim().parse().map_err(|e| invalid("webhook_allow_cidrs", format!("{raw:?} is not a CIDR range: {e}"))))
                        .collect::<Result<_, _>>()?,
                    metrics_watch_skus: self
                        .metrics_watch_skus
                        .iter()
                        .map(|raw| SkuId::parse(raw.trim()).map_err(|e| invalid("metrics_watch_skus", e.to_string())))
                        .collect::<Result<_, _>>()?,
                    admin_key: self.admin_key,
                    ready_file: self.ready_file,
                    $( $field: self.$field.unwrap_or_else(|| $default), )*
                })
            }
        }
    };
}

settings! {
    /// Address to listen on.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)), "HOLDFAST_LISTEN";
    /// Data directory: the journal's segment files and sled's snapshots (created if missing).
    data_dir: PathBuf = PathBuf::from("./holdfast-data"), "HOLDFAST_DATA_DIR";
    /// What a 2xx waits for: fsync (survives power loss), flush (survives kill -9), none.
    durability: Durability = Durability::Fsync, "HOLDFAST_DURABILITY";
    /// Hold time-to-live when a request names none, in seconds.
    hold_ttl_s: u64 = HOLD_TTL_S_DEFAULT, "HOLDFAST_HOLD_TTL_S";
    /// Longest TTL a request may ask for, in seconds.
    hold_ttl_s_max: u64 = HOLD_TTL_S_MAX_DEFAULT, "HOLDFAST_HOLD_TTL_S_MAX";
    /// How long an ended hold (released, expired, fulfilled) still answers GET, in seconds.
    hold_retention_s: u64 = 24 * 3600, "HOLDFAST_HOLD_RETENTION_S";
    /// Most holds kept in memory, live and ended; past it the oldest ended ones are forgotten.
    holds_max: usize = 2_000_000, "HOLDFAST_HOLDS_MAX";
    /// Most lines in one hold.
    hold_lines_max: usize = 50, "HOLDFAST_HOLD_LINES_MAX";
    /// Most open hold lines (held or committed) on one SKU.
    sku_hold_lines_max: usize = 1_000_000, "HOLDFAST_SKU_HOLD_LINES_MAX";
    /// Most SKUs the server tracks.
    sku_count_max: usize = 100_000, "HOLDFAST_SKU_COUNT_MAX";
    /// Mailbox capacity of each SKU actor.
    sku_mailbox_max: usize = 4096, "HOLDFAST_SKU_MAILBOX_MAX";
    /// How long a request waits for a SKU actor before a 503, in milliseconds.
    actor_send_timeout_ms: u64 = 5_000, "HOLDFAST_ACTOR_SEND_TIMEOUT_MS";
    /// Largest request body, in bytes.
    body_bytes_max: usize = 64 * 1024, "HOLDFAST_BODY_BYTES_MAX";
    /// Largest stock feed body, in bytes.
    feed_bytes_max: usize = 64 * 1024 * 1024, "HOLDFAST_FEED_BYTES_MAX";
    /// Most lines in one stock feed.
    feed_lines_max: u64 = 1_000_000, "HOLDFAST_FEED_LINES_MAX";
    /// Most sales kept.
    sales_max: usize = 10_000, "HOLDFAST_SALES_MAX";
    /// Most stock locations (warehouses and stores, besides `default`); also bounds the
    /// per-location metric series.
    locations_max: usize = 200, "HOLDFAST_LOCATIONS_MAX";
    /// Most channels with a routing policy of their own.
    channel_policies_max: usize = 100, "HOLDFAST_CHANNEL_POLICIES_MAX";
    /// Most SKUs in one availability query.
    availability_skus_max: usize = 100, "HOLDFAST_AVAILABILITY_SKUS_MAX";
    /// Most idempotency keys remembered.
    idempotency_keys_max: usize = 2_000_000, "HOLDFAST_IDEMPOTENCY_KEYS_MAX";
    /// How long an idempotency key's answer is remembered, in seconds.
    idempotency_ttl_s: u64 = 24 * 3600, "HOLDFAST_IDEMPOTENCY_TTL_S";
    /// Period of the expiry sweep, in milliseconds (expiry lands within one period).
    expiry_tick_ms: u64 = 200, "HOLDFAST_EXPIRY_TICK_MS";
    /// Most events written under one journal flush.
    journal_batch_events_max: usize = 4096, "HOLDFAST_JOURNAL_BATCH_EVENTS_MAX";
    /// Most bytes written under one journal flush.
    journal_batch_bytes_max: usize = 1024 * 1024, "HOLDFAST_JOURNAL_BATCH_BYTES_MAX";
    /// A journal batch with fewer events than this waits up to journal_linger_us for more
    /// (1: never waits; durability none never waits).
    journal_batch_events_min: usize = 8, "HOLDFAST_JOURNAL_BATCH_EVENTS_MIN";
    /// Longest wait for a small journal batch to fill, in microseconds (0: never waits).
    journal_linger_us: u64 = 40, "HOLDFAST_JOURNAL_LINGER_US";
    /// Size of a journal segment file, in bytes: created zero-filled, so a sync commits
    /// data only; segments a snapshot covers are deleted.
    journal_segment_bytes: u64 = 64 * 1024 * 1024, "HOLDFAST_JOURNAL_SEGMENT_BYTES";
    /// Memory sled may keep as the snapshot store's page cache, in MiB. Snapshots are
    /// written and read back once at start, so little is gained by caching them; sled's
    /// own default (1 GiB) grew with every hold written (heaptrack: 142 bytes a hold at
    /// 200k holds).
    snapshot_cache_mb: u64 = 64, "HOLDFAST_SNAPSHOT_CACHE_MB";
    /// Events waiting for the journal past which new holds get 503.
    journal_backlog_max: usize = 100_000, "HOLDFAST_JOURNAL_BACKLOG_MAX";
    /// Write a snapshot (and trim the journal) after this many journal events ... Each
    /// snapshot rewrites every hold that changed since the last one, so a longer interval
    /// folds a hold's placement and payment into one write; the price is replay at start
    /// (measured: 151k events replayed and restored in 2.1 s on the 2-core CI machine).
    snapshot_every_events: u64 = 250_000, "HOLDFAST_SNAPSHOT_EVERY_EVENTS";
    /// ... or after this many seconds with any new event, in seconds.
    snapshot_every_s: u64 = 60, "HOLDFAST_SNAPSHOT_EVERY_S";
    /// Hold requests served at once; more wait in the admission queue.
    admission_in_flight_max: usize = 256, "HOLDFAST_ADMISSION_IN_FLIGHT_MAX";
    /// Hold requests that may wait for admission; past it 429 at once.
    admission_queue_max: usize = 10_000, "HOLDFAST_ADMISSION_QUEUE_MAX";
    /// Longest wait for admission before 429 with a ticket, in milliseconds.
    admission_wait_max_ms: u64 = 2_000, "HOLDFAST_ADMISSION_WAIT_MAX_MS";
    /// Admissions per second (token bucket); 0 for no rate limit.
    admission_rate_per_s: u64 = 0, "HOLDFAST_ADMISSION_RATE_PER_S";
    /// How long a queue ticket keeps its place, in seconds.
    admission_ticket_ttl_s: u64 = 600, "HOLDFAST_ADMISSION_TICKET_TTL_S";
    /// Most SKUs with their own metric series (bounds label cardinality).
    metrics_sku_series_max: usize = 50, "HOLDFAST_METRICS_SKU_SERIES_MAX";
    /// HTTP worker threads (0: one per core).
    http_workers: usize = 0, "HOLDFAST_HTTP_WORKERS";
    /// Most open HTTP connections per worker.
    http_connections_max: usize = 25_000, "HOLDFAST_HTTP_CONNECTIONS_MAX";
    /// Availability events kept in memory for the stream and the change feed; a reader
    /// further behind is told to reset (re-read availability).
    stock_events_kept_max: usize = 100_000, "HOLDFAST_STOCK_EVENTS_KEPT_MAX";
    /// Most availability stream (SSE) subscribers at once; past it 503.
    stream_subscribers_max: usize = 1_000, "HOLDFAST_STREAM_SUBSCRIBERS_MAX";
    /// Seconds between keep-alive comments on an idle availability stream.
    stream_keepalive_s: u64 = 15, "HOLDFAST_STREAM_KEEPALIVE_S";
    /// Most events one change feed page (or one stream write) carries.
    changes_limit_max: usize = 1_000, "HOLDFAST_CHANGES_LIMIT_MAX";
    /// Most webhook endpoints.
    webhooks_max: usize = 100, "HOLDFAST_WEBHOOKS_MAX";
    /// How long a webhook delivery may take before it counts as failed, in milliseconds.
    webhook_timeout_ms: u64 = 5_000, "HOLDFAST_WEBHOOK_TIMEOUT_MS";
    /// Deliveries to one endpoint at once (at most one per SKU and event type).
    webhook_in_flight_max: usize = 4, "HOLDFAST_WEBHOOK_IN_FLIGHT_MAX";
    /// Longest wait between attempts of a failing delivery, in seconds (backoff doubles
    /// from 1 s, with jitter; an endpoint's Retry-After is honoured up to this).
    webhook_retry_max_s: u64 = 300, "HOLDFAST_WEBHOOK_RETRY_MAX_S";
    /// Failed attempts in a row after which an endpoint is disabled (with the reason).
    webhook_failures_max: u32 = 100, "HOLDFAST_WEBHOOK_FAILURES_MAX";
    /// Least time between two deliveries of one SKU and event type to one endpoint, in
    /// milliseconds; the states in between are coalesced into the latest.
    webhook_coalesce_ms: u64 = 100, "HOLDFAST_WEBHOOK_COALESCE_MS";
}

fn parse_channel_keys(raw: &[String]) -> Result<BTreeMap<Channel, String>, ConfigError> {
    let mut keys = BTreeMap::new();
    for entry in raw.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (name, key) = entry
            .split_once('=')
            .ok_or_else(|| invalid("channel_keys", "each entry must be NAME=KEY"))?;
        let channel =
            Channel::parse(name.trim()).map_err(|err| invalid("channel_keys", err.to_string()))?;
        if key.is_empty() {
            return Err(invalid(
                "channel_keys",
                format!("channel {channel} has an empty key"),
            ));
        }
        if keys.insert(channel.clone(), key.to_owned()).is_some() {
            return Err(invalid(
                "channel_keys",
                format!("channel {channel} is named twice"),
            ));
        }
    }
    Ok(keys)
}

impl SettingsLayer {
    /// Settings from these flags/env over the file they name (if any) over defaults.
    pub fn load(self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => SettingsLayer::default(),
        };
        let settings = self.over(file).resolve()?;
        settings.validate()?;
        Ok(settings)
    }
}

fn read_file(path: &Path) -> Result<SettingsLayer, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| invalid("config", format!("cannot read {}: {err}", path.display())))?;
    toml::from_str(&text).map_err(|err| invalid("config", format!("{}: {err}", path.display())))
}

impl Settings {
    /// Defaults with a given data dir: the starting point for tests and tools.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let layer = SettingsLayer {
            data_dir: Some(data_dir.to_path_buf()),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..SettingsLayer::default()
        };
        layer
            .resolve()
            .unwrap_or_else(|_| unreachable!("no channel keys to parse"))
    }

    pub fn admission_limits(&self) -> crate::admission::AdmissionLimits {
        crate::admission::AdmissionLimits {
            in_flight_max: self.admission_in_flight_max,
            queue_max: self.admission_queue_max,
            wait_max_ms: self.admission_wait_max_ms,
            rate_per_s: self.admission_rate_per_s,
        }
    }

    pub fn is_open(&self) -> bool {
        self.admin_key.is_none() && self.channel_keys.is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hold_ttl_s_max == 0 || self.hold_ttl_s_max > HOLD_TTL_S_CEILING {
            return Err(invalid(
                "hold_ttl_s_max",
                format!("must be 1..={HOLD_TTL_S_CEILING}"),
            ));
        }
        if self.hold_ttl_s == 0 || self.hold_ttl_s > self.hold_ttl_s_max {
            return Err(invalid(
                "hold_ttl_s",
                format!("must be 1..={} (hold_ttl_s_max)", self.hold_ttl_s_max),
            ));
        }
        let positive = [
            ("holds_max", self.holds_max),
            ("hold_lines_max", self.hold_lines_max),
            ("sku_hold_lines_max", self.sku_hold_lines_max),
            ("sku_count_max", self.sku_count_max),
            ("sku_mailbox_max", self.sku_mailbox_max),
            ("body_bytes_max", self.body_bytes_max),
            ("availability_skus_max", self.availability_skus_max),
            ("idempotency_keys_max", self.idempotency_keys_max),
            ("journal_batch_events_max", self.journal_batch_events_max),
            ("journal_batch_bytes_max", self.journal_batch_bytes_max),
            ("journal_batch_events_min", self.journal_batch_events_min),
            ("journal_backlog_max", self.journal_backlog_max),
            ("http_connections_max", self.http_connections_max),
            ("stock_events_kept_max", self.stock_events_kept_max),
            ("stream_subscribers_max", self.stream_subscribers_max),
            ("changes_limit_max", self.changes_limit_max),
            ("webhooks_max", self.webhooks_max),
            ("webhook_in_flight_max", self.webhook_in_flight_max),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(name, "must be at least 1"));
        }
        // A segment must hold a few batches; past 1 GiB a roll's zero-fill takes seconds.
        if !(JOURNAL_SEGMENT_BYTES_MIN..=JOURNAL_SEGMENT_BYTES_MAX)
            .contains(&self.journal_segment_bytes)
        {
            return Err(invalid(
                "journal_segment_bytes",
                format!("must be {JOURNAL_SEGMENT_BYTES_MIN}..={JOURNAL_SEGMENT_BYTES_MAX}"),
            ));
        }
        // Each line of a hold has its own availability cursor within the hold's event.
        let lines_max = crate::broadcast::hub::MARKS_PER_EVENT_MAX;
        if u64::try_from(self.hold_lines_max).map_or(true, |lines| lines > lines_max) {
            return Err(invalid(
                "hold_lines_max",
                format!("must be 1..={lines_max}"),
            ));
        }
        if !(1..=60_000).contains(&self.webhook_timeout_ms) {
            return Err(invalid("webhook_timeout_ms", "must be 1..=60000"));
        }
        if !(1..=86_400).contains(&self.webhook_retry_max_s) {
            return Err(invalid("webhook_retry_max_s", "must be 1..=86400"));
        }
        if self.webhook_coalesce_ms > 60_000 {
            return Err(invalid("webhook_coalesce_ms", "must be 0..=60000"));
        }
        if self.webhook_failures_max == 0 {
            return Err(invalid("webhook_failures_max", "must be at least 1"));
        }
        if !(1..=3_600).contains(&self.stream_keepalive_s) {
            return Err(invalid("stream_keepalive_s", "must be 1..=3600"));
        }
        if !(1..=4_096).contains(&self.snapshot_cache_mb) {
            return Err(invalid("snapshot_cache_mb", "must be 1..=4096"));
        }
        if !(10..=1_000).contains(&self.expiry_tick_ms) {
            return Err(invalid(
                "expiry_tick_ms",
                "must be 10..=1000 so expiry lands within a second",
            ));
        }
        if self.idempotency_ttl_s > self.hold_retention_s {
            return Err(invalid(
                "idempotency_ttl_s",
                "must not exceed hold_retention_s: a placed hold's key answers with the hold",
            ));
        }
        self.admission_limits()
            .validate()
            .map_err(|reason| invalid("admission", reason))?;
        if self.metrics_watch_skus.len() > self.metrics_sku_series_max {
            return Err(invalid(
                "metrics_watch_skus",
                format!(
                    "{} SKUs, more than metrics_sku_series_max ({})",
                    self.metrics_watch_skus.len(),
                    self.metrics_sku_series_max
                ),
            ));
        }
        if self.snapshot_every_events == 0 {
            return Err(invalid("snapshot_every_events", "must be at least 1"));
        }
        if self.snapshot_every_s == 0 {
            return Err(invalid("snapshot_every_s", "must be at least 1"));
        }
        if self.journal_linger_us > JOURNAL_LINGER_US_CEILING {
            return Err(invalid(
                "journal_linger_us",
                format!(
                    "must be 0..={JOURNAL_LINGER_US_CEILING}: every small batch waits this long"
                ),
            ));
        }
        if self.actor_send_timeout_ms == 0 {
            return Err(invalid("actor_send_timeout_ms", "must be at least 1"));
        }
        if self.is_open() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "listen",
                format!(
                    "{} is not a loopback address; without --admin-key or --channel-key \
                     holdfast runs open and only listens on loopback",
                    self.listen
                ),
            ));
        }
        if let Some(admin) = &self.admin_key {
            if admin.is_empty() {
                return Err(invalid("admin_key", "must not be empty"));
            }
            if self.channel_keys.values().any(|key| key == admin) {
                return Err(invalid("admin_key", "must differ from every channel key"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if !self.channel_keys.values().all(|key| seen.insert(key)) {
            return Err(invalid("channel_keys", "two channels share a key"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(toml_text: &str) -> SettingsLayer {
        toml::from_str(toml_text).expect("test TOML parses")
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file = layer("hold_ttl_s = 60\nhold_ttl_s_max = 120\nlisten = \"127.0.0.1:9000\"");
        let flags = SettingsLayer {
            hold_ttl_s: Some(30),
            ..SettingsLayer::default()
        };
        let settings = flags.over(file).resolve().expect("resolves");
        assert_eq!(settings.hold_ttl_s, 30);
        assert_eq!(settings.hold_ttl_s_max, 120);
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.holds_max, 2_000_000);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<SettingsLayer>("hold_ttl = 5").is_err());
    }

    #[test]
    fn bad_settings_name_themselves() {
        let cases: [(&str, &str); 7] = [
            ("hold_ttl_s = 0", "hold_ttl_s"),
            ("hold_ttl_s = 4000", "hold_ttl_s"),
            ("holds_max = 0", "holds_max"),
            ("journal_batch_events_min = 0", "journal_batch_events_min"),
            ("journal_linger_us = 10001", "journal_linger_us"),
            ("listen = \"0.0.0.0:8080\"", "listen"),
            ("channel_keys = [\"web\"]", "channel_keys"),
        ];
        for (text, setting) in cases {
            let err = layer(text).resolve().and_then(|s| s.validate().map(|()| s));
            assert_eq!(err.map(drop).map_err(|e| e.setting), Err(setting), "{text}");
        }
    }

    #[test]
    fn keys_allow_any_listen_address() {
        let settings =
            layer("listen = \"0.0.0.0:8080\"\nchannel_keys = [\"web=k1\"]\nadmin_key = \"a\"")
                .resolve()
                .expect("resolves");
        assert!(settings.validate().is_ok());
        assert_eq!(settings.channel_keys.len(), 1);
    }
}
