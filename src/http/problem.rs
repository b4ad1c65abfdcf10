//! The problem types every error answer names (RFC 9457): one table for the `type`, `title`
//! and status of each, the page its `type` URI resolves to (`GET /problems/<name>`), and the
//! OpenAPI document's list of them.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::ApiError;

/// Every kind of error answer the API gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    SoldOut,
    Conflict,
    LimitExceeded,
    SaleNotOpen,
    PayloadTooLarge,
    IdempotencyMismatch,
    QueueFull,
    Unavailable,
}

impl ProblemType {
    pub const ALL: [Self; 13] = [
        Self::InvalidRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::SoldOut,
        Self::Conflict,
        Self::LimitExceeded,
        Self::SaleNotOpen,
        Self::PayloadTooLarge,
        Self::IdempotencyMismatch,
        Self::QueueFull,
        Self::Unavailable,
    ];

    /// The last segment of the `type` URI.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid-request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::SoldOut => "sold-out",
            Self::Conflict => "conflict",
            Self::LimitExceeded => "limit-exceeded",
            Self::SaleNotOpen => "sale-not-open",
            Self::PayloadTooLarge => "payload-too-large",
            Self::IdempotencyMismatch => "idempotency-mismatch",
            Self::QueueFull => "queue-full",
            Self::Unavailable => "unavailable",
        }
    }

    pub fn uri(self) -> String {
        format!("/problems/{}", self.name())
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is not valid",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Not allowed for this key",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::SoldOut => "Sold out",
            Self::Conflict => "Conflicts with the current state",
            Self::LimitExceeded => "Per-customer limit reached",
            Self::SaleNotOpen => "The sale is not open",
            Self::PayloadTooLarge => "Payload too large",
            Self::IdempotencyMismatch => "Idempotency key reused",
            Self::QueueFull => "Checkout queue is full",
            Self::Unavailable => "Service unavailable",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::SoldOut | Self::Conflict | Self::LimitExceeded | Self::SaleNotOpen => 409,
            Self::PayloadTooLarge => 413,
            Self::IdempotencyMismatch => 422,
            Self::QueueFull => 429,
            Self::Unavailable => 503,
        }
    }

    /// What happened and what the client can do about it.
    pub fn description(self) -> &'static str {
        match self {
            Self::InvalidRequest => "A path id, header, query parameter or body field is malformed or out of range. The `detail` names the field. Fix the request; retrying it unchanged gets the same answer.",
            Self::Unauthorized => "No `Authorization: Bearer <key>` header, or a key the server does not know. Send the admin key or your channel's key.",
            Self::Forbidden => "The key is valid but may not do this: a channel key on an admin route, or on another channel's hold.",
            Self::NotFound => "No such SKU, hold, sale or path. A SKU exists once `PUT /v1/skus/{sku}` or a stock feed created it; an ended hold answers until its retention passes.",
            Self::MethodNotAllowed => "The path exists but not with this method.",
            Self::SoldOut => "The SKU has fewer units available to this channel than requested. Extensions: `sku`, `available`, `requested`. Nothing was held; offer fewer units or another SKU.",
            Self::Conflict => "The change does not fit the current state: confirming a hold that expired or was released (extensions `hold_id`, `hold_status`), an adjustment that would make stock negative, quotas beyond sellable stock, or a bound such as the open lines of one SKU.",
            Self::LimitExceeded => "The shopper already holds or bought as many units of this SKU as the sale allows. Extensions: `sku`, `limit`, `already`.",
            Self::SaleNotOpen => "The SKU is on a sale whose window is not open now. Extensions: `sale_id`, `starts_at`, `ends_at`.",
            Self::PayloadTooLarge => "The request body is larger than the configured limit (`--body-bytes-max`).",
            Self::IdempotencyMismatch => "This `Idempotency-Key` was first used with a different request. A retry must send the same body; a new attempt needs a new key.",
            Self::QueueFull => "Checkout is at capacity. Retry after `Retry-After` seconds with the header `Queue-Ticket: <ticket>` to keep your place. Extensions: `ticket`, `position`, `retry_after_s`.",
            Self::Unavailable => "The server is starting, shutting down, or cannot write its journal (e.g. a full disk). Nothing was changed; retry after `Retry-After` seconds, or on another node.",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// `GET /problems/{name}`: a short page a person reads when a `type` URI is followed.
#[utoipa::path(
    get,
    path = "/problems/{name}",
    tag = "operations",
    summary = "What a problem type means",
    params(("name" = String, Path, description = "The last segment of a problem's `type`",
        pattern = "^[a-z-]+$")),
    responses(
        (status = 200, description = "A short HTML page", content_type = "text/html; charset=utf-8",
            body = String),
        super::openapi::UnknownProblem,
    ),
)]
pub async fn describe(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let kind = ProblemType::from_name(&name)
        .ok_or_else(|| ApiError::not_found(format!("no problem type {:?}", name.as_str())))?;
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1><p>HTTP {status}, type <code>{uri}</code></p><p>{description}</p></body></html>\n",
        title = kind.title(),
        status = kind.status(),
        uri = kind.uri(),
        description = escape_html(kind.description()),
    );
    Ok(HttpResponse::Ok()
        .content_type(header::ContentType::html())
        .body(page))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_resolve_to_their_type() {
        for kind in ProblemType::ALL {
            assert_eq!(ProblemType::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ProblemType::from_name("no-such-problem"), None);
    }
}
