//! A webhook endpoint as the admin registered it, and the event types it can ask for.

use serde::{Deserialize, Serialize};

use crate::domain::{Channel, WebhookId};
use crate::sku::mark::StockSignal;

/// What a delivery is about. `availability.changed` follows every change (coalesced per
/// SKU); the others fire when the SKU's availability, all channels together, crosses to
/// none, back from none after a sell-out, or down to its low-stock threshold.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum EventType {
    #[serde(rename = "availability.changed")]
    AvailabilityChanged,
    #[serde(rename = "sku.sold_out")]
    SoldOut,
    #[serde(rename = "sku.back_in_stock")]
    BackInStock,
    #[serde(rename = "sku.low_stock")]
    LowStock,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AvailabilityChanged => "availability.changed",
            Self::SoldOut => "sku.sold_out",
            Self::BackInStock => "sku.back_in_stock",
            Self::LowStock => "sku.low_stock",
        }
    }

    /// The type a change's crossing fires, if any.
    pub fn of_signal(signal: StockSignal) -> Self {
        match signal {
            StockSignal::SoldOut => Self::SoldOut,
            StockSignal::BackInStock => Self::BackInStock,
            StockSignal::LowStock => Self::LowStock,
        }
    }
}

/// The type of the one delivery made when an endpoint is created or replaced.
pub const PING: &str = "webhook.ping";

/// Why deliveries to an endpoint stopped; cleared by registering it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    pub reason: String,
    pub at_ms: u64,
}

/// An endpoint, as journaled (its secret with it: deliveries are signed with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: WebhookId,
    pub url: String,
    /// Deliveries show this channel's availability (as its key would see it); none: all.
    pub channel: Option<Channel>,
    pub events: Vec<EventType>,
    pub secret: String,
    pub created_at_ms: u64,
    pub disabled: Option<Disabled>,
}

impl Endpoint {
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events.contains(&event_type)
    }
}
