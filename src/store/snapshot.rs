//! Snapshots and journal trimming. The compactor thread tails the journal into an
//! [`Image`]; every `every_events` events or `every_s` seconds it writes a snapshot and then
//! deletes the journal up to the sequence the snapshot covers. Recovery loads the snapshot
//! and replays only the journal after it.
//!
//! A snapshot is a list of generations. Each generation is a set of entries (a SKU's
//! counters, a hold with the state of its lines, a refusal, a sale, or a tombstone) packed
//! back to back into small chunks. Usually a new generation holds only what changed since
//! the last one (a delta); once the stored entries outnumber twice the live ones, the whole
//! image is written as one generation (a merge) and the older ones are deleted, so the
//! write per changed entry stays constant and loading reads at most twice the live state.
//! A generation's chunks are written and made durable first, and only then named in the
//! manifest, one key written at once and made durable: the manifest is the only commit
//! point, a snapshot cut short is never seen, and its chunks are swept later. Generation
//! ids come from a counter kept in the manifest, never from what happens to be on disk (an
//! empty generation has no chunk to count from).
//!
//! Once a snapshot is durable, journal segments it covers are deleted.
//!
//! Packing matters: sled spends tens of microseconds per key, and a snapshot of a busy
//! sale covers a quarter of a million holds. Chunks are as small as journal records
//! (`RECORD_BYTES_MAX`), for the same reason: nothing the snapshot writes goes to a blob.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::image::{Dirty, Image};
use super::journal::Journal;
use super::packing::{decode_packed, Packer};
use super::recovery::RecoveryError;
use super::segment;
use super::tail::Tail;
use crate::clock::Clock;
use crate::domain::{HoldId, IdMap, SkuId};
use crate::hold::idempotency::{IdempotencyRecord, StoredResponse};
use crate::hold::HoldRecord;
use crate::metrics as m;
use crate::sale::Sale;
use crate::sku::state::Line;
use crate::sku::SkuState;

/// The manifest, with its generation counter (format 6 on).
const MANIFEST: &[u8] = b"m:manifest.v6";
/// The manifest of earlier builds, without a counter: read once, replaced at the next commit.
const LEGACY_MANIFEST: &[u8] = b"m:manifest";
const CHUNK_PREFIX: u8 = b'g';
/// Largest chunk, in bytes. sled 0.34 writes any value over a quarter segment (128 KiB)
/// to a blob file of its own; small chunks keep a snapshot in its data file, and the
/// compactor's sync covers blob files anyway.
const CHUNK_BYTES_MAX: usize = 6 * 1024;
/// Journal records (batches) read per pass, so one pass's memory is bounded.
const READ_PER_PASS_MAX: usize = 5_000;
/// A merge is due once the stored entries exceed this many times the live ones.
const STORED_PER_LIVE_MAX: u64 = 2;
/// ... or once the snapshot has this many generations, which bounds the manifest.
const GENERATIONS_MAX: usize = 64;

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

/// Where a hold's line stands on its SKU as of the snapshot.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum LineMark {
    Held,
    Committed,
    /// Released or fulfilled: no longer on the SKU.
    Gone,
}

/// A hold as the snapshot stores it: the record, per line the line's state, and the
/// idempotency record that placed it while that answer is remembered. Written borrowed
/// from the image (a snapshot covers up to a million holds; cloning each to encode it
/// cost an allocation per string), read back owned.
#[derive(Serialize, Deserialize)]
struct StoredHold<'a> {
    hold: Cow<'a, HoldRecord>,
    lines: Vec<LineMark>,
    placed_by: Option<Cow<'a, IdempotencyRecord>>,
}

impl<'a> StoredHold<'a> {
    fn of(hold: &'a HoldRecord, image: &'a Image) -> Self {
        let lines = hold
            .lines
            .iter()
            .map(|line| {
                let on_sku = image
                    .skus
                    .get(&line.sku)
                    .and_then(|state| state.lines.get(&hold.id));
                match on_sku {
                    Some(line) if line.committed => LineMark::Committed,
                    Some(_) => LineMark::Held,
                    None => LineMark::Gone,
                }
            })
            .collect();
        Self {
            hold: Cow::Borrowed(hold),
            lines,
            placed_by: image.placed_by.get(&hold.id).map(Cow::Borrowed),
        }
    }

