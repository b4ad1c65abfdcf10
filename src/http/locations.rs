//! Locations and routing (admin key): `PUT /v1/locations/{location_id}` describes a
//! warehouse or store, `PUT /v1/channels/{channel}` sets how a channel's holds are routed,
//! and `PUT /v1/skus/{sku}/locations/{location_id}` sets a SKU's stock there.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::admin_json;
use super::openapi::{AdminChangeErrors, AdminPutErrors, AdminReadErrors, ReadErrors};
use super::skus::{durable_view, known_location, mailbox_error, parse_sku, units};
use super::{ApiError, AppState};
use crate::domain::{Channel, LocationId};
use crate::location::{
    ChannelPolicy, Location, LocationError, LocationKind, LocationStatus, Routing,
};
use crate::sku::messages::SetStock;
use crate::sku::SkuView;
use crate::store::Event;

/// Longest location name and region, in characters.
const NAME_CHARS_MAX: usize = 200;
const REGION_CHARS_MAX: usize = 64;

/// A warehouse or a store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "East warehouse", "kind": "warehouse", "status": "active",
    "priority": 10, "region": "us-east"}))]
pub(crate) struct LocationBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[serde(default)]
    kind: LocationKind,
    /// `paused` takes no new holds; `pickup_only` only lines pinned to it.
    #[serde(default)]
    status: LocationStatus,
    /// Lower first under the `priority` policy, and to break ties under the others.
    #[serde(default, deserialize_with = "crate::domain::integer::integer")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    priority: i64,
    /// Matched against a hold's `ship_to.region` by the `nearest` policy.
    #[schema(min_length = 1, max_length = 64)]
    region: Option<String>,
}

/// A location as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Location)]
pub(crate) struct LocationView {
    location_id: LocationId,
    name: String,
    kind: LocationKind,
    status: LocationStatus,
    priority: u32,
    region: Option<String>,
}

impl From<Location> for LocationView {
    fn from(location: Location) -> Self {
        Self {
            location_id: location.id,
            name: location.name,
            kind: location.kind,
            status: location.status,
            priority: location.priority,
            region: location.region,
        }
    }
}

/// How a channel's holds are routed to locations.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"routing": "nearest", "locations": ["wh-east", "wh-west"],
    "allow_split": true}))]
pub(crate) struct ChannelBody {
    #[serde(default)]
    routing: Routing,
    /// The locations the channel may sell from; every location when omitted.
    #[schema(value_type = Option<Vec<LocationId>>, max_items = 200)]
    locations: Option<Vec<String>>,
    /// Whether a line may be split over locations when no one location can fill it.
    #[serde(default = "yes")]
    allow_split: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, ToSchema)]
#[schema(as = ChannelPolicy)]
pub(crate) struct ChannelView {
    channel: Channel,
    routing: Routing,
    locations: Option<Vec<LocationId>>,
    allow_split: bool,
}

impl From<&ChannelPolicy> for ChannelView {
    fn from(policy: &ChannelPolicy) -> Self {
        Self {
            channel: policy.channel.clone(),
            routing: policy.routing,
            locations: policy.locations.clone(),
            allow_split: policy.allow_split,
        }
    }
}

/// A SKU's stock at one location.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"on_hand": 40, "safety_stock": 2}))]
pub(crate) struct SiteStockBody {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    on_hand: i64,
    /// Kept when omitted (0 where the SKU had no stock yet).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    safety_stock: Option<i64>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct LocationPath {
    location_id: LocationId,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ChannelPath {
    channel: Channel,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SkuLocationPath {
    sku: crate::domain::SkuId,
    location_id: LocationId,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid(detail.into())
}

fn parse_location_id(raw: &str) -> Result<LocationId, ApiError> {
    LocationId::parse(raw).map_err(|e| invalid(e.to_string()))
}

fn refused(err: LocationError) -> ApiError {
    match err {
        LocationError::Unknown(detail) => ApiError::not_found(detail),
        LocationError::Full(detail) | LocationError::Conflict(detail) => ApiError::conflict(detail),
    }
}

#[utoipa::path(
    put,
    path = "/v1/locations/{location_id}",
    tag = "locations",
    summary = "Describe a warehouse or store",
    description = "`default` is where stock is when no location is named; it may be \
        described too. At most `--locations-max` others.",
    params(LocationPath),
    request_body = LocationBody,
    responses((status = 200, description = "The location, once durable", body = LocationView),
        AdminPutErrors),
    security(("bearer" = [])),
)]
pub async fn put_location(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, body): (_, LocationBody) =
        admin_json(&request, payload, &state, parse_location_id(&path)).await?;
    let name_chars = body.name.chars().count();
    if name_chars == 0 || name_chars > NAME_CHARS_MAX {
        return Err(invalid(format!(
            "name must be 1 to {NAME_CHARS_MAX} characters"
        )));
    }
    if let Some(region) = &body.region {
        let chars = region.chars().count();
        if chars == 0 || chars > REGION_CHARS_MAX {
            return Err(invalid(format!(
                "region must be 1 to {REGION_CHARS_MAX} characters"
            )));
        }
    }
    let priority = u32::try_from(body.priority)
        .ok()
        .filter(|p| *p <= 1_000_000)
        .ok_or_else(|| invalid("priority must be 0 to 1000000"))?;
    let location = Location {
        id,
        name: body.name,
        kind: body.kind,
        status: body.status,
        priority,
        region: body.region,
    };
    state.locations.check(&location).map_err(refused)?;
    state.journal.accepting()?;
    state.journal.append(Event::LocationPut {
        location: location.clone(),
    });
    state.locations.put(location.clone());
    state.durable().await?;
    tracing::info!(location = %location.id, status = ?location.status, "Location set.");
    Ok(HttpResponse::Ok().json(LocationView::from(location)))
}

