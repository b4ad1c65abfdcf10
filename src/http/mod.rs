//! The HTTP edge: one file per route group, `error` for problem+json answers, `auth` for
//! bearer keys, `body` for bounded JSON bodies. Handlers validate into domain types and
//! hand off to the core.

pub mod admission;
pub mod allocation;
pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod feeds;
pub mod health;
pub mod holds;
pub mod locations;
pub mod openapi;
pub mod problem;
pub mod sales;
pub mod skus;
pub mod stream;
pub mod webhooks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;

use crate::clock::Clock;
use crate::config::Settings;
use crate::hold::Checkout;
use crate::sku::SkuDirectory;
use crate::store::Journal;

/// What every handler can reach.
pub struct AppState {
    pub settings: Settings,
    pub auth: auth::Auth,
    pub directory: Arc<SkuDirectory>,
    /// Holds, end to end.
    pub checkout: Arc<Checkout>,
    pub admission: Arc<crate::admission::Admission>,
    pub sales: Arc<crate::sale::SaleBook>,
    /// Stock locations and the channels' routing policies.
    pub locations: Arc<crate::location::Locations>,
    pub journal: Journal,
    pub clock: Clock,
    /// False until recovery is done, and again once shutdown starts.
    pub ready: Arc<AtomicBool>,
    pub metrics: PrometheusHandle,
    /// The OpenAPI document with this server's limits, serialized once.
    pub openapi: web::Bytes,
    /// Durable availability events, for the stream and the change feed.
    pub hub: Arc<crate::broadcast::Hub>,
    pub subscribers: stream::Subscribers,
    pub webhooks: Arc<crate::webhook::Webhooks>,
}

impl AppState {
    pub fn actor_send_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.actor_send_timeout_ms)
    }

    /// Resolves once every change journaled before the call is durable (503 if it
    /// cannot be): an answer that acknowledges a change waits for this.
    pub async fn durable(&self) -> Result<(), ApiError> {
        self.journal
            .barrier()
            .await
            .map_err(|err| ApiError::Unavailable(err.to_string()))
    }
}

/// The route table, written once: it registers every route (a known path with a wrong
/// method answers 405 naming the methods it allows in `Allow`, RFC 9110), and lists the
/// patterns that label request metrics. The router tries resources in order, running a
/// regex for each with a `{...}` segment, so the checkout routes a sale hammers come first.
macro_rules! route_table {
    ($( $path:literal => { $m1:ident: $h1:path $(, $m:ident: $h:path)* } ),+ $(,)?) => {
        /// Every route pattern, in the order the router tries them.
        const PATTERNS: &[&str] = &[$($path),+];

        fn table_routes(config: &mut web::ServiceConfig) {
            $(
                config.service(
                    web::resource($path)
                        .default_service(web::to(|| {
                            method_not_allowed(concat!(stringify!($m1) $(, ", ", stringify!($m))*))
                        }))
                        .route(web::method(Method::$m1).to($h1))
                        $( .route(web::method(Method::$m).to($h)) )*
                );
            )+
        }
    };
}

route_table! {
    "/v1/holds" => { POST: holds::place_hold },
    "/v1/holds/{hold_id}" => { GET: holds::get_hold },
    "/v1/holds/{hold_id}/confirm" => { POST: holds::confirm },
    "/v1/holds/{hold_id}/release" => { POST: holds::release },
    "/v1/holds/{hold_id}/fulfil" => { POST: holds::fulfil },
    "/health/live" => { GET: health::live },
    "/health/ready" => { GET: health::ready },
    "/metrics" => { GET: health::metrics },
    "/v1/skus" => { GET: skus::list_skus },
    "/v1/skus/{sku}" => { GET: skus::get_sku, PUT: skus::put_sku },
    "/v1/skus/{sku}/adjustments" => { POST: skus::post_adjustment },
    "/v1/skus/{sku}/allocation" => { PUT: allocation::put_allocation },
    "/v1/skus/{sku}/locations/{location_id}" => { PUT: locations::put_sku_location },
    "/v1/locations" => { GET: locations::list_locations },
    "/v1/locations/{location_id}" => { GET: locations::get_location, PUT: locations::put_location },
    "/v1/channels/{channel}" => { GET: locations::get_channel, PUT: locations::put_channel },
    "/v1/skus/{sku}/allocation/rebalance" => { POST: allocation::post_rebalance },
    "/v1/sales" => { GET: sales::list_sales },
    "/v1/sales/{sale_id}" => { GET: sales::get_sale, PUT: sales::put_sale, DELETE: sales::delete_sale },
    "/v1/feeds/stock" => { POST: feeds::post_stock_feed },
    "/v1/availability" => { GET: skus::get_availability },
    "/v1/availability/stream" => { GET: stream::get_stream },
    "/v1/changes" => { GET: stream::get_changes },
    "/v1/webhooks" => { GET: webhooks::list_webhooks },
    "/v1/webhooks/{webhook_id}" => { GET: webhooks::get_webhook, PUT: webhooks::put_webhook, DELETE: webhooks::delete_webhook },
    "/v1/webhooks/{webhook_id}/deliveries" => { GET: webhooks::get_deliveries },
    "/v1/webhooks/{webhook_id}/replay" => { POST: webhooks::post_replay },
    "/v1/admission" => { GET: admission::get_admission, PUT: admission::put_admission },
    "/openapi.json" => { GET: openapi::openapi_json },
    "/console" => { GET: console::index },
    "/console/console.js" => { GET: console::script },
    "/console/console.css" => { GET: console::style },
    "/problems/{name}" => { GET: problem::describe },
    "/docs" => { GET: openapi::docs_redirect },
}

