//! The scenario: every knob is a flag, an environment variable where it is a secret, and a
//! key in an optional TOML file (`--scenario file.toml`); flags beat the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Flags as given (unset ones fall through to the file, then to defaults).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioArgs {
    /// Drive an existing server at this URL instead of spawning one.
    #[arg(long)]
    pub target: Option<String>,
    /// Start the holdfast binary next to this one on a temp data dir and free port (default
    /// when --target is not given).
    #[arg(long)]
    #[serde(default)]
    pub spawn: bool,
    /// holdfast binary for --spawn (default: next to the harness executable).
    #[arg(long, env = "HOLDFAST_BIN")]
    pub holdfast_bin: Option<PathBuf>,
    /// Extra arguments for the spawned server, e.g. "--durability none".
    #[arg(long, allow_hyphen_values = true)]
    pub server_args: Option<String>,
    /// Admin key of the target (for seeding stock and the audit).
    #[arg(long, env = "HOLDFAST_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Channel key the shoppers use (one channel; see --channels for several).
    #[arg(long, env = "LOADTEST_CHANNEL_KEY", hide_env_values = true)]
    pub channel_key: Option<String>,
    /// Channel quotas set on every SKU before the sale, e.g. "web=40%,app=30%,store=50"
    /// (percent of the stock, or units); the rest is the shared pool.
    #[arg(long)]
    pub allocation: Option<String>,
    /// Channels the shoppers come from, with their share of the traffic, e.g.
    /// "web=6,app=3,marketplace=1" (default: the --allocation channels, evenly).
    #[arg(long)]
    pub channels: Option<String>,
    /// A key per shopper channel, e.g. "web=k1,app=k2". A channel without one shops with
    /// the admin key, naming its channel (or with none against an open server).
    #[arg(long, env = "LOADTEST_CHANNEL_KEYS", hide_env_values = true)]
    pub channel_keys: Option<String>,
    /// Length of the load phase, seconds.
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// SKUs seeded for the sale.
    #[arg(long)]
    pub skus: Option<u64>,
    /// Units of each SKU.
    #[arg(long)]
    pub stock: Option<u64>,
    /// Virtual customers in total (the run also ends when they are all served).
    #[arg(long)]
    pub customers: Option<u64>,
    /// Closed loop: customers served at once.
    #[arg(long)]
    pub concurrency: Option<u64>,
    /// Open loop: customers arriving per second (0: closed loop).
    #[arg(long)]
    pub arrival_rate_per_s: Option<u64>,
    /// Zipf exponent of SKU popularity (0: uniform; 1.1: a few hot SKUs).
    #[arg(long)]
    pub zipf_s: Option<f64>,
    /// Most lines in a cart (carts have 1 to this many distinct SKUs).
    #[arg(long)]
    pub cart_lines_max: Option<u64>,
    /// Share of held carts that pay (confirm).
    #[arg(long)]
    pub pay_ratio: Option<f64>,
    /// Share of held carts that cancel (release); the rest abandon and expire.
    #[arg(long)]
    pub cancel_ratio: Option<f64>,
    /// Share of customers who read availability before checkout.
    #[arg(long)]
    pub read_ratio: Option<f64>,
    /// TTL the shoppers ask for, seconds (short, so abandoned holds expire in the run).
    #[arg(long)]
    pub hold_ttl_s: Option<u64>,
    /// Retries of a 429, honouring Retry-After and the queue ticket.
    #[arg(long)]
    pub retries_max: Option<u64>,
    /// Report file (JSON).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The resolved scenario, as recorded in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub target: Option<String>,
    #[serde(skip)]
    pub holdfast_bin: Option<PathBuf>,
    pub server_args: Vec<String>,
    #[serde(skip)]
    pub admin_key: Option<String>,
    #[serde(skip)]
    pub channel_key: Option<String>,
    /// Quotas per channel, set on every SKU; empty: all stock in the pool.
    pub allocation: Vec<(String, Quota)>,
    /// Shopper channels and their traffic weights; empty: one channel, the key's own.
    pub channels: Vec<(String, u64)>,
    #[serde(skip)]
    pub channel_keys: BTreeMap<String, String>,
    pub duration_s: u64,
    pub skus: u64,
    pub stock: u64,
    pub customers: u64,
    pub concurrency: u64,
    pub arrival_rate_per_s: u64,
    pub zipf_s: f64,
    pub cart_lines_max: u64,
    pub pay_ratio: f64,
    pub cancel_ratio: f64,
    pub read_ratio: f64,
    pub hold_ttl_s: u64,
    pub retries_max: u64,
    #[serde(skip)]
    pub report: Option<PathBuf>,
    /// Prefix of this run's SKU names, so runs against one server do not mix.
    pub run_id: String,
}

