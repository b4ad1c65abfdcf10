//! The journal writer: one thread that takes events in batches, appends each batch to the
//! current segment file with one write, makes it durable with one `fdatasync`, and only
//! then answers the barriers queued behind it (group commit). Appending never blocks an
//! actor; a request learns its change is durable by awaiting [`Journal::barrier`], which
//! resolves once everything appended before it is on disk. The file format is in
//! [`super::segment`].
//!
//! A failed write or sync (a full disk, an I/O error) does not lose the batch: the writer
//! keeps it, answers every barrier with an error (503 to the client) and says so through
//! [`Journal::accepting`] and readiness, and rewrites the whole batch at the same offset
//! every [`RETRY_INTERVAL`] until a write and its sync succeed; then it is healthy again.
//! The batch is written again, not only synced: after a failed `fsync` Linux may have
//! dropped the dirty pages, so a second `fsync` alone can succeed without the data.

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::oneshot;

pub use crate::domain::JournalError;

use super::events::Event;
use super::segment;
use crate::broadcast::hub::{last_cursor_of, Hub, StockEvent};
use crate::metrics as m;

/// Pause between attempts to write a batch that failed.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// How hard the writer works to make a batch survive a crash before acknowledging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Written, then `fdatasync`: survives kill -9 and power loss.
    Fsync,
    /// Written to the OS page cache, never synced: survives kill -9, not power loss.
    Flush,
    /// As `flush`, and a small batch never waits for company (no linger): the fastest,
    /// for tests and benchmarks. Survives kill -9, not power loss.
    None,
}

/// The flag's and the variable's spelling (clap parses through it).
impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fsync" => Ok(Self::Fsync),
            "flush" => Ok(Self::Flush),
            "none" => Ok(Self::None),
            other => Err(format!("`{other}` is not one of fsync, flush, none")),
        }
    }
}

/// Limits of one batch and of the backlog in front of the writer, and where it writes.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    pub durability: Durability,
    /// Most events written under one sync.
    pub batch_events_max: usize,
    /// Most encoded bytes written under one sync.
    pub batch_bytes_max: usize,
    /// A batch with fewer events than this waits up to `linger` for more before it is
    /// written (1: never waits). Ignored with `Durability::None`.
    pub batch_events_min: usize,
    /// Longest wait for a small batch to fill, from the writer's first message.
    pub linger: Duration,
    /// Events waiting for the writer past which new work is refused with 503.
    pub backlog_max: usize,
    /// The journal's directory of segment files.
    pub dir: PathBuf,
    /// Size a segment is created with; the writer moves to a new one when a batch would
    /// not fit in what is left.
    pub segment_bytes: u64,
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
    /// Events appended but not yet durable.
    backlog: AtomicUsize,
    backlog_max: usize,
    /// Sequence number of the last durable event.
    last_seq: AtomicU64,
    /// Set while the last write failed; `failure` says why.
    failing: AtomicBool,
    failure: Mutex<Option<String>>,
    dir: PathBuf,
    /// Tests: every write fails while set.
    #[cfg(test)]
    fail_writes: AtomicBool,
}

impl Journal {
    /// Starts the writer thread; the first event appended gets sequence `next_seq`. The
    /// first segment is created before this returns. Returns the handle and the thread,
    /// which ends once every handle is dropped and what was appended is written.
    pub fn start(
        settings: JournalSettings,
        next_seq: u64,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        Self::start_publishing(settings, next_seq, None)
    }

