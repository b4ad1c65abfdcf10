//! One endpoint's deliveries: a task that reads the broadcast hub from the endpoint's
//! cursor and delivers what it finds, **coalesced**: per SKU and event type only the latest
//! state waits, and at most one delivery is in flight, so a hot SKU selling thousands of
//! units a second sends a slow endpoint a few up-to-date deliveries, not a backlog. Failed
//! attempts are retried with doubling backoff and jitter (or the endpoint's `Retry-After`);
//! 410 Gone, or `--webhook-failures-max` failures in a row, disable the endpoint with the
//! reason. The task never blocks a hold: it only reads the hub's ring, at its own pace; if
//! it falls behind the ring it starts again from every SKU's current state.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

use super::endpoint::{Disabled, Endpoint, EventType, PING};
use super::log::WebhookLog;
use super::signature;
use super::target::{AddressPolicy, Target};
use crate::broadcast::event::{Audience, AvailabilityEvent};
use crate::broadcast::hub::READ_GATHER;
use crate::broadcast::{Hub, Read, StockEvent};
use crate::clock::Clock;
use crate::domain::SkuId;
use crate::metrics as m;
use crate::sku::messages::CurrentMark;
use crate::sku::SkuDirectory;

/// Events read from the hub per pass; SKUs and types waiting are bounded by the catalog.
const READ_MAX: usize = 1_000;
const SCAN_MAX: usize = 10_000;
/// How often the delivered cursor is journaled, at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The first retry waits this long; each one after twice as long, up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Delivery times remembered before the ones older than `coalesce` are swept out.
const SENT_KEPT_MAX: usize = 1_024;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub timeout: Duration,
    pub in_flight_max: usize,
    pub retry_max: Duration,
    pub failures_max: u32,
    /// Least time between two deliveries of one SKU and type: the states in between are
    /// coalesced into the latest. Bounds what a hot SKU costs a fast endpoint (and us).
    pub coalesce: Duration,
    pub policy: AddressPolicy,
    /// Attempts listed by `GET /v1/webhooks/{id}/deliveries`.
    pub deliveries_kept: usize,
}

/// What every worker uses.
pub struct Shared {
    pub hub: Arc<Hub>,
    pub directory: Arc<SkuDirectory>,
    pub log: Arc<dyn WebhookLog>,
    pub clock: Clock,
    pub settings: WebhookSettings,
}

/// One delivery attempt, as `GET /v1/webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    /// The `webhook-id`: the same for every attempt of one message.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The endpoint's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at: String,
    pub duration_ms: u64,
}

/// What the registry and an endpoint's worker share.
pub struct Control {
    pub endpoint: Mutex<Endpoint>,
    stopped: AtomicBool,
    wake: Notify,
    replay: Mutex<Option<u64>>,
    pub deliveries: Mutex<VecDeque<DeliveryRecord>>,
}

