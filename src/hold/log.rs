//! What holds write to the journal, and how they wait for it. A trait, so the hold code
//! does not depend on storage; `store::Journal` implements it.

use futures_util::future::BoxFuture;

use super::idempotency::IdempotencyRecord;
use super::record::HoldRecord;
use crate::domain::{HoldId, HoldStatus, JournalError, LocationId};
use crate::sku::mark::StockMark;

pub trait HoldLog: Send + Sync {
    /// A hold whose lines are all reserved, with the key that placed it and what each
    /// line's reservation left its SKU at (in line order).
    fn hold_placed(&self, hold: HoldRecord, idempotency: IdempotencyRecord, marks: Vec<StockMark>);
    fn hold_status_changed(&self, hold_id: HoldId, status: HoldStatus, at_ms: u64);
    /// What a confirmed hold took at `locations` shipped; the rest has not.
    fn hold_shipped(&self, hold_id: HoldId, locations: Vec<LocationId>, at_ms: u64);
    /// A refusal that ran to an outcome, as answered, kept under its key.
    fn refused(&self, idempotency: IdempotencyRecord, status: u16, body: Vec<u8>);
    /// Whether new work may start: the journal is healthy and not too far behind.
    fn accepting(&self) -> Result<(), JournalError>;
    /// Resolves once everything queued before the call is durable.
    fn barrier(&self) -> BoxFuture<'static, Result<(), JournalError>>;
}

/// A log that writes nowhere, for tests of what the hold code keeps in memory.
#[cfg(test)]
pub struct Discard;

#[cfg(test)]
impl HoldLog for Discard {
    fn hold_placed(&self, _: HoldRecord, _: IdempotencyRecord, _: Vec<StockMark>) {}
    fn hold_status_changed(&self, _: HoldId, _: HoldStatus, _: u64) {}
    fn hold_shipped(&self, _: HoldId, _: Vec<LocationId>, _: u64) {}
    fn refused(&self, _: IdempotencyRecord, _: u16, _: Vec<u8>) {}
    fn accepting(&self) -> Result<(), JournalError> {
        Ok(())
    }
    fn barrier(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
