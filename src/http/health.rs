//! Liveness, readiness and the Prometheus scrape endpoint. All open, no key needed.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::{ApiError, AppState};

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "live"}))
}

/// 200 once recovery is done, 503 before that, while shutting down, and while the journal
/// cannot write (a node that cannot take a hold must not get shoppers).
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable(
            "not ready: recovering or shutting down".into(),
        ));
    }
    if let Some(failure) = state.journal.failure() {
        return Err(ApiError::Unavailable(format!("not ready: {failure}")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
