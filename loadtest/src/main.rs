use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use loadtest::fill::{Fill, FillArgs, FillReport};
use loadtest::scenario::ScenarioArgs;

/// Flash-sale load harness: seeds SKUs, sends shoppers, audits the server at the end.
/// Exits 1 when an invariant check fails, 2 on bad arguments.
#[derive(Parser)]
#[command(name = "loadtest", version)]
struct Cli {
    #[command(flatten)]
    args: ScenarioArgs,
    /// Scenario file (TOML, the same keys as the flags in snake_case).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Earlier report to compare throughput and p99 against.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Instead of a sale: fill a spawned server with this many open holds (1 to 3 lines
    /// over 1,000 SKUs), then report its memory, snapshots and restart times.
    #[arg(long, conflicts_with_all = ["fill_skus", "target"])]
    fill_holds: Option<u64>,
    /// Instead of a sale: feed a spawned server this many SKUs, then report the same.
    #[arg(long, conflicts_with = "target")]
    fill_skus: Option<u64>,
    /// Seconds the filled server is left alone before its memory is read.
    #[arg(long, default_value_t = 10)]
    fill_settle_s: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let fill = match (cli.fill_holds, cli.fill_skus) {
        (Some(holds), _) => Some(Fill::Holds(holds)),
        (None, Some(skus)) => Some(Fill::Skus(skus)),
        (None, None) => None,
    };
    if let Some(fill) = fill {
        return run_fill(fill, &cli).await;
    }
    let scenario = match cli.args.resolve(cli.scenario.as_deref()) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("loadtest: {err}");
            return ExitCode::from(2);
        }
    };
    let report_path = scenario.report.clone();
    let report = match loadtest::run(scenario, !cli.quiet).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("loadtest: {err}");
            return ExitCode::from(2);
        }
    };
    report.print_table();
    write_report(report_path.as_deref(), &report);
    if let Some(old) = &cli.compare {
        let compared =
            read_report(old).and_then(|old| loadtest::report::print_comparison(&report, &old));
        if let Err(err) = compared {
            eprintln!("loadtest: --compare {}: {err}", old.display());
        }
    }
    if report.invariants.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_fill(fill: Fill, cli: &Cli) -> ExitCode {
    let args = FillArgs {
        fill,
        concurrency: usize::try_from(cli.args.concurrency.unwrap_or(64)).unwrap_or(64),
        holdfast_bin: cli.args.holdfast_bin.clone(),
        server_args: cli
            .args
            .server_args
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        seed: 20_261_130,
        settle: std::time::Duration::from_secs(cli.fill_settle_s.max(2)),
    };
    let report = match loadtest::fill::run(args).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("loadtest: {err}");
            return ExitCode::FAILURE;
        }
    };
    report.print();
    write_report(cli.args.report.as_deref(), &report);
    if let Some(old) = &cli.compare {
        match read_report::<FillReport>(old) {
            Ok(earlier) => report.print_comparison(&earlier),
            Err(err) => eprintln!("loadtest: --compare {}: {err}", old.display()),
        }
    }
    ExitCode::SUCCESS
}

fn write_report(path: Option<&std::path::Path>, report: &impl serde::Serialize) {
    let Some(path) = path else { return };
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    if let Err(err) = std::fs::write(path, json) {
        eprintln!("loadtest: writing {}: {err}", path.display());
    }
}

fn read_report<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}
