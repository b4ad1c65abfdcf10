//! Liveness, readiness and the Prometheus scrape endpoint. All open, no key needed.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::openapi::NotReady;
use super::{ApiError, AppState};

/// `{"status": "live"}` or `{"status": "ready"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ready")]
    status: &'static str,
}

#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    summary = "Liveness: the process runs",
    responses((status = 200, description = "Live", body = HealthStatus)),
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "live" })
}

/// 200 once recovery is done, 503 before that, while shutting down, and while the journal
/// cannot write (a node that cannot take a hold must not get shoppers).
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    summary = "Readiness: holds can be taken",
    responses((status = 200, description = "Ready", body = HealthStatus), NotReady),
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable(
            "not ready: recovering or shutting down".into(),
        ));
    }
    if let Some(failure) = state.journal.failure() {
        return Err(ApiError::Unavailable(format!("not ready: {failure}")));
    }
    Ok(HttpResponse::Ok().json(HealthStatus { status: "ready" }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4",
        content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