    /// As [`Journal::start`]; the availability marks of every durable batch also go to
    /// `hub`, once the batch is durable (never before: a reader must not see a change a
    /// crash can take back).
    pub fn start_publishing(
        settings: JournalSettings,
        next_seq: u64,
        hub: Option<Arc<Hub>>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let shared = Arc::new(Shared {
            backlog: AtomicUsize::new(0),
            backlog_max: settings.backlog_max,
            last_seq: AtomicU64::new(next_seq.saturating_sub(1)),
            failing: AtomicBool::new(false),
            failure: Mutex::new(None),
            dir: settings.dir.clone(),
            #[cfg(test)]
            fail_writes: AtomicBool::new(false),
        });
        let mut writer = Writer {
            segment: None,
            retrying: false,
            last_attempt: Instant::now(),
            spare: None,
            batch: Batch::default(),
            next_seq,
            settings,
            shared: Arc::clone(&shared),
            hub,
        };
        writer.roll(next_seq)?;
        m::journal_failing(false);
        let (sender, receiver) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(receiver))?;
        Ok((Self { sender, shared }, thread))
    }

    /// Queues an event. Never blocks: the backlog is bounded upstream, because new work
    /// is refused while [`Journal::accepting`] says no.
    pub fn append(&self, event: Event) {
        self.shared.backlog.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(Message::Event(Box::new(event))).is_err() {
            self.shared.fail("the journal writer has stopped".into());
        }
    }

    /// Resolves once every event appended before this call is durable. The barrier is
    /// queued by the call itself, so the future may be awaited later or elsewhere.
    pub fn barrier(&self) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let queued = self
            .sender
            .send(Message::Barrier(done))
            .map_err(|_| JournalError::Stopped);
        async move {
            queued?;
            wait.await.map_err(|_| JournalError::Stopped)?
        }
    }

    /// Whether new work may start: the writer is healthy and not too far behind.
    pub fn accepting(&self) -> Result<(), JournalError> {
        if self.shared.failing.load(Ordering::Acquire) {
            return Err(self.shared.error());
        }
        let backlog = self.shared.backlog.load(Ordering::Relaxed);
        if backlog > self.shared.backlog_max {
            return Err(JournalError::Behind {
                backlog,
                limit: self.shared.backlog_max,
            });
        }
        Ok(())
    }

    /// Why the journal cannot write right now, if it cannot.
    pub fn failure(&self) -> Option<String> {
        if !self.shared.failing.load(Ordering::Acquire) {
            return None;
        }
        Some(self.shared.error().to_string())
    }

    /// Sequence number of the last durable event.
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Shared {
    fn fail(&self, reason: String) {
        *self.failure.lock() = Some(reason);
        self.failing.store(true, Ordering::Release);
        m::journal_failing(true);
    }

    /// What a barrier answers while the journal fails.
    fn error(&self) -> JournalError {
        JournalError::Failed(self.failure.lock().clone().unwrap_or_default())
    }

    fn recovered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            *self.failure.lock() = None;
            m::journal_failing(false);
            tracing::info!("The journal writes again; the server is ready.");
        }
    }
}

/// Events encoded but not yet durable. A batch is written as exactly one frame, framed
/// anew at every attempt: a crash can then tear only that frame, and nothing intact can
/// follow a torn one (recovery calls that corruption). A batch of several frames, torn so
/// that a later frame reached the disk and an earlier one did not, would look corrupt.
#[derive(Default)]
struct Batch {
    /// The events, postcard, back to back.
    payload: Vec<u8>,
    /// The frame last written, kept to reuse its allocation.
    framed: Vec<u8>,
    /// Sequence number of the batch's first event.
    first_seq: u64,
    events: usize,
    /// The availability events of the batch's events, published once it is durable.
    marks: Vec<StockEvent>,
}

impl Batch {
    fn push(&mut self, seq: u64, event: &Event) -> Result<(), postcard::Error> {
        if self.events == 0 {
            self.first_seq = seq;
        }
        let start = self.payload.len();
        if let Err(err) = postcard::to_io(event, &mut self.payload) {
            self.payload.truncate(start);
            return Err(err);
        }
        self.events += 1;
        Ok(())
    }

    /// The batch as one frame, in `framed`.
    fn frame(&mut self) {
        self.framed.clear();
        let count = u32::try_from(self.events).unwrap_or(u32::MAX);
        segment::push_frame(&mut self.framed, self.first_seq, count, &self.payload);
    }

    fn bytes(&self) -> usize {
        self.payload.len()
    }

    fn clear(&mut self) {
        self.payload.clear();
        self.events = 0;
    }
}

struct ActiveSegment {
    file: File,
    offset: u64,
}

