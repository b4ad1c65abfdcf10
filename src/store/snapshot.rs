//! Snapshots and journal trimming. The compactor thread tails the journal into an
//! [`Image`]; every `every_events` events or `every_s` seconds it writes what changed
//! (each SKU's state, each hold, each idempotency answer) into the snapshot tree, tagged
//! with the journal sequence it covers, in one atomic batch; then it deletes the journal
//! up to that sequence. Recovery loads the snapshot and replays only the journal after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::image::Image;
use super::journal::{decode_seq, encode_seq};
use super::recovery::RecoveryError;
use super::Event;
use crate::clock::now_ms;
use crate::domain::SkuId;
use crate::hold::idempotency::{IdempotencyRecord, StoredResponse};
use crate::hold::HoldRecord;
use crate::metrics as m;
use crate::sku::SkuState;

const META_SEQ: &[u8] = b"m:seq";
const SKU_PREFIX: u8 = b's';
const HOLD_PREFIX: u8 = b'h';
const ANSWER_PREFIX: u8 = b'i';
/// Journal entries read per pass, so one pass's memory is bounded.
const READ_PER_PASS_MAX: usize = 50_000;
/// Journal keys deleted per batch while trimming.
const TRIM_BATCH_MAX: usize = 10_000;

#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// Write a snapshot once this many events arrived since the last one.
    pub every_events: u64,
    /// ... or once this much time passed with at least one new event.
    pub every_s: u64,
    pub hold_retention_ms: u64,
    pub answer_ttl_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredAnswer {
    record: IdempotencyRecord,
    status: u16,
    body: Vec<u8>,
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

fn hold_key(hold: &crate::domain::HoldId) -> Vec<u8> {
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
                let hold: HoldRecord =
                    postcard::from_bytes(&value).map_err(|e| corrupt("hold", e))?;
                image.holds.insert(hold.id, hold);
            }
            Some(&ANSWER_PREFIX) => {
                let stored: StoredAnswer =
                    postcard::from_bytes(&value).map_err(|e| corrupt("answer", e))?;
                let answer = StoredResponse {
                    status: stored.status,
                    body: Arc::from(stored.body),
                };
                image
                    .answers
                    .insert(stored.record.scope_key.clone(), (stored.record, answer));
            }
            _ if &key[..] == META_SEQ => image.seq = decode_seq(&value),
            _ => return Err(corrupt("key", format!("unknown key {key:?}"))),
        }
    }
    Ok(image)
}

/// Applies the journal after the image's sequence.
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
        let seq = decode_seq(&key);
        let event: Event = postcard::from_bytes(&value).map_err(|err| RecoveryError::Corrupt {
            seq,
            reason: err.to_string(),
        })?;
        image.apply(seq, event);
        applied += 1;
    }
    Ok(applied)
}

/// Writes what changed in the image since the last snapshot, atomically with the new
/// sequence tag, and makes it durable.
fn write(db: &sled::Db, tree: &sled::Tree, image: &mut Image) -> Result<(), String> {
    let mut batch = sled::Batch::default();
    let dirty = std::mem::take(&mut image.dirty);
    for sku in &dirty.skus {
        if let Some(state) = image.skus.get(sku) {
            let value = postcard::to_stdvec(state).map_err(|e| e.to_string())?;
            batch.insert(key(SKU_PREFIX, sku.as_str().as_bytes()), value);
        }
    }
    for id in &dirty.holds {
        match image.holds.get(id) {
            Some(hold) => batch.insert(
                hold_key(id),
                postcard::to_stdvec(hold).map_err(|e| e.to_string())?,
            ),
            None => batch.remove(hold_key(id)),
        }
    }
    for scope_key in &dirty.answers {
        let answer_key = key(ANSWER_PREFIX, scope_key.as_bytes());
        match image.answers.get(scope_key) {
            Some((record, answer)) => {
                let stored = StoredAnswer {
                    record: record.clone(),
                    status: answer.status,
                    body: answer.body.to_vec(),
                };
                batch.insert(
                    answer_key,
                    postcard::to_stdvec(&stored).map_err(|e| e.to_string())?,
                );
            }
            None => batch.remove(answer_key),
        }
    }
    batch.insert(META_SEQ, &encode_seq(image.seq));
    tree.apply_batch(batch).map_err(|e| e.to_string())?;
    db.flush().map(drop).map_err(|e| e.to_string())
}

/// Deletes journal entries up to and including `seq`; they are in the snapshot.
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

fn run(
    db: &sled::Db,
    journal: &sled::Tree,
    snapshots: &sled::Tree,
    mut image: Image,
    settings: &SnapshotSettings,
    stop: &AtomicBool,
) {
    let mut since_snapshot = 0u64;
    let mut last_snapshot = Instant::now();
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
            let written = write(db, snapshots, &mut image).and_then(|()| trim(journal, image.seq));
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
