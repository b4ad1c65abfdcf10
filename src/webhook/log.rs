//! Where webhook endpoints and their delivery progress are recorded: the journal (a
//! trait, so this code does not depend on storage; `store::Journal` implements it).

use futures_util::future::BoxFuture;

use super::endpoint::Endpoint;
use crate::domain::{JournalError, WebhookId};

pub trait WebhookLog: Send + Sync {
    /// An endpoint registered, replaced, or disabled.
    fn webhook_set(&self, endpoint: Endpoint);
    fn webhook_deleted(&self, id: WebhookId);
    /// Every event up to `cursor` was delivered to the endpoint (or superseded by a newer
    /// one for its SKU that was).
    fn webhook_progress(&self, id: WebhookId, cursor: u64);
    fn accepting(&self) -> Result<(), JournalError>;
    /// Resolves once everything queued before the call is durable.
    fn barrier(&self) -> BoxFuture<'static, Result<(), JournalError>>;
}
