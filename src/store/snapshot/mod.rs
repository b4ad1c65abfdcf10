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
//!
//! The parts: `format` (what a snapshot stores and its keys), `load` (reading it back at
//! start), `write` (generations, the manifest commit, syncing sled's files), `compactor`
//! (the thread that tails the journal, writes snapshots and trims the journal).

mod compactor;
mod format;
mod load;
mod write;

pub use compactor::{trim, Compactor, SnapshotSettings};
pub use load::{has_any, load};
pub use write::{write_merged, SnapshotError};

#[cfg(test)]
mod tests;
