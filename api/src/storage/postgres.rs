//! Every Postgres statement of the api: experiments, variants, sticky assignments, the
//! exposure outbox and the metrics registered for the results rollup.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use super::StorageError;
use crate::{
    domain::{experiment::ValidExperiment, Experiment, ExperimentPatch, Status, Variant},
    stats::Significance,
};

type Result<T> = std::result::Result<T, StorageError>;

#[derive(sqlx::FromRow)]
struct ExperimentRow {
    id: i64,
    name: String,
    description: Option<String>,
    status: Status,
    salt: String,
    significance: Significance,
    sequential_tuning: f64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct VariantRow {
    experiment_id: i64,
    id: i64,
    name: String,
    allocation_bp: i32,
}

const EXPERIMENT_COLUMNS: &str =
    "id, name, description, status, salt, significance, sequential_tuning, created_at, updated_at";

impl ExperimentRow {
    fn with_variants(self, rows: &[VariantRow]) -> Experiment {
        let variants = rows
            .iter()
            .filter(|v| v.experiment_id == self.id)
            .map(|v| Variant {
                id: v.id,
                name: v.name.clone(),
                allocation_percent: f64::from(v.allocation_bp) / 100.0,
                allocation_bp: u32::try_from(v.allocation_bp).unwrap_or(0),
            })
            .collect();
        Experiment {
            id: self.id,
            name: self.name,
            description: self.description,
            status: self.status,
            salt: self.salt,
            variants,
            significance: self.significance,
            sequential_tuning: self.sequential_tuning,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The variants of `ids`, each experiment's in order.
async fn variants_of(db: &PgPool, ids: &[i64]) -> Result<Vec<VariantRow>> {
    Ok(sqlx::query_as(
        "SELECT experiment_id, id, name, allocation_bp FROM variants
         WHERE experiment_id = ANY($1) ORDER BY experiment_id, position",
    )
    .bind(ids)
    .fetch_all(db)
    .await?)
}

/// An experiment with its variants in order; `None` when it does not exist.
pub async fn experiment(db: &PgPool, id: i64) -> Result<Option<Experiment>> {
    let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = $1");
    let Some(row) = sqlx::query_as::<_, ExperimentRow>(&sql).bind(id).fetch_optional(db).await? else {
        return Ok(None);
    };
    Ok(Some(row.with_variants(&variants_of(db, &[id]).await?)))
}

/// Up to `limit` experiments with ids above `after`, in id order (two queries).
pub async fn experiments_after(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Experiment>> {
    let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id > $1 ORDER BY id LIMIT $2");
    let rows: Vec<ExperimentRow> = sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(db).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let variants = variants_of(db, &ids).await?;
    Ok(rows.into_iter().map(|r| r.with_variants(&variants)).collect())
}

/// Stores a new experiment with a fresh salt; returns its id.
pub async fn create_experiment(db: &PgPool, new: &ValidExperiment) -> Result<i64> {
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let mut tx = db.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO experiments (name, description, salt, significance, sequential_tuning)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&new.name)
    .bind(&new.description)
    .bind(&salt)
    .bind(new.significance)
    .bind(new.sequential_tuning)
    .fetch_one(&mut *tx)
    .await?;
    for (position, (name, bp)) in new.variants.iter().enumerate() {
        sqlx::query("INSERT INTO variants (experiment_id, position, name, allocation_bp) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(position as i32)
            .bind(name)
            .bind(*bp as i32)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Applies a validated patch (only the fields it names) and new allocations.
pub async fn update_experiment(
    db: &PgPool,
    id: i64,
    patch: &ExperimentPatch,
    allocations: Option<Vec<(String, u32)>>,
) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE experiments SET status = COALESCE($2, status), name = COALESCE($3, name),
         description = COALESCE($4, description), significance = COALESCE($5, significance),
         sequential_tuning = COALESCE($6, sequential_tuning), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(patch.status)
    .bind(patch.name.as_deref().map(str::trim))
    .bind(&patch.description)
    .bind(patch.significance)
    .bind(patch.sequential_tuning)
    .execute(&mut *tx)
    .await?;
    for (name, bp) in allocations.unwrap_or_default() {
        sqlx::query("UPDATE variants SET allocation_bp = $3 WHERE experiment_id = $1 AND name = $2")
            .bind(id)
            .bind(name)
            .bind(bp as i32)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A user's committed assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredAssignment {
    pub variant_id: i64,
    pub assigned_at: DateTime<Utc>,
}

pub async fn assignment(db: &PgPool, experiment_id: i64, user_id: &str) -> Result<Option<StoredAssignment>> {
    Ok(sqlx::query_as("SELECT variant_id, assigned_at FROM assignments WHERE experiment_id = $1 AND user_id = $2")
        .bind(experiment_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?)
}

/// Assigns a user who has none, if the experiment is running, together with the user's
/// exposure in the outbox: one statement, so both commit or neither does. `None` when the
/// user already has an assignment or the experiment is not running (a concurrent first
/// request for the same user waits on the row's key until the other one commits).
pub async fn assign(
    db: &PgPool,
    experiment_id: i64,
    user_id: &str,
    variant: (i64, &str),
    request_id: Option<&str>,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "WITH assigned AS (
             INSERT INTO assignments (experiment_id, user_id, variant_id)
             SELECT $1, $2, $3 FROM experiments WHERE id = $1 AND status = 'running'
             ON CONFLICT (experiment_id, user_id) DO NOTHING
             RETURNING experiment_id, user_id, assigned_at
         ), queued AS (
             INSERT INTO exposure_outbox (experiment_id, user_id, variant, exposed_at, request_id)
             SELECT experiment_id, user_id, $4, assigned_at, $5 FROM assigned
         )
         SELECT assigned_at FROM assigned",
    )
    .bind(experiment_id)
    .bind(user_id)
    .bind(variant.0)
    .bind(variant.1)
    .bind(request_id)
    .fetch_optional(db)
    .await?)
}

/// An exposure waiting in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedExposure {
    pub id: i64,
    pub experiment_id: i64,
    pub user_id: String,
    pub variant: String,
    pub exposed_at: DateTime<Utc>,
    pub request_id: Option<String>,
}

/// Up to `limit` queued exposures, oldest first, locked for this transaction (other relays
/// skip them): send them, then [`forget_exposures`] and commit.
pub async fn claim_exposures(tx: &mut Transaction<'static, Postgres>, limit: i64) -> Result<Vec<QueuedExposure>> {
    Ok(sqlx::query_as(
        "SELECT id, experiment_id, user_id, variant, exposed_at, request_id FROM exposure_outbox
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn forget_exposures(tx: &mut Transaction<'static, Postgres>, ids: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM exposure_outbox WHERE id = ANY($1)").bind(ids).execute(&mut **tx).await?;
    Ok(())
}

/// Exposures waiting and the age of the oldest, in seconds.
pub async fn outbox_backlog(db: &PgPool) -> Result<(i64, f64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(exposed_at))::float8, 0) FROM exposure_outbox",
    )
    .fetch_one(db)
    .await?)
}

/// A metric whose results are kept rolled up (`rollup_metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct RollupMetric {
    pub experiment_id: i64,
    pub event_type: String,
    pub value_property: String,
}

/// Registers a metric for the rollup; registering it again changes nothing.
pub async fn register_rollup_metric(db: &PgPool, m: &RollupMetric) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollup_metrics (experiment_id, event_type, value_property) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(m.experiment_id)
    .bind(&m.event_type)
    .bind(&m.value_property)
    .execute(db)
    .await?;
    Ok(())
}

/// Every registered metric, grouped by event type and value property.
pub async fn rollup_metrics(db: &PgPool) -> Result<Vec<RollupMetric>> {
    Ok(sqlx::query_as(
        "SELECT experiment_id, event_type, value_property FROM rollup_metrics
         ORDER BY event_type, value_property, experiment_id",
    )
    .fetch_all(db)
    .await?)
}

/// Readiness: does Postgres answer `SELECT 1`?
pub async fn ping(db: &PgPool) -> bool {
    common::postgres::ping(db).await
}
