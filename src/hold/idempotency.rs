//! Idempotency keys for `POST /v1/holds`. A key is scoped to the channel that used it.
//! The first request with a key runs; a parallel request with the same key and body waits
//! for it and gets its answer; a later one gets the stored answer; a different body under
//! the same key is a mismatch (422). Answers that did not run to an outcome (429, 503,
//! validation errors) are not stored, so a retry runs afresh.
//!
//! A key that placed a hold keeps only the hold's id: its replay is rendered from the hold
//! as placed, byte for byte the first answer, instead of a stored copy of that answer
//! (about 300 bytes a hold). Should the hold book forget the hold before the key (a book
//! full of ended holds), it hands the answer over first ([`IdempotencyStore::materialize`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::domain::shard::Sharded;
use crate::domain::HoldId;

/// SHA-256 of the canonical request, so two bodies that mean the same thing match.
pub type Fingerprint = [u8; 32];

pub fn fingerprint(canonical: &[u8]) -> Fingerprint {
    Sha256::digest(canonical).into()
}

/// What the journal keeps of a key, beside the answer it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// `channel/key`.
    pub scope_key: String,
    pub fingerprint: Fingerprint,
    pub at_ms: u64,
}

/// An answer kept as sent: a refusal, or a placement whose hold the book has forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Arc<[u8]>,
}

/// What a key answers again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 201 with this hold as it was placed, rendered from the hold book.
    Placed(HoldId),
    Stored(StoredResponse),
}

enum Entry {
    Running {
        fingerprint: Fingerprint,
        /// Dropped when the run ends, which wakes every waiter.
        _finished: watch::Sender<()>,
        waiters: watch::Receiver<()>,
    },
    Done {
        fingerprint: Fingerprint,
        answer: Answer,
    },
}

/// Keys are `Arc<str>`: the map, the forget queue and the hold a key placed share one
/// copy of the text.
#[derive(Default)]
struct Shard {
    entries: HashMap<Arc<str>, Entry>,
    /// Done keys in the order they may be forgotten.
    forget_queue: VecDeque<(u64, Arc<str>)>,
}

pub struct IdempotencyStore {
    shards: Sharded<Shard>,
    count: AtomicUsize,
    keys_max: usize,
    ttl_ms: u64,
}

/// What to do with a request carrying a key.
pub enum Begin {
    /// First with this key: run it, then `complete` or drop the ticket.
    Run(RunTicket),
    /// Already answered: send this.
    Replay(Answer),
    /// Running elsewhere with the same body: wait, then ask again.
    Wait(watch::Receiver<()>),
    /// The key was used with a different body.
    Mismatch,
    /// The key table is at its configured maximum.
    Full(usize),
}

/// Proof that this request owns its key's run. Dropping it without `complete` frees the key.
pub struct RunTicket {
    store: Arc<IdempotencyStore>,
    scope_key: Arc<str>,
    completed: bool,
}

pub fn scope_key(channel: &str, key: &str) -> Arc<str> {
    Arc::from(format!("{channel}/{key}"))
}

impl IdempotencyStore {
    pub fn new(keys_max: usize, ttl_ms: u64) -> Self {
        Self {
            shards: Sharded::default(),
            count: AtomicUsize::new(0),
            keys_max,
            ttl_ms,
        }
    }

    fn shard(&self, scope_key: &str) -> &Mutex<Shard> {
        self.shards.of(scope_key)
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn begin(self: &Arc<Self>, scope_key: Arc<str>, fingerprint: Fingerprint) -> Begin {
        let mut shard = self.shard(&scope_key).lock();
        match shard.entries.get(&scope_key) {
            Some(Entry::Done {
                fingerprint: seen,
                answer,
            }) => {
                if *seen == fingerprint {
                    Begin::Replay(answer.clone())
                } else {
                    Begin::Mismatch
                }
            }
            Some(Entry::Running {
                fingerprint: seen,
                waiters,
                ..
            }) => {
                if *seen == fingerprint {
                    Begin::Wait(waiters.clone())
                } else {
                    Begin::Mismatch
                }
            }
            None => {
                let count = self.len();
                if count >= self.keys_max {
                    return Begin::Full(count);
                }
                let (finished, waiters) = watch::channel(());
                let running = Entry::Running {
                    fingerprint,
                    _finished: finished,
                    waiters,
                };
                shard.entries.insert(scope_key.clone(), running);
                self.count.fetch_add(1, Ordering::Relaxed);
                Begin::Run(RunTicket {
                    store: Arc::clone(self),
                    scope_key,
                    completed: false,
                })
            }
        }
    }

    /// Records a key's answer as the journal has it (recovery), without a run. Returns
    /// the key as stored, for the hold it placed to share.
    pub fn restore(&self, record: &IdempotencyRecord, answer: Answer) -> Arc<str> {
        let scope_key: Arc<str> = Arc::from(record.scope_key.as_str());
        let mut shard = self.shard(&scope_key).lock();
        self.store_done(
            &mut shard,
            Arc::clone(&scope_key),
            record.fingerprint,
            answer,
            record.at_ms,
        );
        scope_key
    }

    /// The hold book is forgetting hold `id`: if the key that placed it is still kept,
    /// it keeps its answer as sent (`render` makes it, only then).
    pub fn materialize(
        &self,
        scope_key: &str,
        id: HoldId,
        render: impl FnOnce() -> StoredResponse,
    ) {
        let mut shard = self.shard(scope_key).lock();
        if let Some(Entry::Done { answer, .. }) = shard.entries.get_mut(scope_key) {
            if *answer == Answer::Placed(id) {
                *answer = Answer::Stored(render());
            }
        }
    }

    fn store_done(
        &self,
        shard: &mut Shard,
        scope_key: Arc<str>,
        fingerprint: Fingerprint,
        answer: Answer,
        at_ms: u64,
    ) {
        let done = Entry::Done {
            fingerprint,
            answer,
        };
        if shard.entries.insert(Arc::clone(&scope_key), done).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        shard
            .forget_queue
            .push_back((at_ms + self.ttl_ms, scope_key));
    }

    /// Forgets answers older than the key TTL. Returns how many.
    pub fn forget_expired(&self, now_ms: u64) -> usize {
        let mut forgotten = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            while matches!(shard.forget_queue.front(), Some((until, _)) if *until <= now_ms) {
                let Some((_, key)) = shard.forget_queue.pop_front() else {
                    break;
                };
                if matches!(shard.entries.get(&key), Some(Entry::Done { .. })) {
                    shard.entries.remove(&key);
                    forgotten += 1;
                }
            }
        }
        self.count.fetch_sub(forgotten, Ordering::Relaxed);
        forgotten
    }
}

