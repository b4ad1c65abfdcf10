//! Invariant 6: every table has a configured maximum; past it the client gets a clear
//! answer, nothing changes, and the server keeps working.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::{assert_conserved, spawn_with};
use reqwest::{Method, StatusCode};

/// The SKU table is bounded; a new SKU past the maximum is refused with 409.
#[actix_web::test]
async fn the_sku_table_is_bounded() {
    let server = spawn_with(|s| s.sku_count_max = 2).await;
    server.put_sku("A", 1, 0).await;
    server.put_sku("B", 1, 0).await;
    let third = server
        .send(Method::PUT, "/v1/skus/C", Some(r#"{"on_hand": 1}"#), &[])
        .await;
    assert_eq!(
        (third.status, third.problem_type()),
        (StatusCode::CONFLICT, "/problems/conflict")
    );
    assert!(third.body["detail"].as_str().unwrap().contains("maximum"));
    server.put_sku("A", 5, 0).await;
    let missing = server.send(Method::GET, "/v1/skus/C", None, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// One SKU carries a bounded number of open hold lines; past it a hold gets 503 with
/// Retry-After and takes nothing; once a line ends there is room again.
#[actix_web::test]
async fn open_lines_per_sku_are_bounded() {
    let server = spawn_with(|s| s.sku_hold_lines_max = 2).await;
    server.put_sku("L", 10, 0).await;
    server.put_sku("M", 10, 0).await;
    let first = server.hold("l1", &[("L", 1)]).await;
    server.hold("l2", &[("L", 1)]).await;
    let full = server.hold("l3", &[("M", 1), ("L", 1)]).await;
    assert_eq!(
        (full.status, full.problem_type()),
        (StatusCode::SERVICE_UNAVAILABLE, "/problems/unavailable")
    );
    assert!(full.headers.contains_key("retry-after"));
    assert_eq!(
        server.sku("M").await["held"],
        0,
        "the cart took none of its lines"
    );
    assert_eq!(server.sku("L").await["held"], 2);
    server
        .act(first.body["hold_id"].as_str().unwrap(), "release")
        .await;
    assert_eq!(
        server.hold("l4", &[("L", 1)]).await.status,
        StatusCode::CREATED
    );
    assert_conserved(&server.sku("L").await);
}

/// The hold table is bounded: when it is full of live holds a new one gets 503 and takes
/// nothing; an ended hold is forgotten early to make room.
#[actix_web::test]
async fn the_hold_table_is_bounded_and_forgets_ended_holds_first() {
    let server = spawn_with(|s| s.holds_max = 2).await;
    server.put_sku("H", 10, 0).await;
    let first = server.hold("h1", &[("H", 1)]).await;
    server.hold("h2", &[("H", 1)]).await;
    let full = server.hold("h3", &[("H", 1)]).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server.sku("H").await["held"],
        2,
        "the refused hold took nothing"
    );
    let first_id = first.body["hold_id"].as_str().unwrap();
    server.act(first_id, "release").await;
    assert_eq!(
        server.hold("h4", &[("H", 1)]).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        server.get_hold(first_id).await.status,
        StatusCode::NOT_FOUND,
        "the ended hold made room"
    );
    assert_conserved(&server.sku("H").await);
}

/// The idempotency table is bounded; past it new keys get 503 and nothing is held.
#[actix_web::test]
async fn the_idempotency_table_is_bounded() {
    let server = spawn_with(|s| s.idempotency_keys_max = 1).await;
    server.put_sku("K", 10, 0).await;
    assert_eq!(
        server.hold("k1", &[("K", 1)]).await.status,
        StatusCode::CREATED
    );
    let full = server.hold("k2", &[("K", 1)]).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server.hold("k1", &[("K", 1)]).await.status,
        StatusCode::CREATED,
        "known keys still replay"
    );
    assert_eq!(server.sku("K").await["held"], 1);
}
