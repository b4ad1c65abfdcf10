//! Liveness, readiness and the Prometheus scrape endpoint. All open, no key needed.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::{ApiError, AppState};

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "live"}))
}

/// 200 once recovery is done, 503 before that and while shutting down.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.ready.load(Ordering::Acquire) {
        Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable(
            "not ready: recovering or shutting down".into(),
        ))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
