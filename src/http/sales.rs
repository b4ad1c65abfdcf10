//! Sales (admin key): `PUT /v1/sales/{sale_id}` sets a sale's window, SKUs, per-customer
//! limit and hold TTL; `GET` shows it with live sell-through per SKU and channel.

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::body::admin_json;
use super::skus::{known_sku, mailbox_error};
use super::{ApiError, AppState};
use crate::clock::{now_ms, rfc3339};
use crate::domain::{SaleId, SkuId};
use crate::sale::Sale;
use crate::sku::messages::GetView;
use crate::store::Event;

/// Most SKUs in one sale.
const SALE_SKUS_MAX: usize = 1_000;
/// Longest sale name, in characters.
const SALE_NAME_CHARS_MAX: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaleBody {
    name: String,
    starts_at: String,
    ends_at: String,
    skus: Vec<String>,
    per_customer_limit: Option<i64>,
    hold_ttl_s: Option<i64>,
    admission: Option<crate::admission::AdmissionLimits>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid(detail.into())
}

fn instant_ms(field: &str, text: &str) -> Result<u64, ApiError> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| invalid(format!("{field} must be an RFC 3339 time: {e}")))?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| invalid(format!("{field} is before 1970")))
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
    let ttl_max = state.settings.hold_ttl_s_max;
    let hold_ttl_s = match body.hold_ttl_s {
        None => None,
        Some(ttl) => Some(
            u64::try_from(ttl)
                .ok()
                .filter(|t| (1..=ttl_max).contains(t))
                .ok_or_else(|| invalid(format!("hold_ttl_s must be 1 to {ttl_max}, got {ttl}")))?,
        ),
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
    })
}

fn sale_json(sale: &Sale) -> Value {
    json!({
        "sale_id": sale.id,
        "name": sale.name,
        "starts_at": rfc3339(sale.starts_at_ms),
        "ends_at": rfc3339(sale.ends_at_ms),
        "open": sale.is_open(now_ms()),
        "skus": sale.skus,
        "per_customer_limit": sale.per_customer_limit,
        "hold_ttl_s": sale.hold_ttl_s,
        "admission": sale.admission,
    })
}

fn parse_id(raw: &str) -> Result<SaleId, ApiError> {
    SaleId::parse(raw).map_err(|e| invalid(e.to_string()))
}

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
        .check(&sale, now_ms())
        .map_err(ApiError::conflict)?;
    state.journal.accepting().map_err(ApiError::Unavailable)?;
    state.journal.append(Event::SaleSet { sale: sale.clone() });
    if let Some(queue) = state.sales.put(sale.clone()) {
        actix_web::rt::spawn(queue.run_ticks(crate::startup::ADMISSION_TICK));
    }
    state
        .journal
        .barrier()
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    tracing::info!(sale_id = %sale.id, skus = sale.skus.len(), "Sale set.");
    Ok(HttpResponse::Ok().json(sale_json(&sale)))
}

/// The sale with live sell-through: per SKU its units and the share of sellable stock
/// committed, and per channel what is allocated, held, committed and available.
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
        skus.push(json!({
            "sku": sku,
            "on_hand": view.on_hand,
            "held": view.held,
            "committed": view.committed,
            "available": view.available,
            "sell_through": (sell_through * 1_000.0).round() / 1_000.0,
            "channels": view.channels,
        }));
    }
    let mut answer = sale_json(&sale);
    answer["skus"] = Value::Array(skus);
    Ok(HttpResponse::Ok().json(answer))
}
