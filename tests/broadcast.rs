//! Availability broadcast against the real server: the stream (SSE) and the change feed
//! follow every path that changes availability, resume exactly after a cursor, reset a
//! cursor that is too old, show a channel key only its channel, survive kill -9, and stay
//! within their limits.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{spawn_with, spawn_with_clock, Process, TestServer, ADMIN_KEY, WEB_KEY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// One Server-Sent Event: its id, its type (`message` unless named) and its data.
#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<u64>,
    kind: String,
    data: Value,
}

/// A stream being read, with what arrived and was not yet taken.
struct Sse {
    response: reqwest::Response,
    buffer: String,
    /// The stream ended (the server closed it).
    ended: bool,
}

impl Sse {
    async fn open(server: &TestServer, key: Option<&str>, query: &str, last: Option<u64>) -> Self {
        let mut request = server
            .client
            .get(server.url(&format!("/v1/availability/stream{query}")));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "content type"
        );
        Self {
            response,
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next event, or None if none arrives within `wait` (or the stream ended).
    async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
                Err(_) => return None,
            }
        }
    }

    /// Events until none arrives for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next(quiet).await {
            events.push(event);
        }
        events
    }
}

/// An event block, or None for comments and the reconnect delay.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut id, mut kind, mut data) = (None, "message".to_owned(), None);
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.parse().unwrap());
        } else if let Some(value) = line.strip_prefix("event: ") {
            kind = value.to_owned();
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(value).unwrap());
        }
    }
    Some(SseEvent {
        id,
        kind,
        data: data?,
    })
}

