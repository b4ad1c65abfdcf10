//! holdfast: a flash-sale reservation server.
//!
//! - [`config`]: settings from flags, environment and TOML, validated at start.
//! - [`startup`]: builds the server, recovers state from the journal, serves, shuts down.
//! - [`domain`]: validated ids, quantities and statuses used past the HTTP edge.
//! - [`sku`]: one actor per SKU owning its stock; the pure state machine it runs; the
//!   directory that finds or starts a SKU's actor on one of the per-core Arbiters.
//! - [`hold`]: the hold book (status authority, deadlines), the coordinator that reserves
//!   carts all-or-nothing, idempotency keys, and the expiry sweep.
//! - [`sale`]: flash-sale windows, their SKUs and per-customer limits.
//! - [`store`]: journal events, the group-committing journal writer over sled, recovery.
//! - [`http`]: routes, bearer-key auth, bounded bodies, problem+json errors.
//! - [`admission`]: the metered FIFO with signed tickets in front of new holds.
//! - [`metrics`]: metric names and the Prometheus recorder; [`sampler`]: gauges sampled
//!   once a second (watched SKUs, table sizes, readiness).
//! - [`priority`]: thread priorities of the journal writer (raised) and compactor (lowered).
//! - [`clock`]: wall-clock milliseconds and RFC 3339 formatting.

pub mod admission;
pub mod clock;
pub mod config;
pub mod domain;
pub mod hold;
pub mod http;
pub mod metrics;
pub mod priority;
pub mod sale;
pub mod sampler;
pub mod sku;
pub mod startup;
pub mod store;

pub use config::{Settings, SettingsLayer};
pub use startup::Application;
