//! Holds over HTTP: races on the last units, all-or-nothing carts, the lifecycle, expiry
//! and idempotent retries.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::time::{Duration, Instant};

use common::{assert_conserved, spawn, spawn_with};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Invariant 1 under contention: 300 shoppers race for 100 units; exactly 100 win.
#[actix_web::test]
async fn three_hundred_concurrent_holds_on_a_hundred_units_take_exactly_a_hundred() {
    let server = spawn().await;
    server.put_sku("HOT", 105, 5).await;
    let keys: Vec<String> = (0..300).map(|i| format!("race-{i}")).collect();
    let answers = join_all(keys.iter().map(|key| server.hold(key, &[("HOT", 1)]))).await;
    let held = common::created(&answers);
    let sold_out = answers
        .iter()
        .filter(|a| a.status == StatusCode::CONFLICT && a.problem_type() == "/problems/sold-out")
        .count();
    assert_eq!((held, sold_out), (100, 200));
    let view = server.sku("HOT").await;
    assert_eq!(view["held"], 100);
    assert_eq!(view["available"], 0);
    assert_conserved(&view);
    let last = answers
        .iter()
        .find(|a| a.status == StatusCode::CONFLICT)
        .expect("a refusal");
    assert_eq!(last.body["sku"], "HOT");
    assert_eq!(last.body["available"], 0);
}

/// Invariant 5: carts racing with single-line holds never keep part of a cart.
#[actix_web::test]
async fn multi_line_carts_under_contention_never_take_part_of_a_cart() {
    let server = spawn().await;
    server.put_sku("A", 50, 0).await;
    server.put_sku("B", 30, 0).await;
    let carts = (0..80).map(|i| server.hold_owned(format!("cart-{i}"), vec![("A", 1), ("B", 1)]));
    let singles = (0..40).map(|i| server.hold_owned(format!("single-{i}"), vec![("A", 1)]));
    let (carts, singles) = tokio::join!(join_all(carts), join_all(singles));
    let carts_won = common::created(&carts) as u64;
    let singles_won = common::created(&singles) as u64;
    assert!(carts
        .iter()
        .chain(&singles)
        .all(|a| a.status == StatusCode::CREATED || a.status == StatusCode::CONFLICT));
    let a = server.sku("A").await;
    let b = server.sku("B").await;
    assert_eq!(
        b["held"], carts_won,
        "every won cart holds one B, lost carts none"
    );
    assert_eq!(
        a["held"],
        carts_won + singles_won,
        "A is held only by won carts and singles"
    );
    assert!(carts_won > 0, "some carts win");
    assert_conserved(&a);
    assert_conserved(&b);
    // A cart can lose while both SKUs still have a unit: another cart held the last B for
    // a moment and gave it back when its A was refused. What must hold is that nothing
    // stays taken: whatever is left of both can still be bought as a cart.
    let left = |view: &serde_json::Value| view["available"].as_u64().expect("available");
    if left(&a) > 0 && left(&b) > 0 {
        let late = server
            .hold_owned("late-cart".into(), vec![("A", 1), ("B", 1)])
            .await;
        assert_eq!(
            late.status,
            StatusCode::CREATED,
            "units left after the race: {a} {b}"
        );
    }
}