struct Writer {
    segment: Option<ActiveSegment>,
    /// The last attempt to write the batch failed.
    retrying: bool,
    last_attempt: Instant,
    /// The next segment, being zero-filled off the writer's thread.
    spare: Option<JoinHandle<std::io::Result<File>>>,
    batch: Batch,
    /// Sequence number the next appended event gets.
    next_seq: u64,
    settings: JournalSettings,
    shared: Arc<Shared>,
    /// Where durable availability marks go, if anywhere.
    hub: Option<Arc<Hub>>,
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
        // With no sync to share there is nothing to wait for: lingering only cost
        // `--durability none` holds/s (-3%, 3 of 4 interleaved runs).
        let batch_events_min = match self.settings.durability {
            Durability::None => 1,
            Durability::Fsync | Durability::Flush => self.settings.batch_events_min,
        };
        loop {
            // While a batch waits to be written again, wake up to retry it.
            let first = if self.batch.events > 0 {
                match receiver.recv_timeout(RETRY_INTERVAL) {
                    Ok(message) => Some(message),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match receiver.recv() {
                    Ok(message) => Some(message),
                    Err(_) => break,
                }
            };
            let linger_until = Instant::now() + self.settings.linger;
            let mut next = first;
            while let Some(message) = next.take() {
                match message {
                    Message::Event(event) => self.encode(&event),
                    Message::Barrier(done) => barriers.push(done),
                }
                if self.batch.events >= self.settings.batch_events_max
                    || self.batch.bytes() >= self.settings.batch_bytes_max
                {
                    break;
                }
                next = match receiver.try_recv() {
                    Ok(message) => Some(message),
                    // A sync costs the same CPU for 1 event as for 50 (on a VM, two exits to
                    // the host), so a small batch waits a moment for more. Only a small one:
                    // holding back a batch that is already large leaves the cores idle while
                    // every client waits on the disk. Measured on the 2-core CI machine, 40 µs
                    // for 8 events: 1.6x fewer flushes, server CPU per hold -7%, holds/s +5%.
                    Err(_) if (1..batch_events_min).contains(&self.batch.events) => {
                        receiver.recv_deadline(linger_until).ok()
                    }
                    Err(_) => None,
                };
            }
            // While failing, a change arriving (a confirm, an expiry) joins the batch but
            // does not bring the next attempt forward: a full disk is retried at a pace.
            let outcome = if self.retrying && self.last_attempt.elapsed() < RETRY_INTERVAL {
                Err(self.shared.error())
            } else {
                self.commit()
            };
            for done in barriers.drain(..) {
                let _receiver_gone = done.send(outcome.clone());
            }
        }
        if self.batch.events > 0 && self.commit().is_err() {
            tracing::warn!(
                events = self.batch.events,
                "Stopping with changes the journal could not write; none was acknowledged."
            );
        }
    }

    fn encode(&mut self, event: &Event) {
        match self.batch.push(self.next_seq, event) {
            Ok(()) => {
                if self.hub.is_some() {
                    event.stock_events(self.next_seq, &mut self.batch.marks);
                }
                self.next_seq += 1;
            }
            Err(err) => {
                // Every Event is plain data; failing to encode one is a bug, not an I/O
                // error. The change stays unacknowledged (its barrier fails).
                tracing::error!(%err, ?event, "Journal event could not be encoded.");
                self.shared.backlog.fetch_sub(1, Ordering::Relaxed);
                self.shared
                    .fail(format!("an event could not be encoded: {err}"));
            }
        }
    }

    /// Writes the batch and makes it durable; on failure keeps it for the next attempt.
    fn commit(&mut self) -> Result<(), JournalError> {
        if self.batch.events == 0 {
            return match self.shared.failing.load(Ordering::Acquire) {
                // Only an encoding failure leaves nothing to retry: it stays reported.
                true => Err(self.shared.error()),
                false => Ok(()),
            };
        }
        let started = Instant::now();
        self.last_attempt = started;
        self.batch.frame();
        let written = self.write_batch();
        self.retrying = written.is_err();
        if let Err(err) = written {
            m::journal_write_error();
            let reason = err.to_string();
            if !self.shared.failing.load(Ordering::Acquire) {
                tracing::error!(%err, "Journal write failed; refusing changes and retrying.");
            }
            self.shared.fail(reason.clone());
            return Err(JournalError::Failed(reason));
        }
        let (events, bytes) = (self.batch.events, self.batch.framed.len());
        if let Some(hub) = &self.hub {
            let published = hub.publish(
                self.batch.marks.drain(..),
                last_cursor_of(self.next_seq - 1),
            );
            m::stock_events_published(published);
        }
        self.batch.clear();
        self.shared
            .last_seq
            .store(self.next_seq - 1, Ordering::Release);
        self.shared.backlog.fetch_sub(events, Ordering::Relaxed);
        self.shared.recovered();
        m::journal_batch(events, bytes, started.elapsed());
        Ok(())
    }

