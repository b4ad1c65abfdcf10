//! Reading a snapshot back at start: the manifest, then every generation it names, in
//! order, into an [`Image`].

use std::sync::Arc;

use super::format::*;
use crate::domain::{HoldId, SkuId};
use crate::hold::idempotency::StoredResponse;
use crate::sku::mark::{Published, SaleWindow};
use crate::store::image::Image;
use crate::store::packing::decode_packed;
use crate::store::recovery::RecoveryError;
use std::borrow::Cow;

/// Not a journal record: the snapshot store's own corruption, named as such (it was
/// reported as "journal record 0 cannot be decoded").
pub(super) fn corrupt(what: &str, err: impl std::fmt::Display) -> RecoveryError {
    RecoveryError::SnapshotCorrupt(format!("{what}: {err}"))
}

pub(super) fn read_manifest(tree: &sled::Tree) -> Result<Manifest, RecoveryError> {
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
///
/// Entries go into the image as they are read: a hold's lines onto its SKUs, a later
/// entry for the same hold or SKU replacing the earlier one (a SKU keeps the lines its
/// holds put there). Collecting the holds first and placing them at the end kept every
/// decoded hold twice for a while: at a million holds, hundreds of megabytes of peak
/// memory that the allocator then kept.
pub fn load(tree: &sled::Tree) -> Result<Image, RecoveryError> {
    let manifest = read_manifest(tree)?;
    let mut image = Image::default();
    // Chunks are read and decoded on a thread of their own while this one puts the
    // entries in place: the two halves of loading took about the same time, one after
    // the other. The channel holds a few chunks, so memory stays that of a few chunks.
    std::thread::scope(|scope| {
        let (decoded, entries) = crossbeam_channel::bounded(DECODED_CHUNKS_MAX);
        let generations = &manifest.generations;
        scope.spawn(move || {
            if let Err(err) = decode_all(tree, generations, &decoded) {
                // The receiver stops at the first error; if it is gone, so is the load.
                let _ = decoded.send(Err(err));
            }
        });
        for chunk in entries {
            for entry in chunk? {
                apply(&mut image, entry);
            }
        }
        Ok::<(), RecoveryError>(())
    })?;
    // Read in id order, the B-trees filled by appending: their nodes half full.
    image.pack();
    for state in image.skus.values_mut() {
        state.rebuild_from_lines();
    }
    image.seq = manifest.seq;
    Ok(image)
}

/// Decoded chunks waiting to be put in place.
const DECODED_CHUNKS_MAX: usize = 8;

/// Reads and decodes every chunk of every generation, in order, checking each
/// generation's entry count, and sends each chunk's entries.
fn decode_all(
    tree: &sled::Tree,
    generations: &[Generation],
    decoded: &crossbeam_channel::Sender<Result<Vec<Entry<'static>>, RecoveryError>>,
) -> Result<(), RecoveryError> {
    for generation in generations {
        let mut entries = 0u64;
        for chunk in tree.scan_prefix(generation_prefix(generation.id)) {
            let (_, value) = chunk?;
            let chunk = decode_packed::<Entry>(&value).map_err(|e| corrupt("entry", e))?;
            entries += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            if decoded.send(Ok(chunk)).is_err() {
                return Ok(());
            }
        }
        if entries != generation.entries {
            let found = format!("generation {generation:?} has {entries} entries");
            return Err(corrupt("chunks", found));
        }
    }
    Ok(())
}

/// What a snapshot keeps beside a SKU's counters: its last mark and sale window (format 7
/// on), its named locations' stock and its recent stock moves (format 8 on).
struct Beside {
    published: Published,
    sale_window: Option<SaleWindow>,
    sites: crate::sku::sites::Sites,
    moves: Option<crate::sku::sites::Moves>,
    default_set_ms: u64,
}

impl Beside {
    /// For a SKU written by a build that kept no locations and no stock moves: those it
    /// made before are not known (see `MOVES_UNKNOWN`).
    fn before_locations(published: Published, sale_window: Option<SaleWindow>) -> Self {
        Self {
            published,
            sale_window,
            sites: Default::default(),
            moves: Some(crate::sku::sites::Moves {
                kept: Default::default(),
                complete_since_ms: crate::sku::sites::MOVES_UNKNOWN,
            }),
            default_set_ms: 0,
        }
    }
}

/// A SKU's counters replace an earlier generation's; its lines stay (they come with the
/// holds).
fn put_sku(
    image: &mut Image,
    sku: std::borrow::Cow<'static, SkuId>,
    state: std::borrow::Cow<'static, crate::sku::SkuState>,
    beside: Beside,
) {
    let mut state = state.into_owned();
    state.published = beside.published;
    state.sale_window = beside.sale_window;
    state.sites = beside.sites;
    state.moves = beside.moves.map(Box::new);
    state.default_set_ms = beside.default_set_ms;
    if let Some(earlier) = image.skus.get_mut(sku.as_ref()) {
        state.lines = std::mem::take(&mut earlier.lines);
    }
    image.skus.insert(sku.into_owned(), state);
}

/// Puts one decoded entry into the image.
fn apply(image: &mut Image, entry: Entry<'static>) {
    match entry {
        Entry::Sku(sku, state) => {
            let beside = Beside::before_locations(Published::default(), None);
            put_sku(image, sku, state, beside);
        }
        Entry::SkuMarked(sku, state, published, window) => {
            let beside = Beside::before_locations(published, window.map(Cow::into_owned));
            put_sku(image, sku, state, beside);
        }
        Entry::SkuAt(sku, state, published, window, sites, moves, default_set_ms) => {
            let beside = Beside {
                published,
                sale_window: window.map(Cow::into_owned),
                sites: sites.into_owned(),
                moves: moves.map(Cow::into_owned),
                default_set_ms,
            };
            put_sku(image, sku, state, beside);
        }
        Entry::Hold(stored) => {
            let stored = stored.upgraded();
            forget_hold(image, stored.hold.id);
            stored.restore(image);
        }
        Entry::HoldAt(stored) => {
            forget_hold(image, stored.hold.id);
            stored.restore(image);
        }
        Entry::Location(location) => {
            let location = location.into_owned();
            image.locations.insert(location.id.clone(), location);
        }
        Entry::ChannelPolicy(policy) => {
            let policy = policy.into_owned();
            image.policies.insert(policy.channel.clone(), policy);
        }
        Entry::HoldGone(id) => forget_hold(image, id),
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
            let sale: crate::sale::Sale = sale.into_owned().into();
            image.sales.insert(sale.id.clone(), sale);
        }
        Entry::SalePut(sale) => {
            let sale = sale.into_owned();
            image.sales.insert(sale.id.clone(), sale);
        }
        Entry::SaleGone(id) => {
            image.sales.remove(id.as_ref());
        }
        Entry::Webhook(endpoint, cursor) => {
            let endpoint = endpoint.into_owned();
            image
                .webhooks
                .insert(endpoint.id.clone(), (endpoint, cursor));
        }
        Entry::WebhookGone(id) => {
            image.webhooks.remove(id.as_ref());
        }
    }
}

/// Takes a hold an earlier generation wrote out of the image: the hold, its lines on its
/// SKUs, and the key that placed it.
fn forget_hold(image: &mut Image, id: HoldId) {
    let Some(hold) = image.holds.remove(&id) else {
        return;
    };
    for line in &hold.lines {
        if let Some(state) = image.skus.get_mut(&line.sku) {
            state.lines.remove(&id);
        }
    }
    image.placed_by.remove(&id);
}
