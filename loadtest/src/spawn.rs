//! `--spawn`: start the holdfast binary that sits next to the harness on a temp data dir
//! and a free port, wait until it is ready, stop it gracefully at the end.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Error, Scenario};

pub struct Spawned {
    pub base: String,
    child: Child,
    _data_dir: tempfile::TempDir,
}

/// The holdfast binary: the one named, else the one next to the harness.
pub fn holdfast_bin(named: Option<&std::path::Path>) -> Result<PathBuf, Error> {
    if let Some(path) = named {
        return Ok(path.to_owned());
    }
    let next_to_us = std::env::current_exe()?.with_file_name("holdfast");
    if next_to_us.exists() {
        return Ok(next_to_us);
    }
    Err(format!(
        "no holdfast binary at {}; build it first (cargo build --release -p holdfast) or pass --holdfast-bin",
        next_to_us.display()
    )
    .into())
}

/// Starts `holdfast serve` on `data_dir` and a free loopback port with `args`, and waits
/// until it logs that it serves (it is ready then). Returns the child and its port.
pub async fn start_holdfast(
    bin: &std::path::Path,
    data_dir: &std::path::Path,
    args: &[String],
) -> Result<(Child, u16), Error> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("holdfast stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let port = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| "holdfast did not start within 30 s")??
            .ok_or("holdfast exited before serving")?;
        if line.contains("Serving.") {
            if let Some(port) = line
                .split("port=")
                .nth(1)
                .and_then(|p| p.split_whitespace().next())
            {
                break port.parse::<u16>()?;
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("holdfast did not start within 30 s".into());
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, port))
}

/// Sends a signal to a child by pid (`kill -SIG pid`).
pub async fn signal(child: &Child, signal: &str) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await;
    }
}

impl Spawned {
    pub async fn start(scenario: &Scenario) -> Result<Self, Error> {
        let data_dir = tempfile::tempdir()?;
        let bin = holdfast_bin(scenario.holdfast_bin.as_deref())?;
        let data = data_dir.path().join("data");
        let (child, port) = start_holdfast(&bin, &data, &scenario.server_args).await?;
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _data_dir: data_dir,
        })
    }

    /// SIGTERM and wait, so the server drains and flushes as in production.
    pub async fn stop(mut self) {
        signal(&self.child, "-TERM").await;
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}
