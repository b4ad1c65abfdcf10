//! Rebuilding state at start: load the latest snapshot, then apply the journal after it.
//! What replay cannot settle by itself (a status change whose line changes were not all
//! written before a crash) is settled afterwards through the live path, so the
//! fixes are journaled too (see `startup::restore`).

use super::image::Image;
use super::snapshot;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("journal record {seq} cannot be decoded ({reason}); the data dir is corrupt or from another version")]
    Corrupt { seq: u64, reason: String },
    #[error("reading the journal: {0}")]
    Storage(#[from] sled::Error),
}

/// The image as of the last durable event. `legacy` is where an earlier build kept its
/// snapshots: it is read only while `snapshots` holds none, as the journal is trimmed only
/// under a snapshot written in the new place.
pub fn recover(
    journal: &sled::Tree,
    snapshots: &sled::Tree,
    legacy: Option<&sled::Tree>,
) -> Result<Image, RecoveryError> {
    let mut image = match legacy {
        Some(legacy) if !snapshot::has_any(snapshots)? => snapshot::load(legacy)?,
        _ => snapshot::load(snapshots)?,
    };
    snapshot::replay_tail(journal, &mut image, usize::MAX)?;
    Ok(image)
}
