//! The book of holds: the one place that decides a hold's status, so a confirm racing its
//! own expiry has exactly one winner. SKU actors follow what the book decided. Holds are
//! spread over shards by id; each shard also indexes its deadlines (for the expiry sweep)
//! and its ended holds (for bounded retention).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::idempotency::{IdempotencyRecord, IdempotencyStore};
use super::log::HoldLog;
use super::record::HoldRecord;
use crate::domain::shard::Sharded;
use crate::domain::{HoldId, HoldStatus, IdMap, LocationId};
use crate::sku::mark::StockMark;
use crate::sku::state::LineTarget;

/// What a client asks of a hold. (The expiry sweep does not ask: it takes the holds
/// whose deadline passed, `expire_due`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Confirm,
    Release,
    /// Everything the hold took (that has not shipped yet) shipped.
    Fulfil,
    /// What the hold took at these locations shipped; once every location it took units
    /// at has shipped, it is fulfilled.
    FulfilAt(Arc<[LocationId]>),
}

/// The result of asking: the hold afterwards, what its lines must do, and whether the
/// request is answered with success or with 409.
#[derive(Debug, Clone)]
pub struct Transition {
    pub record: HoldRecord,
    pub lines: Option<LineTarget>,
    pub accepted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("hold {0} not found")]
    NotFound(HoldId),
    #[error("the hold table is full ({0} holds, none old enough to forget)")]
    Full(usize),
    #[error("hold {hold} took nothing at location {location}")]
    NotAt { hold: HoldId, location: LocationId },
}

/// The status a hold moves to, if any, and whether the request succeeds.
fn decide(status: HoldStatus, action: &Action, overdue: bool) -> (Option<HoldStatus>, bool) {
    use HoldStatus as S;
    match (status, action) {
        (S::Confirmed, Action::FulfilAt(_)) => (Some(S::Fulfilled), true),
        (S::Held, Action::FulfilAt(_)) if !overdue => (None, false),
        (S::Fulfilled, Action::FulfilAt(_)) => (None, true),
        // Past its deadline a held hold is expired, whatever is asked: the units went
        // back on sale, so a confirm must not take them.
        (S::Held, _) if overdue => (Some(S::Expired), false),
        (S::Held, Action::Confirm) => (Some(S::Confirmed), true),
        (S::Held, Action::Release) => (Some(S::Released), true),
        (S::Held, Action::Fulfil) => (None, false),
        (S::Confirmed | S::Fulfilled, Action::Confirm) => (None, true),
        (S::Confirmed, Action::Fulfil) => (Some(S::Fulfilled), true),
        (S::Fulfilled, Action::Fulfil) => (None, true),
        (S::Released, Action::Release) => (None, true),
        _ => (None, false),
    }
}

/// Where a hold's lines should be, given its status and what of it shipped.
pub fn hold_line_target(hold: &HoldRecord) -> Option<LineTarget> {
    match (hold.status, hold.shipped_from.is_empty()) {
        (HoldStatus::Confirmed, false) => Some(LineTarget::Shipped(Arc::from(&*hold.shipped_from))),
        (status, _) => line_target(status),
    }
}

pub fn line_target(status: HoldStatus) -> Option<LineTarget> {
    match status {
        HoldStatus::Held => None,
        HoldStatus::Confirmed => Some(LineTarget::Committed),
        HoldStatus::Released | HoldStatus::Expired => Some(LineTarget::Released),
        HoldStatus::Fulfilled => Some(LineTarget::Fulfilled),
    }
}

#[derive(Default)]
struct Shard {
    holds: IdMap<HoldId, HoldRecord>,
    /// Held holds by deadline.
    deadlines: BTreeSet<(u64, HoldId)>,
    /// Ended holds by the time they may be forgotten.
    ended: BTreeSet<(u64, HoldId)>,
}

