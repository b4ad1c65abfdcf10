//! The scenario: every knob is a flag, an environment variable where it is a secret, and a
//! key in an optional TOML file (`--scenario file.toml`); flags beat the file.

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
    /// Channel key the shoppers use.
    #[arg(long, env = "LOADTEST_CHANNEL_KEY", hide_env_values = true)]
    pub channel_key: Option<String>,
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
        Ok(())
    }

    pub fn sku_name(&self, index: u64) -> String {
        format!("{}-{index:05}", self.run_id)
    }
}
