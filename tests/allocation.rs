//! Channel quotas and the shared pool, enforced inside the SKU actor: exact under
//! contention, refused when they would oversell, rebalanced by a documented rule, and
//! the same after a restart.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::{assert_conserved, created, spawn, Process, TestServer};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn allocate(server: &TestServer, sku: &str, channels: Value) -> common::Answer {
    let body = json!({ "channels": channels }).to_string();
    server
        .send(
            Method::PUT,
            &format!("/v1/skus/{sku}/allocation"),
            Some(&body),
            &[],
        )
        .await
}

async fn hold_for(
    server: &TestServer,
    key: String,
    sku: &str,
    channel: &str,
    quantity: u64,
) -> common::Answer {
    let body = json!({"lines": [{"sku": sku, "quantity": quantity}], "customer_id": key, "channel": channel});
    server.hold_raw(&key, &body.to_string()).await
}

/// web 60 units, marketplace 30%, 100 on hand: 120 concurrent marketplace holds get
/// exactly 40 (its 30 plus the pool's 10), then web gets exactly its 60, then 409.
#[actix_web::test]
async fn quotas_and_the_pool_are_exact_under_contention() {
    let server = spawn().await;
    server.put_sku("Q", 100, 0).await;
    let allocated = allocate(
        &server,
        "Q",
        json!({"web": {"units": 60}, "marketplace": {"percent": 30}}),
    )
    .await;
    assert_eq!(allocated.status, StatusCode::OK, "{}", allocated.body);
    assert_eq!(allocated.body["channels"]["marketplace"]["allocated"], 30);
    assert_eq!(allocated.body["channels"]["pool"]["allocated"], 10);
    let market =
        join_all((0..120).map(|i| hold_for(&server, format!("m{i}"), "Q", "marketplace", 1))).await;
    assert_eq!(created(&market), 40);
    let view = server.sku("Q").await;
    assert_eq!(view["channels"]["marketplace"]["held"], 40);
    assert_eq!(view["channels"]["pool"]["available"], 0);
    assert_eq!(view["channels"]["web"]["available"], 60);
    let web = join_all((0..120).map(|i| hold_for(&server, format!("w{i}"), "Q", "web", 1))).await;
    assert_eq!(created(&web), 60);
    let refused = hold_for(&server, "late".into(), "Q", "app", 1).await;
    assert_eq!(
        (refused.status, refused.problem_type()),
        (StatusCode::CONFLICT, "/problems/sold-out")
    );
    let view = server.sku("Q").await;
    assert_eq!(
        (view["held"].as_u64(), view["available"].as_u64()),
        (Some(100), Some(0))
    );
    assert_conserved(&view);
}

/// Allocations past sellable stock, and quotas below what a channel already holds, are
/// refused with the numbers; percent rounds down, the remainder staying in the pool.
#[actix_web::test]
async fn over_allocation_and_quota_below_held_are_refused() {
    let server = spawn().await;
    server.put_sku("O", 100, 0).await;
    let over = allocate(
        &server,
        "O",
        json!({"web": {"units": 80}, "marketplace": {"percent": 30}}),
    )
    .await;
    assert_eq!(
        (over.status, over.problem_type()),
        (StatusCode::CONFLICT, "/problems/conflict")
    );
    let detail = over.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("110") && detail.contains("10 more") && detail.contains("100 sellable"),
        "{detail}"
    );
    assert_eq!(
        server.sku("O").await["channels"]["pool"]["allocated"],
        100,
        "nothing changed"
    );

    allocate(&server, "O", json!({"web": {"units": 10}})).await;
    assert_eq!(
        hold_for(&server, "w".into(), "O", "web", 6).await.status,
        StatusCode::CREATED
    );
    let below = allocate(&server, "O", json!({"web": {"units": 5}})).await;
    assert_eq!(below.status, StatusCode::CONFLICT);
    assert!(
        below.body["detail"]
            .as_str()
            .unwrap()
            .contains("6 units held or committed"),
        "{}",
        below.body
    );
    let bad = allocate(&server, "O", json!({"web": {"percent": 101}})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let pool = allocate(&server, "O", json!({"pool": {"units": 1}})).await;
    assert_eq!(
        pool.status,
        StatusCode::BAD_REQUEST,
        "\"pool\" is not a channel"
    );

    server.put_sku("R", 10, 0).await;
    let rounded = allocate(
        &server,
        "R",
        json!({"web": {"percent": 33}, "app": {"percent": 33}}),
    )
    .await;
    assert_eq!(
        rounded.body["channels"]["web"]["allocated"], 3,
        "33% of 10 rounds down to 3"
    );
    assert_eq!(
        rounded.body["channels"]["pool"]["allocated"], 4,
        "the remainder stays in the pool"
    );
}

