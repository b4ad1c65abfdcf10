//! Sales: holds outside the window are refused, the per-customer limit is exact under
//! concurrent requests of one shopper, the sale's TTL applies, and GET shows sell-through.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::{spawn, Process, TestServer};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

fn at(offset_s: i64) -> String {
    (OffsetDateTime::now_utc() + Duration::seconds(offset_s))
        .format(&Rfc3339)
        .unwrap()
}

async fn put_sale(server: &TestServer, id: &str, sale: Value) -> common::Answer {
    server
        .send(
            Method::PUT,
            &format!("/v1/sales/{id}"),
            Some(&sale.to_string()),
            &[],
        )
        .await
}

async fn hold_as(
    server: &TestServer,
    key: String,
    customer: &str,
    sku: &str,
    quantity: u64,
) -> common::Answer {
    let body = json!({"lines": [{"sku": sku, "quantity": quantity}], "customer_id": customer});
    server.hold_raw(&key, &body.to_string()).await
}

/// A hold on a sale SKU before the window is refused with sale-not-open; after it the SKU
/// sells normally again, unless its sale said `after_end: closed`.
#[actix_web::test]
async fn holds_before_the_window_are_refused_and_after_it_only_if_closed() {
    let server = spawn().await;
    for sku in ["SOON", "OVER", "SHUT", "NOW"] {
        server.put_sku(sku, 10, 0).await;
    }
    for (id, sku, from, to, after_end) in [
        ("soon", "SOON", 3600, 7200, "open"),
        ("over", "OVER", -7200, -3600, "open"),
        ("shut", "SHUT", -7200, -3600, "closed"),
        ("now", "NOW", -60, 3600, "closed"),
    ] {
        let sale = json!({"name": id, "starts_at": at(from), "ends_at": at(to), "skus": [sku],
            "after_end": after_end, "per_customer_limit": 1});
        let put = put_sale(&server, id, sale).await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.body);
        assert_eq!(put.body["after_end"], after_end);
    }
    for sku in ["SOON", "SHUT"] {
        let refused = hold_as(&server, format!("k-{sku}"), "c", sku, 1).await;
        assert_eq!(
            (refused.status, refused.problem_type()),
            (StatusCode::CONFLICT, "/problems/sale-not-open")
        );
        assert_eq!(refused.body["sale_id"], sku.to_lowercase());
    }
    // Over and open after it: no window, and no per-customer limit either.
    let over = hold_as(&server, "k-OVER".into(), "c", "OVER", 3).await;
    assert_eq!(over.status, StatusCode::CREATED, "{}", over.body);
    assert_eq!(
        hold_as(&server, "k-now".into(), "c", "NOW", 1).await.status,
        StatusCode::CREATED
    );
    let clash = put_sale(
        &server,
        "again",
        json!({"name": "x", "starts_at": at(-1), "ends_at": at(60), "skus": ["NOW"]}),
    )
    .await;
    assert_eq!(
        clash.status,
        StatusCode::CONFLICT,
        "a SKU is on one running sale at a time"
    );
    let backwards = put_sale(
        &server,
        "bad",
        json!({"name": "x", "starts_at": at(60), "ends_at": at(0), "skus": ["SOON"]}),
    )
    .await;
    assert_eq!(backwards.status, StatusCode::BAD_REQUEST);
}