    /// Puts the hold, its answer and its open lines back.
    fn restore(self, image: &mut Image) {
        self.restore_lines(image);
        let hold = self.hold.into_owned();
        if let Some(record) = self.placed_by {
            image.placed_by.insert(hold.id, record.into_owned());
        }
        image.holds.insert(hold.id, hold);
    }

    fn restore_lines(&self, image: &mut Image) {
        let hold = &self.hold;
        for (index, (line, mark)) in hold.lines.iter().zip(&self.lines).enumerate() {
            let committed = match mark {
                LineMark::Held => false,
                LineMark::Committed => true,
                LineMark::Gone => continue,
            };
            let restored = Line {
                quantity: line.quantity,
                channel: hold.channel.clone(),
                committed,
                pooled: hold.pooled.get(index).copied().unwrap_or(0),
                customer: hold.customer_id.clone(),
            };
            image
                .skus
                .entry(line.sku.clone())
                .or_default()
                .lines
                .insert(hold.id, restored);
        }
    }
}

/// One thing a generation says; a later generation's entry for the same key wins.
/// Borrowed from the image when written: cloning a hot SKU's state to encode its
/// counters copied every one of its open lines.
#[derive(Serialize, Deserialize)]
enum Entry<'a> {
    /// A SKU's counters; its lines come back from the holds.
    Sku(Cow<'a, SkuId>, Cow<'a, SkuState>),
    Hold(StoredHold<'a>),
    /// The hold was forgotten.
    HoldGone(HoldId),
    /// A refusal remembered under its idempotency key: the record, status and body. (A
    /// placed answer is stored with its hold.)
    Answer(Cow<'a, IdempotencyRecord>, u16, Cow<'a, [u8]>),
    /// The key no longer answers with a stored refusal.
    AnswerGone(Cow<'a, str>),
    Sale(Cow<'a, Sale>),
}

/// What the snapshot consists of, written as one key: the sequence it covers, the id the
/// next generation gets, and its generations, oldest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Manifest {
    seq: u64,
    next_generation: u64,
    generations: Vec<Generation>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            seq: 0,
            next_generation: 1,
            generations: Vec::new(),
        }
    }
}

/// The manifest as builds before format 6 wrote it.
#[derive(Deserialize)]
struct LegacyManifest {
    seq: u64,
    generations: Vec<Generation>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct Generation {
    id: u64,
    /// Entries written in it, to decide when to merge.
    entries: u64,
}

impl Manifest {
    fn stored_entries(&self) -> u64 {
        self.generations.iter().map(|g| g.entries).sum()
    }
}

fn chunk_key(generation: u64, index: u32) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[..9].copy_from_slice(&generation_prefix(generation));
    key[9..].copy_from_slice(&index.to_be_bytes());
    key
}

fn generation_prefix(generation: u64) -> [u8; 9] {
    let mut prefix = [0u8; 9];
    prefix[0] = CHUNK_PREFIX;
    prefix[1..].copy_from_slice(&generation.to_be_bytes());
    prefix
}

fn generation_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Not a journal record: the snapshot store's own corruption, named as such (it was
/// reported as "journal record 0 cannot be decoded").
fn corrupt(what: &str, err: impl std::fmt::Display) -> RecoveryError {
    RecoveryError::SnapshotCorrupt(format!("{what}: {err}"))
}

fn read_manifest(tree: &sled::Tree) -> Result<Manifest, RecoveryError> {
    if let Some(bytes) = tree.get(MANIFEST)? {
        return postcard::from_bytes(&bytes).map_err(|e| corrupt("manifest", e));
    }
    let Some(bytes) = tree.get(LEGACY_MANIFEST)? else {
        return Ok(Manifest::default());
    };
    let legacy: LegacyManifest =
        postcard::from_bytes(&bytes).map_err(|e| corrupt("manifest", e))?;
    // Earlier builds had no counter: count on from every id named or present on disk
    // (the chunks of a snapshot cut short carry an id no manifest names).
    let last_chunk = tree
        .scan_prefix([CHUNK_PREFIX])
        .keys()
        .next_back()
        .transpose()?
        .and_then(|key| generation_of(&key));
    let last_named = legacy.generations.iter().map(|g| g.id).max();
    let next_generation = last_chunk.max(last_named).map_or(1, |last| last + 1);
    Ok(Manifest {
        seq: legacy.seq,
        next_generation,
        generations: legacy.generations,
    })
}

