//! Flash sales: a window, the SKUs on sale, a per-customer limit and a hold TTL. A SKU is
//! on at most one sale whose window has not ended. Holds on a sale SKU outside its window
//! are refused (409 `sale-not-open`); the per-customer limit is enforced by the SKU actor.

pub mod windows;

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::admission::Admission;
use crate::clock::Clock;
use crate::domain::{IdMap, SaleId, SkuId};

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
}

impl Sale {
    pub fn is_open(&self, now_ms: u64) -> bool {
        (self.starts_at_ms..self.ends_at_ms).contains(&now_ms)
    }
}

#[derive(Default)]
struct Inner {
    sales: IdMap<SaleId, Arc<Sale>>,
    by_sku: IdMap<SkuId, SaleId>,
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
            let other = inner.by_sku.get(sku).and_then(|id| inner.sales.get(id));
            if let Some(other) =
                other.filter(|other| other.id != sale.id && other.ends_at_ms > now_ms)
            {
                return Err(format!(
                    "sku {sku} is already on sale {} until it ends",
                    other.id
                ));
            }
        }
        Ok(())
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
            for sku in &old.skus {
                if inner.by_sku.get(sku) == Some(&sale.id) {
                    inner.by_sku.remove(sku);
                }
            }
        }
        for sku in &sale.skus {
            inner.by_sku.insert(sku.clone(), sale.id.clone());
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

    /// The admission queue of the sale `sku` is on, if that sale has its own.
    pub fn queue_for(&self, sku: &SkuId) -> Option<Arc<Admission>> {
        let inner = self.inner.read();
        inner
            .by_sku
            .get(sku)
            .and_then(|id| inner.queues.get(id))
            .cloned()
    }

    pub fn get(&self, id: &SaleId) -> Option<Arc<Sale>> {
        self.inner.read().sales.get(id).cloned()
    }

    /// Every sale kept (at most `--sales-max`).
    pub fn all(&self) -> Vec<Arc<Sale>> {
        self.inner.read().sales.values().cloned().collect()
    }

    pub fn sale_for(&self, sku: &SkuId) -> Option<Arc<Sale>> {
        let inner = self.inner.read();
        inner
            .by_sku
            .get(sku)
            .and_then(|id| inner.sales.get(id))
            .cloned()
    }
}
