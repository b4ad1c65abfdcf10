//! The bundled load harness, run briefly against the real binary: a flash sale with
//! Zipf-skewed carts, payments, cancellations and abandoned holds passes every audit
//! check, so does one with channel quotas and shoppers from several channels, and the
//! audit does catch a server that holds or commits more than it was told.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

use std::path::PathBuf;

use loadtest::scenario::ScenarioArgs;
use loadtest::Scenario;

fn scenario(duration_s: u64) -> Scenario {
    let args = ScenarioArgs {
        holdfast_bin: Some(PathBuf::from(env!("CARGO_BIN_EXE_holdfast"))),
        duration_s: Some(duration_s),
        skus: Some(8),
        stock: Some(150),
        customers: Some(3_000),
        concurrency: Some(32),
        hold_ttl_s: Some(1),
        ..ScenarioArgs::default()
    };
    args.resolve(None).expect("valid scenario")
}

/// A short flash sale: sold out, paid, cancelled and abandoned carts, and a clean audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_flash_sale_passes_the_audit() {
    let report = loadtest::run(scenario(3), false)
        .await
        .expect("the run completes");
    for check in &report.invariants.checks {
        assert!(check.ok, "{}: {}", check.name, check.detail);
    }
    assert_eq!(report.invariants.checks.len(), 7);
    for outcome in ["held", "sold_out", "confirmed", "released", "abandoned"] {
        assert!(
            report.outcomes[outcome] > 0,
            "no {outcome} outcome: {:?}",
            report.outcomes
        );
    }
    assert_eq!(report.outcomes["errors"], 0);
    assert_eq!(report.outcomes["expired"], report.outcomes["abandoned"]);
    assert!(report.ops["hold"].latency_ms.p99 > 0.0);
    let server = report
        .server_hold_latency_ms
        .as_ref()
        .expect("the server's own hold latency is read from its histogram");
    assert!(server.p50_at_most > 0.0 && server.p50_at_most <= server.p99_at_most);
    assert!(server.p99_at_most <= server.max_at_most);
    let flushes = report
        .server_journal_flush_ms
        .as_ref()
        .expect("the journal's flush times are read from its histogram");
    assert!(flushes.p50_at_most > 0.0 && flushes.p999_at_most <= flushes.max_at_most);
    let placed = report
        .server_metrics
        .get("holdfast_hold_outcomes_total{outcome=\"held\"}");
    assert_eq!(
        placed.copied(),
        Some(report.outcomes["held"] as f64),
        "server and harness agree"
    );
}

/// Commitments and holds the harness never made are caught by the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_fails_when_the_server_holds_more_than_it_was_told() {
    let scenario = scenario(1);
    let server = loadtest::spawn::Spawned::start(&scenario)
        .await
        .expect("spawns");
    let client = loadtest::client::Client::new(&server.base, &scenario).unwrap();
    let skus = client.seed(&scenario).await.unwrap();
    let outcome = loadtest::driver::drive(&client, &scenario, &skus, false).await;
    intrude(&server.base, None, &skus[7], "intruder-1", true).await;
    intrude(&server.base, None, &skus[7], "intruder-2", false).await;
    let checks = loadtest::audit::audit(&client, &scenario, &skus, &outcome).await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, ["committed_equals_confirmed", "no_leaked_holds"]);
    server.stop().await;
}

