//! Rebuilding state at start: read the journal in sequence order and apply each event to
//! fresh SKU states, hold records and idempotency answers. What replay cannot settle by
//! itself (a cart cut off by a crash, a status change whose line changes were not all
//! written) is settled afterwards through the live path, so the fixes are journaled too.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::{HoldId, SkuId};
use crate::hold::idempotency::{IdempotencyRecord, StoredResponse};
use crate::hold::HoldRecord;
use crate::sku::SkuState;
use crate::store::journal::decode_seq;
use crate::store::Event;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("journal entry {seq} cannot be decoded ({reason}); the data dir is corrupt or from another version")]
    Corrupt { seq: u64, reason: String },
    #[error("reading the journal: {0}")]
    Storage(#[from] sled::Error),
}

/// State as the journal has it, before reconciliation.
#[derive(Default)]
pub struct Replayed {
    pub skus: HashMap<SkuId, SkuState>,
    pub holds: HashMap<HoldId, HoldRecord>,
    pub answers: Vec<(IdempotencyRecord, StoredResponse)>,
    pub events: u64,
}

pub fn replay(journal: &sled::Tree) -> Result<Replayed, RecoveryError> {
    let mut replayed = Replayed::default();
    for entry in journal.iter() {
        let (key, value) = entry?;
        let event: Event = postcard::from_bytes(&value).map_err(|err| RecoveryError::Corrupt {
            seq: decode_seq(&key),
            reason: err.to_string(),
        })?;
        replayed.apply(event);
    }
    Ok(replayed)
}

impl Replayed {
    fn apply(&mut self, event: Event) {
        self.events += 1;
        match event {
            Event::Sku { sku, change } => self.skus.entry(sku).or_default().apply(&change),
            Event::HoldPlaced { hold, idempotency } => {
                let answer = StoredResponse {
                    status: 201,
                    body: Arc::from(hold.to_json()),
                };
                self.answers.push((idempotency, answer));
                self.holds.insert(hold.id, hold);
            }
            Event::HoldStatusChanged {
                hold_id,
                status,
                at_ms,
            } => {
                if let Some(hold) = self.holds.get_mut(&hold_id) {
                    hold.status = status;
                    hold.updated_at_ms = at_ms;
                }
            }
            Event::Refused {
                idempotency,
                status,
                body,
            } => {
                let answer = StoredResponse {
                    status,
                    body: Arc::from(body),
                };
                self.answers.push((idempotency, answer));
            }
        }
    }

    /// Lines on SKUs whose hold never made it into the journal: a cart the crash cut off
    /// before it was acknowledged. Their units must go back.
    pub fn orphan_lines(&self) -> Vec<(SkuId, HoldId)> {
        let mut orphans = Vec::new();
        for (sku, state) in &self.skus {
            for hold_id in state.lines.keys() {
                if !self.holds.contains_key(hold_id) {
                    orphans.push((sku.clone(), *hold_id));
                }
            }
        }
        orphans
    }
}
