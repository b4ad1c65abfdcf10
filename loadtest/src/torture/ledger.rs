//! What the server acknowledged, and what may have happened without an acknowledgement
//! (a request in flight when the server died), and the checks against a restarted server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

/// How long past a hold's deadline it may still read `held` (one expiry sweep, clocks).
const EXPIRY_SLACK: Duration = Duration::from_secs(2);
/// Verification requests in flight at once.
const VERIFY_IN_FLIGHT: usize = 32;
/// Idempotent retries checked per verification.
const RETRIES_CHECKED_MAX: usize = 40;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Held,
    Confirmed,
    Released,
    Expired,
    Fulfilled,
}

impl Status {
    const ALL: [Status; 5] = [
        Status::Held,
        Status::Confirmed,
        Status::Released,
        Status::Expired,
        Status::Fulfilled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Confirmed => "confirmed",
            Status::Released => "released",
            Status::Expired => "expired",
            Status::Fulfilled => "fulfilled",
        }
    }
}

/// An acknowledged hold.
#[derive(Debug, Clone)]
pub struct Hold {
    pub key: String,
    pub request: Value,
    pub answer: Value,
    pub lines: Vec<(String, u64)>,
    pub status: Status,
    /// Statuses a change in flight at a crash may have reached without an answer.
    pub maybe: BTreeSet<Status>,
    /// The earliest it may expire (sent + TTL) and the latest it must have (answered + TTL).
    pub expires_not_before_ms: u64,
    pub expires_by_ms: u64,
}

/// A SKU whose stock only the back office sets: on hand is the last acknowledged value or
/// one of those sent after it without an answer.
#[derive(Debug, Clone, Default)]
pub struct SetStock {
    /// At the default location (which stock sets and feeds without a location set).
    pub on_hand: u64,
    pub maybe_on_hand: BTreeSet<u64>,
    /// At `wh-b`.
    pub at_b: u64,
    pub maybe_at_b: BTreeSet<u64>,
    /// The web channel's quota, once one was acknowledged.
    pub web_units: Option<u64>,
    pub maybe_web_units: BTreeSet<u64>,
}

/// A SKU whose stock only fulfilments change: on hand is what it was seeded with less the
/// fulfilled units.
#[derive(Debug, Clone, Default)]
pub struct ShopStock {
    pub seeded: u64,
    pub fulfilled: u64,
    pub maybe_fulfilled: u64,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub holds: BTreeMap<String, Hold>,
    pub set_skus: BTreeMap<String, SetStock>,
    pub shop_skus: BTreeMap<String, ShopStock>,
    pub safety_stock: u64,
}

impl Ledger {
    /// A change sent for `hold_id`, not yet answered.
    pub fn attempt(&mut self, hold_id: &str, status: Status) {
        let Some(hold) = self.holds.get_mut(hold_id) else {
            return;
        };
        hold.maybe.insert(status);
        if status == Status::Fulfilled {
            for (sku, quantity) in &hold.lines {
                if let Some(shop) = self.shop_skus.get_mut(sku) {
                    shop.maybe_fulfilled += quantity;
                }
            }
        }
    }

    /// The change was acknowledged.
    pub fn acknowledged(&mut self, hold_id: &str, status: Status) {
        self.answered(hold_id, status, true);
    }

    /// The change was answered with a refusal (409: the hold expired first).
    pub fn refused(&mut self, hold_id: &str, status: Status) {
        self.answered(hold_id, status, false);
    }

    /// A change sent for `hold_id` was answered, so it is no longer in flight; a fulfil's
    /// units move from maybe shipped to shipped if it happened.
    fn answered(&mut self, hold_id: &str, status: Status, happened: bool) {
        let Some(hold) = self.holds.get_mut(hold_id) else {
            return;
        };
        hold.maybe.remove(&status);
        if happened {
            hold.status = status;
        }
        if status == Status::Fulfilled {
            for (sku, quantity) in &hold.lines {
                if let Some(shop) = self.shop_skus.get_mut(sku) {
                    shop.maybe_fulfilled -= quantity;
                    if happened {
                        shop.fulfilled += quantity;
                    }
                }
            }
        }
    }
}

