//! `torture`: the crash torture suite against a holdfast binary (see `loadtest::torture`).
//! Exits 0 when every round's checks pass, 1 when one fails (its problems and the seed
//! are printed), 2 when the suite itself could not run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use loadtest::torture::{self, Options};

#[derive(Parser)]
#[command(name = "torture", version)]
struct Cli {
    /// The holdfast binary under test.
    #[arg(long, default_value = "target/release/holdfast")]
    holdfast_bin: PathBuf,
    /// Seed of every random choice (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 30)]
    rounds: u32,
    /// Every this many rounds a power cut (needs --lazyfs); 0 for none.
    #[arg(long, default_value_t = 3)]
    power_cut_every: u32,
    /// The LazyFS binary (built by loadtest/lazyfs/build.sh); "build" builds it into
    /// target/lazyfs first.
    #[arg(long)]
    lazyfs: Option<PathBuf>,
    /// --durability of the server under test.
    #[arg(long, default_value = "fsync")]
    durability: String,
    #[arg(long, default_value_t = 12)]
    shoppers: usize,
    /// Longest load before a round's stop, in milliseconds.
    #[arg(long, default_value_t = 1_500)]
    load_ms_max: u64,
    /// A restart must be ready within this many seconds.
    #[arg(long, default_value_t = 10)]
    ready_within_s: u64,
    /// Where the data dir and the mount go (default: a temporary dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(1))
    });
    let lazyfs = match cli.lazyfs {
        Some(path) if path.as_os_str() == "build" => {
            match torture::lazyfs::ensure_built(&PathBuf::from("target/lazyfs")) {
                Ok(bin) => Some(bin),
                Err(err) => {
                    eprintln!("torture: {err}");
                    return ExitCode::from(2);
                }
            }
        }
        other => other,
    };
    let options = Options {
        holdfast_bin: cli.holdfast_bin,
        seed,
        rounds: cli.rounds,
        power_cut_every: cli.power_cut_every,
        lazyfs,
        durability: cli.durability,
        shoppers: cli.shoppers,
        load_ms_max: cli.load_ms_max,
        ready_within_s: cli.ready_within_s,
        work_dir: cli.work_dir,
    };
    println!("torture: seed {seed}");
    let outcome = match torture::run(&options).await {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("torture: {err} (seed {seed})");
            return ExitCode::from(2);
        }
    };
    println!(
        "torture: {} rounds ({} kill -9, of them {} power cuts; {} graceful), {} acknowledged holds checked, slowest ready {} ms",
        outcome.rounds,
        outcome.kills,
        outcome.power_cuts,
        outcome.graceful,
        outcome.holds_acknowledged,
        outcome.slowest_ready_ms
    );
    if outcome.failures.is_empty() {
        println!("torture: every check passed (seed {seed})");
        ExitCode::SUCCESS
    } else {
        const SHOWN_MAX: usize = 20;
        for failure in outcome.failures.iter().take(SHOWN_MAX) {
            println!("FAILED {failure}");
        }
        if outcome.failures.len() > SHOWN_MAX {
            println!("... and {} more", outcome.failures.len() - SHOWN_MAX);
        }
        ExitCode::FAILURE
    }
}
