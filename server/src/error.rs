//! The one HTTP error type of our binaries, mapped to a response in one place.
//!
//! Body: `{"error": "<code>", "message": "<for people>", "field": "<path>"?}`. Server-side
//! failures are logged here, with their whole source chain, and answered without internals.
//! Storage and Kafka errors are converted into it at the edge (`From` impls), nowhere else.

use std::{error::Error as StdError, fmt};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use common::kafka::SendError;
use serde::Serialize;

/// A source error kept for the log line of a 5xx.
pub type Source = Box<dyn StdError + Send + Sync>;

/// Machine-readable error codes (the `error` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidEvent,
    InvalidExposure,
    EmptyBatch,
    InvalidJson,
    InvalidBody,
    InvalidGzip,
    InvalidQuery,
    InvalidPath,
    InvalidId,
    InvalidUserId,
    InvalidExperiment,
    InvalidAttributes,
    InvalidLayer,
    InvalidMetric,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule; `field` names the culprit.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String, field: Option<String> },
    /// 401
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 405
    #[error("this route does not accept that method")]
    MethodNotAllowed,
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
    Unavailable { message: String, source: Option<Source> },
    /// 500: a bug or an unexpected failure; logged with its cause, never detailed to the client.
    #[error("internal error: {context}")]
    Internal { context: String, source: Option<Source> },
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Machine-readable code such as `invalid_event` or `unauthorized`.
    pub error: ErrorCode,
    pub message: String,
    /// The offending field, e.g. `[3].user_id` in a batch; absent when no one field is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub field: Option<String>,
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into(), field: None }
    }

    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into(), field: Some(field.into()) }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable { message: message.into(), source: None }
    }

    pub fn unavailable_because(message: impl Into<String>, source: impl Into<Source>) -> Self {
        ApiError::Unavailable { message: message.into(), source: Some(source.into()) }
    }

    pub fn internal(context: impl Into<String>) -> Self {
        ApiError::Internal { context: context.into(), source: None }
    }

    pub fn internal_because(context: impl Into<String>, source: impl Into<Source>) -> Self {
        ApiError::Internal { context: context.into(), source: Some(source.into()) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Invalid { code, .. } => *code,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Unavailable { .. } => ErrorCode::Unavailable,
            ApiError::Internal { .. } => ErrorCode::Internal,
        }
    }
}

/// `error: cause: cause's cause`, for log lines.
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

fn log_source(source: &Option<Source>) -> String {
    source.as_deref().map(|s| Chain(s).to_string()).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let (message, field) = match self {
            ApiError::Internal { context, source } => {
                tracing::error!(%context, cause = %log_source(&source), "internal error");
                ("internal error".to_owned(), None)
            }
            ApiError::Unavailable { message, source } => {
                tracing::warn!(%message, cause = %log_source(&source), "dependency unavailable");
                (message, None)
            }
            ApiError::Invalid { message, field, .. } => (message, field),
            other => (other.to_string(), None),
        };
        let mut response = (status, Json(ErrorBody { error: code, message, field })).into_response();
        let headers = response.headers_mut();
        match code {
            ErrorCode::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            ErrorCode::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// Kafka did not take a request's messages: always a 503, nothing was acknowledged.
impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        let message = match &e {
            SendError::QueueFull => "the producer queue is full; retry shortly".to_owned(),
            SendError::Timeout(after) => {
                format!("Kafka did not acknowledge within {after:?}; nothing is guaranteed, retry")
            }
            other => format!("Kafka did not take the message: {other}"),
        };
        ApiError::unavailable_because(message, e)
    }
}

/// axum's own extractor rejections (bad JSON, bad path or query) as our JSON errors.
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
            other => ApiError::invalid(ErrorCode::InvalidJson, other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::invalid(ErrorCode::InvalidPath, r.body_text())
    }
}

/// JSON 404 for unknown routes, so every answer is JSON.
pub async fn no_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// JSON 405 for a known route asked with a method it does not serve (axum adds `Allow`).
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_snake_case() {
        let body = ErrorBody { error: ErrorCode::PayloadTooLarge, message: "m".into(), field: None };
        assert_eq!(serde_json::to_string(&body).expect("json"), r#"{"error":"payload_too_large","message":"m"}"#);
    }

    #[test]
    fn a_chain_names_every_cause() {
        let inner = std::io::Error::other("connection refused");
        let outer = ApiError::internal_because("Postgres", inner);
        let ApiError::Internal { source: Some(source), .. } = &outer else { panic!("internal") };
        assert_eq!(Chain(source.as_ref()).to_string(), "connection refused");
        assert_eq!(outer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