/// Reads back every acknowledged change from a restarted server; returns what is wrong.
/// What a change in flight at the crash did is settled by what the server now says, so
/// later rounds check against it.
pub async fn verify(http: &reqwest::Client, base: &str, ledger: &mut Ledger) -> Vec<String> {
    let mut problems = Vec::new();
    let mut observed = Vec::new();
    // Each read is judged by when it was asked and answered: reading a ledger of 100k
    // holds takes seconds, and a hold read as held just before its deadline is fine.
    let reads = stream::iter(ledger.holds.iter().map(|(id, hold)| async move {
        let asked = now_ms();
        let read = get_json(http, &format!("{base}/v1/holds/{id}")).await;
        (
            id,
            hold,
            read,
            Window {
                asked,
                answered: now_ms(),
            },
        )
    }))
    .buffer_unordered(VERIFY_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    for (id, hold, read, window) in reads {
        match read {
            Ok((200, body)) => {
                let status = body["status"].as_str().unwrap_or_default();
                if let Some(problem) = check_status(hold, status, window) {
                    problems.push(format!("hold {id}: {problem}"));
                }
                if let Some(problem) = check_allocations(hold, &body) {
                    problems.push(format!("hold {id}: {problem}"));
                }
                observed.push((id.clone(), status.to_owned()));
            }
            Ok((code, body)) => problems.push(format!(
                "acknowledged hold {id} lost: GET answered {code} {body}"
            )),
            Err(err) => problems.push(format!("hold {id}: {err}")),
        }
    }
    let retried = ledger.holds.values().rev().take(RETRIES_CHECKED_MAX);
    for hold in retried {
        match post_json(http, &format!("{base}/v1/holds"), &hold.key, &hold.request).await {
            Ok((201, body)) if body == hold.answer => {}
            Ok((code, body)) => problems.push(format!(
                "retry of key {} answered {code} {body}, first answer was {}",
                hold.key, hold.answer
            )),
            Err(err) => problems.push(format!("retry of key {}: {err}", hold.key)),
        }
    }
    let before = match latest_events(http, base).await {
        Ok(latest) => latest,
        Err(problem) => {
            problems.push(problem);
            BTreeMap::new()
        }
    };
    let mut views = Vec::new();
    for sku in ledger.set_skus.keys().chain(ledger.shop_skus.keys()) {
        match get_json(http, &format!("{base}/v1/skus/{sku}")).await {
            Ok((200, view)) => views.push((sku.clone(), view)),
            other => problems.push(format!("sku {sku}: {other:?}")),
        }
    }
    for (sku, view) in &views {
        if let Some(stock) = ledger.set_skus.get(sku) {
            problems.extend(check_set_sku(sku, stock, ledger, view));
        }
        if let Some(stock) = ledger.shop_skus.get(sku) {
            problems.extend(check_shop_sku(sku, stock, ledger, view));
        }
    }
    match latest_events(http, base).await {
        Ok(after) => problems.extend(check_events(&before, &after, &views)),
        Err(problem) => problems.push(problem),
    }
    if problems.is_empty() {
        settle(ledger, &observed, &views);
    }
    problems
}

/// Pages of the change feed read at most: the server keeps 100,000 events by default.
const CHANGE_PAGES_MAX: usize = 200;

/// The change feed from the oldest event kept: each SKU's highest-version event, and
/// whether versions rose strictly per SKU in feed order.
async fn latest_events(
    http: &reqwest::Client,
    base: &str,
) -> Result<BTreeMap<String, Value>, String> {
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    let mut since = 0u64;
    for _ in 0..CHANGE_PAGES_MAX {
        let (code, page) =
            get_json(http, &format!("{base}/v1/changes?since={since}&limit=1000")).await?;
        if code != 200 {
            return Err(format!("GET /v1/changes answered {code} {page}"));
        }
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            let sku = event["sku"].as_str().unwrap_or_default().to_owned();
            let version = event["version"].as_u64().unwrap_or(0);
            if let Some(seen) = latest.get(&sku) {
                let before = seen["version"].as_u64().unwrap_or(0);
                if version <= before {
                    return Err(format!(
                        "sku {sku}: the feed has version {version} after {before}"
                    ));
                }
            }
            latest.insert(sku, event.clone());
        }
        let next = page["next"].as_u64().unwrap_or(since);
        if events.is_empty() && page["reset"] != true {
            return Ok(latest);
        }
        since = next;
    }
    Err(format!(
        "the change feed did not end within {CHANGE_PAGES_MAX} pages"
    ))
}

