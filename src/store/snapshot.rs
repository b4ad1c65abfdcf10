//! Snapshots and journal trimming. The compactor thread tails the journal into an
//! [`Image`]; every `every_events` events or `every_s` seconds it writes what changed into
//! the snapshot tree and then deletes the journal up to the sequence the snapshot covers.
//! Recovery loads the snapshot and replays only the journal after it.
//!
//! A hold is stored with the state of its line on each SKU, so a SKU's open lines (up to a
//! million on a hot SKU) are never written as one value: a snapshot writes only the holds
//! that changed. Holds and idempotency answers are written first, one key each, in small
//! chunks with pauses so a snapshot never takes a core for long. That is safe because
//! replaying their events over a newer value ends at the same value (a line change its
//! line already shows changes nothing, see `SkuState::apply`), and the SKU counters that
//! lines determine are recomputed from the lines on load. The other SKU counters are not
//! like that (a replayed adjustment would count twice), so every changed SKU's counters
//! are written in one atomic batch with the covered sequence number, last, together with
//! the holds that had a line fulfilled, whose replay lowers `on_hand`.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::image::{Answer, Dirty, Image};
use super::journal::{decode_record, decode_seq, encode_seq};
use super::recovery::RecoveryError;
use crate::clock::now_ms;
use crate::domain::HoldId;
use crate::domain::SkuId;
use crate::hold::idempotency::{IdempotencyRecord, StoredResponse};
use crate::hold::HoldRecord;
use crate::metrics as m;
use crate::sku::state::Line;
use crate::sku::SkuState;

const META_SEQ: &[u8] = b"m:seq";
const SKU_PREFIX: u8 = b's';
const HOLD_PREFIX: u8 = b'h';
const ANSWER_PREFIX: u8 = b'i';
const SALE_PREFIX: u8 = b'a';
/// Journal records (batches) read per pass, so one pass's memory is bounded.
const READ_PER_PASS_MAX: usize = 5_000;
/// Journal records deleted per batch while trimming.
const TRIM_BATCH_MAX: usize = 1_000;
/// Hold and answer keys written per chunk, and the pause between chunks.
const CHUNK_KEYS_MAX: usize = 1_000;
const CHUNK_PAUSE: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// sled's directory, synced before the journal is trimmed when durability is fsync
    /// (None otherwise).
    pub fsync_dir: Option<PathBuf>,
    /// Write a snapshot once this many events arrived since the last one.
    pub every_events: u64,
    /// ... or once this much time passed with at least one new event.
    pub every_s: u64,
    pub hold_retention_ms: u64,
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
/// idempotency record that placed it while that answer is remembered. One key per hold.
#[derive(Serialize, Deserialize)]
struct StoredHold {
    hold: HoldRecord,
    lines: Vec<LineMark>,
    placed_by: Option<IdempotencyRecord>,
}

