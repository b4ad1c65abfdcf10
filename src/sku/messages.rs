//! Messages a [`super::SkuActor`] answers. Every change to a SKU is one of these.

use actix::Message;

use super::mark::StockMark;
use super::sites::{Placement, Route};
use super::state::{LineTarget, QuotaSpec, SkuError, SkuView};
use crate::domain::{AdjustReason, Channel, CustomerId, HoldId, LocationId, Quantity};

/// Take `quantity` units into a new hold line, or refuse (sold out, too many lines).
#[derive(Message)]
#[rtype(result = "Result<Reserved, SkuError>")]
pub struct Reserve {
    pub hold_id: HoldId,
    pub quantity: Quantity,
    pub channel: Channel,
    pub customer: CustomerId,
    /// The sale's per-customer limit for this SKU, if it is on sale.
    pub customer_limit: Option<u64>,
    /// When the hold is placed, for the channel's sales velocity.
    pub at_ms: u64,
    /// The locations the line may be taken at, and how; `None` while no location is
    /// named (everything is at `default`: no per-hold allocation, no shared counter).
    pub route: Option<std::sync::Arc<Route>>,
}

/// A line reserved: the units it drew from the shared pool, and what it left the SKU at
/// (journaled with the hold).
#[derive(Debug)]
pub struct Reserved {
    pub pooled: u64,
    pub placement: Placement,
    pub mark: StockMark,
}

/// Bring a hold's line to where the hold book moved the hold. Never refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SettleLine {
    pub hold_id: HoldId,
    pub target: LineTarget,
}

/// Hard-reset on-hand and safety stock (start-of-day feed).
#[derive(Message)]
#[rtype(result = "Result<SkuView, SkuError>")]
pub struct SetStock {
    pub location: LocationId,
    pub on_hand: u64,
    /// Replaces the safety stock when given; kept otherwise (a feed that does not name it
    /// must not zero a buffer the merchandiser set).
    pub safety_stock: Option<u64>,
    /// Replaces the low-stock threshold when given.
    pub low_stock_threshold: Option<u64>,
    /// When the count was taken: units shipped or adjusted at the location since are
    /// taken off `on_hand` (a feed loaded minutes after its count). `None`: now.
    pub as_of_ms: Option<u64>,
}

/// Move on-hand by a signed delta, for a reason.
#[derive(Message)]
#[rtype(result = "Result<SkuView, SkuError>")]
pub struct Adjust {
    pub location: LocationId,
    pub delta: i64,
    pub reason: AdjustReason,
}

/// Replace the channel quotas.
#[derive(Message)]
#[rtype(result = "Result<SkuView, SkuError>")]
pub struct SetAllocation {
    pub quotas: std::collections::BTreeMap<Channel, QuotaSpec>,
}

/// Move unsold quota by a policy.
#[derive(Message)]
#[rtype(result = "Result<SkuView, SkuError>")]
pub struct Rebalance {
    pub policy: super::state::RebalancePolicy,
    pub now_ms: u64,
    /// Only show what it would do.
    pub dry_run: bool,
}

/// At start: if the availability last published for the SKU is not what it has now (a
/// crash took a reservation that mark counted), journal a mark that is.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restate;

/// The SKU's availability now, as a mark of its current version (a webhook endpoint that
/// fell behind the events kept starts again from every SKU's current state).
#[derive(Message)]
#[rtype(result = "StockMark")]
pub struct CurrentMark;

/// The sale governing the SKU and whether its window is open, as the sale ticker works it
/// out from the sale book (`None`: on no sale, or its sale ended and it sells normally).
/// Journaled only if it changes what the SKU says.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSaleWindow {
    pub window: Option<super::mark::SaleWindow>,
}

/// Units available at each of `candidates`, in their order (for routing a whole cart to
/// as few locations as possible before reserving).
#[derive(Message)]
#[rtype(result = "Vec<u64>")]
pub struct SiteAvailability {
    pub candidates: std::sync::Arc<[LocationId]>,
}

/// Read the SKU's counters.
#[derive(Message)]
#[rtype(result = "SkuView")]
pub struct GetView;
