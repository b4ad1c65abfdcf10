//! Stock endpoints for the back office (admin key): set, adjust, read a SKU; and the
//! cheap availability read a storefront polls (any key).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::admin_json;
use super::openapi::{AdminChangeErrors, AdminPutErrors, AvailabilityErrors, ReadErrors, SkuPath};
use super::{ApiError, AppState};
use crate::domain::{AdjustReason, LocationId, SkuId, UNITS_MAX};
use crate::sku::messages::{Adjust, GetView, SetStock};
use crate::sku::{SkuEntry, SkuError, SkuView};

/// A SKU's stock, as counted: a start-of-day hard reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"on_hand": 100, "safety_stock": 5}))]
pub(crate) struct StockBody {
    /// Physical units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    on_hand: i64,
    /// Units never offered online; kept when omitted (0 for a new SKU).
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    safety_stock: Option<i64>,
    /// Availability at or under which the SKU is low on stock; kept when omitted.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    low_stock_threshold: Option<i64>,
}

/// A change to on-hand stock, with why.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"delta": -3, "reason": "damaged"}))]
pub(crate) struct AdjustmentBody {
    /// Units to add (positive) or take away (negative); never 0.
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    delta: i64,
    reason: AdjustReason,
    /// The location whose stock moved; `default` when omitted.
    #[schema(value_type = Option<LocationId>)]
    location: Option<String>,
}

