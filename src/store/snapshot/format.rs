//! What a snapshot stores: its entries (a SKU, a hold with its lines' state, a kept
//! answer, a sale, or a tombstone), the manifest that names its generations, and the keys
//! chunks are stored under.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::domain::{HoldId, SaleId, SkuId, WebhookId};
use crate::hold::idempotency::IdempotencyRecord;
use crate::hold::record::HoldRecordV7;
use crate::hold::HoldRecord;
use crate::location::{ChannelPolicy, Location};
use crate::sale::{Sale, SaleV7};
use crate::sku::mark::{Published, SaleWindow};
use crate::sku::sites::{Moves, Sites};
use crate::sku::state::Line;
use crate::sku::SkuState;
use crate::store::image::Image;
use crate::webhook::Endpoint;

pub(super) const MANIFEST: &[u8] = b"m:manifest.v6";
/// The manifest of earlier builds, without a counter: read once, replaced at the next commit.
pub(super) const LEGACY_MANIFEST: &[u8] = b"m:manifest";
pub(super) const CHUNK_PREFIX: u8 = b'g';
/// Largest chunk, in bytes. sled 0.34 writes any value over a quarter segment (128 KiB)
/// to a blob file of its own; small chunks keep a snapshot in its data file, and the
/// compactor's sync covers blob files anyway.
pub(super) const CHUNK_BYTES_MAX: usize = 6 * 1024;
/// Journal records (batches) read per pass, so one pass's memory is bounded.
pub(super) const READ_PER_PASS_MAX: usize = 5_000;
/// A merge is due once the stored entries exceed this many times the live ones.
pub(super) const STORED_PER_LIVE_MAX: u64 = 2;
/// ... or once the snapshot has this many generations, which bounds the manifest.
pub(super) const GENERATIONS_MAX: usize = 64;

/// Where a hold's line stands on its SKU as of the snapshot.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum LineMark {
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
pub(super) struct StoredHold<'a> {
    pub(super) hold: Cow<'a, HoldRecord>,
    pub(super) lines: Vec<LineMark>,
    pub(super) placed_by: Option<Cow<'a, IdempotencyRecord>>,
}

impl<'a> StoredHold<'a> {
    pub(super) fn of(hold: &'a HoldRecord, image: &'a Image) -> Self {
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
    pub(super) fn restore(mut self, image: &mut Image) {
        image.intern(self.hold.to_mut());
        self.restore_lines(image);
        let hold = self.hold.into_owned();
        if let Some(record) = self.placed_by {
            image.placed_by.insert(hold.id, record.into_owned());
        }
        image.holds.insert(hold.id, hold);
    }

    pub(super) fn restore_lines(&self, image: &mut Image) {
        let hold = &self.hold;
        let shipped = &hold.shipped_from;
        for (line, mark) in hold.lines.iter().zip(&self.lines) {
            let committed = match mark {
                LineMark::Held => false,
                LineMark::Committed => true,
                LineMark::Gone => continue,
            };
            let restored = Line {
                quantity: line.quantity,
                channel: hold.channel.clone(),
                committed,
                pooled: line.pooled,
                customer: hold.customer_id.clone(),
                placement: line.placement.clone(),
            };
            // A partly shipped hold: the SKU carries what is left of the line.
            let restored = match restored.ship(shipped) {
                Some((Some(rest), _)) => rest,
                Some((None, _)) => continue,
                None => restored,
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

/// A hold as builds before format 8 stored it.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredHoldV7 {
    hold: HoldRecordV7,
    lines: Vec<LineMark>,
    placed_by: Option<IdempotencyRecord>,
}

impl StoredHoldV7 {
    pub(super) fn upgraded(self) -> StoredHold<'static> {
        StoredHold {
            hold: Cow::Owned(self.hold.0),
            lines: self.lines,
            placed_by: self.placed_by.map(Cow::Owned),
        }
    }
}

/// One thing a generation says; a later generation's entry for the same key wins.
/// Borrowed from the image when written: cloning a hot SKU's state to encode its
/// counters copied every one of its open lines.
#[derive(Serialize, Deserialize)]
pub(super) enum Entry<'a> {
    /// A SKU's counters; its lines come back from the holds.
    Sku(Cow<'a, SkuId>, Cow<'a, SkuState>),
    /// A hold as builds before format 8 stored it, without placements.
    Hold(StoredHoldV7),
    /// The hold was forgotten.
    HoldGone(HoldId),
    /// A refusal remembered under its idempotency key: the record, status and body. (A
    /// placed answer is stored with its hold.)
    Answer(Cow<'a, IdempotencyRecord>, u16, Cow<'a, [u8]>),
    /// The key no longer answers with a stored refusal.
    AnswerGone(Cow<'a, str>),
    /// A sale as builds before format 8 stored it.
    Sale(Cow<'a, SaleV7>),
    /// A SKU's counters and its last availability mark (format 7 on; `Sku` before).
    SkuMarked(
        Cow<'a, SkuId>,
        Cow<'a, SkuState>,
        Published,
        Option<Cow<'a, SaleWindow>>,
    ),
    /// A webhook endpoint and the cursor it was delivered up to.
    Webhook(Cow<'a, Endpoint>, u64),
    WebhookGone(Cow<'a, WebhookId>),
    SalePut(Cow<'a, Sale>),
    SaleGone(Cow<'a, SaleId>),
    /// A hold with its lines' placements.
    HoldAt(StoredHold<'a>),
    /// A SKU's counters, last mark and sale window, and its stock at named locations.
    SkuAt(
        Cow<'a, SkuId>,
        Cow<'a, SkuState>,
        Published,
        Option<Cow<'a, SaleWindow>>,
        Cow<'a, Sites>,
        Option<Cow<'a, Moves>>,
        u64,
    ),
    Location(Cow<'a, Location>),
    ChannelPolicy(Cow<'a, ChannelPolicy>),
}

impl<'a> Entry<'a> {
    pub(super) fn sku(sku: &'a SkuId, state: &'a SkuState) -> Self {
        Self::SkuAt(
            Cow::Borrowed(sku),
            Cow::Borrowed(state),
            state.published,
            state.sale_window.as_ref().map(Cow::Borrowed),
            Cow::Borrowed(&state.sites),
            state.moves.as_deref().map(Cow::Borrowed),
            state.default_set_ms,
        )
    }
}

/// What the snapshot consists of, written as one key: the sequence it covers, the id the
/// next generation gets, and its generations, oldest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(super) struct Manifest {
    pub(super) seq: u64,
    pub(super) next_generation: u64,
    pub(super) generations: Vec<Generation>,
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
pub(super) struct LegacyManifest {
    pub(super) seq: u64,
    pub(super) generations: Vec<Generation>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Generation {
    pub(super) id: u64,
    /// Entries written in it, to decide when to merge.
    pub(super) entries: u64,
}

impl Manifest {
    pub(super) fn stored_entries(&self) -> u64 {
        self.generations.iter().map(|g| g.entries).sum()
    }
}

pub(super) fn chunk_key(generation: u64, index: u32) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[..9].copy_from_slice(&generation_prefix(generation));
    key[9..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(super) fn generation_prefix(generation: u64) -> [u8; 9] {
    let mut prefix = [0u8; 9];
    prefix[0] = CHUNK_PREFIX;
    prefix[1..].copy_from_slice(&generation.to_be_bytes());
    prefix
}

pub(super) fn generation_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}
