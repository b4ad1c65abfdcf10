//! Availability broadcast: every durable stock change, as an event channels can follow.
//! The SKU actors make a mark with each change and the journal writes it in the same
//! record (`sku::mark`); once a batch is durable the writer publishes its marks to the
//! [`hub::Hub`], a bounded ring every reader shares. `event` renders an event for one
//! reader (all channels for the admin key, its own for a channel key); `http::stream`
//! serves it as Server-Sent Events and as the change feed.

pub mod event;
pub mod hub;

pub use hub::{Hub, Read, StockEvent};
