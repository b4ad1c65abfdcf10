//! Where a SKU actor writes each change it applied, in the order it applied them: the
//! journal. A trait, so the SKU code does not depend on storage; `store::Journal`
//! implements it.

use super::mark::StockMark;
use super::SkuChange;
use crate::domain::SkuId;

pub trait SkuLog: Send + Sync {
    /// Queues the change, with what it left the SKU at, for the disk; never blocks.
    fn sku_changed(&self, sku: SkuId, change: SkuChange, mark: StockMark);
}
