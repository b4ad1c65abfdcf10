//! The journal writer: one thread that takes events in batches, writes each batch to sled,
//! makes it durable with one flush, and only then answers the barriers queued behind it.
//! A batch is stored as a few records of events encoded back to back; a record's key is
//! the sequence number of its last event (big-endian, so keys sort by sequence). Few sled
//! inserts per batch keep the storage engine's work small.
//!
//! The records are plain inserts, not a sled `Batch`: sled recovers a prefix of its log,
//! so a crash keeps a prefix of the records, and every prefix of the journal is a state
//! the server was in (batches are cut wherever the writer happens to wake). An atomic
//! batch would cost two extra log-buffer writes per flush (sled seals the buffer before
//! and after its batch marker) and take sled's global write lock.
//! Appending never blocks an actor; a request learns its change is durable by awaiting
//! [`Journal::barrier`], which resolves once everything appended before it is on disk.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::events::Event;
use crate::metrics as m;

/// Largest journal record, in bytes. sled 0.34 writes any log message over a quarter
/// segment (128 KiB by default) to a separate blob file without fsync, and a leaf node
/// (rewritten whole from time to time) holds up to 17 records; 6 KiB records keep every
/// journal write inline in sled's data file, which `Durability::Fsync` syncs.
pub const RECORD_BYTES_MAX: usize = 6 * 1024;

/// How hard the writer works to make a batch survive a crash before acknowledging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// sled flush, then fdatasync of its data file: survives kill -9 and power loss.
    Fsync,
    /// sled flush only (sync_file_range on Linux): survives kill -9, not power loss.
    Flush,
    /// Written to sled's page cache, never flushed by us: a crash may lose recent acks.
    None,
}

/// Limits of one batch and of the backlog in front of the writer.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    pub durability: Durability,
    /// Most events written under one flush.
    pub batch_events_max: usize,
    /// Most encoded bytes written under one flush.
    pub batch_bytes_max: usize,
    /// A batch with fewer events than this waits up to `linger` for more before it is
    /// flushed (1: never waits). Ignored with `Durability::None`, which has no flush.
    pub batch_events_min: usize,
    /// Longest wait for a small batch to fill, from the writer's first message.
    pub linger: Duration,
    /// Events waiting for the writer past which new holds are refused with 503.
    pub backlog_max: usize,
    /// sled's data file, fdatasync'ed after each flush when durability is `fsync`.
    pub data_file: PathBuf,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("the journal failed to write and refuses further changes: {0}")]
    Failed(String),
    #[error("the journal writer has stopped")]
    Stopped,
}

enum Message {
    Event(Box<Event>),
    Barrier(oneshot::Sender<Result<(), JournalError>>),
}

/// Cheap, cloneable handle for appending events and awaiting their durability.
#[derive(Clone)]
pub struct Journal {
    sender: Sender<Message>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Events appended but not yet written.
    backlog: AtomicUsize,
    /// Set after a write or flush error; from then on every barrier fails.
    failed: AtomicBool,
    backlog_max: usize,
    /// Sequence number of the last event written.
    last_seq: AtomicU64,
}

