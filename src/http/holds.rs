//! Hold endpoints for checkout (channel keys): place a hold with an idempotency key,
//! read it, confirm, release, fulfil.

use std::collections::HashMap;
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Principal;
use super::body::{parse_json, read_limited};
use super::error::PROBLEM_JSON;
use super::openapi::{HoldChangeErrors, HoldIdPath, PlaceHoldErrors, ReadErrors};
use super::{ApiError, AppState};
use crate::domain::{
    Channel, CustomerId, HoldId, IdempotencyKey, LocationId, Quantity, SkuId, UNITS_MAX,
};
use crate::hold::checkout::{Order, Placement};
use crate::hold::idempotency::StoredResponse;
use crate::hold::record::HoldView;
use crate::hold::{Action, HoldRecord, OrderLine, PlaceHold};
use crate::metrics::{self as m, HoldOutcome};
use crate::sku::SkuError;

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const QUEUE_TICKET: &str = "Queue-Ticket";

/// A cart to hold. A SKU named on several lines is held as one line with their total.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"sku": "TSHIRT", "quantity": 2}], "customer_id": "c-1"}))]
pub(crate) struct HoldBody {
    /// The maximum is `--hold-lines-max`.
    #[schema(min_items = 1, max_items = 50)]
    lines: Vec<LineBody>,
    #[schema(value_type = CustomerId)]
    customer_id: String,
    /// The channel whose stock the hold draws on. A channel key may only name its own
    /// (it is the default); the admin key may name any, `default` when it names none.
    #[schema(value_type = Option<Channel>)]
    channel: Option<String>,
    /// The hold's lifetime; the server's `--hold-ttl-s` (or the sale's) when omitted, at
    /// most `--hold-ttl-s-max`.
    #[schema(minimum = 1, maximum = 3600)]
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    ttl_seconds: Option<i64>,
    /// Where the order ships to, for the `nearest` routing policy.
    ship_to: Option<ShipTo>,
    /// Whether a line may be split over locations; the channel's policy when omitted.
    allow_split: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShipTo {
    /// Matched against the locations' `region`.
    #[schema(min_length = 1, max_length = 64)]
    region: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineBody {
    #[schema(value_type = SkuId)]
    sku: String,
    #[schema(value_type = Quantity)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    quantity: i64,
    /// Take the line only at this location (click and collect).
    #[schema(value_type = Option<LocationId>)]
    location: Option<String>,
}

/// Longest `ship_to.region`, in characters.
const REGION_CHARS_MAX: usize = 64;

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid(detail.into())
}

fn validate(
    body: HoldBody,
    principal: &Principal,
    state: &AppState,
) -> Result<PlaceHold, ApiError> {
    let settings = &state.settings;
    let lines_max = settings.hold_lines_max;
    if body.lines.is_empty() || body.lines.len() > lines_max {
        return Err(invalid(format!(
            "lines must have 1 to {lines_max} entries, got {}",
            body.lines.len()
        )));
    }
    // A SKU named on several lines (two add-to-cart clicks) is held as one line with
    // their total, in the place it was first named.
    let mut position: HashMap<SkuId, usize> = HashMap::new();
    let mut lines: Vec<OrderLine> = Vec::with_capacity(body.lines.len());
    for (index, line) in body.lines.iter().enumerate() {
        let sku =
            SkuId::parse(&line.sku).map_err(|e| invalid(format!("lines[{index}].sku: {e}")))?;
        let quantity = Quantity::parse(line.quantity)
            .map_err(|e| invalid(format!("lines[{index}].quantity: {e}")))?;
        let location = match line.location.as_deref() {
            Some(raw) => Some(
                LocationId::parse(raw)
                    .map_err(|e| invalid(format!("lines[{index}].location: {e}")))?,
            ),
            None => None,
        };
        match position.get(&sku) {
            None => {
                position.insert(sku.clone(), lines.len());
                lines.push(OrderLine {
                    sku,
                    quantity,
                    customer_limit: None,
                    location,
                });
            }
            Some(&at) => {
                let merged = &mut lines[at];
                // One line per SKU in a hold: the same SKU from two places is two holds.
                if merged.location != location {
                    return Err(ApiError::conflict(format!(
                        "lines[{index}]: sku {sku} is named on another line with another \
                         location; hold it at one location per hold"
                    )));
                }
                merged.quantity = merged.quantity.checked_add(quantity).ok_or_else(|| {
                    ApiError::conflict(format!(
                        "the lines ask for more than {UNITS_MAX} units of sku {sku}"
                    ))
                })?;
            }
        }
    }
    let customer_id = CustomerId::parse(&body.customer_id).map_err(|e| invalid(e.to_string()))?;
    let named = match body.channel.as_deref() {
        Some(raw) => Some(Channel::parse(raw).map_err(|e| invalid(e.to_string()))?),
        None => None,
    };
    let channel = state.auth.canonical(principal.hold_channel(named)?);
    let ttl_s = match body.ttl_seconds {
        None => settings.hold_ttl_s,
        Some(ttl) => hold_ttl_s("ttl_seconds", ttl, settings.hold_ttl_s_max)?,
    };
    let ship_to_region = match body.ship_to {
        Some(ship_to) => {
            let chars = ship_to.region.chars().count();
            if chars == 0 || chars > REGION_CHARS_MAX {
                return Err(invalid(format!(
                    "ship_to.region must be 1 to {REGION_CHARS_MAX} characters"
                )));
            }
            Some(ship_to.region)
        }
        None => None,
    };
    Ok(PlaceHold {
        lines,
        channel,
        customer_id,
        ttl_s,
        ship_to_region,
        allow_split: body.allow_split,
    })
}

/// A hold TTL from a request (a hold's or a sale's): 1 to the configured ceiling.
pub(crate) fn hold_ttl_s(field: &str, raw: i64, ttl_max: u64) -> Result<u64, ApiError> {
    u64::try_from(raw)
        .ok()
        .filter(|ttl| (1..=ttl_max).contains(ttl))
        .ok_or_else(|| invalid(format!("{field} must be 1 to {ttl_max}, got {raw}")))
}

fn idempotency_key(request: &HttpRequest) -> Result<IdempotencyKey, ApiError> {
    let raw = request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| invalid("the Idempotency-Key header is required"))?
        .to_str()
        .map_err(|_| invalid("the Idempotency-Key header must be ASCII"))?;
    IdempotencyKey::parse(raw).map_err(|e| invalid(e.to_string()))
}

