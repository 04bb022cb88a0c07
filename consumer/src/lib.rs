//! `consumer`: reads `events` and `exposures` as a consumer group and writes them to
//! ClickHouse in large batches, committing offsets only after the insert.

pub mod metrics;
pub mod pipeline;
pub mod rows;

use std::sync::Arc;

use anyhow::Context;
use common::{config::Config, metrics::Registry, shutdown::CancellationToken};
use futures::future::BoxFuture;
use ingest::ops::{self, Readiness};
use rdkafka::consumer::StreamConsumer;
use tokio::net::TcpListener;

pub use pipeline::{Faults, Pipeline};

struct Ready {
    kafka: Arc<StreamConsumer>,
    clickhouse: clickhouse::Client,
}

impl Readiness for Ready {
    fn check(&self) -> BoxFuture<'_, Vec<(&'static str, bool)>> {
        Box::pin(async move {
            let (kafka, clickhouse) = tokio::join!(
                common::kafka::ping(&self.kafka, ingest::PROBE_TIMEOUT),
                tokio::time::timeout(ingest::PROBE_TIMEOUT, common::clickhouse::ping(&self.clickhouse)),
            );
            vec![("kafka", kafka), ("clickhouse", clickhouse.unwrap_or(false))]
        })
    }
}

/// Runs the pipeline and serves `/livez`, `/readyz`, `/metrics` on `ops_listener` until
/// `shutdown`; then the pipeline flushes, commits and leaves the group.
pub async fn run(config: Config, ops_listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = Registry::new();
    let pipeline =
        Pipeline::new(config, metrics::ConsumerMetrics::new(&registry)).context("create the Kafka consumer")?;
    let ready = Arc::new(Ready { kafka: pipeline.kafka(), clickhouse: pipeline.clickhouse() });
    let app = ops::router(ready, registry).fallback(ingest::error::no_route);
    tracing::info!(addr = %ops_listener.local_addr()?, "consumer health and metrics listening");
    let ops_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(ops_listener, app).with_graceful_shutdown(async move { ops_shutdown.cancelled().await }).await
    });
    let result = pipeline.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result.context("consumer pipeline")
}
