//! Webhooks, Standard Webhooks v1: admin-registered endpoints (`endpoint`) that get each
//! availability event signed (`signature`), delivered coalesced and retried by one worker
//! per endpoint (`worker`), only to addresses the operator allows (`target`). Endpoints
//! and each one's delivered cursor are journaled (`log`), so pending deliveries survive a
//! restart: the worker goes on from the cursor, and every event after it is in the ring
//! (rebuilt from the journal) or, if not, every SKU's current state is delivered.

pub mod endpoint;
pub mod log;
pub mod signature;
pub mod target;
pub mod worker;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::domain::{Channel, IdMap, JournalError, WebhookId};
pub use endpoint::{Disabled, Endpoint, EventType};
pub use worker::{Control, DeliveryRecord, Shared, WebhookSettings};

/// What `PUT /v1/webhooks/{id}` asks for, validated at the edge.
#[derive(Debug, Clone)]
pub struct Registration {
    pub url: String,
    pub channel: Option<Channel>,
    pub events: Vec<EventType>,
    pub secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} webhooks are registered, the configured maximum")]
    Full(usize),
    #[error("webhook {0} not found")]
    NotFound(WebhookId),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Io(String),
}

/// The registered endpoints and their workers.
pub struct Webhooks {
    shared: Arc<Shared>,
    endpoints: Mutex<IdMap<WebhookId, Arc<Control>>>,
    webhooks_max: usize,
}

impl Webhooks {
    pub fn new(shared: Shared, webhooks_max: usize) -> Self {
        Self {
            shared: Arc::new(shared),
            endpoints: Mutex::default(),
            webhooks_max,
        }
    }

    /// Starts the workers of the endpoints recovery found, each from its cursor.
    pub fn restore(&self, endpoints: impl IntoIterator<Item = (Endpoint, u64)>) {
        let mut registered = self.endpoints.lock();
        for (endpoint, cursor) in endpoints {
            let control = Control::new(endpoint.clone());
            registered.insert(endpoint.id.clone(), Arc::clone(&control));
            self.start(control, cursor, false);
        }
        crate::metrics::webhooks_disabled(disabled_count(&registered));
    }

    fn start(&self, control: Arc<Control>, cursor: u64, ping: bool) {
        actix_web::rt::spawn(worker::run(control, Arc::clone(&self.shared), cursor, ping));
    }

    /// Registers or replaces an endpoint (journaled before it answers), sends it a ping,
    /// and delivers what happens from now on. Returns the endpoint (with its secret, to
    /// show once) and whether it is new.
    pub async fn put(
        &self,
        id: WebhookId,
        registration: Registration,
    ) -> Result<(Endpoint, bool), WebhookError> {
        let target = target::Target::parse(&registration.url).map_err(WebhookError::Invalid)?;
        if registration.events.is_empty() {
            return Err(WebhookError::Invalid(
                "events must name at least one event type".into(),
            ));
        }
        let mut events = registration.events;
        events.sort_unstable();
        events.dedup();
        let secret = match registration.secret {
            Some(secret) => {
                signature::key_of(&secret).map_err(WebhookError::Invalid)?;
                secret
            }
            None => signature::generate_secret().map_err(|e| WebhookError::Io(e.to_string()))?,
        };
        target
            .resolve(&self.shared.settings.policy)
            .await
            .map_err(WebhookError::Invalid)?;
        {
            let registered = self.endpoints.lock();
            if !registered.contains_key(&id) && registered.len() >= self.webhooks_max {
                return Err(WebhookError::Full(registered.len()));
            }
        }
        self.shared.log.accepting()?;
        let endpoint = Endpoint {
            id: id.clone(),
            url: target.url.to_string(),
            channel: registration.channel,
            events,
            secret,
            created_at_ms: self.shared.clock.now_ms(),
            disabled: None,
        };
        self.shared.log.webhook_set(endpoint.clone());
        self.shared.log.barrier().await?;
        let control = Control::new(endpoint.clone());
        let replaced = {
            let mut registered = self.endpoints.lock();
            let replaced = registered.insert(id, Arc::clone(&control));
            crate::metrics::webhooks_disabled(disabled_count(&registered));
            replaced
        };
        if let Some(old) = &replaced {
            old.stop();
        }
        self.start(control, self.shared.hub.head(), true);
        Ok((endpoint, replaced.is_none()))
    }

    pub fn get(&self, id: &WebhookId) -> Option<Endpoint> {
        let control = self.endpoints.lock().get(id).cloned()?;
        let endpoint = control.endpoint.lock().clone();
        Some(endpoint)
    }

    pub fn list(&self) -> Vec<Endpoint> {
        let controls: Vec<Arc<Control>> = self.endpoints.lock().values().cloned().collect();
        let mut endpoints: Vec<Endpoint> = controls
            .iter()
            .map(|control| control.endpoint.lock().clone())
            .collect();
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        endpoints
    }

    /// Stops deliveries to the endpoint and forgets it (journaled before it answers).
    pub async fn delete(&self, id: &WebhookId) -> Result<(), WebhookError> {
        if !self.endpoints.lock().contains_key(id) {
            return Err(WebhookError::NotFound(id.clone()));
        }
        self.shared.log.accepting()?;
        self.shared.log.webhook_deleted(id.clone());
        self.shared.log.barrier().await?;
        let removed = {
            let mut registered = self.endpoints.lock();
            let removed = registered.remove(id);
            crate::metrics::webhooks_disabled(disabled_count(&registered));
            removed
        };
        if let Some(control) = removed {
            control.stop();
        }
        Ok(())
    }

    fn control(&self, id: &WebhookId) -> Result<Arc<Control>, WebhookError> {
        let control = self.endpoints.lock().get(id).cloned();
        control.ok_or_else(|| WebhookError::NotFound(id.clone()))
    }

    /// The latest delivery attempts, oldest first.
    pub fn deliveries(&self, id: &WebhookId) -> Result<Vec<DeliveryRecord>, WebhookError> {
        let control = self.control(id)?;
        let deliveries = control.deliveries.lock().iter().cloned().collect();
        Ok(deliveries)
    }

    /// Delivers again, coalesced, what came after `since`; a `since` older than the
    /// events kept delivers every SKU's current state.
    pub fn replay(&self, id: &WebhookId, since: u64) -> Result<(), WebhookError> {
        let control = self.control(id)?;
        if control.endpoint.lock().disabled.is_some() {
            return Err(WebhookError::Invalid(format!(
                "webhook {id} is disabled; register it again (PUT) to resume"
            )));
        }
        control.replay(since);
        Ok(())
    }
}

fn disabled_count(registered: &IdMap<WebhookId, Arc<Control>>) -> usize {
    registered
        .values()
        .filter(|control| control.endpoint.lock().disabled.is_some())
        .count()
}
