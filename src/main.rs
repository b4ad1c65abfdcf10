use std::process::ExitCode;

// glibc malloc's per-thread arenas showed up as 5% of server CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use holdfast::{Application, SettingsLayer};

#[derive(Parser)]
#[command(name = "holdfast", version, about = "Flash-sale reservation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(SettingsLayer),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let Command::Serve(layer) = Cli::parse().command;
    let settings = match layer.load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("holdfast: {err}");
            return ExitCode::from(2);
        }
    };
    let served = actix_web::rt::System::new().block_on(async move {
        Application::build(settings)
            .await?
            .run_until_stopped()
            .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("holdfast: {err}");
            ExitCode::FAILURE
        }
    }
}