/// No event invented or lost by the crash: for each SKU that did not change while it was
/// read (the expiry sweep runs), its latest event says what the SKU has.
fn check_events(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
    views: &[(String, Value)],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (sku, view) in views {
        let (Some(first), Some(last)) = (before.get(sku), after.get(sku)) else {
            continue;
        };
        if first["version"] != last["version"] {
            continue;
        }
        if last["available"] != view["available"] {
            problems.push(format!(
                "sku {sku}: its latest event (version {}) says {} available, the sku {}",
                last["version"], last["available"], view["available"]
            ));
        }
    }
    problems
}

/// Takes what the server says as the new acknowledged state: nothing is in flight now.
fn settle(ledger: &mut Ledger, holds: &[(String, String)], views: &[(String, Value)]) {
    for (id, status) in holds {
        let Some(hold) = ledger.holds.get_mut(id) else {
            continue;
        };
        if let Some(now) = Status::ALL.into_iter().find(|s| s.as_str() == status) {
            hold.status = now;
        }
        hold.maybe.clear();
    }
    for (sku, view) in views {
        if let Some(stock) = ledger.set_skus.get_mut(sku) {
            stock.on_hand = at(view, "default", "on_hand");
            stock.maybe_on_hand.clear();
            stock.at_b = at(view, "wh-b", "on_hand");
            stock.maybe_at_b.clear();
            stock.web_units = view["channels"]["web"]["allocated"].as_u64();
            stock.maybe_web_units.clear();
        }
        if let Some(stock) = ledger.shop_skus.get_mut(sku) {
            stock.fulfilled = stock.seeded.saturating_sub(field(view, "on_hand"));
            stock.maybe_fulfilled = 0;
        }
    }
}

/// When a read was sent and when its answer came.
#[derive(Debug, Clone, Copy)]
struct Window {
    asked: u64,
    answered: u64,
}

fn check_status(hold: &Hold, status: &str, window: Window) -> Option<String> {
    let mut allowed = hold.maybe.clone();
    allowed.insert(hold.status);
    if hold.status == Status::Held {
        allowed.insert(Status::Expired);
    }
    if !allowed.iter().any(|s| s.as_str() == status) {
        return Some(format!(
            "reads {status}, acknowledged {} (maybe {:?})",
            hold.status.as_str(),
            hold.maybe
        ));
    }
    let slack = u64::try_from(EXPIRY_SLACK.as_millis()).unwrap_or(u64::MAX);
    // Held when asked, though its deadline had passed by more than the slack.
    if status == "held" && window.asked > hold.expires_by_ms + slack {
        return Some(format!(
            "still held {} ms past its deadline",
            window.asked - hold.expires_by_ms
        ));
    }
    // Expired by the time of the answer, though its deadline was still ahead.
    if status == "expired" && window.answered + slack < hold.expires_not_before_ms {
        return Some("expired before its deadline".into());
    }
    None
}

fn field(view: &Value, name: &str) -> u64 {
    view[name].as_u64().unwrap_or(u64::MAX)
}

