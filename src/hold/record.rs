use std::sync::Arc;

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use super::idempotency::StoredResponse;
use crate::clock::rfc3339;
use crate::domain::{Channel, CustomerId, HoldId, HoldStatus, LocationId, Quantity, SkuId};
use crate::sku::sites::{Allocation, Placement};

/// One line of a cart: units of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldLine {
    pub sku: SkuId,
    pub quantity: Quantity,
}

/// One line of a hold as the book keeps it: what the cart asked for, and how the SKU
/// actor reserved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedLine {
    pub sku: SkuId,
    pub quantity: Quantity,
    /// Units drawn from the SKU's shared pool rather than the channel's quota, as decided
    /// when reserved, so replay reproduces the split exactly.
    pub pooled: u64,
    /// The locations the units were taken at.
    pub placement: Placement,
}

/// A hold as the book keeps it.
///
/// Journaled and snapshotted as it always was: the lines (`sku`, `quantity`) and, after
/// the times, the pooled units of each line in a list of their own, then (from format 8)
/// each line's placement in another. In memory each line carries its own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "StoredRecord")]
pub struct HoldRecord {
    pub id: HoldId,
    /// At least one line, no SKU twice.
    pub lines: Vec<ReservedLine>,
    /// The channel whose stock the hold draws on; fixed for the hold's life.
    pub channel: Channel,
    pub customer_id: CustomerId,
    pub status: HoldStatus,
    pub created_at_ms: u64,
    /// Absolute wall-clock deadline: an unpaid hold is expired once it has passed.
    pub expires_at_ms: u64,
    /// When the status last changed.
    pub updated_at_ms: u64,
    /// Locations whose part of a confirmed hold has shipped (a partial fulfilment);
    /// empty for most holds, which cost nothing for it.
    pub shipped_from: ShippedFrom,
    /// The idempotency key that placed the hold. Not journaled (the `HoldPlaced` event
    /// carries the key beside the hold).
    pub placed_by: PlacedBy,
}

/// The stored shape of a hold, field for field, for reading it back.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StoredRecord {
    id: HoldId,
    lines: Vec<HoldLine>,
    channel: Channel,
    customer_id: CustomerId,
    status: HoldStatus,
    created_at_ms: u64,
    expires_at_ms: u64,
    updated_at_ms: u64,
    pooled: Vec<u64>,
    placements: Vec<Placement>,
    shipped_from: ShippedFrom,
}

/// A hold as builds before format 8 journaled and snapshotted it: without placements
/// (its lines were all at the default location).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "StoredRecordV7")]
pub struct HoldRecordV7(pub HoldRecord);

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StoredRecordV7 {
    id: HoldId,
    lines: Vec<HoldLine>,
    channel: Channel,
    customer_id: CustomerId,
    status: HoldStatus,
    created_at_ms: u64,
    expires_at_ms: u64,
    updated_at_ms: u64,
    pooled: Vec<u64>,
}

impl From<StoredRecordV7> for HoldRecordV7 {
    fn from(old: StoredRecordV7) -> Self {
        Self(HoldRecord::from(StoredRecord {
            placements: Vec::new(),
            shipped_from: Default::default(),
            id: old.id,
            lines: old.lines,
            channel: old.channel,
            customer_id: old.customer_id,
            status: old.status,
            created_at_ms: old.created_at_ms,
            expires_at_ms: old.expires_at_ms,
            updated_at_ms: old.updated_at_ms,
            pooled: old.pooled,
        }))
    }
}

/// Written in the old shape, for tests that write what an earlier build wrote.
impl Serialize for HoldRecordV7 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hold = &self.0;
        let mut record = serializer.serialize_struct("HoldRecord", 9)?;
        record.serialize_field("id", &hold.id)?;
        record.serialize_field("lines", &StoredLines(&hold.lines))?;
        record.serialize_field("channel", &hold.channel)?;
        record.serialize_field("customer_id", &hold.customer_id)?;
        record.serialize_field("status", &hold.status)?;
        record.serialize_field("created_at_ms", &hold.created_at_ms)?;
        record.serialize_field("expires_at_ms", &hold.expires_at_ms)?;
        record.serialize_field("updated_at_ms", &hold.updated_at_ms)?;
        record.serialize_field("pooled", &PooledUnits(&hold.lines))?;
        record.end()
    }
}

