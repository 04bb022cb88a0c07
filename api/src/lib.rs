//! `api`: experiments, sticky assignment and results, plus the event routes of `ingest`
//! (one implementation, two ports) so the previous service's walkthrough works on 9000.
//!
//! The rooms, from the inside out:
//!
//! - [`domain`]: experiments, their rules, bucketing; no HTTP, no storage;
//! - [`stats`]: pure statistics over sufficient statistics, each module with its tests;
//! - [`storage`]: all Postgres SQL ([`storage::postgres`]) and all ClickHouse SQL
//!   ([`storage::clickhouse`]), returning [`storage::StorageError`];
//! - [`cache`]: what one process keeps in memory, bounded;
//! - [`results`]: the results and time series responses, assembled from query rows (pure);
//! - [`rollup`]: which results come from the rollup, and the background task sealing it;
//! - [`routes`]: handlers, typed parameters, OpenAPI, the results page; errors become HTTP
//!   answers there and nowhere else.

pub mod cache;
pub mod domain;
pub mod outbox;
pub mod results;
pub mod rollup;
pub mod routes;
pub mod stats;
pub mod storage;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use common::{config::Config, kafka::Sink, metrics, shutdown::CancellationToken};
use ingest::Events;
use server::{
    observe,
    ops::{self, Dependency, Readiness},
};
use sqlx::PgPool;
use tokio::net::TcpListener;

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Behind an `Arc`: axum clones the state for every request, and a client clone copies
    /// its URL, credentials and settings (allocations that showed in the api's profile).
    pub clickhouse: Arc<clickhouse::Client>,
    /// The event routes' state; its Kafka sink also carries the exposures.
    pub events: Arc<Events>,
    pub exposures_topic: Arc<str>,
    pub experiments: Arc<cache::ExperimentCache>,
    pub config: Arc<cache::ConfigCache>,
    pub assignments: Arc<cache::AssignmentCache>,
    pub rollup: Arc<rollup::Rollup>,
}

impl AppState {
    pub fn new(config: &Config, registry: &metrics::Registry) -> anyhow::Result<Self> {
        let sink = Sink::new(&config.kafka, config.ingest.ack_timeout).context("create the Kafka producer")?;
        Ok(Self {
            db: common::postgres::pool(&config.postgres).context("configure the Postgres pool")?,
            clickhouse: Arc::new(
                common::clickhouse::client(&config.clickhouse).context("configure the ClickHouse client")?,
            ),
            events: Events::new(config, sink, registry),
            exposures_topic: config.kafka.topics.exposures.as_str().into(),
            experiments: Arc::new(cache::ExperimentCache::new(config.api.experiment_cache_ttl)),
            config: Arc::new(cache::ConfigCache::new(config.api.experiment_cache_ttl)),
            assignments: Arc::new(cache::AssignmentCache::new(config.api.assignment_cache_entries)),
            rollup: Arc::new(rollup::Rollup::new(&config.rollup, registry)),
        })
    }

    /// Readiness: every dependency reported, none required (see `server::ops`): each route
    /// degrades on its own when one is down.
    fn dependencies(&self) -> Vec<Dependency> {
        let (db, ch, sink) = (self.db.clone(), self.clickhouse.clone(), self.events.sink().clone());
        vec![
            Dependency::new("postgres", false, move || {
                let db = db.clone();
                async move { storage::postgres::ping(&db).await }
            }),
            Dependency::new("clickhouse", false, move || {
                let ch = ch.clone();
                async move { storage::clickhouse::ping(&ch).await }
            }),
            Dependency::new("kafka", false, move || {
                let sink = sink.clone();
                async move { sink.ping(ops::PROBE_TIMEOUT).await }
            }),
        ]
    }
}

/// The whole api: authenticated routes, health and metrics, OpenAPI, the results page.
pub fn app(config: &Config, state: AppState, registry: metrics::Registry, shutdown: CancellationToken) -> Router {
    let readiness = Readiness::new(state.dependencies(), shutdown);
    let app = routes::api(config, state)
        .merge(ops::router(readiness, registry.clone()))
        .merge(routes::openapi::router())
        .merge(routes::ui::router());
    observe::finish(app, &registry)
}

/// Serves until `shutdown` (the exposure relay and the rollup's sealer beside it), then
/// finishes in-flight requests and flushes the producer.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = metrics::registry();
    let state = AppState::new(&config, &registry)?;
    let sink = state.events.sink().clone();
    let relay = outbox::Relay::new(state.db.clone(), sink.clone(), state.exposures_topic.to_string(), &registry);
    let relaying = tokio::spawn(relay.run(shutdown.clone()));
    if config.rollup.enabled {
        let sealer =
            rollup::sealer::Sealer::new(state.db.clone(), (*state.clickhouse).clone(), &config.rollup, &registry);
        tokio::spawn(sealer.run(shutdown.clone()));
    }
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    server::serve(listener, app(&config, state, registry, shutdown.clone()), shutdown).await.context("serve")?;
    let _ = relaying.await;
    sink.flush().await;
    Ok(())
}

/// Applies the Postgres migrations and the ClickHouse migrations and creates the Kafka
/// topics (`api migrate`); every step is idempotent.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = common::postgres::pool(&config.postgres)?;
    common::postgres::migrate(&pool).await.context("Postgres migrations")?;
    common::clickhouse::migrate(&config.clickhouse).await.context("ClickHouse migrations")?;
    common::kafka::create_topics(&config.kafka).await.context("Kafka topics")?;
    tracing::info!(clickhouse_database = %config.clickhouse.database, "migrations applied");
    Ok(())
}