/// release_unsold returns every channel's unsold quota to the pool; by_velocity shares
/// the unsold quota out in proportion to recent sales (rounding down, leftovers to the pool).
#[actix_web::test]
async fn rebalance_moves_exactly_what_the_rule_says() {
    let server = spawn().await;
    let rebalance = |sku: &'static str, policy: &'static str| {
        let server = &server;
        async move {
            let body = json!({ "policy": policy }).to_string();
            server
                .send(
                    Method::POST,
                    &format!("/v1/skus/{sku}/allocation/rebalance"),
                    Some(&body),
                    &[],
                )
                .await
        }
    };
    server.put_sku("V", 100, 0).await;
    allocate(
        &server,
        "V",
        json!({"web": {"units": 40}, "app": {"units": 40}}),
    )
    .await;
    for i in 0..20 {
        hold_for(&server, format!("vw{i}"), "V", "web", 1).await;
    }
    hold_for(&server, "va".into(), "V", "app", 5).await;
    let moved = rebalance("V", "by_velocity").await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    // unsold 20 + 35 = 55; web sold 20 of 25 → 20 + 55*20/25 = 64; app 5 + 55*5/25 = 16.
    assert_eq!(moved.body["channels"]["web"]["allocated"], 64);
    assert_eq!(moved.body["channels"]["app"]["allocated"], 16);
    assert_eq!(moved.body["channels"]["pool"]["allocated"], 20);
    let released = rebalance("V", "release_unsold").await;
    assert_eq!(released.body["channels"]["web"]["allocated"], 20);
    assert_eq!(released.body["channels"]["app"]["allocated"], 5);
    assert_eq!(released.body["channels"]["pool"]["allocated"], 75);
    assert_eq!(released.body["channels"]["pool"]["available"], 75);
    let unknown = rebalance("V", "magic").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

/// Stock that falls below the quotas empties the pool first and reports the shortfall;
/// nothing is oversold.
#[actix_web::test]
async fn stock_below_the_quotas_shrinks_the_pool_and_never_oversells() {
    let server = spawn().await;
    server.put_sku("S", 100, 0).await;
    allocate(
        &server,
        "S",
        json!({"web": {"units": 60}, "app": {"units": 30}}),
    )
    .await;
    let damaged = json!({"delta": -20, "reason": "damaged"}).to_string();
    let view = server
        .send(Method::POST, "/v1/skus/S/adjustments", Some(&damaged), &[])
        .await
        .body;
    assert_eq!(view["channels"]["pool"]["allocated"], 0);
    assert_eq!(view["allocation_shortfall"], 10);
    let web = join_all((0..70).map(|i| hold_for(&server, format!("s{i}"), "S", "web", 1))).await;
    let app = join_all((0..40).map(|i| hold_for(&server, format!("t{i}"), "S", "app", 1))).await;
    assert_eq!(
        created(&web) + created(&app),
        80,
        "never more than the 80 sellable"
    );
    assert_eq!(created(&web), 60);
    assert_conserved(&server.sku("S").await);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("holdfast_allocation_conflicts_total"),
        "the conflict is counted"
    );
}

/// Quotas, the pool and which units came from where survive a restart exactly, and a
/// released pooled unit goes back to the pool, not the quota.
#[actix_web::test]
async fn allocations_and_splits_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (process, server) = Process::start_server(&data, &[]);
    server.put_sku("P", 20, 0).await;
    allocate(&server, "P", json!({"web": {"units": 5}})).await;
    let pooled = hold_for(&server, "p1".into(), "P", "web", 8).await;
    assert_eq!(pooled.status, StatusCode::CREATED);
    let before = server.sku("P").await;
    assert_eq!(
        before["channels"]["pool"]["held"], 3,
        "5 from the quota, 3 from the pool"
    );
    assert_eq!(process.terminate().code(), Some(0));
    let (_process, server) = Process::start_server(&data, &[]);
    assert_eq!(server.sku("P").await, before);
    server
        .act(pooled.body["hold_id"].as_str().unwrap(), "release")
        .await;
    let after = server.sku("P").await;
    assert_eq!(after["channels"]["pool"]["available"], 15);
    assert_eq!(after["channels"]["web"]["available"], 20);
}

/// A paid line keeps its split: its pooled units count as the pool's committed units,
/// live and after a restart.
#[actix_web::test]
async fn paid_pooled_units_count_as_pool_committed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (process, server) = Process::start_server(&data, &[]);
    server.put_sku("PC", 10, 0).await;
    allocate(&server, "PC", json!({"web": {"units": 2}})).await;
    let hold = hold_for(&server, "pc".into(), "PC", "web", 5).await;
    server
        .act(hold.body["hold_id"].as_str().unwrap(), "confirm")
        .await;
    let view = server.sku("PC").await;
    let pool = &view["channels"]["pool"];
    assert_eq!(
        (pool["held"].as_u64(), pool["committed"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(pool["available"], 5, "8 in the pool, 3 of them sold");
    assert_eq!(view["channels"]["web"]["committed"], 5);
    assert_eq!(process.terminate().code(), Some(0));
    let (_process, server) = Process::start_server(&data, &[]);
    assert_eq!(server.sku("PC").await, view);
}
