//! The one HTTP error type of our binaries, mapped to a response in one place.
//!
//! Body: `{"error": "<code>", "message": "<for people>", "field": "<path>"?}`. Server-side
//! failures are logged here and answered without internals.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule; `field` names the culprit.
    #[error("{message}")]
    Invalid { code: &'static str, message: String, field: Option<String> },
    /// 401
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// 413
    #[error("{0}")]
    TooLarge(String),
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503 with `Retry-After`: a dependency could not serve the request in time. Nothing
    /// was acknowledged; the client should retry.
    #[error("{message}")]
    Unavailable { message: String, retry_after_secs: u32 },
    /// 500: a bug or an unexpected failure; logged, never detailed to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code such as `invalid_event` or `unauthorized`.
    pub error: &'static str,
    pub message: String,
    /// The offending field, e.g. `[3].user_id` in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into(), field: None }
    }

    pub fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into(), field: Some(field.into()) }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable { message: message.into(), retry_after_secs: 1 }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, field) = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ("internal error".to_owned(), None)
            }
            ApiError::Unavailable { message, .. } => {
                tracing::warn!(%message, "dependency unavailable");
                (message.clone(), None)
            }
            ApiError::Invalid { message, field, .. } => (message.clone(), field.clone()),
            other => (other.to_string(), None),
        };
        let body = ErrorBody { error: self.code(), message, field };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Unavailable { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if let ApiError::Unauthorized = self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Turns axum's own extractor rejections (bad JSON, bad path or query) into our JSON errors.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection::*;
        match r {
            MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge("request body too large".into())
            }
            other => ApiError::invalid("invalid_json", other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::invalid("invalid_path", r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::invalid("invalid_query", r.body_text())
    }
}

/// JSON 404 for unknown routes and 405 bodies, so every answer is JSON.
pub async fn no_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}
