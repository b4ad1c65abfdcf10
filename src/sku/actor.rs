//! The SKU actor owns one SKU's [`SkuState`]: its counters and its open hold lines. All
//! changes to that SKU arrive as messages in its mailbox and run one at a time, so stock
//! needs no lock. Each change is applied, then appended to the journal in that same order
//! (reservations excepted, see `SkuChange::LineReserved`); the actor never waits for I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::{Actor, Context, Handler};

use super::messages::{Adjust, GetView, Reserve, SetStock, SettleLine};
use super::state::{SkuChange, SkuError, SkuState, SkuView};
use crate::domain::SkuId;
use crate::store::{Event, Journal};

/// Figures other threads may read without a message hop (storefront availability, the
/// admission queue's sold-out check, metrics). Counters are written only by the actor.
#[derive(Debug, Default)]
pub struct SkuGauge {
    pub available: AtomicU64,
    pub on_hand: AtomicU64,
    pub held: AtomicU64,
    pub committed: AtomicU64,
    /// Messages sent to the actor and not yet answered: its mailbox depth.
    pub pending: AtomicU64,
}

impl SkuGauge {
    fn publish(&self, state: &SkuState) {
        self.available.store(state.available(), Ordering::Relaxed);
        self.on_hand.store(state.on_hand, Ordering::Relaxed);
        self.held.store(state.held, Ordering::Relaxed);
        self.committed.store(state.committed, Ordering::Relaxed);
    }
}

pub struct SkuActor {
    sku: SkuId,
    state: SkuState,
    journal: Journal,
    gauge: Arc<SkuGauge>,
    /// Most open hold lines this SKU carries; bounds its memory.
    lines_max: usize,
    /// Mailbox capacity; senders past it wait (bounded by their own timeout).
    mailbox_max: usize,
}

impl SkuActor {
    pub fn new(
        sku: SkuId,
        state: SkuState,
        journal: Journal,
        gauge: Arc<SkuGauge>,
        lines_max: usize,
        mailbox_max: usize,
    ) -> Self {
        gauge.publish(&state);
        Self {
            sku,
            state,
            journal,
            gauge,
            lines_max,
            mailbox_max,
        }
    }

    fn apply(&mut self, change: &SkuChange) {
        let was_available = self.state.available();
        self.state.apply(change);
        self.gauge.publish(&self.state);
        match (was_available, self.state.available()) {
            (1.., 0) => {
                crate::metrics::stock_event(crate::metrics::StockEvent::SoldOut);
                tracing::info!(sku = %self.sku, "Sold out.");
            }
            (0, 1..) => {
                crate::metrics::stock_event(crate::metrics::StockEvent::BackInStock);
                tracing::info!(sku = %self.sku, "Back in stock.");
            }
            _ => {}
        }
    }

    fn record(&mut self, change: SkuChange) {
        self.apply(&change);
        self.journal.append(Event::Sku {
            sku: self.sku.clone(),
            change,
        });
    }
}

impl Actor for SkuActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_max);
    }
}

impl Handler<Reserve> for SkuActor {
    type Result = Result<(), SkuError>;

    fn handle(&mut self, msg: Reserve, _: &mut Self::Context) -> Self::Result {
        let change = self.state.check_reserve(
            &self.sku,
            msg.hold_id,
            msg.quantity,
            &msg.channel,
            self.lines_max,
        )?;
        // Not journaled here: the hold's `HoldPlaced` event carries its lines (see
        // `SkuChange::LineReserved`), and a cart refused later leaves no trace to undo.
        self.apply(&change);
        Ok(())
    }
}

impl Handler<SettleLine> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: SettleLine, _: &mut Self::Context) {
        for change in self.state.line_changes_for(msg.hold_id, msg.target) {
            self.record(change);
        }
    }
}

impl Handler<SetStock> for SkuActor {
    type Result = Result<SkuView, SkuError>;

    fn handle(&mut self, msg: SetStock, _: &mut Self::Context) -> Self::Result {
        let change = self.state.check_set(msg.on_hand, msg.safety_stock)?;
        self.record(change);
        Ok(self.state.view(&self.sku))
    }
}

impl Handler<Adjust> for SkuActor {
    type Result = Result<SkuView, SkuError>;

    fn handle(&mut self, msg: Adjust, _: &mut Self::Context) -> Self::Result {
        let change = self.state.check_adjust(msg.delta, msg.reason)?;
        self.record(change);
        Ok(self.state.view(&self.sku))
    }
}

impl Handler<GetView> for SkuActor {
    type Result = actix::MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.state.view(&self.sku))
    }
}
