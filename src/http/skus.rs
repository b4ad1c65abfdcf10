//! Stock endpoints for the back office (admin key): set, adjust, read a SKU; and the
//! cheap availability read a storefront polls (any key).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::body::admin_json;
use super::{ApiError, AppState};
use crate::domain::{AdjustReason, SkuId, UNITS_MAX};
use crate::sku::messages::{Adjust, GetView, SetStock};
use crate::sku::{SkuEntry, SkuError, SkuView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockBody {
    on_hand: i64,
    #[serde(default)]
    safety_stock: i64,
    /// Availability at or under which the SKU is low on stock; kept when omitted.
    low_stock_threshold: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustmentBody {
    delta: i64,
    reason: AdjustReason,
}

fn units(name: &str, value: i64) -> Result<u64, ApiError> {
    u64::try_from(value)
        .ok()
        .filter(|units| *units <= UNITS_MAX)
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "{name} must be an integer from 0 to {UNITS_MAX}, got {value}"
            ))
        })
}

pub(crate) fn parse_sku(raw: &str) -> Result<SkuId, ApiError> {
    SkuId::parse(raw).map_err(|err| ApiError::Invalid(err.to_string()))
}

pub(crate) fn known_sku(state: &AppState, sku: &SkuId) -> Result<SkuEntry, ApiError> {
    state.directory.get(sku).ok_or_else(|| ApiError::NotFound {
        detail: format!("unknown sku {sku}"),
        sku: Some(sku.clone()),
    })
}

pub(crate) fn mailbox_error(err: actix::MailboxError) -> ApiError {
    ApiError::Unavailable(format!("sku actor did not answer: {err}"))
}

/// Answers with the view once the change it reflects is durable.
pub(crate) async fn durable_view(
    state: &AppState,
    view: SkuView,
) -> Result<HttpResponse, ApiError> {
    state
        .journal
        .barrier()
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `PUT /v1/skus/{sku}`: creates the SKU or hard-resets its stock; holds stay.
pub async fn put_sku(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (sku, body): (_, StockBody) =
        admin_json(&request, payload, &state, parse_sku(&path)).await?;
    let on_hand = units("on_hand", body.on_hand)?;
    let safety_stock = units("safety_stock", body.safety_stock)?;
    let low_stock_threshold = match body.low_stock_threshold {
        Some(raw) => Some(units("low_stock_threshold", raw)?),
        None => None,
    };
    state.journal.accepting().map_err(ApiError::Unavailable)?;
    let entry = state
        .directory
        .get_or_create(&sku)
        .map_err(|err| ApiError::conflict(err.to_string()))?;
    let view = entry
        .ask(
            SetStock {
                on_hand,
                safety_stock,
                low_stock_threshold,
            },
            Some(state.actor_send_timeout()),
        )
        .await
        .map_err(mailbox_error)??;
    durable_view(&state, view).await
}

/// `POST /v1/skus/{sku}/adjustments`: moves on-hand by a delta for a reason.
pub async fn post_adjustment(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (sku, body): (_, AdjustmentBody) =
        admin_json(&request, payload, &state, parse_sku(&path)).await?;
    if body.delta == 0 || body.delta.unsigned_abs() > UNITS_MAX {
        return Err(ApiError::Invalid(format!(
            "delta must be a non-zero integer from -{UNITS_MAX} to {UNITS_MAX}, got {}",
            body.delta
        )));
    }
    let adjust = Adjust {
        delta: body.delta,
        reason: body.reason,
    };
    change_sku(&state, &sku, adjust).await
}

/// Sends a change to an existing SKU's actor and answers with the SKU view once the
/// change is durable (503 while the journal refuses work, 404 for an unknown SKU).
pub(crate) async fn change_sku<M>(
    state: &AppState,
    sku: &SkuId,
    change: M,
) -> Result<HttpResponse, ApiError>
where
    M: actix::Message<Result = Result<SkuView, SkuError>> + Send + 'static,
    crate::sku::SkuActor: actix::Handler<M>,
{
    state.journal.accepting().map_err(ApiError::Unavailable)?;
    let entry = known_sku(state, sku)?;
    let view = entry
        .ask(change, Some(state.actor_send_timeout()))
        .await
        .map_err(mailbox_error)??;
    durable_view(state, view).await
}

/// `GET /v1/skus/{sku}`.
pub async fn get_sku(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let sku = parse_sku(&path)?;
    let entry = known_sku(&state, &sku)?;
    let view = entry
        .ask(GetView, Some(state.actor_send_timeout()))
        .await
        .map_err(mailbox_error)?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /v1/availability?sku=A&sku=B` → `{"A": 12, "B": 0}`, read from each actor's
/// published gauge without a message hop.
pub async fn get_availability(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.authenticate(&request)?;
    let limit = state.settings.availability_skus_max;
    let mut answer = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(request.query_string().as_bytes()) {
        if name != "sku" {
            return Err(ApiError::Invalid(format!(
                "unknown query parameter {name:?}; use sku="
            )));
        }
        if answer.len() >= limit {
            return Err(ApiError::Invalid(format!(
                "at most {limit} sku parameters per request"
            )));
        }
        let sku = parse_sku(&value)?;
        let available = known_sku(&state, &sku)?
            .gauge
            .available
            .load(Ordering::Relaxed);
        answer.insert(sku, available);
    }
    if answer.is_empty() {
        return Err(ApiError::Invalid(
            "name at least one sku: ?sku=A&sku=B".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(answer))
}
