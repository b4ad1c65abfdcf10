//! The admission queue over HTTP: bursts past the limits get fast 429s with tickets,
//! admissions are FIFO, tickets keep places, sold-out carts never queue, waiters for a
//! SKU that sells out get 409, and confirm is never queued behind new holds.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{spawn_with, Answer, TestServer};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn limited(
    in_flight: usize,
    queue: usize,
    wait_ms: u64,
    rate: u64,
) -> impl FnOnce(&mut holdfast::Settings) {
    move |s| {
        s.admission_in_flight_max = in_flight;
        s.admission_queue_max = queue;
        s.admission_wait_max_ms = wait_ms;
        s.admission_rate_per_s = rate;
    }
}

async fn hold_with_ticket(
    server: &TestServer,
    key: &str,
    sku: &str,
    ticket: Option<&str>,
) -> Answer {
    let body = json!({"lines": [{"sku": sku, "quantity": 1}], "customer_id": key}).to_string();
    let mut headers = vec![("Idempotency-Key", key)];
    if let Some(ticket) = ticket {
        headers.push(("Queue-Ticket", ticket));
    }
    server
        .send(Method::POST, "/v1/holds", Some(&body), &headers)
        .await
}

/// A burst of 200 against in-flight 2, queue 10, 20/s: about rate x time get in, the
/// rest get 429 queue-full with Retry-After and a ticket without waiting out the limit.
#[actix_web::test]
async fn a_burst_past_the_limits_gets_fast_429s_with_tickets() {
    let server = spawn_with(limited(2, 10, 3_000, 20)).await;
    server.put_sku("BURST", 10_000, 0).await;
    let started = Instant::now();
    let server = &server;
    let answers = join_all((0..200).map(|i| async move {
        let sent = Instant::now();
        let answer = server.hold(&format!("b{i}"), &[("BURST", 1)]).await;
        (answer, sent.elapsed())
    }))
    .await;
    let elapsed_s = started.elapsed().as_secs_f64();
    let admitted = answers
        .iter()
        .filter(|(a, _)| a.status == StatusCode::CREATED)
        .count();
    #[expect(clippy::cast_possible_truncation, reason = "a few seconds' worth")]
    let bound = (20.0 * elapsed_s).ceil() as usize + 2;
    assert!(
        admitted <= bound,
        "{admitted} admitted in {elapsed_s:.2} s at 20/s"
    );
    assert!(admitted >= 10, "the queue's ten were served: {admitted}");
    let refused: Vec<_> = answers
        .iter()
        .filter(|(a, _)| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(refused.len() + admitted, 200);
    for (answer, latency) in &refused {
        assert_eq!(answer.problem_type(), "/problems/queue-full");
        assert!(answer.headers.contains_key("retry-after"));
        assert!(answer.body["ticket"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        assert!(answer.body["position"].as_u64().is_some_and(|p| p >= 1));
        assert!(answer.body["retry_after_s"]
            .as_u64()
            .is_some_and(|s| s >= 1));
        assert!(
            *latency < Duration::from_millis(2_500),
            "a 429 waited out the limit: {latency:?}"
        );
    }
    let mut latencies: Vec<Duration> = refused.iter().map(|(_, latency)| *latency).collect();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_millis(1_000),
        "429s come at once, not after the 3 s wait: median {median:?}"
    );
    assert_eq!(
        server.sku("BURST").await["held"],
        admitted as u64,
        "a 429 takes nothing"
    );
}

/// When a hold was created, as an instant: compared as text, a time on a whole second
/// ("...:59Z", written without a fraction) sorts after "...:59.2Z".
fn created_at(hold: &serde_json::Value) -> time::OffsetDateTime {
    let at = hold["created_at"].as_str().unwrap();
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
}

/// Requests that queue are admitted in the order they arrived.
#[actix_web::test]
async fn queued_requests_are_admitted_in_arrival_order() {
    let server = Arc::new(spawn_with(limited(1, 20, 5_000, 5)).await);
    server.put_sku("FIFO", 100, 0).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let server = Arc::clone(&server);
        tasks.push(actix_web::rt::spawn(async move {
            server.hold(&format!("f{i}"), &[("FIFO", 1)]).await
        }));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut created = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        created.push(created_at(&answer.body));
    }
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(created, sorted, "admitted out of arrival order");
}

/// A retry with its ticket is placed ahead of those who came after it; a forged ticket
/// counts as a new arrival. Order is read from the holds' creation times, so the test does
/// not depend on how fast the machine is.
#[actix_web::test]
async fn a_ticket_keeps_its_place_and_a_forged_one_does_not() {
    let server = Arc::new(spawn_with(limited(10, 1, 10_000, 2)).await);
    server.put_sku("T", 100, 0).await;
    let queue = |queue_max: u32| {
        let body = json!({"in_flight_max": 10, "queue_max": queue_max, "wait_max_ms": 10_000, "rate_per_s": 2});
        let server = Arc::clone(&server);
        async move {
            server
                .send(Method::PUT, "/v1/admission", Some(&body.to_string()), &[])
                .await
        }
    };
    let background = |key: &'static str, ticket: Option<String>| {
        let server = Arc::clone(&server);
        actix_web::rt::spawn(
            async move { hold_with_ticket(&server, key, "T", ticket.as_deref()).await },
        )
    };
    assert_eq!(
        server.hold("first", &[("T", 1)]).await.status,
        StatusCode::CREATED
    );
    let a = background("a", None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = hold_with_ticket(&server, "late", "T", None).await;
    assert_eq!(late.status, StatusCode::TOO_MANY_REQUESTS, "{}", late.body);
    assert_eq!(late.body["position"], 2);
    let ticket = late.body["ticket"].as_str().unwrap().to_owned();
    queue(10).await;
    let newer = background("newer", None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut forged = ticket.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let fake = background("fake", Some(forged));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retry = background("late", Some(ticket));
    let mut order = Vec::new();
    for (name, task) in [("a", a), ("newer", newer), ("fake", fake), ("late", retry)] {
        let answer = task.await.unwrap();
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{name}: {}",
            answer.body
        );
        order.push((created_at(&answer.body), name));
    }
    order.sort();
    let names: Vec<&str> = order.iter().map(|(_, name)| *name).collect();
    assert_eq!(names, ["a", "late", "newer", "fake"]);
}

/// During a flood: a hold on a sold-out SKU is answered 409 at once, and confirm, stock
/// reads and the admission status are not queued behind the new holds.
#[actix_web::test]
async fn during_a_flood_sold_out_and_confirm_do_not_wait() {
    let server = Arc::new(spawn_with(limited(1, 100, 5_000, 1)).await);
    server.put_sku("PAY", 5, 0).await;
    server.put_sku("BIG", 1_000, 0).await;
    server.put_sku("GONE", 0, 0).await;
    let paying = server.hold("pay", &[("PAY", 1)]).await;
    assert_eq!(paying.status, StatusCode::CREATED);
    let flood: Vec<_> = (0..20)
        .map(|i| {
            let server = Arc::clone(&server);
            actix_web::rt::spawn(
                async move { server.hold(&format!("flood{i}"), &[("BIG", 1)]).await },
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = server.send(Method::GET, "/v1/admission", None, &[]).await;
    assert!(
        status.body["queued"].as_u64().unwrap() >= 10,
        "the flood is queued: {}",
        status.body
    );
    let started = Instant::now();
    let gone = server.hold("gone", &[("GONE", 1)]).await;
    assert_eq!(
        (gone.status, gone.problem_type()),
        (StatusCode::CONFLICT, "/problems/sold-out")
    );
    let confirm = server
        .act(paying.body["hold_id"].as_str().unwrap(), "confirm")
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited behind the flood: {:?}",
        started.elapsed()
    );
    server
        .send(
            Method::PUT,
            "/v1/admission",
            Some(
                r#"{"in_flight_max": 100, "queue_max": 100, "wait_max_ms": 5000, "rate_per_s": 0}"#,
            ),
            &[],
        )
        .await;
    for task in flood {
        assert_eq!(
            task.await.unwrap().status,
            StatusCode::CREATED,
            "opening the gates lets the flood in"
        );
    }
}

/// Waiters for a SKU that sells out while they wait get 409 sold-out, not 429 or a timeout.
#[actix_web::test]
async fn waiters_for_a_sku_that_sells_out_get_409() {
    let server = spawn_with(limited(5, 100, 10_000, 5)).await;
    server.put_sku("LAST", 3, 0).await;
    let started = Instant::now();
    let answers =
        join_all((0..15).map(|i| server.hold_owned(format!("w{i}"), vec![("LAST", 1)]))).await;
    let held = common::created(&answers);
    let sold_out = common::problems(&answers, "/problems/sold-out");
    assert_eq!(
        (held, sold_out),
        (3, 12),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered when the SKU sold out, not at the wait limit"
    );
}

/// The admission limits are the admin's to change, and bad limits are refused.
#[actix_web::test]
async fn admission_limits_change_at_runtime() {
    let server = spawn_with(limited(4, 8, 100, 0)).await;
    let status = server.send(Method::GET, "/v1/admission", None, &[]).await;
    assert_eq!(status.body["in_flight_max"], 4);
    let bad = server
        .send(
            Method::PUT,
            "/v1/admission",
            Some(r#"{"in_flight_max": 0, "queue_max": 1, "wait_max_ms": 1, "rate_per_s": 0}"#),
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let good = r#"{"in_flight_max": 7, "queue_max": 9, "wait_max_ms": 250, "rate_per_s": 50}"#;
    let changed = server
        .send(Method::PUT, "/v1/admission", Some(good), &[])
        .await;
    assert_eq!(
        (changed.status, changed.body["rate_per_s"].as_u64()),
        (StatusCode::OK, Some(50))
    );
}