/// Whether the tree holds a snapshot.
pub fn has_any(tree: &sled::Tree) -> Result<bool, RecoveryError> {
    Ok(!read_manifest(tree)?.generations.is_empty())
}

/// The image as of the last snapshot (empty if none was written).
pub fn load(tree: &sled::Tree) -> Result<Image, RecoveryError> {
    let manifest = read_manifest(tree)?;
    let mut image = Image::default();
    let mut holds: IdMap<HoldId, StoredHold> = IdMap::default();
    for generation in &manifest.generations {
        let mut entries = 0u64;
        for chunk in tree.scan_prefix(generation_prefix(generation.id)) {
            let (_, value) = chunk?;
            for entry in decode_packed::<Entry>(&value).map_err(|e| corrupt("entry", e))? {
                entries += 1;
                match entry {
                    Entry::Sku(sku, state) => {
                        image.skus.insert(sku.into_owned(), state.into_owned());
                    }
                    Entry::Hold(stored) => {
                        holds.insert(stored.hold.id, stored);
                    }
                    Entry::HoldGone(id) => {
                        holds.remove(&id);
                    }
                    Entry::Answer(record, status, body) => {
                        let record = record.into_owned();
                        let response = StoredResponse {
                            status,
                            body: Arc::from(body),
                        };
                        image
                            .refusals
                            .insert(record.scope_key.clone(), (record, response));
                    }
                    Entry::AnswerGone(scope_key) => {
                        image.refusals.remove(scope_key.as_ref());
                    }
                    Entry::Sale(sale) => {
                        let sale = sale.into_owned();
                        image.sales.insert(sale.id.clone(), sale);
                    }
                }
            }
        }
        if entries != generation.entries {
            let found = format!("generation {generation:?} has {entries} entries");
            return Err(corrupt("chunks", found));
        }
    }
    for stored in holds.into_values() {
        stored.restore(&mut image);
    }
    for state in image.skus.values_mut() {
        state.rebuild_from_lines();
    }
    image.seq = manifest.seq;
    Ok(image)
}

/// Packs entries into chunks of one generation and writes each chunk as one key.
struct ChunkWriter<'a> {
    tree: &'a sled::Tree,
    generation: u64,
    chunks: u32,
    packer: Packer,
    entries: u64,
}

impl<'a> ChunkWriter<'a> {
    fn new(tree: &'a sled::Tree, generation: u64) -> Self {
        Self {
            tree,
            generation,
            chunks: 0,
            packer: Packer::new(CHUNK_BYTES_MAX),
            entries: 0,
        }
    }

    fn push(&mut self, entry: &Entry) -> Result<(), String> {
        if let Some(chunk) = self.packer.push(entry).map_err(|e| e.to_string())? {
            self.store(chunk)?;
        }
        self.entries += 1;
        Ok(())
    }

    fn store(&mut self, chunk: Vec<u8>) -> Result<(), String> {
        let key = chunk_key(self.generation, self.chunks);
        self.tree.insert(key, chunk).map_err(|e| e.to_string())?;
        self.chunks += 1;
        Ok(())
    }

