//! `GET /v1/admission` shows the admission queue's limits and state; `PUT` changes the
//! limits at runtime (admin key), e.g. to open the gates wider once a sale settles.

use actix_web::{web, HttpRequest, HttpResponse};

use super::body::read_json;
use super::openapi::{AdminBodyErrors, AdminReadErrors};
use super::{ApiError, AppState};
use crate::admission::{AdmissionLimits, AdmissionStatus};

#[utoipa::path(
    get,
    path = "/v1/admission",
    tag = "admission",
    summary = "The admission queue: limits and state",
    responses(
        (status = 200, description = "Limits, requests in flight and queued", body = AdmissionStatus),
        AdminReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn get_admission(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    Ok(HttpResponse::Ok().json(state.admission.status()))
}

#[utoipa::path(
    put,
    path = "/v1/admission",
    tag = "admission",
    summary = "Change the admission limits at runtime",
    request_body = AdmissionLimits,
    responses(
        (status = 200, description = "The queue under its new limits", body = AdmissionStatus),
        AdminBodyErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn put_admission(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    let limits: AdmissionLimits =
        read_json(&request, payload, state.settings.body_bytes_max).await?;
    limits.validate().map_err(ApiError::Invalid)?;
    state.admission.set_limits(limits);
    tracing::info!(?limits, "Admission limits changed.");
    Ok(HttpResponse::Ok().json(state.admission.status()))
}
