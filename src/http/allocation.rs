//! Channel allocation (admin key): `PUT /v1/skus/{sku}/allocation` sets each channel's
//! quota in units or percent of sellable stock; `POST .../allocation/rebalance` moves
//! unsold quota back to the pool or toward the channels selling fastest.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::body::read_json;
use super::skus::{durable_view, known_sku, mailbox_error, parse_sku};
use super::{ApiError, AppState};
use crate::clock::now_ms;
use crate::domain::Channel;
use crate::sku::messages::{Rebalance, SetAllocation};
use crate::sku::state::{QuotaSpec, RebalancePolicy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationBody {
    channels: BTreeMap<String, QuotaSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RebalanceBody {
    policy: RebalancePolicy,
}

/// Most channels in one allocation.
const CHANNELS_MAX: usize = 64;

pub async fn put_allocation(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let sku = parse_sku(&path)?;
    let body: AllocationBody = read_json(&request, payload, state.settings.body_bytes_max).await?;
    if body.channels.len() > CHANNELS_MAX {
        return Err(ApiError::Invalid(format!(
            "at most {CHANNELS_MAX} channels per allocation"
        )));
    }
    let quotas = body
        .channels
        .into_iter()
        .map(|(name, spec)| {
            Ok((
                Channel::parse(&name).map_err(|e| ApiError::Invalid(e.to_string()))?,
                spec,
            ))
        })
        .collect::<Result<BTreeMap<_, _>, ApiError>>()?;
    state.journal.accepting().map_err(ApiError::Unavailable)?;
    let entry = known_sku(&state, &sku)?;
    let view = entry
        .ask(SetAllocation { quotas }, Some(state.actor_send_timeout()))
        .await
        .map_err(mailbox_error)??;
    durable_view(&state, view).await
}

pub async fn post_rebalance(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let sku = parse_sku(&path)?;
    let body: RebalanceBody = read_json(&request, payload, state.settings.body_bytes_max).await?;
    state.journal.accepting().map_err(ApiError::Unavailable)?;
    let entry = known_sku(&state, &sku)?;
    let rebalance = Rebalance {
        policy: body.policy,
        now_ms: now_ms(),
    };
    let view = entry
        .ask(rebalance, Some(state.actor_send_timeout()))
        .await
        .map_err(mailbox_error)??;
    durable_view(&state, view).await
}