impl Control {
    pub fn new(endpoint: Endpoint) -> Arc<Self> {
        Arc::new(Self {
            endpoint: Mutex::new(endpoint),
            stopped: AtomicBool::new(false),
            wake: Notify::new(),
            replay: Mutex::new(None),
            deliveries: Mutex::new(VecDeque::new()),
        })
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Delivers again what came after `since` (coalesced, as always).
    pub fn replay(&self, since: u64) {
        *self.replay.lock() = Some(since);
        self.wake.notify_one();
    }

    fn record(&self, record: DeliveryRecord, kept: usize) {
        let mut deliveries = self.deliveries.lock();
        deliveries.push_back(record);
        while deliveries.len() > kept {
            deliveries.pop_front();
        }
    }
}

type Key = (SkuId, EventType);

struct Waiting {
    event: Arc<StockEvent>,
    attempts: u32,
    due: Instant,
}

enum Outcome {
    Delivered,
    Gone,
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Runs until the endpoint is stopped (deleted or replaced) or disabled.
pub async fn run(control: Arc<Control>, shared: Arc<Shared>, cursor: u64, ping: bool) {
    let endpoint = control.endpoint.lock().clone();
    if endpoint.disabled.is_some() {
        return;
    }
    let (target, key) = match (
        Target::parse(&endpoint.url),
        signature::key_of(&endpoint.secret),
    ) {
        (Ok(target), Ok(key)) => (target, key),
        (Err(reason), _) | (_, Err(reason)) => {
            tracing::error!(webhook = %endpoint.id, %reason, "Webhook endpoint cannot be delivered to.");
            return;
        }
    };
    let mut worker = Worker {
        audience: endpoint
            .channel
            .clone()
            .map_or(Audience::All, Audience::Channel),
        endpoint,
        target,
        key,
        control,
        shared,
        cursor,
        saved: cursor,
        saved_at: Instant::now(),
        waiting: BTreeMap::new(),
        in_flight: HashMap::new(),
        sent: HashMap::new(),
        failures: 0,
        clients: Arc::default(),
    };
    if ping {
        worker.ping().await;
    }
    worker.run().await;
}

struct Worker {
    endpoint: Endpoint,
    audience: Audience,
    target: Target,
    key: Vec<u8>,
    control: Arc<Control>,
    shared: Arc<Shared>,
    /// Where the next read of the hub starts.
    cursor: u64,
    /// The delivered cursor last journaled, and when.
    saved: u64,
    saved_at: Instant,
    waiting: BTreeMap<Key, Waiting>,
    in_flight: HashMap<Key, Arc<StockEvent>>,
    /// When each SKU and type was last delivered, within the last `coalesce`.
    sent: HashMap<Key, Instant>,
    /// Failed attempts since the last delivered one.
    failures: u32,
    /// The HTTP client for the address the endpoint resolved to, kept while it resolves
    /// there: its connections are reused, and a client costs a TLS setup to build.
    clients: Arc<Mutex<Option<(SocketAddr, reqwest::Client)>>>,
}

impl Worker {
    async fn run(&mut self) {
        let mut watch = self.shared.hub.watch();
        let mut sends = FuturesUnordered::new();
        loop {
            if self.control.stopped.load(Ordering::Acquire) {
                return;
            }
            if let Some(since) = self.control.replay.lock().take() {
                self.cursor = since;
                self.waiting.clear();
            }
            watch.mark_unchanged();
            self.read().await;
            let now = Instant::now();
            let room = self
                .shared
                .settings
                .in_flight_max
                .saturating_sub(self.in_flight.len());
            // Oldest change first: a SKU's crossings reach the endpoint in the order they
            // happened whenever they wait together.
            let mut due: Vec<(u64, Key)> = self
                .waiting
                .iter()
                .filter(|(key, waiting)| waiting.due <= now && !self.in_flight.contains_key(*key))
                .map(|(key, waiting)| (waiting.event.seq, key.clone()))
                .collect();
            due.sort_unstable_by_key(|(seq, _)| *seq);
            due.truncate(room);
            for (_, key) in due {
                if let Some(waiting) = self.waiting.remove(&key) {
                    self.in_flight
                        .insert(key.clone(), Arc::clone(&waiting.event));
                    sends.push(self.send(key, waiting));
                }
            }
            self.save_progress();
            let next_due = self
                .waiting
                .iter()
                .filter(|(key, _)| !self.in_flight.contains_key(*key))
                .map(|(_, waiting)| waiting.due)
                .min()
                .unwrap_or(now + PROGRESS_EVERY)
                .min(now + PROGRESS_EVERY);
            tokio::select! {
                Some((key, waiting, outcome)) = sends.next(), if !sends.is_empty() => {
                    if self.settle(key, waiting, outcome) {
                        self.save_progress();
                        return;
                    }
                }
                changed = watch.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::time::sleep(READ_GATHER).await;
                }
                () = tokio::time::sleep_until(next_due.into()) => {}
                () = self.control.wake.notified() => {}
            }
        }
    }

    /// Takes what the hub has after the cursor into the waiting deliveries.
    async fn read(&mut self) {
        loop {
            let read = self
                .shared
                .hub
                .read(self.cursor, READ_MAX, SCAN_MAX, &|_| true);
            match read {
                Read::Reset { head } => {
                    self.resync(head).await;
                    self.cursor = head;
                    return;
                }
                Read::Events { events, next } => {
                    let more = next != self.cursor && !events.is_empty();
                    self.cursor = next;
                    for event in events {
                        self.take(event);
                    }
                    if !more {
                        return;
                    }
                }
            }
        }
    }

    fn take(&mut self, event: Arc<StockEvent>) {
        let mut types = Vec::with_capacity(2);
        if self.endpoint.wants(EventType::AvailabilityChanged) {
            types.push(EventType::AvailabilityChanged);
        }
        if let Some(signal) = event.mark.signal {
            let kind = EventType::of_signal(signal);
            if self.endpoint.wants(kind) {
                types.push(kind);
            }
        }
        for kind in types {
            let key = (event.sku.clone(), kind);
            match self.waiting.get_mut(&key) {
                // A newer state replaces the waiting one; a failing one keeps its backoff.
                Some(waiting) => waiting.event = Arc::clone(&event),
                None => {
                    let due = self
                        .sent
                        .get(&key)
                        .map_or_else(Instant::now, |at| *at + self.shared.settings.coalesce);
                    self.waiting.insert(
                        key,
                        Waiting {
                            event: Arc::clone(&event),
                            attempts: 0,
                            due,
                        },
                    );
                }
            }
        }
    }

