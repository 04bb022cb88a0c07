//! The metric catalog and the metrics of each experiment.

use chrono::{DateTime, Utc};
use sqlx::{types::Json, PgPool, Postgres, Transaction};

use super::{Result, StorageError};
use crate::domain::metric::{
    Capping, Denominator, Direction, ExperimentMetrics, Filter, Guardrail, Metric, MetricKind, NewMetric, Prior, Role,
};

#[derive(sqlx::FromRow)]
struct MetricRow {
    key: String,
    name: String,
    description: Option<String>,
    kind: MetricKind,
    event_type: String,
    value_property: Option<String>,
    denominator: Option<Json<Denominator>>,
    quantile: Option<f64>,
    filters: Json<Vec<Filter>>,
    direction: Direction,
    capping: Option<Json<Capping>>,
    window_hours: Option<f64>,
    prior: Option<Json<Prior>>,
    archived: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<MetricRow> for Metric {
    fn from(r: MetricRow) -> Metric {
        Metric {
            key: r.key,
            name: r.name,
            description: r.description,
            kind: r.kind,
            event_type: r.event_type,
            value_property: r.value_property,
            denominator: r.denominator.map(|d| d.0),
            quantile: r.quantile,
            filters: r.filters.0,
            direction: r.direction,
            capping: r.capping.map(|c| c.0),
            window_hours: r.window_hours,
            prior: r.prior.map(|p| p.0),
            archived: r.archived,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str =
    "m.key, m.name, m.description, m.kind, m.event_type, m.value_property, m.denominator, m.quantile, m.filters, m.direction,
    m.capping, m.window_hours, m.prior, m.archived, m.created_at, m.updated_at";

/// The new metric, or `None` when its key exists already.
pub async fn create_metric(db: &PgPool, new: &NewMetric) -> Result<Option<Metric>> {
    let row: Option<MetricRow> = sqlx::query_as(&format!(
        "INSERT INTO metrics AS m (key, name, description, kind, event_type, value_property, filters, direction,
             capping, window_hours, denominator, quantile, prior)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (key) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(&new.key)
    .bind(new.name.trim())
    .bind(&new.description)
    .bind(new.kind)
    .bind(&new.event_type)
    .bind(&new.value_property)
    .bind(Json(&new.filters))
    .bind(new.direction)
    .bind(new.capping.map(Json))
    .bind(new.window_hours)
    .bind(new.denominator.as_ref().map(Json))
    .bind(new.quantile)
    .bind(new.prior.map(Json))
    .fetch_optional(db)
    .await?;
    Ok(row.map(Metric::from))
}

/// Every metric by key; archived ones only when asked.
pub async fn metrics(db: &PgPool, archived: bool) -> Result<Vec<Metric>> {
    let rows: Vec<MetricRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM metrics m WHERE $1 OR NOT m.archived ORDER BY m.key"))
            .bind(archived)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(Metric::from).collect())
}

pub async fn metric(db: &PgPool, key: &str) -> Result<Option<Metric>> {
    let row: Option<MetricRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM metrics m WHERE m.key = $1"))
        .bind(key)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Metric::from))
}

/// Stores `m`'s changeable fields (everything but key and kind); `None` when it is gone.
pub async fn update_metric(db: &PgPool, m: &Metric) -> Result<Option<Metric>> {
    let row: Option<MetricRow> = sqlx::query_as(&format!(
        "UPDATE metrics AS m SET name = $2, description = $3, event_type = $4, value_property = $5, filters = $6,
             direction = $7, capping = $8, window_hours = $9, archived = $10, denominator = $11, quantile = $12, prior = $13,
             updated_at = now()
         WHERE m.key = $1 RETURNING {COLUMNS}"
    ))
    .bind(&m.key)
    .bind(&m.name)
    .bind(&m.description)
    .bind(&m.event_type)
    .bind(&m.value_property)
    .bind(Json(&m.filters))
    .bind(m.direction)
    .bind(m.capping.map(Json))
    .bind(m.window_hours)
    .bind(m.archived)
    .bind(m.denominator.as_ref().map(Json))
    .bind(m.quantile)
    .bind(m.prior.map(Json))
    .fetch_optional(db)
    .await?;
    Ok(row.map(Metric::from))
}

/// Replaces an experiment's metrics; every key must name a metric that is not archived.
pub(super) async fn set_experiment_metrics(
    tx: &mut Transaction<'static, Postgres>,
    experiment_id: i64,
    metrics: &ExperimentMetrics,
) -> Result<()> {
    sqlx::query("DELETE FROM experiment_metrics WHERE experiment_id = $1")
        .bind(experiment_id)
        .execute(&mut **tx)
        .await?;
    for (position, (key, role, margin)) in metrics.entries().into_iter().enumerate() {
        let found: Option<(i64, bool)> = sqlx::query_as("SELECT id, archived FROM metrics WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
        let id = match found {
            Some((id, false)) => id,
            Some((_, true)) => return Err(StorageError::UnknownMetric { key: key.to_owned(), archived: true }),
            None => return Err(StorageError::UnknownMetric { key: key.to_owned(), archived: false }),
        };
        sqlx::query(
            "INSERT INTO experiment_metrics (experiment_id, metric_id, role, position, margin)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(experiment_id)
        .bind(id)
        .bind(role)
        .bind(position as i32)
        .bind(margin)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct UsedRow {
    experiment_id: i64,
    role: Role,
    margin: Option<f64>,
    #[sqlx(flatten)]
    metric: MetricRow,
}

/// The metrics of experiments `ids` with their definitions, each experiment's in order.
pub(super) async fn of(db: &PgPool, ids: &[i64]) -> Result<Vec<(i64, Role, Option<f64>, Metric)>> {
    let rows: Vec<UsedRow> = sqlx::query_as(&format!(
        "SELECT x.experiment_id, x.role, x.margin, {COLUMNS} FROM experiment_metrics x JOIN metrics m ON m.id = x.metric_id
         WHERE x.experiment_id = ANY($1) ORDER BY x.experiment_id, x.position"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.experiment_id, r.role, r.margin, Metric::from(r.metric))).collect())
}

/// The wire form of an experiment's metrics and their definitions, in order.
pub(super) fn for_experiment(id: i64, all: &[(i64, Role, Option<f64>, Metric)]) -> (ExperimentMetrics, Vec<Metric>) {
    let mut wire = ExperimentMetrics::default();
    let mut definitions = Vec::new();
    for (_, role, margin, m) in all.iter().filter(|(e, ..)| *e == id) {
        match role {
            Role::Primary => wire.primary = Some(m.key.clone()),
            Role::Secondary => wire.secondary.push(m.key.clone()),
            Role::Guardrail => {
                wire.guardrails.push(Guardrail { metric: m.key.clone(), margin: margin.unwrap_or_default() })
            }
        }
        definitions.push(m.clone());
    }
    (wire, definitions)
}
