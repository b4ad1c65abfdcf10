//! The end-of-run audit: the server is checked against what it acknowledged. Once every
//! TTL has run out: no SKU oversold, no channel beyond its quota and the pool, every SKU
//! conserved, committed units equal to the acknowledged confirms (per channel too, when
//! shoppers came from several), nothing still held, abandoned holds expired, released
//! released.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::driver::{HoldRef, Outcome, UnitsBy};
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
    let (confirmed_per_sku, uncertain_per_sku) = (per_sku(&confirmed), per_sku(&uncertain));
    let mut checks = Vec::new();
    let (mut oversold, mut unconserved, mut committed_off, mut still_held) =
        (vec![], vec![], vec![], vec![]);
    let (mut over_quota, mut channel_committed_off) = (vec![], vec![]);
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
        if let Some(breach) = quota_breach(view) {
            over_quota.push(format!("{sku}: {breach}"));
        }
        let acked = confirmed_per_sku.get(sku.as_str()).copied().unwrap_or(0);
        let maybe = uncertain_per_sku.get(sku.as_str()).copied().unwrap_or(0);
        committed_off.extend(committed_mismatch(sku, committed, acked, maybe));
        for (channel, _) in &scenario.channels {
            let key = (sku.clone(), Some(channel.clone()));
            let acked = confirmed.get(&key).copied().unwrap_or(0);
            let maybe = uncertain.get(&key).copied().unwrap_or(0);
            let entry = &view["channels"][channel];
            // A channel no hold reached has no entry in the view.
            let committed = if entry.is_null() {
                0
            } else {
                units(entry, "committed")
            };
            let what = format!("{sku} {channel}");
            channel_committed_off.extend(committed_mismatch(&what, committed, acked, maybe));
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
        "channel_quotas",
        over_quota,
        format!("{n} SKUs: every channel within its quota plus what it drew from the pool"),
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
    if !scenario.channels.is_empty() {
        let channels = scenario.channels.len();
        checks.push(check(
            "channel_committed_equals_confirmed",
            channel_committed_off,
            format!("{n} SKUs x {channels} channels: each channel's committed units were acknowledged to it"),
        ));
    }
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

/// Why `committed` units disagree with the confirms acknowledged (`acked`) plus those
/// that got no answer and may have happened (`maybe`), if they do.
fn committed_mismatch(what: &str, committed: u64, acked: u64, maybe: u64) -> Option<String> {
    (committed < acked || committed > acked + maybe).then(|| {
        format!("{what}: committed {committed}, acknowledged {acked} (+{maybe} unanswered)")
    })
}

/// Units by SKU, all channels together.
fn per_sku(units: &UnitsBy) -> HashMap<&str, u64> {
    let mut totals = HashMap::new();
    for ((sku, _), n) in units {
        *totals.entry(sku.as_str()).or_default() += n;
    }
    totals
}

/// Why a SKU view breaks the channel half of DESIGN.md's invariant 1, if it does: a
/// channel holds and commits at most its quota plus what it drew from the shared pool, and
/// the channels together drew no more than the pool has. The view shows each channel's
/// units in all and the pool's lent units in all, so the check is on sums: what the
/// channels hold beyond their quotas must have come from the pool.
pub fn quota_breach(view: &Value) -> Option<String> {
    let Some(channels) = view["channels"].as_object() else {
        return Some("the view has no channels".into());
    };
    let used = |c: &Value| units(c, "held").saturating_add(units(c, "committed"));
    let pool = &view["channels"]["pool"];
    let (lent, pool_size) = (used(pool), units(pool, "allocated"));
    if lent > pool_size {
        return Some(format!("the pool lent {lent} units but has {pool_size}"));
    }
    let beyond_quotas: u64 = channels
        .iter()
        .filter(|(name, _)| name.as_str() != "pool")
        .map(|(_, c)| used(c).saturating_sub(units(c, "allocated")))
        .fold(0, u64::saturating_add);
    (beyond_quotas > lent).then(|| {
        format!("channels hold {beyond_quotas} units beyond their quotas, the pool lent {lent}")
    })
}

async fn statuses(
    client: &Client,
    name: &'static str,
    holds: &[HoldRef],
    want: &'static str,
) -> Check {
    let holds = &holds[..holds.len().min(HOLDS_CHECKED_MAX)];
    let wrong: Vec<String> = stream::iter(holds.iter().map(|(channel, id)| async move {
        match client.get_hold(channel.as_deref(), id).await {
            Ok(hold) if hold["status"] == want => None,
            Ok(hold) => Some(format!("{id} is {}", hold["status"])),
            Err(err) => Some(format!("{id}: {err}")),
        }
    }))
    .buffer_unordered(32)
    .filter_map(|wrong| async move { wrong })
    .collect()
    .await;
    check(name, wrong, format!("{} holds read {want}", holds.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(web: (u64, u64, u64), app: (u64, u64, u64), pool: (u64, u64, u64)) -> Value {
        let channel = |(allocated, held, committed): (u64, u64, u64)| json!({"allocated": allocated, "held": held, "committed": committed, "available": 0});
        json!({"channels": {"web": channel(web), "app": channel(app), "pool": channel(pool)}})
    }

    #[test]
    fn channels_within_quota_and_pool_pass() {
        // web: 40 of its quota plus 10 from the pool; app: 20 of 30; the pool lent 10 of 30.
        assert_eq!(
            quota_breach(&view((40, 30, 20), (30, 15, 5), (30, 6, 4))),
            None
        );
    }

    #[test]
    fn a_channel_past_its_quota_without_pool_units_fails() {
        // web holds 50 against a quota of 40, yet the pool says it lent only 5.
        let breach = quota_breach(&view((40, 30, 20), (30, 0, 0), (30, 5, 0)));
        assert!(breach.is_some_and(|b| b.contains("beyond their quotas")));
    }

    #[test]
    fn a_pool_that_lent_more_than_it_has_fails() {
        let breach = quota_breach(&view((40, 40, 0), (30, 30, 0), (30, 25, 10)));
        assert!(breach.is_some_and(|b| b.contains("the pool lent 35")));
    }

    #[test]
    fn a_view_without_channels_fails() {
        assert!(quota_breach(&json!({"held": 0})).is_some());
    }
}
