//! The mixed load of a torture round: shoppers placing holds and carts (some with TTLs
//! short enough to expire within the run), paying, cancelling and shipping; and one back
//! office setting stock, posting stock feeds and changing the web channel's quota. Each
//! records a change in the ledger as attempted before sending it and as acknowledged only
//! on a 2xx. A worker stops at `stop` or when the server stops answering.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::ledger::{now_ms, post_json, Hold, Ledger, Status};

pub type SharedLedger = Arc<Mutex<Ledger>>;

pub fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Shopper {
    pub http: reqwest::Client,
    pub base: String,
    pub ledger: SharedLedger,
    pub rng: StdRng,
    /// Unique per round and worker, so idempotency keys never repeat.
    pub key_prefix: String,
    pub shop_skus: Vec<String>,
    pub set_skus: Vec<String>,
    pub stop: Arc<AtomicBool>,
}

impl Shopper {
    pub async fn run(mut self) {
        for n in 0.. {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            // A shopper's pace, not a flood: the ledger is read back in full after every
            // round, and a few thousand holds a round exercise the same paths.
            tokio::time::sleep(Duration::from_millis(self.rng.random_range(0..8))).await;
            let Some(hold_id) = self.place(n).await else {
                return;
            };
            let Some(hold_id) = hold_id else { continue };
            let roll = self.rng.random_range(0..100);
            if roll < 45 {
                match self.change(&hold_id, "confirm", Status::Confirmed).await {
                    None => return,
                    Some(true) if self.ships(&hold_id) && self.rng.random_bool(0.5) => {
                        if self
                            .change(&hold_id, "fulfil", Status::Fulfilled)
                            .await
                            .is_none()
                        {
                            return;
                        }
                    }
                    Some(_) => {}
                }
            } else if roll < 65
                && self
                    .change(&hold_id, "release", Status::Released)
                    .await
                    .is_none()
            {
                return;
            }
        }
    }

    /// Places a hold: `None` when the server is gone, `Some(None)` when it was refused.
    async fn place(&mut self, n: u64) -> Option<Option<String>> {
        let count = self.rng.random_range(1..=3);
        let mut lines: Vec<(String, u64)> = Vec::new();
        while lines.len() < count {
            let pool = if self.rng.random_bool(0.7) {
                &self.shop_skus
            } else {
                &self.set_skus
            };
            let sku = pool.choose(&mut self.rng)?.clone();
            if lines.iter().all(|(s, _)| *s != sku) {
                lines.push((sku, self.rng.random_range(1..=2)));
            }
        }
        let ttl_s: u64 = if self.rng.random_bool(0.3) {
            self.rng.random_range(1..=2)
        } else {
            600
        };
        let request = json!({
            "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
            "customer_id": format!("c{}", self.rng.random_range(0..200)),
            "channel": "web",
            "ttl_seconds": ttl_s,
        });
        let key = format!("{}-{n}", self.key_prefix);
        let sent_ms = now_ms();
        match post_json(
            &self.http,
            &format!("{}/v1/holds", self.base),
            &key,
            &request,
        )
        .await
        {
            Ok((201, answer)) => {
                let id = answer["hold_id"].as_str().unwrap_or_default().to_owned();
                let hold = Hold {
                    key,
                    request,
                    answer,
                    lines,
                    status: Status::Held,
                    maybe: Default::default(),
                    expires_not_before_ms: sent_ms + ttl_s * 1_000,
                    expires_by_ms: now_ms() + ttl_s * 1_000,
                };
                lock(&self.ledger).holds.insert(id.clone(), hold);
                Some(Some(id))
            }
            Ok(_) => Some(None),
            Err(_) => None,
        }
    }

    /// Whether every line is on a SKU whose on-hand only shipping changes.
    fn ships(&self, hold_id: &str) -> bool {
        let ledger = lock(&self.ledger);
        ledger.holds.get(hold_id).is_some_and(|hold| {
            hold.lines
                .iter()
                .all(|(sku, _)| ledger.shop_skus.contains_key(sku))
        })
    }

    /// Sends a change: `None` when the server is gone, else whether it was acknowledged.
    async fn change(&mut self, hold_id: &str, action: &str, status: Status) -> Option<bool> {
        lock(&self.ledger).attempt(hold_id, status);
        let url = format!("{}/v1/holds/{hold_id}/{action}", self.base);
        let response = self.http.post(url).send().await.ok()?;
        let acknowledged = response.status().as_u16() == 200;
        let mut ledger = lock(&self.ledger);
        if acknowledged {
            ledger.acknowledged(hold_id, status);
        } else {
            // Answered and refused (409: it expired first): it did not happen.
            ledger.refused(hold_id, status);
        }
        Some(acknowledged)
    }
}

