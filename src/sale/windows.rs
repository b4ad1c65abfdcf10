//! Tells each sale SKU's actor when its sale's window opens and closes, and when it leaves
//! a sale, so the change reaches channels as an availability event (a sale SKU cannot be
//! held outside its window). Each tick compares every sale with what was sent last; at
//! start everything is sent once, and an actor journals only what changes its SKU, so a
//! restart sends nothing twice to the journal.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{IdMap, SaleId};
use crate::sku::messages::SetSaleWindow;
use crate::sku::SkuDirectory;

use super::{Sale, SaleBook};

/// Runs for the server's life.
pub async fn run(sales: Arc<SaleBook>, directory: Arc<SkuDirectory>, clock: Clock, tick: Duration) {
    let mut sent: IdMap<SaleId, (Arc<Sale>, bool)> = IdMap::default();
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        sync(&sales, &directory, clock.now_ms(), &mut sent).await;
    }
}

/// Sends what changed since `sent`: a sale whose window flipped or which was replaced
/// tells its SKUs, and SKUs a replaced sale no longer lists are told they left it.
pub async fn sync(
    sales: &SaleBook,
    directory: &SkuDirectory,
    now_ms: u64,
    sent: &mut IdMap<SaleId, (Arc<Sale>, bool)>,
) {
    for sale in sales.all() {
        let open = sale.is_open(now_ms);
        let previous = sent.get(&sale.id);
        let same =
            previous.is_some_and(|(was, was_open)| Arc::ptr_eq(was, &sale) && *was_open == open);
        if same {
            continue;
        }
        if let Some((was, _)) = previous {
            for sku in was.skus.iter().filter(|sku| !sale.skus.contains(sku)) {
                tell(directory, sku, &sale.id, None).await;
            }
        }
        for sku in &sale.skus {
            tell(directory, sku, &sale.id, Some(open)).await;
        }
        sent.insert(sale.id.clone(), (sale, open));
    }
}

async fn tell(
    directory: &SkuDirectory,
    sku: &crate::domain::SkuId,
    sale: &SaleId,
    open: Option<bool>,
) {
    let Some(entry) = directory.get(sku) else {
        return;
    };
    let message = SetSaleWindow {
        sale: sale.clone(),
        open,
    };
    if let Err(err) = entry.ask(message, None).await {
        tracing::warn!(%sku, %err, "Sale window did not reach the SKU's actor.");
    }
}
