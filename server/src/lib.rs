//! The HTTP pieces every binary serves the same way, so that `ingest`, `consumer` and `api`
//! share them without depending on each other, and `common` stays free of HTTP:
//!
//! - [`error`]: the JSON error envelope and its one `IntoResponse`;
//! - [`body`] and [`query`]: extractors whose rejections are those errors (bodies within a
//!   limit, gzip, 413 a client can read; query parameters named when they are wrong);
//! - [`auth`]: API keys compared in constant time;
//! - [`ops`]: `/livez`, `/readyz` per dependency, `/metrics`;
//! - [`observe`]: request ids, access logs, per-route metrics, panics as JSON 500s;
//! - [`serve`]: serving until shutdown, in-flight requests finished.

pub mod auth;
pub mod body;
pub mod error;
pub mod observe;
pub mod ops;
pub mod query;

use axum::Router;
use common::shutdown::CancellationToken;
use tokio::net::TcpListener;

pub use error::{ApiError, ErrorBody, ErrorCode};

/// Serves `app` until `shutdown` is cancelled, then stops accepting connections and lets
/// in-flight requests finish.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