impl From<StoredRecord> for HoldRecord {
    fn from(stored: StoredRecord) -> Self {
        // Every build that wrote `pooled` wrote one per line; a shorter list cannot come
        // from a hold this server placed. Read as "nothing pooled" rather than refusing
        // the whole journal: the line's units then count against its channel's quota.
        debug_assert_eq!(stored.pooled.len(), stored.lines.len());
        let lines = stored
            .lines
            .into_iter()
            .enumerate()
            .map(|(index, line)| ReservedLine {
                sku: line.sku,
                quantity: line.quantity,
                pooled: stored.pooled.get(index).copied().unwrap_or(0),
                placement: stored.placements.get(index).cloned().unwrap_or_default(),
            })
            .collect();
        Self {
            id: stored.id,
            lines,
            channel: stored.channel,
            customer_id: stored.customer_id,
            status: stored.status,
            created_at_ms: stored.created_at_ms,
            expires_at_ms: stored.expires_at_ms,
            updated_at_ms: stored.updated_at_ms,
            shipped_from: stored.shipped_from,
            placed_by: PlacedBy::default(),
        }
    }
}

/// Written field for field as [`StoredRecord`] reads it, borrowing the hold (a snapshot
/// writes up to a million of them).
impl Serialize for HoldRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = serializer.serialize_struct("HoldRecord", 11)?;
        record.serialize_field("id", &self.id)?;
        record.serialize_field("lines", &StoredLines(&self.lines))?;
        record.serialize_field("channel", &self.channel)?;
        record.serialize_field("customer_id", &self.customer_id)?;
        record.serialize_field("status", &self.status)?;
        record.serialize_field("created_at_ms", &self.created_at_ms)?;
        record.serialize_field("expires_at_ms", &self.expires_at_ms)?;
        record.serialize_field("updated_at_ms", &self.updated_at_ms)?;
        record.serialize_field("pooled", &PooledUnits(&self.lines))?;
        record.serialize_field("placements", &Placements(&self.lines))?;
        record.serialize_field("shipped_from", &self.shipped_from)?;
        record.end()
    }
}

/// A hold's lines as the API shows them: `[{"sku", "quantity"}]`, and each line's
/// `allocations` if it was placed by location (a deployment that never named a location
/// shows its lines exactly as before locations existed).
#[derive(Debug)]
pub struct AskedLines<'a>(pub &'a [ReservedLine]);

impl Serialize for AskedLines<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for line in self.0 {
            seq.serialize_element(&AskedLine {
                sku: &line.sku,
                quantity: line.quantity,
                allocations: line.placement.shown(),
            })?;
        }
        seq.end()
    }
}

/// Serializes as [`HoldLine`] does, without a copy of the SKU, plus the allocations.
#[derive(Serialize)]
#[serde(rename = "HoldLine")]
struct AskedLine<'a> {
    sku: &'a SkuId,
    quantity: Quantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    allocations: Option<&'a [Allocation]>,
}

/// One line of a hold as the API shows it (the schema of [`AskedLine`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only
pub struct HoldLineView {
    sku: SkuId,
    quantity: Quantity,
    /// Where the units were taken, once the deployment names locations.
    allocations: Option<Vec<Allocation>>,
}

/// A hold's lines as the journal stores them: `(sku, quantity)` (a non-self-describing
/// encoding cannot skip a field, so the placements go in a list of their own).
struct StoredLines<'a>(&'a [ReservedLine]);

impl Serialize for StoredLines<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|line| StoredLine {
            sku: &line.sku,
            quantity: line.quantity,
        }))
    }
}

#[derive(Serialize)]
#[serde(rename = "HoldLine")]
struct StoredLine<'a> {
    sku: &'a SkuId,
    quantity: Quantity,
}

struct Placements<'a>(&'a [ReservedLine]);

impl Serialize for Placements<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|line| &line.placement))
    }
}

struct PooledUnits<'a>(&'a [ReservedLine]);

impl Serialize for PooledUnits<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|line| line.pooled))
    }
}

/// Locations whose part of a confirmed hold shipped. Empty for almost every hold, so one
/// pointer wide and nothing allocated (a boxed slice was two words on every hold of the
/// book and the image). Stored as a plain list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::box_collection)] // the box is what makes it one pointer wide
pub struct ShippedFrom(Option<Box<Vec<LocationId>>>);

impl std::ops::Deref for ShippedFrom {
    type Target = [LocationId];

