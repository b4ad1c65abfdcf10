//! Opening storage at start: check (or stamp, or upgrade) the data dir, open the snapshot
//! store, recover the state image from the last snapshot and the journal after it, then
//! start the journal writer and the compactor from where recovery ended.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::StartupError;
use crate::broadcast::Hub;
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::data_dir::{self, Found, JOURNAL_DIR, SNAPSHOT_DB_DIR, SNAPSHOT_TREE};
use crate::store::image::Image;
use crate::store::recovery;
use crate::store::snapshot::{Compactor, SnapshotSettings};
use crate::store::{Journal, JournalSettings};

/// Storage, open and running, with the state it held.
pub struct Storage {
    pub journal: Journal,
    /// Ends on its own once the last `Journal` handle is dropped.
    pub journal_thread: JoinHandle<()>,
    pub compactor: Compactor,
    pub snapshot_db: sled::Db,
    /// Where the journal publishes the availability events of durable changes.
    pub hub: Arc<Hub>,
}

/// Opens storage; also returns what the snapshot and the journal after it say the state
/// was.
pub fn open(settings: &Settings, clock: &Clock) -> Result<(Storage, Image), StartupError> {
    let found = data_dir::check(&settings.data_dir)?;
    let snapshot_db = open_db(
        &settings.data_dir,
        SNAPSHOT_DB_DIR,
        settings.snapshot_cache_mb,
    )?;
    let snapshot_tree = snapshot_db.open_tree(SNAPSHOT_TREE)?;
    if let Found::SledJournal(from) = found {
        data_dir::upgrade(&settings.data_dir, from, &snapshot_db, &snapshot_tree)?;
    }
    let journal_dir = settings.data_dir.join(JOURNAL_DIR);
    let hub = Hub::new(settings.stock_events_kept_max);
    let image = recovery::recover_publishing(&journal_dir, &snapshot_tree, Some(&hub))?;
    let journal_settings = JournalSettings {
        durability: settings.durability,
        batch_events_max: settings.journal_batch_events_max,
        batch_bytes_max: settings.journal_batch_bytes_max,
        batch_events_min: settings.journal_batch_events_min,
        linger: Duration::from_micros(settings.journal_linger_us),
        backlog_max: settings.journal_backlog_max,
        dir: journal_dir,
        segment_bytes: settings.journal_segment_bytes,
    };
    let (journal, journal_thread) =
        Journal::start_publishing(journal_settings, image.seq + 1, Some(Arc::clone(&hub)))?;
    let snapshot_settings = SnapshotSettings {
        // Synced in every durability mode: the journal under a snapshot is deleted once
        // it is written, and a snapshot lost to a power cut would then leave a gap no
        // start gets past. The sync is off the acknowledgement path.
        dir: settings.data_dir.join(SNAPSHOT_DB_DIR),
        every_events: settings.snapshot_every_events,
        every_s: settings.snapshot_every_s,
        hold_retention_ms: settings.hold_retention_s.saturating_mul(1_000),
        clock: clock.clone(),
        answer_ttl_ms: settings.idempotency_ttl_s.saturating_mul(1_000),
    };
    let compactor = Compactor::start(
        snapshot_db.clone(),
        journal.clone(),
        snapshot_tree,
        image.clone(),
        snapshot_settings,
    )?;
    let storage = Storage {
        journal,
        journal_thread,
        compactor,
        snapshot_db,
        hub,
    };
    Ok((storage, image))
}

fn open_db(data_dir: &Path, name: &str, cache_mb: u64) -> Result<sled::Db, StartupError> {
    let refused = |reason: String| StartupError::DataDir {
        path: data_dir.to_path_buf(),
        reason,
    };
    sled::Config::new()
        .path(data_dir.join(name))
        .cache_capacity(cache_mb * 1024 * 1024)
        .open()
        .map_err(|err| match err {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                refused(format!("is in use by another holdfast process ({io})"))
            }
            other => refused(other.to_string()),
        })
}
