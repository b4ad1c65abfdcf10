//! What the journal records. Each variant is a fact that already happened in memory; replay
//! applies them in journal order and reaches the same state. The SKU actors and the hold
//! code write through the logs they define ([`SkuLog`], [`HoldLog`]); the journal
//! implements them here, as these events.

use serde::{Deserialize, Serialize};

use futures_util::future::BoxFuture;

use super::Journal;
use crate::broadcast::hub::{cursor, StockEvent};
use crate::domain::{HoldId, HoldStatus, JournalError, SkuId, WebhookId};
use crate::hold::idempotency::IdempotencyRecord;
use crate::hold::log::HoldLog;
use crate::hold::record::{HoldRecord, HoldRecordV7};
use crate::sku::log::SkuLog;
use crate::sku::mark::StockMark;
use crate::sku::SkuChange;
use crate::webhook::log::WebhookLog;
use crate::webhook::Endpoint;

/// Variants are encoded by their position: new ones go at the end, and the ones earlier
/// builds wrote stay readable (replay applies them; they carry no marks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A change to one SKU, in the order its actor applied it (builds before format 7).
    Sku {
        sku: SkuId,
        change: SkuChange,
    },
    /// A hold was placed (builds before format 7): as `HoldPlacedMarked`, without marks.
    HoldPlaced {
        hold: HoldRecordV7,
        idempotency: IdempotencyRecord,
    },
    /// A hold moved to a new status; line changes on its SKUs follow it.
    HoldStatusChanged {
        hold_id: HoldId,
        status: HoldStatus,
        at_ms: u64,
    },
    /// A sale was created or replaced (builds before format 8, without `after_end`).
    SaleSet {
        sale: crate::sale::SaleV7,
    },
    /// A hold request that was refused after running (sold out), remembered under its
    /// idempotency key so a retry gets the same answer.
    Refused {
        idempotency: IdempotencyRecord,
        status: u16,
        body: Vec<u8>,
    },
    /// A change to one SKU, in the order its actor applied it, and the availability it
    /// left (the event channels are told of).
    SkuMarked {
        sku: SkuId,
        change: SkuChange,
        mark: StockMark,
    },
    /// A hold was placed: every line was reserved before this was written, and replay
    /// reserves the lines here (the SKU actors do not journal reservations). `marks` has
    /// what each line's reservation left its SKU at, in line order.
    HoldPlacedMarked {
        hold: HoldRecordV7,
        idempotency: IdempotencyRecord,
        marks: Vec<StockMark>,
    },
    /// A webhook endpoint registered, replaced or disabled.
    WebhookSet {
        endpoint: Endpoint,
    },
    WebhookDeleted {
        id: WebhookId,
    },
    /// Every availability event up to `cursor` was delivered to the endpoint.
    WebhookProgress {
        id: WebhookId,
        cursor: u64,
    },
    /// A sale was created or replaced.
    SalePut {
        sale: crate::sale::Sale,
    },
    /// A sale that had not started or had ended was deleted.
    SaleDeleted {
        id: crate::domain::SaleId,
    },
    /// A hold was placed, each line with the locations its units were taken at; as
    /// `HoldPlacedMarked` otherwise (which builds before format 8 wrote).
    HoldPlacedAt {
        hold: HoldRecord,
        idempotency: IdempotencyRecord,
        marks: Vec<StockMark>,
    },
    /// A location was described or changed.
    LocationPut {
        location: crate::location::Location,
    },
    /// A channel's routing policy was set.
    ChannelPolicyPut {
        policy: crate::location::ChannelPolicy,
    },
    /// What a confirmed hold took at `locations` shipped, the rest not yet; line changes
    /// on its SKUs follow it.
    HoldShipped {
        hold_id: HoldId,
        locations: Vec<crate::domain::LocationId>,
        at_ms: u64,
    },
}

impl SkuLog for Journal {
    fn sku_changed(&self, sku: SkuId, change: SkuChange, mark: StockMark) {
        self.append(Event::SkuMarked { sku, change, mark });
    }
}

impl WebhookLog for Journal {
    fn webhook_set(&self, endpoint: Endpoint) {
        self.append(Event::WebhookSet { endpoint });
    }

    fn webhook_deleted(&self, id: WebhookId) {
        self.append(Event::WebhookDeleted { id });
    }

    fn webhook_progress(&self, id: WebhookId, cursor: u64) {
        self.append(Event::WebhookProgress { id, cursor });
    }

    fn accepting(&self) -> Result<(), JournalError> {
        Journal::accepting(self)
    }

    fn barrier(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        Box::pin(Journal::barrier(self))
    }
}

impl HoldLog for Journal {
    fn hold_placed(&self, hold: HoldRecord, idempotency: IdempotencyRecord, marks: Vec<StockMark>) {
        self.append(Event::HoldPlacedAt {
            hold,
            idempotency,
            marks,
        });
    }

    fn hold_status_changed(&self, hold_id: HoldId, status: HoldStatus, at_ms: u64) {
        self.append(Event::HoldStatusChanged {
            hold_id,
            status,
            at_ms,
        });
    }

    fn hold_shipped(&self, hold_id: HoldId, locations: Vec<crate::domain::LocationId>, at_ms: u64) {
        self.append(Event::HoldShipped {
            hold_id,
            locations,
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

impl Event {
    /// The availability events this journal event carries, one per mark, with their
    /// cursors (see [`crate::broadcast::hub::cursor`]).
    pub fn stock_events(&self, seq: u64, out: &mut Vec<StockEvent>) {
        match self {
            Event::SkuMarked { sku, mark, .. } => {
                out.push(StockEvent::new(cursor(seq, 0), sku.clone(), mark.clone()));
            }
            Event::HoldPlacedMarked {
                hold: HoldRecordV7(hold),
                marks,
                ..
            }
            | Event::HoldPlacedAt { hold, marks, .. } => {
                for (index, (line, mark)) in hold.lines.iter().zip(marks).enumerate() {
                    out.push(StockEvent::new(
                        cursor(seq, index),
                        line.sku.clone(),
                        mark.clone(),
                    ));
                }
            }
            Event::Sku { .. }
            | Event::HoldPlaced { .. }
            | Event::HoldStatusChanged { .. }
            | Event::SaleSet { .. }
            | Event::SalePut { .. }
            | Event::SaleDeleted { .. }
            | Event::LocationPut { .. }
            | Event::ChannelPolicyPut { .. }
            | Event::HoldShipped { .. }
            | Event::Refused { .. }
            | Event::WebhookSet { .. }
            | Event::WebhookDeleted { .. }
            | Event::WebhookProgress { .. } => {}
        }
    }
}