    fn deref(&self) -> &[LocationId] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl From<Vec<LocationId>> for ShippedFrom {
    fn from(locations: Vec<LocationId>) -> Self {
        Self((!locations.is_empty()).then(|| Box::new(locations)))
    }
}

impl Serialize for ShippedFrom {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ShippedFrom {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<LocationId>::deserialize(deserializer).map(Self::from)
    }
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
    #[schema(value_type = Vec<HoldLineView>)]
    pub lines: AskedLines<'a>,
    #[schema(value_type = Channel)]
    pub channel: &'a Channel,
    #[schema(value_type = CustomerId)]
    pub customer_id: &'a CustomerId,
    /// Locations whose part of the hold has shipped, while the rest has not.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Option<Vec<LocationId>>)]
    pub shipped_from: &'a [LocationId],
}

impl HoldRecord {
    pub fn view(&self) -> HoldView<'_> {
        HoldView {
            hold_id: self.id.to_string(),
            status: self.status,
            expires_at: rfc3339(self.expires_at_ms),
            created_at: rfc3339(self.created_at_ms),
            updated_at: rfc3339(self.updated_at_ms),
            lines: AskedLines(&self.lines),
            channel: &self.channel,
            customer_id: &self.customer_id,
            shipped_from: &self.shipped_from,
        }
    }

    /// Every location the hold took units at.
    pub fn locations(&self) -> Vec<LocationId> {
        let mut all: Vec<LocationId> = self
            .lines
            .iter()
            .flat_map(|line| line.placement.units(line.quantity.units()))
            .map(|(location, _)| location)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Notes that the hold's part at `locations` shipped.
    pub fn ship_from(&mut self, locations: &[LocationId]) {
        let mut shipped = self.shipped_from.to_vec();
        for location in locations {
            if !shipped.contains(location) {
                shipped.push(location.clone());
            }
        }
        shipped.sort_unstable();
        self.shipped_from = ShippedFrom::from(shipped);
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
            shipped_from: &[],
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hold() -> HoldRecord {
        let line = |sku: &str, units: i64, pooled: u64| ReservedLine {
            sku: SkuId::parse(sku).expect("sku"),
            quantity: Quantity::parse(units).expect("quantity"),
            pooled,
            placement: Placement::new(vec![Allocation {
                location: crate::domain::LocationId::parse("wh-1").expect("location"),
                quantity: 1,
            }]),
        };
        HoldRecord {
            id: HoldId::new(),
            lines: vec![line("A", 3, 1), line("B", 1, 0)],
            channel: Channel::parse("web").expect("channel"),
            customer_id: CustomerId::parse("c-1").expect("customer"),
            status: HoldStatus::Confirmed,
            created_at_ms: 1,
            expires_at_ms: 2,
            updated_at_ms: 3,
            shipped_from: Default::default(),
            placed_by: PlacedBy::default(),
        }
    }

    /// The journal and the snapshots hold records in the stored shape: lines, then the
    /// pooled units in a list of their own. Lines that carry their own pooled units must
    /// write exactly those bytes, and read back to the same hold.
    #[test]
    fn a_record_is_stored_in_the_shape_earlier_builds_wrote_and_read() {
        let hold = hold();
        let stored = StoredRecord {
            id: hold.id,
            lines: hold
                .lines
                .iter()
                .map(|line| HoldLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
            channel: hold.channel.clone(),
            customer_id: hold.customer_id.clone(),
            status: hold.status,
            created_at_ms: 1,
            expires_at_ms: 2,
            updated_at_ms: 3,
            pooled: vec![1, 0],
            placements: hold.lines.iter().map(|l| l.placement.clone()).collect(),
            shipped_from: Default::default(),
        };
        let bytes = postcard::to_stdvec(&hold).expect("encodes");
        assert_eq!(bytes, postcard::to_stdvec(&stored).expect("encodes"));
        let back: HoldRecord = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, hold);
        assert_eq!(back.lines[0].pooled, 1);
    }

    /// Holds written before format 8 have no placements: they read back with every line
    /// at the default location, and are written in their old shape byte for byte.
    #[test]
    fn a_record_from_before_locations_reads_back_at_the_default_location() {
        let mut hold = hold();
        for line in &mut hold.lines {
            line.placement = Placement::default();
        }
        let old = StoredRecordV7 {
            id: hold.id,
            lines: hold
                .lines
                .iter()
                .map(|line| HoldLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
            channel: hold.channel.clone(),
            customer_id: hold.customer_id.clone(),
            status: hold.status,
            created_at_ms: 1,
            expires_at_ms: 2,
            updated_at_ms: 3,
            pooled: vec![1, 0],
        };
        let bytes = postcard::to_stdvec(&old).expect("encodes");
        let wrapped = HoldRecordV7(hold.clone());
        assert_eq!(bytes, postcard::to_stdvec(&wrapped).expect("encodes"));
        let back: HoldRecordV7 = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.0, hold);
        assert!(back.0.lines.iter().all(|l| l.placement.shown().is_none()));
    }
}