/// 201 with the hold as placed: the first answer, and every replay of it.
fn placed_answer(hold: &HoldRecord, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::Created();
    response.content_type(header::ContentType::json());
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(hold.placed_json())
}

/// An answer kept as sent: a refusal that ran (409), or a placement whose hold the book
/// has since forgotten (201).
fn stored_answer(stored: &StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if status.is_success() {
        response.content_type(header::ContentType::json());
    } else {
        response.content_type(PROBLEM_JSON);
    }
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(stored.body.to_vec())
}

/// How the checkout's refusals read: the problem document, as journaled and replayed.
pub(crate) fn render_refusal(refusal: &SkuError) -> Vec<u8> {
    ApiError::from(refusal.clone())
        .problem()
        .to_string()
        .into_bytes()
}

/// `POST /v1/holds`.
#[utoipa::path(
    post,
    path = "/v1/holds",
    tag = "holds",
    summary = "Hold units of one or more SKUs for a shopper",
    description = "Reserves every line or none. The answer is durable before it is sent. A retry \
        with the same `Idempotency-Key` and body gets the first answer again (refusals too), \
        marked `Idempotent-Replayed: true`, and changes nothing. Past the admission queue's \
        limits the answer is 429 with a ticket that keeps the shopper's place.",
    params(
        ("Idempotency-Key" = IdempotencyKey, Header,
            description = "The client's name for this attempt; a retry sends the same one."),
        ("Queue-Ticket" = Option<String>, Header,
            description = "The `ticket` of an earlier 429, to keep the place it gave."),
    ),
    request_body = HoldBody,
    responses(
        (status = 201, description = "Held; the units are reserved until `expires_at`.",
            body = HoldView,
            headers(("Idempotent-Replayed" = String,
                description = "`true` when this is the stored answer to an earlier request"))),
        PlaceHoldErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn place_hold(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let answer = place_hold_inner(&request, payload, &state).await;
    if let Err(err) = &answer {
        let outcome = match err {
            ApiError::Unavailable(_) => HoldOutcome::Error,
            ApiError::QueueFull { .. } => HoldOutcome::QueueFull,
            _ => HoldOutcome::Rejected,
        };
        m::hold_outcome(outcome, started.elapsed());
    }
    answer
}

async fn place_hold_inner(
    request: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let principal = state.auth.authenticate(request)?;
    let key = idempotency_key(request)?;
    let body = read_limited(request, payload, state.settings.body_bytes_max).await?;
    let body: HoldBody = parse_json(&body)?;
    let ttl_seconds = body.ttl_seconds;
    let hold = validate(body, &principal, state)?;
    let queue_ticket = request
        .headers()
        .get(QUEUE_TICKET)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let order = Order {
        hold,
        key,
        ttl_seconds,
        queue_ticket,
        received,
    };
    Ok(match state.checkout.place(order).await? {
        Placement::Held { hold, replayed } => placed_answer(&hold, replayed),
        Placement::Kept { answer, replayed } => stored_answer(&answer, replayed),
    })
}

fn parse_hold_id(raw: &str) -> Result<HoldId, ApiError> {
    HoldId::parse(raw).map_err(|err| invalid(err.to_string()))
}

/// The hold, if it exists and this key may see it.
fn visible_hold(
    request: &HttpRequest,
    state: &AppState,
    raw_id: &str,
) -> Result<HoldRecord, ApiError> {
    let principal = state.auth.authenticate(request)?;
    let id = parse_hold_id(raw_id)?;
    let hold = state
        .checkout
        .hold(&id)
        .ok_or_else(|| ApiError::not_found(format!("hold {id} not found")))?;
    principal.may_access(&hold.channel)?;
    Ok(hold)
}

fn hold_answer(hold: &HoldRecord) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(hold.to_json())
}

