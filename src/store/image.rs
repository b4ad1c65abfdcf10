//! The state the journal describes: SKU states, hold records and idempotency answers,
//! built by applying events in sequence order. Recovery builds one from the latest snapshot
//! plus the journal tail; the compactor keeps one up to date to write snapshots from.
//! Both use [`Image::apply`], the same code, so a snapshot is exactly a replayed prefix.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::domain::{Channel, HoldId, IdMap, IdSet, SkuId, WebhookId};
use crate::hold::idempotency::{Answer, IdempotencyRecord, StoredResponse};
use crate::hold::HoldRecord;
use crate::sku::mark::StockMark;
use crate::sku::{SkuChange, SkuState};
use crate::store::Event;
use crate::webhook::Endpoint;

/// Holds are kept in B-trees, not hash maps: at a million holds a hash map that doubled
/// moved every record into a new table twice the size, with both alive at once (map
/// growth was about a third of the compactor's CPU in a profile). Hold ids are ULIDs, so
/// new holds land at the B-tree's right edge. Measured in 36 s runs to 1M holds: resident
/// memory 2.55 and 2.70 GB against 2.85 and 2.81 GB, holds/s the same within noise.
///
/// A placed hold's idempotency record is kept by hold id, not by key: the compactor does
/// not need a key's answer, only recovery does, and inserting every hold's key into a
/// SipHash map (growing to a million keys) was a third of the compactor's CPU. Which
/// answer a key gives is settled once, in [`Image::answers`].
#[derive(Clone, Default)]
pub struct Image {
    pub skus: IdMap<SkuId, SkuState>,
    pub holds: BTreeMap<HoldId, HoldRecord>,
    /// The idempotency record that placed each hold, while its key still answers with it.
    pub placed_by: BTreeMap<HoldId, IdempotencyRecord>,
    /// Refusals remembered under their scope key: the record and the response sent.
    pub refusals: HashMap<String, (IdempotencyRecord, StoredResponse)>,
    /// Sales by id.
    pub sales: IdMap<crate::domain::SaleId, crate::sale::Sale>,
    /// Webhook endpoints, each with the cursor up to which it was delivered to.
    pub webhooks: BTreeMap<WebhookId, (Endpoint, u64)>,
    /// Stock locations, and the channels' routing policies (both bounded by config).
    pub locations: BTreeMap<crate::domain::LocationId, crate::location::Location>,
    pub policies: BTreeMap<Channel, crate::location::ChannelPolicy>,
    /// Sequence number of the last event applied (or covered by the snapshot loaded).
    pub seq: u64,
    /// Keys changed since the last snapshot write.
    pub dirty: Dirty,
    /// The channels holds name, one allocation each (see [`Image::intern`]).
    channels: IdSet<Channel>,
    /// Holds in the image when its B-trees were last packed (see [`Image::pack`]).
    packed_holds: usize,
}

/// Most channel names the image shares among holds; past it a hold keeps its own copy.
/// Channels are few (a retailer's sales channels); the bound is for a journal that names
/// many.
const INTERNED_CHANNELS_MAX: usize = 1_024;

#[derive(Clone, Default)]
pub struct Dirty {
    pub skus: IdSet<SkuId>,
    pub holds: IdSet<HoldId>,
    pub answers: HashSet<String>,
    pub sales: IdSet<crate::domain::SaleId>,
    pub webhooks: BTreeSet<WebhookId>,
    /// Whether a location or a policy changed (they are few: all are written again).
    pub routing: bool,
}

impl Dirty {
    /// Empties the sets and keeps their capacity for the next snapshot's changes.
    pub fn clear(&mut self) {
        self.skus.clear();
        self.holds.clear();
        self.answers.clear();
        self.sales.clear();
        self.webhooks.clear();
        self.routing = false;
    }

    /// Entries a snapshot of only these changes writes.
    pub fn entries(&self) -> usize {
        self.skus.len()
            + self.holds.len()
            + self.answers.len()
            + self.sales.len()
            + self.webhooks.len()
    }

    /// A hold's snapshot entry carries its lines, so a line change makes the hold dirty.
    fn line(&mut self, change: &SkuChange) {
        match change {
            SkuChange::LineReserved { hold_id, .. }
            | SkuChange::LineReservedAt { hold_id, .. }
            | SkuChange::LineReleased { hold_id }
            | SkuChange::LineCommitted { hold_id }
            | SkuChange::LineFulfilled { hold_id }
            | SkuChange::LineShipped { hold_id, .. } => {
                self.holds.insert(*hold_id);
            }
            SkuChange::StockSet { .. }
            | SkuChange::StockAdjusted { .. }
            | SkuChange::SiteStockSet { .. }
            | SkuChange::SiteStockAdjusted { .. }
            | SkuChange::AllocationSet { .. }
            | SkuChange::Restated
            | SkuChange::SaleWindowSet { .. } => {}
        }
    }
}

