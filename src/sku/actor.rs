//! The SKU actor owns one SKU's [`SkuState`]: its counters and its open hold lines. All
//! changes to that SKU arrive as messages in its mailbox and run one at a time, so stock
//! needs no lock. Each change is applied, then appended to the journal in that same order
//! (reservations excepted, see `SkuChange::LineReserved`); the actor never waits for I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::{Actor, Context, Handler};

use std::collections::BTreeMap;

use super::log::SkuLog;
use super::mark::{StockMark, StockSignal};
use super::messages::{
    Adjust, CurrentMark, GetView, Rebalance, Reserve, Reserved, Restate, SetAllocation,
    SetSaleWindow, SetStock, SettleLine, SiteAvailability,
};
use super::sites::{Route, SiteStock};
use super::state::{SkuChange, SkuError, SkuState, SkuView};
use crate::clock::Clock;
use crate::domain::{Channel, LocationId, SkuId};

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
    journal: Arc<dyn SkuLog>,
    gauge: Arc<SkuGauge>,
    /// Stamps each change's mark.
    clock: Clock,
    /// Most open hold lines this SKU carries; bounds its memory.
    lines_max: usize,
    /// Mailbox capacity; senders past it wait (bounded by their own timeout).
    mailbox_max: usize,
    /// Units reserved per channel in the current and the previous minute, for the
    /// `by_velocity` rebalance. Live only: a rebalance's result is what is journaled.
    velocity: Velocity,
    /// Whether the SKU has sold out since it had stock, so that stock coming in counts
    /// as "back in stock" only then, not when a new SKU is first stocked.
    sold_out: bool,
    /// Open lines when their tree was last packed: it is packed again once they have grown
    /// by half (see [`SkuState::pack_lines`]), so the work is proportional to the growth.
    lines_packed: usize,
}

/// Fewer open lines than this are never packed: the slack is small and packing not free.
const LINES_PACKED_MIN: usize = 1_024;
/// Nor more than this: packing runs on the actor, and a hot SKU's hundreds of thousands
/// of lines took long enough to show in its holds' p99 (wrk, hot SKU: 1.56x with no cap).
/// A catalog of SKUs with a few thousand open holds each is where the slack adds up.
const LINES_PACKED_MAX: usize = 65_536;

/// Per-channel reserved units in two one-minute buckets; bounded by the channel count.
#[derive(Default)]
struct Velocity {
    minute: u64,
    current: BTreeMap<Channel, u64>,
    previous: BTreeMap<Channel, u64>,
}

impl Velocity {
    fn roll(&mut self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if minute != self.minute {
            self.previous = if minute == self.minute + 1 {
                std::mem::take(&mut self.current)
            } else {
                BTreeMap::new()
            };
            self.current.clear();
            self.minute = minute;
        }
    }

    fn record(&mut self, channel: &Channel, units: u64, now_ms: u64) {
        self.roll(now_ms);
        *self.current.entry(channel.clone()).or_default() += units;
    }

    /// Units per channel over the last one to two minutes.
    fn recent(&mut self, now_ms: u64) -> BTreeMap<Channel, u64> {
        self.roll(now_ms);
        let mut recent = self.previous.clone();
        for (channel, units) in &self.current {
            *recent.entry(channel.clone()).or_default() += units;
        }
        recent
    }
}

impl SkuActor {
    pub fn new(
        sku: SkuId,
        state: SkuState,
        journal: Arc<dyn SkuLog>,
        gauge: Arc<SkuGauge>,
        clock: Clock,
        lines_max: usize,
        mailbox_max: usize,
    ) -> Self {
        gauge.publish(&state);
        report_sites(&[], &state.site_figures());
        // Recovered with nothing available but something on hand or in play: sold out.
        let sold_out = state.available() == 0 && (state.on_hand > 0 || state.held > 0);
        Self {
            sold_out,
            lines_packed: state.lines.len(),
            sku,
            state,
            journal,
            gauge,
            clock,
            lines_max,
            mailbox_max,
            velocity: Velocity::default(),
        }
    }