/// `GET /v1/holds/{hold_id}`.
#[utoipa::path(
    get,
    path = "/v1/holds/{hold_id}",
    tag = "holds",
    summary = "Read a hold",
    params(HoldIdPath),
    responses(
        (status = 200, description = "The hold as it is now", body = HoldView),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn get_hold(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hold = visible_hold(&request, &state, &path)?;
    Ok(hold_answer(&hold))
}

async fn change_hold(
    request: HttpRequest,
    raw_id: &str,
    state: web::Data<AppState>,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    let hold = visible_hold(&request, &state, raw_id)?;
    let changed = state.checkout.change(hold.id, action).await?;
    Ok(hold_answer(&changed))
}

/// `POST /v1/holds/{hold_id}/confirm`: payment succeeded.
#[utoipa::path(
    post,
    path = "/v1/holds/{hold_id}/confirm",
    tag = "holds",
    summary = "Confirm a hold: payment succeeded",
    description = "The units move from held to committed. Repeating it answers 200 with the same hold. A hold that expired or was released is a 409 `conflict`.",
    params(HoldIdPath),
    responses(
        (status = 200, description = "The hold as it is now", body = HoldView),
        HoldChangeErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn confirm(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    change_hold(request, &path, state, Action::Confirm).await
}

/// `POST /v1/holds/{hold_id}/release`: shopper abandoned or payment failed.
#[utoipa::path(
    post,
    path = "/v1/holds/{hold_id}/release",
    tag = "holds",
    summary = "Release a hold: the shopper abandoned or payment failed",
    description = "The units go back on sale. Repeating it answers 200.",
    params(HoldIdPath),
    responses(
        (status = 200, description = "The hold as it is now", body = HoldView),
        HoldChangeErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn release(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    change_hold(request, &path, state, Action::Release).await
}

/// What shipped, when not everything did.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"locations": ["wh-east"]}))]
pub(crate) struct FulfilBody {
    /// The locations whose part of the hold shipped; the rest stays committed. Omitted:
    /// everything shipped.
    #[schema(value_type = Option<Vec<LocationId>>, min_items = 1, max_items = 200)]
    locations: Option<Vec<String>>,
}

/// `POST /v1/holds/{hold_id}/fulfil`: shipped.
#[utoipa::path(
    post,
    path = "/v1/holds/{hold_id}/fulfil",
    tag = "holds",
    summary = "Fulfil a confirmed hold: shipped",
    description = "Committed units and on-hand go down together, at the locations the hold \
        took them from. With no body everything ships; with `locations`, only the hold's \
        part there (the hold stays `confirmed`, listing `shipped_from`, until every \
        location it took units at has shipped). Repeating it answers 200.",
    params(HoldIdPath),
    request_body(content = Option<FulfilBody>, description = "Optional: a partial shipment"),
    responses(
        (status = 200, description = "The hold as it is now", body = HoldView),
        HoldChangeErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn fulfil(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(&request, payload, state.settings.body_bytes_max).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return change_hold(request, &path, state, Action::Fulfil).await;
    }
    // `null` and `{}` say nothing about where: everything shipped.
    let body: Option<FulfilBody> = parse_json(&body)?;
    let Some(named) = body.and_then(|body| body.locations) else {
        return change_hold(request, &path, state, Action::Fulfil).await;
    };
    if named.is_empty() || named.len() > FULFIL_LOCATIONS_MAX {
        return Err(invalid(format!(
            "locations must name 1 to {FULFIL_LOCATIONS_MAX} locations"
        )));
    }
    let mut locations: Vec<LocationId> = Vec::with_capacity(named.len());
    for raw in &named {
        let id = LocationId::parse(raw).map_err(|e| invalid(format!("locations: {e}")))?;
        if !locations.contains(&id) {
            locations.push(id);
        }
    }
    change_hold(request, &path, state, Action::FulfilAt(locations.into())).await
}

/// Most locations one partial fulfilment names.
const FULFIL_LOCATIONS_MAX: usize = 200;
