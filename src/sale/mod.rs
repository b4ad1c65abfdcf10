//! Flash sales: a window, the SKUs on sale, a per-customer limit and a hold TTL. A SKU is
//! on at most one sale whose window has not ended. Holds on a sale SKU before its window
//! are refused (409 `sale-not-open`); inside it the per-customer limit is enforced by the
//! SKU actor; after it the SKU sells as if it had never been on sale, unless the sale
//! says `after_end: closed` (an exclusive drop), which refuses its SKUs' holds for good.

pub mod windows;

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::admission::Admission;
use crate::clock::Clock;
use crate::domain::{IdMap, SaleId, SkuId};

/// What a sale's SKUs do once its window has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterEnd {
    /// They sell normally again, without the sale's limits.
    #[default]
    Open,
    /// They take no more holds: an exclusive drop that is over.
    Closed,
}

/// Where a sale's window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Upcoming,
    Open,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    pub id: SaleId,
    pub name: String,
    pub starts_at_ms: u64,
    /// Exclusive: at `ends_at_ms` the sale is over.
    pub ends_at_ms: u64,
    pub skus: Vec<SkuId>,
    /// Most units of one SKU a shopper may hold or buy in this sale.
    pub per_customer_limit: Option<u64>,
    /// TTL of holds on the sale's SKUs when a request names none.
    pub hold_ttl_s: Option<u64>,
    /// The sale's own admission queue limits; holds on its SKUs queue there instead of
    /// in the server-wide queue.
    pub admission: Option<crate::admission::AdmissionLimits>,
    pub after_end: AfterEnd,
}

/// A sale as formats 7 and earlier stored it: before `after_end` (read as `Open`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleV7 {
    pub id: SaleId,
    pub name: String,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
    pub skus: Vec<SkuId>,
    pub per_customer_limit: Option<u64>,
    pub hold_ttl_s: Option<u64>,
    pub admission: Option<crate::admission::AdmissionLimits>,
}

impl From<SaleV7> for Sale {
    fn from(old: SaleV7) -> Self {
        Self {
            id: old.id,
            name: old.name,
            starts_at_ms: old.starts_at_ms,
            ends_at_ms: old.ends_at_ms,
            skus: old.skus,
            per_customer_limit: old.per_customer_limit,
            hold_ttl_s: old.hold_ttl_s,
            admission: old.admission,
            after_end: AfterEnd::Open,
        }
    }
}

impl Sale {
    pub fn is_open(&self, now_ms: u64) -> bool {
        self.phase(now_ms) == Phase::Open
    }

    pub fn phase(&self, now_ms: u64) -> Phase {
        if now_ms < self.starts_at_ms {
            Phase::Upcoming
        } else if now_ms < self.ends_at_ms {
            Phase::Open
        } else {
            Phase::Ended
        }
    }

    /// Whether the sale still decides how its SKUs sell: until it ends, and for good if
    /// its SKUs close with it.
    pub fn governs(&self, now_ms: u64) -> bool {
        self.phase(now_ms) != Phase::Ended || self.after_end == AfterEnd::Closed
    }
}

#[derive(Default)]
struct Inner {
    sales: IdMap<SaleId, Arc<Sale>>,
    /// The sales listing each SKU: at most one that has not ended, and any number that
    /// have (bounded by `--sales-max`).
    by_sku: IdMap<SkuId, Vec<SaleId>>,
    /// Admission queues of the sales that have their own limits.
    queues: IdMap<SaleId, Arc<Admission>>,
}

pub struct SaleBook {
    inner: RwLock<Inner>,
    /// Most sales kept.
    sales_max: usize,
    /// Signs the tickets of per-sale queues.
    secret: [u8; 32],
    ticket_ttl_ms: u64,
    clock: Clock,
}

impl SaleBook {
    pub fn new(sales_max: usize, secret: [u8; 32], ticket_ttl_ms: u64, clock: Clock) -> Self {
        Self {
            inner: RwLock::default(),
            sales_max,
            secret,
            ticket_ttl_ms,
            clock,
        }
    }

    /// Why `sale` cannot be stored now, if it cannot.
    pub fn check(&self, sale: &Sale, now_ms: u64) -> Result<(), String> {
        let inner = self.inner.read();
        if !inner.sales.contains_key(&sale.id) && inner.sales.len() >= self.sales_max {
            return Err(format!(
                "{} sales are kept, the configured maximum",
                inner.sales.len()
            ));
        }
        for sku in &sale.skus {
            let others = inner.by_sku.get(sku).into_iter().flatten();
            let running = others
                .filter_map(|id| inner.sales.get(id))
                .find(|other| other.id != sale.id && other.ends_at_ms > now_ms);
            if let Some(other) = running {
                return Err(format!(
                    "sku {sku} is already on sale {} until it ends",
                    other.id
                ));
            }
        }
        Ok(())
    }

