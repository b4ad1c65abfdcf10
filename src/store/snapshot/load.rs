//! Reading a snapshot back at start: the manifest, then every generation it names, in
//! order, into an [`Image`].

use std::sync::Arc;

use super::format::*;
use crate::domain::{HoldId, IdMap};
use crate::hold::idempotency::StoredResponse;
use crate::store::image::Image;
use crate::store::packing::decode_packed;
use crate::store::recovery::RecoveryError;

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
