//! The HTTP edge: one file per route group, `error` for problem+json answers, `auth` for
//! bearer keys, `body` for bounded JSON bodies. Handlers validate into domain types and
//! hand off to the core.

pub mod admission;
pub mod allocation;
pub mod auth;
pub mod body;
pub mod error;
pub mod feeds;
pub mod health;
pub mod holds;
pub mod openapi;
pub mod problem;
pub mod sales;
pub mod skus;

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
    pub journal: Journal,
    pub clock: Clock,
    /// False until recovery is done, and again once shutdown starts.
    pub ready: Arc<AtomicBool>,
    pub metrics: PrometheusHandle,
    /// The OpenAPI document with this server's limits, serialized once.
    pub openapi: web::Bytes,
}

impl AppState {
    pub fn actor_send_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.actor_send_timeout_ms)
    }
}

/// Registers every route. A known path with a wrong method answers 405, an unknown path
/// 404, both as problem+json. The router tries resources in order, running a regex for each
/// with a `{...}` segment, so the checkout routes a sale hammers come first.
pub fn routes(config: &mut web::ServiceConfig) {
    // `allow` is what a 405 on the path names in its `Allow` header (RFC 9110).
    let resource = |path: &str, allow: &'static str| {
        web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
    };
    config
        .service(resource("/v1/holds", "POST").route(web::post().to(holds::place_hold)))
        .service(resource("/v1/holds/{hold_id}", "GET").route(web::get().to(holds::get_hold)))
        .service(
            resource("/v1/holds/{hold_id}/confirm", "POST").route(web::post().to(holds::confirm)),
        )
        .service(
            resource("/v1/holds/{hold_id}/release", "POST").route(web::post().to(holds::release)),
        )
        .service(
            resource("/v1/holds/{hold_id}/fulfil", "POST").route(web::post().to(holds::fulfil)),
        )
        .service(resource("/health/live", "GET").route(web::get().to(health::live)))
        .service(resource("/health/ready", "GET").route(web::get().to(health::ready)))
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)))
        .service(
            resource("/v1/skus/{sku}", "GET, PUT")
                .route(web::put().to(skus::put_sku))
                .route(web::get().to(skus::get_sku)),
        )
        .service(
            resource("/v1/skus/{sku}/adjustments", "POST")
                .route(web::post().to(skus::post_adjustment)),
        )
        .service(
            resource("/v1/skus/{sku}/allocation", "PUT")
                .route(web::put().to(allocation::put_allocation)),
        )
        .service(
            resource("/v1/skus/{sku}/allocation/rebalance", "POST")
                .route(web::post().to(allocation::post_rebalance)),
        )
        .service(
            resource("/v1/sales/{sale_id}", "GET, PUT")
                .route(web::put().to(sales::put_sale))
                .route(web::get().to(sales::get_sale)),
        )
        .service(resource("/v1/feeds/stock", "POST").route(web::post().to(feeds::post_stock_feed)))
        .service(resource("/v1/availability", "GET").route(web::get().to(skus::get_availability)))
        .service(
            resource("/v1/admission", "GET, PUT")
                .route(web::get().to(admission::get_admission))
                .route(web::put().to(admission::put_admission)),
        )
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi::openapi_json)))
        .service(resource("/problems/{name}", "GET").route(web::get().to(problem::describe)))
        .service(resource("/docs", "GET").route(web::get().to(openapi::docs_redirect)))
        .service(openapi::swagger_ui())
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such path"))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { allow })
}

/// The route pattern a path falls under, by its shape. A closed set of labels, found
/// without running the router's regexes a second time.
fn route_label(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health", "live"] => "/health/live",
        ["health", "ready"] => "/health/ready",
        ["metrics"] => "/metrics",
        ["v1", "availability"] => "/v1/availability",
        ["v1", "feeds", "stock"] => "/v1/feeds/stock",
        ["v1", "sales", _] => "/v1/sales/{sale_id}",
        ["v1", "admission"] => "/v1/admission",
        ["v1", "skus", _] => "/v1/skus/{sku}",
        ["v1", "skus", _, "adjustments"] => "/v1/skus/{sku}/adjustments",
        ["v1", "skus", _, "allocation"] => "/v1/skus/{sku}/allocation",
        ["v1", "skus", _, "allocation", "rebalance"] => "/v1/skus/{sku}/allocation/rebalance",
        ["v1", "holds"] => "/v1/holds",
        ["v1", "holds", _] => "/v1/holds/{hold_id}",
        ["v1", "holds", _, "confirm"] => "/v1/holds/{hold_id}/confirm",
        ["v1", "holds", _, "release"] => "/v1/holds/{hold_id}/release",
        ["v1", "holds", _, "fulfil"] => "/v1/holds/{hold_id}/fulfil",
        ["openapi.json"] => "/openapi.json",
        ["problems", _] => "/problems/{name}",
        ["docs", ..] => "/docs",
        _ => "unmatched",
    }
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
        || path.starts_with("/docs/");
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
