//! Test harness: starts the real `Application` on 127.0.0.1:0 with a temp data dir and
//! speaks HTTP to it.
#![allow(dead_code)]

use holdfast::clock::Clock;
use holdfast::{Application, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "admin-key-for-tests";
pub const WEB_KEY: &str = "web-key-for-tests";
pub const APP_KEY: &str = "app-key-for-tests";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    /// Bearer key sent by the helpers (None: no Authorization header).
    pub key: Option<String>,
    pub data_dir: TempDir,
}

/// A server in open mode (no keys) with default settings changed by `configure`.
pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestServer {
    spawn_with_clock(configure, Clock::system()).await
}

/// A manual clock reading the wall-clock time now: tests move it instead of sleeping.
pub fn manual_clock() -> Clock {
    Clock::manual(Clock::system().now_ms())
}

/// As [`spawn_with`], the server reading the time from `clock`.
pub async fn spawn_with_clock(configure: impl FnOnce(&mut Settings), clock: Clock) -> TestServer {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_data_dir(data_dir.path());
    settings.http_workers = 2;
    configure(&mut settings);
    let key = settings.admin_key.clone();
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("server builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped(std::future::pending()));
    TestServer {
        base,
        client: reqwest::Client::new(),
        key,
        data_dir,
    }
}

pub async fn spawn() -> TestServer {
    spawn_with(|_| {}).await
}

/// A server with an admin key and two channel keys (web, app).
pub async fn spawn_with_keys() -> TestServer {
    spawn_with(|s| {
        s.admin_key = Some(ADMIN_KEY.into());
        s.channel_keys.insert(
            holdfast::domain::Channel::parse("web").unwrap(),
            WEB_KEY.into(),
        );
        s.channel_keys.insert(
            holdfast::domain::Channel::parse("app").unwrap(),
            APP_KEY.into(),
        );
    })
    .await
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with this server's key (if any) and returns status, JSON and headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send_as(self.key.as_deref(), method, path, body, headers)
            .await
    }

    pub async fn send_as(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        // An event stream never ends: its body is read by the stream helpers, not here.
        let streaming = headers
            .get("content-type")
            .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
        let body = match streaming {
            true => Value::Null,
            false => {
                let bytes = response.bytes().await.expect("body is read");
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            }
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn put_sku(&self, sku: &str, on_hand: u64, safety_stock: u64) -> Answer {
        let body = json!({"on_hand": on_hand, "safety_stock": safety_stock}).to_string();
        let answer = self
            .send(Method::PUT, &format!("/v1/skus/{sku}"), Some(&body), &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "PUT sku: {}", answer.body);
        answer
    }

    pub async fn sku(&self, sku: &str) -> Value {
        let answer = self
            .send(Method::GET, &format!("/v1/skus/{sku}"), None, &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "GET sku: {}", answer.body);
        answer.body
    }

    /// `POST /v1/holds` with `lines` as (sku, quantity) and a given idempotency key.
    pub async fn hold(&self, key: &str, lines: &[(&str, i64)]) -> Answer {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, q)| json!({"sku": sku, "quantity": q}))
            .collect();
        let body = json!({"lines": lines, "customer_id": "c-1"}).to_string();
        self.hold_raw(key, &body).await
    }

    pub async fn hold_raw(&self, key: &str, body: &str) -> Answer {
        self.send(
            Method::POST,
            "/v1/holds",
            Some(body),
            &[("Idempotency-Key", key)],
        )
        .await
    }

    pub async fn act(&self, hold_id: &str, action: &str) -> Answer {
        self.send(
            Method::POST,
            &format!("/v1/holds/{hold_id}/{action}"),
            None,
            &[],
        )
        .await
    }

    pub async fn get_hold(&self, hold_id: &str) -> Answer {
        self.send(Method::GET, &format!("/v1/holds/{hold_id}"), None, &[])
            .await
    }
}

/// At every location, `held + committed + available == on_hand − safety_stock` (0 if
/// the buffer is larger) whenever nothing is oversold there; the SKU's figures are the
/// sums of its locations'.
pub fn assert_conserved(view: &Value) {
    let n = |of: &Value, field: &str| {
        of[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} in {view}"))
    };
    let locations = view["locations"]
        .as_object()
        .unwrap_or_else(|| panic!("locations in {view}"));
    let mut sellable = 0;
    for (name, at) in locations {
        let here = n(at, "on_hand").saturating_sub(n(at, "safety_stock"));
        assert!(
            n(at, "held") + n(at, "committed") <= here,
            "oversold at {name}: {view}"
        );
        assert_eq!(
            n(at, "held") + n(at, "committed") + n(at, "available"),
            here,
            "not conserved at {name}: {view}"
        );
        sellable += here;
    }
    for field in ["on_hand", "safety_stock", "held", "committed", "available"] {
        let sum: u64 = locations.values().map(|at| n(at, field)).sum();
        assert_eq!(
            sum,
            n(view, field),
            "{field} is not the locations' sum: {view}"
        );
    }
    assert_eq!(
        n(view, "held") + n(view, "committed") + n(view, "available"),
        sellable,
        "not conserved: {view}"
    );
}

