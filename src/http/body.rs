//! Reading request bodies within the configured byte limit and parsing them as JSON.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;

/// Reads the whole body, refusing with 413 as soon as it passes `limit` bytes (before
/// reading anything when Content-Length already says so).
pub async fn read_limited(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    refuse_declared_over(request, limit)?;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::Invalid(format!("could not read the body: {err}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// 413 before reading anything when Content-Length already says the body is too large.
pub fn refuse_declared_over(request: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(())
}

/// Parses JSON; serde_json's own depth limit refuses deeply nested input without
/// exhausting the stack, and its message (with line and column) becomes the detail.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::Invalid("the request needs a JSON body".into()));
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::Invalid(format!("invalid JSON body: {err}")))
}

pub async fn read_json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let body = read_limited(request, payload, limit).await?;
    parse_json(&body)
}

/// The preamble of every admin write, in its order: the key must be an admin's (401/403),
/// then the id in the path must be valid (400), then the body must be JSON within the
/// limit. The caller parses `id` (parsing changes nothing); it is looked at after auth.
pub async fn admin_json<I, T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    id: Result<I, ApiError>,
) -> Result<(I, T), ApiError> {
    state.auth.admin(request)?;
    let id = id?;
    let body = read_json(request, payload, state.settings.body_bytes_max).await?;
    Ok((id, body))
}