pub struct BackOffice {
    pub http: reqwest::Client,
    pub base: String,
    pub ledger: SharedLedger,
    pub rng: StdRng,
    pub set_skus: Vec<String>,
    pub stop: Arc<AtomicBool>,
}

impl BackOffice {
    pub async fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(self.rng.random_range(20..80))).await;
            let done = match self.rng.random_range(0..5) {
                0 | 1 => self.set_stock().await,
                2 => self.feed().await,
                3 => self.set_at_b().await,
                _ => self.allocate().await,
            };
            if done.is_none() {
                return;
            }
        }
    }

    fn pick(&mut self) -> Option<String> {
        self.set_skus.choose(&mut self.rng).cloned()
    }

    async fn set_stock(&mut self) -> Option<()> {
        let sku = self.pick()?;
        let on_hand = self.rng.random_range(400..800);
        let safety = lock(&self.ledger).safety_stock;
        self.sent_stock(&sku, on_hand);
        let body = json!({"on_hand": on_hand, "safety_stock": safety});
        let url = format!("{}/v1/skus/{sku}", self.base);
        let response = self.http.put(url).json(&body).send().await.ok()?;
        if response.status().as_u16() == 200 {
            self.stock_acknowledged(&sku, on_hand);
        } else if let Some(stock) = lock(&self.ledger).set_skus.get_mut(&sku) {
            stock.maybe_on_hand.remove(&on_hand);
        }
        Some(())
    }

    /// Sets a SKU's stock at `wh-b` (its other location is the default one).
    async fn set_at_b(&mut self) -> Option<()> {
        let sku = self.pick()?;
        let on_hand = self.rng.random_range(0..100);
        if let Some(stock) = lock(&self.ledger).set_skus.get_mut(&sku) {
            stock.maybe_at_b.insert(on_hand);
        }
        let body = json!({"on_hand": on_hand, "safety_stock": 0});
        let url = format!("{}/v1/skus/{sku}/locations/wh-b", self.base);
        let response = self.http.put(url).json(&body).send().await.ok()?;
        let acknowledged = response.status().as_u16() == 200;
        if let Some(stock) = lock(&self.ledger).set_skus.get_mut(&sku) {
            if acknowledged {
                stock.at_b = on_hand;
                stock.maybe_at_b.clear();
            } else {
                stock.maybe_at_b.remove(&on_hand);
            }
        }
        Some(())
    }

    async fn feed(&mut self) -> Option<()> {
        let safety = lock(&self.ledger).safety_stock;
        let mut lines = Vec::new();
        for _ in 0..3 {
            let sku = self.pick()?;
            if lines.iter().any(|(s, _)| *s == sku) {
                continue;
            }
            let on_hand: u64 = self.rng.random_range(400..800);
            self.sent_stock(&sku, on_hand);
            lines.push((sku, on_hand));
        }
        let body: String = lines
            .iter()
            .map(|(sku, on_hand)| {
                format!(
                    "{}\n",
                    json!({"sku": sku, "on_hand": on_hand, "safety_stock": safety})
                )
            })
            .collect();
        let url = format!("{}/v1/feeds/stock", self.base);
        let response = self.http.post(url).body(body).send().await.ok()?;
        let answer: Value = response.json().await.ok()?;
        if answer["applied"].as_u64() == Some(lines.len() as u64) {
            for (sku, on_hand) in lines {
                self.stock_acknowledged(&sku, on_hand);
            }
        }
        Some(())
    }

    async fn allocate(&mut self) -> Option<()> {
        let sku = self.pick()?;
        let units = self.rng.random_range(0..100);
        if let Some(stock) = lock(&self.ledger).set_skus.get_mut(&sku) {
            stock.maybe_web_units.insert(units);
        }
        let body = json!({"channels": {"web": {"units": units}}});
        let url = format!("{}/v1/skus/{sku}/allocation", self.base);
        let response = self.http.put(url).json(&body).send().await.ok()?;
        let acknowledged = response.status().as_u16() == 200;
        if let Some(stock) = lock(&self.ledger).set_skus.get_mut(&sku) {
            if acknowledged {
                stock.web_units = Some(units);
                stock.maybe_web_units.clear();
            } else {
                stock.maybe_web_units.remove(&units);
            }
        }
        Some(())
    }

    fn sent_stock(&self, sku: &str, on_hand: u64) {
        if let Some(stock) = lock(&self.ledger).set_skus.get_mut(sku) {
            stock.maybe_on_hand.insert(on_hand);
        }
    }

    fn stock_acknowledged(&self, sku: &str, on_hand: u64) {
        if let Some(stock) = lock(&self.ledger).set_skus.get_mut(sku) {
            stock.on_hand = on_hand;
            stock.maybe_on_hand.clear();
        }
    }
}
