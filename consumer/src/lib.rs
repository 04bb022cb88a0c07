//! `consumer`: reads `events` and `exposures` as a consumer group and writes them to
//! ClickHouse in large batches, committing offsets only after the insert.
//!
//! - [`pipeline`]: the read loop and batching; `writer`: insert, set aside refused rows,
//!   commit in order; `dlq`: the dead-letter topic; `batch`: rows and committable offsets;
//! - `rebalance`: partitions moving between group members (in-flight batches commit
//!   before partitions are revoked); `lag`: the lag gauge's own task; [`metrics`];
//!   [`rows`]: ClickHouse rows in RowBinary.

mod backoff;
mod batch;
mod dlq;
mod lag;
pub mod metrics;
pub mod pipeline;
mod rebalance;
pub mod rows;
mod writer;

use anyhow::Context;
use common::{config::Config, metrics as m, shutdown::CancellationToken};
use server::{
    observe,
    ops::{self, Dependency, Readiness},
};
use tokio::net::TcpListener;

pub use pipeline::{Faults, Pipeline};

/// Runs the pipeline and serves `/livez`, `/readyz`, `/metrics` on `ops_listener` until
/// `shutdown`; then the pipeline flushes, commits and leaves the group.
pub async fn run(config: Config, ops_listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(config, ops_listener, shutdown, Faults::default()).await
}

/// [`run`] with fault injection, for tests.
pub async fn run_with(
    config: Config,
    ops_listener: TcpListener,
    shutdown: CancellationToken,
    faults: Faults,
) -> anyhow::Result<()> {
    let registry = m::registry();
    let pipeline = Pipeline::new(config, metrics::ConsumerMetrics::new(&registry))
        .context("create the Kafka consumer and the ClickHouse client")?
        .with_faults(faults);
    let (kafka, clickhouse) = (pipeline.kafka(), pipeline.clickhouse());
    let dependencies = vec![
        Dependency::new("kafka", true, move || {
            let kafka = kafka.clone();
            async move { common::kafka::ping(&kafka, ops::PROBE_TIMEOUT).await }
        }),
        Dependency::new("clickhouse", true, move || {
            let clickhouse = clickhouse.clone();
            async move { common::clickhouse::ping(&clickhouse).await }
        }),
    ];
    let app = observe::finish(ops::router(Readiness::new(dependencies, shutdown.clone()), registry.clone()), &registry);
    tracing::info!(addr = %ops_listener.local_addr()?, "consumer health and metrics listening");
    let server = tokio::spawn(server::serve(ops_listener, app, shutdown.clone()));
    let result = pipeline.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result.context("consumer pipeline")
}
