//! Bearer keys: the admin key for stock, channel keys for holds, each channel confined
//! to its own holds; health and metrics stay open.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::{spawn_with_keys, ADMIN_KEY, APP_KEY, WEB_KEY};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn cart(channel: Option<&str>) -> String {
    let mut body = json!({"lines": [{"sku": "K", "quantity": 1}], "customer_id": "c"});
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    body.to_string()
}

#[actix_web::test]
async fn keys_decide_who_may_do_what() {
    let server = spawn_with_keys().await;
    let stock = Some(r#"{"on_hand": 10}"#);
    let none = server
        .send_as(None, Method::PUT, "/v1/skus/K", stock, &[])
        .await;
    assert_eq!(
        (none.status, none.problem_type()),
        (StatusCode::UNAUTHORIZED, "/problems/unauthorized")
    );
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    let wrong = server
        .send_as(Some("guess"), Method::PUT, "/v1/skus/K", stock, &[])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let channel = server
        .send_as(Some(WEB_KEY), Method::PUT, "/v1/skus/K", stock, &[])
        .await;
    assert_eq!(
        (channel.status, channel.problem_type()),
        (StatusCode::FORBIDDEN, "/problems/forbidden")
    );
    assert_eq!(
        server
            .send_as(Some(ADMIN_KEY), Method::PUT, "/v1/skus/K", stock, &[])
            .await
            .status,
        StatusCode::OK
    );

    // Admin writes check who asks, then the id in the path, then the body.
    let long_sku = format!("/v1/skus/{}", "x".repeat(65));
    let anonymous = server
        .send_as(None, Method::PUT, &long_sku, Some("{"), &[])
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let admin = server
        .send_as(Some(ADMIN_KEY), Method::PUT, &long_sku, Some("{"), &[])
        .await;
    assert_eq!(admin.status, StatusCode::BAD_REQUEST);
    let detail = admin.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("1 to 64 characters"), "{detail}");

    let post = |key: &'static str, idem: &'static str, body: String| {
        let server = &server;
        async move {
            server
                .send_as(
                    Some(key),
                    Method::POST,
                    "/v1/holds",
                    Some(&body),
                    &[("Idempotency-Key", idem)],
                )
                .await
        }
    };
    let web = post(WEB_KEY, "w1", cart(None)).await;
    assert_eq!(
        (web.status, web.body["channel"].as_str()),
        (StatusCode::CREATED, Some("web"))
    );
    let web_id = web.body["hold_id"].as_str().unwrap().to_owned();
    let posing = post(WEB_KEY, "w2", cart(Some("app"))).await;
    assert_eq!(
        posing.status,
        StatusCode::FORBIDDEN,
        "a web key cannot hold for app"
    );
    let for_app = post(ADMIN_KEY, "a1", cart(Some("app"))).await;
    assert_eq!(
        for_app.body["channel"], "app",
        "the admin acts for a named channel"
    );
    assert_eq!(
        post(APP_KEY, "w1", cart(None)).await.status,
        StatusCode::CREATED,
        "keys are scoped per channel"
    );

    let path = format!("/v1/holds/{web_id}");
    let peek = server
        .send_as(Some(APP_KEY), Method::GET, &path, None, &[])
        .await;
    assert_eq!(peek.status, StatusCode::FORBIDDEN);
    let confirm = server
        .send_as(
            Some(APP_KEY),
            Method::POST,
            &format!("{path}/confirm"),
            None,
            &[],
        )
        .await;
    assert_eq!(confirm.status, StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .send_as(Some(WEB_KEY), Method::GET, &path, None, &[])
            .await
            .body["status"],
        "held"
    );
    assert_eq!(
        server
            .send_as(Some(ADMIN_KEY), Method::GET, &path, None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let view = server
        .send_as(Some(ADMIN_KEY), Method::GET, "/v1/skus/K", None, &[])
        .await;
    assert_eq!(view.body["held"], 3);

    let availability = server
        .send_as(
            Some(WEB_KEY),
            Method::GET,
            "/v1/availability?sku=K",
            None,
            &[],
        )
        .await;
    assert_eq!(availability.body, json!({"K": 7}));
    for open in ["/health/live", "/health/ready", "/metrics"] {
        assert_eq!(
            server
                .send_as(None, Method::GET, open, None, &[])
                .await
                .status,
            StatusCode::OK,
            "{open}"
        );
    }
}

/// The scheme name is case-insensitive (RFC 9110): `bearer` and `BEARER` work; the key
/// itself is compared exactly, and a scheme without a key is refused.
#[actix_web::test]
async fn the_bearer_scheme_name_is_case_insensitive() {
    let server = spawn_with_keys().await;
    let read = |authorization: String| {
        server
            .client
            .get(server.url("/v1/admission"))
            .header("authorization", authorization)
            .send()
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let answer = read(format!("{scheme} {ADMIN_KEY}")).await.expect("answer");
        assert_eq!(answer.status(), StatusCode::OK, "{scheme}");
    }
    let wrong_case_key = read(format!("Bearer {}", ADMIN_KEY.to_uppercase()))
        .await
        .expect("answer");
    assert_eq!(wrong_case_key.status(), StatusCode::UNAUTHORIZED);
    for bad in ["Bearer", "Bearer ", "Basic abc", ADMIN_KEY] {
        let answer = read(bad.to_owned()).await.expect("answer");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
    }
}
