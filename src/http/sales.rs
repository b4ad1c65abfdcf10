//! Sales (admin key): `PUT /v1/sales/{sale_id}` sets a sale's window, SKUs, per-customer
//! limit and hold TTL; `GET` shows it with live sell-through per SKU and channel.

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::admin_json;
use super::openapi::{AdminChangeErrors, AdminReadErrors, ReadErrors, SalePath};
use super::skus::{known_sku, mailbox_error};
use super::{ApiError, AppState};
use crate::admission::{AdmissionLimits, AdmissionStatus};
use crate::clock::rfc3339;
use crate::domain::{SaleId, SkuId};
use crate::sale::{AfterEnd, Sale, SaleRefusal};
use crate::sku::messages::GetView;
use crate::sku::state::ChannelView;
use crate::store::Event;

/// Most SKUs in one sale.
const SALE_SKUS_MAX: usize = 1_000;
/// Longest sale name, in characters.
const SALE_NAME_CHARS_MAX: usize = 200;

/// A flash sale: its window, its SKUs and its rules.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Black Friday", "starts_at": "2026-11-27T08:00:00Z",
    "ends_at": "2026-11-27T20:00:00Z", "skus": ["HOODIE"], "per_customer_limit": 2,
    "hold_ttl_s": 600}))]
pub(crate) struct SaleBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// RFC 3339; the sale is open from then.
    #[schema(format = DateTime)]
    starts_at: String,
    /// RFC 3339, after `starts_at`; the sale is over then.
    #[schema(format = DateTime)]
    ends_at: String,
    /// Existing SKUs, each once, none on another sale that has not ended.
    #[schema(value_type = Vec<SkuId>, min_items = 1, max_items = 1000)]
    skus: Vec<String>,
    /// Most units of one SKU a shopper may hold or buy in the sale.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    per_customer_limit: Option<i64>,
    /// TTL of the sale's holds when a request names none; at most `--hold-ttl-s-max`.
    #[schema(minimum = 1, maximum = 3600)]
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    hold_ttl_s: Option<i64>,
    /// The sale's own admission queue: its holds queue there, not in the server's.
    admission: Option<AdmissionLimits>,
    /// What the SKUs do once the window has ended: sell normally again (`open`, the
    /// default) or take no more holds (`closed`, an exclusive drop).
    #[serde(default)]
    after_end: AfterEnd,
}

/// A sale as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Sale)]
pub(crate) struct SaleView<'a> {
    #[schema(value_type = SaleId)]
    sale_id: &'a SaleId,
    name: &'a str,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime)]
    ends_at: String,
    /// Whether the window is open now.
    open: bool,
    skus: SaleSkus,
    per_customer_limit: Option<u64>,
    hold_ttl_s: Option<u64>,
    admission: Option<AdmissionLimits>,
    after_end: AfterEnd,
    /// The state of the sale's own admission queue, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<AdmissionStatus>,
}

/// `PUT` answers with the SKU ids; `GET` with each SKU's live sell-through.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SaleSkus {
    Ids(Vec<SkuId>),
    Progress(Vec<SaleSkuProgress>),
}

/// One SKU of a sale, live.
#[derive(Serialize, ToSchema)]
pub(crate) struct SaleSkuProgress {
    sku: SkuId,
    on_hand: u64,
    held: u64,
    committed: u64,
    available: u64,
    /// Committed units as a share of sellable stock, 0 to 1, to three places.
    #[schema(minimum = 0, maximum = 1)]
    sell_through: f64,
    /// Each channel with a quota or units in play, plus `pool`.
    channels: BTreeMap<String, ChannelView>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid(detail.into())
}

fn instant_ms(field: &str, text: &str) -> Result<u64, ApiError> {
    crate::clock::parse_rfc3339_ms(field, text).map_err(invalid)
}