    /// Seals the last chunk; the generation as the manifest will name it.
    fn finish(mut self) -> Result<Generation, String> {
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
    tree: sled::Tree,
    manifest: Manifest,
    /// Set when a write failed: the changes it took from the image are not stored, so
    /// the next snapshot must write everything.
    merge_next: bool,
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
    fn sweep(&self) -> Result<usize, String> {
        let named: HashSet<u64> = self.manifest.generations.iter().map(|g| g.id).collect();
        let mut swept = 0;
        for key in self.tree.scan_prefix([CHUNK_PREFIX]).keys() {
            let key = key.map_err(|e| e.to_string())?;
            if generation_of(&key).is_some_and(|g| !named.contains(&g)) {
                self.tree.remove(key).map_err(|e| e.to_string())?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Writes a new generation from the image (what changed, or everything when a merge
    /// is due) without naming it yet. Returns it and whether it is a merge.
    fn write_generation(&mut self, image: &mut Image) -> Result<(Generation, bool), String> {
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

    fn write_generation_as(
        &mut self,
        image: &Image,
        dirty: &Dirty,
        merge: bool,
    ) -> Result<Generation, String> {
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
    fn commit(
        &mut self,
        generation: Generation,
        merge: bool,
        seq: u64,
        sync: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        sync()?;
        let mut manifest = self.manifest.clone();
        if merge {
            manifest.generations.clear();
        }
        manifest.generations.push(generation);
        manifest.seq = seq;
        let encoded = postcard::to_stdvec(&manifest).map_err(|e| e.to_string())?;
        self.tree
            .insert(MANIFEST, encoded)
            .map_err(|e| e.to_string())?;
        self.tree
            .remove(LEGACY_MANIFEST)
            .map_err(|e| e.to_string())?;
        sync()?;
        self.manifest = manifest;
        if merge {
            self.sweep()?;
        }
        Ok(())
    }

    /// Writes a snapshot of the image and makes it the one recovery loads.
    fn write(
        &mut self,
        image: &mut Image,
        sync: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        let written = self
            .write_generation(image)
            .and_then(|(generation, merge)| self.commit(generation, merge, image.seq, sync));
        self.merge_next = written.is_err();
        written
    }
}

/// Every live entry: a merge.
fn write_all(chunks: &mut ChunkWriter<'_>, image: &Image) -> Result<(), String> {
    for (sku, state) in &image.skus {
        chunks.push(&Entry::Sku(Cow::Borrowed(sku), Cow::Borrowed(state)))?;
    }
    for hold in image.holds.values() {
        chunks.push(&Entry::Hold(StoredHold::of(hold, image)))?;
    }
    for (record, response) in image.refusals.values() {
        chunks.push(&stored_answer(record, response))?;
    }
    for sale in image.sales.values() {
        chunks.push(&Entry::Sale(Cow::Borrowed(sale)))?;
    }
    Ok(())
}

/// What changed since the last snapshot: a delta.
fn write_dirty(chunks: &mut ChunkWriter<'_>, image: &Image, dirty: &Dirty) -> Result<(), String> {
    for sku in &dirty.skus {
        if let Some(state) = image.skus.get(sku) {
            chunks.push(&Entry::Sku(Cow::Borrowed(sku), Cow::Borrowed(state)))?;
        }
    }
    // In key order: each lookup below then walks its B-tree (the holds, and a hot SKU's
    // lines) near the last one, in cached nodes. In the hash set's order every lookup
    // missed the cache; they were a third of the compactor's CPU.
    let mut holds: Vec<HoldId> = dirty.holds.iter().copied().collect();
    holds.sort_unstable();
    for id in &holds {
        match image.holds.get(id) {
            Some(hold) => chunks.push(&Entry::Hold(StoredHold::of(hold, image)))?,
            None => chunks.push(&Entry::HoldGone(*id))?,
        }
    }
    for scope_key in &dirty.answers {
        match image.refusals.get(scope_key) {
            Some((record, response)) => chunks.push(&stored_answer(record, response))?,
            None => chunks.push(&Entry::AnswerGone(Cow::Borrowed(scope_key)))?,
        }
    }
    for id in &dirty.sales {
        if let Some(sale) = image.sales.get(id) {
            chunks.push(&Entry::Sale(Cow::Borrowed(sale)))?;
        }
    }
    Ok(())
}

fn stored_answer<'a>(record: &'a IdempotencyRecord, response: &'a StoredResponse) -> Entry<'a> {
    Entry::Answer(
        Cow::Borrowed(record),
        response.status,
        Cow::Borrowed(&response.body),
    )
}

/// Deletes the journal segments a durable snapshot covering `seq` makes moot: every
/// segment whose successor starts at or before `seq + 1`. The last segment, the one being
/// written, is never deleted. Returns the segments deleted and the first sequence number
/// still in the journal.
pub fn trim(journal_dir: &std::path::Path, seq: u64) -> Result<(usize, u64), String> {
    let segments = segment::list(journal_dir).map_err(|e| e.to_string())?;
    let mut deleted = 0;
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first > seq + 1 {
            break;
        }
        std::fs::remove_file(path).map_err(|e| e.to_string())?;
        deleted += 1;
    }
    if deleted > 0 {
        segment::sync_dir(journal_dir).map_err(|e| e.to_string())?;
    }
    let oldest = segments.get(deleted).map_or(seq + 1, |(first, _)| *first);
    Ok((deleted, oldest))
}

/// Makes a snapshot survive power loss before the manifest names it and before the journal
/// under it is deleted: sled's flush does not reach the drive, and sled 0.34 writes large
/// values (a hot SKU's lines) to blob files it never syncs. Blob files never change once
/// written, so each is synced once.
struct DirSync {
    db: sled::Db,
    dir: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl DirSync {
    fn new(db: sled::Db, dir: PathBuf) -> Self {
        Self {
            db,
            dir,
            synced_blobs: HashSet::new(),
        }
    }

    /// sled's flush, then its data file and new blob files synced.
    fn sync(&mut self) -> Result<(), String> {
        self.db.flush().map_err(|e| e.to_string())?;
        self.sync_files().map_err(|e| e.to_string())
    }

    fn sync_files(&mut self) -> std::io::Result<()> {
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
) -> Result<(), String> {
    let mut snapshots = Snapshots::open(tree).map_err(|e| e.to_string())?;
    snapshots.merge_next = true;
    let mut store = DirSync::new(db.clone(), dir.to_path_buf());
    snapshots.write(image, &mut || store.sync())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{AdjustReason, Channel, CustomerId, HoldStatus, Quantity};
    use crate::hold::idempotency::Answer;
    use crate::hold::HoldLine;
    use crate::sku::SkuChange;
    use crate::store::Event;

    fn sku(name: &str) -> SkuId {
        SkuId::parse(name).expect("sku")
    }

    fn placed(id: HoldId, lines: &[(&str, i64)], channel: &str, customer: &str) -> Event {
        let lines: Vec<HoldLine> = lines
            .iter()
            .map(|(name, units)| HoldLine {
                sku: sku(name),
                quantity: Quantity::parse(*units).expect("quantity"),
            })
            .collect();
        Event::HoldPlaced {
            hold: HoldRecord {
                id,
                pooled: vec![1; lines.len()],
                lines,
                channel: Channel::parse(channel).expect("channel"),
                customer_id: CustomerId::parse(customer).expect("customer"),
                status: HoldStatus::Held,
                created_at_ms: 1,
                expires_at_ms: u64::MAX,
                updated_at_ms: 1,
                placed_by: Default::default(),
            },
            idempotency: IdempotencyRecord {
                scope_key: format!("{channel}/{id}"),
                fingerprint: [0; 32],
                at_ms: 1,
            },
        }
    }

    fn line(name: &str, change: SkuChange) -> Event {
        Event::Sku {
            sku: sku(name),
            change,
        }
    }

    /// A sale's worth of events on two SKUs: every kind of line change, stock and
    /// allocation changes.
    fn events() -> Vec<Event> {
        let ids: Vec<HoldId> = (0..6).map(|_| HoldId::new()).collect();
        let stock = |name: &str| {
            line(
                name,
                SkuChange::StockSet {
                    on_hand: 100,
                    safety_stock: 2,
                    low_stock_threshold: Some(5),
                },
            )
        };
        vec![
            stock("A"),
            stock("B"),
            line(
                "A",
                SkuChange::AllocationSet {
                    quotas: BTreeMap::from([(Channel::parse("web").expect("web"), 30)]),
                },
            ),
            placed(ids[0], &[("A", 3), ("B", 1)], "web", "ann"),
            placed(ids[1], &[("A", 2)], "app", "bob"),
            placed(ids[2], &[("B", 4)], "web", "ann"),
            // first snapshot here (after 6 events)
            line("A", SkuChange::LineCommitted { hold_id: ids[0] }),
            line("B", SkuChange::LineCommitted { hold_id: ids[0] }),
            line("A", SkuChange::LineReleased { hold_id: ids[1] }),
            placed(ids[3], &[("A", 5)], "app", "cy"),
            line("A", SkuChange::LineFulfilled { hold_id: ids[0] }),
            line(
                "B",
                SkuChange::StockAdjusted {
                    delta: -3,
                    reason: AdjustReason::Damaged,
                },
            ),
            placed(ids[4], &[("B", 2)], "app", "bob"),
            line("B", SkuChange::LineCommitted { hold_id: ids[4] }),
            // second snapshot here (after 14 events)
            line("B", SkuChange::LineFulfilled { hold_id: ids[4] }),
            line("A", SkuChange::LineCommitted { hold_id: ids[3] }),
            line("B", SkuChange::LineReleased { hold_id: ids[2] }),
            placed(ids[5], &[("A", 1), ("B", 1)], "web", "dee"),
            Event::Refused {
                idempotency: IdempotencyRecord {
                    scope_key: "web/sold-out".into(),
                    fingerprint: [1; 32],
                    at_ms: 1,
                },
                status: 409,
                body: b"sold out".to_vec(),
            },
        ]
    }

    /// Every remembered answer as the client would get it, by scope key.
    fn answers(image: &Image) -> BTreeMap<String, (IdempotencyRecord, StoredResponse)> {
        image
            .answers()
            .into_iter()
            .map(|(record, answer)| {
                let response = match answer {
                    Answer::Stored(response) => response,
                    Answer::Placed(id) => image.holds[&id].placed_response(),
                };
                (record.scope_key.clone(), (record.clone(), response))
            })
            .collect()
    }

    fn replayed(events: &[Event], upto: usize) -> Image {
        let mut image = Image::default();
        for (seq, event) in (1..).zip(&events[..upto]) {
            image.apply(seq, event.clone());
        }
        image
    }

    /// A temporary database, its snapshot tree, and the compactor's handle on it.
    fn fresh() -> (sled::Db, sled::Tree, Snapshots) {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let tree = db.open_tree("snapshots").expect("snapshot tree");
        let snapshots = Snapshots::open(tree.clone()).expect("opens");
        (db, tree, snapshots)
    }

    /// A fresh database whose snapshot holds every event of [`events`], written once.
    fn written_once() -> (sled::Db, sled::Tree, Snapshots, Image) {
        let events = events();
        let (db, tree, mut snapshots) = fresh();
        let mut image = replayed(&events, events.len());
        snapshots.write(&mut image, &mut no_sync).expect("snapshot");
        (db, tree, snapshots, image)
    }

    fn no_sync() -> Result<(), String> {
        Ok(())
    }

    fn chunk_keys(tree: &sled::Tree, generation: u64) -> usize {
        tree.scan_prefix(generation_prefix(generation)).count()
    }

    fn assert_same(loaded: &Image, expected: &Image, context: &str) {
        assert_eq!(loaded.skus, expected.skus, "{context}");
        assert_eq!(loaded.holds, expected.holds, "{context}");
        assert_eq!(answers(loaded), answers(expected), "{context}");
        assert_eq!(loaded.seq, expected.seq, "{context}");
    }

    /// A crash after a generation's chunks but before the manifest names them: recovery
    /// loads the snapshot before it, replays the journal to exactly the state of a plain
    /// replay, and the orphaned chunks are deleted when the compactor opens the tree.
    #[test]
    fn a_snapshot_cut_short_is_never_loaded_and_its_chunks_are_swept() {
        let events = events();
        for (first, second) in [(6, 14), (6, 18), (3, 10), (0, 18)] {
            let context = format!("snapshot at {first}, cut short at {second}");
            let db = sled::Config::new().temporary(true).open().expect("sled");
            let tree = db.open_tree("snapshots").expect("snapshot tree");
            let mut snapshots = Snapshots::open(tree.clone()).expect("opens");
            let mut image = replayed(&events, first);
            snapshots
                .write(&mut image, &mut no_sync)
                .expect("first snapshot");
            // A restart in between, as in the field: with `first` = 0 the named generation
            // is empty and has no chunk, and its id must not be handed out again.
            let mut snapshots = Snapshots::open(tree.clone()).expect("reopens");
            for (seq, event) in (1..).zip(&events).take(second).skip(first) {
                image.apply(seq, event.clone());
            }
            let (orphan, _) = snapshots.write_generation(&mut image).expect("chunks");
            assert!(chunk_keys(&tree, orphan.id) > 0, "{context}");

            let mut recovered = load(&tree).expect("loads");
            assert_eq!(
                recovered.seq,
                u64::try_from(first).expect("seq"),
                "{context}"
            );
            for (seq, event) in (1..).zip(&events).skip(first) {
                recovered.apply(seq, event.clone());
            }
            assert_same(&recovered, &replayed(&events, events.len()), &context);

            let mut reopened = Snapshots::open(tree.clone()).expect("reopens");
            assert_eq!(chunk_keys(&tree, orphan.id), 0, "{context}");
            reopened
                .write(&mut recovered, &mut no_sync)
                .expect("next snapshot");
            assert_same(&load(&tree).expect("loads"), &recovered, &context);
        }
    }

    /// Snapshots written one after another (deltas, then merges) each load back to the
    /// state they were written from: lines, per-customer units, channel entries, answers.
    #[test]
    fn every_snapshot_loads_back_exactly() {
        let events = events();
        let (_db, tree, mut snapshots) = fresh();
        let mut image = Image::default();
        let mut merges = 0;
        for (seq, event) in (1..).zip(&events) {
            image.apply(seq, event.clone());
            let (generation, merge) = snapshots.write_generation(&mut image).expect("chunks");
            merges += usize::from(merge);
            snapshots
                .commit(generation, merge, image.seq, &mut no_sync)
                .expect("commit");
            let loaded = load(&tree).expect("loads");
            assert_same(&loaded, &image, &format!("snapshot after event {seq}"));
        }
        assert!(
            !answers(&image).is_empty() && !image.holds.is_empty(),
            "the events leave holds and answers to check"
        );
        assert!(merges >= 1, "no merge in {} snapshots", events.len());
        assert!(snapshots.manifest.generations.len() > 1, "ends on a delta");
    }

    /// Writing the same holds over and over: once the stored entries pass twice the live
    /// ones the snapshot is rewritten as one generation and the older chunks are deleted,
    /// so the snapshot stays proportional to the live state.
    #[test]
    fn deltas_are_merged_once_they_outnumber_the_live_state() {
        let (_db, tree, mut snapshots, mut image) = written_once();
        let live = u64::try_from(image.entries()).expect("count");
        let ids: Vec<HoldId> = image.holds.keys().copied().collect();
        let mut seq = image.seq;
        let mut deltas_before_merge = Vec::new();
        for round in 0..12u64 {
            for id in &ids {
                seq += 1;
                let event = Event::HoldStatusChanged {
                    hold_id: *id,
                    status: HoldStatus::Held,
                    at_ms: round,
                };
                image.apply(seq, event);
            }
            let (generation, merge) = snapshots.write_generation(&mut image).expect("chunks");
            let older: Vec<u64> = snapshots
                .manifest
                .generations
                .iter()
                .map(|g| g.id)
                .collect();
            snapshots
                .commit(generation, merge, seq, &mut no_sync)
                .expect("commit");
            assert!(snapshots.manifest.stored_entries() <= 3 * live);
            if merge {
                deltas_before_merge.push(older.len());
                assert_eq!(snapshots.manifest.generations, vec![generation]);
                assert_eq!(generation.entries, live, "a merge writes every live entry");
                assert!(older.iter().all(|g| chunk_keys(&tree, *g) == 0));
            }
            assert_same(
                &load(&tree).expect("loads"),
                &image,
                &format!("round {round}"),
            );
        }
        assert!(deltas_before_merge.len() >= 2, "{deltas_before_merge:?}");
        assert!(
            deltas_before_merge.iter().all(|&n| n > 1),
            "{deltas_before_merge:?}"
        );
    }

    /// A hold forgotten after its retention is written as gone, and an older generation
    /// that still has it does not bring it back; answers past their time likewise.
    #[test]
    fn forgotten_holds_and_expired_answers_stay_gone() {
        let (_db, tree, mut snapshots, mut image) = written_once();
        let released = image
            .holds
            .values()
            .find(|hold| {
                hold.status == HoldStatus::Held
                    && hold.lines.iter().all(|line| {
                        image.skus[&line.sku]
                            .lines
                            .get(&hold.id)
                            .is_some_and(|line| !line.committed)
                    })
            })
            .cloned()
            .expect("a hold with only held lines");
        let mut seq = image.seq;
        let mut release = vec![Event::HoldStatusChanged {
            hold_id: released.id,
            status: HoldStatus::Released,
            at_ms: 2,
        }];
        for hold_line in &released.lines {
            release.push(line(
                hold_line.sku.as_str(),
                SkuChange::LineReleased {
                    hold_id: released.id,
                },
            ));
        }
        for event in release {
            seq += 1;
            image.apply(seq, event);
        }
        image.forget_expired(10, 5, 5);
        assert!(!image.holds.contains_key(&released.id));
        assert!(answers(&image).is_empty());
        let dirty = std::mem::take(&mut image.dirty);
        let delta = snapshots
            .write_generation_as(&image, &dirty, false)
            .expect("chunks");
        snapshots
            .commit(delta, false, seq, &mut no_sync)
            .expect("commit");
        assert_eq!(snapshots.manifest.generations.len(), 2);
        let loaded = load(&tree).expect("loads");
        assert!(!loaded.holds.contains_key(&released.id));
        assert!(answers(&loaded).is_empty(), "{:?}", answers(&loaded));
        assert_eq!(loaded.holds.len(), 5);
        assert_same(&loaded, &image, "after forgetting");
    }

    /// A key used again after the server forgot its first answer: the new hold is what
    /// the key answers, before and after a snapshot, and still after the first hold is
    /// forgotten (its record must not take the key's answer with it).
    #[test]
    fn a_key_used_again_after_its_ttl_answers_with_the_newer_hold() {
        let (first, second) = (HoldId::new(), HoldId::new());
        let with_key = |id: HoldId, at_ms: u64| {
            let mut event = placed(id, &[("A", 1)], "web", "ann");
            if let Event::HoldPlaced {
                hold, idempotency, ..
            } = &mut event
            {
                hold.created_at_ms = at_ms;
                hold.updated_at_ms = at_ms;
                idempotency.scope_key = "web/reused".into();
                idempotency.at_ms = at_ms;
            }
            event
        };
        let events = vec![
            with_key(first, 1),
            Event::HoldStatusChanged {
                hold_id: first,
                status: HoldStatus::Released,
                at_ms: 2,
            },
            line("A", SkuChange::LineReleased { hold_id: first }),
            // The answer TTL (50) has passed: the live server forgot the key and ran it again.
            with_key(second, 100),
        ];
        let answered_by = |image: &Image| {
            let answers = answers(image);
            let (record, response) = answers.get("web/reused").expect("the key answers");
            let body: serde_json::Value =
                serde_json::from_slice(&response.body).expect("a hold's json");
            assert_eq!(record.at_ms, 100);
            body["hold_id"].as_str().map(str::to_owned)
        };
        let second_id = Some(second.to_string());

        let (_db, tree, mut snapshots) = fresh();
        // The key answers with the second hold in the image and in a snapshot of it.
        let mut answers_second = |image: &mut Image, context: &str| {
            assert_eq!(answered_by(image), second_id, "{context}");
            snapshots.write(image, &mut no_sync).expect("snapshot");
            let loaded = load(&tree).expect("loads");
            assert_eq!(answered_by(&loaded), second_id, "{context}, loaded");
        };
        let mut image = replayed(&events, events.len());
        answers_second(&mut image, "replayed");

        // The first hold's retention (10) ends; the second's answer (TTL 50) has not.
        image.forget_expired(120, 10, 50);
        assert!(
            !image.holds.contains_key(&first),
            "the first hold is forgotten"
        );
        answers_second(&mut image, "after forgetting");
    }

    /// A snapshot whose write fails (here: its sync) took the image's changes with it;
    /// the next one writes everything, so nothing the failed one carried is lost.
    #[test]
    fn after_a_failed_snapshot_the_next_one_writes_everything() {
        let events = events();
        let (_db, tree, mut snapshots) = fresh();
        let mut image = replayed(&events, 6);
        snapshots
            .write(&mut image, &mut no_sync)
            .expect("first snapshot");
        for (seq, event) in (1..).zip(&events).skip(6) {
            image.apply(seq, event.clone());
        }
        let mut failing = || Err("disk full".to_string());
        assert!(snapshots.write(&mut image, &mut failing).is_err());
        assert_eq!(
            load(&tree).expect("loads").seq,
            6,
            "the failed one is not loaded"
        );
        assert_eq!(
            image.dirty.entries(),
            0,
            "its changes left the image's dirty set"
        );

        snapshots
            .write(&mut image, &mut no_sync)
            .expect("next snapshot");
        assert_eq!(snapshots.manifest.generations.len(), 1, "a merge");
        assert_same(
            &load(&tree).expect("loads"),
            &image,
            "after a failed snapshot",
        );
    }

    /// A generation missing a chunk is refused at load, not silently loaded short.
    #[test]
    fn a_generation_missing_a_chunk_is_reported_corrupt() {
        let (_db, tree, snapshots, _image) = written_once();
        let generation = snapshots.manifest.generations[0].id;
        tree.remove(chunk_key(generation, 0)).expect("removes");
        let err = load(&tree).err().expect("refused");
        assert!(matches!(err, RecoveryError::SnapshotCorrupt(_)), "{err}");
        assert!(
            err.to_string().contains("snapshot store is corrupt"),
            "{err}"
        );
    }
}
