//! Holds: the checkout service that runs a hold request end to end (`checkout`), the
//! record and its JSON view (`record`), the book of all holds that decides status changes
//! (`book`), idempotency keys (`idempotency`), the coordinator that reserves a cart across
//! SKU actors all-or-nothing (`coordinator`), and the expiry sweep.

pub mod book;
pub mod checkout;
pub mod coordinator;
pub mod expiry;
pub mod idempotency;
pub mod log;
pub mod record;

pub use book::{Action, HoldBook};
pub use checkout::Checkout;
pub use coordinator::{HoldError, OrderLine, PlaceHold, Reservations, Unavailable};
pub use record::{HoldLine, HoldRecord};