    fn write_batch(&mut self) -> std::io::Result<()> {
        let len = self.batch.framed.len() as u64;
        // A batch that failed is written again where it failed, even past the segment's
        // end (the file grows): a failed write may have left part of it there, and only
        // the batch itself, a longer run of the same bytes, is sure to cover that.
        let full = self.segment.as_ref().is_none_or(|s| {
            !self.retrying && s.offset > 0 && s.offset + len > self.settings.segment_bytes
        });
        if full {
            self.roll(self.batch.first_seq)?;
        }
        let Some(segment) = self.segment.as_mut() else {
            return Err(std::io::Error::other("no journal segment is open"));
        };
        // Tests: half the batch reaches the file, then the disk is full.
        #[cfg(test)]
        if self.shared.fail_writes.load(Ordering::Relaxed) {
            let half = &self.batch.framed[..self.batch.framed.len() / 2];
            segment.file.write_all_at(half, segment.offset)?;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        segment
            .file
            .write_all_at(&self.batch.framed, segment.offset)?;
        if self.settings.durability == Durability::Fsync {
            segment.file.sync_data()?;
        }
        segment.offset += len;
        Ok(())
    }

    /// Moves to a new segment whose first event is `first_seq`: the spare made ready in
    /// the background (or one made now), renamed into place, its directory synced.
    fn roll(&mut self, first_seq: u64) -> std::io::Result<()> {
        let dir = &self.settings.dir;
        let spare_path = dir.join(segment::SPARE_NAME);
        let spare = self
            .spare
            .take()
            .map(|preparing| {
                preparing
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("spare segment thread died")))
            })
            .and_then(Result::ok);
        let file = match spare {
            Some(file) => file,
            None => segment::create_zeroed(&spare_path, self.settings.segment_bytes)?,
        };
        std::fs::rename(&spare_path, dir.join(segment::segment_name(first_seq)))?;
        segment::sync_dir(dir)?;
        self.segment = Some(ActiveSegment { file, offset: 0 });
        let bytes = self.settings.segment_bytes;
        self.spare = std::thread::Builder::new()
            .name("journal-spare".into())
            .spawn(move || segment::create_zeroed(&spare_path, bytes))
            .ok();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{HoldId, HoldStatus};
    use crate::store::tail::Tail;

    /// Settings for a journal in `dir` with small segments.
    pub(crate) fn settings(dir: &Path, durability: Durability) -> JournalSettings {
        JournalSettings {
            durability,
            batch_events_max: 100_000,
            batch_bytes_max: 1 << 20,
            batch_events_min: 1,
            linger: Duration::ZERO,
            backlog_max: 100_000,
            dir: dir.to_path_buf(),
            segment_bytes: 64 * 1024,
        }
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

    fn read_all(journal: &Journal, from: u64) -> Vec<(u64, Event)> {
        let mut tail = Tail::new(journal.dir().to_path_buf(), from);
        let mut events = Vec::new();
        tail.read(journal.last_seq(), usize::MAX, &mut |seq, event| {
            events.push((seq, event))
        })
        .expect("reads");
        events
    }

    /// Events appended apart, while the writer lingers, go under one sync: one record.
    /// A batch that reached its minimum is written at once, not after the (long) linger.
    #[tokio::test]
    async fn a_small_batch_waits_for_more_and_a_full_one_does_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = settings(dir.path(), Durability::Flush);
        settings.batch_events_min = 3;
        settings.linger = Duration::from_secs(30);
        let (journal, _writer) = Journal::start(settings, 1).expect("starts");
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
        assert_eq!(journal.last_seq(), 3);
        assert_eq!(m_batches(dir.path()), vec![3], "three events, one record");
    }

    /// Events per record in the journal, in order.
    fn m_batches(dir: &Path) -> Vec<u32> {
        let mut counts = Vec::new();
        for (_, path) in segment::list(dir).expect("lists") {
            let bytes = std::fs::read(path).expect("reads");
            counts.extend(
                segment::records(&bytes)
                    .into_iter()
                    .map(|(_, _, count)| count),
            );
        }
        counts
    }

