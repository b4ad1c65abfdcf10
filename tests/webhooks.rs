//! Webhooks against the real server and a real HTTP receiver in the test: every delivery
//! verifies under the Standard Webhooks algorithm (computed here, not by the server's
//! code); a receiver that fails, is slow, or is gone; coalescing; the crossing types from
//! expiry, release and feed; kill -9 with deliveries pending; bad registrations.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use common::{spawn_with, spawn_with_clock, Process, TestServer, WEB_KEY};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// Answered with a 2xx.
    accepted: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// 500 to the first n requests, then 200.
    FailFirst(usize),
    Always(u16),
    /// Holds each request until the gate opens, then 200.
    Gated,
    /// 429 with `Retry-After: n` to the next request, then 200.
    RetryAfter(u64),
}

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    gate: tokio::sync::watch::Sender<bool>,
    /// Requests being answered now, and the most at once.
    open: Arc<Mutex<(usize, usize)>>,
    /// When each request arrived.
    times: Arc<Mutex<Vec<std::time::Instant>>>,
    url: String,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let (gate, _) = tokio::sync::watch::channel(false);
        let mut receiver = Self {
            got: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
            gate,
            open: Arc::default(),
            times: Arc::default(),
            url: String::new(),
        };
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .route("/hook", web::post().to(receive))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        receiver.url = format!("http://127.0.0.1:{port}/hook");
        receiver
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().clone()
    }

    /// The latest `availability.changed` data per SKU it accepted, by version.
    fn latest(&self) -> std::collections::BTreeMap<String, Value> {
        let mut latest: std::collections::BTreeMap<String, Value> = Default::default();
        for received in self.got().into_iter().filter(|r| r.accepted) {
            let body = received.json();
            if body["type"] != "availability.changed" {
                continue;
            }
            let data = body["data"].clone();
            let sku = data["sku"].as_str().unwrap().to_owned();
            let newer = latest
                .get(&sku)
                .is_none_or(|seen| seen["version"].as_u64() < data["version"].as_u64());
            if newer {
                latest.insert(sku, data);
            }
        }
        latest
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Receiver>,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let received = Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
        accepted: false,
    };
    let behaviour = *state.behaviour.lock();
    let count = {
        let mut got = state.got.lock();
        let accepted = match behaviour {
            Behaviour::Ok | Behaviour::Gated => true,
            Behaviour::FailFirst(n) => got.len() >= n,
            Behaviour::Always(_) | Behaviour::RetryAfter(_) => false,
        };
        got.push(Received {
            accepted,
            ..received
        });
        state.times.lock().push(std::time::Instant::now());
        got.len()
    };
    match behaviour {
        Behaviour::Ok => HttpResponse::Ok().finish(),
        Behaviour::FailFirst(n) if count <= n => HttpResponse::InternalServerError().finish(),
        Behaviour::FailFirst(_) => HttpResponse::Ok().finish(),
        Behaviour::Always(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
        }
        Behaviour::RetryAfter(seconds) => {
            *state.behaviour.lock() = Behaviour::Ok;
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", seconds.to_string()))
                .finish()
        }
        Behaviour::Gated => {
            {
                let mut open = state.open.lock();
                open.0 += 1;
                open.1 = open.1.max(open.0);
            }
            let mut gate = state.gate.subscribe();
            let _ = gate.wait_for(|open| *open).await;
            state.open.lock().0 -= 1;
            HttpResponse::Ok().finish()
        }
    }
}

/// Standard Webhooks verification, written from the specification: the key is the
/// base64 after `whsec_`; the signature is base64 HMAC-SHA256 of `id.timestamp.body`.
fn verify(secret: &str, received: &Received) {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(received.signature, expected, "signature of {}", received.id);
    let sent_s: u64 = received.timestamp.parse().unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now_s.abs_diff(sent_s) < 3600, "timestamp {sent_s} near now");
}

fn allow_loopback(settings: &mut holdfast::Settings) {
    settings.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
}

async fn register(server: &TestServer, id: &str, body: Value) -> common::Answer {
    server
        .send(
            Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&body.to_string()),
            &[],
        )
        .await
}

async fn available(server: &TestServer, sku: &str) -> u64 {
    server.sku(sku).await["available"].as_u64().unwrap()
}