impl TestServer {
    /// `hold` with owned arguments, for building many futures in a loop.
    pub async fn hold_owned(&self, key: String, lines: Vec<(&str, i64)>) -> Answer {
        self.hold(&key, &lines).await
    }
}

/// The real `holdfast` binary, started as a child process.
pub struct Process {
    pub child: std::process::Child,
    pub port: u16,
    pub base: String,
    /// Where the server said it was ready (next to its data dir).
    ready_file: std::path::PathBuf,
}

pub fn binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
}

impl Process {
    /// Starts `holdfast serve` on a free loopback port and waits for its `--ready-file`.
    pub fn start(data_dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Process {
        use std::io::BufRead;
        let ready_file = data_dir.with_extension("ready.json");
        let _ = std::fs::remove_file(&ready_file);
        let mut command = binary();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready_file)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("holdfast starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::BufReader::new(stdout).lines().for_each(drop));
        let started = std::time::Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                let ready: Value = serde_json::from_str(&text).expect("the ready file is JSON");
                break u16::try_from(ready["port"].as_u64().expect("port")).expect("a port");
            }
            if let Some(status) = child.try_wait().expect("child status") {
                panic!("holdfast exited before it was ready: {status}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "holdfast was not ready within 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        Process {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            ready_file,
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().expect("holdfast exits")
    }

    pub fn server(&self, key: Option<&str>) -> ProcessClient {
        ProcessClient {
            base: self.base.clone(),
            key: key.map(str::to_owned),
            client: reqwest::Client::new(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

/// HTTP helpers against a child process (same shape as `TestServer`'s).
pub struct ProcessClient {
    pub base: String,
    pub key: Option<String>,
    pub client: reqwest::Client,
}

impl ProcessClient {
    pub fn as_test_server(&self, data_dir: TempDir) -> TestServer {
        TestServer {
            base: self.base.clone(),
            client: self.client.clone(),
            key: self.key.clone(),
            data_dir,
        }
    }
}

impl TestServer {
    /// The server's Prometheus text page.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer");
        response.text().await.expect("metrics text")
    }
}

/// The value of one series (its exact text, labels included) on a Prometheus text page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

impl Process {
    /// Starts the binary on `data_dir` and returns it with HTTP helpers pointed at it.
    pub fn start_server(data_dir: &std::path::Path, extra: &[&str]) -> (Process, TestServer) {
        let process = Process::start(data_dir, extra, &[]);
        let server = process
            .server(None)
            .as_test_server(tempfile::tempdir().expect("temp dir"));
        (process, server)
    }
}

/// How many answers are 201 Created.
pub fn created(answers: &[Answer]) -> usize {
    answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count()
}

/// How many answers are problems of this type (`/problems/<name>`).
pub fn problems(answers: &[Answer], problem_type: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.problem_type() == problem_type)
        .count()
}

/// Appends `events` to the journal of a stopped server's data dir, after what it holds:
/// what a crash could have left behind, for the next start to recover from.
pub async fn append_to_journal(data: &std::path::Path, events: Vec<holdfast::store::Event>) {
    use holdfast::store::{recovery, Durability, Journal, JournalSettings};
    let snapshots = sled::open(data.join("snapshots")).expect("the snapshot store opens");
    let tree = snapshots.open_tree("snapshots").expect("the tree opens");
    let image = recovery::recover(&data.join("journal"), &tree).expect("recovers");
    let settings = JournalSettings {
        durability: Durability::Fsync,
        batch_events_max: 16,
        batch_bytes_max: 1 << 16,
        batch_events_min: 1,
        linger: std::time::Duration::ZERO,
        backlog_max: 16,
        dir: data.join("journal"),
        segment_bytes: 1 << 16,
    };
    let (journal, writer) = Journal::start(settings, image.seq + 1).expect("the journal starts");
    for event in events {
        journal.append(event);
    }
    journal.barrier().await.expect("durable");
    drop(journal);
    writer.join().expect("the writer ends");
}

impl TestServer {
    /// `PUT /v1/skus/{sku}` with a low-stock threshold.
    pub async fn set_stock(&self, sku: &str, on_hand: u64, low_stock_threshold: u64) {
        let body = json!({"on_hand": on_hand, "low_stock_threshold": low_stock_threshold});
        let answer = self
            .send(
                Method::PUT,
                &format!("/v1/skus/{sku}"),
                Some(&body.to_string()),
                &[],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "PUT sku: {}", answer.body);
    }
}

/// A free loopback port for a helper process (Prometheus, ChromeDriver).
#[allow(dead_code)] // not every test binary starts a helper
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A helper process, killed and reaped when dropped (also when its test panics).
#[allow(dead_code)]
pub struct Helper(pub std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
