//! The hub every availability reader shares: a ring of the most recent durable stock
//! events, in cursor order, and a watch of the newest cursor. The journal writer publishes
//! into it once a batch is durable; SSE streams, the change feed and webhooks read from it
//! at their own pace. Memory is the ring's, whatever the readers do: a reader that falls
//! behind the ring's oldest event is told to reset instead of being buffered for.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::event::{Audience, AvailabilityEvent};
use crate::domain::{IdMap, SkuId};
use crate::sku::mark::StockMark;

/// How long a reader woken by a new head waits before it reads: under load the journal
/// publishes a batch every fraction of a millisecond, and a reader that reads each one
/// wakes thousands of times a second. Waiting 10 ms lets one read take them all, at a
/// delay no channel notices. Measured (hot SKU, 3 streams and 2 webhook endpoints): see
/// docs/DESIGN.md, "Availability broadcast".
pub const READ_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Cursors number the journal's events with room for each line of a hold: a hold with
/// more lines than this would share cursors with the next event, so the configuration
/// caps `hold_lines_max` here.
pub const MARKS_PER_EVENT_MAX: u64 = 1_024;

/// The cursor of the `index`th mark of the journal event at `seq`.
pub fn cursor(seq: u64, index: usize) -> u64 {
    let index = u64::try_from(index).unwrap_or(u64::MAX);
    seq.saturating_mul(MARKS_PER_EVENT_MAX)
        .saturating_add(index.min(MARKS_PER_EVENT_MAX - 1))
}

/// The highest cursor any mark of the journal events up to `seq` can have.
pub fn last_cursor_of(seq: u64) -> u64 {
    cursor(seq, usize::MAX)
}

/// One SKU's availability after one durable change.
#[derive(Debug, Clone)]
pub struct StockEvent {
    /// Where the change is in the journal: rises with every event, not by one.
    pub seq: u64,
    pub sku: SkuId,
    pub mark: StockMark,
    /// The event as the admin key reads it, as JSON, made by the first reader that needs
    /// it: every stream and the feed of an admin share one rendering (three subscribers
    /// rendering each event for themselves cost a fifth of a core on a hot SKU).
    rendered: OnceLock<Arc<str>>,
}

impl StockEvent {
    pub fn new(seq: u64, sku: SkuId, mark: StockMark) -> Self {
        Self {
            seq,
            sku,
            mark,
            rendered: OnceLock::new(),
        }
    }

    /// The event as JSON, for the admin key (every channel and the pool).
    pub fn rendered_for_all(&self) -> Arc<str> {
        let rendered = self.rendered.get_or_init(|| {
            let event = AvailabilityEvent::of(self, &Audience::All);
            Arc::from(serde_json::to_string(&event).unwrap_or_default())
        });
        Arc::clone(rendered)
    }
}

impl PartialEq for StockEvent {
    fn eq(&self, other: &Self) -> bool {
        (self.seq, &self.sku, &self.mark) == (other.seq, &other.sku, &other.mark)
    }
}

impl Eq for StockEvent {}

/// What a reader gets for a cursor.
#[derive(Debug)]
pub enum Read {
    /// The events after the cursor (possibly none), and the cursor to read from next.
    Events {
        events: Vec<Arc<StockEvent>>,
        next: u64,
    },
    /// Events after the cursor are no longer kept: re-read the current availability and
    /// go on from `head`.
    Reset { head: u64 },
}

pub struct Hub {
    ring: Mutex<Ring>,
    head: watch::Sender<u64>,
}

struct Ring {
    events: VecDeque<Arc<StockEvent>>,
    kept_max: usize,
    /// Every event at or below this cursor that is not in the ring was dropped (or came
    /// before this process's snapshot): a reader at an older cursor must reset.
    horizon: u64,
    /// Newest cursor published (events or not).
    head: u64,
    /// The highest version published per SKU since start. A mark reaches the journal
    /// after newer ones of its SKU when its hold was written after a later change; it is
    /// then stale and not published, so every reader sees each SKU's versions rise.
    latest: IdMap<SkuId, u64>,
}