/// Waits (up to `seconds`) until `done` holds.
async fn eventually(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..seconds * 20 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// A receiver that answers 500 then 200 ends with the latest state; every delivery
/// verifies; retries of a message keep its id; the ping came first.
#[actix_web::test]
async fn a_failing_receiver_ends_with_the_latest_state_every_delivery_signed() {
    let receiver = Receiver::start(Behaviour::FailFirst(3)).await;
    let server = spawn_with(allow_loopback).await;
    server.set_stock("A", 6, 0).await;
    let created = register(
        &server,
        "shop",
        json!({"url": receiver.url, "events": ["availability.changed", "sku.sold_out", "sku.back_in_stock"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown = server
        .send(Method::GET, "/v1/webhooks/shop", None, &[])
        .await;
    assert!(
        shown.body.get("secret").is_none(),
        "the secret is shown once"
    );
    let mut holds = Vec::new();
    for i in 0..6 {
        let placed = server.hold(&format!("h{i}"), &[("A", 1)]).await;
        assert_eq!(placed.status, StatusCode::CREATED);
        holds.push(placed.body["hold_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        server.act(&holds[0], "release").await.status,
        StatusCode::OK
    );
    let want = available(&server, "A").await;
    assert!(
        eventually(15, || receiver
            .latest()
            .get("A")
            .is_some_and(|a| a["available"] == want))
        .await,
        "the receiver ends with {want} available: {:?}",
        receiver.latest()
    );
    // Every type that failed is delivered later, by a retry (the ping is never retried).
    let retried = |receiver: &Receiver| {
        let got = receiver.got();
        got.iter()
            .enumerate()
            .filter(|(_, r)| !r.accepted && r.kind() != "webhook.ping")
            .all(|(at, failed)| {
                got[at..]
                    .iter()
                    .any(|r| r.accepted && r.kind() == failed.kind())
            })
    };
    assert!(
        eventually(15, || retried(&receiver)).await,
        "{:?}",
        receiver.got()
    );
    let got = receiver.got();
    assert_eq!(got[0].kind(), "webhook.ping");
    for received in &got {
        verify(&secret, received);
    }
    let kinds: Vec<String> = got.iter().map(Received::kind).collect();
    assert!(kinds.contains(&"sku.sold_out".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"sku.back_in_stock".to_owned()),
        "release brings it back: {kinds:?}"
    );
    let deliveries = server
        .send(Method::GET, "/v1/webhooks/shop/deliveries", None, &[])
        .await;
    let attempts = deliveries.body.as_array().unwrap();
    assert!(attempts
        .iter()
        .any(|a| a["delivered"] == false && a["status"] == 500));
    assert!(
        attempts
            .iter()
            .any(|a| a["delivered"] == true && a["attempt"].as_u64() > Some(1)),
        "{attempts:#?}"
    );
}

/// A slow receiver never delays a hold, and gets a handful of up-to-date deliveries, not
/// one per change: per SKU and type one in flight and only the latest waiting.
#[actix_web::test]
async fn a_slow_receiver_never_delays_a_hold_and_gets_coalesced_deliveries() {
    let receiver = Receiver::start(Behaviour::Gated).await;
    let server = spawn_with(allow_loopback).await;
    server.set_stock("HOT", 1_000, 0).await;
    let created = register(
        &server,
        "slow",
        json!({"url": receiver.url, "events": ["availability.changed"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    // The ping is held at the gate; 200 holds go through meanwhile.
    for i in 0..200 {
        let placed = server.hold(&format!("hot-{i}"), &[("HOT", 1)]).await;
        assert_eq!(placed.status, StatusCode::CREATED);
    }
    assert!(
        receiver.open.lock().0 <= 4,
        "at most --webhook-in-flight-max open"
    );
    receiver.gate.send_replace(true);
    assert!(
        eventually(10, || receiver
            .latest()
            .get("HOT")
            .is_some_and(|a| a["available"] == 800))
        .await,
        "{:?}",
        receiver.latest()
    );
    let deliveries = receiver.got().len();
    assert!(deliveries <= 10, "{deliveries} deliveries for 200 changes");
}

/// 410 Gone disables an endpoint at once; failures in a row disable it after the limit;
/// both say why, and the gauge counts them.
#[actix_web::test]
async fn gone_and_repeated_failure_disable_an_endpoint_with_the_reason() {
    let gone = Receiver::start(Behaviour::Always(410)).await;
    let failing = Receiver::start(Behaviour::Always(500)).await;
    let server = spawn_with(|s| {
        allow_loopback(s);
        s.webhook_failures_max = 3;
        s.webhook_retry_max_s = 1;
    })
    .await;
    server.set_stock("A", 10, 0).await;
    let events = json!(["availability.changed"]);
    register(&server, "gone", json!({"url": gone.url, "events": events})).await;
    register(
        &server,
        "failing",
        json!({"url": failing.url, "events": events}),
    )
    .await;
    for i in 0..3 {
        server.hold(&format!("k{i}"), &[("A", 1)]).await;
    }
    let mut reasons = std::collections::BTreeMap::new();
    for id in ["gone", "failing"] {
        for _ in 0..200 {
            let shown = server
                .send(Method::GET, &format!("/v1/webhooks/{id}"), None, &[])
                .await;
            if !shown.body["disabled"].is_null() {
                reasons.insert(id, shown.body["disabled"]["reason"].clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        reasons["gone"].as_str().unwrap().contains("410"),
        "{reasons:?}"
    );
    assert!(
        reasons["failing"]
            .as_str()
            .unwrap()
            .starts_with("3 failed attempts in a row"),
        "{reasons:?}"
    );
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The recorder is the process's, shared by the servers of the tests running beside
    // this one: the counter only adds, so it is at least this test's two.
    let disabled = common::metric(&metrics, "holdfast_webhook_disabled_total");
    assert!(disabled >= Some(2.0), "{disabled:?}");
    // Disabled means no more deliveries; registering again resumes.
    let before = gone.got().len();
    server.hold("after", &[("A", 1)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gone.got().len(), before);
    let replay = server
        .send(
            Method::POST,
            "/v1/webhooks/gone/replay",
            Some(r#"{"since": 0}"#),
            &[],
        )
        .await;
    assert_eq!(
        replay.status,
        StatusCode::BAD_REQUEST,
        "a disabled endpoint is not replayed"
    );
}

/// sku.sold_out, sku.back_in_stock and sku.low_stock fire from expiry, release and a feed,
/// not only from holds; a channel endpoint sees its channel's availability.
#[actix_web::test]
async fn crossings_fire_from_expiry_release_and_feed() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let clock = common::manual_clock();
    let server = spawn_with_clock(
        |s| {
            allow_loopback(s);
            s.admin_key = Some(common::ADMIN_KEY.into());
            s.channel_keys.insert(
                holdfast::domain::Channel::parse("web").unwrap(),
                WEB_KEY.into(),
            );
        },
        clock.clone(),
    )
    .await;
    server.set_stock("A", 4, 2).await;
    let all = json!([
        "availability.changed",
        "sku.sold_out",
        "sku.back_in_stock",
        "sku.low_stock"
    ]);
    let created = register(
        &server,
        "web",
        json!({"url": receiver.url, "channel": "web", "events": all}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let types = |receiver: &Receiver| -> Vec<String> {
        receiver
            .got()
            .iter()
            .map(Received::kind)
            .filter(|k| k.starts_with("sku."))
            .collect()
    };
    // Hold 2 (low), hold 2 more (sold out); expiry gives all 4 back (back in stock).
    let body =
        json!({"lines": [{"sku": "A", "quantity": 2}], "customer_id": "c", "channel": "web"});
    let first = server.hold_raw("e1", &body.to_string()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    server.hold_raw("e2", &body.to_string()).await;
    assert!(
        eventually(5, || types(&receiver) == ["sku.low_stock", "sku.sold_out"]).await,
        "{:?}",
        types(&receiver)
    );
    clock.advance(16 * 60 * 1_000);
    assert!(
        eventually(5, || types(&receiver).len() == 3).await,
        "{:?}",
        types(&receiver)
    );
    assert_eq!(types(&receiver)[2], "sku.back_in_stock", "from expiry");
    // A hold and its release: low, then back above the threshold (no crossing); sold out
    // by a feed line, back in stock by an adjustment.
    let placed = server
        .hold_raw(
            "r1",
            &json!({"lines": [{"sku": "A", "quantity": 4}], "customer_id": "c", "channel": "web"})
                .to_string(),
        )
        .await;
    let id = placed.body["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(server.act(&id, "release").await.status, StatusCode::OK);
    assert!(
        eventually(5, || types(&receiver).len() == 5).await,
        "{:?}",
        types(&receiver)
    );
    assert_eq!(
        types(&receiver)[3..],
        ["sku.sold_out", "sku.back_in_stock"],
        "from release"
    );
    let feed = server
        .client
        .post(server.url("/v1/feeds/stock"))
        .bearer_auth(common::ADMIN_KEY)
        .body("{\"sku\":\"A\",\"on_hand\":0}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    assert!(
        eventually(5, || types(&receiver).len() == 6).await,
        "{:?}",
        types(&receiver)
    );
    assert_eq!(types(&receiver)[5], "sku.sold_out", "from a feed");
    // availability.changed of one SKU is at least --webhook-coalesce-ms apart.
    let web_view = |receiver: &Receiver| receiver.latest().get("A").map(|a| a["channels"].clone());
    assert!(eventually(5, || web_view(&receiver) == Some(json!({"web": 0}))).await);
    assert_eq!(
        web_view(&receiver),
        Some(json!({"web": 0})),
        "the channel's own view"
    );
}

/// kill -9 while deliveries wait (the receiver was failing): after the restart the
/// receiver gets the final state without any new change.
#[actix_web::test]
async fn deliveries_pending_at_a_kill_9_are_made_after_the_restart() {
    let receiver = Receiver::start(Behaviour::Always(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let allow = ["--webhook-allow-cidr", "127.0.0.1/32"];
    let (process, server) = Process::start_server(dir.path(), &allow);
    server.set_stock("A", 50, 0).await;
    let created = register(
        &server,
        "r",
        json!({"url": receiver.url, "events": ["availability.changed"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    for i in 0..20 {
        server.hold(&format!("k{i}"), &[("A", 1)]).await;
    }
    assert!(eventually(5, || receiver.got().len() >= 2).await);
    process.kill9();
    *receiver.behaviour.lock() = Behaviour::Ok;
    let (process, server) = Process::start_server(dir.path(), &allow);
    assert!(
        eventually(10, || receiver
            .latest()
            .get("A")
            .is_some_and(|a| a["available"] == 30))
        .await,
        "{:?}",
        receiver.latest()
    );
    assert_eq!(available(&server, "A").await, 30);
    process.kill9();
}

/// Bad registrations change nothing: internal addresses without an allowed range, no
/// events, unknown types, a bad secret, credentials in the URL, a channel key, too many.
#[actix_web::test]
async fn bad_registrations_are_refused() {
    let server = spawn_with(|s| s.webhooks_max = 1).await;
    // A public address, by number: no DNS needed (the ping to it may never connect).
    let public = "https://93.184.216.34/hook";
    for (body, why) in [
        (
            json!({"url": "http://127.0.0.1:9/hook", "events": ["availability.changed"]}),
            "loopback",
        ),
        (
            json!({"url": "http://10.1.2.3/hook", "events": ["availability.changed"]}),
            "private",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["availability.changed"]}),
            "link-local",
        ),
        (json!({"url": public, "events": []}), "no events"),
        (
            json!({"url": public, "events": ["stock.moved"]}),
            "unknown type",
        ),
        (
            json!({"url": public, "events": ["sku.sold_out"], "secret": "hunter2"}),
            "bad secret",
        ),
        (
            json!({"url": "https://u:p@93.184.216.34/", "events": ["sku.sold_out"]}),
            "credentials",
        ),
        (
            json!({"url": "ftp://93.184.216.34/", "events": ["sku.sold_out"]}),
            "scheme",
        ),
        (
            json!({"url": public, "events": ["sku.sold_out"], "extra": 1}),
            "unknown field",
        ),
    ] {
        let answer = register(&server, "w", body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{why}: {}",
            answer.body
        );
    }
    let listed = server.send(Method::GET, "/v1/webhooks", None, &[]).await;
    assert_eq!(listed.body, json!([]));
    let first = register(
        &server,
        "w",
        json!({"url": public, "events": ["sku.sold_out"]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = register(
        &server,
        "w2",
        json!({"url": public, "events": ["sku.sold_out"]}),
    )
    .await;
    assert_eq!(second.status, StatusCode::CONFLICT, "past --webhooks-max");
    let replaced = register(
        &server,
        "w",
        json!({"url": public, "events": ["sku.low_stock"]}),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "replacing is not adding");
    let deleted = server
        .send(Method::DELETE, "/v1/webhooks/w", None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = server
        .send(Method::DELETE, "/v1/webhooks/w", None, &[])
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let missing = server
        .send(Method::GET, "/v1/webhooks/nope", None, &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let keyed = common::spawn_with_keys().await;
    let as_web = keyed
        .send_as(
            Some(WEB_KEY),
            Method::PUT,
            "/v1/webhooks/w",
            Some(r#"{"url": "https://e.com/", "events": ["sku.sold_out"]}"#),
            &[],
        )
        .await;
    assert_eq!(as_web.status, StatusCode::FORBIDDEN);
}

/// A 429 with `Retry-After` is retried no sooner than it asks.
#[actix_web::test]
async fn retry_after_is_honoured() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let server = spawn_with(allow_loopback).await;
    server.set_stock("A", 10, 0).await;
    let created = register(
        &server,
        "polite",
        json!({"url": receiver.url, "events": ["availability.changed"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(
        eventually(5, || receiver.got().len() == 1).await,
        "the ping"
    );
    *receiver.behaviour.lock() = Behaviour::RetryAfter(2);
    server.hold("k", &[("A", 1)]).await;
    assert!(
        eventually(10, || receiver.got().len() == 3).await,
        "{:?}",
        receiver.got()
    );
    let times = receiver.times.lock().clone();
    let waited = times[2].duration_since(times[1]);
    assert!(
        waited >= Duration::from_millis(1_900),
        "retried after {waited:?}"
    );
    assert_eq!(
        receiver.got()[1].id,
        receiver.got()[2].id,
        "a retry keeps the message id"
    );
}
