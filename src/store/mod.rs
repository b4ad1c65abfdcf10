//! Durable storage in sled: the event types (`events`), the group-committing journal
//! writer (`journal`), the state image events build (`image`), snapshots with journal
//! trimming (`snapshot`), and recovery at start (`recovery`).

pub mod events;
pub mod image;
pub mod journal;
pub mod recovery;
pub mod snapshot;

pub use events::Event;
pub use journal::{Durability, Journal, JournalError, JournalSettings};
