//! Durable storage: the event types (`events`), the journal's segment files (`segment`)
//! and the group-committing writer (`journal`) that appends to them, the reader that
//! follows it (`tail`), the state image events build (`image`), snapshots in sled with
//! journal trimming (`snapshot`), recovery at start (`recovery`), the data dir's layout and
//! format stamp (`data_dir`), and reading the sled journal of earlier builds (`legacy`).

pub mod data_dir;
pub mod events;
pub mod image;
pub mod journal;
pub mod legacy;
pub mod packing;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod tail;

pub use events::Event;
pub use journal::{Durability, Journal, JournalError, JournalSettings};