    /// Why `id` cannot be deleted now, if it cannot: a running sale is ended by moving its
    /// `ends_at`, so shoppers in it see it end rather than vanish mid-checkout.
    pub fn check_delete(&self, id: &SaleId, now_ms: u64) -> Result<Arc<Sale>, SaleRefusal> {
        let sale = self.get(id).ok_or(SaleRefusal::Unknown)?;
        match sale.phase(now_ms) {
            Phase::Open => Err(SaleRefusal::Running(sale)),
            Phase::Upcoming | Phase::Ended => Ok(sale),
        }
    }

    /// Forgets a sale (checked, or replayed from the journal).
    pub fn remove(&self, id: &SaleId) {
        let mut inner = self.inner.write();
        let Some(old) = inner.sales.remove(id) else {
            return;
        };
        inner.forget_skus(&old);
        if let Some(queue) = inner.queues.remove(id) {
            queue.set_limits(crate::admission::AdmissionLimits {
                queue_max: 0,
                ..queue.limits()
            });
        }
    }

    /// Stores or replaces a sale (checked, or replayed from the journal). Returns a new
    /// admission queue whose ticks the caller must run, if the sale brought one.
    pub fn put(&self, sale: Sale) -> Option<Arc<Admission>> {
        let mut inner = self.inner.write();
        let mut started = None;
        match (sale.admission, inner.queues.get(&sale.id).cloned()) {
            (Some(limits), Some(queue)) => queue.set_limits(limits),
            (Some(limits), None) => {
                let queue = Admission::new(
                    sale.id.as_str(),
                    limits,
                    self.queue_secret(&sale.id),
                    self.ticket_ttl_ms,
                    self.clock.clone(),
                );
                inner.queues.insert(sale.id.clone(), Arc::clone(&queue));
                started = Some(queue);
            }
            (None, Some(queue)) => {
                // Waiters still drain through it; new holds use the server-wide queue.
                queue.set_limits(crate::admission::AdmissionLimits {
                    queue_max: 0,
                    ..queue.limits()
                });
                inner.queues.remove(&sale.id);
            }
            (None, None) => {}
        }
        if let Some(old) = inner.sales.get(&sale.id).cloned() {
            inner.forget_skus(&old);
        }
        for sku in &sale.skus {
            inner
                .by_sku
                .entry(sku.clone())
                .or_default()
                .push(sale.id.clone());
        }
        inner.sales.insert(sale.id.clone(), Arc::new(sale));
        started
    }

    /// Each queue numbers its arrivals on its own, so each signs with its own key: a ticket
    /// from one queue (with a low number) must not jump the line in another.
    fn queue_secret(&self, sale: &SaleId) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(b"sale-queue:");
        hasher.update(sale.as_str().as_bytes());
        hasher.finalize().into()
    }

    /// The admission queue of the sale governing `sku`, if that sale has its own.
    pub fn queue_for(&self, sku: &SkuId, now_ms: u64) -> Option<Arc<Admission>> {
        let inner = self.inner.read();
        let sale = inner.governing(sku, now_ms)?;
        inner.queues.get(&sale.id).cloned()
    }

    /// The state of the sale's own admission queue, if it has one.
    pub fn queue_status(&self, id: &SaleId) -> Option<crate::admission::AdmissionStatus> {
        let queue = self.inner.read().queues.get(id).cloned()?;
        Some(queue.status())
    }

    pub fn get(&self, id: &SaleId) -> Option<Arc<Sale>> {
        self.inner.read().sales.get(id).cloned()
    }

    /// Every sale kept (at most `--sales-max`).
    pub fn all(&self) -> Vec<Arc<Sale>> {
        self.inner.read().sales.values().cloned().collect()
    }

    /// The sale deciding how `sku` sells at `now_ms`: the one it is on that has not
    /// ended, else the last-ended one that closed its SKUs, else none.
    pub fn sale_for(&self, sku: &SkuId, now_ms: u64) -> Option<Arc<Sale>> {
        self.inner.read().governing(sku, now_ms).cloned()
    }
}

impl Inner {
    fn governing(&self, sku: &SkuId, now_ms: u64) -> Option<&Arc<Sale>> {
        let sales = self
            .by_sku
            .get(sku)?
            .iter()
            .filter_map(|id| self.sales.get(id));
        sales
            .filter(|sale| sale.governs(now_ms))
            .max_by_key(|sale| (sale.phase(now_ms) != Phase::Ended, sale.ends_at_ms))
    }

    fn forget_skus(&mut self, sale: &Sale) {
        for sku in &sale.skus {
            if let Some(ids) = self.by_sku.get_mut(sku) {
                ids.retain(|id| *id != sale.id);
                if ids.is_empty() {
                    self.by_sku.remove(sku);
                }
            }
        }
    }
}

/// Why a sale cannot be deleted.
#[derive(Debug)]
pub enum SaleRefusal {
    Unknown,
    Running(Arc<Sale>),
}
