//! Stock in many places: each routing policy places exactly the documented split, racing
//! holds never oversell a location, pins and paused locations are obeyed, fulfilment moves
//! stock only where the hold took it (all of it or part), feeds counted before shipments
//! are corrected by them, everything survives kill -9, and a deployment that names no
//! location answers as before.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::{assert_conserved, Process, TestServer};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn put(server: &TestServer, path: &str, body: Value) -> common::Answer {
    let answer = server
        .send(Method::PUT, path, Some(&body.to_string()), &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "PUT {path}: {}", answer.body);
    answer
}

async fn location(server: &TestServer, id: &str, priority: u32, region: &str) {
    let body = json!({"name": id, "priority": priority, "region": region});
    put(server, &format!("/v1/locations/{id}"), body).await;
}

async fn stock(server: &TestServer, sku: &str, at: &[(&str, u64)]) {
    for (location, on_hand) in at {
        let path = format!("/v1/skus/{sku}/locations/{location}");
        put(server, &path, json!({"on_hand": on_hand})).await;
    }
}

/// `POST /v1/holds` for `channel` with `lines` of (sku, quantity) and `extra` fields.
async fn hold(
    server: &TestServer,
    key: &str,
    channel: &str,
    lines: &[(&str, u64)],
    extra: Value,
) -> common::Answer {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, q)| json!({"sku": sku, "quantity": q}))
        .collect();
    let mut body = json!({"lines": lines, "customer_id": "c-1", "channel": channel});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    server.hold_raw(key, &body.to_string()).await
}