/// Registers every route, Swagger UI's files under `/docs/`, and 404 for the rest, all
/// answered as problem+json.
pub fn routes(config: &mut web::ServiceConfig) {
    table_routes(config);
    config
        .service(openapi::swagger_ui())
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such path"))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { allow })
}

/// The route pattern a path falls under, by its shape (a `{...}` segment matches any
/// one segment): a closed set of labels, found without running the router's regexes a
/// second time.
fn route_label(path: &str) -> &'static str {
    if path.starts_with("/docs/") {
        return "/docs";
    }
    PATTERNS
        .iter()
        .copied()
        .find(|pattern| {
            let mut wanted = pattern.split('/');
            let mut given = path.split('/');
            loop {
                match (wanted.next(), given.next()) {
                    (None, None) => return true,
                    (Some(want), Some(got)) if want.starts_with('{') || want == got => {}
                    _ => return false,
                }
            }
        })
        .unwrap_or("unmatched")
}

/// Whether the API may be served: false while recovering and once shutdown has begun.
#[derive(Clone)]
pub struct Readiness(pub Arc<AtomicBool>);

/// Answers 503 `unavailable` to everything but health and metrics while not ready, so no
/// request sees state that recovery has not finished rebuilding.
pub async fn readiness_gate(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let ready = request
        .app_data::<Readiness>()
        .is_some_and(|ready| ready.0.load(Ordering::Acquire));
    // Health, metrics and the static documentation do not read the state recovery builds.
    let path = request.path();
    let always_open = path.starts_with("/health/")
        || path == "/metrics"
        || path == "/openapi.json"
        || path.starts_with("/problems/")
        || path == "/docs"
        || path.starts_with("/docs/")
        || path == "/console"
        || path.starts_with("/console/");
    if ready || always_open {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let refusal = ApiError::Unavailable("not ready: recovering or shutting down".into());
    Ok(request
        .into_response(refusal.error_response())
        .map_into_right_body())
}

/// Counts every request by route pattern (a closed set), method and status class.
pub async fn record_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = route_label(request.path());
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let response = next.call(request).await?;
    crate::metrics::http_request(route, method, response.status().as_u16(), started.elapsed());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::{test, App};

    use super::*;

    #[actix_web::test]
    async fn the_api_answers_503_until_ready_while_health_stays_open() {
        let flag = Arc::new(AtomicBool::new(false));
        let app = test::init_service(
            App::new()
                .app_data(Readiness(Arc::clone(&flag)))
                .wrap(from_fn(readiness_gate))
                .route("/v1/skus/{sku}", web::get().to(HttpResponse::Ok))
                .route("/health/live", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let call = |path: &'static str| {
            test::call_service(&app, test::TestRequest::get().uri(path).to_request())
        };
        assert_eq!(call("/v1/skus/A").await.status(), 503);
        assert_eq!(call("/health/live").await.status(), 200);
        flag.store(true, Ordering::Release);
        assert_eq!(call("/v1/skus/A").await.status(), 200);
    }
}

#[cfg(test)]
mod labels {
    use super::{route_label, PATTERNS};

    #[test]
    fn every_route_labels_its_requests_and_nothing_else_does() {
        for pattern in PATTERNS {
            let path = pattern
                .replace("{hold_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{sku}", "TSHIRT")
                .replace("{sale_id}", "bf")
                .replace("{name}", "sold-out");
            assert_eq!(route_label(&path), *pattern);
        }
        assert_eq!(route_label("/docs/index.html"), "/docs");
        for unknown in ["/", "/v1", "/v1/holds/a/b", "/v1/skus/A/nope", "/v2/holds"] {
            assert_eq!(route_label(unknown), "unmatched", "{unknown}");
        }
    }
}