impl StoredHold {
    fn of(hold: &HoldRecord, image: &Image) -> Self {
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
            hold: hold.clone(),
            lines,
            placed_by: image.placed_answer(&hold.id).cloned(),
        }
    }

    /// Puts the hold, its answer and its open lines back.
    fn restore(self, image: &mut Image) {
        self.restore_lines(image);
        if let Some(record) = self.placed_by {
            let scope_key = record.scope_key.clone();
            image.placed_by.insert(self.hold.id, scope_key.clone());
            image
                .answers
                .insert(scope_key, (record, Answer::Placed(self.hold.id)));
        }
        image.holds.insert(self.hold.id, self.hold);
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

/// A refusal remembered under its idempotency key: the record, status and body.
#[derive(Serialize, Deserialize)]
struct StoredAnswer(IdempotencyRecord, u16, Vec<u8>);

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

fn hold_key(hold: &HoldId) -> Vec<u8> {
    key(HOLD_PREFIX, &postcard::to_stdvec(hold).unwrap_or_default())
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> RecoveryError {
    RecoveryError::Corrupt {
        seq: 0,
        reason: format!("snapshot {what}: {err}"),
    }
}

/// The image as of the last snapshot (empty if none was written).
pub fn load(tree: &sled::Tree) -> Result<Image, RecoveryError> {
    let mut image = Image::default();
    // Lines go back once the SKU counters (stored after the holds in key order) are in.
    let mut holds: Vec<StoredHold> = Vec::new();
    for entry in tree.iter() {
        let (key, value) = entry?;
        match key.first() {
            Some(&SKU_PREFIX) => {
                let name = std::str::from_utf8(&key[1..]).map_err(|e| corrupt("sku key", e))?;
                let sku = SkuId::parse(name).map_err(|e| corrupt("sku key", e))?;
                let state: SkuState =
                    postcard::from_bytes(&value).map_err(|e| corrupt("sku", e))?;
                image.skus.insert(sku, state);
            }
            Some(&HOLD_PREFIX) => {
                let stored: StoredHold =
                    postcard::from_bytes(&value).map_err(|e| corrupt("hold", e))?;
                holds.push(stored);
            }
            Some(&ANSWER_PREFIX) => {
                let stored: StoredAnswer =
                    postcard::from_bytes(&value).map_err(|e| corrupt("answer", e))?;
                let StoredAnswer(record, status, body) = stored;
                let body = Arc::from(body);
                let answer = Answer::Stored(StoredResponse { status, body });
                image
                    .answers
                    .insert(record.scope_key.clone(), (record, answer));
            }
            Some(&SALE_PREFIX) => {
                let sale: crate::sale::Sale =
                    postcard::from_bytes(&value).map_err(|e| corrupt("sale", e))?;
                image.sales.insert(sale.id.clone(), sale);
            }
            _ if &key[..] == META_SEQ => image.seq = decode_seq(&value),
            _ => return Err(corrupt("key", format!("unknown key {key:?}"))),
        }
    }
    for stored in holds {
        stored.restore(&mut image);
    }
    for state in image.skus.values_mut() {
        state.rebuild_from_lines();
    }
    Ok(image)
}

/// Applies up to `limit` journal records after the image's sequence; returns the events
/// applied.
pub fn replay_tail(
    journal: &sled::Tree,
    image: &mut Image,
    limit: usize,
) -> Result<usize, RecoveryError> {
    let mut applied = 0;
    for entry in journal
        .range(encode_seq(image.seq.saturating_add(1))..)
        .take(limit)
    {
        let (key, value) = entry?;
        let events = decode_record(&key, &value).map_err(|err| RecoveryError::Corrupt {
            seq: decode_seq(&key),
            reason: err.to_string(),
        })?;
        for (seq, event) in events {
            image.apply(seq, event);
            applied += 1;
        }
    }
    Ok(applied)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| e.to_string())
}

/// Writes what changed in the image since the last snapshot and makes it durable: holds
/// and answers in chunks, then the SKU states with the covered sequence atomically.
fn write(db: &sled::Db, tree: &sled::Tree, image: &mut Image) -> Result<(), String> {
    let dirty = std::mem::take(&mut image.dirty);
    write_chunks(tree, image, &dirty)?;
    write_counters(tree, image, &dirty)?;
    db.flush().map(drop).map_err(|e| e.to_string())
}

/// Writes a hold as it now stands (with its lines and answer) into `batch`, or deletes it
/// if the image forgot it.
fn put_hold(batch: &mut sled::Batch, image: &Image, id: &HoldId) -> Result<(), String> {
    match image.holds.get(id) {
        Some(hold) => batch.insert(hold_key(id), encode(&StoredHold::of(hold, image))?),
        None => batch.remove(hold_key(id)),
    }
    Ok(())
}

/// The first phase: holds (with their lines), answers and sales, in chunks. Not atomic as
/// a whole.
fn write_chunks(tree: &sled::Tree, image: &Image, dirty: &Dirty) -> Result<(), String> {
    let mut chunk = sled::Batch::default();
    let mut in_chunk = 0;
    let flush_chunk = |chunk: &mut sled::Batch, in_chunk: &mut usize| -> Result<(), String> {
        tree.apply_batch(std::mem::take(chunk))
            .map_err(|e| e.to_string())?;
        *in_chunk = 0;
        std::thread::sleep(CHUNK_PAUSE);
        Ok(())
    };
    for id in dirty.holds.difference(&dirty.fulfilled) {
        put_hold(&mut chunk, image, id)?;
        in_chunk += 1;
        if in_chunk >= CHUNK_KEYS_MAX {
            flush_chunk(&mut chunk, &mut in_chunk)?;
        }
    }
    for scope_key in &dirty.answers {
        let answer_key = key(ANSWER_PREFIX, scope_key.as_bytes());
        match image.answers.get(scope_key) {
            Some((record, Answer::Stored(response))) => {
                let stored = StoredAnswer(record.clone(), response.status, response.body.to_vec());
                chunk.insert(answer_key, encode(&stored)?);
            }
            // A placed answer is stored with its hold (a key reused after its refusal
            // expired can have moved there).
            Some((_, Answer::Placed(_))) | None => chunk.remove(answer_key),
        }
        in_chunk += 1;
        if in_chunk >= CHUNK_KEYS_MAX {
            flush_chunk(&mut chunk, &mut in_chunk)?;
        }
    }
    for id in &dirty.sales {
        if let Some(sale) = image.sales.get(id) {
            chunk.insert(key(SALE_PREFIX, id.as_str().as_bytes()), encode(sale)?);
        }
    }
    tree.apply_batch(chunk).map_err(|e| e.to_string())
}

/// The second phase, one atomic batch: SKU counters, holds with a line fulfilled since the
/// last snapshot, and the sequence number the snapshot now covers.
fn write_counters(tree: &sled::Tree, image: &Image, dirty: &Dirty) -> Result<(), String> {
    let mut counters = sled::Batch::default();
    for id in &dirty.fulfilled {
        put_hold(&mut counters, image, id)?;
    }
    for sku in &dirty.skus {
        if let Some(state) = image.skus.get(sku) {
            counters.insert(key(SKU_PREFIX, sku.as_str().as_bytes()), encode(state)?);
        }
    }
    counters.insert(META_SEQ, &encode_seq(image.seq));
    tree.apply_batch(counters).map_err(|e| e.to_string())
}

/// Deletes journal records whose last event is at or before `seq`; they are in the
/// snapshot. A record straddling `seq` stays; replay skips its covered events.
fn trim(journal: &sled::Tree, seq: u64) -> Result<usize, String> {
    let mut trimmed = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut keys = 0;
        for entry in journal
            .range(..=encode_seq(seq))
            .keys()
            .take(TRIM_BATCH_MAX)
        {
            batch.remove(entry.map_err(|e| e.to_string())?);
            keys += 1;
        }
        if keys == 0 {
            return Ok(trimmed);
        }
        journal.apply_batch(batch).map_err(|e| e.to_string())?;
        trimmed += keys;
        std::thread::sleep(CHUNK_PAUSE);
    }
}