impl Shard {
    /// Forgets the ended hold whose retention runs out first. The key that placed it, if
    /// still kept (the book was full, or the clock moved), keeps its answer as sent.
    fn forget_oldest_ended(&mut self, answers: &IdempotencyStore) -> bool {
        let Some((_, id)) = self.ended.pop_first() else {
            return false;
        };
        let Some(forgotten) = self.holds.remove(&id) else {
            return false;
        };
        if let Some(scope_key) = &forgotten.placed_by.0 {
            answers.materialize(scope_key, forgotten.id, || forgotten.placed_response());
        }
        true
    }
}

pub struct HoldBook {
    shards: Sharded<Shard>,
    journal: Arc<dyn HoldLog>,
    /// Holds in the book, live and ended.
    count: AtomicUsize,
    /// Most holds kept; past it the oldest ended holds are forgotten early.
    holds_max: usize,
    /// How long an ended hold still answers GET.
    retention_ms: u64,
    /// The keys whose replays are rendered from the holds here.
    answers: Arc<IdempotencyStore>,
}

impl HoldBook {
    pub fn new(
        journal: Arc<dyn HoldLog>,
        holds_max: usize,
        retention_ms: u64,
        answers: Arc<IdempotencyStore>,
    ) -> Self {
        Self {
            shards: Sharded::default(),
            journal,
            count: AtomicUsize::new(0),
            holds_max,
            retention_ms,
            answers,
        }
    }