    /// Applies a checked change and makes its mark: the next version, the availability it
    /// left, and the crossing it made, if any.
    fn apply(&mut self, change: &SkuChange, at_ms: u64) -> StockMark {
        let was_available = self.state.available();
        // Most SKUs are only at the default location: their one figure is compared
        // without building lists (this runs for every reservation).
        let sites_before = match self.state.sites.is_empty() {
            true => vec![],
            false => self.state.site_figures(),
        };
        let default_before = self.state.default_site();
        self.state.apply_at(change, at_ms);
        if sites_before.is_empty() && self.state.sites.is_empty() {
            let default = [(LocationId::default_location(), default_before)];
            report_sites(
                &default,
                &[(default[0].0.clone(), self.state.default_site())],
            );
        } else {
            let mut before = sites_before;
            if before.is_empty() {
                before.push((LocationId::default_location(), default_before));
            }
            report_sites(&before, &self.state.site_figures());
        }
        let lines = self.state.lines.len();
        let due = LINES_PACKED_MIN.max(self.lines_packed.saturating_add(self.lines_packed / 2));
        if (due..=LINES_PACKED_MAX).contains(&lines) {
            self.state.pack_lines();
            self.lines_packed = lines;
        } else if lines < self.lines_packed {
            self.lines_packed = lines;
        }
        self.gauge.publish(&self.state);
        let (threshold, now_available) = (self.state.low_stock_threshold, self.state.available());
        let mut signal = None;
        if was_available > threshold && (1..=threshold).contains(&now_available) {
            signal = Some(StockSignal::LowStock);
            crate::metrics::stock_event(crate::metrics::StockEvent::LowStock);
            tracing::info!(sku = %self.sku, available = now_available, threshold, "Low on stock.");
        }
        match (was_available, now_available) {
            (1.., 0) => {
                self.sold_out = true;
                signal = Some(StockSignal::SoldOut);
                crate::metrics::stock_event(crate::metrics::StockEvent::SoldOut);
                tracing::info!(sku = %self.sku, "Sold out.");
            }
            (0, 1..) if self.sold_out => {
                self.sold_out = false;
                signal = Some(StockSignal::BackInStock);
                crate::metrics::stock_event(crate::metrics::StockEvent::BackInStock);
                tracing::info!(sku = %self.sku, "Back in stock.");
            }
            _ => {}
        }
        let version = self.state.published.version + 1;
        let mark = StockMark::reading(&self.state).mark(version, at_ms, signal);
        self.state.published.note(&mark);
        mark
    }

    fn record(&mut self, change: SkuChange) {
        let shortfall_before = self.state.allocation_shortfall();
        let mark = self.apply(&change, self.clock.now_ms());
        let shortfall = self.state.allocation_shortfall();
        if shortfall > shortfall_before {
            crate::metrics::allocation_conflict();
            tracing::warn!(sku = %self.sku, shortfall, "Stock fell below the channel quotas: the pool is empty and quotas promise more than there is; rebalance.");
        }
        self.journal.sku_changed(self.sku.clone(), change, mark);
    }
}

/// Tells the per-location totals what a change moved at each of the SKU's locations.
fn report_sites(before: &[(LocationId, SiteStock)], after: &[(LocationId, SiteStock)]) {
    let figures = |site: &SiteStock| {
        [site.on_hand, site.held, site.committed, site.available()]
            .map(|units| i64::try_from(units).unwrap_or(i64::MAX))
    };
    for (location, now) in after {
        let was = before
            .iter()
            .find(|(id, _)| id == location)
            .map(|(_, site)| figures(site))
            .unwrap_or_default();
        let now = figures(now);
        if was != now {
            let deltas = [0, 1, 2, 3].map(|at| now[at] - was[at]);
            crate::metrics::location_units_moved(location, deltas);
        }
    }
}

impl Actor for SkuActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_max);
    }
}

impl Handler<Reserve> for SkuActor {
    type Result = Result<Reserved, SkuError>;