/// The lifecycle: repeated confirm is 200 with the same body; confirm after release is
/// 409; fulfil lowers on_hand and committed together; fulfil before confirm is 409.
#[actix_web::test]
async fn confirm_release_and_fulfil_follow_the_hold_state_machine() {
    let server = spawn().await;
    server.put_sku("S", 10, 0).await;
    let paid = server.hold("paid", &[("S", 2)]).await;
    let paid_id = paid.body["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(
        server.act(&paid_id, "fulfil").await.status,
        StatusCode::CONFLICT,
        "not paid yet"
    );
    let first = server.act(&paid_id, "confirm").await;
    let again = server.act(&paid_id, "confirm").await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(first.body, again.body);
    assert_eq!(first.body["status"], "confirmed");
    assert_eq!(
        server.act(&paid_id, "release").await.status,
        StatusCode::CONFLICT
    );
    let view = server.sku("S").await;
    assert_eq!(
        (view["held"].as_u64(), view["committed"].as_u64()),
        (Some(0), Some(2))
    );

    let fulfilled = server.act(&paid_id, "fulfil").await;
    assert_eq!(fulfilled.body["status"], "fulfilled");
    let view = server.sku("S").await;
    assert_eq!(
        (view["on_hand"].as_u64(), view["committed"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(view["available"], 8);
    assert_eq!(
        server.act(&paid_id, "fulfil").await.status,
        StatusCode::OK,
        "repeat is 200"
    );

    let dropped = server.hold("dropped", &[("S", 3)]).await;
    let dropped_id = dropped.body["hold_id"].as_str().unwrap().to_owned();
    let released = server.act(&dropped_id, "release").await;
    assert_eq!(released.body["status"], "released");
    assert_eq!(
        server.act(&dropped_id, "release").await.status,
        StatusCode::OK
    );
    let late = server.act(&dropped_id, "confirm").await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.problem_type(), "/problems/conflict");
    assert_eq!(late.body["hold_status"], "released");
    let view = server.sku("S").await;
    assert_eq!(view["available"], 8);
    assert_conserved(&view);
}

/// Expiry: a 1 s hold stays held until its deadline, then the sweep frees its units; it
/// reads `expired` and cannot be confirmed. The server's clock is moved, not waited for.
#[actix_web::test]
async fn a_one_second_hold_expires_at_its_deadline() {
    let clock = common::manual_clock();
    let server = common::spawn_with_clock(|s| s.expiry_tick_ms = 10, clock.clone()).await;
    server.put_sku("E", 5, 0).await;
    let body =
        json!({"lines": [{"sku": "E", "quantity": 5}], "customer_id": "c", "ttl_seconds": 1});
    let hold = server.hold_raw("short", &body.to_string()).await;
    assert_eq!(hold.status, StatusCode::CREATED);
    let id = hold.body["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(
        server.hold("blocked", &[("E", 1)]).await.status,
        StatusCode::CONFLICT
    );
    // A millisecond before the deadline, several sweeps (10 ms apart) leave it held.
    clock.advance(999);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(server.sku("E").await["held"], 5, "held until the deadline");
    assert_eq!(server.get_hold(&id).await.body["status"], "held");
    clock.advance(1);
    let started = Instant::now();
    loop {
        let view = server.sku("E").await;
        if view["available"] == 5 {
            assert_eq!(view["held"], 0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still held 2 s after the deadline: {view}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.get_hold(&id).await.body["status"], "expired");
    let confirm = server.act(&id, "confirm").await;
    assert_eq!(confirm.status, StatusCode::CONFLICT);
    assert_eq!(confirm.body["hold_status"], "expired");
}

/// A confirm that arrives after the deadline but before the sweep still loses: the
/// deadline decides, not the sweep's timing.
#[actix_web::test]
async fn confirm_after_the_deadline_is_refused_even_before_the_sweep_runs() {
    let clock = common::manual_clock();
    let server = common::spawn_with_clock(|s| s.expiry_tick_ms = 1_000, clock.clone()).await;
    server.put_sku("D", 1, 0).await;
    let body =
        json!({"lines": [{"sku": "D", "quantity": 1}], "customer_id": "c", "ttl_seconds": 1});
    let id = server.hold_raw("d", &body.to_string()).await.body["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(1_000);
    let confirm = server.act(&id, "confirm").await;
    assert_eq!(confirm.status, StatusCode::CONFLICT);
    assert_eq!(server.sku("D").await["available"], 1);
}

/// Invariant 4: retries with one key hold once, in sequence and in parallel; the same key
/// with another body is 422.
#[actix_web::test]
async fn retries_with_one_idempotency_key_hold_once() {
    let server = spawn().await;
    server.put_sku("I", 100, 0).await;
    let first = server.hold("same", &[("I", 2)]).await;
    let retry = server.hold("same", &[("I", 2)]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(first.body, retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let reordered = r#"{ "customer_id": "c-1", "lines": [ {"quantity": 2, "sku": "I"} ] }"#;
    assert_eq!(
        server.hold_raw("same", reordered).await.body,
        first.body,
        "same meaning, same answer"
    );

    let parallel = join_all((0..20).map(|_| server.hold("burst", &[("I", 3)]))).await;
    let ids: std::collections::HashSet<_> =
        parallel.iter().map(|a| a.body["hold_id"].clone()).collect();
    assert_eq!(ids.len(), 1, "one hold for one key");
    assert!(parallel.iter().all(|a| a.status == StatusCode::CREATED));
    assert_eq!(server.sku("I").await["held"], 5);

    let changed = server.hold("same", &[("I", 1)]).await;
    assert_eq!(changed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(changed.problem_type(), "/problems/idempotency-mismatch");
    assert_eq!(server.sku("I").await["held"], 5);
}

/// A sold-out answer is remembered too: the retry gets the same 409 even once stock is back.
#[actix_web::test]
async fn a_sold_out_answer_replays_for_its_key() {
    let server = spawn().await;
    server.put_sku("R", 1, 0).await;
    let taken = server.hold("taker", &[("R", 1)]).await;
    let refused = server.hold("late", &[("R", 1)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    server
        .act(taken.body["hold_id"].as_str().unwrap(), "release")
        .await;
    let retry = server.hold("late", &[("R", 1)]).await;
    assert_eq!(
        (retry.status, &retry.body),
        (StatusCode::CONFLICT, &refused.body)
    );
    assert_eq!(server.sku("R").await["available"], 1);
}

/// Availability is what a storefront polls; unknown SKUs are named.
#[actix_web::test]
async fn availability_reads_many_skus_at_once() {
    let server = spawn().await;
    server.put_sku("X", 7, 2).await;
    server.put_sku("Y", 1, 0).await;
    server.hold("y", &[("Y", 1)]).await;
    let answer = server
        .send(Method::GET, "/v1/availability?sku=X&sku=Y", None, &[])
        .await;
    assert_eq!(answer.body, json!({"X": 5, "Y": 0}));
    let unknown = server
        .send(Method::GET, "/v1/availability?sku=X&sku=NOPE", None, &[])
        .await;
    assert_eq!(
        (unknown.status, unknown.body["sku"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOPE"))
    );
}

/// Health, readiness and the metrics the dashboard reads.
#[actix_web::test]
async fn health_and_metrics_answer() {
    // A server process of its own: the in-process servers of other tests share one
    // metrics recorder, so there a series could be another test's.
    let data = tempfile::tempdir().expect("temp dir");
    let (_process, server) = common::Process::start_server(data.path(), &[]);
    for path in ["/health/live", "/health/ready"] {
        assert_eq!(
            server.send(Method::GET, path, None, &[]).await.status,
            StatusCode::OK
        );
    }
    server.put_sku("M", 1, 0).await;
    server.hold("m1", &[("M", 1)]).await;
    server.hold("m2", &[("M", 1)]).await;
    let text = server.metrics().await;
    let count = |series: &str| common::metric(&text, series).unwrap_or(0.0);
    assert_eq!(count("holdfast_hold_outcomes_total{outcome=\"held\"}"), 1.0);
    assert_eq!(
        count("holdfast_hold_outcomes_total{outcome=\"sold_out\"}"),
        1.0
    );
    assert_eq!(
        count("holdfast_http_requests_total{route=\"/v1/holds\",method=\"POST\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        count("holdfast_hold_duration_seconds_count{outcome=\"held\"}"),
        1.0
    );
    assert!(count("holdfast_journal_flush_duration_seconds_count") >= 1.0);
}

fn low_stock_events(page: &str) -> f64 {
    common::metric(page, "holdfast_sku_stock_events_total{event=\"low_stock\"}").unwrap_or(0.0)
}

/// A SKU's low-stock threshold: crossing it is counted once; a feed keeps the threshold.
#[actix_web::test]
async fn crossing_the_low_stock_threshold_is_counted() {
    let server = spawn().await;
    let body = json!({"on_hand": 10, "safety_stock": 0, "low_stock_threshold": 3}).to_string();
    let view = server
        .send(Method::PUT, "/v1/skus/LOW", Some(&body), &[])
        .await;
    assert_eq!(view.body["low_stock_threshold"], 3);
    let metrics = || async { server.metrics().await };
    let before = low_stock_events(&metrics().await);
    server.hold("low1", &[("LOW", 6)]).await;
    assert_eq!(
        low_stock_events(&metrics().await),
        before,
        "4 left is above the threshold"
    );
    server.hold("low2", &[("LOW", 1)]).await;
    assert_eq!(
        low_stock_events(&metrics().await),
        before + 1.0,
        "3 left crosses it"
    );
    server.hold("low3", &[("LOW", 1)]).await;
    assert_eq!(
        low_stock_events(&metrics().await),
        before + 1.0,
        "counted once per crossing"
    );
    let feed = server
        .client
        .post(server.url("/v1/feeds/stock"))
        .body(r#"{"sku": "LOW", "on_hand": 20}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    assert_eq!(
        server.sku("LOW").await["low_stock_threshold"],
        3,
        "a feed keeps the threshold"
    );
}

/// A SKU named on several lines of one cart is held as one line with the total, where it
/// was first named; numbers written with a zero fraction read as the integers they are.
#[actix_web::test]
async fn one_sku_on_several_lines_is_held_as_one_line_with_the_total() {
    let server = spawn().await;
    server.put_sku("A", 10, 0).await;
    server.put_sku("B", 10, 0).await;
    let held = server
        .hold_raw(
            "merge-1",
            r#"{"lines":[{"sku":"A","quantity":2},{"sku":"B","quantity":1.0},{"sku":"A","quantity":3}],"customer_id":"c-1"}"#,
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    assert_eq!(
        held.body["lines"],
        json!([{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 1}])
    );
    assert_eq!(server.sku("A").await["held"], 5);
    let too_many = server
        .hold_raw(
            "merge-2",
            r#"{"lines":[{"sku":"B","quantity":6},{"sku":"B","quantity":4}],"customer_id":"c-1"}"#,
        )
        .await;
    assert_eq!(too_many.problem_type(), "/problems/sold-out");
    assert_eq!(too_many.body["requested"], 10);
    assert_eq!(server.sku("B").await["held"], 1);
}

/// Sends a hold and returns status, the replay header and the body's exact bytes.
async fn hold_bytes(server: &common::TestServer, key: &str, sku: &str) -> (u16, bool, Vec<u8>) {
    let body = format!(r#"{{"lines":[{{"sku":"{sku}","quantity":1}}],"customer_id":"c-1"}}"#);
    let answer = server
        .client
        .post(server.url("/v1/holds"))
        .header("Idempotency-Key", key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answered");
    let replayed = answer.headers().contains_key("idempotent-replayed");
    let status = answer.status().as_u16();
    (
        status,
        replayed,
        answer.bytes().await.expect("body").to_vec(),
    )
}

/// Invariant 4, byte for byte: a key's replay is the first answer exactly, after the hold
/// was confirmed, and after a full book forgot the hold to make room for new ones.
#[actix_web::test]
async fn a_replay_is_the_first_answer_byte_for_byte_even_once_the_hold_is_forgotten() {
    let server = spawn_with(|s| s.holds_max = 2).await;
    server.put_sku("R", 100, 0).await;
    let (status, replayed, first) = hold_bytes(&server, "r-1", "R").await;
    assert_eq!((status, replayed), (201, false));
    let id = serde_json::from_slice::<serde_json::Value>(&first).expect("json")["hold_id"]
        .as_str()
        .expect("hold id")
        .to_owned();
    assert_eq!(server.act(&id, "confirm").await.status, StatusCode::OK);
    assert_eq!(
        hold_bytes(&server, "r-1", "R").await,
        (201, true, first.clone())
    );
    assert_eq!(server.act(&id, "fulfil").await.status, StatusCode::OK);
    // The book holds two: the ended hold is forgotten to make room for the third.
    assert_eq!(hold_bytes(&server, "r-2", "R").await.0, 201);
    assert_eq!(hold_bytes(&server, "r-3", "R").await.0, 201);
    assert_eq!(server.get_hold(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(hold_bytes(&server, "r-1", "R").await, (201, true, first));
    assert_eq!(
        server.sku("R").await["held"],
        2,
        "the replays held nothing more"
    );
}

/// A new SKU's first stock is not "back in stock"; stock after a sell-out is. Counted
/// by a server of its own, so no other test's SKUs are in its metrics.
#[actix_web::test]
async fn back_in_stock_is_counted_after_a_sell_out_only() {
    let data = tempfile::tempdir().expect("temp dir");
    let (_process, server) = common::Process::start_server(data.path(), &[]);
    let back = |page: &str| {
        common::metric(
            page,
            "holdfast_sku_stock_events_total{event=\"back_in_stock\"}",
        )
        .unwrap_or(0.0)
    };
    server.put_sku("NEW", 2, 0).await;
    assert_eq!(
        back(&server.metrics().await),
        0.0,
        "first stock is not back"
    );
    let held = server.hold("all", &[("NEW", 2)]).await;
    let id = held.body["hold_id"].as_str().expect("held").to_owned();
    assert_eq!(server.act(&id, "release").await.status, StatusCode::OK);
    assert_eq!(back(&server.metrics().await), 1.0, "back after selling out");
}