    /// The endpoint fell behind the events kept: what it missed is unknown, so every SKU's
    /// current state is delivered (as `availability.changed`), then it follows from `head`.
    async fn resync(&mut self, head: u64) {
        tracing::warn!(webhook = %self.endpoint.id, "Webhook endpoint fell behind the events kept; delivering every SKU's current availability.");
        if !self.endpoint.wants(EventType::AvailabilityChanged) {
            return;
        }
        for entry in self.shared.directory.skus() {
            let Ok(mark) = entry.ask(CurrentMark, None).await else {
                continue;
            };
            let event = Arc::new(StockEvent::new(head, entry.sku.clone(), mark));
            let key = (entry.sku, EventType::AvailabilityChanged);
            self.waiting.insert(
                key,
                Waiting {
                    event,
                    attempts: 0,
                    due: Instant::now(),
                },
            );
        }
    }

    /// One attempt at one waiting delivery.
    fn send(
        &self,
        key: Key,
        waiting: Waiting,
    ) -> impl std::future::Future<Output = (Key, Waiting, Outcome)> + 'static {
        let kind = key.1;
        let event = Arc::clone(&waiting.event);
        let data = AvailabilityEvent::of(&event, &self.audience);
        let body = serde_json::json!({
            "type": kind.as_str(),
            "timestamp": crate::clock::rfc3339(self.shared.clock.now_ms()),
            "data": data,
        })
        .to_string();
        let message_id = format!("msg_{}_{}", event.seq, kind.as_str());
        let attempt = Attempt {
            target: self.target.clone(),
            key: self.key.clone(),
            message_id,
            body,
            shared: Arc::clone(&self.shared),
            control: Arc::clone(&self.control),
            kind: kind.as_str().to_owned(),
            event: Some(Arc::clone(&event)),
            number: waiting.attempts + 1,
            clients: Arc::clone(&self.clients),
        };
        async move {
            let outcome = attempt.run().await;
            (key, waiting, outcome)
        }
    }

    /// The one delivery made when an endpoint is registered: recorded, not retried.
    async fn ping(&self) {
        let body = serde_json::json!({
            "type": PING,
            "timestamp": crate::clock::rfc3339(self.shared.clock.now_ms()),
            "data": {"webhook_id": self.endpoint.id.as_str()},
        })
        .to_string();
        let attempt = Attempt {
            target: self.target.clone(),
            key: self.key.clone(),
            message_id: format!("msg_ping_{}", self.endpoint.created_at_ms),
            body,
            shared: Arc::clone(&self.shared),
            control: Arc::clone(&self.control),
            kind: PING.to_owned(),
            event: None,
            number: 1,
            clients: Arc::clone(&self.clients),
        };
        attempt.run().await;
    }

    /// Books an attempt's outcome; true if the endpoint is now disabled.
    fn settle(&mut self, key: Key, waiting: Waiting, outcome: Outcome) -> bool {
        self.in_flight.remove(&key);
        match outcome {
            Outcome::Delivered => {
                self.failures = 0;
                let now = Instant::now();
                let coalesce = self.shared.settings.coalesce;
                if let Some(newer) = self.waiting.get_mut(&key) {
                    newer.due = newer.due.max(now + coalesce);
                }
                if self.sent.len() >= SENT_KEPT_MAX {
                    self.sent.retain(|_, at| now.duration_since(*at) < coalesce);
                }
                self.sent.insert(key, now);
                false
            }
            Outcome::Gone => {
                self.disable("the endpoint answered 410 Gone".into());
                true
            }
            Outcome::Failed {
                reason,
                retry_after,
            } => {
                self.failures += 1;
                if self.failures >= self.shared.settings.failures_max {
                    self.disable(format!(
                        "{} failed attempts in a row; the last: {reason}",
                        self.failures
                    ));
                    return true;
                }
                let wait = retry_after
                    .unwrap_or_else(|| backoff(waiting.attempts + 1))
                    .min(self.shared.settings.retry_max);
                let due = Instant::now() + wait;
                match self.waiting.get_mut(&key) {
                    Some(newer) => {
                        newer.attempts = waiting.attempts + 1;
                        newer.due = newer.due.max(due);
                    }
                    None => {
                        self.waiting.insert(
                            key,
                            Waiting {
                                attempts: waiting.attempts + 1,
                                due,
                                ..waiting
                            },
                        );
                    }
                }
                false
            }
        }
    }

    fn disable(&mut self, reason: String) {
        tracing::error!(webhook = %self.endpoint.id, %reason, "Webhook endpoint disabled; register it again to resume.");
        m::webhook_disabled();
        let disabled = Disabled {
            reason,
            at_ms: self.shared.clock.now_ms(),
        };
        self.endpoint.disabled = Some(disabled.clone());
        self.control.endpoint.lock().disabled = Some(disabled);
        self.shared.log.webhook_set(self.endpoint.clone());
    }

