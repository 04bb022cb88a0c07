//! `/livez`, `/readyz` and `/metrics`, served by every binary.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use common::metrics::Registry;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

/// What a binary checks before it says it is ready: one named probe per dependency.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> BoxFuture<'_, Vec<(&'static str, bool)>>;
}

#[derive(Clone)]
struct Ops {
    readiness: Arc<dyn Readiness>,
    registry: Registry,
}

pub fn router(readiness: Arc<dyn Readiness>, registry: Registry) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({ "status": "alive" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops { readiness, registry })
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let checks = ops.readiness.check().await;
    let ready = checks.iter().all(|(_, ok)| *ok);
    let checks: Map<String, Value> =
        checks.into_iter().map(|(name, ok)| (name.to_owned(), json!(if ok { "ok" } else { "unavailable" }))).collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks })))
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], common::metrics::render(&ops.registry))
}
