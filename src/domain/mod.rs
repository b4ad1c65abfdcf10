//! Validated value types. Code past the HTTP edge takes these, never raw strings, so an
//! id or quantity that reached the core is known to be well formed.

mod ids;
pub mod integer;
mod journal_error;
mod quantity;
pub mod shard;
mod status;

pub use ids::{Channel, CustomerId, HoldId, IdempotencyKey, LocationId, SaleId, SkuId, WebhookId};
pub use journal_error::JournalError;
pub use quantity::{units, Quantity, UNITS_MAX};
pub use status::{AdjustReason, HoldStatus};

/// Hash maps and sets keyed by what the server or an admin chose (hold ids, SKUs, sale
/// ids): foldhash is several times cheaper than std's SipHash, which showed up on every
/// hold. Keys a client chooses (idempotency keys) stay on std's maps, whose SipHash keys
/// resist collision flooding.
pub type IdMap<K, V> = foldhash::HashMap<K, V>;
pub type IdSet<K> = foldhash::HashSet<K>;

/// Why a value from a request was refused; the text is shown to the client as `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
