//! Channel allocation (admin key): `PUT /v1/skus/{sku}/allocation` sets each channel's
//! quota in units or percent of sellable stock; `POST .../allocation/rebalance` moves
//! unsold quota back to the pool or toward the channels selling fastest.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::body::admin_json;
use super::skus::{change_sku, parse_sku};
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
    let (sku, body): (_, AllocationBody) =
        admin_json(&request, payload, &state, parse_sku(&path)).await?;
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
    change_sku(&state, &sku, SetAllocation { quotas }).await
}

pub async fn post_rebalance(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (sku, body): (_, RebalanceBody) =
        admin_json(&request, payload, &state, parse_sku(&path)).await?;
    let rebalance = Rebalance {
        policy: body.policy,
        now_ms: now_ms(),
    };
    change_sku(&state, &sku, rebalance).await
}
