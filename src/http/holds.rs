//! Hold endpoints for checkout (channel keys): place a hold with an idempotency key,
//! read it, confirm, release, fulfil.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::body::{parse_json, read_limited};
use super::error::PROBLEM_JSON;
use super::openapi::{HoldChangeErrors, HoldIdPath, PlaceHoldErrors, ReadErrors};
use super::{ApiError, AppState};
use crate::admission::{CartLine, Permit, Refusal};
use crate::clock::now_ms;
use crate::domain::{Channel, CustomerId, HoldId, IdempotencyKey, Quantity, SkuId, UNITS_MAX};
use crate::hold::idempotency::{
    fingerprint, scope_key, Answer, Begin, IdempotencyRecord, RunTicket, StoredResponse,
};
use crate::hold::record::HoldView;
use crate::hold::{Action, HoldError, HoldLine, HoldRecord, PlaceHold};
use crate::metrics::{self as m, HoldOutcome};
use crate::sku::SkuError;
use crate::store::Event;

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
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineBody {
    #[schema(value_type = SkuId)]
    sku: String,
    #[schema(value_type = Quantity)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    quantity: i64,
}

/// What the fingerprint covers: the request as the client sent it, parsed, so bodies
/// that differ only in spacing or field order match, while server-side defaults (which
/// may change across a restart) do not make a faithful retry look different.
#[derive(Serialize)]
struct Canonical<'a> {
    lines: &'a [HoldLine],
    customer_id: &'a CustomerId,
    channel: &'a Channel,
    ttl_seconds: Option<i64>,
}

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
    let mut lines: Vec<HoldLine> = Vec::with_capacity(body.lines.len());
    for (index, line) in body.lines.iter().enumerate() {
        let sku =
            SkuId::parse(&line.sku).map_err(|e| invalid(format!("lines[{index}].sku: {e}")))?;
        let quantity = Quantity::parse(line.quantity)
            .map_err(|e| invalid(format!("lines[{index}].quantity: {e}")))?;
        match position.get(&sku) {
            None => {
                position.insert(sku.clone(), lines.len());
                lines.push(HoldLine { sku, quantity });
            }
            Some(&at) => {
                let merged = &mut lines[at];
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
    let channel = principal.hold_channel(named)?;
    let ttl_s = match body.ttl_seconds {
        None => settings.hold_ttl_s,
        Some(ttl) => hold_ttl_s("ttl_seconds", ttl, settings.hold_ttl_s_max)?,
    };
    Ok(PlaceHold {
        customer_limits: vec![None; lines.len()],
        lines,
        channel,
        customer_id,
        ttl_s,
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

/// A key's earlier answer, again.
fn replay(state: &AppState, answer: Answer) -> Result<HttpResponse, ApiError> {
    match answer {
        Answer::Stored(stored) => Ok(stored_answer(&stored, true)),
        Answer::Placed(id) => match state.reservations.book.get(&id) {
            Some(hold) => Ok(placed_answer(&hold, true)),
            // The book hands a placed answer over before it forgets the hold, so this
            // is a bug; say so rather than run the request a second time.
            None => {
                tracing::error!(hold_id = %id, "A key's hold is gone and its answer was not kept.");
                Err(ApiError::Unavailable(format!(
                    "the answer to this key (hold {id}) is no longer available"
                )))
            }
        },
    }
}

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
    let started = Instant::now();
    let principal = state.auth.authenticate(request)?;
    let key = idempotency_key(request)?;
    let body = read_limited(request, payload, state.settings.body_bytes_max).await?;
    let body: HoldBody = parse_json(&body)?;
    let ttl_seconds = body.ttl_seconds;
    let hold = validate(body, &principal, state)?;
    let canonical = Canonical {
        lines: &hold.lines,
        customer_id: &hold.customer_id,
        channel: &hold.channel,
        ttl_seconds,
    };
    let print = fingerprint(&serde_json::to_vec(&canonical).unwrap_or_default());
    let scope = scope_key(hold.channel.as_str(), key.as_str());
    loop {
        match state.idempotency.begin(scope.clone(), print) {
            Begin::Replay(answer) => return replay(state, answer),
            Begin::Wait(mut finished) => {
                // Wakes when the running request ends; then ask again.
                let _ = finished.changed().await;
            }
            Begin::Mismatch => return Err(ApiError::IdempotencyMismatch),
            Begin::Full(count) => {
                return Err(ApiError::Unavailable(format!(
                    "{count} idempotency keys are remembered, the configured maximum"
                )))
            }
            Begin::Run(ticket) => {
                let record = IdempotencyRecord {
                    scope_key: scope.to_string(),
                    fingerprint: print,
                    at_ms: now_ms(),
                };
                let state = state.clone().into_inner();
                let mut hold = hold;
                if let Err(closed) = apply_sales(&state, &mut hold, ttl_seconds.is_none()) {
                    // Depends on the time, so it is not remembered under the key.
                    drop(ticket);
                    return Err(closed);
                }
                let permit = match admit(request, &state, &hold).await {
                    Ok(permit) => permit,
                    Err(Refusal::SoldOut {
                        sku,
                        available,
                        requested,
                    }) => {
                        let refusal = SkuError::SoldOut {
                            sku,
                            available,
                            requested,
                        };
                        return refuse(&state, refusal, record, ticket, started).await;
                    }
                    Err(Refusal::QueueFull {
                        ticket: queue_ticket,
                        position,
                        retry_after_s,
                    }) => {
                        // Not remembered under the key: the retry is meant to run.
                        drop(ticket);
                        return Err(ApiError::QueueFull {
                            ticket: queue_ticket,
                            position,
                            retry_after_s,
                        });
                    }
                };
                // Runs detached so a client hanging up cannot stop a cart half-way.
                let run = actix_web::rt::spawn(async move {
                    let answer = run_place(Arc::clone(&state), hold, record, ticket, started).await;
                    drop(permit);
                    answer
                });
                return run.await.map_err(|err| {
                    ApiError::Unavailable(format!("hold placement failed: {err}"))
                })?;
            }
        }
    }
}

async fn run_place(
    state: Arc<AppState>,
    hold: PlaceHold,
    record: IdempotencyRecord,
    ticket: RunTicket,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let print = record.fingerprint;
    let placed_by = Arc::clone(ticket.scope_key());
    match state
        .reservations
        .place(hold, record.clone(), placed_by)
        .await
    {
        Ok(placed) => {
            ticket.complete(print, Answer::Placed(placed.id), record.at_ms);
            m::hold_outcome(HoldOutcome::Held, started.elapsed());
            tracing::debug!(hold_id = %placed.id, "Hold placed.");
            Ok(placed_answer(&placed, false))
        }
        Err(HoldError::Refused(refusal)) => refuse(&state, refusal, record, ticket, started).await,
        Err(err) => Err(err.into()),
    }
}

/// Applies the sales the cart's SKUs are on: a closed window refuses the cart, the
/// per-customer limit goes to the SKU actors, and the sale's TTL is the default.
fn apply_sales(state: &AppState, hold: &mut PlaceHold, default_ttl: bool) -> Result<(), ApiError> {
    let now = now_ms();
    let mut sale_ttl_s: Option<u64> = None;
    for (index, line) in hold.lines.iter().enumerate() {
        let Some(sale) = state.sales.sale_for(&line.sku) else {
            continue;
        };
        if !sale.is_open(now) {
            return Err(ApiError::SaleNotOpen {
                sale_id: sale.id.clone(),
                starts_at: crate::clock::rfc3339(sale.starts_at_ms),
                ends_at: crate::clock::rfc3339(sale.ends_at_ms),
            });
        }
        hold.customer_limits[index] = sale.per_customer_limit;
        if let Some(ttl) = sale.hold_ttl_s {
            sale_ttl_s = Some(sale_ttl_s.map_or(ttl, |shortest| shortest.min(ttl)));
        }
    }
    if let (true, Some(ttl)) = (default_ttl, sale_ttl_s) {
        hold.ttl_s = ttl;
    }
    Ok(())
}

/// A place in the admission queue for this cart (stock-aware: a sold-out line is
/// refused without queueing).
async fn admit(
    request: &HttpRequest,
    state: &AppState,
    hold: &PlaceHold,
) -> Result<Permit, Refusal> {
    let cart = hold
        .lines
        .iter()
        .filter_map(|line| {
            let entry = state.directory.get(&line.sku)?;
            Some(CartLine {
                sku: line.sku.clone(),
                quantity: line.quantity.units(),
                gauge: entry.gauge,
            })
        })
        .collect();
    let presented = request
        .headers()
        .get(QUEUE_TICKET)
        .and_then(|value| value.to_str().ok());
    let sale_queue = hold
        .lines
        .iter()
        .find_map(|line| state.sales.queue_for(&line.sku));
    let queue = sale_queue.as_ref().unwrap_or(&state.admission);
    queue.admit(presented, cart).await
}

/// Answers a refusal that ran (sold out, limit), remembering it under the idempotency key
/// (durably) so a retry gets the same answer.
async fn refuse(
    state: &AppState,
    refusal: SkuError,
    record: IdempotencyRecord,
    ticket: RunTicket,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let outcome = match refusal {
        SkuError::LimitExceeded { .. } => HoldOutcome::Limit,
        _ => HoldOutcome::SoldOut,
    };
    let refusal = ApiError::from(refusal);
    let stored = StoredResponse {
        status: StatusCode::CONFLICT.as_u16(),
        body: Arc::from(refusal.problem().to_string().into_bytes()),
    };
    state.journal.append(Event::Refused {
        idempotency: record.clone(),
        status: stored.status,
        body: stored.body.to_vec(),
    });
    state
        .journal
        .barrier()
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    ticket.complete(
        record.fingerprint,
        Answer::Stored(stored.clone()),
        record.at_ms,
    );
    m::hold_outcome(outcome, started.elapsed());
    Ok(stored_answer(&stored, false))
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
        .reservations
        .book
        .get(&id)
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
    let change =
        actix_web::rt::spawn(async move { state.reservations.change(hold.id, action).await });
    let changed = change
        .await
        .map_err(|err| ApiError::Unavailable(format!("hold change failed: {err}")))??;
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

/// `POST /v1/holds/{hold_id}/fulfil`: shipped.
#[utoipa::path(
    post,
    path = "/v1/holds/{hold_id}/fulfil",
    tag = "holds",
    summary = "Fulfil a confirmed hold: shipped",
    description = "Committed units and on-hand go down together. Repeating it answers 200.",
    params(HoldIdPath),
    responses(
        (status = 200, description = "The hold as it is now", body = HoldView),
        HoldChangeErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn fulfil(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    change_hold(request, &path, state, Action::Fulfil).await
}