impl Image {
    /// Rebuilds the hold and line B-trees with full nodes, once the holds have grown by
    /// half since the last time (so the work is proportional to the growth). Keyed by
    /// rising hold ids, they fill at their right edge with half-full nodes (see
    /// [`SkuState::pack_lines`]).
    pub fn pack(&mut self) {
        if self.holds.len()
            < self
                .packed_holds
                .saturating_add(self.packed_holds / 2)
                .max(1_024)
        {
            return;
        }
        self.holds = std::mem::take(&mut self.holds).into_iter().collect();
        self.placed_by = std::mem::take(&mut self.placed_by).into_iter().collect();
        for state in self.skus.values_mut() {
            state.pack_lines();
        }
        self.packed_holds = self.holds.len();
    }

    /// Points a decoded hold's SKU ids and channel at the image's own copies of them. A
    /// decoded hold has its own allocation for each string; with a million holds on a
    /// thousand SKUs and a few channels that is most of its size. The SKU actors' lines and
    /// the hold book take these records at recovery, so the server shares them too.
    pub fn intern(&mut self, hold: &mut HoldRecord) {
        for line in &mut hold.lines {
            if let Some((sku, _)) = self.skus.get_key_value(&line.sku) {
                line.sku = sku.clone();
            }
        }
        match self.channels.get(&hold.channel) {
            Some(channel) => hold.channel = channel.clone(),
            None if self.channels.len() < INTERNED_CHANNELS_MAX => {
                self.channels.insert(hold.channel.clone());
            }
            None => {}
        }
    }

    /// Applies the event written at `seq`. Events at or below the image's sequence are
    /// already in it (a snapshot written just before a crash, the journal not yet trimmed)
    /// and are skipped, so applying is never doubled.
    pub fn apply(&mut self, seq: u64, event: Event) {
        if seq <= self.seq {
            return;
        }
        self.seq = seq;
        match event {
            Event::Sku { sku, change } => self.sku_changed(sku, &change, None),
            Event::SkuMarked { sku, change, mark } => self.sku_changed(sku, &change, Some(&mark)),
            Event::HoldPlaced { hold, idempotency } => self.hold_placed(hold.0, idempotency, &[]),
            Event::HoldPlacedMarked {
                hold,
                idempotency,
                marks,
            } => self.hold_placed(hold.0, idempotency, &marks),
            Event::HoldPlacedAt {
                hold,
                idempotency,
                marks,
            } => self.hold_placed(hold, idempotency, &marks),
            Event::HoldShipped {
                hold_id,
                locations,
                at_ms,
            } => {
                if let Some(hold) = self.holds.get_mut(&hold_id) {
                    hold.ship_from(&locations);
                    hold.updated_at_ms = at_ms;
                    self.dirty.holds.insert(hold_id);
                }
            }
            Event::LocationPut { location } => {
                self.locations.insert(location.id.clone(), location);
                self.dirty.routing = true;
            }
            Event::ChannelPolicyPut { policy } => {
                self.policies.insert(policy.channel.clone(), policy);
                self.dirty.routing = true;
            }
            Event::HoldStatusChanged {
                hold_id,
                status,
                at_ms,
            } => {
                if let Some(hold) = self.holds.get_mut(&hold_id) {
                    hold.status = status;
                    hold.updated_at_ms = at_ms;
                    self.dirty.holds.insert(hold_id);
                }
            }
            Event::WebhookSet { endpoint } => {
                // A new registration delivers from where the journal is now.
                let cursor = crate::broadcast::hub::last_cursor_of(seq);
                self.dirty.webhooks.insert(endpoint.id.clone());
                self.webhooks
                    .insert(endpoint.id.clone(), (endpoint, cursor));
            }
            Event::WebhookDeleted { id } => {
                self.webhooks.remove(&id);
                self.dirty.webhooks.insert(id);
            }
            Event::WebhookProgress { id, cursor } => {
                if let Some((_, delivered)) = self.webhooks.get_mut(&id) {
                    *delivered = (*delivered).max(cursor);
                    self.dirty.webhooks.insert(id);
                }
            }
            Event::SaleSet { sale } => {
                self.dirty.sales.insert(sale.id.clone());
                self.sales.insert(sale.id.clone(), sale.into());
            }
            Event::SalePut { sale } => {
                self.dirty.sales.insert(sale.id.clone());
                self.sales.insert(sale.id.clone(), sale);
            }
            Event::SaleDeleted { id } => {
                self.sales.remove(&id);
                self.dirty.sales.insert(id);
            }
            Event::Refused {
                idempotency,
                status,
                body,
            } => {
                let response = StoredResponse {
                    status,
                    body: Arc::from(body),
                };
                self.dirty.answers.insert(idempotency.scope_key.clone());
                self.refusals
                    .insert(idempotency.scope_key.clone(), (idempotency, response));
            }
        }
    }

