//! The one error type of the REST API. Every refusal is JSON
//! `{"error": {"code", "message", "field"?}}` with the status that fits; internal details go
//! to the log, never to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use classroom_protocol::{ErrorBody, ErrorDetail};

use crate::auth::{RateLimited, TokenError};
use crate::error::StoreError;
use crate::model::FieldError;
use crate::restream::DestinationRefused;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// An unexpected failure: logged with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle this request; try again, and tell the operator if it persists",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            e.to_string(),
        )
        .with_field(e.field)
    }
}

impl From<DestinationRefused> for ApiError {
    fn from(e: DestinationRefused) -> Self {
        let code = match e {
            DestinationRefused::NotAllowed { .. } => "destination_not_allowed",
            DestinationRefused::Unresolvable { .. } => "destination_unresolvable",
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string()).with_field("url")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Duplicate { code, message } => ApiError::conflict(code, message),
            StoreError::Conflict { code, message } => ApiError::conflict(code, message),
            StoreError::Invalid(field) => field.into(),
            StoreError::LessonState(e) => ApiError::conflict("lesson_state", e.to_string()),
            StoreError::Database(sqlx::Error::PoolTimedOut) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_busy",
                "the database is busy; try again in a moment",
            )
            .with_retry_after(1),
            StoreError::Database(e) => ApiError::internal(e),
            StoreError::Storage(e) => ApiError::internal(e),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let code = match e {
            TokenError::Invalid => "invalid_token",
            TokenError::Expired => "token_expired",
            TokenError::WrongAudience => "wrong_token_kind",
        };
        ApiError::unauthenticated(code, e.to_string())
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        let secs = limited.retry_after.as_secs().max(1);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many attempts; try again in {secs} seconds"),
        )
        .with_retry_after(secs)
    }
}

impl ApiError {
    pub(crate) fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