/// A figure of the SKU at one location (0 where it has none).
fn at(view: &Value, location: &str, name: &str) -> u64 {
    view["locations"][location][name].as_u64().unwrap_or(0)
}

/// Every unit accounted for at every location: held + committed + available is the
/// sellable stock there, and the SKU's figures are the sums of its locations'.
fn check_conserved(sku: &str, view: &Value) -> Option<String> {
    let locations = view["locations"].as_object()?;
    for (location, figures) in locations {
        let sellable = field(figures, "on_hand").saturating_sub(field(figures, "safety_stock"));
        let taken = field(figures, "held").saturating_add(field(figures, "committed"));
        if taken > sellable || field(figures, "available") != sellable - taken {
            return Some(format!("sku {sku} not conserved at {location}: {view}"));
        }
    }
    for name in ["on_hand", "held", "committed", "available"] {
        let sum: u64 = locations.values().map(|figures| field(figures, name)).sum();
        if sum != field(view, name) {
            return Some(format!(
                "sku {sku}: {name} is not its locations' sum: {view}"
            ));
        }
    }
    None
}

/// A hold's allocations never change: what it answered when placed is what it says now.
fn check_allocations(hold: &Hold, now: &Value) -> Option<String> {
    let placed = hold.answer["lines"].as_array()?;
    for (index, line) in placed.iter().enumerate() {
        let allocations = &line["allocations"];
        if allocations.is_null() || now["lines"][index]["allocations"] != *allocations {
            return Some(format!(
                "line {index} was placed at {allocations}, now reads {}",
                now["lines"][index]
            ));
        }
    }
    None
}

fn check_set_sku(sku: &str, stock: &SetStock, ledger: &Ledger, view: &Value) -> Vec<String> {
    let mut problems: Vec<String> = check_conserved(sku, view).into_iter().collect();
    let on_hand = at(view, "default", "on_hand");
    if on_hand != stock.on_hand && !stock.maybe_on_hand.contains(&on_hand) {
        problems.push(format!(
            "sku {sku}: on_hand {on_hand} at default, acknowledged {} (maybe {:?})",
            stock.on_hand, stock.maybe_on_hand
        ));
    }
    let at_b = at(view, "wh-b", "on_hand");
    if at_b != stock.at_b && !stock.maybe_at_b.contains(&at_b) {
        problems.push(format!(
            "sku {sku}: on_hand {at_b} at wh-b, acknowledged {} (maybe {:?})",
            stock.at_b, stock.maybe_at_b
        ));
    }
    if field(view, "safety_stock") != ledger.safety_stock {
        problems.push(format!("sku {sku}: safety stock changed: {view}"));
    }
    if let Some(units) = stock.web_units {
        let allocated = view["channels"]["web"]["allocated"].as_u64();
        let known = allocated == Some(units)
            || allocated.is_some_and(|a| stock.maybe_web_units.contains(&a));
        if !known {
            problems.push(format!(
                "sku {sku}: web quota {allocated:?}, acknowledged {units} (maybe {:?})",
                stock.maybe_web_units
            ));
        }
    }
    problems
}

fn check_shop_sku(sku: &str, stock: &ShopStock, ledger: &Ledger, view: &Value) -> Vec<String> {
    let mut problems: Vec<String> = check_conserved(sku, view).into_iter().collect();
    let sellable = field(view, "on_hand").saturating_sub(ledger.safety_stock);
    if field(view, "held") + field(view, "committed") > sellable {
        problems.push(format!("sku {sku} oversold: {view}"));
    }
    let gone = stock.seeded.saturating_sub(field(view, "on_hand"));
    if gone < stock.fulfilled || gone > stock.fulfilled + stock.maybe_fulfilled {
        problems.push(format!(
            "sku {sku}: {gone} units shipped, acknowledged {} (and {} in flight): {view}",
            stock.fulfilled, stock.maybe_fulfilled
        ));
    }
    problems
}

pub async fn get_json(http: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    let response = http
        .post(url)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}
