//! Where a SKU actor writes each change it applied, in the order it applied them: the
//! journal. A trait, so the SKU code does not depend on storage; `store::Journal`
//! implements it.

use super::SkuChange;
use crate::domain::SkuId;

pub trait SkuLog: Send + Sync {
    /// Queues the change for the disk; never blocks.
    fn sku_changed(&self, sku: SkuId, change: SkuChange);
}
