//! `GET /v1/admission` shows the admission queue's limits and state; `PUT` changes the
//! limits at runtime (admin key), e.g. to open the gates wider once a sale settles.

use actix_web::{web, HttpRequest, HttpResponse};

use super::body::read_json;
use super::{ApiError, AppState};
use crate::admission::AdmissionLimits;

pub async fn get_admission(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    Ok(HttpResponse::Ok().json(state.admission.status()))
}

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