/// A hold line's allocations as (location, quantity).
fn allocations(line: &Value) -> Vec<(String, u64)> {
    line["allocations"]
        .as_array()
        .unwrap_or_else(|| panic!("no allocations in {line}"))
        .iter()
        .map(|a| {
            (
                a["location"].as_str().unwrap().to_owned(),
                a["quantity"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn at(view: &Value, location: &str, field: &str) -> u64 {
    view["locations"][location][field]
        .as_u64()
        .unwrap_or_else(|| panic!("{location}.{field} in {view}"))
}

/// Each policy's split, from the documented rule: the whole line from the first location
/// in the policy's order that has it all, else (if allowed) from each in turn.
#[actix_web::test]
async fn each_policy_places_the_documented_split() {
    let server = common::spawn().await;
    location(&server, "a", 1, "east").await;
    location(&server, "b", 2, "west").await;
    location(&server, "c", 3, "west").await;
    // Tied priorities fall back to the id.
    location(&server, "t2", 7, "north").await;
    location(&server, "t1", 7, "north").await;
    type Case = (
        &'static str,
        &'static str,
        Value,
        u64,
        &'static [(&'static str, u64)],
    );
    let cases: [Case; 11] = [
        ("priority", "priority", json!({}), 4, &[("a", 4)]),
        // a cannot fill 7 on its own, b can: one location beats priority order.
        ("priority", "priority", json!({}), 7, &[("b", 7)]),
        ("priority", "priority", json!({}), 12, &[("a", 5), ("b", 7)]),
        ("most", "most_stock", json!({}), 4, &[("b", 4)]),
        ("most", "most_stock", json!({}), 12, &[("b", 10), ("a", 2)]),
        (
            "near",
            "nearest",
            json!({"ship_to": {"region": "west"}}),
            2,
            &[("b", 2)],
        ),
        (
            "near",
            "nearest",
            json!({"ship_to": {"region": "west"}}),
            12,
            &[("b", 10), ("c", 2)],
        ),
        (
            "near",
            "nearest",
            json!({"ship_to": {"region": "east"}}),
            2,
            &[("a", 2)],
        ),
        ("near", "nearest", json!({}), 2, &[("a", 2)]),
        ("tie", "priority", json!({}), 2, &[("t1", 2)]),
        ("tie", "most_stock", json!({}), 2, &[("t1", 2)]),
    ];
    for (index, (channel, routing, extra, quantity, expected)) in cases.iter().enumerate() {
        let sku = format!("S{index}");
        if *channel == "tie" {
            stock(&server, &sku, &[("t2", 6), ("t1", 6)]).await;
        } else {
            stock(&server, &sku, &[("a", 5), ("b", 10), ("c", 3)]).await;
        }
        let policy = if *channel == "tie" {
            json!({"routing": routing, "locations": ["t1", "t2"]})
        } else {
            json!({"routing": routing, "locations": ["a", "b", "c"]})
        };
        let name = format!("{channel}-{index}");
        put(&server, &format!("/v1/channels/{name}"), policy).await;
        let placed = hold(
            &server,
            &format!("k{index}"),
            &name,
            &[(&sku, *quantity)],
            extra.clone(),
        )
        .await;
        assert_eq!(
            placed.status,
            StatusCode::CREATED,
            "case {index}: {}",
            placed.body
        );
        let expected: Vec<(String, u64)> = expected
            .iter()
            .map(|(l, q)| ((*l).to_owned(), *q))
            .collect();
        assert_eq!(
            allocations(&placed.body["lines"][0]),
            expected,
            "case {index} ({routing}, {extra})"
        );
        let view = server.sku(&sku).await;
        assert_conserved(&view);
        for (location, units) in &expected {
            assert_eq!(at(&view, location, "held"), *units, "case {index}: {view}");
        }
    }
    // No split: no one location has 12, so it is sold out though 18 are in stock.
    stock(&server, "NOSPLIT", &[("a", 5), ("b", 10), ("c", 3)]).await;
    let refused = hold(
        &server,
        "ns",
        "priority-0",
        &[("NOSPLIT", 12)],
        json!({"allow_split": false}),
    )
    .await;
    assert_eq!(
        refused.problem_type(),
        "/problems/sold-out",
        "{}",
        refused.body
    );
    assert_eq!(refused.body["available"], 10, "{}", refused.body);
}

/// The whole cart from as few locations as possible: b has both lines, so both come from
/// b, where `priority` would take the first line from a and the second from b.
#[actix_web::test]
async fn fewest_locations_keeps_a_cart_together() {
    let server = common::spawn().await;
    location(&server, "a", 1, "east").await;
    location(&server, "b", 2, "west").await;
    stock(&server, "X", &[("a", 5), ("b", 5)]).await;
    stock(&server, "Y", &[("b", 5)]).await;
    put(
        &server,
        "/v1/channels/web",
        json!({"routing": "fewest_locations"}),
    )
    .await;
    put(&server, "/v1/channels/app", json!({"routing": "priority"})).await;
    let together = hold(&server, "f", "web", &[("X", 2), ("Y", 2)], json!({})).await;
    assert_eq!(together.status, StatusCode::CREATED, "{}", together.body);
    assert_eq!(
        allocations(&together.body["lines"][0]),
        [("b".to_owned(), 2)]
    );
    assert_eq!(
        allocations(&together.body["lines"][1]),
        [("b".to_owned(), 2)]
    );
    let apart = hold(&server, "p", "app", &[("X", 2), ("Y", 2)], json!({})).await;
    assert_eq!(allocations(&apart.body["lines"][0]), [("a".to_owned(), 2)]);
    assert_eq!(allocations(&apart.body["lines"][1]), [("b".to_owned(), 2)]);
}

/// 300 holds race for 100 units over three locations, half of them carts whose other line
/// is stocked at one location only: no location is ever oversold, every cart is all or
/// nothing, and what the holds say they took is exactly what each location holds.
#[actix_web::test]
async fn racing_holds_never_oversell_any_location() {
    let server = common::spawn_with(|s| s.http_workers = 4).await;
    for (id, priority) in [("a", 1), ("b", 2), ("c", 3)] {
        location(&server, id, priority, "any").await;
    }
    stock(&server, "R", &[("a", 30), ("b", 30), ("c", 40)]).await;
    stock(&server, "Q", &[("c", 50)]).await;
    let requests = (0..300).map(|n| {
        let server = &server;
        async move {
            let lines: &[(&str, u64)] = if n % 2 == 0 {
                &[("R", 1), ("Q", 1)]
            } else {
                &[("R", 1)]
            };
            hold(server, &format!("race-{n}"), "default", lines, json!({})).await
        }
    });
    let answers = join_all(requests).await;
    let mut took: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let (mut r_units, mut q_units) = (0, 0);
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => {
                let lines = answer.body["lines"].as_array().unwrap();
                for line in lines {
                    let sku = line["sku"].as_str().unwrap().to_owned();
                    for (location, units) in allocations(line) {
                        *took.entry((sku.clone(), location)).or_default() += units;
                    }
                    match sku.as_str() {
                        "R" => r_units += 1,
                        _ => q_units += 1,
                    }
                }
            }
            StatusCode::CONFLICT => assert_eq!(answer.problem_type(), "/problems/sold-out"),
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert!(r_units <= 100 && q_units <= 50, "R {r_units}, Q {q_units}");
    assert!(r_units >= 50, "R cannot sell out before Q does: {r_units}");
    for sku in ["R", "Q"] {
        let view = server.sku(sku).await;
        assert_conserved(&view);
        let held: u64 = view["held"].as_u64().unwrap();
        assert_eq!(held, if sku == "R" { r_units } else { q_units }, "{view}");
        for (location, figures) in view["locations"].as_object().unwrap() {
            let expected = took
                .get(&(sku.to_owned(), location.clone()))
                .copied()
                .unwrap_or(0);
            assert_eq!(figures["held"], expected, "{sku} at {location}: {view}");
        }
    }
}

/// A pinned line draws only from its location; a paused location draws nothing and
/// refuses pins; a pickup-only one takes pinned lines only; a channel sells only from its
/// own locations.
#[actix_web::test]
async fn pins_pauses_and_channel_locations_are_obeyed() {
    let server = common::spawn().await;
    location(&server, "a", 1, "east").await;
    location(&server, "c", 3, "east").await;
    let store =
        json!({"name": "Store 12", "kind": "store", "status": "pickup_only", "priority": 0});
    put(&server, "/v1/locations/store-12", store).await;
    stock(&server, "S", &[("a", 2), ("store-12", 10), ("c", 4)]).await;
    let pin = |location: &str, quantity: u64| {
        json!({"lines": [{"sku": "S", "quantity": quantity, "location": location}],
            "customer_id": "c-1"})
        .to_string()
    };
    let pinned = server.hold_raw("p1", &pin("store-12", 3)).await;
    assert_eq!(pinned.status, StatusCode::CREATED, "{}", pinned.body);
    assert_eq!(
        allocations(&pinned.body["lines"][0]),
        [("store-12".to_owned(), 3)]
    );
    // Pinned to a, which has 2: sold out, though the SKU has plenty elsewhere.
    let short = server.hold_raw("p2", &pin("a", 3)).await;
    assert_eq!(short.problem_type(), "/problems/sold-out", "{}", short.body);
    assert_eq!(short.body["available"], 2);
    // Unpinned: the pickup-only store is not a candidate.
    let routed = hold(&server, "u1", "default", &[("S", 5)], json!({})).await;
    assert_eq!(
        allocations(&routed.body["lines"][0]),
        [("a".to_owned(), 2), ("c".to_owned(), 3)]
    );
    put(
        &server,
        "/v1/locations/a",
        json!({"name": "a", "priority": 1, "status": "paused"}),
    )
    .await;
    stock(&server, "P", &[("a", 9), ("c", 9)]).await;
    let around = hold(&server, "u2", "default", &[("P", 2)], json!({})).await;
    assert_eq!(allocations(&around.body["lines"][0]), [("c".to_owned(), 2)]);
    let paused = server
        .hold_raw("p3", &pin("a", 1).replace("\"S\"", "\"P\""))
        .await;
    assert_eq!(paused.status, StatusCode::CONFLICT, "{}", paused.body);
    assert!(paused.body["detail"].as_str().unwrap().contains("paused"));
    // A channel limited to c never takes from the store, even pinned.
    put(&server, "/v1/channels/web", json!({"locations": ["c"]})).await;
    let body = json!({"lines": [{"sku": "S", "quantity": 1, "location": "store-12"}],
        "customer_id": "c-1", "channel": "web"});
    let not_web = server.hold_raw("p4", &body.to_string()).await;
    assert_eq!(not_web.status, StatusCode::CONFLICT, "{}", not_web.body);
    let view = server.sku("S").await;
    assert_conserved(&view);
    assert_eq!(at(&view, "store-12", "held"), 3);
    assert_eq!(at(&view, "a", "held"), 2);
}

/// Fulfil lowers on_hand and committed where the hold took its units and nowhere else,
/// in part (`locations`) or in full; release gives units back where they came from; all
/// of it, the locations and the policies survive kill -9.
#[actix_web::test]
async fn fulfil_moves_stock_only_where_the_hold_took_it() {
    let dir = tempfile::tempdir().unwrap();
    let (process, server) = Process::start_server(dir.path(), &[]);
    location(&server, "a", 1, "east").await;
    location(&server, "b", 2, "west").await;
    location(&server, "c", 3, "west").await;
    stock(&server, "F", &[("a", 5), ("b", 5), ("c", 5)]).await;
    let placed = hold(&server, "f1", "default", &[("F", 8)], json!({})).await;
    assert_eq!(
        allocations(&placed.body["lines"][0]),
        [("a".to_owned(), 5), ("b".to_owned(), 3)]
    );
    let id = placed.body["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(server.act(&id, "confirm").await.status, StatusCode::OK);
    let fulfil = |body: Value| {
        let server = &server;
        let id = id.clone();
        async move {
            let path = format!("/v1/holds/{id}/fulfil");
            server
                .send(Method::POST, &path, Some(&body.to_string()), &[])
                .await
        }
    };
    let elsewhere = fulfil(json!({"locations": ["c"]})).await;
    assert_eq!(elsewhere.status, StatusCode::CONFLICT, "{}", elsewhere.body);
    let part = fulfil(json!({"locations": ["b"]})).await;
    assert_eq!(part.status, StatusCode::OK, "{}", part.body);
    assert_eq!(part.body["status"], "confirmed");
    assert_eq!(part.body["shipped_from"], json!(["b"]));
    let view = server.sku("F").await;
    assert_conserved(&view);
    assert_eq!(
        (at(&view, "b", "on_hand"), at(&view, "b", "committed")),
        (2, 0)
    );
    assert_eq!(
        (at(&view, "a", "on_hand"), at(&view, "a", "committed")),
        (5, 5)
    );
    assert_eq!(
        (at(&view, "c", "on_hand"), at(&view, "c", "committed")),
        (5, 0)
    );
    // A second hold, released: its units go back where they came from.
    let other = hold(&server, "f2", "default", &[("F", 4)], json!({})).await;
    assert_eq!(allocations(&other.body["lines"][0]), [("c".to_owned(), 4)]);
    let other_id = other.body["hold_id"].as_str().unwrap().to_owned();
    put(
        &server,
        "/v1/channels/web",
        json!({"routing": "most_stock"}),
    )
    .await;

    // Everything above survives kill -9 (the journal replayed), then a graceful stop (a
    // snapshot written, and read back at the next start).
    process.kill9();
    let (process, _) = Process::start_server(dir.path(), &[]);
    assert_eq!(process.terminate().code(), Some(0));
    let (process, server) = Process::start_server(dir.path(), &[]);
    let view = server.sku("F").await;
    assert_conserved(&view);
    assert_eq!(
        (at(&view, "b", "on_hand"), at(&view, "a", "committed")),
        (2, 5)
    );
    assert_eq!(at(&view, "c", "held"), 4);
    let after = server.get_hold(&id).await.body;
    assert_eq!(after["shipped_from"], json!(["b"]), "{after}");
    assert_eq!(
        allocations(&after["lines"][0]),
        [("a".to_owned(), 5), ("b".to_owned(), 3)]
    );
    let policy = server
        .send(Method::GET, "/v1/channels/web", None, &[])
        .await;
    assert_eq!(policy.body["routing"], "most_stock");
    let listed = server.send(Method::GET, "/v1/locations", None, &[]).await;
    let ids: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["location_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", "a", "b", "c"]);

    assert_eq!(
        server.act(&other_id, "release").await.status,
        StatusCode::OK
    );
    let all = server
        .send(Method::POST, &format!("/v1/holds/{id}/fulfil"), None, &[])
        .await;
    assert_eq!(all.body["status"], "fulfilled", "{}", all.body);
    let view = server.sku("F").await;
    assert_conserved(&view);
    assert_eq!(
        (at(&view, "a", "on_hand"), at(&view, "a", "committed")),
        (0, 0)
    );
    assert_eq!(
        (at(&view, "b", "on_hand"), at(&view, "c", "on_hand")),
        (2, 5)
    );
    assert_eq!(at(&view, "c", "held"), 0);
    assert_eq!(view["on_hand"], 7);
    // The per-location totals over all SKUs (one SKU here, in a process of its own),
    // counted from the restored state and every change since.
    let page = server.metrics().await;
    for (location, state, units) in [
        ("a", "on_hand", 0.0),
        ("a", "committed", 0.0),
        ("b", "on_hand", 2.0),
        ("c", "on_hand", 5.0),
        ("c", "held", 0.0),
        ("c", "available", 5.0),
    ] {
        let series =
            format!("holdfast_location_units{{location=\"{location}\",state=\"{state}\"}}");
        assert_eq!(common::metric(&page, &series), Some(units), "{series}");
    }
    drop(process);
}

/// The issue's example: counted 10 at 06:00, 2 shipped at 06:02, loaded at 06:05: 8.
/// Units received after the count are added; a count older than a later reset is stale,
/// and one older than the moves kept is refused with the reason.
#[actix_web::test]
async fn a_feed_counted_before_shipments_is_corrected_by_them() {
    let clock = common::manual_clock();
    let server = common::spawn_with_clock(|_| {}, clock.clone()).await;
    location(&server, "w", 1, "east").await;
    stock(&server, "A", &[("w", 20)]).await;
    stock(&server, "B", &[("w", 20)]).await;
    let six = clock.now_ms();
    let rfc = holdfast::clock::rfc3339;
    clock.advance(120_000);
    let placed = hold(&server, "s", "default", &[("A", 2)], json!({})).await;
    let id = placed.body["hold_id"].as_str().unwrap().to_owned();
    server.act(&id, "confirm").await;
    server.act(&id, "fulfil").await;
    clock.advance(60_000);
    let received = json!({"delta": 5, "reason": "received", "location": "w"}).to_string();
    let adjusted = server
        .send(Method::POST, "/v1/skus/B/adjustments", Some(&received), &[])
        .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.body);
    clock.advance(120_000);
    let feed = format!(
        "{}\n{}\n{}\n",
        json!({"sku": "A", "location": "w", "on_hand": 10, "as_of": rfc(six)}),
        json!({"sku": "B", "location": "w", "on_hand": 10}),
        json!({"sku": "C", "location": "w", "on_hand": 10, "as_of": rfc(six - 3_600_000)}),
    );
    let answer = server
        .send(
            Method::POST,
            &format!("/v1/feeds/stock?as_of={}", rfc(six).replace('+', "%2B")),
            Some(&feed),
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["applied"], 3, "{}", answer.body);
    assert_eq!(at(&server.sku("A").await, "w", "on_hand"), 8);
    assert_eq!(
        at(&server.sku("B").await, "w", "on_hand"),
        15,
        "received after the count"
    );
    // The stock of A at w was just set (by the feed): a count from before that is stale.
    let stale = json!({"sku": "A", "location": "w", "on_hand": 3, "as_of": rfc(six + 60_000)});
    let answer = server
        .send(
            Method::POST,
            "/v1/feeds/stock",
            Some(&stale.to_string()),
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    assert_eq!(answer.body["applied"], 0, "{}", answer.body);
    let detail = answer.body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("stale"), "{detail}");
    assert_eq!(at(&server.sku("A").await, "w", "on_hand"), 8);
}

/// More moves than are kept: a count older than the oldest kept one is refused, saying so.
#[actix_web::test]
async fn a_count_older_than_the_moves_kept_is_refused() {
    let clock = common::manual_clock();
    let server = common::spawn_with_clock(|_| {}, clock.clone()).await;
    stock(&server, "M", &[("default", 1_000)]).await;
    let before = clock.now_ms();
    for n in 0..(holdfast::sku::sites::MOVES_MAX + 1) {
        clock.advance(1_000);
        let body = json!({"delta": -1, "reason": "damaged"}).to_string();
        let answer = server
            .send(Method::POST, "/v1/skus/M/adjustments", Some(&body), &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{n}");
    }
    let line = json!({"sku": "M", "on_hand": 5, "as_of": holdfast::clock::rfc3339(before + 500)});
    let answer = server
        .send(
            Method::POST,
            "/v1/feeds/stock",
            Some(&line.to_string()),
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    assert_eq!(answer.body["applied"], 0, "{}", answer.body);
    let detail = answer.body["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("older than the stock moves kept"),
        "{detail}"
    );
}

/// Never naming a location changes nothing: holds show no allocations, and the SKU has
/// its one `default` location. Limits and unknown names get clear answers.
#[actix_web::test]
async fn without_locations_nothing_changes_and_limits_hold() {
    let server = common::spawn_with(|s| s.locations_max = 2).await;
    server.put_sku("PLAIN", 10, 1).await;
    let placed = server.hold("plain", &[("PLAIN", 2)]).await;
    assert_eq!(placed.status, StatusCode::CREATED);
    assert!(
        placed.body["lines"][0].get("allocations").is_none(),
        "{}",
        placed.body
    );
    let view = server.sku("PLAIN").await;
    assert_eq!(view["locations"].as_object().unwrap().len(), 1, "{view}");
    assert_eq!(at(&view, "default", "held"), 2);
    location(&server, "one", 1, "x").await;
    location(&server, "two", 2, "x").await;
    let third = server
        .send(
            Method::PUT,
            "/v1/locations/three",
            Some(r#"{"name": "3"}"#),
            &[],
        )
        .await;
    assert_eq!(third.status, StatusCode::CONFLICT, "{}", third.body);
    let unknown = server
        .send(
            Method::PUT,
            "/v1/skus/PLAIN/locations/nowhere",
            Some(r#"{"on_hand": 1}"#),
            &[],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let policy = server
        .send(
            Method::PUT,
            "/v1/channels/web",
            Some(r#"{"locations": ["nowhere"]}"#),
            &[],
        )
        .await;
    assert_eq!(policy.status, StatusCode::NOT_FOUND);
    // Once a location exists, new holds show where they took their units.
    let located = server.hold("located", &[("PLAIN", 1)]).await;
    assert_eq!(
        allocations(&located.body["lines"][0]),
        [("default".to_owned(), 1)]
    );
}