impl RunTicket {
    /// The key this run holds, shared with the hold it places.
    pub fn scope_key(&self) -> &Arc<str> {
        &self.scope_key
    }

    /// Stores the answer for replay and wakes the waiters.
    pub fn complete(mut self, fingerprint: Fingerprint, answer: Answer, now_ms: u64) {
        let store = Arc::clone(&self.store);
        let mut shard = store.shard(&self.scope_key).lock();
        store.store_done(
            &mut shard,
            Arc::clone(&self.scope_key),
            fingerprint,
            answer,
            now_ms,
        );
        self.completed = true;
    }
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let mut shard = self.store.shard(&self.scope_key).lock();
        if matches!(
            shard.entries.get(&self.scope_key),
            Some(Entry::Running { .. })
        ) {
            shard.entries.remove(&self.scope_key);
            self.store.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16) -> Answer {
        Answer::Stored(StoredResponse {
            status,
            body: Arc::from(&b"{}"[..]),
        })
    }

    #[test]
    fn a_completed_key_replays_and_a_different_body_mismatches() {
        let store = Arc::new(IdempotencyStore::new(10, 1_000));
        let Begin::Run(ticket) = store.begin("web/k".into(), [1; 32]) else {
            panic!("first use must run");
        };
        assert!(matches!(
            store.begin("web/k".into(), [1; 32]),
            Begin::Wait(_)
        ));
        assert!(matches!(
            store.begin("web/k".into(), [2; 32]),
            Begin::Mismatch
        ));
        ticket.complete([1; 32], response(201), 0);
        assert!(
            matches!(store.begin("web/k".into(), [1; 32]), Begin::Replay(r) if r == response(201))
        );
        assert!(matches!(
            store.begin("web/k".into(), [2; 32]),
            Begin::Mismatch
        ));
        assert!(matches!(
            store.begin("app/k".into(), [2; 32]),
            Begin::Run(_)
        ));
    }

    #[test]
    fn a_dropped_run_frees_the_key_and_the_table_is_bounded() {
        let store = Arc::new(IdempotencyStore::new(1, 1_000));
        let ticket = store.begin("web/a".into(), [1; 32]);
        assert!(matches!(
            store.begin("web/b".into(), [1; 32]),
            Begin::Full(1)
        ));
        drop(ticket);
        assert_eq!(store.len(), 0);
        assert!(matches!(
            store.begin("web/a".into(), [1; 32]),
            Begin::Run(_)
        ));
    }

    #[test]
    fn answers_are_forgotten_after_the_ttl() {
        let store = Arc::new(IdempotencyStore::new(10, 1_000));
        if let Begin::Run(ticket) = store.begin("web/k".into(), [1; 32]) {
            ticket.complete([1; 32], response(201), 5_000);
        }
        assert_eq!(store.forget_expired(5_999), 0);
        assert_eq!(store.forget_expired(6_000), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn a_placed_answer_is_handed_over_only_for_its_own_hold() {
        let store = Arc::new(IdempotencyStore::new(10, 1_000));
        let (placed, other) = (HoldId::new(), HoldId::new());
        if let Begin::Run(ticket) = store.begin("web/k".into(), [1; 32]) {
            ticket.complete([1; 32], Answer::Placed(placed), 0);
        }
        let sent = StoredResponse {
            status: 201,
            body: Arc::from(&b"{\"hold_id\":1}"[..]),
        };
        store.materialize("web/k", other, || sent.clone());
        assert!(
            matches!(store.begin("web/k".into(), [1; 32]), Begin::Replay(Answer::Placed(id)) if id == placed)
        );
        store.materialize("web/k", placed, || sent.clone());
        assert!(
            matches!(store.begin("web/k".into(), [1; 32]), Begin::Replay(Answer::Stored(r)) if r == sent)
        );
    }
}
