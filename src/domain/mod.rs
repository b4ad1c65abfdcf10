//! Validated value types. Code past the HTTP edge takes these, never raw strings, so an
//! id or quantity that reached the core is known to be well formed.

mod ids;
mod quantity;
mod status;

pub use ids::{Channel, CustomerId, HoldId, IdempotencyKey, SaleId, SkuId};
pub use quantity::{Quantity, UNITS_MAX};
pub use status::{AdjustReason, HoldStatus};

/// Why a value from a request was refused; the text is shown to the client as `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
