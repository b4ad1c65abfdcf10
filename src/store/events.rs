//! What the journal records. Each variant is a fact that already happened in memory; replay
//! applies them in journal order and reaches the same state.

use serde::{Deserialize, Serialize};

use crate::domain::{HoldId, HoldStatus, SkuId};
use crate::hold::idempotency::IdempotencyRecord;
use crate::hold::record::HoldRecord;
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
