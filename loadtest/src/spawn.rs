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

/// Longest a start (recovery included) may take.
const START_WAIT_MAX: Duration = Duration::from_secs(300);

/// The port in a `--ready-file`, once the server has written it.
#[derive(serde::Deserialize)]
struct Ready {
    port: u16,
}

/// Starts `holdfast serve` on `data_dir` and a free loopback port with `args`, and waits
/// for its `--ready-file` (written once it is ready) to learn the port. Returns the child
/// and its port. The log is drained, not read: a log line is not an API.
pub async fn start_holdfast(
    bin: &std::path::Path,
    data_dir: &std::path::Path,
    args: &[String],
) -> Result<(Child, u16), Error> {
    let ready_file = data_dir.with_extension("ready.json");
    // A restart on the same data dir must not read the last run's file.
    let _ = std::fs::remove_file(&ready_file);
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--ready-file")
        .arg(&ready_file)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("holdfast stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            let ready: Ready = serde_json::from_str(&text)?;
            return Ok((child, ready.port));
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("holdfast exited before it was ready: {status}").into());
        }
        if started.elapsed() > START_WAIT_MAX {
            return Err("holdfast was not ready within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
