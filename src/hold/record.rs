use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::idempotency::StoredResponse;
use crate::clock::rfc3339;
use crate::domain::{Channel, CustomerId, HoldId, HoldStatus, Quantity, SkuId};

/// One line of a cart: units of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldLine {
    pub sku: SkuId,
    pub quantity: Quantity,
}

/// A hold as the book keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub id: HoldId,
    /// At least one line, no SKU twice.
    pub lines: Vec<HoldLine>,
    /// The channel whose stock the hold draws on; fixed for the hold's life.
    pub channel: Channel,
    pub customer_id: CustomerId,
    pub status: HoldStatus,
    pub created_at_ms: u64,
    /// Absolute wall-clock deadline: an unpaid hold is expired once it has passed.
    pub expires_at_ms: u64,
    /// When the status last changed.
    pub updated_at_ms: u64,
    /// Per line, the units drawn from the SKU's shared pool rather than the channel's
    /// quota, as decided when reserved, so replay reproduces the split exactly.
    pub pooled: Vec<u64>,
    /// The idempotency key that placed the hold. Not journaled (the `HoldPlaced` event
    /// carries the key beside the hold).
    #[serde(skip)]
    pub placed_by: PlacedBy,
}

/// The idempotency key (`channel/key`) that placed a hold, the same allocation the key's
/// entry uses, so the hold book can hand the key its answer before forgetting the hold.
/// A back-reference, not part of the hold's value: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct PlacedBy(pub Option<Arc<str>>);

impl PartialEq for PlacedBy {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PlacedBy {}

/// The hold as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Hold)]
pub struct HoldView<'a> {
    /// A ULID: ids sort by creation time.
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub hold_id: String,
    pub status: HoldStatus,
    /// RFC 3339, UTC: an unpaid hold expires then.
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the status last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(value_type = Vec<HoldLine>)]
    pub lines: &'a [HoldLine],
    #[schema(value_type = Channel)]
    pub channel: &'a Channel,
    #[schema(value_type = CustomerId)]
    pub customer_id: &'a CustomerId,
}

impl HoldRecord {
    pub fn view(&self) -> HoldView<'_> {
        HoldView {
            hold_id: self.id.to_string(),
            status: self.status,
            expires_at: rfc3339(self.expires_at_ms),
            created_at: rfc3339(self.created_at_ms),
            updated_at: rfc3339(self.updated_at_ms),
            lines: &self.lines,
            channel: &self.channel,
            customer_id: &self.customer_id,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        json(&self.view())
    }

    /// The hold as it was when placed, as JSON: what its idempotency key answers forever
    /// after, rendered without copying the hold.
    pub fn placed_json(&self) -> Vec<u8> {
        json(&HoldView {
            status: HoldStatus::Held,
            updated_at: rfc3339(self.created_at_ms),
            ..self.view()
        })
    }

    /// The answer that placed the hold, for a key that must keep it once the hold is gone.
    pub fn placed_response(&self) -> StoredResponse {
        StoredResponse {
            status: 201,
            body: Arc::from(self.placed_json()),
        }
    }
}

fn json(view: &HoldView<'_>) -> Vec<u8> {
    // A view of plain strings and integers always serializes.
    serde_json::to_vec(view).unwrap_or_default()
}
