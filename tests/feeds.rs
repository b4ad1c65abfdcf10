//! Stock feeds: NDJSON and CSV, good lines applied while bad ones are reported by line
//! number, 10,000 lines in one request, and the limits.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::spawn_with;
use reqwest::StatusCode;
use serde_json::Value;

async fn feed(
    server: &common::TestServer,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.url("/v1/feeds/stock"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Valid lines are applied, bad lines reported by number, and a line that would push
/// stock below what is held is refused on its own.
#[actix_web::test]
async fn a_feed_applies_good_lines_and_reports_bad_ones() {
    let server = spawn_with(|_| {}).await;
    server.put_sku("HELD", 10, 0).await;
    server.hold("h", &[("HELD", 5)]).await;
    let body = [
        r#"{"sku": "A", "on_hand": 10, "safety_stock": 2}"#,
        r#"{"sku": "B", "on_hand": -1}"#,
        "not json",
        "",
        r#"{"sku": "C", "on_hand": 7}"#,
        r#"{"sku": "bad sku", "on_hand": 1}"#,
        r#"{"sku": "HELD", "on_hand": 3}"#,
        r#"{"sku": "A", "on_hand": 99}"#,
        &format!(r#"{{"sku": "LONG", "pad": "{}"}}"#, "x".repeat(5_000)),
        r#"{"sku": "D", "on_hand": 1}"#,
    ]
    .join("\n");
    let (status, report) = feed(&server, "application/x-ndjson", body).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["applied"], 3, "{report}");
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 6, 7, 8, 9], "{report}");
    assert_eq!(report["errors_total"], 6);
    let a = server.sku("A").await;
    assert_eq!(
        (a["on_hand"].as_u64(), a["safety_stock"].as_u64()),
        (Some(10), Some(2)),
        "the first line for A wins"
    );
    assert_eq!(server.sku("D").await["on_hand"], 1);
    assert_eq!(
        server.sku("HELD").await["on_hand"],
        10,
        "a reset below held units is refused"
    );
}

/// CSV with a header, columns found by name.
#[actix_web::test]
async fn a_csv_feed_with_a_header_is_applied() {
    let server = spawn_with(|_| {}).await;
    let body = "sku,safety_stock,on_hand\nX,1,5\nY,0,7\nZ,oops,3\n".to_owned();
    let (status, report) = feed(&server, "text/csv", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["applied"], 2);
    assert_eq!(report["errors"][0]["line"], 4);
    assert_eq!(server.sku("Y").await["on_hand"], 7);
    let (_, headerless) = feed(&server, "text/csv", "X,1,5\n".to_owned()).await;
    assert_eq!(
        headerless["errors"][0]["line"], 1,
        "a CSV feed needs its header"
    );
}

/// A feed line that does not give `safety_stock` (no field, no column, an empty cell)
/// keeps the SKU's; only a value in the line changes it. The README's own CSV is
/// `sku,on_hand`: before this, it zeroed every buffer a merchandiser had set.
#[actix_web::test]
async fn a_feed_line_without_safety_stock_keeps_it() {
    let server = spawn_with(|_| {}).await;
    for sku in ["N", "C", "E", "S"] {
        server.put_sku(sku, 20, 5).await;
    }
    let (_, report) = feed(&server, "text/csv", "sku,on_hand\nC,30\n".to_owned()).await;
    assert_eq!(report["applied"], 1, "{report}");
    let (_, report) = feed(
        &server,
        "text/csv",
        "sku,on_hand,safety_stock\nE,40,\nS,50,2\n".to_owned(),
    )
    .await;
    assert_eq!(report["applied"], 2, "{report}");
    let (_, report) = feed(
        &server,
        "application/x-ndjson",
        r#"{"sku": "N", "on_hand": 60}"#.to_owned(),
    )
    .await;
    assert_eq!(report["applied"], 1, "{report}");
    for (sku, on_hand, safety_stock) in [("C", 30, 5), ("E", 40, 5), ("S", 50, 2), ("N", 60, 5)] {
        let view = server.sku(sku).await;
        assert_eq!(
            (view["on_hand"].as_u64(), view["safety_stock"].as_u64()),
            (Some(on_hand), Some(safety_stock)),
            "{sku}: {view}"
        );
    }
    // The same rule for `PUT /v1/skus/{sku}`; a new SKU starts at 0.
    let put = server
        .send(
            reqwest::Method::PUT,
            "/v1/skus/N",
            Some(r#"{"on_hand": 9}"#),
            &[],
        )
        .await;
    assert_eq!(put.body["safety_stock"], 5, "{}", put.body);
    let new = server
        .send(
            reqwest::Method::PUT,
            "/v1/skus/NEW",
            Some(r#"{"on_hand": 9}"#),
            &[],
        )
        .await;
    assert_eq!(new.body["safety_stock"], 0, "{}", new.body);
}

/// A 10,000-line feed is applied in one request.
#[actix_web::test]
async fn ten_thousand_lines_apply_in_one_request() {
    let server = spawn_with(|_| {}).await;
    let body: String = (0..10_000)
        .map(|i| format!("{{\"sku\": \"F{i:05}\", \"on_hand\": {i}}}\n"))
        .collect();
    let (status, report) = feed(&server, "application/x-ndjson", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (report["applied"].as_u64(), report["errors_total"].as_u64()),
        (Some(10_000), Some(0))
    );
    assert_eq!(server.sku("F09999").await["on_hand"], 9_999);
    assert_eq!(server.sku("F00042").await["on_hand"], 42);
}

/// Past the byte or line limits the feed is refused with a clear error.
#[actix_web::test]
async fn feed_limits_are_enforced() {
    let server = spawn_with(|s| {
        s.feed_bytes_max = 1_000;
        s.feed_lines_max = 3;
    })
    .await;
    let (status, report) = feed(&server, "application/x-ndjson", "x".repeat(2_000)).await;
    assert_eq!(
        (status, report["type"].as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("/problems/payload-too-large")
        )
    );
    let lines: String = (0..5)
        .map(|i| format!("{{\"sku\": \"L{i}\", \"on_hand\": 1}}\n"))
        .collect();
    let (status, report) = feed(&server, "application/x-ndjson", lines).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(report["detail"]
        .as_str()
        .unwrap()
        .contains("at most 3 lines"));
}
