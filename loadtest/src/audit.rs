//! The end-of-run audit: the server is checked against what it acknowledged. Once every
//! TTL has run out: no SKU oversold, every SKU conserved, committed units equal to the
//! acknowledged confirms, nothing still held, abandoned holds expired, released released.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::driver::Outcome;
use crate::Scenario;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn check(name: &'static str, failures: Vec<String>, passed: String) -> Check {
    Check {
        name,
        ok: failures.is_empty(),
        detail: if failures.is_empty() {
            passed
        } else {
            let shown: Vec<&str> = failures.iter().take(5).map(String::as_str).collect();
            format!("{} failures, e.g. {}", failures.len(), shown.join("; "))
        },
    }
}

fn units(view: &Value, field: &str) -> u64 {
    view[field].as_u64().unwrap_or(u64::MAX)
}

/// Holds to look at: all of them up to this many (a sample past it).
const HOLDS_CHECKED_MAX: usize = 5_000;

pub async fn audit(
    client: &Client,
    scenario: &Scenario,
    skus: &[String],
    outcome: &Outcome,
) -> Vec<Check> {
    let expired_by =
        outcome.ended + Duration::from_secs(scenario.hold_ttl_s) + Duration::from_millis(1_500);
    tokio::time::sleep_until(expired_by.into()).await;
    let views: Vec<(String, Option<Value>)> = stream::iter(
        skus.iter()
            .map(|sku| async move { (sku.clone(), client.sku(sku).await.ok()) }),
    )
    .buffer_unordered(16)
    .collect()
    .await;
    let ledger = &outcome.ledger;
    let confirmed = ledger
        .confirmed_units
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let uncertain = ledger
        .uncertain_units
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut checks = Vec::new();
    let (mut oversold, mut unconserved, mut committed_off, mut still_held) =
        (vec![], vec![], vec![], vec![]);
    for (sku, view) in &views {
        let Some(view) = view else {
            unconserved.push(format!("{sku}: unreadable"));
            continue;
        };
        let sellable = units(view, "on_hand").saturating_sub(units(view, "safety_stock"));
        let (held, committed) = (units(view, "held"), units(view, "committed"));
        if held.saturating_add(committed) > sellable {
            oversold.push(format!(
                "{sku}: held {held} + committed {committed} > {sellable}"
            ));
        }
        if held
            .saturating_add(committed)
            .saturating_add(units(view, "available"))
            != sellable
        {
            unconserved.push(format!("{sku}: {view}"));
        }
        let acked = confirmed.get(sku).copied().unwrap_or(0);
        let maybe = uncertain.get(sku).copied().unwrap_or(0);
        if committed < acked || committed > acked + maybe {
            committed_off.push(format!(
                "{sku}: committed {committed}, acknowledged {acked} (+{maybe} unanswered)"
            ));
        }
        if held != 0 {
            still_held.push(format!("{sku}: {held} held after every TTL ran out"));
        }
    }
    let n = views.len();
    checks.push(check(
        "no_oversell",
        oversold,
        format!("{n} SKUs: held + committed <= on_hand - safety_stock"),
    ));
    checks.push(check(
        "conservation",
        unconserved,
        format!("{n} SKUs: held + committed + available == sellable"),
    ));
    let total: u64 = confirmed.values().sum();
    checks.push(check(
        "committed_equals_confirmed",
        committed_off,
        format!("{total} acknowledged units are committed, no more"),
    ));
    checks.push(check(
        "no_leaked_holds",
        still_held,
        format!("{n} SKUs hold nothing once TTLs ran out"),
    ));
    let abandoned = ledger
        .abandoned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    checks.push(statuses(client, "abandoned_holds_expired", &abandoned, "expired").await);
    let released = ledger
        .released
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    checks.push(statuses(client, "released_holds_released", &released, "released").await);
    checks
}

async fn statuses(
    client: &Client,
    name: &'static str,
    ids: &[String],
    want: &'static str,
) -> Check {
    let ids = &ids[..ids.len().min(HOLDS_CHECKED_MAX)];
    let wrong: Vec<String> = stream::iter(ids.iter().map(|id| async move {
        match client.get_hold(id).await {
            Ok(hold) if hold["status"] == want => None,
            Ok(hold) => Some(format!("{id} is {}", hold["status"])),
            Err(err) => Some(format!("{id}: {err}")),
        }
    }))
    .buffer_unordered(32)
    .filter_map(|wrong| async move { wrong })
    .collect()
    .await;
    check(name, wrong, format!("{} holds read {want}", ids.len()))
}