fn parse_sale(id: SaleId, body: SaleBody, state: &AppState) -> Result<Sale, ApiError> {
    let name_chars = body.name.chars().count();
    if name_chars == 0 || name_chars > SALE_NAME_CHARS_MAX {
        return Err(invalid(format!(
            "name must be 1 to {SALE_NAME_CHARS_MAX} characters"
        )));
    }
    let starts_at_ms = instant_ms("starts_at", &body.starts_at)?;
    let ends_at_ms = instant_ms("ends_at", &body.ends_at)?;
    if ends_at_ms <= starts_at_ms {
        return Err(invalid("ends_at must be after starts_at"));
    }
    if body.skus.is_empty() || body.skus.len() > SALE_SKUS_MAX {
        return Err(invalid(format!("skus must list 1 to {SALE_SKUS_MAX} SKUs")));
    }
    let mut seen = HashSet::new();
    let mut skus = Vec::with_capacity(body.skus.len());
    for raw in &body.skus {
        let sku = SkuId::parse(raw).map_err(|e| invalid(e.to_string()))?;
        known_sku(state, &sku)?;
        if !seen.insert(sku.clone()) {
            return Err(invalid(format!("sku {sku} is listed twice")));
        }
        skus.push(sku);
    }
    let per_customer_limit =
        match body.per_customer_limit {
            None => None,
            Some(limit) => Some(u64::try_from(limit).ok().filter(|l| *l >= 1).ok_or_else(
                || {
                    invalid(format!(
                        "per_customer_limit must be at least 1, got {limit}"
                    ))
                },
            )?),
        };
    let hold_ttl_s = match body.hold_ttl_s {
        None => None,
        Some(ttl) => Some(super::holds::hold_ttl_s(
            "hold_ttl_s",
            ttl,
            state.settings.hold_ttl_s_max,
        )?),
    };
    if let Some(limits) = &body.admission {
        limits
            .validate()
            .map_err(|e| invalid(format!("admission: {e}")))?;
    }
    Ok(Sale {
        admission: body.admission,
        id,
        name: body.name,
        starts_at_ms,
        ends_at_ms,
        skus,
        per_customer_limit,
        hold_ttl_s,
        after_end: body.after_end,
    })
}

fn sale_view<'a>(state: &AppState, sale: &'a Sale, skus: SaleSkus, now_ms: u64) -> SaleView<'a> {
    SaleView {
        queue: state.sales.queue_status(&sale.id),
        sale_id: &sale.id,
        name: &sale.name,
        starts_at: rfc3339(sale.starts_at_ms),
        ends_at: rfc3339(sale.ends_at_ms),
        open: sale.is_open(now_ms),
        skus,
        per_customer_limit: sale.per_customer_limit,
        hold_ttl_s: sale.hold_ttl_s,
        admission: sale.admission,
        after_end: sale.after_end,
    }
}

fn parse_id(raw: &str) -> Result<SaleId, ApiError> {
    SaleId::parse(raw).map_err(|e| invalid(e.to_string()))
}

#[utoipa::path(
    put,
    path = "/v1/sales/{sale_id}",
    tag = "sales",
    summary = "Create or change a sale",
    description = "A hold on a sale SKU before the window is a 409 `sale-not-open`; beyond the \
        per-customer limit (held plus confirmed, across concurrent requests) a 409 \
        `limit-exceeded`. Once the window has ended the SKUs sell normally again, or, with \
        `after_end: closed`, are refused `sale-not-open` for good. A SKU on another sale \
        that has not ended is a 409 `conflict`.",
    params(SalePath),
    request_body = SaleBody,
    responses(
        (status = 200, description = "The sale, once durable", body = SaleView),
        AdminChangeErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn put_sale(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, body): (_, SaleBody) = admin_json(&request, payload, &state, parse_id(&path)).await?;
    let sale = parse_sale(id, body, &state)?;
    state
        .sales
        .check(&sale, state.clock.now_ms())
        .map_err(ApiError::conflict)?;
    state.journal.accepting()?;
    state.journal.append(Event::SalePut { sale: sale.clone() });
    if let Some(queue) = state.sales.put(sale.clone()) {
        queue.tick_in_background();
    }
    state.durable().await?;
    tracing::info!(sale_id = %sale.id, skus = sale.skus.len(), "Sale set.");
    Ok(HttpResponse::Ok().json(sale_view(
        &state,
        &sale,
        SaleSkus::Ids(sale.skus.clone()),
        state.clock.now_ms(),
    )))
}

