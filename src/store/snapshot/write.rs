//! Writing a snapshot: a generation's entries packed into chunks, made durable, then named
//! in the manifest (the only commit point), older generations swept after a merge.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;

use super::format::*;
use super::load::{corrupt, read_manifest};
use crate::domain::HoldId;
use crate::hold::idempotency::{IdempotencyRecord, StoredResponse};
use crate::store::image::{Dirty, Image};
use crate::store::packing::Packer;
use crate::store::recovery::RecoveryError;

/// Why a snapshot could not be written. The journal still holds everything: a failed
/// snapshot costs replay time at the next start, not data.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot store: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding a snapshot entry: {0}")]
    Encode(#[from] postcard::Error),
    #[error("syncing the snapshot store's files: {0}")]
    Sync(std::io::Error),
    #[error("deleting journal segments a snapshot covers: {0}")]
    Trim(std::io::Error),
    #[error(transparent)]
    Open(#[from] RecoveryError),
}

/// Packs entries into chunks of one generation and writes each chunk as one key.
pub(super) struct ChunkWriter<'a> {
    pub(super) tree: &'a sled::Tree,
    pub(super) generation: u64,
    pub(super) chunks: u32,
    pub(super) packer: Packer,
    pub(super) entries: u64,
}

impl<'a> ChunkWriter<'a> {
    pub(super) fn new(tree: &'a sled::Tree, generation: u64) -> Self {
        Self {
            tree,
            generation,
            chunks: 0,
            packer: Packer::new(CHUNK_BYTES_MAX),
            entries: 0,
        }
    }

    pub(super) fn push(&mut self, entry: &Entry) -> Result<(), SnapshotError> {
        if let Some(chunk) = self.packer.push(entry)? {
            self.store(chunk)?;
        }
        self.entries += 1;
        Ok(())
    }

    pub(super) fn store(&mut self, chunk: Vec<u8>) -> Result<(), SnapshotError> {
        let key = chunk_key(self.generation, self.chunks);
        self.tree.insert(key, chunk)?;
        self.chunks += 1;
        Ok(())
    }

    /// Seals the last chunk; the generation as the manifest will name it.
    pub(super) fn finish(mut self) -> Result<Generation, SnapshotError> {
        if let Some(chunk) = self.packer.close() {
            self.store(chunk)?;
        }
        Ok(Generation {
            id: self.generation,
            entries: self.entries,
        })
    }
}

/// The snapshot tree as the compactor writes it, and its current manifest.
pub struct Snapshots {
    pub(super) tree: sled::Tree,
    pub(super) manifest: Manifest,
    /// Set when a write failed: the changes it took from the image are not stored, so
    /// the next snapshot must write everything.
    pub(super) merge_next: bool,
}

impl Snapshots {
    /// Opens the tree and deletes chunks no manifest names (a snapshot cut short).
    pub fn open(tree: sled::Tree) -> Result<Self, RecoveryError> {
        let manifest = read_manifest(&tree)?;
        // The first snapshot in an empty tree writes everything: the image may hold state
        // its changes since start do not cover (loaded from an earlier build's snapshot).
        let merge_next = manifest.generations.is_empty();
        let snapshots = Self {
            tree,
            manifest,
            merge_next,
        };
        snapshots.sweep().map_err(|e| corrupt("sweep", e))?;
        Ok(snapshots)
    }