    /// A lone event is still written, once its linger has passed.
    #[tokio::test]
    async fn a_lone_event_is_written_after_the_linger() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = settings(dir.path(), Durability::Flush);
        settings.batch_events_min = 8;
        settings.linger = Duration::from_millis(50);
        let (journal, _writer) = Journal::start(settings, 1).expect("starts");
        let started = Instant::now();
        journal.append(expiries(1).remove(0));
        journal.barrier().await.expect("durable");
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "before its linger"
        );
        assert_eq!(m_batches(dir.path()), vec![1]);
    }

    /// A burst bigger than a segment rolls to new segments, each named after its first
    /// event, and reads back as the same events with consecutive sequence numbers.
    #[tokio::test]
    async fn bursts_roll_segments_and_read_back_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (journal, _writer) =
            Journal::start(settings(dir.path(), Durability::Fsync), 42).expect("starts");
        let events = expiries(6_000);
        for chunk in events.chunks(500) {
            for event in chunk {
                journal.append(event.clone());
            }
            journal.barrier().await.expect("durable");
        }
        let segments = segment::list(dir.path()).expect("lists");
        assert!(segments.len() > 2, "{} segments", segments.len());
        assert_eq!(segments[0].0, 42);
        let decoded = read_all(&journal, 42);
        let seqs: Vec<u64> = decoded.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (42..42 + 6_000).collect::<Vec<u64>>());
        let replayed: Vec<Event> = decoded.into_iter().map(|(_, event)| event).collect();
        assert_eq!(replayed, events);
        assert_eq!(journal.last_seq(), 42 + 5_999);
        for (first_seq, path) in segments {
            let bytes = std::fs::read(path).expect("reads");
            match segment::read_frame(&bytes, 0) {
                segment::Frame::Record { first_seq: at, .. } => assert_eq!(at, first_seq),
                other => panic!("segment {first_seq} starts with {other:?}"),
            }
        }
    }

    /// A write that fails (as on a full disk; `tests/storage_faults.rs` fills a real one)
    /// refuses work and fails its barrier, keeps the events, and once the disk takes writes
    /// again writes them on its own, in order, and accepts work again.
    #[tokio::test]
    async fn a_failed_write_is_retried_until_it_succeeds_and_nothing_is_lost() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = settings(dir.path(), Durability::Fsync);
        settings.segment_bytes = 4096;
        let (journal, _writer) = Journal::start(settings, 1).expect("starts");
        let events = expiries(300);
        let mut chunks = events.chunks(50);
        let mut appended = 0;
        let mut append = |chunk: &[Event]| {
            for event in chunk {
                journal.append(event.clone());
            }
            appended += chunk.len();
        };
        // Two batches fit; the third fails half-written, and grows while it waits to be
        // written again, past what is left of the segment.
        for chunk in chunks.by_ref().take(2) {
            append(chunk);
            journal.barrier().await.expect("written");
        }
        journal.shared.fail_writes.store(true, Ordering::Relaxed);
        for chunk in chunks {
            append(chunk);
            let failed = journal.barrier().await;
            assert!(matches!(failed, Err(JournalError::Failed(_))), "{failed:?}");
        }
        assert!(journal.accepting().is_err(), "refuses work while failing");
        assert_eq!(journal.last_seq(), 100);
        assert_eq!(
            journal.shared.backlog.load(Ordering::Relaxed),
            200,
            "the events wait for the disk"
        );

        journal.shared.fail_writes.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while journal.failure().is_some() {
            assert!(Instant::now() < deadline, "never recovered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        journal.barrier().await.expect("healthy again");
        assert!(journal.accepting().is_ok());
        let written: Vec<Event> = read_all(&journal, 1).into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            written,
            events[..appended].to_vec(),
            "every event, in order"
        );
        assert_eq!(journal.last_seq(), appended as u64);
        // The retried batch went out as one record (a crash can tear only that one).
        let counts = m_batches(dir.path());
        assert_eq!(counts.last(), Some(&200), "{counts:?}");
        assert_eq!(counts.iter().sum::<u32>(), 300);
        // What the failed writes left in the file was covered: recovery reads it clean.
        let snapshots = sled::Config::new().temporary(true).open().expect("sled");
        let tree = snapshots.open_tree("snapshots").expect("tree");
        let image = crate::store::recovery::recover(dir.path(), &tree).expect("recovers");
        assert_eq!(image.seq, appended as u64);
    }
}
