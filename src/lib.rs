//! holdfast: a flash-sale reservation server.
//!
//! The modules, bottom-up (no import cycle between them; `tests/architecture.rs` checks):
//!
//! - [`domain`]: validated ids, quantities and statuses used past the HTTP edge, and the
//!   journal's error.
//! - [`clock`]: the [`clock::Clock`] the server reads the time from (system, or manual in
//!   tests) and RFC 3339 formatting. [`metrics`]: metric names and the Prometheus
//!   recorder. [`priority`]: thread priorities of the journal writer (raised) and the
//!   compactor (lowered).
//! - [`sku`]: one actor per SKU owning its stock (per location, too); the pure state machine it runs; the
//!   directory that finds or starts a SKU's actor on one of the per-core Arbiters; the log
//!   it writes its changes to (a trait the journal implements); the availability mark
//!   each change leaves.
//! - [`broadcast`]: the hub of durable availability events (a bounded ring the journal
//!   publishes to once a batch is durable) and how an event reads for each key.
//!   [`webhook`]: Standard Webhooks endpoints, one delivery worker each (coalesced,
//!   retried, signed, to allowed addresses only), and the log they are recorded in.
//! - [`admission`]: the metered FIFO with signed tickets in front of new holds.
//!   [`sale`]: flash-sale windows, their SKUs, per-customer limits and own queues.
//!   [`location`]: warehouses and stores, and each channel's policy for routing a hold
//!   line to them (the stock at each lives in the SKU's actor).
//! - [`hold`]: the checkout service that runs a hold request end to end (idempotency
//!   key, sale window, admission, reservation, the durable answer) and changes holds; the
//!   hold book (status authority, deadlines), the coordinator that reserves carts
//!   all-or-nothing, idempotency keys, the expiry sweep, and the log holds write to.
//! - [`store`]: bytes on disk. The journal (segment files, group commit, the reader that
//!   follows it), the events it records (and the `sku`/`hold` logs it implements as them),
//!   the state image those events build, snapshots of it in sled written by the compactor
//!   thread (which also trims the journal), recovery at start, the data dir's layout.
//! - [`config`]: settings from flags, environment and TOML, validated at start.
//! - [`http`]: routes, bearer-key auth, bounded bodies, problem+json errors, the OpenAPI
//!   document, the availability stream and change feed. Handlers parse, authenticate and render; the core does the rest.
//!   [`sampler`]: gauges sampled once a second (watched SKUs, table sizes, readiness).
//! - [`startup`]: opens storage and recovers, starts the core and restores state into it,
//!   serves until told to stop, then drains and flushes.

pub mod admission;
pub mod broadcast;
pub mod clock;
pub mod config;
pub mod domain;
pub mod hold;
pub mod http;
pub mod location;
pub mod metrics;
pub mod priority;
pub mod sale;
pub mod sampler;
pub mod sku;
pub mod startup;
pub mod store;
pub mod webhook;

pub use config::{Settings, SettingsLayer};
pub use startup::Application;
