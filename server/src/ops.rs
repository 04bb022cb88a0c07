//! `/livez`, `/readyz` and `/metrics`, served by every binary.
//!
//! Readiness reports each dependency (`ok` or `unavailable`, each probe bounded by
//! [`PROBE_TIMEOUT`]) and fails only for what the binary's role needs: ingest needs Kafka,
//! the consumer Kafka and ClickHouse, while the api needs none of them to serve something
//! (results work from cached experiments through a Postgres outage, experiments through a
//! ClickHouse one), so it reports `degraded` and stays in the load balancer. A check for a
//! capability can name what it needs: `GET /readyz?require=postgres,kafka`. From the moment
//! shutdown starts, readiness is `shutting_down` (503), so load balancers stop sending
//! new work while in-flight requests finish.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Json, Router,
};
use common::{metrics::Registry, shutdown::CancellationToken};
use futures::future::{join_all, BoxFuture};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    error::{ApiError, ErrorCode},
    query::Query,
};

/// How long a readiness probe waits for a dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text format, version 0.0.4, in UTF-8.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Check = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// One dependency the binary probes before it says it is ready.
#[derive(Clone)]
pub struct Dependency {
    pub name: &'static str,
    /// Without it the binary cannot do its job, so it is not ready.
    pub required: bool,
    check: Check,
}

impl Dependency {
    pub fn new<F, Fut>(name: &'static str, required: bool, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self { name, required, check: Arc::new(move || Box::pin(check())) }
    }
}

#[derive(Clone)]
pub struct Readiness {
    dependencies: Arc<Vec<Dependency>>,
    shutdown: CancellationToken,
}

impl Readiness {
    pub fn new(dependencies: Vec<Dependency>, shutdown: CancellationToken) -> Self {
        Self { dependencies: Arc::new(dependencies), shutdown }
    }
}

#[derive(Clone)]
struct Ops {
    readiness: Readiness,
    registry: Registry,
}

pub fn router(readiness: Readiness, registry: Registry) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({ "status": "alive" })) }))
        .route("/readyz", get(readyz))
        .route("/prometheus", get(metrics))
        .with_state(Ops { readiness, registry })
}

#[derive(Deserialize)]
struct ReadyParams {
    /// Comma-separated dependency names that must be available, on top of the required ones.
    require: Option<String>,
}

async fn readyz(State(ops): State<Ops>, Query(params): Query<ReadyParams>) -> Result<impl IntoResponse, ApiError> {
    let deps = &ops.readiness.dependencies;
    let asked: Vec<&str> = params.require.as_deref().map(|r| r.split(',').map(str::trim).collect()).unwrap_or_default();
    if let Some(unknown) = asked.iter().find(|a| !deps.iter().any(|d| d.name == **a)) {
        let known: Vec<&str> = deps.iter().map(|d| d.name).collect();
        return Err(ApiError::field(
            ErrorCode::InvalidQuery,
            "require",
            format!("unknown dependency `{unknown}`; this binary has {known:?}"),
        ));
    }
    let results = join_all(deps.iter().map(|d| {
        let check = (d.check)();
        async move { tokio::time::timeout(PROBE_TIMEOUT, check).await.unwrap_or(false) }
    }))
    .await;
    let needed = |d: &Dependency| d.required || asked.contains(&d.name);
    let ready = deps.iter().zip(&results).all(|(d, ok)| *ok || !needed(d));
    let all_ok = results.iter().all(|ok| *ok);
    let status = match (ops.readiness.shutdown.is_cancelled(), ready, all_ok) {
        (true, _, _) => "shutting_down",
        (false, false, _) => "unavailable",
        (false, true, false) => "degraded",
        (false, true, true) => "ready",
    };
    let checks: Map<String, Value> = deps
        .iter()
        .zip(&results)
        .map(|(d, ok)| (d.name.to_owned(), json!(if *ok { "ok" } else { "unavailable" })))
        .collect();
    let code = if matches!(status, "ready" | "degraded") { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((code, Json(json!({ "status": status, "checks": checks }))))
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], common::metrics::render(&ops.registry))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn ready(app: &Router, uri: &str) -> (StatusCode, Value) {
        let response = app.clone().oneshot(axum::http::Request::get(uri).body(Body::empty()).expect("request")).await;
        let response = response.expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&body).expect("json"))
    }

    fn app(postgres_up: bool, shutdown: &CancellationToken) -> Router {
        let deps = vec![
            Dependency::new("kafka", true, || async { true }),
            Dependency::new("postgres", false, move || async move { postgres_up }),
            Dependency::new("slow", false, || async {
                tokio::time::sleep(PROBE_TIMEOUT * 10).await;
                true
            }),
        ];
        router(Readiness::new(deps, shutdown.clone()), Registry::new())
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_fails_only_for_what_is_needed_and_from_the_start_of_shutdown() {
        let shutdown = CancellationToken::new();
        let (status, body) = ready(&app(true, &shutdown), "/readyz").await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("degraded")), "{body}");
        assert_eq!(body["checks"], json!({"kafka": "ok", "postgres": "ok", "slow": "unavailable"}));
        let (status, body) = ready(&app(false, &shutdown), "/readyz").await;
        assert_eq!((status, body["checks"]["postgres"].as_str()), (StatusCode::OK, Some("unavailable")));
        let (status, _) = ready(&app(false, &shutdown), "/readyz?require=postgres").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a capability check names what it needs");
        let (status, body) = ready(&app(false, &shutdown), "/readyz?require=nope").await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("require")));
        shutdown.cancel();
        let (status, body) = ready(&app(true, &shutdown), "/readyz").await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("shutting_down")));
    }
}