/// Makes a snapshot survive power loss before the journal under it is deleted: sled's
/// flush does not reach the drive, and sled 0.34 writes large values (a hot SKU's lines)
/// to blob files it never syncs. Blob files never change once written, so each is synced
/// once.
struct DirSync {
    dir: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl DirSync {
    fn sync(&mut self) -> std::io::Result<()> {
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

/// The running compactor; `stop` writes a last snapshot and ends the thread.
pub struct Compactor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    pub fn start(
        db: sled::Db,
        journal: sled::Tree,
        snapshots: sled::Tree,
        image: Image,
        settings: SnapshotSettings,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("snapshot-compactor".into())
            .spawn(move || run(&db, &journal, &snapshots, image, &settings, &stopping))?;
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

/// Niceness of the compactor thread: it yields to request threads when the cores are
/// busy (a sale) and catches up when they are not. Measured here: about 10% more holds/s
/// under saturation, with the journal still trimmed.
const COMPACTOR_NICE: libc::c_int = 10;

fn lower_priority() {
    // SAFETY: gettid and setpriority take and return plain integers; on Linux a thread id
    // names one thread for PRIO_PROCESS, so this changes only the compactor thread.
    let changed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(
            libc::PRIO_PROCESS,
            u32::try_from(tid).unwrap_or(0),
            COMPACTOR_NICE,
        )
    };
    if changed != 0 {
        tracing::debug!("Could not lower the compactor's priority; it runs at normal priority.");
    }
}

fn run(
    db: &sled::Db,
    journal: &sled::Tree,
    snapshots: &sled::Tree,
    mut image: Image,
    settings: &SnapshotSettings,
    stop: &AtomicBool,
) {
    lower_priority();
    let mut since_snapshot = 0u64;
    let mut last_snapshot = Instant::now();
    let mut dir_sync = settings.fsync_dir.clone().map(|dir| DirSync {
        dir,
        synced_blobs: HashSet::new(),
    });
    loop {
        let stopping = stop.load(Ordering::Acquire);
        match replay_tail(journal, &mut image, READ_PER_PASS_MAX) {
            Ok(applied) => since_snapshot += u64::try_from(applied).unwrap_or(u64::MAX),
            Err(err) => {
                tracing::error!(%err, "Compactor cannot read the journal; snapshots stop.");
                return;
            }
        }
        let due = since_snapshot >= settings.every_events
            || (since_snapshot > 0
                && last_snapshot.elapsed() >= Duration::from_secs(settings.every_s));
        if due || stopping {
            let started = Instant::now();
            image.forget_expired(now_ms(), settings.hold_retention_ms, settings.answer_ttl_ms);
            let written = write(db, snapshots, &mut image)
                .and_then(|()| match dir_sync.as_mut() {
                    Some(dir_sync) => dir_sync.sync().map_err(|e| e.to_string()),
                    None => Ok(()),
                })
                .and_then(|()| trim(journal, image.seq));
            match written {
                Ok(trimmed) => {
                    m::snapshot(started.elapsed(), journal.len());
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
    fn answers(image: &Image) -> BTreeMap<String, Option<StoredResponse>> {
        image
            .answers
            .iter()
            .map(|(key, (_, answer))| (key.clone(), image.response(answer)))
            .collect()
    }

    fn journal_of(db: &sled::Db, events: &[Event]) -> sled::Tree {
        let journal = db.open_tree("journal").expect("journal tree");
        for (seq, event) in (1..).zip(events) {
            let value = postcard::to_stdvec(event).expect("encodes");
            journal.insert(encode_seq(seq), value).expect("insert");
        }
        journal
    }

    fn replayed(events: &[Event], upto: usize) -> Image {
        let mut image = Image::default();
        for (seq, event) in (1..).zip(&events[..upto]) {
            image.apply(seq, event.clone());
        }
        image
    }

    /// The snapshot stores lines with their holds, before the counters and without an
    /// atomic batch around them. Cut a snapshot short at every point of interest (only its first
    /// phase written) and recovery must still reach exactly the state of a plain replay.
    #[test]
    fn a_snapshot_cut_short_after_its_lines_recovers_the_same_state() {
        let events = events();
        for (first, second) in [(6, 14), (6, 18), (3, 10), (0, 18)] {
            let db = sled::Config::new().temporary(true).open().expect("sled");
            let journal = journal_of(&db, &events);
            let snapshots = db.open_tree("snapshots").expect("snapshot tree");
            let mut image = replayed(&events, first);
            write(&db, &snapshots, &mut image).expect("first snapshot");
            for (seq, event) in (1..).zip(&events).take(second).skip(first) {
                image.apply(seq, event.clone());
            }
            let dirty = std::mem::take(&mut image.dirty);
            write_chunks(&snapshots, &image, &dirty).expect("first phase");

            let mut recovered = load(&snapshots).expect("loads");
            assert_eq!(recovered.seq, u64::try_from(first).expect("seq"));
            replay_tail(&journal, &mut recovered, usize::MAX).expect("replays");
            let expected = replayed(&events, events.len());
            assert_eq!(
                recovered.skus, expected.skus,
                "snapshot at {first}, cut short at {second}"
            );
            assert_eq!(recovered.holds, expected.holds);
            assert_eq!(answers(&recovered), answers(&expected));
        }
    }

    /// A complete snapshot loads back to the state it was written from, lines, per-customer
    /// units and channel entries included.
    #[test]
    fn a_complete_snapshot_loads_back_exactly() {
        let events = events();
        for upto in [6, 14, events.len()] {
            let db = sled::Config::new().temporary(true).open().expect("sled");
            let snapshots = db.open_tree("snapshots").expect("snapshot tree");
            let mut image = replayed(&events, upto);
            write(&db, &snapshots, &mut image).expect("snapshot");
            let loaded = load(&snapshots).expect("loads");
            assert_eq!(loaded.skus, image.skus, "snapshot after {upto} events");
            assert_eq!(loaded.holds, image.holds, "snapshot after {upto} events");
            assert_eq!(answers(&loaded), answers(&image));
            assert!(!answers(&loaded).is_empty());
        }
    }

    /// Answers past their time are gone from the next snapshot, while their holds stay.
    #[test]
    fn expired_answers_leave_the_snapshot_and_their_holds_stay() {
        let events = events();
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let snapshots = db.open_tree("snapshots").expect("snapshot tree");
        let mut image = replayed(&events, events.len());
        write(&db, &snapshots, &mut image).expect("snapshot");
        image.forget_expired(10, u64::MAX / 2, 5);
        assert!(image.answers.is_empty());
        write(&db, &snapshots, &mut image).expect("second snapshot");
        let loaded = load(&snapshots).expect("loads");
        assert!(answers(&loaded).is_empty(), "{:?}", answers(&loaded));
        assert_eq!(loaded.holds.len(), 6);
    }
}
