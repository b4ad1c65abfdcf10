//! Rebuilding state at start: load the latest snapshot, then apply the journal after it.
//! What replay cannot settle by itself (a status change whose line changes were not all
//! written before a crash) is settled afterwards through the live path, so the
//! fixes are journaled too (see `startup::restore`).
//!
//! The journal's tail may be torn: the last write before a crash (never acknowledged,
//! since a write is acknowledged only after its sync) can be cut anywhere. A bad record
//! with no intact record after it, in its segment or any later one, is such a tail, and
//! is cut off. A bad record with an intact one after it cannot come from a crash: that is
//! corruption, and recovery refuses to start, naming the segment and offset, and changes
//! nothing.

use std::path::Path;

use super::image::Image;
use super::packing::decode_packed;
use super::segment::{self, Frame};
use super::snapshot;
use super::Event;
use crate::broadcast::hub::{last_cursor_of, Hub, StockEvent};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("journal record {seq} cannot be decoded ({reason}); the data dir is corrupt or from another version")]
    Corrupt { seq: u64, reason: String },
    #[error(
        "journal segment {segment} is corrupt at offset {offset}: {reason}; nothing was changed"
    )]
    JournalCorrupt {
        segment: String,
        offset: usize,
        reason: String,
    },
    #[error("the snapshot store is corrupt ({0}); the journal segments were not touched")]
    SnapshotCorrupt(String),
    #[error("reading the snapshots: {0}")]
    Storage(#[from] sled::Error),
    #[error("reading the journal: {0}")]
    Io(#[from] std::io::Error),
}

/// The image as of the last durable event: the snapshot, then the journal after it.
pub fn recover(journal_dir: &Path, snapshots: &sled::Tree) -> Result<Image, RecoveryError> {
    recover_publishing(journal_dir, snapshots, None)
}

/// As [`recover`]; `hub` also gets the availability events of the journal after the
/// snapshot (its ring keeps the newest), so a reader can resume across a restart from any
/// cursor the snapshot does not cover.
pub fn recover_publishing(
    journal_dir: &Path,
    snapshots: &sled::Tree,
    hub: Option<&Hub>,
) -> Result<Image, RecoveryError> {
    let started = std::time::Instant::now();
    let mut image = snapshot::load(snapshots)?;
    let loaded = started.elapsed();
    let snapshot_seq = image.seq;
    if let Some(hub) = hub {
        // Events the snapshot covers are not in the journal any more.
        hub.restart_at(if snapshot_seq > 0 {
            last_cursor_of(snapshot_seq)
        } else {
            0
        });
    }
    let mut replayed = hub.map(|hub| Replayed {
        hub,
        scratch: Vec::new(),
    });
    replay_journal(journal_dir, &mut image, replayed.as_mut())?;
    if let Some(hub) = hub {
        hub.publish(std::iter::empty(), last_cursor_of(image.seq));
    }
    tracing::info!(
        snapshot_seq,
        snapshot_ms = loaded.as_millis(),
        journal_events = image.seq - snapshot_seq,
        journal_ms = (started.elapsed() - loaded).as_millis(),
        "Read the snapshot and the journal after it."
    );
    Ok(image)
}

/// Publishes what replay finds to the hub, each event only if it is newer than what its
/// SKU had published before it, the snapshot included (the hub's own rule, which knows
/// only what was published since start, would let a late mark older than the snapshot's
/// through).
struct Replayed<'a> {
    hub: &'a Hub,
    scratch: Vec<StockEvent>,
}

impl Replayed<'_> {
    fn note(&mut self, image: &Image, seq: u64, event: &Event) {
        event.stock_events(seq, &mut self.scratch);
        self.scratch.retain(|event| {
            let published = image
                .skus
                .get(&event.sku)
                .map_or(0, |state| state.published.version);
            event.mark.version > published
        });
        self.hub
            .publish(self.scratch.drain(..), last_cursor_of(seq));
    }
}

/// A bad record found in the journal, cut off once the whole journal was checked.
struct Torn {
    path: std::path::PathBuf,
    offset: usize,
    reason: String,
}

