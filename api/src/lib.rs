//! `api`: experiments, sticky assignment and results, plus the event routes of `ingest`
//! (one implementation, two ports) so the previous service's walkthrough works on 9000.

pub mod assignment;
pub mod experiments;
pub mod openapi;
pub mod results;
pub mod stats;
pub mod timeseries;
pub mod ui;

use std::sync::Arc;

use anyhow::Context;
use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
    middleware,
    routing::get,
    Router,
};
use common::{config::Config, metrics::Registry, shutdown::CancellationToken};
use futures::future::BoxFuture;
use ingest::{auth, error::ApiError, ops, Events};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub clickhouse: clickhouse::Client,
    pub events: Arc<Events>,
    pub exposures_topic: String,
    pub cache: Arc<assignment::ExperimentCache>,
}

impl AppState {
    pub fn new(config: &Config, registry: &Registry) -> anyhow::Result<Self> {
        let producer =
            common::kafka::producer(&config.kafka, config.ingest.ack_timeout).context("create the Kafka producer")?;
        Ok(Self {
            db: common::postgres::pool(&config.postgres).context("configure the Postgres pool")?,
            clickhouse: common::clickhouse::client(&config.clickhouse),
            events: Events::new(config, producer, registry),
            exposures_topic: config.kafka.topics.exposures.clone(),
            cache: Arc::new(assignment::ExperimentCache::new(config.api.experiment_cache_ttl)),
        })
    }
}

/// Maps Postgres failures once: unreachable or saturated is 503 (retry), anything else is
/// a bug (500, logged).
pub fn db_error(e: sqlx::Error) -> ApiError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            ApiError::unavailable(format!("Postgres is unavailable: {e}"))
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57") || c.starts_with("08")) => {
            ApiError::unavailable(format!("Postgres is unavailable: {db}"))
        }
        other => ApiError::Internal(format!("Postgres: {other}")),
    }
}

/// Maps ClickHouse failures once: transport problems are 503, the rest 500.
pub fn clickhouse_error(e: clickhouse::error::Error) -> ApiError {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => ApiError::unavailable(format!("ClickHouse is unavailable: {e}")),
        other => ApiError::Internal(format!("ClickHouse: {other}")),
    }
}

/// Experiment ids are positive 64-bit integers; anything else is a 400 naming `id`.
pub fn parse_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::field("invalid_id", "id", format!("experiment id must be a positive integer, got `{raw}`"))),
    }
}

/// The `{id}` of `/experiments/{id}/...`, validated.
pub struct ExperimentId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ExperimentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let raw = params.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or_default();
        parse_id(raw).map(ExperimentId)
    }
}

struct Ready(AppState);

impl ops::Readiness for Ready {
    fn check(&self) -> BoxFuture<'_, Vec<(&'static str, bool)>> {
        Box::pin(async move {
            self.0.events.observe();
            let timeout = ingest::PROBE_TIMEOUT;
            let (pg, ch, kafka) = tokio::join!(
                tokio::time::timeout(timeout, common::postgres::ping(&self.0.db)),
                tokio::time::timeout(timeout, common::clickhouse::ping(&self.0.clickhouse)),
                common::kafka::ping(&self.0.events.producer, timeout),
            );
            vec![("postgres", pg.unwrap_or(false)), ("clickhouse", ch.unwrap_or(false)), ("kafka", kafka)]
        })
    }
}

pub fn router(config: &Config, state: AppState, registry: Registry) -> Router {
    let keys = auth::ApiKeys::new(config.auth.api_keys.clone());
    let api = Router::new()
        .route("/experiments", get(experiments::list).post(experiments::create))
        .route("/experiments/{id}", get(experiments::get).patch(experiments::patch))
        .route("/experiments/{id}/assignment/{user_id}", get(assignment::assign))
        .route("/experiments/{id}/results", get(results::results))
        .route("/experiments/{id}/timeseries", get(timeseries::timeseries))
        .route("/event_types", get(results::event_types))
        .with_state(state.clone())
        .merge(ingest::events::router(state.events.clone()))
        .layer(middleware::from_fn_with_state(keys, auth::require_api_key))
        .layer(middleware::from_fn_with_state(config.api.request_timeout, ingest::request_timeout));
    api.merge(ops::router(Arc::new(Ready(state)), registry))
        .merge(openapi::router())
        .merge(ui::router())
        .fallback(ingest::error::no_route)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal("handler panicked".into()))
        }))
        .layer(TraceLayer::new_for_http())
}

/// Serves until `shutdown`, then finishes in-flight requests and flushes the producer.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = Registry::new();
    let state = AppState::new(&config, &registry)?;
    let producer = state.events.producer.clone();
    let app = router(&config, state, registry);
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serve")?;
    ingest::flush(&producer, config.ingest.ack_timeout).await;
    Ok(())
}

/// Applies the Postgres migrations and the ClickHouse DDL and creates the Kafka topics
/// (`api migrate`); every step is idempotent.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = common::postgres::pool(&config.postgres)?;
    common::postgres::migrate(&pool).await.context("Postgres migrations")?;
    common::clickhouse::apply_ddl(&config.clickhouse).await.context("ClickHouse DDL")?;
    common::kafka::create_topics(&config.kafka).await.context("Kafka topics")?;
    tracing::info!(clickhouse_database = %config.clickhouse.database, "migrations applied");
    Ok(())
}