impl ScenarioArgs {
    fn over(self, file: ScenarioArgs) -> ScenarioArgs {
        ScenarioArgs {
            target: self.target.or(file.target),
            spawn: self.spawn || file.spawn,
            holdfast_bin: self.holdfast_bin.or(file.holdfast_bin),
            server_args: self.server_args.or(file.server_args),
            admin_key: self.admin_key.or(file.admin_key),
            channel_key: self.channel_key.or(file.channel_key),
            allocation: self.allocation.or(file.allocation),
            channels: self.channels.or(file.channels),
            channel_keys: self.channel_keys.or(file.channel_keys),
            duration_s: self.duration_s.or(file.duration_s),
            skus: self.skus.or(file.skus),
            stock: self.stock.or(file.stock),
            customers: self.customers.or(file.customers),
            concurrency: self.concurrency.or(file.concurrency),
            arrival_rate_per_s: self.arrival_rate_per_s.or(file.arrival_rate_per_s),
            zipf_s: self.zipf_s.or(file.zipf_s),
            cart_lines_max: self.cart_lines_max.or(file.cart_lines_max),
            pay_ratio: self.pay_ratio.or(file.pay_ratio),
            cancel_ratio: self.cancel_ratio.or(file.cancel_ratio),
            read_ratio: self.read_ratio.or(file.read_ratio),
            hold_ttl_s: self.hold_ttl_s.or(file.hold_ttl_s),
            retries_max: self.retries_max.or(file.retries_max),
            report: self.report.or(file.report),
        }
    }

    /// These flags over the scenario file (if any) over defaults, validated.
    pub fn resolve(self, file: Option<&std::path::Path>) -> Result<Scenario, String> {
        let file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => ScenarioArgs::default(),
        };
        let a = self.over(file);
        if a.spawn && a.target.is_some() {
            return Err("--spawn and --target exclude each other".into());
        }
        let allocation = pairs("allocation", a.allocation.as_deref(), Quota::parse)?;
        let channels = match a.channels.as_deref() {
            Some(raw) => pairs("channels", Some(raw), weight)?,
            None => allocation.iter().map(|(c, _)| (c.clone(), 1)).collect(),
        };
        let channel_keys = pairs("channel_keys", a.channel_keys.as_deref(), |key| {
            Ok(key.to_owned())
        })?
        .into_iter()
        .collect();
        let scenario = Scenario {
            target: a.target,
            holdfast_bin: a.holdfast_bin,
            server_args: a
                .server_args
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            admin_key: a.admin_key,
            channel_key: a.channel_key,
            allocation,
            channels,
            channel_keys,
            duration_s: a.duration_s.unwrap_or(30),
            skus: a.skus.unwrap_or(10),
            stock: a.stock.unwrap_or(1_000),
            customers: a.customers.unwrap_or(20_000),
            concurrency: a.concurrency.unwrap_or(256),
            arrival_rate_per_s: a.arrival_rate_per_s.unwrap_or(0),
            zipf_s: a.zipf_s.unwrap_or(1.1),
            cart_lines_max: a.cart_lines_max.unwrap_or(3),
            pay_ratio: a.pay_ratio.unwrap_or(0.6),
            cancel_ratio: a.cancel_ratio.unwrap_or(0.2),
            read_ratio: a.read_ratio.unwrap_or(0.3),
            hold_ttl_s: a.hold_ttl_s.unwrap_or(3),
            retries_max: a.retries_max.unwrap_or(5),
            report: a.report,
            run_id: format!("lt{:08x}", rand::random::<u32>()),
        };
        scenario.validate()?;
        Ok(scenario)
    }
}

impl Scenario {
    fn validate(&self) -> Result<(), String> {
        let ratio = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1"))
            }
        };
        ratio("pay_ratio", self.pay_ratio)?;
        ratio("cancel_ratio", self.cancel_ratio)?;
        ratio("read_ratio", self.read_ratio)?;
        if self.pay_ratio + self.cancel_ratio > 1.0 {
            return Err("pay_ratio + cancel_ratio must be at most 1".into());
        }
        if self.skus == 0 || self.skus > 100_000 {
            return Err("skus must be 1..=100000".into());
        }
        if self.cart_lines_max == 0 || self.cart_lines_max > self.skus.min(50) {
            return Err("cart_lines_max must be 1..=min(skus, 50)".into());
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err("concurrency must be 1..=10000".into());
        }
        if self.duration_s == 0 || self.hold_ttl_s == 0 {
            return Err("duration_s and hold_ttl_s must be at least 1".into());
        }
        if !(0.0..=5.0).contains(&self.zipf_s) {
            return Err("zipf_s must be 0..=5".into());
        }
        let percent: u64 = self
            .allocation
            .iter()
            .filter_map(|(_, quota)| match quota {
                Quota::Percent(p) => Some(*p),
                Quota::Units(_) => None,
            })
            .sum();
        if percent > 100 {
            return Err(format!("allocation: {percent}% in all, more than 100%"));
        }
        if self.channel_key.is_some() && !self.channels.is_empty() {
            return Err("--channel-key is for one channel; with --channels or --allocation give --channel-keys".into());
        }
        Ok(())
    }

    pub fn sku_name(&self, index: u64) -> String {
        format!("{}-{index:05}", self.run_id)
    }
}

