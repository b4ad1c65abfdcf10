//! Every error answer is RFC 9457 `application/problem+json` with a relative `type`
//! (`/problems/<name>`), a `title`, the `status`, a `detail` a person can act on, and
//! extensions where API.md names them.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

use crate::domain::{HoldId, HoldStatus, SkuId};
use crate::hold::checkout::CheckoutError;
use crate::hold::HoldError;
use crate::sku::SkuError;
use crate::store::JournalError;

use super::problem::ProblemType;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(String),
    #[error("a valid `Authorization: Bearer <key>` header is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{detail}")]
    NotFound { detail: String, sku: Option<SkuId> },
    /// A SKU actor's business refusal: sold out, or a per-customer limit.
    #[error(transparent)]
    Refused(SkuError),
    #[error("{detail}")]
    Conflict {
        detail: String,
        hold: Option<(HoldId, HoldStatus)>,
    },
    #[error("sale {sale_id} is open from {starts_at} until {ends_at}")]
    SaleNotOpen {
        sale_id: crate::domain::SaleId,
        starts_at: String,
        ends_at: String,
    },
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("method not allowed on this path; it allows {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    Unavailable(String),
    #[error("checkout is busy: you are number {position} in the queue; retry in {retry_after_s} s with your Queue-Ticket")]
    QueueFull {
        ticket: String,
        position: u32,
        retry_after_s: u64,
    },
}

impl ApiError {
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound {
            detail: detail.into(),
            sku: None,
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            hold: None,
        }
    }

    /// The problem type this error is answered as.
    pub fn kind(&self) -> ProblemType {
        match self {
            Self::Invalid(_) => ProblemType::InvalidRequest,
            Self::Unauthorized => ProblemType::Unauthorized,
            Self::Forbidden(_) => ProblemType::Forbidden,
            Self::NotFound { .. } => ProblemType::NotFound,
            Self::Refused(SkuError::SoldOut { .. }) => ProblemType::SoldOut,
            Self::Refused(SkuError::LimitExceeded { .. }) => ProblemType::LimitExceeded,
            Self::Refused(_) => ProblemType::Conflict,
            Self::Conflict { .. } => ProblemType::Conflict,
            Self::SaleNotOpen { .. } => ProblemType::SaleNotOpen,
            Self::IdempotencyMismatch => ProblemType::IdempotencyMismatch,
            Self::PayloadTooLarge(_) => ProblemType::PayloadTooLarge,
            Self::MethodNotAllowed { .. } => ProblemType::MethodNotAllowed,
            Self::Unavailable(_) => ProblemType::Unavailable,
            Self::QueueFull { .. } => ProblemType::QueueFull,
        }
    }

    /// The problem document, also stored for idempotent replay of refusals.
    pub fn problem(&self) -> Value {
        let kind = self.kind();
        let mut body = Map::new();
        body.insert("type".into(), json!(kind.uri()));
        body.insert("title".into(), json!(kind.title()));
        body.insert("status".into(), json!(self.status_code().as_u16()));
        body.insert("detail".into(), json!(self.to_string()));
        match self {
            Self::Refused(SkuError::SoldOut {
                sku,
                available,
                requested,
            }) => {
                body.insert("sku".into(), json!(sku));
                body.insert("available".into(), json!(available));
                body.insert("requested".into(), json!(requested));
            }
            Self::QueueFull {
                ticket,
                position,
                retry_after_s,
            } => {
                body.insert("ticket".into(), json!(ticket));
                body.insert("position".into(), json!(position));
                body.insert("retry_after_s".into(), json!(retry_after_s));
            }
            Self::Refused(SkuError::LimitExceeded {
                sku,
                limit,
                already,
                ..
            }) => {
                body.insert("sku".into(), json!(sku));
                body.insert("limit".into(), json!(limit));
                body.insert("already".into(), json!(already));
            }
            Self::SaleNotOpen {
                sale_id,
                starts_at,
                ends_at,
            } => {
                body.insert("sale_id".into(), json!(sale_id));
                body.insert("starts_at".into(), json!(starts_at));
                body.insert("ends_at".into(), json!(ends_at));
            }
            Self::NotFound { sku: Some(sku), .. } => {
                body.insert("sku".into(), json!(sku));
            }
            Self::Conflict {
                hold: Some((id, status)),
                ..
            } => {
                body.insert("hold_id".into(), json!(id.to_string()));
                body.insert("hold_status".into(), json!(status));
            }
            _ => {}
        }
        Value::Object(body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(PROBLEM_JSON);
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        match self {
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, *allow));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::QueueFull { retry_after_s, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            _ => {}
        }
        response.body(self.problem().to_string())
    }
}

/// How a SKU actor's refusal reads to a client; the one place for it, whether the
/// refusal came from a stock endpoint, a hold, or the admission queue's sold-out check.
impl From<SkuError> for ApiError {
    fn from(err: SkuError) -> Self {
        match err {
            SkuError::SoldOut { .. } | SkuError::LimitExceeded { .. } => Self::Refused(err),
            SkuError::Invalid(detail) => Self::Invalid(detail),
            SkuError::Conflict(detail) => Self::conflict(detail),
            other @ SkuError::HoldLinesFull { .. } => Self::conflict(other.to_string()),
        }
    }
}

impl From<JournalError> for ApiError {
    fn from(err: JournalError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

impl From<CheckoutError> for ApiError {
    fn from(err: CheckoutError) -> Self {
        match err {
            CheckoutError::Hold(err) => err.into(),
            CheckoutError::SaleNotOpen(sale) => ApiError::SaleNotOpen {
                sale_id: sale.id.clone(),
                starts_at: crate::clock::rfc3339(sale.starts_at_ms),
                ends_at: crate::clock::rfc3339(sale.ends_at_ms),
            },
            CheckoutError::QueueFull {
                ticket,
                position,
                retry_after_s,
            } => ApiError::QueueFull {
                ticket,
                position,
                retry_after_s,
            },
            CheckoutError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
        }
    }
}

impl From<HoldError> for ApiError {
    fn from(err: HoldError) -> Self {
        match err {
            HoldError::UnknownSku(sku) => Self::NotFound {
                detail: format!("unknown sku {sku}"),
                sku: Some(sku),
            },
            HoldError::Refused(refusal) => refusal.into(),
            HoldError::NotFound(id) => Self::not_found(format!("hold {id} not found")),
            HoldError::Conflict(hold) => Self::Conflict {
                detail: format!("hold {} is {}", hold.id, hold.status.as_str()),
                hold: Some((hold.id, hold.status)),
            },
            HoldError::Unavailable(why) => Self::Unavailable(why.to_string()),
            HoldError::Route(why) => Self::conflict(why.to_string()),
            HoldError::NotAt(why) => Self::conflict(why),
        }
    }
}
