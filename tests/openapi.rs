//! The OpenAPI document against the server that serves it: the committed
//! `docs/openapi.json` is what the server serves with default settings; every documented
//! path answers its documented methods and refuses the others with 405 naming them; every
//! problem type resolves to a page; the interactive reference is served from the binary.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::spawn;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn committed() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.json is readable");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

async fn served(server: &common::TestServer) -> Value {
    let answer = server.send(Method::GET, "/openapi.json", None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

#[actix_web::test]
async fn the_committed_document_is_the_served_one() {
    let server = spawn().await;
    let served = served(&server).await;
    assert_eq!(served["openapi"], "3.1.0");
    assert!(
        served == committed(),
        "docs/openapi.json is stale: regenerate it with \
         `cargo run -- openapi > docs/openapi.json` and review the diff"
    );
}

/// A documented path with every `{param}` filled with a value of the right shape.
fn concrete(path: &str) -> String {
    path.replace("{hold_id}", "01J00000000000000000000000")
        .replace("{name}", "sold-out")
        .replace(['{', '}'], "")
}

#[actix_web::test]
async fn every_documented_path_answers_its_methods_and_405s_the_rest() {
    let server = spawn().await;
    let doc = served(&server).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 18, "only {} paths documented", paths.len());
    for (path, item) in paths {
        let documented: BTreeSet<&str> = METHODS
            .into_iter()
            .filter(|method| item.get(*method).is_some())
            .collect();
        let url = concrete(path);
        for method in METHODS {
            let answer = server
                .send(
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                    &url,
                    Some("{}"),
                    &[],
                )
                .await;
            if documented.contains(method) {
                // Bad or missing input may be refused, but the route exists.
                assert_ne!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_ne!(
                    answer.body["detail"], "no such path",
                    "{method} {url} is documented but not routed"
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                let allow: BTreeSet<String> = answer
                    .headers
                    .get("allow")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .split(", ")
                    .map(str::to_lowercase)
                    .collect();
                let expected: BTreeSet<String> =
                    documented.iter().map(|m| (*m).to_owned()).collect();
                assert_eq!(allow, expected, "Allow header of {path}");
            }
        }
    }
}

#[actix_web::test]
async fn every_problem_type_resolves_to_a_page() {
    let server = spawn().await;
    let doc = served(&server).await;
    let examples = doc["components"]["examples"]
        .as_object()
        .expect("problem examples");
    assert_eq!(examples.len(), 13);
    for (name, example) in examples {
        let uri = example["value"]["type"].as_str().expect("type");
        assert_eq!(uri, format!("/problems/{name}"));
        let page = server
            .client
            .get(server.url(uri))
            .send()
            .await
            .expect("answer");
        assert_eq!(page.status(), StatusCode::OK, "{uri}");
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html"));
        let text = page.text().await.expect("body");
        let title = example["value"]["title"].as_str().expect("title");
        assert!(text.contains(title), "{uri} does not name {title}");
    }
    let unknown = server
        .send(Method::GET, "/problems/no-such-problem", None, &[])
        .await;
    assert_eq!(unknown.problem_type(), "/problems/not-found");
}

#[actix_web::test]
async fn the_interactive_reference_is_served_from_the_binary() {
    let server = spawn().await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(server.url("/docs"))
        .send()
        .await
        .expect("answer");
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/docs/");
    for asset in [
        "/docs/",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let answer = server
            .client
            .get(server.url(asset))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), StatusCode::OK, "{asset}");
        let text = answer.text().await.expect("body");
        assert!(text.len() > 100, "{asset} is nearly empty");
        if asset.ends_with("initializer.js") {
            assert!(text.contains("/openapi.json"), "the UI reads our document");
        }
    }
}

#[actix_web::test]
async fn the_served_document_shows_this_servers_limits() {
    let server = common::spawn_with(|s| {
        s.hold_lines_max = 7;
        s.hold_ttl_s_max = 120;
        s.availability_skus_max = 3;
    })
    .await;
    let doc = served(&server).await;
    let hold = &doc["components"]["schemas"]["HoldBody"]["properties"];
    assert_eq!(hold["lines"]["maxItems"], 7);
    assert_eq!(hold["ttl_seconds"]["maximum"], 120);
    let sale = &doc["components"]["schemas"]["SaleBody"]["properties"];
    assert_eq!(sale["hold_ttl_s"]["maximum"], 120);
    let availability = &doc["paths"]["/v1/availability"]["get"]["parameters"][0];
    assert_eq!(availability["name"], "sku");
    assert_eq!(availability["schema"]["maxItems"], 3);
}
