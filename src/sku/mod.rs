//! Stock per SKU: the pure state machine (`state`), the actor that owns one SKU's state
//! (`actor`), its messages, the directory that finds or creates the actor for a SKU, and
//! the availability mark each change leaves (`mark`).

pub mod actor;
pub mod directory;
pub mod log;
pub mod mark;
pub mod messages;
pub mod sites;
pub mod state;

pub use actor::SkuActor;
pub use directory::{SkuDirectory, SkuEntry};
pub use state::{SkuChange, SkuError, SkuState, SkuView};