impl Journal {
    /// Starts the writer thread on `tree`, numbering events after `covered_seq` (what a
    /// snapshot covers; the journal may have been trimmed up to it) or after the journal's
    /// last entry, whichever is later. Returns the handle and the thread, which ends once
    /// every handle is dropped and the remaining events are written.
    pub fn start(
        db: sled::Db,
        tree: sled::Tree,
        settings: JournalSettings,
        covered_seq: u64,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let last_seq = match tree.last() {
            Ok(Some((key, _))) => decode_seq(&key).max(covered_seq),
            Ok(None) => covered_seq,
            Err(err) => return Err(std::io::Error::other(err)),
        };
        let data_file = match settings.durability {
            Durability::Fsync => Some(File::open(&settings.data_file)?),
            Durability::Flush | Durability::None => None,
        };
        let (sender, receiver) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            backlog: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            backlog_max: settings.backlog_max,
            last_seq: AtomicU64::new(last_seq),
        });
        let writer = Writer {
            db,
            tree,
            data_file,
            settings,
            shared: Arc::clone(&shared),
            next_seq: last_seq + 1,
        };
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(receiver))?;
        Ok((Self { sender, shared }, thread))
    }

    /// Queues an event. Never blocks: the backlog is bounded upstream, because new holds
    /// are refused while [`Journal::accepting`] says no.
    pub fn append(&self, event: Event) {
        self.shared.backlog.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(Message::Event(Box::new(event))).is_err() {
            self.shared.failed.store(true, Ordering::Relaxed);
        }
    }

    /// Resolves once every event appended before this call is durable.
    pub async fn barrier(&self) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        self.sender
            .send(Message::Barrier(done))
            .map_err(|_| JournalError::Stopped)?;
        wait.await.map_err(|_| JournalError::Stopped)?
    }

    /// Whether new work may start: the writer is healthy and not too far behind.
    pub fn accepting(&self) -> Result<(), String> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err("the journal has failed; see the server log".into());
        }
        let backlog = self.shared.backlog.load(Ordering::Relaxed);
        if backlog > self.shared.backlog_max {
            return Err(format!(
                "the journal is {backlog} events behind (limit {}); retry shortly",
                self.shared.backlog_max
            ));
        }
        Ok(())
    }

    /// Sequence number of the last event written to sled.
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }
}

pub fn encode_seq(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes a journal record into its events with their sequence numbers; `key` is the
/// record's key (the last event's sequence number).
pub fn decode_record(key: &[u8], value: &[u8]) -> Result<Vec<(u64, Event)>, postcard::Error> {
    let events: Vec<Event> = decode_packed(value)?;
    let last = decode_seq(key);
    let first = last.saturating_sub(u64::try_from(events.len()).unwrap_or(0)) + 1;
    Ok((first..).zip(events).collect())
}

/// Decodes values encoded back to back in one record (journal events, snapshot entries).
pub fn decode_packed<T: serde::de::DeserializeOwned>(
    value: &[u8],
) -> Result<Vec<T>, postcard::Error> {
    let mut items = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (item, tail) = postcard::take_from_bytes::<T>(rest)?;
        items.push(item);
        rest = tail;
    }
    Ok(items)
}

/// Packs values encoded back to back into records of at most [`RECORD_BYTES_MAX`] (a
/// single larger value gets a record of its own); [`decode_packed`] reads them back.
/// Journal records and snapshot chunks are both packed this way.
#[derive(Default)]
pub struct Packer {
    open: Vec<u8>,
}

impl Packer {
    /// Appends `value`. Returns the record it closed first to make room, if any.
    /// Encodes straight into the open record, with no buffer of its own per value.
    pub fn push<T: serde::Serialize>(
        &mut self,
        value: &T,
    ) -> Result<Option<Vec<u8>>, postcard::Error> {
        let start = self.open.len();
        if let Err(err) = postcard::to_io(value, &mut self.open) {
            self.open.truncate(start);
            return Err(err);
        }
        if start == 0 || self.open.len() <= RECORD_BYTES_MAX {
            return Ok(None);
        }
        let value = self.open.split_off(start);
        Ok(Some(std::mem::replace(&mut self.open, value)))
    }

    /// Closes the record being filled; None if it is empty.
    pub fn close(&mut self) -> Option<Vec<u8>> {
        (!self.open.is_empty()).then(|| std::mem::take(&mut self.open))
    }

    /// Bytes in the record being filled.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }
}

