//! Channel allocation (admin key): `PUT /v1/skus/{sku}/allocation` sets each channel's
//! quota in units or percent of sellable stock; `POST .../allocation/rebalance` moves
//! unsold quota back to the pool or toward the channels selling fastest.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::admin_json;
use super::openapi::{AdminChangeErrors, SkuPath};
use super::skus::{change_sku, parse_sku};
use super::{ApiError, AppState};
use crate::domain::Channel;
use crate::sku::messages::{Rebalance, SetAllocation};
use crate::sku::state::{QuotaSpec, RebalancePolicy};
use crate::sku::SkuView;

/// Each channel's quota; what no channel is given is the shared pool.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channels": {"web": {"units": 60}, "marketplace": {"percent": 30}}}))]
pub(crate) struct AllocationBody {
    /// By channel name (an id; not `pool`), at most 64 channels.
    channels: BTreeMap<String, QuotaSpec>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RebalanceBody {
    policy: RebalancePolicy,
    /// Answer with the SKU as the rebalance would leave it, changing nothing (a preview).
    #[serde(default)]
    dry_run: bool,
}

/// Most channels in one allocation.
pub(crate) const CHANNELS_MAX: usize = 64;

#[utoipa::path(
    put,
    path = "/v1/skus/{sku}/allocation",
    tag = "allocation",
    summary = "Set channel quotas",
    description = "A channel's hold takes from its own quota first, then from the pool. \
        Quotas beyond sellable stock, or below what a channel already holds and has sold \
        from its quota, are a 409 `conflict` naming the numbers.",
    params(SkuPath),
    request_body = AllocationBody,
    responses(
        (status = 200, description = "The SKU with its channels and pool", body = SkuView),
        AdminChangeErrors,
    ),
    security(("bearer" = [])),
)]
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

#[utoipa::path(
    post,
    path = "/v1/skus/{sku}/allocation/rebalance",
    tag = "allocation",
    summary = "Move unsold quota",
    description = "`release_unsold` gives every channel's unsold quota back to the pool; \
        `by_velocity` shares it out again by what each channel reserved in the last minutes. \
        With `dry_run` the answer is the SKU as the move would leave it, and nothing moves.",
    params(SkuPath),
    request_body = RebalanceBody,
    responses(
        (status = 200, description = "The SKU after the move", body = SkuView),
        AdminChangeErrors,
    ),
    security(("bearer" = [])),
)]
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
        now_ms: state.clock.now_ms(),
        dry_run: body.dry_run,
    };
    change_sku(&state, &sku, rebalance).await
}
