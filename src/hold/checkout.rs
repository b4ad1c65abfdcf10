//! Checkout, end to end: placing a hold (its idempotency key, the sale it falls under, its
//! place in the admission queue, the reservation across SKU actors, the durable answer)
//! and changing one (confirm, release, fulfil). The HTTP handlers parse, authenticate and
//! render; everything between the request and the journal happens here.

use std::sync::Arc;
use std::time::Instant;

use super::coordinator::{HoldError, OrderLine, PlaceHold, Reservations, Unavailable};
use super::idempotency::{
    fingerprint, scope_key, Answer, Begin, IdempotencyRecord, IdempotencyStore, RunTicket,
    StoredResponse,
};
use super::record::HoldRecord;
use super::Action;
use crate::admission::{Admission, CartLine, Permit, Refusal};
use crate::domain::{Channel, CustomerId, HoldId, IdempotencyKey};
use crate::metrics::{self as m, HoldOutcome};
use crate::sale::{Sale, SaleBook};
use crate::sku::SkuError;

/// How a refusal that ran to an outcome (sold out, a per-customer limit) reads to the
/// client: rendered once, journaled, and sent again byte for byte to every retry.
pub type RenderRefusal = fn(&SkuError) -> Vec<u8>;

/// A validated cart, with what its retries must repeat.
pub struct Order {
    pub hold: PlaceHold,
    pub key: IdempotencyKey,
    /// The TTL the request named, if any: a retry must name the same one.
    pub ttl_seconds: Option<i64>,
    /// The ticket of an earlier 429, to keep the place it gave.
    pub queue_ticket: Option<String>,
    /// When the request arrived, for the latency metric.
    pub received: Instant,
}

/// What a key's request answers, the first time or again.
pub enum Placement {
    Held {
        hold: HoldRecord,
        replayed: bool,
    },
    /// An answer kept as sent: a refusal that ran (409 sold out or limit), or a placement
    /// whose hold the book has since forgotten.
    Kept {
        answer: StoredResponse,
        replayed: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Hold(#[from] HoldError),
    /// The cart names a SKU whose sale is not open now. Depends on the time, so it is
    /// not remembered under the key.
    #[error("sale {} is not open", .0.id)]
    SaleNotOpen(Arc<Sale>),
    /// The admission queue is full; the ticket keeps the shopper's place. Not remembered:
    /// the retry is meant to run.
    #[error("checkout is busy")]
    QueueFull {
        ticket: String,
        position: u32,
        retry_after_s: u64,
    },
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
}

impl From<Unavailable> for CheckoutError {
    fn from(why: Unavailable) -> Self {
        Self::Hold(HoldError::Unavailable(why))
    }
}

/// What the fingerprint covers: the request as the client sent it, parsed, so bodies
/// that differ only in spacing or field order match, while server-side defaults (which
/// may change across a restart) do not make a faithful retry look different.
#[derive(serde::Serialize)]
struct Canonical<'a> {
    lines: &'a [OrderLine],
    customer_id: &'a CustomerId,
    channel: &'a Channel,
    ttl_seconds: Option<i64>,
    // Skipped when absent, so a request without them fingerprints as it did before.
    #[serde(skip_serializing_if = "Option::is_none")]
    ship_to_region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_split: Option<bool>,
}

pub struct Checkout {
    pub reservations: Arc<Reservations>,
    pub idempotency: Arc<IdempotencyStore>,
    pub sales: Arc<SaleBook>,
    pub admission: Arc<Admission>,
    pub render_refusal: RenderRefusal,
}

/// Runs `work` detached from the request, so a client hanging up cannot stop it half-way.
async fn detached<T: 'static>(
    work: impl std::future::Future<Output = T> + 'static,
) -> Result<T, Unavailable> {
    actix::spawn(work)
        .await
        .map_err(|err| Unavailable::Interrupted(err.to_string()))
}

impl Checkout {
    /// Places the order once per idempotency key: the first request runs, a parallel
    /// one with the same body waits for it, a later one gets its answer again.
    pub async fn place(self: &Arc<Self>, order: Order) -> Result<Placement, CheckoutError> {
        let canonical = Canonical {
            lines: &order.hold.lines,
            customer_id: &order.hold.customer_id,
            channel: &order.hold.channel,
            ttl_seconds: order.ttl_seconds,
            ship_to_region: order.hold.ship_to_region.as_deref(),
            allow_split: order.hold.allow_split,
        };
        let print = fingerprint(&serde_json::to_vec(&canonical).unwrap_or_default());
        let scope = scope_key(order.hold.channel.as_str(), order.key.as_str());
        loop {
            match self.idempotency.begin(scope.clone(), print) {
                Begin::Replay(answer) => return self.replay(answer),
                // Wakes when the running request ends; then ask again.
                Begin::Wait(mut finished) => {
                    let _ = finished.changed().await;
                }
                Begin::Mismatch => return Err(CheckoutError::IdempotencyMismatch),
                Begin::Full(count) => return Err(Unavailable::KeysFull(count).into()),
                Begin::Run(ticket) => {
                    let record = IdempotencyRecord {
                        scope_key: scope.to_string(),
                        fingerprint: print,
                        at_ms: self.reservations.clock.now_ms(),
                    };
                    return self.run(order, record, ticket).await;
                }
            }
        }
    }