/// Quotas for web (50%) and app (20 units), the rest a pool that store shops from alone;
/// the server has keys, web and app shop with their own, store with the admin key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_with_channel_quotas_passes_the_audit_and_catches_a_channel_over_its_confirms() {
    let scenario = ScenarioArgs {
        holdfast_bin: Some(PathBuf::from(env!("CARGO_BIN_EXE_holdfast"))),
        server_args: Some(
            "--admin-key lt-admin --channel-key web=lt-web,app=lt-app,store=lt-store".into(),
        ),
        admin_key: Some("lt-admin".into()),
        allocation: Some("web=50%,app=20".into()),
        channels: Some("web=5,app=3,store=2".into()),
        channel_keys: Some("web=lt-web,app=lt-app".into()),
        duration_s: Some(2),
        skus: Some(4),
        stock: Some(100),
        customers: Some(2_000),
        concurrency: Some(32),
        hold_ttl_s: Some(1),
        ..ScenarioArgs::default()
    }
    .resolve(None)
    .expect("valid scenario");
    let server = loadtest::spawn::Spawned::start(&scenario)
        .await
        .expect("spawns");
    let client = loadtest::client::Client::new(&server.base, &scenario).unwrap();
    let skus = client.seed(&scenario).await.expect("seeded with quotas");
    let outcome = loadtest::driver::drive(&client, &scenario, &skus, false).await;
    let checks = loadtest::audit::audit(&client, &scenario, &skus, &outcome).await;
    for check in &checks {
        assert!(check.ok, "{}: {}", check.name, check.detail);
    }
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert!(
        names.contains(&"channel_quotas") && names.contains(&"channel_committed_equals_confirmed")
    );
    let mut sold_by = std::collections::BTreeMap::new();
    for sku in &skus {
        let view = client.sku(sku).await.expect("sku view");
        let channels = &view["channels"];
        assert_eq!(channels["web"]["allocated"], 50, "{view}");
        assert_eq!(channels["app"]["allocated"], 20, "{view}");
        assert_eq!(channels["pool"]["allocated"], 30, "{view}");
        for channel in ["web", "app", "store"] {
            *sold_by.entry(channel).or_insert(0) +=
                channels[channel]["committed"].as_u64().unwrap_or(0);
        }
    }
    for (channel, units) in &sold_by {
        assert!(*units > 0, "{channel} sold nothing: {sold_by:?}");
    }
    // store has no quota: all it sold came from the pool. Refusals show stock ran out.
    let report = loadtest::report::Report::new(&scenario, &outcome, checks, "", "");
    let report = serde_json::to_value(&report).expect("report serializes");
    assert!(
        report["outcomes"]["sold_out"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(report["outcomes"]["errors"], 0, "{report}");
    // Each shopper counted once, under its own channel: the channels add up to the totals.
    let by_channel = report["outcomes_by_channel"]
        .as_object()
        .unwrap_or_else(|| panic!("no outcomes per channel: {report}"));
    let names: Vec<&str> = by_channel.keys().map(String::as_str).collect();
    assert_eq!(names, ["app", "store", "web"]);
    for (name, total) in report["outcomes"].as_object().expect("outcomes") {
        let summed: u64 = by_channel.values().filter_map(|c| c[name].as_u64()).sum();
        assert_eq!(Some(summed), total.as_u64(), "{name}: {report}");
    }
    for (channel, counts) in by_channel {
        assert!(counts["held"].as_u64() > Some(0), "{channel}: {report}");
    }

    // A confirmed hold the harness never made, on app's key: caught per SKU and per channel.
    // The run may leave app no unit on any SKU (units left in web's quota are web's), so
    // one SKU is restocked first: quotas stay as allocated and the new units go to the
    // pool, which app draws from.
    let restocked = reqwest::Client::new()
        .put(format!("{}/v1/skus/{}", server.base, skus[0]))
        .bearer_auth("lt-admin")
        .json(&serde_json::json!({"on_hand": 200}))
        .send()
        .await
        .expect("restock");
    assert!(restocked.status().is_success(), "{restocked:?}");
    intrude(&server.base, Some("lt-app"), &skus[0], "intruder-app", true).await;
    let checks = loadtest::audit::audit(&client, &scenario, &skus, &outcome).await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(
        failed,
        [
            "committed_equals_confirmed",
            "channel_committed_equals_confirmed"
        ]
    );
    server.stop().await;
}

/// A hold of one unit of `sku` the harness knows nothing about, confirmed if `confirm`;
/// `key` is the channel key (None: an open server).
async fn intrude(base: &str, key: Option<&str>, sku: &str, idempotency_key: &str, confirm: bool) {
    let http = reqwest::Client::new();
    let authorized = |request: reqwest::RequestBuilder| match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let body = serde_json::json!({"lines": [{"sku": sku, "quantity": 1}], "customer_id": "intruder", "ttl_seconds": 600});
    let hold: serde_json::Value = authorized(http.post(format!("{base}/v1/holds")))
        .header("Idempotency-Key", idempotency_key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hold["hold_id"]
        .as_str()
        .unwrap_or_else(|| panic!("held: {hold}"));
    if confirm {
        let confirmed = authorized(http.post(format!("{base}/v1/holds/{id}/confirm")))
            .send()
            .await
            .unwrap();
        assert!(confirmed.status().is_success());
    }
}

/// `--fill-holds`, small: the holds are placed, snapshots are written and sized, and both
/// restarts come back with every hold (the figures themselves are the harness's to
/// report, not this test's to time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fill_reports_memory_snapshots_and_both_restarts() {
    use loadtest::fill::{Fill, FillArgs};
    let report = loadtest::fill::run(FillArgs {
        fill: Fill::Holds(3_000),
        concurrency: 16,
        holdfast_bin: Some(PathBuf::from(env!("CARGO_BIN_EXE_holdfast"))),
        server_args: vec!["--snapshot-every-events".into(), "1000".into()],
        seed: 7,
        settle: std::time::Duration::from_secs(2),
    })
    .await
    .expect("the fill completes");
    assert_eq!(report.items, 3_000);
    let memory = &report.memory;
    assert!(memory.empty_mb > 0.0 && memory.peak_fill_mb >= memory.empty_mb);
    assert!(memory.settled_mb > 0.0);
    assert!(report.snapshots.written >= 1, "{:?}", report.snapshots);
    assert!(report.snapshots.snapshots_dir_mb > 0.0);
    for restart in [&report.restart_after_kill9, &report.restart_after_sigterm] {
        assert_eq!(restart.items, 3_000, "{restart:?}");
        assert!(restart.ready_s > 0.0 && restart.peak_mb > 0.0);
    }
}
