//! Data dirs of builds before format 6 kept the journal in sled (`<data-dir>/sled`, tree
//! `journal`: a record per batch, keyed by its last event's sequence number, big-endian,
//! holding the events packed back to back), and format 4 kept snapshots there too. This
//! reads such a dir into an image, once, when it is upgraded (see `data_dir::upgrade`).

use std::path::Path;

use super::image::Image;
use super::packing::decode_packed;
use super::recovery::RecoveryError;
use super::snapshot;
use super::Event;

const JOURNAL_TREE: &str = "journal";
const SNAPSHOT_TREE: &str = "snapshots";

/// The image an earlier build would have recovered from `sled_dir` and `snapshots`.
pub fn recover(sled_dir: &Path, snapshots: &sled::Tree) -> Result<Image, RecoveryError> {
    let db = sled::Config::new().path(sled_dir).open()?;
    let journal = db.open_tree(JOURNAL_TREE)?;
    // Format 4: snapshots in the journal's Db, read while the snapshot store has none.
    let has_legacy_snapshots = db
        .tree_names()
        .iter()
        .any(|name| name == SNAPSHOT_TREE.as_bytes());
    let mut image = if has_legacy_snapshots && !snapshot::has_any(snapshots)? {
        snapshot::load(&db.open_tree(SNAPSHOT_TREE)?)?
    } else {
        snapshot::load(snapshots)?
    };
    for entry in journal.range((image.seq + 1).to_be_bytes()..) {
        let (key, value) = entry?;
        let last = key
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| RecoveryError::Corrupt {
                seq: 0,
                reason: format!("a sled journal key of {} bytes", key.len()),
            })?;
        let events: Vec<Event> = decode_packed(&value).map_err(|err| RecoveryError::Corrupt {
            seq: last,
            reason: err.to_string(),
        })?;
        let first = (last + 1).saturating_sub(u64::try_from(events.len()).unwrap_or(0));
        for (seq, event) in (first..).zip(events) {
            image.apply(seq, event);
        }
    }
    Ok(image)
}