/// The sale with live sell-through: per SKU its units and the share of sellable stock
/// committed, and per channel what is allocated, held, committed and available.
#[utoipa::path(
    get,
    path = "/v1/sales/{sale_id}",
    tag = "sales",
    summary = "A sale with live sell-through per SKU and channel",
    params(SalePath),
    responses((status = 200, description = "The sale", body = SaleView), ReadErrors),
    security(("bearer" = [])),
)]
pub async fn get_sale(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let id = parse_id(&path)?;
    let sale = state
        .sales
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("sale {id} not found")))?;
    let mut skus = Vec::with_capacity(sale.skus.len());
    for sku in &sale.skus {
        let view = known_sku(&state, sku)?
            .ask(GetView, Some(state.actor_send_timeout()))
            .await
            .map_err(mailbox_error)?;
        let sellable = view.held + view.committed + view.available;
        let sell_through = if sellable == 0 {
            0.0
        } else {
            view.committed as f64 / sellable as f64
        };
        skus.push(SaleSkuProgress {
            sku: sku.clone(),
            on_hand: view.on_hand,
            held: view.held,
            committed: view.committed,
            available: view.available,
            sell_through: (sell_through * 1_000.0).round() / 1_000.0,
            channels: view.channels,
        });
    }
    Ok(HttpResponse::Ok().json(sale_view(
        &state,
        &sale,
        SaleSkus::Progress(skus),
        state.clock.now_ms(),
    )))
}

/// `DELETE /v1/sales/{sale_id}`: forgets a sale that has not started or has ended.
#[utoipa::path(
    delete,
    path = "/v1/sales/{sale_id}",
    tag = "sales",
    summary = "Delete a sale that has not started or has ended",
    description = "Its SKUs sell as if they had never been on it. A sale whose window is open \
        is a 409 `conflict`: end it by moving its `ends_at`, so its shoppers see it end.",
    params(SalePath),
    responses((status = 204, description = "Deleted, once durable"), AdminChangeErrors),
    security(("bearer" = [])),
)]
pub async fn delete_sale(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let id = parse_id(&path)?;
    let sale = match state.sales.check_delete(&id, state.clock.now_ms()) {
        Ok(sale) => sale,
        Err(SaleRefusal::Unknown) => {
            return Err(ApiError::not_found(format!("sale {id} not found")))
        }
        Err(SaleRefusal::Running(sale)) => {
            return Err(ApiError::conflict(format!(
                "sale {id} is open until {}; set its ends_at to end it first",
                rfc3339(sale.ends_at_ms)
            )))
        }
    };
    state.journal.accepting()?;
    state.journal.append(Event::SaleDeleted { id: id.clone() });
    state.sales.remove(&id);
    state.durable().await?;
    tracing::info!(sale_id = %id, skus = sale.skus.len(), "Sale deleted.");
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/sales`: every sale kept (at most `--sales-max`), soonest start first.
#[utoipa::path(
    get,
    path = "/v1/sales",
    tag = "sales",
    summary = "Every sale, soonest start first",
    responses((status = 200, description = "The sales with their SKU ids", body = Vec<SaleView>),
        AdminReadErrors),
    security(("bearer" = [])),
)]
pub async fn list_sales(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let mut sales = state.sales.all();
    sales.sort_by(|a, b| (a.starts_at_ms, &a.id).cmp(&(b.starts_at_ms, &b.id)));
    let now_ms = state.clock.now_ms();
    let views: Vec<SaleView<'_>> = sales
        .iter()
        .map(|sale| sale_view(&state, sale, SaleSkus::Ids(sale.skus.clone()), now_ms))
        .collect();
    Ok(HttpResponse::Ok().json(views))
}
