//! Webhook endpoints (admin key): `PUT /v1/webhooks/{id}` registers or replaces one (a
//! `whsec_` secret is made when none is given, shown in that answer only, and a
//! `webhook.ping` is sent); `GET` shows it (with why it was disabled, if it was),
//! `DELETE` removes it; `GET .../deliveries` lists the latest attempts; `POST .../replay`
//! delivers again what came after a cursor. `GET /v1/webhooks` lists them all.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::admin_json;
use super::openapi::{AdminChangeErrors, AdminReadErrors, ReadErrors, WebhookPath};
use super::{ApiError, AppState};
use crate::clock::rfc3339;
use crate::domain::{Channel, WebhookId};
use crate::webhook::{DeliveryRecord, Endpoint, EventType, Registration, WebhookError};

/// An endpoint to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/holdfast", "channel": "marketplace",
    "events": ["sku.sold_out", "sku.back_in_stock"]}))]
pub(crate) struct WebhookBody {
    /// `http` or `https`; it must resolve to public addresses, or to a range allowed with
    /// `--webhook-allow-cidr`.
    #[schema(max_length = 2048)]
    url: String,
    /// Deliveries show this channel's availability, as its key would see it (default:
    /// every channel and the pool).
    #[schema(value_type = Option<Channel>)]
    channel: Option<String>,
    #[schema(min_items = 1, max_items = 4)]
    events: Vec<EventType>,
    /// A Standard Webhooks secret (`whsec_` and 24 to 64 bytes of base64); made for you
    /// when absent.
    secret: Option<String>,
}

/// Why deliveries stopped.
#[derive(Serialize, ToSchema)]
pub(crate) struct DisabledView {
    reason: String,
    #[schema(format = DateTime)]
    at: String,
}

/// An endpoint as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Webhook)]
pub(crate) struct WebhookView {
    #[schema(value_type = WebhookId)]
    id: String,
    url: String,
    #[schema(value_type = Option<Channel>)]
    channel: Option<String>,
    events: Vec<EventType>,
    #[schema(format = DateTime)]
    created_at: String,
    /// Set when the server stopped delivering (410 Gone, or too many failures in a row);
    /// register the endpoint again to resume.
    disabled: Option<DisabledView>,
    /// Only in the answer to the `PUT` that registered it: keep it to verify signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(endpoint: &Endpoint, show_secret: bool) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.clone(),
            channel: endpoint.channel.as_ref().map(ToString::to_string),
            events: endpoint.events.clone(),
            created_at: rfc3339(endpoint.created_at_ms),
            disabled: endpoint.disabled.as_ref().map(|disabled| DisabledView {
                reason: disabled.reason.clone(),
                at: rfc3339(disabled.at_ms),
            }),
            secret: show_secret.then(|| endpoint.secret.clone()),
        }
    }
}

/// Where a replay starts.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// A cursor (an event's `seq`): what came after it is delivered again, coalesced.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    since: u64,
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Invalid(detail) => Self::Invalid(detail),
            full @ WebhookError::Full(_) => Self::conflict(full.to_string()),
            missing @ WebhookError::NotFound(_) => Self::not_found(missing.to_string()),
            WebhookError::Journal(err) => err.into(),
            WebhookError::Io(detail) => Self::Unavailable(detail),
        }
    }
}

fn parse_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).map_err(|e| ApiError::Invalid(e.to_string()))
}

#[utoipa::path(
    put,
    path = "/v1/webhooks/{webhook_id}",
    tag = "webhooks",
    summary = "Register or replace a webhook endpoint",
    description = "Deliveries are Standard Webhooks v1: `webhook-id`, `webhook-timestamp` and \
        `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` headers, body \
        `{\"type\", \"timestamp\", \"data\": <the availability event>}`. Coalesced: per SKU \
        and event type at most one delivery in flight and only the latest state waiting. \
        Failed attempts are retried with backoff and jitter (honouring `Retry-After`); 410 \
        or `--webhook-failures-max` failures in a row disable the endpoint. A \
        `webhook.ping` is sent when it is registered; deliveries follow from now on.",
    params(WebhookPath),
    request_body = WebhookBody,
    responses(
        (status = 201, description = "Registered, once durable; the only answer with the secret", body = WebhookView),
        (status = 200, description = "Replaced, once durable; the only answer with the secret", body = WebhookView),
        AdminChangeErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn put_webhook(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, body): (_, WebhookBody) =
        admin_json(&request, payload, &state, parse_id(&path)).await?;
    let channel = body
        .channel
        .as_deref()
        .map(Channel::parse)
        .transpose()
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let registration = Registration {
        url: body.url,
        channel,
        events: body.events,
        secret: body.secret,
    };
    let (endpoint, created) = state.webhooks.put(id, registration).await?;
    tracing::info!(webhook = %endpoint.id, url = %endpoint.url, "Webhook endpoint registered.");
    let view = WebhookView::of(&endpoint, true);
    Ok(match created {
        true => HttpResponse::Created().json(view),
        false => HttpResponse::Ok().json(view),
    })
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhook_id}",
    tag = "webhooks",
    summary = "A webhook endpoint (without its secret)",
    params(WebhookPath),
    responses((status = 200, description = "The endpoint", body = WebhookView), ReadErrors),
    security(("bearer" = [])),
)]
pub async fn get_webhook(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let id = parse_id(&path)?;
    let endpoint = state
        .webhooks
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    Ok(HttpResponse::Ok().json(WebhookView::of(&endpoint, false)))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "Every webhook endpoint (without secrets)",
    responses((status = 200, description = "The endpoints, by id", body = Vec<WebhookView>), AdminReadErrors),
    security(("bearer" = [])),
)]
pub async fn list_webhooks(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let views: Vec<WebhookView> = state
        .webhooks
        .list()
        .iter()
        .map(|endpoint| WebhookView::of(endpoint, false))
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhook_id}",
    tag = "webhooks",
    summary = "Remove a webhook endpoint; deliveries stop",
    params(WebhookPath),
    responses((status = 204, description = "Removed, once durable"), AdminChangeErrors),
    security(("bearer" = [])),
)]
pub async fn delete_webhook(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let id = parse_id(&path)?;
    state.webhooks.delete(&id).await?;
    tracing::info!(webhook = %id, "Webhook endpoint removed.");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    summary = "The latest delivery attempts to an endpoint (up to 100, oldest first)",
    params(WebhookPath),
    responses((status = 200, description = "Attempts", body = Vec<DeliveryRecord>), ReadErrors),
    security(("bearer" = [])),
)]
pub async fn get_deliveries(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(state.webhooks.deliveries(&id)?))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{webhook_id}/replay",
    tag = "webhooks",
    summary = "Deliver again what came after a cursor",
    description = "Coalesced as always: per SKU and event type, the latest state after `since`. \
        A `since` older than the events the server keeps delivers every SKU's current \
        availability instead.",
    params(WebhookPath),
    request_body = ReplayBody,
    responses((status = 202, description = "Replay started"), AdminChangeErrors),
    security(("bearer" = [])),
)]
pub async fn post_replay(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, body): (_, ReplayBody) =
        admin_json(&request, payload, &state, parse_id(&path)).await?;
    let since = super::stream::check_cursor(body.since, "since")?;
    state.webhooks.replay(&id, since)?;
    Ok(HttpResponse::Accepted().finish())
}
