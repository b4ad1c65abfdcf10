//! The bundled load harness, run briefly against the real binary: a flash sale with
//! Zipf-skewed carts, payments, cancellations and abandoned holds passes every audit
//! check, and the audit does catch a server that holds or commits more than it was told.

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
    assert_eq!(report.invariants.checks.len(), 6);
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
    let http = reqwest::Client::new();
    let body = serde_json::json!({"lines": [{"sku": skus[7], "quantity": 1}], "customer_id": "intruder", "ttl_seconds": 600});
    for key in ["intruder-1", "intruder-2"] {
        let hold: serde_json::Value = http
            .post(format!("{}/v1/holds", server.base))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if key == "intruder-1" {
            let id = hold["hold_id"].as_str().expect("held");
            http.post(format!("{}/v1/holds/{id}/confirm", server.base))
                .send()
                .await
                .unwrap();
        }
    }
    let checks = loadtest::audit::audit(&client, &scenario, &skus, &outcome).await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, ["committed_equals_confirmed", "no_leaked_holds"]);
    server.stop().await;
}