/// Ten concurrent requests of one shopper against a limit of 2: exactly 2 units are held,
/// the rest get limit-exceeded; another shopper is not affected; a release frees a slot.
#[actix_web::test]
async fn the_per_customer_limit_is_exact_under_concurrency() {
    let server = spawn().await;
    server.put_sku("LIM", 100, 0).await;
    let sale = json!({"name": "drop", "starts_at": at(-60), "ends_at": at(3600), "skus": ["LIM"], "per_customer_limit": 2, "hold_ttl_s": 120});
    assert_eq!(put_sale(&server, "drop", sale).await.status, StatusCode::OK);
    let limit_outcomes = |page: String| {
        common::metric(&page, "holdfast_hold_outcomes_total{outcome=\"limit\"}").unwrap_or(0.0)
    };
    let limits_before = limit_outcomes(server.metrics().await);
    let answers =
        join_all((0..10).map(|i| hold_as(&server, format!("c1-{i}"), "c1", "LIM", 1))).await;
    let held: Vec<&common::Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(held.len(), 2);
    let limited = common::problems(&answers, "/problems/limit-exceeded");
    assert_eq!(limited, 8);
    let limits_after = limit_outcomes(server.metrics().await);
    assert_eq!(
        limits_after - limits_before,
        8.0,
        "counted as limit, not as sold out"
    );
    assert_eq!(server.sku("LIM").await["held"], 2);
    assert_eq!(
        hold_as(&server, "c2".into(), "c2", "LIM", 2).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        hold_as(&server, "c1-big".into(), "c1", "LIM", 1)
            .await
            .status,
        StatusCode::CONFLICT
    );
    let first = held[0].body["hold_id"].as_str().unwrap();
    server.act(first, "release").await;
    let again = hold_as(&server, "c1-again".into(), "c1", "LIM", 1).await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "a released unit no longer counts"
    );
    let created =
        OffsetDateTime::parse(again.body["created_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let expires =
        OffsetDateTime::parse(again.body["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(
        (expires - created).whole_seconds(),
        120,
        "the sale's hold TTL is the default"
    );
}

/// GET shows live sell-through per SKU and channel; the sale survives a restart.
#[actix_web::test]
async fn a_sale_shows_sell_through_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (process, server) = Process::start_server(&data, &[]);
    server.put_sku("ST", 10, 0).await;
    let sale = json!({"name": "Black Friday", "starts_at": at(-60), "ends_at": at(3600), "skus": ["ST"], "per_customer_limit": 5});
    put_sale(&server, "bf", sale).await;
    let hold = hold_as(&server, "st".into(), "c", "ST", 4).await;
    server
        .act(hold.body["hold_id"].as_str().unwrap(), "confirm")
        .await;
    let view = server
        .send(Method::GET, "/v1/sales/bf", None, &[])
        .await
        .body;
    assert_eq!(view["open"], true);
    assert_eq!(view["skus"][0]["committed"], 4);
    assert_eq!(view["skus"][0]["sell_through"], 0.4);
    assert_eq!(view["skus"][0]["channels"]["default"]["committed"], 4);
    assert_eq!(process.terminate().code(), Some(0));
    let (_process, server) = Process::start_server(&data, &[]);
    assert_eq!(
        server
            .send(Method::GET, "/v1/sales/bf", None, &[])
            .await
            .body["skus"],
        view["skus"]
    );
    let over = hold_as(&server, "st2".into(), "c", "ST", 2).await;
    assert_eq!(
        over.problem_type(),
        "/problems/limit-exceeded",
        "the limit counts confirmed units after restart"
    );
}

/// A sale with its own admission limits meters holds on its SKUs separately: past its
/// rate they get 429, while holds on other SKUs pass the server-wide queue untouched.
#[actix_web::test]
async fn a_sale_can_have_its_own_admission_queue() {
    let server = spawn().await;
    server.put_sku("HYPE", 100, 0).await;
    server.put_sku("PLAIN", 100, 0).await;
    let sale = json!({"name": "hype", "starts_at": at(-60), "ends_at": at(3600), "skus": ["HYPE"],
        "admission": {"in_flight_max": 10, "queue_max": 0, "wait_max_ms": 0, "rate_per_s": 1}});
    let set = put_sale(&server, "hype", sale).await;
    assert_eq!(set.body["admission"]["rate_per_s"], 1, "{}", set.body);
    let first = hold_as(&server, "h1".into(), "a", "HYPE", 1).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = hold_as(&server, "h2".into(), "b", "HYPE", 1).await;
    assert_eq!(
        (second.status, second.problem_type()),
        (StatusCode::TOO_MANY_REQUESTS, "/problems/queue-full")
    );
    let plain = join_all((0..5).map(|i| hold_as(&server, format!("p{i}"), "c", "PLAIN", 1))).await;
    assert!(
        plain.iter().all(|a| a.status == StatusCode::CREATED),
        "other SKUs use the server-wide queue"
    );
    let status = server.send(Method::GET, "/v1/admission", None, &[]).await;
    assert_eq!(
        status.body["rate_per_s"], 0,
        "the server-wide limits are untouched"
    );
}

/// Every admission queue publishes its own gauges, labelled by queue, so the saturation
/// alert compares a queue with its own limit (unlabelled, every queue overwrote one series
/// and the alert compared a random queue with the server-wide limit).
#[actix_web::test]
async fn each_admission_queue_has_its_own_metric_series() {
    // A server process of its own: the in-process servers of other tests share one
    // metrics recorder.
    let data = tempfile::tempdir().expect("temp dir");
    let (_process, server) = Process::start_server(data.path(), &["--admission-queue-max", "700"]);
    server.put_sku("HYPE", 100, 0).await;
    let sale = json!({"name": "hype", "starts_at": at(-60), "ends_at": at(3600), "skus": ["HYPE"],
        "admission": {"in_flight_max": 3, "queue_max": 40, "wait_max_ms": 1000, "rate_per_s": 0}});
    assert_eq!(put_sale(&server, "hype", sale).await.status, StatusCode::OK);
    let expected = [
        (r#"holdfast_admission_queue_max{queue="global"}"#, 700.0),
        (r#"holdfast_admission_queue_max{queue="hype"}"#, 40.0),
        (r#"holdfast_admission_in_flight_max{queue="hype"}"#, 3.0),
        (r#"holdfast_admission_queue_length{queue="hype"}"#, 0.0),
    ];
    // Queues publish on their tick (milliseconds); the page is read until they have.
    let mut page = String::new();
    for _ in 0..100 {
        page = server.metrics().await;
        if expected
            .iter()
            .all(|(series, value)| common::metric(&page, series) == Some(*value))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (series, value) in expected {
        assert_eq!(
            common::metric(&page, series),
            Some(value),
            "{series} in\n{page}"
        );
    }
    assert!(
        !page
            .lines()
            .any(|line| line.starts_with("holdfast_admission_queue_length ")),
        "no unlabelled queue series"
    );
}

/// A sale opens and closes on the server's clock: the window is checked against the time
/// the server reads, which the test moves instead of waiting a minute for it.
#[actix_web::test]
async fn a_sale_opens_and_closes_as_its_window_comes_and_goes() {
    let clock = common::manual_clock();
    let server = common::spawn_with_clock(|_| {}, clock.clone()).await;
    server.put_sku("DROP", 10, 0).await;
    let now = clock.now_ms();
    let sale = json!({"name": "drop", "skus": ["DROP"],
        "starts_at": holdfast::clock::rfc3339(now + 60_000),
        "ends_at": holdfast::clock::rfc3339(now + 120_000)});
    assert_eq!(put_sale(&server, "drop", sale).await.status, StatusCode::OK);
    let early = hold_as(&server, "early".into(), "a", "DROP", 1).await;
    assert_eq!(
        early.problem_type(),
        "/problems/sale-not-open",
        "{}",
        early.body
    );
    clock.advance(60_000);
    let open = server.send(Method::GET, "/v1/sales/drop", None, &[]).await;
    assert_eq!(open.body["open"], true, "{}", open.body);
    let during = hold_as(&server, "during".into(), "a", "DROP", 1).await;
    assert_eq!(during.status, StatusCode::CREATED, "{}", during.body);
    clock.advance(60_000);
    let late = hold_as(&server, "late".into(), "a", "DROP", 1).await;
    assert_eq!(
        late.status,
        StatusCode::CREATED,
        "sells normally once over: {}",
        late.body
    );
    let ended = server.send(Method::GET, "/v1/sales/drop", None, &[]).await;
    assert_eq!(ended.body["open"], false, "{}", ended.body);
}

/// A sale that has not started or has ended can be deleted, and its SKUs sell as if it
/// had never been; an open one cannot (it is ended by moving `ends_at`). The deletion
/// survives a restart.
#[actix_web::test]
async fn a_sale_not_running_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (process, server) = Process::start_server(dir.path(), &[]);
    for sku in ["UP", "RUN", "DONE"] {
        server.put_sku(sku, 10, 0).await;
    }
    for (id, from, to) in [
        ("up", 3600, 7200),
        ("run", -60, 3600),
        ("done", -7200, -3600),
    ] {
        let sku = id.to_uppercase();
        let sale = json!({"name": id, "starts_at": at(from), "ends_at": at(to), "skus": [sku],
            "after_end": "closed"});
        assert_eq!(put_sale(&server, id, sale).await.status, StatusCode::OK);
    }
    let delete = |id: &'static str| {
        let server = &server;
        async move {
            server
                .send(Method::DELETE, &format!("/v1/sales/{id}"), None, &[])
                .await
        }
    };
    let running = delete("run").await;
    assert_eq!(running.status, StatusCode::CONFLICT, "{}", running.body);
    assert!(running.body["detail"].as_str().unwrap().contains("ends_at"));
    assert_eq!(delete("nope").await.status, StatusCode::NOT_FOUND);
    for id in ["up", "done"] {
        assert_eq!(delete(id).await.status, StatusCode::NO_CONTENT, "{id}");
        let gone = server
            .send(Method::GET, &format!("/v1/sales/{id}"), None, &[])
            .await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }
    process.kill9();
    let (_process, server) = Process::start_server(dir.path(), &[]);
    for sku in ["UP", "DONE"] {
        let held = hold_as(&server, format!("after-{sku}"), "c", sku, 1).await;
        assert_eq!(held.status, StatusCode::CREATED, "{sku}: {}", held.body);
    }
    let gone = server.send(Method::GET, "/v1/sales/done", None, &[]).await;
    assert_eq!(
        gone.status,
        StatusCode::NOT_FOUND,
        "deleted across a restart"
    );
    assert_eq!(
        server
            .send(Method::GET, "/v1/sales/run", None, &[])
            .await
            .status,
        StatusCode::OK
    );
}
