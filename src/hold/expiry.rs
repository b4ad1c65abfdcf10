//! The expiry sweep: every tick it expires held holds whose deadline has passed and gives
//! their units back, then forgets ended holds and idempotency answers past retention.
//! A tick well under a second keeps expiry within a second of the deadline.

use std::sync::Arc;
use std::time::Duration;

use super::coordinator::Reservations;
use super::idempotency::IdempotencyStore;

/// Most holds expired per tick, so one tick's work is bounded; the rest go next tick.
pub const EXPIRIES_PER_TICK_MAX: usize = 10_000;

pub async fn run(
    reservations: Arc<Reservations>,
    idempotency: Arc<IdempotencyStore>,
    tick: Duration,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let expired = reservations.expire_due(EXPIRIES_PER_TICK_MAX).await;
        if expired > 0 {
            tracing::debug!(expired, "Expired overdue holds.");
        }
        let now = reservations.clock.now_ms();
        reservations.book.forget_ended(now);
        idempotency.forget_expired(now);
    }
}
