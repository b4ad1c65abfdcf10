//! The last step of recovery, once the SKU actors run: install the replayed state, settle
//! what a crash left open, and expire holds whose deadline passed while the server was
//! down, all before the server says ready.

use std::sync::Arc;

use super::StartupError;
use crate::domain::SkuId;
use crate::domain::{HoldId, IdMap};
use crate::hold::idempotency::{Answer, IdempotencyStore};
use crate::hold::record::PlacedBy;
use crate::hold::{expiry, Reservations};
use crate::sku::messages::{Restate, SettleLine};
use crate::store::image::Image;

/// Installs the replayed state, settles what the crash left open, and expires holds whose
/// deadline passed while the server was down — all before the server says ready.
pub async fn restore(
    replayed: Image,
    reservations: &Reservations,
    idempotency: &IdempotencyStore,
) -> Result<(), StartupError> {
    // Which key placed each kept hold, so the book can hand a key its answer should it
    // forget the hold first.
    let mut placed_by: IdMap<HoldId, Arc<str>> = IdMap::default();
    for (record, answer) in replayed.answers() {
        let placed = match &answer {
            Answer::Placed(id) => Some(*id),
            Answer::Stored(_) => None,
        };
        let scope_key = idempotency.restore(record, answer);
        if let Some(id) = placed {
            placed_by.insert(id, scope_key);
        }
    }
    // The lines a crash left behind their hold's status, found in the image (the same
    // rule the SKU actor applies): asking every actor about every ended hold instead
    // cost one round trip per line of every hold kept, seconds at a hundred thousand.
    let mut unsettled = Vec::new();
    for hold in replayed.holds.values() {
        let Some(target) = crate::hold::book::hold_line_target(hold) else {
            continue;
        };
        for line in &hold.lines {
            let behind = replayed
                .skus
                .get(&line.sku)
                .is_some_and(|state| !state.line_changes_for(hold.id, target.clone()).is_empty());
            if behind {
                unsettled.push((line.sku.clone(), hold.id, target.clone()));
            }
        }
    }
    // A mark counts every reservation its actor had made, and a reservation is written
    // with its hold, after it: a crash between the two leaves the last mark counting a
    // hold that never was. Such SKUs publish a mark of what they have (SKUs that never
    // published one have nothing to correct).
    let restated: Vec<SkuId> = replayed
        .skus
        .iter()
        .filter(|(_, state)| state.last_mark_outdated())
        .map(|(sku, _)| sku.clone())
        .collect();
    for (sku, state) in replayed.skus {
        reservations
            .directory
            .install(&sku, state)
            .map_err(|full| StartupError::SkuCount {
                sku: sku.clone(),
                full,
            })?;
    }
    for mut hold in replayed.holds.into_values() {
        hold.placed_by = PlacedBy(placed_by.remove(&hold.id));
        reservations.book.restore(hold);
    }
    for (sku, hold_id, target) in unsettled {
        if let Some(entry) = reservations.directory.get(&sku) {
            entry
                .ask(SettleLine { hold_id, target }, None)
                .await
                .map_err(|err| StartupError::Settle { sku, err })?;
        }
    }
    while reservations.expire_due(expiry::EXPIRIES_PER_TICK_MAX).await > 0 {}
    for sku in restated {
        if let Some(entry) = reservations.directory.get(&sku) {
            entry
                .ask(Restate, None)
                .await
                .map_err(|err| StartupError::Settle { sku, err })?;
        }
    }
    reservations.journal.barrier().await?;
    Ok(())
}
