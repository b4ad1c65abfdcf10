//! Invariant 7: every kind of bad input gets a 4xx problem+json answer with a detail,
//! and changes nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::spawn;
use reqwest::{Method, StatusCode};
use serde_json::Value;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<String>,
    idempotency_key: Option<String>,
    status: StatusCode,
    problem: &'static str,
}

fn hold_case(
    name: &'static str,
    body: impl Into<String>,
    status: StatusCode,
    problem: &'static str,
) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/v1/holds".into(),
        body: Some(body.into()),
        idempotency_key: Some(format!("key-{}", name.replace(' ', "-"))),
        status,
        problem,
    }
}

fn line(sku: &str, quantity: &str) -> String {
    format!(r#"{{"lines":[{{"sku":"{sku}","quantity":{quantity}}}],"customer_id":"c"}}"#)
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let bad = "/problems/invalid-request";
    let many_lines: Vec<String> = (0..51)
        .map(|i| format!(r#"{{"sku":"S{i}","quantity":1}}"#))
        .collect();
    let mut cases = vec![
        hold_case(
            "malformed json",
            r#"{"lines": [{"sku": "B""#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "deeply nested json",
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case("not an object", "[1,2,3]", S::BAD_REQUEST, bad),
        hold_case("empty body", "", S::BAD_REQUEST, bad),
        hold_case("control bytes", "\u{0}\u{1}\u{2}", S::BAD_REQUEST, bad),
        hold_case(
            "missing lines",
            r#"{"customer_id":"c"}"#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "missing customer",
            r#"{"lines":[{"sku":"B","quantity":1}]}"#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "no lines",
            r#"{"lines":[],"customer_id":"c"}"#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case("zero quantity", line("B", "0"), S::BAD_REQUEST, bad),
        hold_case("negative quantity", line("B", "-1"), S::BAD_REQUEST, bad),
        hold_case(
            "huge quantity",
            line("B", "1000000000001"),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "overflowing quantity",
            line("B", "99999999999999999999999"),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case("fractional quantity", line("B", "1.5"), S::BAD_REQUEST, bad),
        hold_case("quantity as text", line("B", "\"1\""), S::BAD_REQUEST, bad),
        hold_case(
            "unknown sku",
            line("NEVER", "1"),
            S::NOT_FOUND,
            "/problems/not-found",
        ),
        hold_case(
            "overlong sku",
            line(&"x".repeat(65), "1"),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case("sku with a space", line("B C", "1"), S::BAD_REQUEST, bad),
        hold_case(
            "too many lines",
            format!(
                r#"{{"lines":[{}],"customer_id":"c"}}"#,
                many_lines.join(",")
            ),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "one sku on two lines past the unit ceiling",
            r#"{"lines":[{"sku":"B","quantity":1000000000000},{"sku":"B","quantity":1}],"customer_id":"c"}"#,
            S::CONFLICT,
            "/problems/conflict",
        ),
        hold_case(
            "quantity with a fraction",
            line("B", "2.5"),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "ttl zero",
            r#"{"lines":[{"sku":"B","quantity":1}],"customer_id":"c","ttl_seconds":0}"#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "ttl past the maximum",
            r#"{"lines":[{"sku":"B","quantity":1}],"customer_id":"c","ttl_seconds":3601}"#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "unknown field",
            r#"{"lines":[{"sku":"B","quantity":1}],"customer_id":"c","coupon":"FREE"}"#,
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "overlong customer",
            format!(
                r#"{{"lines":[{{"sku":"B","quantity":1}}],"customer_id":"{}"}}"#,
                "c".repeat(65)
            ),
            S::BAD_REQUEST,
            bad,
        ),
        hold_case(
            "oversized body",
            format!(r#"{{"pad":"{}"}}"#, "x".repeat(70_000)),
            S::PAYLOAD_TOO_LARGE,
            "/problems/payload-too-large",
        ),
    ];
    let mut no_key = hold_case(
        "missing idempotency key",
        line("B", "1"),
        S::BAD_REQUEST,
        bad,
    );
    no_key.idempotency_key = None;
    let mut long_key = hold_case(
        "overlong idempotency key",
        line("B", "1"),
        S::BAD_REQUEST,
        bad,
    );
    long_key.idempotency_key = Some("k".repeat(65));
    cases.extend([no_key, long_key]);
    let other = |name, method, path: &str, body: Option<&str>, status, problem| Case {
        name,
        method,
        path: path.into(),
        body: body.map(str::to_owned),
        idempotency_key: None,
        status,
        problem,
    };
    let conflict = "/problems/conflict";
    cases.extend([
        other(
            "negative on_hand",
            Method::PUT,
            "/v1/skus/B",
            Some(r#"{"on_hand":-1}"#),
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "huge on_hand",
            Method::PUT,
            "/v1/skus/B",
            Some(r#"{"on_hand":1000000000001}"#),
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "on_hand below held",
            Method::PUT,
            "/v1/skus/B",
            Some(r#"{"on_hand":1}"#),
            S::CONFLICT,
            conflict,
        ),
        other(
            "safety stock eats held units",
            Method::PUT,
            "/v1/skus/B",
            Some(r#"{"on_hand":10,"safety_stock":9}"#),
            S::CONFLICT,
            conflict,
        ),
        other(
            "stock body malformed",
            Method::PUT,
            "/v1/skus/B",
            Some("{"),
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "overlong sku path",
            Method::PUT,
            &format!("/v1/skus/{}", "x".repeat(65)),
            Some(r#"{"on_hand":1}"#),
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "zero delta",
            Method::POST,
            "/v1/skus/B/adjustments",
            Some(r#"{"delta":0,"reason":"found"}"#),
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "unknown reason",
            Method::POST,
            "/v1/skus/B/adjustments",
            Some(r#"{"delta":1,"reason":"magic"}"#),
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "negative on_hand by delta",
            Method::POST,
            "/v1/skus/B/adjustments",
            Some(r#"{"delta":-11,"reason":"lost"}"#),
            S::CONFLICT,
            conflict,
        ),
        other(
            "delta below held",
            Method::POST,
            "/v1/skus/B/adjustments",
            Some(r#"{"delta":-9,"reason":"damaged"}"#),
            S::CONFLICT,
            conflict,
        ),
        other(
            "adjust unknown sku",
            Method::POST,
            "/v1/skus/NEVER/adjustments",
            Some(r#"{"delta":1,"reason":"found"}"#),
            S::NOT_FOUND,
            "/problems/not-found",
        ),
        other(
            "malformed hold id",
            Method::GET,
            "/v1/holds/not-a-ulid",
            None,
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "unknown hold",
            Method::POST,
            "/v1/holds/01ARZ3NDEKTSV4RRFFQ69G5FAV/confirm",
            None,
            S::NOT_FOUND,
            "/problems/not-found",
        ),
        other(
            "availability without skus",
            Method::GET,
            "/v1/availability",
            None,
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "availability unknown param",
            Method::GET,
            "/v1/availability?item=B",
            None,
            S::BAD_REQUEST,
            bad,
        ),
        other(
            "wrong method",
            Method::DELETE,
            "/v1/skus/B",
            None,
            S::METHOD_NOT_ALLOWED,
            "/problems/method-not-allowed",
        ),
        other(
            "unknown path",
            Method::GET,
            "/v2/everything",
            None,
            S::NOT_FOUND,
            "/problems/not-found",
        ),
    ]);
    cases
}

#[actix_web::test]
async fn every_bad_input_gets_a_problem_and_changes_nothing() {
    let server = spawn().await;
    server.put_sku("B", 10, 0).await;
    let held = server.hold("setup", &[("B", 2)]).await;
    assert_eq!(held.status, StatusCode::CREATED);
    let before = server.sku("B").await;
    for case in cases() {
        let mut headers = Vec::new();
        if let Some(key) = &case.idempotency_key {
            headers.push(("Idempotency-Key", key.as_str()));
        }
        let answer = server
            .send(
                case.method.clone(),
                &case.path,
                case.body.as_deref(),
                &headers,
            )
            .await;
        assert_eq!(answer.status, case.status, "{}: {}", case.name, answer.body);
        assert_eq!(
            answer.problem_type(),
            case.problem,
            "{}: {}",
            case.name,
            answer.body
        );
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{}",
            case.name
        );
        assert_eq!(answer.body["status"], case.status.as_u16(), "{}", case.name);
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}: no detail",
            case.name
        );
        assert_eq!(server.sku("B").await, before, "{} changed state", case.name);
    }
    let never = server.send(Method::GET, "/v1/skus/NEVER", None, &[]).await;
    assert_eq!(
        never.status,
        StatusCode::NOT_FOUND,
        "a refused request created no SKU"
    );
    let body: Value = server.sku("B").await;
    assert_eq!(body["held"], 2);
}