pub(crate) fn units(name: &str, value: i64) -> Result<u64, ApiError> {
    crate::domain::units(name, value).map_err(|err| ApiError::Invalid(err.to_string()))
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

/// A location the registry knows (`default` always), or 404.
pub(crate) fn known_location(state: &AppState, raw: &str) -> Result<LocationId, ApiError> {
    let id = LocationId::parse(raw).map_err(|err| ApiError::Invalid(err.to_string()))?;
    state
        .locations
        .require(&id)
        .map_err(|err| ApiError::not_found(err.to_string()))?;
    Ok(id)
}

pub(crate) fn mailbox_error(err: actix::MailboxError) -> ApiError {
    ApiError::Unavailable(format!("sku actor did not answer: {err}"))
}

/// Answers with the view once the change it reflects is durable.
pub(crate) async fn durable_view(
    state: &AppState,
    view: SkuView,
) -> Result<HttpResponse, ApiError> {
    state.durable().await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `PUT /v1/skus/{sku}`: creates the SKU or hard-resets its stock; holds stay.
#[utoipa::path(
    put,
    path = "/v1/skus/{sku}",
    tag = "stock",
    summary = "Create a SKU or reset its stock",
    description = "Sets `on_hand` and `safety_stock` (a start-of-day count). Holds and \
        commitments stay; availability is what is left.",
    params(SkuPath),
    request_body = StockBody,
    responses(
        (status = 200, description = "The SKU, once the change is durable", body = SkuView),
        AdminPutErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn put_sku(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (sku, body): (_, StockBody) =
        admin_json(&request, payload, &state, parse_sku(&path)).await?;
    let on_hand = units("on_hand", body.on_hand)?;
    let safety_stock = match body.safety_stock {
        Some(raw) => Some(units("safety_stock", raw)?),
        None => None,
    };
    let low_stock_threshold = match body.low_stock_threshold {
        Some(raw) => Some(units("low_stock_threshold", raw)?),
        None => None,
    };
    state.journal.accepting()?;
    let entry = state
        .directory
        .get_or_create(&sku)
        .map_err(|err| ApiError::conflict(err.to_string()))?;
    let view = entry
        .ask(
            SetStock {
                location: LocationId::default_location(),
                on_hand,
                safety_stock,
                low_stock_threshold,
                as_of_ms: None,
            },
            Some(state.actor_send_timeout()),
        )
        .await
        .map_err(mailbox_error)??;
    durable_view(&state, view).await
}

/// `POST /v1/skus/{sku}/adjustments`: moves on-hand by a delta for a reason.
#[utoipa::path(
    post,
    path = "/v1/skus/{sku}/adjustments",
    tag = "stock",
    summary = "Adjust on-hand stock",
    description = "A delta that would make `on_hand` negative is a 409 `conflict`.",
    params(SkuPath),
    request_body = AdjustmentBody,
    responses(
        (status = 200, description = "The SKU, once the change is durable", body = SkuView),
        AdminChangeErrors,
    ),
    security(("bearer" = [])),
)]
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
    let location = match body.location.as_deref() {
        Some(raw) => known_location(&state, raw)?,
        None => LocationId::default_location(),
    };
    let adjust = Adjust {
        location,
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
    state.journal.accepting()?;
    let entry = known_sku(state, sku)?;
    let view = entry
        .ask(change, Some(state.actor_send_timeout()))
        .await
        .map_err(mailbox_error)??;
    durable_view(state, view).await
}

/// `GET /v1/skus/{sku}`.
#[utoipa::path(
    get,
    path = "/v1/skus/{sku}",
    tag = "stock",
    summary = "Read a SKU's stock, per channel",
    params(SkuPath),
    responses((status = 200, description = "The SKU", body = SkuView), ReadErrors),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    get,
    path = "/v1/availability",
    tag = "stock",
    summary = "Units available per SKU: what a storefront shows",
    params(("sku" = Vec<SkuId>, Query, explode = true, style = Form,
        description = "One or more SKUs (at most `--availability-skus-max`)",
        min_items = 1, max_items = 100)),
    responses(
        (status = 200, description = "Available units by SKU",
            body = BTreeMap<String, u64>, example = json!({"TSHIRT": 93, "MUG": 0})),
        AvailabilityErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn get_availability(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.authenticate(&request)?;
    let limit = state.settings.availability_skus_max;
    let mut answer = BTreeMap::new();
    // Parameters are counted, not distinct SKUs: each costs a lookup.
    for (count, (name, value)) in
        form_urlencoded::parse(request.query_string().as_bytes()).enumerate()
    {
        if name != "sku" {
            return Err(ApiError::Invalid(format!(
                "unknown query parameter {name:?}; use sku="
            )));
        }
        if count >= limit {
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

/// Most SKUs one page of `GET /v1/skus` lists.
const SKU_PAGE_MAX: usize = 100;

/// `GET /v1/skus`: a page of SKUs, in id order.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SkuPageQuery {
    /// Only SKUs whose id starts with this.
    prefix: Option<String>,
    /// The last SKU of the previous page (its `next`).
    #[param(value_type = Option<SkuId>)]
    after: Option<String>,
    /// At most this many (1 to 100; 50 when omitted).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// A page of SKUs.
#[derive(serde::Serialize, ToSchema)]
pub(crate) struct SkuPage {
    skus: Vec<SkuView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SkuId>)]
    next: Option<SkuId>,
}

#[utoipa::path(
    get,
    path = "/v1/skus",
    tag = "stock",
    summary = "List SKUs, searchable by prefix",
    params(SkuPageQuery),
    responses((status = 200, description = "A page of SKUs in id order", body = SkuPage),
        ReadErrors),
    security(("bearer" = [])),
)]
pub async fn list_skus(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let query = web::Query::<SkuPageQuery>::from_query(request.query_string())
        .map_err(|err| ApiError::Invalid(format!("the query string: {err}")))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=SKU_PAGE_MAX).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit must be 1 to {SKU_PAGE_MAX}"
        )));
    }
    // A prefix longer than any id matches nothing: an empty page, not an error.
    let prefix = query.prefix.as_deref().unwrap_or("");
    let after = match query.after.as_deref() {
        Some(raw) => Some(parse_sku(raw)?),
        None => None,
    };
    let entries = state.directory.page(prefix, after.as_ref(), limit);
    let asks = entries
        .iter()
        .map(|entry| entry.ask(GetView, Some(state.actor_send_timeout())));
    let mut skus = Vec::with_capacity(entries.len());
    for view in futures_util::future::join_all(asks).await {
        skus.push(view.map_err(mailbox_error)?);
    }
    let next = match skus.len() == limit {
        true => entries.last().map(|entry| entry.sku.clone()),
        false => None,
    };
    Ok(HttpResponse::Ok().json(SkuPage { skus, next }))
}