#[utoipa::path(
    get,
    path = "/v1/locations/{location_id}",
    tag = "locations",
    summary = "A location",
    params(LocationPath),
    responses((status = 200, description = "The location", body = LocationView), ReadErrors),
    security(("bearer" = [])),
)]
pub async fn get_location(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let id = parse_location_id(&path)?;
    let location = state
        .locations
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("unknown location {id}")))?;
    Ok(HttpResponse::Ok().json(LocationView::from(location)))
}

#[utoipa::path(
    get,
    path = "/v1/locations",
    tag = "locations",
    summary = "Every location, `default` first",
    responses((status = 200, description = "The locations", body = Vec<LocationView>),
        AdminReadErrors),
    security(("bearer" = [])),
)]
pub async fn list_locations(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let all: Vec<LocationView> = state
        .locations
        .all()
        .iter()
        .cloned()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    put,
    path = "/v1/channels/{channel}",
    tag = "locations",
    summary = "Set how a channel's holds are routed to locations",
    description = "`priority` (lowest number first), `most_stock`, `fewest_locations` (the \
        whole cart from as few locations as possible) or `nearest` (the hold's \
        `ship_to.region` first, then priority); the locations the channel may sell from; \
        whether a line may be split. A line takes the whole of its units from the first \
        location in that order that has them, else (if splitting is allowed) from each in \
        turn.",
    params(ChannelPath),
    request_body = ChannelBody,
    responses((status = 200, description = "The policy, once durable", body = ChannelView),
        AdminChangeErrors),
    security(("bearer" = [])),
)]
pub async fn put_channel(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let channel = Channel::parse(&path).map_err(|e| invalid(e.to_string()));
    let (channel, body): (_, ChannelBody) = admin_json(&request, payload, &state, channel).await?;
    let locations = match body.locations {
        None => None,
        Some(raw) => {
            if raw.len() > state.settings.locations_max + 1 {
                return Err(invalid("locations lists more locations than there can be"));
            }
            let mut ids: Vec<LocationId> = Vec::with_capacity(raw.len());
            for id in &raw {
                let id = parse_location_id(id)?;
                // Listed twice means the same as once.
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
    };
    let policy = ChannelPolicy {
        channel: state.auth.canonical(channel),
        routing: body.routing,
        locations,
        allow_split: body.allow_split,
    };
    state.locations.check_policy(&policy).map_err(refused)?;
    state.journal.accepting()?;
    state.journal.append(Event::ChannelPolicyPut {
        policy: policy.clone(),
    });
    let view = ChannelView::from(&policy);
    state.locations.put_policy(policy);
    state.durable().await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    get,
    path = "/v1/channels/{channel}",
    tag = "locations",
    summary = "A channel's routing policy (the default one if none was set)",
    params(ChannelPath),
    responses((status = 200, description = "The policy", body = ChannelView), ReadErrors),
    security(("bearer" = [])),
)]
pub async fn get_channel(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let channel = Channel::parse(&path).map_err(|e| invalid(e.to_string()))?;
    let policy = state.locations.policy(&state.auth.canonical(channel));
    Ok(HttpResponse::Ok().json(ChannelView::from(&*policy)))
}

#[utoipa::path(
    put,
    path = "/v1/skus/{sku}/locations/{location_id}",
    tag = "locations",
    summary = "Set a SKU's stock at one location",
    description = "Creates the SKU if needed. Holds and commitments at the location stay; \
        going below them is a 409 `conflict`.",
    params(SkuLocationPath),
    request_body = SiteStockBody,
    responses((status = 200, description = "The SKU, once durable", body = SkuView),
        AdminChangeErrors),
    security(("bearer" = [])),
)]
pub async fn put_sku_location(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (raw_sku, raw_location) = path.into_inner();
    let (sku, body): (_, SiteStockBody) =
        admin_json(&request, payload, &state, parse_sku(&raw_sku)).await?;
    let location = known_location(&state, &raw_location)?;
    let on_hand = units("on_hand", body.on_hand)?;
    let safety_stock = match body.safety_stock {
        Some(raw) => Some(units("safety_stock", raw)?),
        None => None,
    };
    state.journal.accepting()?;
    let entry = state
        .directory
        .get_or_create(&sku)
        .map_err(|err| ApiError::conflict(err.to_string()))?;
    let set = SetStock {
        location,
        on_hand,
        safety_stock,
        low_stock_threshold: None,
        as_of_ms: None,
    };
    let view: SkuView = entry
        .ask(set, Some(state.actor_send_timeout()))
        .await
        .map_err(mailbox_error)??;
    durable_view(&state, view).await
}
