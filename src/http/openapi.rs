//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and
//! the types they parse and serialize, served at `GET /openapi.json` and browsable at
//! `GET /docs`. The error answers of each operation are named here once per set
//! ([`problems!`]) and built from the problem-type table, so a status, title or type cannot
//! differ between the document and the server. `docs/openapi.json` is this document as
//! the default settings serve it (`holdfast openapi` prints it; a test compares them).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, Type};
use utoipa::{Modify, OpenApi, PartialSchema as _, ToSchema};

use super::problem::ProblemType;
use super::{ApiError, AppState};
use crate::config::Settings;
use crate::domain::{HoldStatus, SaleId, SkuId, UNITS_MAX};
use crate::sku::state::QuotaSpec;

/// An RFC 9457 problem document: what every 4xx and 5xx answer carries. Extensions appear
/// only on the types that name them.
#[derive(ToSchema)]
#[allow(dead_code)] // describes `ApiError::problem`'s output; never built as a struct
pub struct Problem {
    /// `/problems/<name>`; `GET` it for a description.
    #[schema(pattern = "^/problems/[a-z-]+$", example = "/problems/sold-out")]
    r#type: String,
    title: String,
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What happened, for a person.
    detail: String,
    /// `sold-out`, `limit-exceeded`, `not-found` of a SKU.
    sku: Option<SkuId>,
    /// `sold-out`: units available to this channel.
    available: Option<u64>,
    /// `sold-out`: units asked for.
    requested: Option<u64>,
    /// `limit-exceeded`: units one shopper may have.
    limit: Option<u64>,
    /// `limit-exceeded`: units the shopper already has.
    already: Option<u64>,
    /// `sale-not-open`.
    sale_id: Option<SaleId>,
    /// `sale-not-open`: RFC 3339.
    starts_at: Option<String>,
    /// `sale-not-open`: RFC 3339.
    ends_at: Option<String>,
    /// `conflict` on a hold.
    hold_id: Option<String>,
    /// `conflict` on a hold: the state it is in.
    hold_status: Option<HoldStatus>,
    /// `queue-full`: send it back as the `Queue-Ticket` header.
    ticket: Option<String>,
    /// `queue-full`: place in the queue.
    position: Option<u32>,
    /// `queue-full`: the same as `Retry-After`.
    retry_after_s: Option<u64>,
}

/// `{hold_id}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // describes the path; handlers read it as a string
pub struct HoldIdPath {
    /// The hold's id: a 26-character ULID.
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")]
    hold_id: String,
}

/// `{sku}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SkuPath {
    sku: SkuId,
}

/// `{sale_id}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SalePath {
    sale_id: SaleId,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct WebhookPath {
    webhook_id: crate::domain::WebhookId,
}

/// The error answers of a set of problem types, one response per status, each with an
/// example per type and the headers that status carries.
fn problem_responses(kinds: &[ProblemType]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ProblemType>> = BTreeMap::new();
    for kind in kinds {
        by_status.entry(kind.status()).or_default().push(*kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let names: Vec<String> = kinds.iter().map(|k| format!("`{}`", k.name())).collect();
            let examples = kinds.iter().map(|kind| {
                let example = Ref::new(format!("#/components/examples/{}", kind.name()));
                (kind.name(), RefOr::Ref(example))
            });
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .examples_from_iter(examples);
            let mut response = ResponseBuilder::new()
                .description(format!("Problem {}", names.join(", ")))
                .content(super::error::PROBLEM_JSON, content.build());
            let seconds = || {
                HeaderBuilder::new()
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some("^[0-9]+$")),
                    ))
                    .description(Some("Seconds to wait before retrying"))
                    .build()
            };
            match status {
                401 => {
                    response = response.header(
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(Some(String::schema()))
                            .description(Some("`Bearer`"))
                            .build(),
                    );
                }
                429 | 503 => response = response.header("Retry-After", seconds()),
                _ => {}
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// Declares a named set of error answers for `#[utoipa::path(responses(...))]`.
macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident => [$($kind:ident),+ $(,)?];)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    problem_responses(&[$(ProblemType::$kind),+])
                }
            }
        )+
    };
}

