//! The hold coordinator: places a cart by asking each line's SKU actor to reserve, all
//! at once; if any line is refused, the lines already taken are released before the
//! answer, so a cart is all or nothing. Status changes go to the [`HoldBook`] first, which
//! decides, and then to the SKU actors, which follow. Every answer waits for the journal.

use std::sync::Arc;
use std::time::Duration;

use actix::MailboxError;
use futures_util::future::join_all;

use super::book::{Action, BookError, HoldBook};
use super::idempotency::IdempotencyRecord;
use super::log::HoldLog;
use super::record::{HoldRecord, PlacedBy, ReservedLine};
use crate::clock::Clock;
use crate::domain::{
    Channel, CustomerId, HoldId, HoldStatus, JournalError, LocationId, Quantity, SkuId,
};
use crate::location::routing::{fewest_order, Plan, RouteError, RouteRequest};
use crate::location::Locations;
use crate::metrics as m;
use crate::sku::mark::StockMark;
use crate::sku::messages::{Reserve, Reserved, SettleLine, SiteAvailability};
use crate::sku::sites::Route;
use crate::sku::state::LineTarget;
use crate::sku::{SkuDirectory, SkuEntry, SkuError};

/// One line of a validated cart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderLine {
    pub sku: SkuId,
    pub quantity: Quantity,
    /// The per-customer limit of the sale the SKU is on, if any (the checkout sets it).
    /// Not part of what the client sent, so not serialized: the fingerprint of a cart is
    /// its `{"sku", "quantity"}` lines.
    #[serde(skip)]
    pub customer_limit: Option<u64>,
    /// The only location the line may be taken at (click and collect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationId>,
}