    fn shard(&self, id: &HoldId) -> &Mutex<Shard> {
        self.shards.of(id)
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a freshly reserved hold and journals it with its lines' marks. Its lines are
    /// already reserved.
    pub fn insert(
        &self,
        hold: HoldRecord,
        idempotency: IdempotencyRecord,
        marks: Vec<StockMark>,
    ) -> Result<(), BookError> {
        self.reserve_slot()?;
        let mut shard = self.shard(&hold.id).lock();
        self.index(&mut shard, hold.clone());
        self.journal.hold_placed(hold, idempotency, marks);
        Ok(())
    }

    /// Counts a new hold in, strictly within `holds_max`: when the book is full the oldest
    /// ended hold anywhere is forgotten to make room, or the insert is refused.
    fn reserve_slot(&self) -> Result<(), BookError> {
        if self.count.fetch_add(1, Ordering::AcqRel) < self.holds_max || self.forget_oldest_ended()
        {
            return Ok(());
        }
        let count = self.count.fetch_sub(1, Ordering::AcqRel) - 1;
        Err(BookError::Full(count))
    }

    /// Forgets the ended hold whose retention runs out first, across all shards, locking
    /// one shard at a time. Returns whether one was forgotten.
    fn forget_oldest_ended(&self) -> bool {
        let oldest = self
            .shards
            .iter()
            .filter_map(|shard| shard.lock().ended.first().map(|&(until, _)| (until, shard)))
            .min_by_key(|&(until, _)| until);
        let Some((_, shard)) = oldest else {
            return false;
        };
        let forgotten = shard.lock().forget_oldest_ended(&self.answers);
        if forgotten {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        forgotten
    }

    /// Puts a hold back as the journal recorded it (recovery), without journaling again.
    pub fn restore(&self, hold: HoldRecord) {
        let mut shard = self.shard(&hold.id).lock();
        if let Some(old) = shard.holds.remove(&hold.id) {
            shard.deadlines.remove(&(old.expires_at_ms, old.id));
            shard
                .ended
                .remove(&(old.updated_at_ms + self.retention_ms, old.id));
        } else {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        self.index(&mut shard, hold);
    }

    fn index(&self, shard: &mut Shard, hold: HoldRecord) {
        if hold.status == HoldStatus::Held {
            shard.deadlines.insert((hold.expires_at_ms, hold.id));
        } else if hold.status.is_final() {
            shard
                .ended
                .insert((hold.updated_at_ms + self.retention_ms, hold.id));
        }
        shard.holds.insert(hold.id, hold);
    }

    pub fn get(&self, id: &HoldId) -> Option<HoldRecord> {
        self.shard(id).lock().holds.get(id).cloned()
    }

    /// Applies `action` to a hold at time `now_ms`; a held hold past its deadline is
    /// expired whatever the action, so the deadline rules, not the sweep's timing.
    pub fn transition(
        &self,
        id: &HoldId,
        action: Action,
        now_ms: u64,
    ) -> Result<Transition, BookError> {
        let mut shard = self.shard(id).lock();
        let record = shard.holds.get(id).ok_or(BookError::NotFound(*id))?;
        let overdue = now_ms >= record.expires_at_ms;
        let (next, accepted) = decide(record.status, &action, overdue);
        if let Action::FulfilAt(locations) = &action {
            let took = record.locations();
            if let Some(other) = locations.iter().find(|at| !took.contains(at)) {
                return Err(BookError::NotAt {
                    hold: *id,
                    location: other.clone(),
                });
            }
            // Shipping part of a confirmed hold: it stays confirmed while a location it
            // took units at has not shipped.
            let shipped = |at: &LocationId| record.shipped_from.contains(at);
            let rest_waits = took
                .iter()
                .any(|at| !shipped(at) && !locations.contains(at));
            if next == Some(HoldStatus::Fulfilled) && rest_waits {
                let newly = locations
                    .iter()
                    .filter(|at| !shipped(at))
                    .cloned()
                    .collect();
                return self.ship_part(&mut shard, id, newly, now_ms);
            }
        }
        let Some(status) = next else {
            return Ok(Transition {
                record: record.clone(),
                lines: None,
                accepted,
            });
        };
        let record = self.move_to(&mut shard, id, status, now_ms)?;
        Ok(Transition {
            record,
            lines: line_target(status),
            accepted,
        })
    }

    /// A partial fulfilment: the hold stays confirmed, its part at `newly` shipped.
    fn ship_part(
        &self,
        shard: &mut Shard,
        id: &HoldId,
        newly: Vec<LocationId>,
        now_ms: u64,
    ) -> Result<Transition, BookError> {
        let record = shard.holds.get_mut(id).ok_or(BookError::NotFound(*id))?;
        if newly.is_empty() {
            return Ok(Transition {
                record: record.clone(),
                lines: None,
                accepted: true,
            });
        }
        record.ship_from(&newly);
        record.updated_at_ms = now_ms;
        self.journal.hold_shipped(*id, newly.clone(), now_ms);
        Ok(Transition {
            record: record.clone(),
            lines: Some(LineTarget::Shipped(Arc::from(newly))),
            accepted: true,
        })
    }

    fn move_to(
        &self,
        shard: &mut Shard,
        id: &HoldId,
        status: HoldStatus,
        now_ms: u64,
    ) -> Result<HoldRecord, BookError> {
        let record = shard.holds.get_mut(id).ok_or(BookError::NotFound(*id))?;
        let was = record.status;
        record.status = status;
        record.updated_at_ms = now_ms;
        let record = record.clone();
        if was == HoldStatus::Held {
            shard.deadlines.remove(&(record.expires_at_ms, *id));
        }
        if status.is_final() {
            shard.ended.insert((now_ms + self.retention_ms, *id));
        }
        self.journal.hold_status_changed(*id, status, now_ms);
        Ok(record)
    }

    /// Expires up to `max` held holds whose deadline is at or before `now_ms`.
    pub fn expire_due(&self, now_ms: u64, max: usize) -> Vec<HoldRecord> {
        let mut expired = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            while expired.len() < max {
                let due = match shard.deadlines.first() {
                    Some(&(deadline, id)) if deadline <= now_ms => id,
                    _ => break,
                };
                match self.move_to(&mut shard, &due, HoldStatus::Expired, now_ms) {
                    Ok(record) => expired.push(record),
                    Err(_) => {
                        shard.deadlines.pop_first();
                    }
                }
            }
        }
        expired
    }

    /// Forgets ended holds whose retention has run out. Returns how many.
    pub fn forget_ended(&self, now_ms: u64) -> usize {
        let mut forgotten = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            while matches!(shard.ended.first(), Some(&(until, _)) if until <= now_ms) {
                if shard.forget_oldest_ended(&self.answers) {
                    forgotten += 1;
                }
            }
        }
        self.count.fetch_sub(forgotten, Ordering::Relaxed);
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, CustomerId};
    use HoldStatus as S;

    fn hold(status: HoldStatus) -> HoldRecord {
        HoldRecord {
            id: HoldId::new(),
            lines: Vec::new(),
            channel: Channel::default_channel(),
            customer_id: CustomerId::parse("c").unwrap(),
            status,
            created_at_ms: 0,
            expires_at_ms: 1_000,
            updated_at_ms: 0,
            shipped_from: Default::default(),
            placed_by: Default::default(),
        }
    }

    /// A book whose journal writes nowhere: these tests are about what the book keeps.
    fn book(holds_max: usize) -> HoldBook {
        let answers = Arc::new(IdempotencyStore::new(100, 60_000));
        HoldBook::new(
            Arc::new(crate::hold::log::Discard),
            holds_max,
            60_000,
            answers,
        )
    }

    fn key() -> IdempotencyRecord {
        IdempotencyRecord {
            scope_key: "k".into(),
            fingerprint: [0; 32],
            at_ms: 0,
        }
    }

    #[test]
    fn restored_holds_count_against_the_bound() {
        let book = book(2);
        let held = hold(S::Held);
        book.restore(held.clone());
        book.restore(held);
        book.restore(hold(S::Confirmed));
        assert_eq!(book.len(), 2, "a hold restored twice counts once");
        assert_eq!(
            book.insert(hold(S::Held), key(), Vec::new()),
            Err(BookError::Full(2))
        );
        let released = hold(S::Released);
        book.restore(released.clone());
        assert_eq!(
            book.len(),
            3,
            "recovery restores past the bound rather than lose holds"
        );
        assert_eq!(
            book.insert(hold(S::Held), key(), Vec::new()),
            Ok(()),
            "the ended hold makes room"
        );
        assert!(book.get(&released.id).is_none());
        assert_eq!(book.len(), 3);
    }

    #[test]
    fn a_full_book_forgets_the_oldest_ended_hold_in_any_shard() {
        let book = book(3);
        let ended: Vec<HoldRecord> = (0..2).map(|_| hold(S::Expired)).collect();
        for hold in &ended {
            book.restore(hold.clone());
        }
        book.restore(hold(S::Held));
        for _ in 0..2 {
            assert_eq!(book.insert(hold(S::Held), key(), Vec::new()), Ok(()));
        }
        assert_eq!(book.len(), 3);
        assert!(ended.iter().all(|h| book.get(&h.id).is_none()));
        assert_eq!(
            book.insert(hold(S::Held), key(), Vec::new()),
            Err(BookError::Full(3))
        );
    }

    #[test]
    fn an_overdue_held_hold_expires_whatever_is_asked() {
        let at = Action::FulfilAt(Arc::from(vec![LocationId::default_location()]));
        for action in [Action::Confirm, Action::Release, Action::Fulfil, at] {
            assert_eq!(decide(S::Held, &action, true), (Some(S::Expired), false));
        }
    }

    #[test]
    fn repeats_succeed_without_change_and_wrong_states_conflict() {
        assert_eq!(decide(S::Confirmed, &Action::Confirm, false), (None, true));
        assert_eq!(decide(S::Released, &Action::Release, false), (None, true));
        assert_eq!(decide(S::Fulfilled, &Action::Fulfil, false), (None, true));
        assert_eq!(decide(S::Expired, &Action::Confirm, false), (None, false));
        assert_eq!(decide(S::Released, &Action::Confirm, false), (None, false));
        assert_eq!(decide(S::Confirmed, &Action::Release, false), (None, false));
        assert_eq!(decide(S::Held, &Action::Fulfil, false), (None, false));
    }
}