problems! {
    /// `POST /v1/holds`.
    PlaceHoldErrors => [InvalidRequest, Unauthorized, Forbidden, NotFound, SoldOut, Conflict,
        LimitExceeded, SaleNotOpen, PayloadTooLarge, IdempotencyMismatch, QueueFull, Unavailable];
    /// `GET /v1/holds/{hold_id}`, `GET /v1/skus/{sku}`, `GET /v1/sales/{sale_id}`.
    ReadErrors => [InvalidRequest, Unauthorized, Forbidden, NotFound, Unavailable];
    /// Confirm, release, fulfil.
    HoldChangeErrors => [InvalidRequest, Unauthorized, Forbidden, NotFound, Conflict, Unavailable];
    /// Admin writes to something that must exist.
    AdminChangeErrors => [InvalidRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, Unavailable];
    /// `PUT /v1/skus/{sku}`: creates the SKU.
    AdminPutErrors => [InvalidRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge,
        Unavailable];
    /// The stock feed and the admission limits.
    AdminBodyErrors => [InvalidRequest, Unauthorized, Forbidden, PayloadTooLarge, Unavailable];
    /// `GET /v1/admission`.
    AdminReadErrors => [Unauthorized, Forbidden, Unavailable];
    /// `GET /v1/availability`.
    AvailabilityErrors => [InvalidRequest, Unauthorized, NotFound, Unavailable];
    /// `GET /health/ready`.
    NotReady => [Unavailable];
    /// `GET /problems/{name}`.
    UnknownProblem => [NotFound];
}

/// `{"units": n}` or `{"percent": p}`, as [`QuotaSpec`] reads them; written by hand
/// because the derive cannot bound a tuple variant's value.
impl utoipa::PartialSchema for QuotaSpec {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        let one = |name: &str, maximum: u64, description: &str| {
            utoipa::openapi::ObjectBuilder::new()
                .property(
                    name,
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .maximum(Some(maximum))
                        .description(Some(description)),
                )
                .required(name)
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ))
        };
        utoipa::openapi::OneOfBuilder::new()
            .item(one("units", UNITS_MAX, "Units for the channel"))
            .item(one(
                "percent",
                100,
                "Percent of sellable stock, rounded down to units; the remainder stays in the pool",
            ))
            .description(Some("A channel's quota, in units or percent"))
            .into()
    }
}

impl ToSchema for QuotaSpec {}

/// The bearer scheme every `/v1` route requires, and one example problem document per
/// type, which the error answers refer to.
struct SharedComponents;

impl Modify for SharedComponents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for kind in ProblemType::ALL {
            let example = utoipa::openapi::example::ExampleBuilder::new()
                .summary(kind.title())
                .value(Some(json!({
                    "type": kind.uri(),
                    "title": kind.title(),
                    "status": kind.status(),
                    "detail": kind.description(),
                })))
                .build();
            components
                .examples
                .insert(kind.name().to_owned(), RefOr::T(example));
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin key, or a channel key for `/v1/holds*` and \
                         `/v1/availability`. A server started without keys runs open \
                         (loopback only).",
                    ))
                    .build(),
            ),
        );
    }
}

/// OpenAPI links: which operations can take an id from another's answer. They let a
/// client (and the fuzzer's stateful phase) follow a hold from its creation to its end.
/// (operation, status, the id's path parameter and where the answer has it, the
/// operations that take it).
const LINKS: [(&str, &str, &str, &str, &[&str]); 4] = [
    (
        "place_hold",
        "201",
        "hold_id",
        "$response.body#/hold_id",
        &["get_hold", "confirm", "release", "fulfil"],
    ),
    (
        "put_sku",
        "200",
        "sku",
        "$response.body#/sku",
        &[
            "get_sku",
            "post_adjustment",
            "put_allocation",
            "post_rebalance",
        ],
    ),
    (
        "put_sale",
        "200",
        "sale_id",
        "$response.body#/sale_id",
        &["get_sale"],
    ),
    (
        "put_webhook",
        "201",
        "webhook_id",
        "$response.body#/id",
        &[
            "get_webhook",
            "get_deliveries",
            "post_replay",
            "delete_webhook",
        ],
    ),
];

struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post];
            for operation in operations.into_iter().flatten() {
                let id = operation.operation_id.clone().unwrap_or_default();
                for (from, status, parameter, expression, targets) in LINKS {
                    if id != from {
                        continue;
                    }
                    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status)
                    else {
                        continue;
                    };
                    for target in targets {
                        let link = LinkBuilder::new()
                            .operation_id(*target)
                            .parameter(parameter, expression)
                            .build();
                        response.links.insert(target.to_string(), RefOr::T(link));
                    }
                }
                // A new SKU can be held at once: the stateful phase's way to a hold.
                if id == "put_sku" {
                    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut("200") {
                        let hold = LinkBuilder::new()
                            .operation_id("place_hold")
                            .request_body(Some(json!({
                                "lines": [{"sku": "$response.body#/sku", "quantity": 1}],
                                "customer_id": "c-1",
                            })))
                            .build();
                        response.links.insert("place_hold".into(), RefOr::T(hold));
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "holdfast",
        description = "A flash-sale reservation server: holds that expire, nothing acknowledged is lost. \
            Errors are RFC 9457 problem documents whose `type` resolves to a description.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::holds::place_hold,
        super::holds::get_hold,
        super::holds::confirm,
        super::holds::release,
        super::holds::fulfil,
        super::skus::put_sku,
        super::skus::get_sku,
        super::skus::post_adjustment,
        super::skus::get_availability,
        super::stream::get_stream,
        super::stream::get_changes,
        super::webhooks::put_webhook,
        super::webhooks::get_webhook,
        super::webhooks::delete_webhook,
        super::webhooks::list_webhooks,
        super::webhooks::get_deliveries,
        super::webhooks::post_replay,
        super::allocation::put_allocation,
        super::allocation::post_rebalance,
        super::sales::put_sale,
        super::sales::get_sale,
        super::sales::delete_sale,
        super::sales::list_sales,
        super::skus::list_skus,
        super::locations::put_location,
        super::locations::get_location,
        super::locations::list_locations,
        super::locations::put_channel,
        super::locations::get_channel,
        super::locations::put_sku_location,
        super::feeds::post_stock_feed,
        super::admission::get_admission,
        super::admission::put_admission,
        super::health::live,
        super::health::ready,
        super::health::metrics,
        super::problem::describe,
        openapi_json,
    ),
    // Types only parameters name; bodies' types are collected from the paths.
    components(schemas(Problem, crate::domain::IdempotencyKey, SkuId, SaleId)),
    modifiers(&SharedComponents, &Links),
    tags(
        (name = "holds", description = "Checkout: place, read, confirm, release and fulfil holds"),
        (name = "stock", description = "Back office: stock levels, adjustments, availability"),
        (name = "webhooks", description = "Availability pushed to your endpoints: Standard Webhooks v1, signed, coalesced, retried"),
        (name = "allocation", description = "Channel quotas before and during a sale"),
        (name = "sales", description = "Flash sales: window, SKUs, per-customer limit"),
        (name = "locations", description = "Warehouses and stores, stock at each, and how \
            channels route holds to them"),
        (name = "feeds", description = "Start-of-day stock feeds"),
        (name = "admission", description = "The checkout admission queue"),
        (name = "operations", description = "Health, metrics, this document, problem types"),
    ),
)]
struct ApiDoc;

/// Sets the value at a JSON pointer that the derived document is known to have.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    match doc.pointer_mut(pointer) {
        Some(slot) => *slot = value,
        None => tracing::error!(
            pointer,
            "The OpenAPI document lacks a limit it should show."
        ),
    }
}

/// The document with this server's configured limits in place of the defaults, so a
/// client generated from it, or a fuzzer, sees the bounds this server enforces.
pub fn document(settings: &Settings) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let hold = "/components/schemas/HoldBody/properties";
    set(
        &mut doc,
        &format!("{hold}/lines/maxItems"),
        json!(settings.hold_lines_max),
    );
    set(
        &mut doc,
        &format!("{hold}/ttl_seconds/maximum"),
        json!(settings.hold_ttl_s_max),
    );
    set(
        &mut doc,
        "/components/schemas/SaleBody/properties/hold_ttl_s/maximum",
        json!(settings.hold_ttl_s_max),
    );
    set(
        &mut doc,
        "/paths/~1v1~1availability/get/parameters/0/schema/maxItems",
        json!(settings.availability_skus_max),
    );
    // What the derive's attributes cannot say.
    if let Some(name) = doc.pointer_mut("/paths/~1problems~1{name}/get/parameters/0/schema") {
        let names: Vec<&str> = ProblemType::ALL.iter().map(|kind| kind.name()).collect();
        name["enum"] = json!(names);
    }
    if let Some(delta) = doc.pointer_mut("/components/schemas/AdjustmentBody/properties/delta") {
        delta["not"] = json!({"const": 0});
    }
    // An empty feed is refused (400): a failed export, not a day with no stock.
    for media in ["application~1x-ndjson", "text~1csv"] {
        let pointer = format!("/paths/~1v1~1feeds~1stock/post/requestBody/content/{media}/schema");
        if let Some(body) = doc.pointer_mut(&pointer) {
            body["minLength"] = json!(1);
        }
    }
    if let Some(skus) = doc.pointer_mut("/components/schemas/SaleBody/properties/skus") {
        skus["uniqueItems"] = json!(true);
    }
    if let Some(channels) =
        doc.pointer_mut("/components/schemas/AllocationBody/properties/channels")
    {
        channels["maxProperties"] = json!(super::allocation::CHANNELS_MAX);
        channels["propertyNames"] = json!({
            "pattern": "^[A-Za-z0-9._:-]{1,64}$",
            "not": {"const": crate::sku::state::POOL},
        });
    }
    doc
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub async fn openapi_json(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .insert_header(header::ContentType::json())
        .body(state.openapi.clone()))
}

/// The interactive reference at `/docs/`, its assets compiled into the binary; it reads
/// the document from `/openapi.json`.
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::new(["/openapi.json"]))
}

/// `GET /docs`: to `/docs/`, where the reference's relative asset paths resolve.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
