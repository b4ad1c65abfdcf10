//! Durable storage in sled: the event types (`events`) and the group-committing journal
//! writer (`journal`).

pub mod events;
pub mod journal;
pub mod recovery;

pub use events::Event;
pub use journal::{Durability, Journal, JournalError, JournalSettings};