impl Hub {
    pub fn new(kept_max: usize) -> Arc<Self> {
        let (head, _) = watch::channel(0);
        Arc::new(Self {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                kept_max: kept_max.max(1),
                horizon: 0,
                head: 0,
                latest: IdMap::default(),
            }),
            head,
        })
    }

    /// At start, before recovery publishes the journal after the snapshot: nothing at or
    /// below `horizon` (the snapshot's last cursor) is kept.
    pub fn restart_at(&self, horizon: u64) {
        let mut ring = self.ring.lock();
        ring.horizon = horizon;
        ring.head = ring.head.max(horizon);
        let head = ring.head;
        drop(ring);
        self.head.send_replace(head);
    }

    /// Publishes the marks of a durable batch, in journal order; `head` is the batch's
    /// last cursor. Called by the journal writer (a lock, a push per event, a wake-up) and
    /// by recovery. Returns how many were published (not superseded).
    pub fn publish(&self, events: impl IntoIterator<Item = StockEvent>, head: u64) -> usize {
        let mut ring = self.ring.lock();
        let mut published = 0;
        for event in events {
            let newer = match ring.latest.get_mut(&event.sku) {
                Some(version) if *version >= event.mark.version => false,
                Some(version) => {
                    *version = event.mark.version;
                    true
                }
                None => {
                    ring.latest.insert(event.sku.clone(), event.mark.version);
                    true
                }
            };
            if newer {
                published += 1;
                ring.push(Arc::new(event));
            }
        }
        ring.head = ring.head.max(head);
        let head = ring.head;
        drop(ring);
        self.head.send_replace(head);
        published
    }

    /// Up to `max` events after `after` that `wanted` keeps, looking at no more than
    /// `scan_max` events (so one call's work is bounded whatever the filter).
    pub fn read(
        &self,
        after: u64,
        max: usize,
        scan_max: usize,
        wanted: &dyn Fn(&StockEvent) -> bool,
    ) -> Read {
        let ring = self.ring.lock();
        if after < ring.horizon {
            return Read::Reset { head: ring.head };
        }
        let start = ring.events.partition_point(|event| event.seq <= after);
        let mut events = Vec::new();
        let mut next = after;
        let mut to_the_end = true;
        for (scanned, event) in ring.events.range(start..).enumerate() {
            if scanned >= scan_max || events.len() >= max {
                to_the_end = false;
                break;
            }
            next = event.seq;
            if wanted(event) {
                events.push(Arc::clone(event));
            }
        }
        // Nothing at or below the head is published later: a reader that saw the whole
        // ring goes on from the head.
        if to_the_end {
            next = next.max(ring.head);
        }
        Read::Events { events, next }
    }

    /// The newest cursor, to follow.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Events kept and the cursor below which readers must reset, for metrics and tests.
    pub fn kept(&self) -> (usize, u64) {
        let ring = self.ring.lock();
        (ring.events.len(), ring.horizon)
    }
}

impl Ring {
    fn push(&mut self, event: Arc<StockEvent>) {
        self.head = self.head.max(event.seq);
        self.events.push_back(event);
        if self.events.len() > self.kept_max {
            if let Some(dropped) = self.events.pop_front() {
                self.horizon = self.horizon.max(dropped.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sku::mark::StockMark;
    use crate::sku::SkuState;

    fn event(seq: u64, sku: &str, version: u64) -> StockEvent {
        StockEvent::new(
            cursor(seq, 0),
            SkuId::parse(sku).expect("sku"),
            StockMark::reading(&SkuState::default()).mark(version, 0, None),
        )
    }

    fn seqs(read: Read) -> (Vec<u64>, u64) {
        match read {
            Read::Events { events, next } => (events.iter().map(|e| e.seq).collect(), next),
            Read::Reset { head } => panic!("reset to {head}"),
        }
    }

    /// A mark written after a newer one of its SKU (its hold was journaled late) is not
    /// published: readers see every SKU's versions rise.
    #[test]
    fn a_superseded_mark_is_not_published() {
        let hub = Hub::new(100);
        hub.publish(
            [event(1, "A", 2), event(2, "A", 1), event(3, "B", 1)],
            cursor(3, 9),
        );
        let (read, next) = seqs(hub.read(0, 10, 100, &|_| true));
        assert_eq!(read, [cursor(1, 0), cursor(3, 0)]);
        assert_eq!(next, cursor(3, 9), "read to the end: on from the head");
    }

    /// Pages stop at `max` events or `scan_max` looked at, and go on from there.
    #[test]
    fn reads_are_paged_and_filtered() {
        let hub = Hub::new(100);
        hub.publish((1..=6).map(|seq| event(seq, "A", seq)), cursor(6, 0));
        let (first, next) = seqs(hub.read(0, 2, 100, &|_| true));
        assert_eq!(first, [cursor(1, 0), cursor(2, 0)]);
        assert_eq!(next, cursor(2, 0));
        let (none, next) = seqs(hub.read(next, 10, 3, &|_| false));
        assert!(none.is_empty());
        assert_eq!(next, cursor(5, 0), "three looked at, none kept");
        let (rest, _) = seqs(hub.read(next, 10, 100, &|_| true));
        assert_eq!(rest, [cursor(6, 0)]);
    }

    /// Past `kept_max` the oldest events go, and a cursor before them gets a reset.
    #[test]
    fn a_cursor_behind_the_ring_is_reset() {
        let hub = Hub::new(3);
        hub.publish((1..=5).map(|seq| event(seq, "A", seq)), cursor(5, 7));
        assert_eq!(hub.kept(), (3, cursor(2, 0)));
        assert!(
            matches!(hub.read(cursor(1, 0), 10, 100, &|_| true), Read::Reset { head } if head == cursor(5, 7))
        );
        let (kept, _) = seqs(hub.read(cursor(2, 0), 10, 100, &|_| true));
        assert_eq!(kept.len(), 3);
    }
}