/// A channel's quota as the allocation API takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    Units(u64),
    Percent(u64),
}

impl Quota {
    fn parse(raw: &str) -> Result<Self, String> {
        let number = |digits: &str| {
            digits
                .parse::<u64>()
                .map_err(|_| format!("{raw:?} is not a whole number of units or percent"))
        };
        match raw.strip_suffix('%') {
            Some(digits) => match number(digits)? {
                p @ 0..=100 => Ok(Self::Percent(p)),
                p => Err(format!("{p}% is more than 100%")),
            },
            None => number(raw).map(Self::Units),
        }
    }
}

fn weight(raw: &str) -> Result<u64, String> {
    match raw.parse::<u64>() {
        Ok(w) if (1..=1_000_000).contains(&w) => Ok(w),
        _ => Err(format!("{raw:?} is not a traffic weight (1 to 1000000)")),
    }
}

/// Channel names shoppers and quotas may use; longer lists are a typo, not a sale.
const CHANNELS_MAX: usize = 32;

/// Parses "name=value,name=value" with distinct, plausible channel names.
fn pairs<T>(
    what: &str,
    raw: Option<&str>,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<(String, T)>, String> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, T)> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once('=')
            .ok_or_else(|| format!("{what}: {entry:?} is not NAME=VALUE"))?;
        let name = name.trim();
        let plausible = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plausible || name == "pool" {
            return Err(format!("{what}: {name:?} is not a channel name"));
        }
        if out.iter().any(|(seen, _)| seen == name) {
            return Err(format!("{what}: channel {name} is named twice"));
        }
        let parsed = value(rest.trim()).map_err(|err| format!("{what}: {name}: {err}"))?;
        out.push((name.to_owned(), parsed));
    }
    if out.len() > CHANNELS_MAX {
        return Err(format!("{what}: more than {CHANNELS_MAX} channels"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: ScenarioArgs) -> Result<Scenario, String> {
        args.resolve(None)
    }

    #[test]
    fn quotas_and_channels_parse_and_default_to_the_allocated_channels() {
        let scenario = resolve(ScenarioArgs {
            allocation: Some("web=40%, app=25".into()),
            channel_keys: Some("web=k1".into()),
            ..ScenarioArgs::default()
        })
        .expect("valid");
        assert_eq!(
            scenario.allocation,
            [
                ("web".to_owned(), Quota::Percent(40)),
                ("app".to_owned(), Quota::Units(25))
            ]
        );
        assert_eq!(
            scenario.channels,
            [("web".to_owned(), 1), ("app".to_owned(), 1)]
        );
        assert_eq!(
            scenario.channel_keys.get("web").map(String::as_str),
            Some("k1")
        );

        let mixed = resolve(ScenarioArgs {
            allocation: Some("web=40%".into()),
            channels: Some("web=3,store=1".into()),
            ..ScenarioArgs::default()
        })
        .expect("valid");
        assert_eq!(
            mixed.channels,
            [("web".to_owned(), 3), ("store".to_owned(), 1)]
        );

        let single = resolve(ScenarioArgs::default()).expect("valid");
        assert!(single.allocation.is_empty() && single.channels.is_empty());
    }

    #[test]
    fn the_bundled_flash_sale_scenario_resolves() {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/flash-sale.toml");
        let scenario = ScenarioArgs::default()
            .resolve(Some(&file))
            .expect("valid file");
        assert_eq!(scenario.arrival_rate_per_s, 4_000);
        assert_eq!(scenario.allocation.len(), 2);
        assert_eq!(scenario.channels.len(), 3);
    }

    #[test]
    fn bad_channel_settings_are_refused_with_the_reason() {
        let cases = [
            (Some("web=60%,app=50%"), None, "more than 100%"),
            (Some("web=101%"), None, "more than 100%"),
            (Some("web"), None, "not NAME=VALUE"),
            (Some("web=ten"), None, "not a whole number"),
            (Some("web=-5"), None, "not a whole number"),
            (Some("pool=10"), None, "not a channel name"),
            (Some("w b=10"), None, "not a channel name"),
            (Some("web=1,web=2"), None, "named twice"),
            (None, Some("web=0"), "not a traffic weight"),
            (None, Some("=3"), "not a channel name"),
        ];
        for (allocation, channels, why) in cases {
            let err = resolve(ScenarioArgs {
                allocation: allocation.map(str::to_owned),
                channels: channels.map(str::to_owned),
                ..ScenarioArgs::default()
            })
            .expect_err("refused");
            assert!(err.contains(why), "{allocation:?} {channels:?}: {err}");
        }
        let err = resolve(ScenarioArgs {
            channel_key: Some("k".into()),
            channels: Some("web=1,app=1".into()),
            ..ScenarioArgs::default()
        })
        .expect_err("one key for several channels");
        assert!(err.contains("--channel-keys"), "{err}");
    }
}
