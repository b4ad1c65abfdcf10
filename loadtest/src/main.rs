use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
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
    if let Some(path) = &report_path {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(err) = std::fs::write(path, json) {
            eprintln!("loadtest: writing {}: {err}", path.display());
        }
    }
    if let Some(old) = &cli.compare {
        let compared = std::fs::read_to_string(old)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .and_then(|old| loadtest::report::print_comparison(&report, &old));
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