    fn handle(&mut self, msg: Reserve, _: &mut Self::Context) -> Self::Result {
        let change = self.state.check_reserve(
            &self.sku,
            msg.hold_id,
            msg.quantity,
            &msg.channel,
            &msg.customer,
            msg.customer_limit,
            self.lines_max,
            match &msg.route {
                Some(route) => route,
                None => Route::unlocated(),
            },
        )?;
        let (pooled, placement) = match &change {
            SkuChange::LineReservedAt {
                pooled, placement, ..
            } => (*pooled, placement.clone()),
            _ => (0, Default::default()),
        };
        // Not journaled here: the hold's `HoldPlaced` event carries its lines and their
        // marks (see `SkuChange::LineReserved`); a cart refused later journals the release.
        let mark = self.apply(&change, msg.at_ms);
        self.velocity
            .record(&msg.channel, msg.quantity.units(), msg.at_ms);
        Ok(Reserved {
            pooled,
            placement,
            mark,
        })
    }
}

impl Handler<SetSaleWindow> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: SetSaleWindow, _: &mut Self::Context) {
        if msg.window != self.state.sale_window {
            self.record(SkuChange::SaleWindowSet { window: msg.window });
        }
    }
}

impl Handler<CurrentMark> for SkuActor {
    type Result = actix::MessageResult<CurrentMark>;

    fn handle(&mut self, _: CurrentMark, _: &mut Self::Context) -> Self::Result {
        let version = self.state.published.version;
        actix::MessageResult(StockMark::reading(&self.state).mark(
            version,
            self.clock.now_ms(),
            None,
        ))
    }
}

impl Handler<Restate> for SkuActor {
    type Result = ();

    fn handle(&mut self, _: Restate, _: &mut Self::Context) {
        if self.state.last_mark_outdated() {
            self.record(SkuChange::Restated);
        }
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
        let on_hand = match msg.as_of_ms {
            Some(as_of_ms) => self
                .state
                .counted_now(&msg.location, msg.on_hand, as_of_ms)?,
            None => msg.on_hand,
        };
        let change = self.state.check_set(
            &msg.location,
            on_hand,
            msg.safety_stock,
            msg.low_stock_threshold,
        )?;
        self.record(change);
        Ok(self.state.view(&self.sku))
    }
}

impl Handler<Adjust> for SkuActor {
    type Result = Result<SkuView, SkuError>;

    fn handle(&mut self, msg: Adjust, _: &mut Self::Context) -> Self::Result {
        let change = self
            .state
            .check_adjust(&msg.location, msg.delta, msg.reason)?;
        self.record(change);
        Ok(self.state.view(&self.sku))
    }
}

impl Handler<SetAllocation> for SkuActor {
    type Result = Result<SkuView, SkuError>;

    fn handle(&mut self, msg: SetAllocation, _: &mut Self::Context) -> Self::Result {
        let change = self.state.check_allocation(&msg.quotas)?;
        self.record(change);
        Ok(self.state.view(&self.sku))
    }
}

impl Handler<Rebalance> for SkuActor {
    type Result = Result<SkuView, SkuError>;

    fn handle(&mut self, msg: Rebalance, _: &mut Self::Context) -> Self::Result {
        let recent = self.velocity.recent(msg.now_ms);
        let change = self.state.check_rebalance(msg.policy, &recent)?;
        if let (true, SkuChange::AllocationSet { quotas }) = (msg.dry_run, &change) {
            let now = std::mem::replace(&mut self.state.quotas, quotas.clone());
            let preview = self.state.view(&self.sku);
            self.state.quotas = now;
            return Ok(preview);
        }
        self.record(change);
        Ok(self.state.view(&self.sku))
    }
}

impl Handler<SiteAvailability> for SkuActor {
    type Result = actix::MessageResult<SiteAvailability>;

    fn handle(&mut self, msg: SiteAvailability, _: &mut Self::Context) -> Self::Result {
        let available = msg
            .candidates
            .iter()
            .map(|location| self.state.site(location).available())
            .collect();
        actix::MessageResult(available)
    }
}

impl Handler<GetView> for SkuActor {
    type Result = actix::MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.state.view(&self.sku))
    }
}
