//! The dashboard and alerts against real tools: promtool validates the Prometheus config
//! and the alert rules and runs their unit tests; a real Prometheus scrapes a real holdfast
//! through a short flash sale, and every dashboard panel's query must return data, so the
//! dashboard cannot drift from the metrics the server serves. Needs Debian's `prometheus`
//! package (`.ci/run` installs it).

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::spawn_with;
use futures_util::future::join_all;
use serde_json::{json, Value};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn tool(name: &str) -> Command {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is not installed: apt-get install prometheus (it brings promtool)"
    );
    Command::new(name)
}

fn promtool(args: &[&str]) {
    let output = tool("promtool")
        .args(args)
        .current_dir(repo("grafana"))
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
}

/// The scrape config and the alert rules are valid, and each alert fires and resolves on
/// synthetic series.
#[test]
fn promtool_accepts_the_config_and_every_alert_fires_and_resolves() {
    promtool(&["check", "config", "prometheus.yml"]);
    promtool(&["check", "rules", "alerts/holdfast.rules.yml"]);
    promtool(&["test", "rules", "alerts/holdfast.rules.test.yml"]);
}

fn dashboard() -> Value {
    let text =
        std::fs::read_to_string(repo("grafana/dashboards/holdfast-flash-sale.json")).unwrap();
    serde_json::from_str(&text).expect("dashboard is JSON")
}

fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr").to_owned();
            queries.push((panel["title"].as_str().unwrap_or_default().to_owned(), expr));
        }
    }
    queries
}

/// The dashboard is of the Grafana 10 era, picks its datasource through a variable, and
/// every panel says its unit.
#[test]
fn the_dashboard_uses_a_datasource_variable_and_units() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variable = &dashboard["templating"]["list"][0];
    assert_eq!(
        (variable["name"].as_str(), variable["type"].as_str()),
        (Some("datasource"), Some("datasource"))
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{} has no unit",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}");
        }
    }
}

struct Prometheus {
    _child: common::Helper,
    base: String,
    _dir: tempfile::TempDir,
}

fn start_prometheus(target_port: u16) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let rules = repo("grafana/alerts/holdfast.rules.yml");
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{rules:?}]\n\
         scrape_configs:\n  - job_name: holdfast\n    static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = common::free_port();
    let child = tool("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        _child: common::Helper(child),
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn query(client: &reqwest::Client, prometheus: &Prometheus, promql: &str) -> Vec<Value> {
    let answer: Value = client
        .get(format!("{}/api/v1/query", prometheus.base))
        .query(&[("query", promql)])
        .send()
        .await
        .expect("prometheus answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A short flash sale scraped by a real Prometheus: every panel's query returns data and
/// the alert rules load and evaluate without error.
#[actix_web::test]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus() {
    let server = spawn_with(|s| {
        s.metrics_watch_skus = vec![
            holdfast::domain::SkuId::parse("OBS-HOT").unwrap(),
            holdfast::domain::SkuId::parse("OBS-COLD").unwrap(),
        ];
        s.admission_in_flight_max = 2;
        s.admission_queue_max = 200;
        s.admission_wait_max_ms = 5_000;
        s.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let prometheus = start_prometheus(port);
    let client = reqwest::Client::new();
    server.put_sku("OBS-HOT", 60, 0).await;
    server.put_sku("OBS-COLD", 1_000, 0).await;
    // The broadcast panels: a webhook receiver that takes everything, and a subscriber.
    let receiver = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(actix_web::HttpResponse::Ok))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let hook = format!("http://127.0.0.1:{}/hook", receiver.addrs()[0].port());
    actix_web::rt::spawn(receiver.run());
    let body = json!({"url": hook, "events": ["availability.changed"]}).to_string();
    let registered = server
        .send(reqwest::Method::PUT, "/v1/webhooks/obs", Some(&body), &[])
        .await;
    assert_eq!(registered.status, reqwest::StatusCode::CREATED);
    let _subscriber = client
        .get(server.url("/v1/availability/stream"))
        .send()
        .await
        .unwrap();
    let server = &server;
    for round in 0..6 {
        let holds = join_all((0..30).map(|i| {
            let sku = if i % 3 == 0 { "OBS-COLD" } else { "OBS-HOT" };
            let body = json!({"lines": [{"sku": sku, "quantity": 1}], "customer_id": "c", "ttl_seconds": 1});
            let key = format!("obs-{round}-{i}");
            async move { server.hold_raw(&key, &body.to_string()).await }
        }))
        .await;
        for (i, hold) in holds.iter().enumerate() {
            let Some(id) = hold.body["hold_id"].as_str() else {
                continue;
            };
            match i % 4 {
                0 | 1 => {
                    server.act(id, "confirm").await;
                    if i % 8 == 0 {
                        server.act(id, "fulfil").await;
                    }
                }
                2 => {
                    server.act(id, "release").await;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let started = Instant::now();
    while query(
        &client,
        &prometheus,
        "count_over_time(holdfast_ready[1m]) >= 6",
    )
    .await
    .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "prometheus did not scrape holdfast"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut empty = Vec::new();
    for (title, expr) in panel_queries(&dashboard()) {
        if query(&client, &prometheus, &expr).await.is_empty() {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    let rules: Value = client
        .get(format!("{}/api/v1/rules", prometheus.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules: Vec<&Value> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(rules.len(), 11);
    for rule in rules {
        assert_ne!(
            rule["health"], "err",
            "{}: {}",
            rule["name"], rule["lastError"]
        );
    }
    let left = server.sku("OBS-HOT").await["available"].as_i64().unwrap();
    if left > 0 {
        let body = json!({"lines": [{"sku": "OBS-HOT", "quantity": left}], "customer_id": "last", "ttl_seconds": 600});
        assert_eq!(
            server.hold_raw("obs-last", &body.to_string()).await.status,
            201
        );
    }
    let started = Instant::now();
    loop {
        let firing = query(
            &client,
            &prometheus,
            "ALERTS{alertname=\"HoldfastSoldOut\",alertstate=\"firing\"}",
        )
        .await;
        if firing
            .iter()
            .any(|alert| alert["metric"]["sku"] == "OBS-HOT")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the sold-out alert did not fire: {firing:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