    /// Journals how far every event has been delivered, at most once a second.
    fn save_progress(&mut self) {
        let oldest = self
            .waiting
            .values()
            .map(|waiting| waiting.event.seq)
            .chain(self.in_flight.values().map(|event| event.seq))
            .min();
        let delivered = oldest.map_or(self.cursor, |seq| seq.saturating_sub(1));
        if delivered > self.saved && self.saved_at.elapsed() >= PROGRESS_EVERY {
            self.shared
                .log
                .webhook_progress(self.endpoint.id.clone(), delivered);
            self.saved = delivered;
            self.saved_at = Instant::now();
        }
    }
}

/// 1 s, 2 s, 4 s ... with jitter: a random wait between half and all of it, so endpoints
/// that failed together do not retry together.
fn backoff(attempts: u32) -> Duration {
    let full = BACKOFF_FIRST.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let random = RandomState::new().build_hasher().finish();
    let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
    full.mul_f64(fraction)
}

/// One HTTP request to the endpoint.
struct Attempt {
    target: Target,
    key: Vec<u8>,
    message_id: String,
    body: String,
    shared: Arc<Shared>,
    control: Arc<Control>,
    kind: String,
    event: Option<Arc<StockEvent>>,
    number: u32,
    clients: Arc<Mutex<Option<(SocketAddr, reqwest::Client)>>>,
}

impl Attempt {
    /// The client that connects to `address`: the cached one, or a new one cached.
    fn client(&self, address: SocketAddr) -> Result<reqwest::Client, String> {
        let mut cached = self.clients.lock();
        if let Some((at, client)) = cached.as_ref() {
            if *at == address {
                return Ok(client.clone());
            }
        }
        let client = reqwest::Client::builder()
            .timeout(self.shared.settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(self.target.host(), address)
            .build()
            .map_err(|err| format!("HTTP client: {err}"))?;
        *cached = Some((address, client.clone()));
        Ok(client)
    }

    async fn run(self) -> Outcome {
        let started = Instant::now();
        let (outcome, status) = self.post().await;
        let (delivered, error) = match &outcome {
            Outcome::Delivered => (true, None),
            Outcome::Gone => (false, Some("410 Gone".to_owned())),
            Outcome::Failed { reason, .. } => (false, Some(reason.clone())),
        };
        m::webhook_delivery(match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Gone => "gone",
            Outcome::Failed { .. } => "failed",
        });
        if let (true, Some(event)) = (delivered, &self.event) {
            let lag_ms = self.shared.clock.now_ms().saturating_sub(event.mark.at_ms);
            m::webhook_lag(Duration::from_millis(lag_ms));
        }
        let record = DeliveryRecord {
            id: self.message_id.clone(),
            kind: self.kind.clone(),
            sku: self.event.as_ref().map(|e| e.sku.to_string()),
            version: self.event.as_ref().map(|e| e.mark.version),
            seq: self.event.as_ref().map(|e| e.seq),
            attempt: self.number,
            status,
            delivered,
            error,
            at: crate::clock::rfc3339(self.shared.clock.now_ms()),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        self.control
            .record(record, self.shared.settings.deliveries_kept);
        outcome
    }

    async fn post(&self) -> (Outcome, Option<u16>) {
        let failed = |reason: String| Outcome::Failed {
            reason,
            retry_after: None,
        };
        // Resolved and checked at every attempt, and the request goes to the address
        // checked: a DNS answer changed since cannot point it inside.
        let address = match self.target.resolve(&self.shared.settings.policy).await {
            Ok(addresses) => addresses[0],
            Err(reason) => return (failed(reason), None),
        };
        let client = match self.client(address) {
            Ok(client) => client,
            Err(reason) => return (failed(reason), None),
        };
        let timestamp = self.shared.clock.now_ms() / 1_000;
        let signed = signature::sign(&self.key, &self.message_id, timestamp, self.body.as_bytes());
        let sent = client
            .post(self.target.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &self.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(self.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return (failed(format!("request failed: {err}")), None),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let outcome = if status.is_success() {
            Outcome::Delivered
        } else if status == reqwest::StatusCode::GONE {
            Outcome::Gone
        } else {
            Outcome::Failed {
                reason: format!("the endpoint answered {status}"),
                retry_after,
            }
        };
        (outcome, Some(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        for attempts in 1..6 {
            let full = BACKOFF_FIRST * (1 << (attempts - 1));
            let wait = backoff(attempts);
            assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait:?}");
        }
        assert!(backoff(60) <= BACKOFF_FIRST * (1 << 20));
    }
}