    /// Runs a key's first request. Dropping `ticket` unanswered frees the key for a retry.
    async fn run(
        self: &Arc<Self>,
        order: Order,
        record: IdempotencyRecord,
        ticket: RunTicket,
    ) -> Result<Placement, CheckoutError> {
        let mut hold = order.hold;
        self.apply_sales(&mut hold, order.ttl_seconds.is_none())?;
        let permit = match self.admit(order.queue_ticket.as_deref(), &hold).await {
            Ok(permit) => permit,
            Err(Refusal::SoldOut(refusal)) => {
                return self.refuse(refusal, record, ticket, order.received).await
            }
            Err(Refusal::QueueFull {
                ticket,
                position,
                retry_after_s,
            }) => {
                return Err(CheckoutError::QueueFull {
                    ticket,
                    position,
                    retry_after_s,
                })
            }
        };
        let checkout = Arc::clone(self);
        detached(async move {
            let placed = checkout.reserve(hold, record, ticket, order.received).await;
            drop(permit);
            placed
        })
        .await?
    }

    async fn reserve(
        &self,
        hold: PlaceHold,
        record: IdempotencyRecord,
        ticket: RunTicket,
        received: Instant,
    ) -> Result<Placement, CheckoutError> {
        let print = record.fingerprint;
        let placed_by = Arc::clone(ticket.scope_key());
        match self
            .reservations
            .place(hold, record.clone(), placed_by)
            .await
        {
            Ok(hold) => {
                ticket.complete(print, Answer::Placed(hold.id), record.at_ms);
                m::hold_outcome(HoldOutcome::Held, received.elapsed());
                tracing::debug!(hold_id = %hold.id, "Hold placed.");
                Ok(Placement::Held {
                    hold,
                    replayed: false,
                })
            }
            Err(HoldError::Refused(refusal)) => {
                self.refuse(refusal, record, ticket, received).await
            }
            Err(err) => Err(err.into()),
        }
    }

    /// A key's earlier answer, again.
    fn replay(&self, answer: Answer) -> Result<Placement, CheckoutError> {
        match answer {
            Answer::Stored(answer) => Ok(Placement::Kept {
                answer,
                replayed: true,
            }),
            Answer::Placed(id) => match self.reservations.book.get(&id) {
                Some(hold) => Ok(Placement::Held {
                    hold,
                    replayed: true,
                }),
                None => {
                    tracing::error!(hold_id = %id, "A key's hold is gone and its answer was not kept.");
                    Err(Unavailable::AnswerLost(id).into())
                }
            },
        }
    }

    /// Applies the sales governing the cart's SKUs: a window not open (not yet, or ended
    /// for a sale that closes its SKUs) refuses the cart, the per-customer limit goes to
    /// the SKU actors, and the sale's TTL is the default. An ended sale that does not close
    /// its SKUs governs nothing: they sell as any other.
    fn apply_sales(&self, hold: &mut PlaceHold, default_ttl: bool) -> Result<(), CheckoutError> {
        let now = self.reservations.clock.now_ms();
        let mut sale_ttl_s: Option<u64> = None;
        for line in &mut hold.lines {
            let Some(sale) = self.sales.sale_for(&line.sku, now) else {
                continue;
            };
            if !sale.is_open(now) {
                return Err(CheckoutError::SaleNotOpen(sale));
            }
            line.customer_limit = sale.per_customer_limit;
            if let Some(ttl) = sale.hold_ttl_s {
                sale_ttl_s = Some(sale_ttl_s.map_or(ttl, |shortest| shortest.min(ttl)));
            }
        }
        if let (true, Some(ttl)) = (default_ttl, sale_ttl_s) {
            hold.ttl_s = ttl;
        }
        Ok(())
    }

    /// A place in the admission queue for this cart (stock-aware: a sold-out line is
    /// refused without queueing). A sale with its own limits has its own queue.
    async fn admit(&self, presented: Option<&str>, hold: &PlaceHold) -> Result<Permit, Refusal> {
        let cart = hold
            .lines
            .iter()
            .filter_map(|line| {
                let entry = self.reservations.directory.get(&line.sku)?;
                Some(CartLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity.units(),
                    gauge: entry.gauge,
                })
            })
            .collect();
        let now = self.reservations.clock.now_ms();
        let sale_queue = hold
            .lines
            .iter()
            .find_map(|line| self.sales.queue_for(&line.sku, now));
        let queue = sale_queue.as_ref().unwrap_or(&self.admission);
        queue.admit(presented, cart).await
    }

    /// Answers a refusal that ran (sold out, limit), remembering it under the idempotency
    /// key (durably) so a retry gets the same answer.
    async fn refuse(
        &self,
        refusal: SkuError,
        record: IdempotencyRecord,
        ticket: RunTicket,
        received: Instant,
    ) -> Result<Placement, CheckoutError> {
        let outcome = match refusal {
            SkuError::LimitExceeded { .. } => HoldOutcome::Limit,
            _ => HoldOutcome::SoldOut,
        };
        let answer = StoredResponse {
            status: 409,
            body: Arc::from((self.render_refusal)(&refusal)),
        };
        let journal = &self.reservations.journal;
        journal.refused(record.clone(), answer.status, answer.body.to_vec());
        journal.barrier().await.map_err(Unavailable::from)?;
        ticket.complete(
            record.fingerprint,
            Answer::Stored(answer.clone()),
            record.at_ms,
        );
        m::hold_outcome(outcome, received.elapsed());
        Ok(Placement::Kept {
            answer,
            replayed: false,
        })
    }

    /// The hold, if it is in the book.
    pub fn hold(&self, id: &HoldId) -> Option<HoldRecord> {
        self.reservations.book.get(id)
    }

    /// Confirms, releases or fulfils a hold, detached.
    pub async fn change(&self, hold_id: HoldId, action: Action) -> Result<HoldRecord, HoldError> {
        let reservations = Arc::clone(&self.reservations);
        detached(async move { reservations.change(hold_id, action).await }).await?
    }
}
