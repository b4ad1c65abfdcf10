//! The compactor thread: tails the journal into an [`Image`], writes a snapshot every
//! `every_events` events or `every_s` seconds, then deletes the journal it covers. It runs
//! at idle priority, off the acknowledgement path.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::format::READ_PER_PASS_MAX;
use super::write::{DirSync, SnapshotError, Snapshots};
use crate::clock::Clock;
use crate::metrics as m;
use crate::store::image::Image;
use crate::store::journal::Journal;
use crate::store::segment;
use crate::store::tail::Tail;

#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// The snapshot store's directory, whose files are synced before a manifest names a
    /// generation and before the journal under it is deleted.
    pub dir: PathBuf,
    /// Write a snapshot once this many events arrived since the last one.
    pub every_events: u64,
    /// ... or once this much time passed with at least one new event.
    pub every_s: u64,
    pub hold_retention_ms: u64,
    /// What "expired" is measured against.
    pub clock: Clock,
    pub answer_ttl_ms: u64,
}

/// Deletes the journal segments a durable snapshot covering `seq` makes moot: every
/// segment whose successor starts at or before `seq + 1`. The last segment, the one being
/// written, is never deleted. Returns the segments deleted and the first sequence number
/// still in the journal.
pub fn trim(journal_dir: &std::path::Path, seq: u64) -> Result<(usize, u64), SnapshotError> {
    let segments = segment::list(journal_dir).map_err(SnapshotError::Trim)?;
    let mut deleted = 0;
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first > seq + 1 {
            break;
        }
        std::fs::remove_file(path).map_err(SnapshotError::Trim)?;
        deleted += 1;
    }
    if deleted > 0 {
        segment::sync_dir(journal_dir).map_err(SnapshotError::Trim)?;
    }
    let oldest = segments.get(deleted).map_or(seq + 1, |(first, _)| *first);
    Ok((deleted, oldest))
}

/// The running compactor; `stop` writes a last snapshot and ends the thread.
pub struct Compactor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Follows `journal` from the event after `image`'s sequence.
    pub fn start(
        db: sled::Db,
        journal: Journal,
        snapshots: sled::Tree,
        image: Image,
        settings: SnapshotSettings,
    ) -> std::io::Result<Self> {
        let snapshots = Snapshots::open(snapshots).map_err(std::io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("snapshot-compactor".into())
            .spawn(move || run(&db, &journal, snapshots, image, &settings, &stopping))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    db: &sled::Db,
    journal: &Journal,
    mut snapshots: Snapshots,
    mut image: Image,
    settings: &SnapshotSettings,
    stop: &AtomicBool,
) {
    let lowered = crate::priority::set_current_thread_idle()
        .or_else(|_| crate::priority::set_current_thread_nice(crate::priority::COMPACTOR_NICE));
    if let Err(err) = lowered {
        tracing::debug!(%err, "Could not lower the compactor's priority; it runs at normal priority.");
    }
    let mut tail = Tail::new(journal.dir().to_path_buf(), image.seq + 1);
    // Events recovery replayed from the journal count towards the first snapshot.
    let mut since_snapshot = image.seq.saturating_sub(snapshots.manifest.seq);
    let mut last_snapshot = Instant::now();
    let mut store = DirSync::new(db.clone(), settings.dir.clone());
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let read = tail.read(journal.last_seq(), READ_PER_PASS_MAX, &mut |seq, event| {
            image.apply(seq, event)
        });
        match read {
            Ok(applied) => since_snapshot += u64::try_from(applied).unwrap_or(u64::MAX),
            Err(err) => {
                tracing::error!(%err, "Compactor cannot read the journal; snapshots stop.");
                return;
            }
        }
        let due = since_snapshot >= settings.every_events
            || (since_snapshot > 0
                && last_snapshot.elapsed() >= Duration::from_secs(settings.every_s));
        if due || (stopping && image.seq > snapshots.manifest.seq) {
            let started = Instant::now();
            image.forget_expired(
                settings.clock.now_ms(),
                settings.hold_retention_ms,
                settings.answer_ttl_ms,
            );
            let written = snapshots
                .write(&mut image, &mut || store.sync())
                .and_then(|()| trim(journal.dir(), image.seq));
            image.pack();
            match written {
                Ok((trimmed, oldest)) => {
                    let kept = journal.last_seq().saturating_sub(oldest.saturating_sub(1));
                    m::snapshot(
                        started.elapsed(),
                        usize::try_from(kept).unwrap_or(usize::MAX),
                    );
                    tracing::debug!(
                        seq = image.seq,
                        trimmed,
                        "Snapshot written, journal trimmed."
                    );
                }
                Err(err) => {
                    tracing::error!(%err, "Snapshot failed; the journal keeps growing until one succeeds.")
                }
            }
            since_snapshot = 0;
            last_snapshot = Instant::now();
        }
        if stopping {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