pub fn decode_seq(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let len = key.len().min(8);
    bytes[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(bytes)
}

/// One batch on its way to sled: sealed records (key, value) plus the one being filled.
#[derive(Default)]
struct Records {
    sealed: Vec<([u8; 8], Vec<u8>)>,
    sealed_bytes: usize,
    packer: Packer,
    events: usize,
}

impl Records {
    /// Records a closed record whose last event has sequence `last_seq`.
    fn sealed(&mut self, last_seq: u64, record: Vec<u8>) {
        self.sealed_bytes += record.len();
        self.sealed.push((encode_seq(last_seq), record));
    }

    /// Closes the open record; `last_seq` is the sequence of its last event.
    fn seal(&mut self, last_seq: u64) {
        if let Some(record) = self.packer.close() {
            self.sealed(last_seq, record);
        }
    }

    /// Encoded bytes of the batch so far.
    fn bytes(&self) -> usize {
        self.sealed_bytes + self.packer.open_len()
    }
}

struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    data_file: Option<File>,
    settings: JournalSettings,
    shared: Arc<Shared>,
    next_seq: u64,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Message>) {
        if let Err(err) =
            crate::priority::set_current_thread_nice(crate::priority::JOURNAL_WRITER_NICE)
        {
            tracing::info!(
                %err,
                "Could not raise the journal writer's priority (it needs CAP_SYS_NICE); \
                 durable holds/s on busy cores may be lower."
            );
        }
        let mut barriers = Vec::new();
        let mut records = Records::default();
        // With no flush to share there is nothing to wait for: lingering only cost
        // `--durability none` holds/s (-3%, 3 of 4 interleaved runs).
        let batch_events_min = match self.settings.durability {
            Durability::None => 1,
            Durability::Fsync | Durability::Flush => self.settings.batch_events_min,
        };
        while let Ok(first) = receiver.recv() {
            let linger_until = Instant::now() + self.settings.linger;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Event(event) => self.encode_into(&mut records, &event),
                    Message::Barrier(done) => barriers.push(done),
                }
                if records.events >= self.settings.batch_events_max
                    || records.bytes() >= self.settings.batch_bytes_max
                {
                    break;
                }
                next = match receiver.try_recv() {
                    Ok(message) => Some(message),
                    // A flush costs the same CPU for 1 event as for 50 (on a VM, two exits to
                    // the host), so a small batch waits a moment for more. Only a small one:
                    // holding back a batch that is already large leaves the cores idle while
                    // every client waits on the disk. Measured on the 2-core CI machine, 40 µs
                    // for 8 events: 1.6x fewer flushes, server CPU per hold -7%, holds/s +5%.
                    Err(_) if (1..batch_events_min).contains(&records.events) => {
                        receiver.recv_deadline(linger_until).ok()
                    }
                    Err(_) => None,
                };
            }
            let events = records.events;
            let outcome = self.commit(std::mem::take(&mut records));
            self.shared.backlog.fetch_sub(events, Ordering::Relaxed);
            for done in barriers.drain(..) {
                let _receiver_gone = done.send(outcome.clone());
            }
        }
        if let Err(err) = self.db.flush() {
            tracing::error!(%err, "Final journal flush failed.");
        }
    }

    fn encode_into(&mut self, records: &mut Records, event: &Event) {
        match records.packer.push(event) {
            Ok(closed) => {
                if let Some(record) = closed {
                    records.sealed(self.next_seq - 1, record);
                }
                records.events += 1;
                self.next_seq += 1;
            }
            Err(err) => {
                // Every Event is plain data; failing to encode one is a bug, not an I/O error.
                tracing::error!(%err, ?event, "Journal event could not be encoded.");
                self.shared.failed.store(true, Ordering::Relaxed);
            }
        }
    }

    fn commit(&mut self, mut records: Records) -> Result<(), JournalError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(JournalError::Failed("an earlier write failed".into()));
        }
        if records.events == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let last_seq = self.next_seq - 1;
        records.seal(last_seq);
        let (events, bytes) = (records.events, records.bytes());
        let written = records
            .sealed
            .into_iter()
            .try_for_each(|(key, value)| self.tree.insert(key, value).map(drop))
            .map_err(|e| e.to_string());
        let durable = written.and_then(|()| self.make_durable());
        if let Err(err) = durable {
            tracing::error!(%err, "Journal write failed; refusing further changes.");
            self.shared.failed.store(true, Ordering::Relaxed);
            return Err(JournalError::Failed(err));
        }
        self.shared.last_seq.store(last_seq, Ordering::Release);
        m::journal_batch(events, bytes, started.elapsed());
        Ok(())
    }

    fn make_durable(&self) -> Result<(), String> {
        match self.settings.durability {
            Durability::None => Ok(()),
            Durability::Flush => self.db.flush().map(drop).map_err(|e| e.to_string()),
            Durability::Fsync => {
                self.db.flush().map_err(|e| e.to_string())?;
                match &self.data_file {
                    Some(file) => file.sync_data().map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{HoldId, HoldStatus};

    fn journal(
        durability: Durability,
        batch_events_min: usize,
        linger: Duration,
        covered_seq: u64,
    ) -> (Journal, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let tree = db.open_tree("journal").expect("tree");
        let settings = JournalSettings {
            durability,
            batch_events_max: 100_000,
            batch_bytes_max: 1 << 20,
            batch_events_min,
            linger,
            backlog_max: 100_000,
            data_file: PathBuf::new(),
        };
        let (journal, _writer) =
            Journal::start(db, tree.clone(), settings, covered_seq).expect("starts");
        (journal, tree)
    }

    fn expiries(count: u64) -> Vec<Event> {
        (0..count)
            .map(|at_ms| Event::HoldStatusChanged {
                hold_id: HoldId::new(),
                status: HoldStatus::Expired,
                at_ms,
            })
            .collect()
    }

    /// Events per record in the tree, in key order.
    fn record_sizes(tree: &sled::Tree) -> Vec<usize> {
        tree.iter()
            .map(|entry| {
                let (key, value) = entry.expect("readable");
                decode_record(&key, &value).expect("decodes").len()
            })
            .collect()
    }

    /// Events appended apart, while the writer lingers, go under one flush: one record.
    /// A batch that reached its minimum is flushed at once, not after the (long) linger.
    #[tokio::test]
    async fn a_small_batch_waits_for_more_and_a_full_one_does_not() {
        let (journal, tree) = journal(Durability::Flush, 3, Duration::from_secs(30), 0);
        let mut events = expiries(3).into_iter();
        journal.append(events.next().expect("three events"));
        // Long enough for the writer to have taken the first event and be waiting.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for event in events {
            journal.append(event);
        }
        tokio::time::timeout(Duration::from_secs(10), journal.barrier())
            .await
            .expect("a batch at its minimum must not wait out the linger")
            .expect("durable");
        assert_eq!(record_sizes(&tree), vec![3], "three events, one batch");
    }

    /// A lone event is still written, once its linger has passed.
    #[tokio::test]
    async fn a_lone_event_is_flushed_after_the_linger() {
        let linger = Duration::from_millis(50);
        let (journal, tree) = journal(Durability::Flush, 8, linger, 0);
        let started = Instant::now();
        journal.append(expiries(1).remove(0));
        journal.barrier().await.expect("durable");
        assert!(started.elapsed() >= linger, "flushed before its linger");
        assert_eq!(record_sizes(&tree), vec![1]);
    }

    /// Without a flush there is nothing to share, so a lone event never waits.
    #[tokio::test]
    async fn without_a_flush_nothing_lingers() {
        let (journal, tree) = journal(Durability::None, 8, Duration::from_secs(30), 0);
        journal.append(expiries(1).remove(0));
        tokio::time::timeout(Duration::from_secs(10), journal.barrier())
            .await
            .expect("durability none must not wait out the linger")
            .expect("written");
        assert_eq!(record_sizes(&tree), vec![1]);
    }

    /// A burst bigger than one record is stored as several small records, under one
    /// flush, and decodes back to the same events with consecutive sequence numbers.
    #[tokio::test]
    async fn batches_are_split_into_small_records_that_decode_in_order() {
        let (journal, tree) = journal(Durability::Flush, 1, Duration::ZERO, 41);
        let events = expiries(3_000);
        for event in &events {
            journal.append(event.clone());
        }
        journal.barrier().await.expect("durable");
        assert!(tree.len() > 1, "3,000 events need several records");
        let mut decoded = Vec::new();
        for entry in tree.iter() {
            let (key, value) = entry.expect("readable");
            assert!(
                value.len() <= RECORD_BYTES_MAX,
                "record of {} bytes",
                value.len()
            );
            decoded.extend(decode_record(&key, &value).expect("decodes"));
        }
        let seqs: Vec<u64> = decoded.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (42..42 + 3_000).collect::<Vec<u64>>());
        let replayed: Vec<Event> = decoded.into_iter().map(|(_, event)| event).collect();
        assert_eq!(replayed, events);
        assert_eq!(journal.last_seq(), 42 + 2_999);
    }
}