/// Applies every journal event after the image's sequence, then cuts a torn tail off and
/// removes segments with nothing in them, so the writer starts on a clean journal.
fn replay_journal(
    dir: &Path,
    image: &mut Image,
    mut replayed: Option<&mut Replayed>,
) -> Result<(), RecoveryError> {
    let segments = segment::list(dir)?;
    let mut expected = image.seq + 1;
    // Highest sequence number seen in the journal, covered by the snapshot or not.
    let mut seen = 0u64;
    let mut torn: Option<Torn> = None;
    let mut empty_from = None;
    for (index, (_, path)) in segments.iter().enumerate() {
        let bytes = std::fs::read(path)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let corrupt = |offset: usize, reason: String| RecoveryError::JournalCorrupt {
            segment: name.clone(),
            offset,
            reason,
        };
        let mut at = 0;
        let mut records = 0;
        loop {
            match segment::read_frame(&bytes, at) {
                Frame::End => {
                    if let Some(found) = segment::intact_record_after(&bytes, at, seen) {
                        let reason = format!(
                            "its records end here, but an intact record follows at offset {found}"
                        );
                        return Err(corrupt(at, reason));
                    }
                    // Bytes after the end: a write whose first sector was lost.
                    if torn.is_none() && bytes[at.min(bytes.len())..].iter().any(|&b| b != 0) {
                        torn = Some(Torn {
                            path: path.clone(),
                            offset: at,
                            reason: "a zero length with bytes after it".into(),
                        });
                    }
                    break;
                }
                Frame::Bad(reason) => {
                    if let Some(found) = segment::intact_record_after(&bytes, at, seen) {
                        let reason =
                            format!("{reason}, and an intact record follows at offset {found}");
                        return Err(corrupt(at, reason));
                    }
                    if torn.is_none() {
                        torn = Some(Torn {
                            path: path.clone(),
                            offset: at,
                            reason,
                        });
                    }
                    break;
                }
                Frame::Record {
                    first_seq,
                    count,
                    payload,
                    next,
                } => {
                    if let Some(torn) = &torn {
                        let reason = format!(
                            "an earlier record (offset {} of {}) is bad: {}",
                            torn.offset,
                            torn.path.display(),
                            torn.reason
                        );
                        return Err(corrupt(at, reason));
                    }
                    let last = first_seq.saturating_add(u64::from(count) - 1);
                    if first_seq > expected {
                        let reason = format!("events {expected} to {} are missing", first_seq - 1);
                        return Err(corrupt(at, reason));
                    }
                    if last >= expected {
                        let events: Vec<Event> =
                            decode_packed(payload).map_err(|err| RecoveryError::Corrupt {
                                seq: first_seq,
                                reason: format!("{err} (segment {name}, offset {at})"),
                            })?;
                        if events.len() != count as usize {
                            return Err(corrupt(
                                at,
                                format!("{} events where the header says {count}", events.len()),
                            ));
                        }
                        for (seq, event) in (first_seq..).zip(events) {
                            if seq >= expected {
                                if let Some(replayed) = replayed.as_deref_mut() {
                                    replayed.note(image, seq, &event);
                                }
                                image.apply(seq, event);
                            }
                        }
                        expected = last + 1;
                    }
                    seen = seen.max(last);
                    records += 1;
                    at = next;
                }
            }
        }
        match (records, empty_from) {
            (0, None) => empty_from = Some(index),
            (0, Some(_)) => {}
            (_, _) => empty_from = None,
        }
    }
    image.seq = image.seq.max(expected - 1);
    let mut changed = false;
    if let Some(torn) = torn {
        tracing::warn!(
            segment = %torn.path.display(),
            offset = torn.offset,
            reason = %torn.reason,
            "The journal's last write was cut short by a crash; cutting it off (it was never acknowledged)."
        );
        let file = std::fs::OpenOptions::new().write(true).open(&torn.path)?;
        file.set_len(torn.offset as u64)?;
        file.sync_all()?;
        changed = true;
    }
    for (_, path) in segments.iter().skip(empty_from.unwrap_or(segments.len())) {
        std::fs::remove_file(path)?;
        changed = true;
    }
    if changed {
        segment::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{HoldId, HoldStatus};
    use crate::store::journal::tests::settings;
    use crate::store::journal::{Durability, Journal};

    fn expiry(at_ms: u64) -> Event {
        Event::HoldStatusChanged {
            hold_id: HoldId::new(),
            status: HoldStatus::Expired,
            at_ms,
        }
    }

    /// A journal of `batches` writes of 10 events each, the writer stopped.
    fn written(dir: &Path, batches: u64) {
        let (journal, writer) =
            Journal::start(settings(dir, Durability::Fsync), 1).expect("starts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for batch in 0..batches {
            for n in 0..10 {
                journal.append(expiry(batch * 10 + n));
            }
            runtime.block_on(journal.barrier()).expect("durable");
        }
        drop(journal);
        writer.join().expect("writer ends");
    }

    fn replayed(dir: &Path) -> Result<u64, RecoveryError> {
        let mut image = Image::default();
        replay_journal(dir, &mut image, None)?;
        Ok(image.seq)
    }

    /// The only segment, and its records' offsets and last sequence numbers.
    fn records(dir: &Path) -> (std::path::PathBuf, Vec<(usize, u64)>) {
        let segments = segment::list(dir).expect("lists");
        assert_eq!(segments.len(), 1);
        let path = segments[0].1.clone();
        let bytes = std::fs::read(&path).expect("reads");
        let found = segment::records(&bytes)
            .into_iter()
            .map(|(at, first_seq, count)| (at, first_seq + u64::from(count) - 1))
            .collect();
        (path, found)
    }

    fn flip(path: &Path, offset: usize) {
        let mut bytes = std::fs::read(path).expect("reads");
        bytes[offset] ^= 0x55;
        std::fs::write(path, bytes).expect("writes");
    }

    #[test]
    fn an_intact_journal_replays_every_event() {
        let dir = tempfile::tempdir().expect("dir");
        written(dir.path(), 5);
        assert_eq!(replayed(dir.path()).expect("replays"), 50);
        // Again: recovery left it as it was.
        assert_eq!(replayed(dir.path()).expect("replays"), 50);
    }

    /// The last record torn (its payload damaged): cut off, the rest replayed, and the
    /// next recovery finds a clean journal.
    #[test]
    fn a_torn_last_record_is_cut_off() {
        let dir = tempfile::tempdir().expect("dir");
        written(dir.path(), 5);
        let (path, records) = records(dir.path());
        let (at, _) = records[records.len() - 1];
        let (_, kept) = records[records.len() - 2];
        flip(&path, at + segment::FRAME_HEADER_BYTES + 3);
        assert_eq!(replayed(dir.path()).expect("replays"), kept);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), at as u64);
        assert_eq!(replayed(dir.path()).expect("replays again"), kept);
    }

    /// The last write torn so that its first sector never reached the disk (a zero length)
    /// but later ones did: cut off, not taken for corruption.
    #[test]
    fn a_last_write_missing_its_first_sector_is_cut_off() {
        let dir = tempfile::tempdir().expect("dir");
        written(dir.path(), 5);
        let (path, records) = records(dir.path());
        let (at, _) = records[records.len() - 1];
        let (_, kept) = records[records.len() - 2];
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes[at..at + 8].fill(0);
        std::fs::write(&path, &bytes).expect("writes");
        assert_eq!(replayed(dir.path()).expect("replays"), kept);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), at as u64);
    }

    /// A bad record with an intact one after it is corruption: refused, named, untouched.
    #[test]
    fn a_bad_record_before_good_ones_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("dir");
        written(dir.path(), 5);
        let (path, records) = records(dir.path());
        let (at, _) = records[1];
        flip(&path, at + segment::FRAME_HEADER_BYTES + 3);
        let before = std::fs::read(&path).expect("reads");
        let err = replayed(dir.path()).expect_err("refused");
        let message = err.to_string();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(message.contains(&name), "{message}");
        assert!(message.contains(&format!("offset {at}")), "{message}");
        assert_eq!(std::fs::read(&path).expect("reads"), before, "untouched");
    }

    /// A missing segment in the middle (events the snapshot does not cover) is refused.
    #[test]
    fn a_gap_in_the_journal_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let mut settings = settings(dir.path(), Durability::Fsync);
        settings.segment_bytes = 1024;
        let (journal, writer) = Journal::start(settings, 1).expect("starts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for n in 0..100 {
            journal.append(expiry(n));
            runtime.block_on(journal.barrier()).expect("durable");
        }
        drop(journal);
        writer.join().expect("writer ends");
        std::thread::sleep(Duration::from_millis(50));
        let segments = segment::list(dir.path()).expect("lists");
        assert!(segments.len() >= 3, "{} segments", segments.len());
        std::fs::remove_file(&segments[1].1).expect("removes");
        let err = replayed(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
