//! Finds the actor for a SKU, creating it on first use on one of a fixed set of Arbiters
//! (one per core) chosen by a hash of the SKU, so cold SKUs share threads and a hot SKU
//! is one actor. The map is bounded by `sku_count_max`.

use std::sync::Arc;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};
use parking_lot::RwLock;

use super::actor::{SkuActor, SkuGauge};
use super::log::SkuLog;
use super::state::SkuState;
use crate::clock::Clock;
use crate::domain::{IdMap, SkuId};

/// What the directory hands out for a SKU.
#[derive(Clone)]
pub struct SkuEntry {
    /// The SKU's id as the directory keeps it: a hold's lines share this allocation
    /// instead of each keeping the text of the request that named it.
    pub sku: SkuId,
    pub addr: Addr<SkuActor>,
    pub gauge: Arc<SkuGauge>,
}

impl SkuEntry {
    /// Sends `message` and waits for the answer (at most `timeout`, if given), counting it
    /// as pending on the SKU meanwhile so the mailbox depth can be watched.
    pub async fn ask<M>(
        &self,
        message: M,
        timeout: Option<Duration>,
    ) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        SkuActor: Handler<M>,
    {
        self.gauge.pending.fetch_add(1, Ordering::Relaxed);
        let request = self.addr.send(message);
        let answer = match timeout {
            Some(timeout) => request.timeout(timeout).await,
            None => request.await,
        };
        self.gauge.pending.fetch_sub(1, Ordering::Relaxed);
        answer
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the server already tracks {0} SKUs, the configured maximum")]
pub struct DirectoryFull(pub usize);

pub struct SkuDirectory {
    arbiters: Vec<ArbiterHandle>,
    entries: RwLock<IdMap<SkuId, SkuEntry>>,
    journal: Arc<dyn SkuLog>,
    clock: Clock,
    sku_count_max: usize,
    lines_max: usize,
    mailbox_max: usize,
}

impl SkuDirectory {
    pub fn new(
        arbiters: Vec<ArbiterHandle>,
        journal: Arc<dyn SkuLog>,
        clock: Clock,
        sku_count_max: usize,
        lines_max: usize,
        mailbox_max: usize,
    ) -> Self {
        assert!(
            !arbiters.is_empty(),
            "the directory needs at least one arbiter"
        );
        Self {
            arbiters,
            entries: RwLock::default(),
            journal,
            clock,
            sku_count_max,
            lines_max,
            mailbox_max,
        }
    }

    pub fn get(&self, sku: &SkuId) -> Option<SkuEntry> {
        self.entries.read().get(sku).cloned()
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SKU's actor, started with empty stock if the SKU is new.
    pub fn get_or_create(&self, sku: &SkuId) -> Result<SkuEntry, DirectoryFull> {
        if let Some(entry) = self.get(sku) {
            return Ok(entry);
        }
        self.install(sku, SkuState::default())
    }

    /// Starts the SKU's actor with `state` (recovery), unless it already runs.
    pub fn install(&self, sku: &SkuId, state: SkuState) -> Result<SkuEntry, DirectoryFull> {
        let mut entries = self.entries.write();
        if let Some(entry) = entries.get(sku) {
            return Ok(entry.clone());
        }
        if entries.len() >= self.sku_count_max {
            return Err(DirectoryFull(entries.len()));
        }
        let index = crate::domain::shard::shard_of(sku, self.arbiters.len());
        let gauge = Arc::new(SkuGauge::default());
        let actor = SkuActor::new(
            sku.clone(),
            state,
            Arc::clone(&self.journal),
            Arc::clone(&gauge),
            self.clock.clone(),
            self.lines_max,
            self.mailbox_max,
        );
        let addr = SkuActor::start_in_arbiter(&self.arbiters[index], move |_| actor);
        let entry = SkuEntry {
            sku: sku.clone(),
            addr,
            gauge,
        };
        entries.insert(sku.clone(), entry.clone());
        Ok(entry)
    }

    pub fn skus(&self) -> Vec<SkuEntry> {
        self.entries.read().values().cloned().collect()
    }

    /// Up to `limit` SKUs whose id starts with `prefix`, after `after`, in id order. One
    /// pass keeping the `limit` smallest, so a page of a million SKUs costs no sort of
    /// them all and no copy beyond the page.
    pub fn page(&self, prefix: &str, after: Option<&SkuId>, limit: usize) -> Vec<SkuEntry> {
        let entries = self.entries.read();
        let mut smallest: std::collections::BinaryHeap<&SkuId> =
            std::collections::BinaryHeap::with_capacity(limit + 1);
        for sku in entries.keys() {
            if !sku.as_str().starts_with(prefix) || after.is_some_and(|after| sku <= after) {
                continue;
            }
            smallest.push(sku);
            if smallest.len() > limit {
                smallest.pop();
            }
        }
        let mut page: Vec<&SkuId> = smallest.into_vec();
        page.sort_unstable();
        page.into_iter()
            .filter_map(|sku| entries.get(sku).cloned())
            .collect()
    }
}
