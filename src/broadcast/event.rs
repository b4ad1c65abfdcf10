//! An availability event as a reader sees it: `{"seq", "sku", "version", "available",
//! "channels", "state", "at"}`. The admin key sees every channel with a quota or units in
//! play, and `"pool"` (what any other channel can take); a channel key sees its own
//! channel's availability as `available`, and only its own channel.

use std::collections::BTreeMap;

use serde::Serialize;

use super::hub::StockEvent;
use crate::domain::Channel;
use crate::sku::mark::StockLevel;
use crate::sku::state::POOL;

/// Who reads an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The admin key (or a server without keys): all channels.
    All,
    Channel(Channel),
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(example = json!({"seq": 3072, "sku": "TSHIRT", "version": 7, "available": 12,
    "channels": {"web": 12, "pool": 8}, "state": "in_stock", "at": "2026-11-27T09:00:00.120Z"}))]
pub struct AvailabilityEvent<'a> {
    /// Cursor: where the change is in the journal. Rises with every event, not by one;
    /// pass it as `since` (or `Last-Event-ID`) to read what came after.
    pub seq: u64,
    #[schema(value_type = String)]
    pub sku: &'a str,
    /// Rises with every change of the SKU and survives restarts: keep the highest per SKU
    /// and ignore anything older.
    pub version: u64,
    /// Units the reader's channel can take (all channels, for the admin key).
    pub available: u64,
    /// Units per channel (the admin key: each channel with a quota or units in play, and
    /// `pool`; a channel key: its own).
    pub channels: BTreeMap<&'a str, u64>,
    pub state: StockLevel,
    /// When the change was made (RFC 3339, UTC).
    pub at: String,
    /// The flash sale the SKU is on: outside its window it cannot be held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale: Option<SaleWindowView<'a>>,
}

/// A SKU's sale and whether its window is open now.
#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SaleWindowView<'a> {
    #[schema(value_type = String)]
    pub sale_id: &'a str,
    pub open: bool,
}

impl<'a> AvailabilityEvent<'a> {
    pub fn of(event: &'a StockEvent, audience: &'a Audience) -> Self {
        let mark = &event.mark;
        let (available, channels) = match audience {
            Audience::All => {
                let mut channels: BTreeMap<&str, u64> = mark
                    .channels
                    .iter()
                    .map(|(channel, units)| (channel.as_str(), *units))
                    .collect();
                channels.insert(POOL, mark.pool);
                (mark.available, channels)
            }
            Audience::Channel(channel) => {
                let units = mark.channel_available(channel);
                (units, BTreeMap::from([(channel.as_str(), units)]))
            }
        };
        Self {
            seq: event.seq,
            sku: event.sku.as_str(),
            version: mark.version,
            available,
            channels,
            state: StockLevel::of(available, mark.low_stock_threshold),
            at: crate::clock::rfc3339(mark.at_ms),
            sale: mark.sale.as_ref().map(|window| SaleWindowView {
                sale_id: window.sale.as_str(),
                open: window.open,
            }),
        }
    }
}
