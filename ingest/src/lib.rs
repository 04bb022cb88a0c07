//! The event edge: `POST /events`, `POST /events/batch` and `POST /exposures` into Kafka,
//! 202 only once Kafka has every event (exposure) of the request.
//!
//! [`router`] is the one implementation of the event routes; the `api` binary serves it too
//! (the previous service's walkthrough posts events to the API's port).

pub mod events;
pub mod exposures;

use std::sync::Arc;

use anyhow::Context;
use axum::{middleware, Router};
use common::{config::Config, kafka::Sink, metrics, shutdown::CancellationToken};
use server::{
    auth::{require_api_key, ApiKeys},
    observe,
    ops::{self, Dependency, Readiness},
};
use tokio::net::TcpListener;

pub use events::{router, Events};

/// The whole ingest service: authenticated event routes plus health and metrics. Ingest
/// is ready only while Kafka answers.
pub fn app(config: &Config, events: Arc<Events>, registry: metrics::Registry, shutdown: CancellationToken) -> Router {
    let keys = ApiKeys::new(config.auth.api_keys.clone());
    let sink = events.sink().clone();
    let kafka = Dependency::new("kafka", true, move || {
        let sink = sink.clone();
        async move { sink.ping(ops::PROBE_TIMEOUT).await }
    });
    let routes = router(events).layer(middleware::from_fn_with_state(keys, require_api_key));
    let app = routes.merge(ops::router(Readiness::new(vec![kafka], shutdown), registry.clone()));
    observe::finish(app, &registry)
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests (each bounded
/// by the Kafka acknowledgement timeout) and flushes the producer.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = metrics::registry();
    let sink = Sink::new(&config.kafka, config.ingest.ack_timeout).context("create the Kafka producer")?;
    let events = Events::new(&config, sink.clone(), &registry);
    tracing::info!(addr = %listener.local_addr()?, topic = %config.kafka.topics.events, "ingest listening");
    server::serve(listener, app(&config, events, registry, shutdown.clone()), shutdown).await.context("serve")?;
    sink.flush().await;
    Ok(())
}