async fn changes(server: &TestServer, key: Option<&str>, query: &str) -> Value {
    let answer = server
        .send_as(key, Method::GET, &format!("/v1/changes{query}"), None, &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

async fn availability(server: &TestServer, skus: &[&str]) -> BTreeMap<String, u64> {
    let query: Vec<String> = skus.iter().map(|sku| format!("sku={sku}")).collect();
    let answer = server
        .send(
            Method::GET,
            &format!("/v1/availability?{}", query.join("&")),
            None,
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_value(answer.body).unwrap()
}

/// What a follower knows: per SKU the highest version seen and its event. Asserts that
/// versions rise strictly per SKU in stream order, and cursors rise.
#[derive(Default)]
struct Follower {
    latest: BTreeMap<String, Value>,
    states: BTreeMap<String, Vec<String>>,
    cursor: u64,
}

impl Follower {
    fn take(&mut self, events: &[SseEvent]) {
        for event in events {
            assert_eq!(event.kind, "message", "unexpected {event:?}");
            let seq = event.id.unwrap();
            assert_eq!(event.data["seq"], seq, "id and seq agree");
            assert!(seq > self.cursor, "cursor {seq} after {}", self.cursor);
            self.cursor = seq;
            let sku = event.data["sku"].as_str().unwrap().to_owned();
            let version = event.data["version"].as_u64().unwrap();
            if let Some(seen) = self.latest.get(&sku) {
                let before = seen["version"].as_u64().unwrap();
                assert!(version > before, "{sku}: version {version} after {before}");
            }
            let state = event.data["state"].as_str().unwrap().to_owned();
            let states = self.states.entry(sku.clone()).or_default();
            if states.last() != Some(&state) {
                states.push(state);
            }
            self.latest.insert(sku, event.data.clone());
        }
    }

    /// Reads the stream until it has every event the change feed has (a load on the
    /// machine can space events out more than any fixed quiet period).
    async fn catch_up(&mut self, stream: &mut Sse, server: &TestServer) {
        for _ in 0..200 {
            let after = changes(server, None, &format!("?since={}", self.cursor)).await;
            if after["events"].as_array().unwrap().is_empty() {
                return;
            }
            if let Some(event) = stream.next(Duration::from_millis(100)).await {
                self.take(&[event]);
            }
        }
        panic!(
            "the stream never caught up with the change feed at {}",
            self.cursor
        );
    }

    fn available(&self) -> BTreeMap<String, u64> {
        self.latest
            .iter()
            .map(|(sku, event)| (sku.clone(), event["available"].as_u64().unwrap()))
            .collect()
    }
}

/// A follower that watches a whole sale (racing holds on the last units, confirms,
/// releases, expiries, a feed, an adjustment, an allocation and a rebalance) ends with
/// exactly what `GET /v1/availability` says, each SKU's versions rising; sold-out and
/// back-in-stock show up from expiry, release and feed, not only from holds.
#[actix_web::test]
async fn a_follower_ends_with_what_availability_says() {
    let clock = common::manual_clock();
    let server = spawn_with_clock(|_| {}, clock.clone()).await;
    server.set_stock("A", 10, 3).await;
    server.set_stock("B", 4, 0).await;
    let mut stream = Sse::open(&server, None, "", None).await;
    let mut follower = Follower::default();

    // 16 shoppers race for A's 10 units, 2 each: exactly 5 win, and A sells out.
    let holds = futures_util::future::join_all(
        (0..16).map(|i| server.hold_owned(format!("race-{i}"), vec![("A", 2)])),
    )
    .await;
    let won: Vec<String> = holds
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .map(|a| a.body["hold_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(won.len(), 5);
    // One pays, one gives back (A back in stock from a release), the rest expire.
    assert_eq!(server.act(&won[0], "confirm").await.status, StatusCode::OK);
    assert_eq!(server.act(&won[1], "release").await.status, StatusCode::OK);
    follower.catch_up(&mut stream, &server).await;
    // The race's marks reach the journal in any order; a superseded one is skipped, so
    // "low" (2 left) may never be seen on the way down. The release brings A back.
    let a_states = &follower.states["A"];
    assert_eq!(a_states.first().unwrap(), "in_stock");
    assert_eq!(&a_states[a_states.len() - 2..], ["sold_out", "low"]);
    // Sold out again, then the clock passes the holds' deadline: expiry brings it back.
    let last = server.hold("last", &[("A", 2)]).await;
    assert_eq!(last.status, StatusCode::CREATED);
    clock.advance(16 * 60 * 1_000);
    for _ in 0..100 {
        if server.sku("A").await["held"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.sku("A").await["held"],
        0,
        "the sweep expired the holds"
    );
    // B sells out through a feed line, comes back through an adjustment, and A's quota
    // for web moves by an allocation and a rebalance.
    let feed = server
        .client
        .post(server.url("/v1/feeds/stock"))
        .header("content-type", "application/x-ndjson")
        .body("{\"sku\":\"B\",\"on_hand\":0}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    let found = json!({"delta": 7, "reason": "found"}).to_string();
    let adjusted = server
        .send(Method::POST, "/v1/skus/B/adjustments", Some(&found), &[])
        .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.body);
    let quotas = json!({"channels": {"web": {"units": 2}}}).to_string();
    let allocated = server
        .send(Method::PUT, "/v1/skus/A/allocation", Some(&quotas), &[])
        .await;
    assert_eq!(allocated.status, StatusCode::OK, "{}", allocated.body);
    let policy = json!({"policy": "release_unsold"}).to_string();
    let rebalanced = server
        .send(
            Method::POST,
            "/v1/skus/A/allocation/rebalance",
            Some(&policy),
            &[],
        )
        .await;
    assert_eq!(rebalanced.status, StatusCode::OK, "{}", rebalanced.body);

    follower.catch_up(&mut stream, &server).await;
    assert_eq!(
        follower.available(),
        availability(&server, &["A", "B"]).await
    );
    let a = server.sku("A").await;
    assert_eq!(
        follower.latest["A"]["channels"]["web"],
        a["channels"]["web"]["available"]
    );
    assert_eq!(
        follower.latest["A"]["channels"]["pool"],
        a["channels"]["pool"]["available"]
    );
    // Expiry gave A back after it sold out the second time, 2 units a hold; the feed
    // sold B out, the adjustment brought it back.
    let a_states = &follower.states["A"];
    assert_eq!(
        &a_states[a_states.len() - 5..],
        ["sold_out", "low", "sold_out", "low", "in_stock"]
    );
    assert_eq!(follower.states["B"], ["sold_out", "in_stock"]);
    // The change feed has the same events as the stream.
    let page = changes(&server, None, "?since=0&limit=1000").await;
    let fed: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| follower.latest.contains_key(e["sku"].as_str().unwrap()))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(fed.last().copied(), Some(follower.cursor));
    assert_eq!(page["reset"], false);
}

/// Disconnect mid-sale and reconnect with `Last-Event-ID`: the events after it, exactly,
/// nothing at or before it; the change feed pages through the same ones.
#[actix_web::test]
async fn a_stream_resumes_right_after_its_last_event() {
    let server = spawn_with(|_| {}).await;
    server.set_stock("A", 1_000, 0).await;
    let mut first = Sse::open(&server, None, "?sku=A", None).await;
    for i in 0..10 {
        let placed = server.hold(&format!("early-{i}"), &[("A", 1)]).await;
        assert_eq!(placed.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(first.next(Duration::from_secs(5)).await.unwrap());
    }
    let cursor = seen[3].id.unwrap();
    drop(first);
    for i in 0..10 {
        let placed = server.hold(&format!("late-{i}"), &[("A", 1)]).await;
        assert_eq!(placed.status, StatusCode::CREATED);
    }
    let mut resumed = Sse::open(&server, None, "?sku=A", Some(cursor)).await;
    // 6 early ones after the cursor and 10 late ones, and nothing more.
    let mut events = Vec::new();
    while events.len() < 16 {
        let event = resumed.next(Duration::from_secs(5)).await;
        events.push(event.unwrap_or_else(|| panic!("only {} events: {events:?}", events.len())));
    }
    let more = resumed.drain(Duration::from_millis(300)).await;
    assert!(more.is_empty(), "{more:?}");
    let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.iter().all(|id| *id > cursor));
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e.data["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[1] > w[0]), "{versions:?}");
    assert_eq!(events.last().unwrap().data["available"], 980);
    // Paged: the same events, a page of 5 at a time.
    let mut paged = Vec::new();
    let mut since = cursor;
    loop {
        let page = changes(&server, None, &format!("?sku=A&since={since}&limit=5")).await;
        let got = page["events"].as_array().unwrap();
        paged.extend(got.iter().map(|e| e["seq"].as_u64().unwrap()));
        let next = page["next"].as_u64().unwrap();
        if got.is_empty() {
            assert_eq!(next, since, "an empty page keeps the cursor where it is");
            break;
        }
        since = next;
    }
    assert_eq!(paged, ids);
    // With no cursor, the stream starts at the head: only what comes next.
    let mut fresh = Sse::open(&server, None, "?sku=A", None).await;
    assert!(fresh.next(Duration::from_millis(300)).await.is_none());
    server.hold("after", &[("A", 1)]).await;
    let next = fresh.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(next.data["available"], 979);
}

/// A cursor older than what is kept gets a reset on the stream and on the feed, with the
/// cursor to go on from; events after it then arrive as usual.
#[actix_web::test]
async fn a_cursor_older_than_what_is_kept_gets_a_reset() {
    let server = spawn_with(|s| s.stock_events_kept_max = 5).await;
    server.set_stock("A", 100, 0).await;
    for i in 0..12 {
        server.hold(&format!("k-{i}"), &[("A", 1)]).await;
    }
    let page = changes(&server, None, "?since=0").await;
    assert_eq!(page["reset"], true);
    assert_eq!(page["events"], json!([]));
    let head = page["next"].as_u64().unwrap();
    let kept = changes(&server, None, &format!("?since={}", head - 1)).await;
    assert_eq!(kept["reset"], false);

    let mut stream = Sse::open(&server, None, "", Some(1)).await;
    let reset = stream.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(reset.kind, "reset");
    assert_eq!(reset.id, Some(head));
    assert_eq!(reset.data["next"], head);
    server.hold("after-reset", &[("A", 1)]).await;
    let next = stream.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(next.kind, "message");
    assert_eq!(next.data["available"], 87);
}

/// A channel key sees its own channel's availability; the admin key sees every channel
/// and the pool.
#[actix_web::test]
async fn a_channel_key_sees_its_own_channel() {
    let server = common::spawn_with_keys().await;
    server.set_stock("A", 10, 0).await;
    let quotas = json!({"channels": {"web": {"units": 2}, "app": {"units": 5}}}).to_string();
    let allocated = server
        .send(Method::PUT, "/v1/skus/A/allocation", Some(&quotas), &[])
        .await;
    assert_eq!(allocated.status, StatusCode::OK);
    let mut web = Sse::open(&server, Some(WEB_KEY), "", None).await;
    let mut admin = Sse::open(&server, Some(ADMIN_KEY), "", None).await;
    let body = json!({"lines": [{"sku": "A", "quantity": 1}], "customer_id": "c"}).to_string();
    let placed = server
        .send_as(
            Some(WEB_KEY),
            Method::POST,
            "/v1/holds",
            Some(&body),
            &[("Idempotency-Key", "w1")],
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED);
    let seen = web.next(Duration::from_secs(5)).await.unwrap();
    // web: 1 of its 2 left plus the 3 in the pool.
    assert_eq!(seen.data["available"], 4);
    assert_eq!(seen.data["channels"], json!({"web": 4}));
    let all = admin.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(all.data["available"], 9);
    assert_eq!(all.data["channels"], json!({"web": 4, "app": 8, "pool": 3}));
    assert_eq!(all.id, seen.id);
    let unauthenticated = server
        .send_as(None, Method::GET, "/v1/availability/stream", None, &[])
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}

/// Subscribers are capped (503 past it, a place freed when one leaves), and bad cursors,
/// limits and parameters are refused with 400.
#[actix_web::test]
async fn streams_are_bounded_and_bad_queries_refused() {
    let server = spawn_with(|s| {
        s.stream_subscribers_max = 2;
        // A stream learns its client left when a write fails: keep-alives write often.
        s.stream_keepalive_s = 1;
    })
    .await;
    let first = Sse::open(&server, None, "", None).await;
    let _second = Sse::open(&server, None, "", None).await;
    let third = server
        .send(Method::GET, "/v1/availability/stream", None, &[])
        .await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    drop(first);
    let mut reopened = false;
    for _ in 0..100 {
        let again = server
            .send(Method::GET, "/v1/availability/stream", None, &[])
            .await;
        if again.status == StatusCode::OK {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "a stream that ended gives its place back");
    for query in [
        "/v1/changes?since=abc",
        "/v1/changes?since=-1",
        "/v1/changes?since=9007199254740992",
        "/v1/changes?limit=0",
        "/v1/changes?limit=1001",
        "/v1/changes?cursor=1",
        "/v1/changes?sku=",
        "/v1/availability/stream?limit=5",
        "/v1/availability/stream?since=x",
    ] {
        let answer = server.send(Method::GET, query, None, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.problem_type(), "/problems/invalid-request");
    }
    let answer = server
        .send(
            Method::GET,
            "/v1/availability/stream",
            None,
            &[("Last-Event-ID", "not-a-cursor")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

/// kill -9 mid-sale: after the restart every SKU's version goes on from where it was,
/// a cursor from before the crash resumes from the journal, and the events end with what
/// availability says.
#[actix_web::test]
async fn versions_and_cursors_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (process, server) = Process::start_server(dir.path(), &[]);
    server.set_stock("A", 500, 0).await;
    for i in 0..40 {
        let placed = server.hold(&format!("pre-{i}"), &[("A", 1)]).await;
        assert_eq!(placed.status, StatusCode::CREATED);
    }
    let page = changes(&server, None, "?since=0&limit=1000").await;
    let events = page["events"].as_array().unwrap();
    let cursor = events[10]["seq"].as_u64().unwrap();
    let version_before = events.last().unwrap()["version"].as_u64().unwrap();
    process.kill9();

    let (process, server) = Process::start_server(dir.path(), &[]);
    let resumed = changes(&server, None, &format!("?since={cursor}&limit=1000")).await;
    assert_eq!(resumed["reset"], false);
    let again: Vec<u64> = resumed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = events[11..]
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        again, expected,
        "the same events after the cursor, from the journal"
    );
    let placed = server.hold("post", &[("A", 1)]).await;
    assert_eq!(placed.status, StatusCode::CREATED);
    let after = changes(&server, None, &format!("?since={}", page["next"])).await;
    let event = &after["events"][0];
    assert_eq!(event["version"].as_u64().unwrap(), version_before + 1);
    assert_eq!(event["available"], 459);
    assert_eq!(availability(&server, &["A"]).await["A"], 459);
    process.kill9();
}

/// A mark counts every reservation its SKU had made, and a reservation is written with its
/// hold, after the mark may have been: a crash in between leaves the last mark counting a
/// hold that never was. The start publishes a mark of what the SKU has, before it says
/// ready.
#[actix_web::test]
async fn a_mark_counting_a_hold_the_crash_took_is_restated_at_start() {
    use holdfast::sku::mark::StockMark;
    use holdfast::store::Event;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (process, server) = Process::start_server(&data, &[]);
    server.set_stock("A", 10, 0).await;
    let set = changes(&server, None, "?since=0").await;
    let version = set["events"][0]["version"].as_u64().unwrap();
    process.kill9();
    // What the crash left: a later change's mark counting 3 units of a hold whose
    // `HoldPlaced` never reached the disk.
    let marked = Event::SkuMarked {
        sku: holdfast::domain::SkuId::parse("A").unwrap(),
        change: holdfast::sku::SkuChange::Restated,
        mark: StockMark {
            version: version + 1,
            at_ms: 0,
            available: 7,
            pool: 7,
            channels: Vec::new(),
            low_stock_threshold: 0,
            signal: None,
            sale: None,
        },
    };
    common::append_to_journal(&data, vec![marked]).await;
    let (process, server) = Process::start_server(&data, &[]);
    let page = changes(&server, None, "?since=0").await;
    let events = page["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["version"].as_u64().unwrap(), version + 2, "{page}");
    assert_eq!(last["available"], 10);
    assert_eq!(availability(&server, &["A"]).await["A"], 10);
    // Started again with nothing wrong, nothing is restated.
    process.kill9();
    let (process, server) = Process::start_server(&data, &[]);
    let again = changes(&server, None, "?since=0").await;
    assert_eq!(again["events"].as_array().unwrap().len(), events.len());
    process.kill9();
}

/// A sale's window opening and closing reaches channels as events of its SKUs, and so
/// does a SKU leaving the sale.
#[actix_web::test]
async fn sale_windows_opening_and_closing_are_events() {
    let clock = common::manual_clock();
    let server = spawn_with_clock(|_| {}, clock.clone()).await;
    server.set_stock("A", 10, 0).await;
    server.set_stock("B", 10, 0).await;
    let head = changes(&server, None, "").await["next"].as_u64().unwrap();
    let now_ms = clock.now_ms();
    let at = |ms: u64| holdfast::clock::rfc3339(ms);
    let sale = |skus: Value, after_end: &str| {
        json!({"name": "Drop", "starts_at": at(now_ms + 60_000), "ends_at": at(now_ms + 120_000),
            "skus": skus, "after_end": after_end})
        .to_string()
    };
    let put = server
        .send(
            Method::PUT,
            "/v1/sales/drop",
            Some(&sale(json!(["A", "B"]), "open")),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    // Waits for the events after `since` that show SKU `sku` with `window`.
    let wait_for = |since: u64, sku: &'static str, window: Value| {
        let server = &server;
        async move {
            for _ in 0..100 {
                let page = changes(server, None, &format!("?since={since}&sku={sku}")).await;
                if let Some(last) = page["events"].as_array().unwrap().last() {
                    if last["sale"] == window {
                        return page["next"].as_u64().unwrap();
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no event for {sku} with sale {window}");
        }
    };
    let closed = json!({"sale_id": "drop", "open": false});
    let open = json!({"sale_id": "drop", "open": true});
    let cursor = wait_for(head, "A", closed.clone()).await;
    wait_for(head, "B", closed.clone()).await;
    clock.advance(61_000);
    let cursor = wait_for(cursor, "A", open.clone()).await;
    // B leaves the sale while it is open: its next event has no sale. The sale now closes
    // its SKUs when it ends.
    let put = server
        .send(
            Method::PUT,
            "/v1/sales/drop",
            Some(&sale(json!(["A"]), "closed")),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    wait_for(cursor, "B", Value::Null).await;
    clock.advance(60_000);
    let cursor = wait_for(cursor, "A", closed).await;
    // Changed to let its SKUs sell normally after the end: A leaves the sale.
    let put = server
        .send(
            Method::PUT,
            "/v1/sales/drop",
            Some(&sale(json!(["A"]), "open")),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let cursor = wait_for(cursor, "A", Value::Null).await;
    // Nothing changes while nothing flips: no event is invented.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let quiet = changes(&server, None, &format!("?since={cursor}")).await;
    assert_eq!(quiet["events"], json!([]), "{quiet}");
}