    fn sku_changed(&mut self, sku: SkuId, change: &SkuChange, mark: Option<&StockMark>) {
        let state = self.skus.entry(sku.clone()).or_default();
        match mark {
            Some(mark) => {
                state.apply_at(change, mark.at_ms);
                state.published.note(mark);
            }
            None => {
                // Written by a build that did not date its changes.
                state.apply(change);
                state.moves_unknown();
            }
        }
        self.dirty.line(change);
        self.dirty.skus.insert(sku);
    }

    /// Reserves the hold's lines on their SKUs (noting each line's mark, when it has one)
    /// and keeps the hold and the key that placed it.
    fn hold_placed(
        &mut self,
        mut hold: HoldRecord,
        idempotency: IdempotencyRecord,
        marks: &[StockMark],
    ) {
        self.intern(&mut hold);
        for (index, line) in hold.lines.iter().enumerate() {
            let reserved = SkuChange::LineReservedAt {
                hold_id: hold.id,
                quantity: line.quantity,
                channel: hold.channel.clone(),
                pooled: line.pooled,
                customer: hold.customer_id.clone(),
                placement: line.placement.clone(),
            };
            let state = self.skus.entry(line.sku.clone()).or_default();
            state.apply(&reserved);
            if let Some(mark) = marks.get(index) {
                state.published.note(mark);
            }
            self.dirty.skus.insert(line.sku.clone());
        }
        self.placed_by.insert(hold.id, idempotency);
        self.dirty.holds.insert(hold.id);
        self.holds.insert(hold.id, hold);
    }

    /// Drops ended holds and idempotency answers past their retention, as the live server
    /// does, so the image (and the snapshot) stays bounded.
    pub fn forget_expired(&mut self, now_ms: u64, hold_retention_ms: u64, answer_ttl_ms: u64) {
        let old_holds: Vec<HoldId> = self
            .holds
            .values()
            .filter(|h| {
                h.status.is_final()
                    && h.updated_at_ms.saturating_add(hold_retention_ms) <= now_ms
                    && !self.has_open_line(h)
            })
            .map(|h| h.id)
            .collect();
        for id in old_holds {
            self.holds.remove(&id);
            self.dirty.holds.insert(id);
            // The answer replays the hold; without the hold there is nothing to replay.
            self.placed_by.remove(&id);
        }
        // A key's answer outlives neither its TTL nor its hold; the hold's snapshot entry
        // changes when its answer goes.
        let expired =
            |record: &IdempotencyRecord| record.at_ms.saturating_add(answer_ttl_ms) <= now_ms;
        let old_placed: Vec<HoldId> = self
            .placed_by
            .iter()
            .filter(|(_, record)| expired(record))
            .map(|(id, _)| *id)
            .collect();
        for id in old_placed {
            self.placed_by.remove(&id);
            self.dirty.holds.insert(id);
        }
        let old_refusals: Vec<String> = self
            .refusals
            .iter()
            .filter(|(_, (record, _))| expired(record))
            .map(|(key, _)| key.clone())
            .collect();
        for key in old_refusals {
            self.refusals.remove(&key);
            self.dirty.answers.insert(key);
        }
    }

    /// Entries a full snapshot writes: SKUs, holds (a placed answer rides with its hold),
    /// refusals and sales.
    pub fn entries(&self) -> usize {
        self.skus.len()
            + self.holds.len()
            + self.refusals.len()
            + self.sales.len()
            + self.webhooks.len()
    }

    /// Whether a SKU still carries one of the hold's lines: the snapshot stores lines with
    /// their hold, so such a hold is kept until its line changes have been applied.
    fn has_open_line(&self, hold: &HoldRecord) -> bool {
        hold.lines.iter().any(|line| {
            self.skus
                .get(&line.sku)
                .is_some_and(|state| state.lines.contains_key(&hold.id))
        })
    }

    /// What each remembered key answers, oldest first (the order the live store forgets
    /// them in). A key used again after its answer was forgotten by the live server can be
    /// claimed twice here until the next snapshot forgets the old claim; the newer one is
    /// what the server answered last, so it wins.
    pub fn answers(&self) -> Vec<(&IdempotencyRecord, Answer)> {
        let placed = self
            .placed_by
            .iter()
            .filter(|(id, _)| self.holds.contains_key(id))
            .map(|(id, record)| (record, Answer::Placed(*id)));
        let refused = self
            .refusals
            .values()
            .map(|(record, response)| (record, Answer::Stored(response.clone())));
        let mut latest: HashMap<&str, (&IdempotencyRecord, Answer)> = HashMap::new();
        for (record, response) in placed.chain(refused) {
            match latest.get(record.scope_key.as_str()) {
                Some((kept, _)) if kept.at_ms >= record.at_ms => {}
                _ => {
                    latest.insert(&record.scope_key, (record, response));
                }
            }
        }
        let mut answers: Vec<_> = latest.into_values().collect();
        answers.sort_by_key(|(record, _)| record.at_ms);
        answers
    }
}
