//! Tells each sale SKU's actor when its sale's window opens and closes, and when it leaves
//! a sale (the sale ended and its SKUs sell normally again, or it was deleted), so the
//! change reaches channels as an availability event. Each tick compares every sale with
//! what it saw last; at start everything is sent once, and an actor journals only what
//! changes its SKU, so a restart sends nothing twice to the journal.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{IdMap, SaleId, SkuId};
use crate::sku::mark::SaleWindow;
use crate::sku::messages::SetSaleWindow;
use crate::sku::SkuDirectory;

use super::{Phase, Sale, SaleBook};

/// What a tick last saw of a sale: the sale as stored and where its window stood.
type Seen = (Arc<Sale>, Phase);

/// Runs for the server's life.
pub async fn run(sales: Arc<SaleBook>, directory: Arc<SkuDirectory>, clock: Clock, tick: Duration) {
    let mut seen: IdMap<SaleId, Seen> = IdMap::default();
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        sync(&sales, &directory, clock.now_ms(), &mut seen).await;
    }
}

/// Tells the SKUs of every sale that changed since `seen` (its window moved to another
/// phase, it was replaced or deleted) which sale now governs them and whether it is open.
/// What a SKU is told is worked out from the whole book, not from the one sale, so a SKU
/// moving from an ended sale to the next is told the new one whatever order they come in.
pub async fn sync(
    sales: &SaleBook,
    directory: &SkuDirectory,
    now_ms: u64,
    seen: &mut IdMap<SaleId, Seen>,
) {
    let mut touched: Vec<SkuId> = Vec::new();
    let current = sales.all();
    for sale in &current {
        let phase = sale.phase(now_ms);
        let before = seen.get(&sale.id);
        let same =
            before.is_some_and(|(was, was_phase)| Arc::ptr_eq(was, sale) && *was_phase == phase);
        if same {
            continue;
        }
        if let Some((was, _)) = before {
            touched.extend(was.skus.iter().cloned());
        }
        touched.extend(sale.skus.iter().cloned());
        seen.insert(sale.id.clone(), (Arc::clone(sale), phase));
    }
    // Every current sale is in `seen` now, so more entries there means some were deleted.
    // A set, not a scan of the book per entry: at --sales-max (10,000) that was 10^8
    // comparisons every tick.
    if seen.len() > current.len() {
        let kept: std::collections::HashSet<&SaleId> =
            current.iter().map(|sale| &sale.id).collect();
        seen.retain(|id, (was, _)| {
            let stays = kept.contains(id);
            if !stays {
                touched.extend(was.skus.iter().cloned());
            }
            stays
        });
    }
    touched.sort_unstable();
    touched.dedup();
    for sku in &touched {
        let window = sales.sale_for(sku, now_ms).map(|sale| SaleWindow {
            sale: sale.id.clone(),
            open: sale.is_open(now_ms),
        });
        tell(directory, sku, window).await;
    }
}

async fn tell(directory: &SkuDirectory, sku: &SkuId, window: Option<SaleWindow>) {
    let Some(entry) = directory.get(sku) else {
        return;
    };
    if let Err(err) = entry.ask(SetSaleWindow { window }, None).await {
        tracing::warn!(%sku, %err, "Sale window did not reach the SKU's actor.");
    }
}