    /// Deletes every chunk of a generation the manifest does not name.
    pub(super) fn sweep(&self) -> Result<usize, SnapshotError> {
        let named: HashSet<u64> = self.manifest.generations.iter().map(|g| g.id).collect();
        let mut swept = 0;
        for key in self.tree.scan_prefix([CHUNK_PREFIX]).keys() {
            let key = key?;
            if generation_of(&key).is_some_and(|g| !named.contains(&g)) {
                self.tree.remove(key)?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Writes a new generation from the image (what changed, or everything when a merge
    /// is due) without naming it yet. Returns it and whether it is a merge.
    pub(super) fn write_generation(
        &mut self,
        image: &mut Image,
    ) -> Result<(Generation, bool), SnapshotError> {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let stored = self.manifest.stored_entries() + count(image.dirty.entries());
        let merge = std::mem::take(&mut self.merge_next)
            || stored > STORED_PER_LIVE_MAX.saturating_mul(count(image.entries()))
            || self.manifest.generations.len() >= GENERATIONS_MAX;
        let generation = self.write_generation_as(image, &image.dirty, merge);
        // Emptied in place, keeping their capacity: regrown from nothing, a snapshot's
        // worth of changes cost a cascade of rehashes and page faults each time.
        image.dirty.clear();
        Ok((generation?, merge))
    }

    pub(super) fn write_generation_as(
        &mut self,
        image: &Image,
        dirty: &Dirty,
        merge: bool,
    ) -> Result<Generation, SnapshotError> {
        // Counted on even if this generation is never named: its chunks, if any are left
        // on disk, are swept, and the id is not used again.
        let generation = self.manifest.next_generation;
        self.manifest.next_generation += 1;
        let mut chunks = ChunkWriter::new(&self.tree, generation);
        if merge {
            write_all(&mut chunks, image)?;
        } else {
            write_dirty(&mut chunks, image, dirty)?;
        }
        chunks.finish()
    }

    /// Names the generation in the manifest, after `sync` made its chunks durable; a merge
    /// replaces the generations before it, whose chunks are then deleted.
    pub(super) fn commit(
        &mut self,
        generation: Generation,
        merge: bool,
        seq: u64,
        sync: &mut dyn FnMut() -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        sync()?;
        let mut manifest = self.manifest.clone();
        if merge {
            manifest.generations.clear();
        }
        manifest.generations.push(generation);
        manifest.seq = seq;
        let encoded = postcard::to_stdvec(&manifest)?;
        self.tree.insert(MANIFEST, encoded)?;
        self.tree.remove(LEGACY_MANIFEST)?;
        sync()?;
        self.manifest = manifest;
        if merge {
            self.sweep()?;
        }
        Ok(())
    }

    /// Writes a snapshot of the image and makes it the one recovery loads.
    pub(super) fn write(
        &mut self,
        image: &mut Image,
        sync: &mut dyn FnMut() -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let written = self
            .write_generation(image)
            .and_then(|(generation, merge)| self.commit(generation, merge, image.seq, sync));
        self.merge_next = written.is_err();
        written
    }
}

/// Every live entry: a merge.
pub(super) fn write_all(chunks: &mut ChunkWriter<'_>, image: &Image) -> Result<(), SnapshotError> {
    for (sku, state) in &image.skus {
        chunks.push(&Entry::sku(sku, state))?;
    }
    for hold in image.holds.values() {
        chunks.push(&Entry::HoldAt(StoredHold::of(hold, image)))?;
    }
    write_routing(chunks, image)?;
    for (record, response) in image.refusals.values() {
        chunks.push(&stored_answer(record, response))?;
    }
    for sale in image.sales.values() {
        chunks.push(&Entry::SalePut(Cow::Borrowed(sale)))?;
    }
    for (endpoint, cursor) in image.webhooks.values() {
        chunks.push(&Entry::Webhook(Cow::Borrowed(endpoint), *cursor))?;
    }
    Ok(())
}

/// Every location and channel policy (a few hundred at most).
fn write_routing(chunks: &mut ChunkWriter<'_>, image: &Image) -> Result<(), SnapshotError> {
    for location in image.locations.values() {
        chunks.push(&Entry::Location(Cow::Borrowed(location)))?;
    }
    for policy in image.policies.values() {
        chunks.push(&Entry::ChannelPolicy(Cow::Borrowed(policy)))?;
    }
    Ok(())
}

/// What changed since the last snapshot: a delta.
pub(super) fn write_dirty(
    chunks: &mut ChunkWriter<'_>,
    image: &Image,
    dirty: &Dirty,
) -> Result<(), SnapshotError> {
    for sku in &dirty.skus {
        if let Some(state) = image.skus.get(sku) {
            chunks.push(&Entry::sku(sku, state))?;
        }
    }
    // In key order: each lookup below then walks its B-tree (the holds, and a hot SKU's
    // lines) near the last one, in cached nodes. In the hash set's order every lookup
    // missed the cache; they were a third of the compactor's CPU.
    let mut holds: Vec<HoldId> = dirty.holds.iter().copied().collect();
    holds.sort_unstable();
    for id in &holds {
        match image.holds.get(id) {
            Some(hold) => chunks.push(&Entry::HoldAt(StoredHold::of(hold, image)))?,
            None => chunks.push(&Entry::HoldGone(*id))?,
        }
    }
    for scope_key in &dirty.answers {
        match image.refusals.get(scope_key) {
            Some((record, response)) => chunks.push(&stored_answer(record, response))?,
            None => chunks.push(&Entry::AnswerGone(Cow::Borrowed(scope_key)))?,
        }
    }
    if dirty.routing {
        write_routing(chunks, image)?;
    }
    for id in &dirty.sales {
        match image.sales.get(id) {
            Some(sale) => chunks.push(&Entry::SalePut(Cow::Borrowed(sale)))?,
            None => chunks.push(&Entry::SaleGone(Cow::Borrowed(id)))?,
        }
    }
    for id in &dirty.webhooks {
        match image.webhooks.get(id) {
            Some((endpoint, cursor)) => {
                chunks.push(&Entry::Webhook(Cow::Borrowed(endpoint), *cursor))?
            }
            None => chunks.push(&Entry::WebhookGone(Cow::Borrowed(id)))?,
        }
    }
    Ok(())
}

pub(super) fn stored_answer<'a>(
    record: &'a IdempotencyRecord,
    response: &'a StoredResponse,
) -> Entry<'a> {
    Entry::Answer(
        Cow::Borrowed(record),
        response.status,
        Cow::Borrowed(&response.body),
    )
}

/// Makes a snapshot survive power loss before the manifest names it and before the journal
/// under it is deleted: sled's flush does not reach the drive, and sled 0.34 writes large
/// values (a hot SKU's lines) to blob files it never syncs. Blob files never change once
/// written, so each is synced once.
pub(super) struct DirSync {
    pub(super) db: sled::Db,
    pub(super) dir: PathBuf,
    pub(super) synced_blobs: HashSet<OsString>,
}

impl DirSync {
    pub(super) fn new(db: sled::Db, dir: PathBuf) -> Self {
        Self {
            db,
            dir,
            synced_blobs: HashSet::new(),
        }
    }

    /// sled's flush, then its data file and new blob files synced.
    pub(super) fn sync(&mut self) -> Result<(), SnapshotError> {
        self.db.flush()?;
        self.sync_files().map_err(SnapshotError::Sync)
    }

    pub(super) fn sync_files(&mut self) -> std::io::Result<()> {
        File::open(self.dir.join("db"))?.sync_data()?;
        let blobs = self.dir.join("blobs");
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&blobs)? {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(blobs.join(&name)).and_then(|f| f.sync_all()) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    other => other?,
                }
            }
            present.insert(name);
        }
        File::open(&blobs)?.sync_all()?;
        self.synced_blobs = present;
        Ok(())
    }
}

/// Writes the whole image as the snapshot and makes it durable (the upgrade of a data dir
/// whose journal was in sled writes everything it recovered this way, once).
pub fn write_merged(
    db: &sled::Db,
    tree: sled::Tree,
    dir: &std::path::Path,
    image: &mut Image,
) -> Result<(), SnapshotError> {
    let mut snapshots = Snapshots::open(tree)?;
    snapshots.merge_next = true;
    let mut store = DirSync::new(db.clone(), dir.to_path_buf());
    snapshots.write(image, &mut || store.sync())
}
