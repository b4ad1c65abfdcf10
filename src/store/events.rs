//! What the journal records. Each variant is a fact that already happened in memory; replay
//! applies them in journal order and reaches the same state. The SKU actors and the hold
//! code write through the logs they define ([`SkuLog`], [`HoldLog`]); the journal
//! implements them here, as these events.

use serde::{Deserialize, Serialize};

use futures_util::future::BoxFuture;

use super::Journal;
use crate::domain::{HoldId, HoldStatus, JournalError, SkuId};
use crate::hold::idempotency::IdempotencyRecord;
use crate::hold::log::HoldLog;
use crate::hold::record::HoldRecord;
use crate::sku::log::SkuLog;
use crate::sku::SkuChange;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A change to one SKU, in the order its actor applied it.
    Sku { sku: SkuId, change: SkuChange },
    /// A hold was placed: every line was reserved before this was written, and replay
    /// reserves the lines here (the SKU actors do not journal reservations).
    HoldPlaced {
        hold: HoldRecord,
        idempotency: IdempotencyRecord,
    },
    /// A hold moved to a new status; line changes on its SKUs follow it.
    HoldStatusChanged {
        hold_id: HoldId,
        status: HoldStatus,
        at_ms: u64,
    },
    /// A sale was created or replaced.
    SaleSet { sale: crate::sale::Sale },
    /// A hold request that was refused after running (sold out), remembered under its
    /// idempotency key so a retry gets the same answer.
    Refused {
        idempotency: IdempotencyRecord,
        status: u16,
        body: Vec<u8>,
    },
}

impl SkuLog for Journal {
    fn sku_changed(&self, sku: SkuId, change: SkuChange) {
        self.append(Event::Sku { sku, change });
    }
}

impl HoldLog for Journal {
    fn hold_placed(&self, hold: HoldRecord, idempotency: IdempotencyRecord) {
        self.append(Event::HoldPlaced { hold, idempotency });
    }

    fn hold_status_changed(&self, hold_id: HoldId, status: HoldStatus, at_ms: u64) {
        self.append(Event::HoldStatusChanged {
            hold_id,
            status,
            at_ms,
        });
    }

    fn refused(&self, idempotency: IdempotencyRecord, status: u16, body: Vec<u8>) {
        self.append(Event::Refused {
            idempotency,
            status,
            body,
        });
    }

    fn accepting(&self) -> Result<(), JournalError> {
        Journal::accepting(self)
    }

    fn barrier(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        Box::pin(Journal::barrier(self))
    }
}
