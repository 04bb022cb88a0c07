//! The HTTP edge: `POST /events` and `POST /events/batch` into Kafka.
//!
//! This crate also holds the HTTP pieces every binary serves the same way (the error type,
//! API key check, `/livez` `/readyz` `/metrics`), so the `api` binary serves the very same
//! event routes and the `consumer` the same health routes. `common` stays free of HTTP.

pub mod auth;
pub mod error;
pub mod events;
pub mod extract;
pub mod ops;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{middleware, Router};
use common::{config::Config, metrics::Registry, shutdown::CancellationToken};
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

pub use events::Events;

/// How long a readiness probe waits for a dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct KafkaReady(Arc<Events>);

impl ops::Readiness for KafkaReady {
    fn check(&self) -> BoxFuture<'_, Vec<(&'static str, bool)>> {
        Box::pin(async move {
            self.0.observe();
            vec![("kafka", common::kafka::ping(&self.0.producer, PROBE_TIMEOUT).await)]
        })
    }
}

/// The whole ingest service: authenticated event routes plus health and metrics.
pub fn router(config: &Config, events: Arc<Events>, registry: Registry) -> Router {
    let keys = auth::ApiKeys::new(config.auth.api_keys.clone());
    let authenticated =
        events::router(events.clone()).layer(middleware::from_fn_with_state(keys, auth::require_api_key));
    authenticated
        .merge(ops::router(Arc::new(KafkaReady(events)), registry))
        .fallback(error::no_route)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(error::ApiError::Internal("handler panicked".into()))
        }))
        .layer(TraceLayer::new_for_http())
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests (each bounded
/// by the Kafka acknowledgement timeout) and flushes the producer.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = Registry::new();
    let producer =
        common::kafka::producer(&config.kafka, config.ingest.ack_timeout).context("create the Kafka producer")?;
    let events = Events::new(&config, producer, &registry);
    let app = router(&config, events.clone(), registry);
    tracing::info!(addr = %listener.local_addr()?, topic = %events.topic, "ingest listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serve")?;
    flush(&events.producer, config.ingest.ack_timeout).await;
    Ok(())
}

/// Middleware bounding every request by `limit` (use with
/// `middleware::from_fn_with_state(limit, request_timeout)`): past it the client gets a
/// 503 JSON error; the work it started is dropped and none of it was acknowledged.
pub async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::ApiError::unavailable(format!(
            "the request took longer than {limit:?}"
        ))),
    }
}

/// Waits for queued messages on shutdown; anything still queued after `timeout` was never
/// acknowledged to a client, so nothing promised is lost.
pub async fn flush(producer: &rdkafka::producer::FutureProducer, timeout: Duration) {
    let producer = producer.clone();
    let _ = tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer;
        producer.flush(timeout)
    })
    .await;
}