/// A validated cart.
#[derive(Debug, Clone)]
pub struct PlaceHold {
    pub lines: Vec<OrderLine>,
    pub channel: Channel,
    pub customer_id: CustomerId,
    pub ttl_s: u64,
    /// The shopper's region, for the `nearest` routing policy.
    pub ship_to_region: Option<String>,
    /// Overrides the channel's `allow_split`.
    pub allow_split: Option<bool>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HoldError {
    #[error("unknown sku {0}")]
    UnknownSku(SkuId),
    /// A SKU actor said no for business reasons (sold out, per-customer limit); the
    /// answer ran to an outcome, so it is remembered under the idempotency key.
    #[error(transparent)]
    Refused(SkuError),
    #[error("hold {0} not found")]
    NotFound(HoldId),
    #[error("hold {} is {}", .0.id, .0.status.as_str())]
    Conflict(Box<HoldRecord>),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// A pinned location the cart cannot use (unknown, paused, not the channel's).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A partial fulfilment names a location the hold took nothing at.
    #[error("{0}")]
    NotAt(String),
}

/// Why a hold request could not run now; a retry may succeed (503).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("sku actor did not answer: {0}")]
    SkuActor(#[from] MailboxError),
    /// The hold book is at `--holds-max` with nothing old enough to forget.
    #[error(transparent)]
    BookFull(BookError),
    #[error("{0} idempotency keys are remembered, the configured maximum")]
    KeysFull(usize),
    /// The book hands a placed answer to its key before it forgets the hold, so this is a
    /// bug; it is said rather than the request run a second time.
    #[error("the answer to this key (hold {0}) is no longer available")]
    AnswerLost(HoldId),
    #[error("the request could not finish: {0}")]
    Interrupted(String),
    /// A SKU refusal that is not the shopper's to act on (an actor's line table is full).
    #[error(transparent)]
    Sku(SkuError),
}

impl From<JournalError> for HoldError {
    fn from(err: JournalError) -> Self {
        Self::Unavailable(err.into())
    }
}

impl From<BookError> for HoldError {
    fn from(err: BookError) -> Self {
        match err {
            BookError::NotFound(id) => Self::NotFound(id),
            not_at @ BookError::NotAt { .. } => Self::NotAt(not_at.to_string()),
            full @ BookError::Full(_) => Self::Unavailable(Unavailable::BookFull(full)),
        }
    }
}

pub struct Reservations {
    pub directory: Arc<SkuDirectory>,
    pub book: Arc<HoldBook>,
    pub journal: Arc<dyn HoldLog>,
    /// How long a request waits on one SKU actor's mailbox before giving up with 503.
    pub actor_send_timeout: Duration,
    pub clock: Clock,
    pub locations: Arc<Locations>,
}

impl Reservations {
    /// Reserves every line or none; the answer waits until the hold is durable.
    /// `placed_by` is the key's text as the idempotency store keeps it, for the hold to
    /// share.
    pub async fn place(
        &self,
        request: PlaceHold,
        idempotency: IdempotencyRecord,
        placed_by: Arc<str>,
    ) -> Result<HoldRecord, HoldError> {
        self.journal.accepting()?;
        let entries = request
            .lines
            .iter()
            .map(|line| {
                self.directory
                    .get(&line.sku)
                    .ok_or_else(|| HoldError::UnknownSku(line.sku.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let routes = self.routes(&request, &entries).await?;
        let hold_id = HoldId::new();
        let now = self.clock.now_ms();
        let reserves =
            entries
                .iter()
                .zip(&request.lines)
                .zip(routes)
                .map(|((entry, line), route)| {
                    let reserve = Reserve {
                        hold_id,
                        quantity: line.quantity,
                        channel: request.channel.clone(),
                        customer: request.customer_id.clone(),
                        customer_limit: line.customer_limit,
                        at_ms: now,
                        route,
                    };
                    entry.ask(reserve, Some(self.actor_send_timeout))
                });
        let replies = join_all(reserves).await;
        // Every line reserved, each with its pooled units and mark; or the first refusal.
        let reserved: Result<Vec<(ReservedLine, StockMark)>, HoldError> = replies
            .into_iter()
            .zip(&request.lines)
            .zip(&entries)
            .map(|((reply, line), entry)| match reply {
                Ok(Ok(Reserved {
                    pooled,
                    placement,
                    mark,
                })) => Ok((
                    ReservedLine {
                        sku: entry.sku.clone(),
                        quantity: line.quantity,
                        pooled,
                        placement,
                    },
                    mark,
                )),
                Ok(Err(err)) => Err(HoldError::from(err)),
                Err(err) => Err(HoldError::Unavailable(err.into())),
            })
            .collect();
        let (lines, marks): (Vec<ReservedLine>, Vec<StockMark>) = match reserved {
            Ok(reserved) => reserved.into_iter().unzip(),
            Err(err) => {
                settle(&entries, hold_id, LineTarget::Released).await;
                return Err(err);
            }
        };
        let hold = HoldRecord {
            id: hold_id,
            lines,
            channel: request.channel,
            customer_id: request.customer_id,
            status: HoldStatus::Held,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(request.ttl_s.saturating_mul(1_000)),
            updated_at_ms: now,
            shipped_from: Default::default(),
            placed_by: PlacedBy(Some(placed_by)),
        };
        if let Err(err) = self.book.insert(hold.clone(), idempotency, marks) {
            settle(&entries, hold_id, LineTarget::Released).await;
            return Err(err.into());
        }
        self.journal.barrier().await?;
        Ok(hold)
    }

    /// Each line's route. Under `fewest_locations` the unpinned lines try the locations in
    /// the order that fills the most of them from each, asked of their SKUs first; stock
    /// may move before the reservations land, which then place as well as they still can.
    async fn routes(
        &self,
        request: &PlaceHold,
        entries: &[SkuEntry],
    ) -> Result<Vec<Option<Arc<Route>>>, HoldError> {
        let pins: Vec<Option<LocationId>> = request
            .lines
            .iter()
            .map(|line| line.location.clone())
            .collect();
        let route_request = RouteRequest {
            channel: &request.channel,
            ship_to_region: request.ship_to_region.as_deref(),
            allow_split: request.allow_split,
        };
        let Plan { mut routes, fewest } = self.locations.plan(route_request, &pins)?;
        let unpinned: Vec<usize> = (0..pins.len()).filter(|at| pins[*at].is_none()).collect();
        let Some(first) = unpinned.first().and_then(|at| routes[*at].clone()) else {
            return Ok(routes);
        };
        if !fewest || unpinned.len() < 2 {
            return Ok(routes);
        }
        let asks = unpinned.iter().map(|at| {
            let candidates = Arc::clone(&first.candidates);
            entries[*at].ask(
                SiteAvailability { candidates },
                Some(self.actor_send_timeout),
            )
        });
        let mut fills = Vec::with_capacity(unpinned.len());
        for (reply, at) in join_all(asks).await.into_iter().zip(&unpinned) {
            let available = reply.map_err(|err| HoldError::Unavailable(err.into()))?;
            let units = request.lines[*at].quantity.units();
            fills.push(available.iter().map(|free| *free >= units).collect());
        }
        let ordered = Arc::new(Route {
            candidates: fewest_order(&first.candidates, &fills).into(),
            ..(*first).clone()
        });
        for at in unpinned {
            routes[at] = Some(Arc::clone(&ordered));
        }
        Ok(routes)
    }

    /// Confirms, releases or fulfils a hold. A repeat of a change that already happened
    /// succeeds again; a change the hold's state forbids is a `Conflict`.
    pub async fn change(&self, hold_id: HoldId, action: Action) -> Result<HoldRecord, HoldError> {
        let transition = self
            .book
            .transition(&hold_id, action, self.clock.now_ms())?;
        if let Some(target) = transition.lines {
            self.settle_hold(&transition.record, target).await;
            m::hold_ended(transition.record.status);
        }
        // Also for a repeat: the change it repeats may still be on its way to disk.
        self.journal.barrier().await?;
        if transition.accepted {
            Ok(transition.record)
        } else {
            Err(HoldError::Conflict(Box::new(transition.record)))
        }
    }

    /// Expires up to `max` holds whose deadline has passed and gives their units back.
    pub async fn expire_due(&self, max: usize) -> usize {
        self.expire_due_at(self.clock.now_ms(), max).await
    }

    /// As [`Self::expire_due`], as if the time were `now_ms`.
    pub async fn expire_due_at(&self, now_ms: u64, max: usize) -> usize {
        let expired = self.book.expire_due(now_ms, max);
        for hold in &expired {
            self.settle_hold(hold, LineTarget::Released).await;
            m::hold_ended(HoldStatus::Expired);
        }
        expired.len()
    }

    async fn settle_hold(&self, hold: &HoldRecord, target: LineTarget) {
        let entries: Vec<SkuEntry> = hold
            .lines
            .iter()
            .filter_map(|line| self.directory.get(&line.sku))
            .collect();
        settle(&entries, hold.id, target).await;
    }
}

/// Sends a line change that must arrive: no timeout, the actor answers once it has run.
async fn settle(entries: &[SkuEntry], hold_id: HoldId, target: LineTarget) {
    let sends = entries.iter().map(|entry| {
        let target = target.clone();
        entry.ask(SettleLine { hold_id, target }, None)
    });
    for reply in join_all(sends).await {
        if let Err(err) = reply {
            tracing::error!(%hold_id, %err, "Line change did not reach its SKU actor.");
        }
    }
}

impl From<SkuError> for HoldError {
    fn from(err: SkuError) -> Self {
        match err {
            SkuError::SoldOut { .. } | SkuError::LimitExceeded { .. } => Self::Refused(err),
            other => Self::Unavailable(Unavailable::Sku(other)),
        }
    }
}
