//! Every Postgres statement of the api: experiments, variants, sticky assignments, the
//! exposure outbox and the metrics registered for the results rollup.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{types::Json, PgPool, Postgres, Transaction};

use super::StorageError;
use crate::{
    domain::{
        experiment::{Rollout, ValidExperiment},
        rollout::Placement,
        rules::{HashKind, LayerRange},
        Experiment, ExperimentPatch, Phase, Status, Variant,
    },
    stats::Significance,
};

mod assignments;
mod layers;
pub mod metrics;
pub mod phases;

pub use assignments::{assign, assignment, expose_forced, ExposureContext, StoredAssignment};
pub use layers::{create_layer, free_ranges, gaps, layer, layer_members, layers};
use layers::{layer_id, taken};

type Result<T> = std::result::Result<T, StorageError>;
/// An experiment's use of a metric: experiment id, role, margin, definition.
type Used = (i64, crate::domain::metric::Role, Option<f64>, crate::domain::metric::Metric);

#[derive(sqlx::FromRow)]
struct ExperimentRow {
    id: i64,
    name: String,
    description: Option<String>,
    status: Status,
    salt: String,
    significance: Significance,
    sequential_tuning: f64,
    hash: HashKind,
    seed: String,
    coverage_bp: i32,
    conditions: Option<Json<Value>>,
    start_at: Option<DateTime<Utc>>,
    stop_at: Option<DateTime<Utc>>,
    forced: Json<BTreeMap<String, String>>,
    holdout: bool,
    holdout_layer: Option<String>,
    layer_key: Option<String>,
    layer_start: Option<i32>,
    layer_end: Option<i32>,
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

/// Every experiment column, its layers' keys included, from [`EXPERIMENTS`].
const EXPERIMENT_COLUMNS: &str = "e.id, e.name, e.description, e.status, e.salt, e.significance,
    e.sequential_tuning, e.hash, COALESCE(e.seed, e.salt) AS seed, e.coverage_bp, e.conditions, e.start_at,
    e.stop_at, e.forced, e.holdout, hl.key AS holdout_layer, l.key AS layer_key, e.layer_start, e.layer_end,
    e.created_at, e.updated_at";
const EXPERIMENTS: &str =
    "experiments e LEFT JOIN layers l ON l.id = e.layer_id LEFT JOIN layers hl ON hl.id = e.holdout_layer_id";

impl ExperimentRow {
    fn with_variants(self, rows: &[VariantRow], phases: &[(i64, Phase)], used: &[Used]) -> Experiment {
        let (metrics, metric_definitions) = metrics::for_experiment(self.id, used);
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
            rollout: Rollout {
                hash: self.hash,
                seed: self.seed,
                coverage_percent: f64::from(self.coverage_bp) / 100.0,
                conditions: self.conditions.map(|c| c.0),
                start_at: self.start_at,
                stop_at: self.stop_at,
                forced: self.forced.0,
                holdout: self.holdout,
                holdout_layer: self.holdout_layer,
                layer: match (self.layer_key, self.layer_start, self.layer_end) {
                    (Some(key), Some(s), Some(e)) => Some(LayerRange { key, range: [s as u32, e as u32] }),
                    _ => None,
                },
            },
            phases: phases.iter().filter(|(e, _)| *e == self.id).map(|(_, p)| p.clone()).collect(),
            metrics,
            metric_definitions,
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
    let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM {EXPERIMENTS} WHERE e.id = $1");
    let Some(row) = sqlx::query_as::<_, ExperimentRow>(&sql).bind(id).fetch_optional(db).await? else {
        return Ok(None);
    };
    let (variants, phases, used) =
        (variants_of(db, &[id]).await?, phases::of(db, &[id]).await?, metrics::of(db, &[id]).await?);
    Ok(Some(row.with_variants(&variants, &phases, &used)))
}

/// Up to `limit` experiments with ids above `after`, in id order (two queries).
pub async fn experiments_after(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Experiment>> {
    let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM {EXPERIMENTS} WHERE e.id > $1 ORDER BY e.id LIMIT $2");
    let rows: Vec<ExperimentRow> = sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(db).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let (variants, phases, used) =
        (variants_of(db, &ids).await?, phases::of(db, &ids).await?, metrics::of(db, &ids).await?);
    Ok(rows.into_iter().map(|r| r.with_variants(&variants, &phases, &used)).collect())
}

/// Stores a new experiment with a fresh salt, in its layer if it asks for one; returns its
/// id. A share of a layer takes the first free range that fits; when two requests race for
/// one range, the exclusion constraint lets one win and the other looks again.
pub async fn create_experiment(db: &PgPool, new: &ValidExperiment) -> Result<i64> {
    let mut attempt = 0;
    loop {
        match insert_experiment(db, new).await {
            Err(e) if e.is_code(EXCLUSION_VIOLATION) => {
                attempt += 1;
                let key = new.layer.as_ref().map(|(k, _)| k.clone()).unwrap_or_default();
                if attempt >= 5 || !matches!(new.layer, Some((_, Placement::Share(_)))) {
                    return Err(StorageError::LayerTaken { free: free_ranges(db, &key).await?, key });
                }
            }
            other => return other,
        }
    }
}

/// Postgres' `exclusion_violation`: a layer range overlaps another experiment's.
const EXCLUSION_VIOLATION: &str = "23P01";

async fn insert_experiment(db: &PgPool, new: &ValidExperiment) -> Result<i64> {
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let mut tx = db.begin().await?;
    let holdout_layer = match &new.holdout {
        Some(Some(key)) => Some(layer_id(&mut tx, key, "layer", "").await?),
        _ => None,
    };
    let (layer, range) = match &new.layer {
        Some((key, placement)) => {
            // Placements in one layer take turns (the layer's row lock), so a share is
            // chosen from what the previous placement left.
            let layer = layer_id(&mut tx, key, "layer.key", "FOR UPDATE").await?;
            let range = match placement {
                Placement::Range(range) => *range,
                Placement::Share(bp) => {
                    let free = gaps(&taken(&mut *tx, layer).await?);
                    let fits = free.iter().find(|[s, e]| e - s >= *bp).map(|[s, _]| [*s, s + bp]);
                    fits.ok_or_else(|| StorageError::LayerTaken { key: key.clone(), free })?
                }
            };
            (Some(layer), Some(range))
        }
        None => (None, None),
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO experiments (name, description, salt, significance, sequential_tuning, hash, seed,
             coverage_bp, conditions, start_at, stop_at, forced, holdout, holdout_layer_id, layer_id,
             layer_start, layer_end)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
    )
    .bind(&new.name)
    .bind(&new.description)
    .bind(&salt)
    .bind(new.significance)
    .bind(new.sequential_tuning)
    .bind(new.hash)
    .bind(&new.seed)
    .bind(new.coverage_bp as i32)
    .bind(new.conditions.as_ref().map(Json))
    .bind(new.start_at)
    .bind(new.stop_at)
    .bind(Json(&new.forced))
    .bind(new.holdout.is_some())
    .bind(holdout_layer)
    .bind(layer)
    .bind(range.map(|r| r[0] as i32))
    .bind(range.map(|r| r[1] as i32))
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
    phases::start_first(&mut tx, id).await?;
    metrics::set_experiment_metrics(&mut tx, id, &new.metrics).await?;
    tx.commit().await?;
    Ok(id)
}

/// Every experiment with its variants, in id order (the configuration snapshot).
pub async fn all_experiments(db: &PgPool) -> Result<Vec<Experiment>> {
    let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM {EXPERIMENTS} ORDER BY e.id");
    let rows: Vec<ExperimentRow> = sqlx::query_as(&sql).fetch_all(db).await?;
    let variants: Vec<VariantRow> =
        sqlx::query_as("SELECT experiment_id, id, name, allocation_bp FROM variants ORDER BY experiment_id, position")
            .fetch_all(db)
            .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let (phases, used) = (phases::of(db, &ids).await?, metrics::of(db, &ids).await?);
    Ok(rows.into_iter().map(|r| r.with_variants(&variants, &phases, &used)).collect())
}

/// Applies a validated patch (only the fields it names) and new allocations.
pub async fn update_experiment(
    db: &PgPool,
    id: i64,
    patch: &ExperimentPatch,
    allocations: Option<Vec<(String, u32)>>,
) -> Result<()> {
    match apply_patch(db, id, patch, allocations).await {
        // Running again an experiment whose layer range was taken while it was stopped.
        Err(e) if e.is_code(EXCLUSION_VIOLATION) => {
            let key: String = sqlx::query_scalar(
                "SELECT l.key FROM experiments e JOIN layers l ON l.id = e.layer_id WHERE e.id = $1",
            )
            .bind(id)
            .fetch_one(db)
            .await?;
            Err(StorageError::LayerTaken { free: free_ranges(db, &key).await?, key })
        }
        other => other,
    }
}

async fn apply_patch(
    db: &PgPool,
    id: i64,
    patch: &ExperimentPatch,
    allocations: Option<Vec<(String, u32)>>,
) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE experiments SET status = COALESCE($2, status), name = COALESCE($3, name),
         description = COALESCE($4, description), significance = COALESCE($5, significance),
         sequential_tuning = COALESCE($6, sequential_tuning), coverage_bp = COALESCE($7, coverage_bp),
         conditions = CASE WHEN $8 THEN $9 ELSE conditions END,
         start_at = CASE WHEN $10 THEN $11 ELSE start_at END,
         stop_at = CASE WHEN $12 THEN $13 ELSE stop_at END,
         forced = COALESCE($14, forced), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(patch.status)
    .bind(patch.name.as_deref().map(str::trim))
    .bind(&patch.description)
    .bind(patch.significance)
    .bind(patch.sequential_tuning)
    .bind(patch.coverage_percent.map(|p| (p * 100.0).round() as i32))
    .bind(patch.conditions.is_some())
    .bind(patch.conditions.clone().flatten().filter(|c| !c.is_null()).map(Json))
    .bind(patch.start_at.is_some())
    .bind(patch.start_at.flatten())
    .bind(patch.stop_at.is_some())
    .bind(patch.stop_at.flatten())
    .bind(patch.forced.as_ref().map(Json))
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
    phases::follow(&mut tx, id).await?;
    if let Some(m) = &patch.metrics {
        metrics::set_experiment_metrics(&mut tx, id, m).await?;
    }
    tx.commit().await?;
    Ok(())
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
    pub attributes: Option<Json<BTreeMap<String, String>>>,
    pub forced: bool,
}

/// Up to `limit` queued exposures, oldest first, locked for this transaction (other relays
/// skip them): send them, then [`forget_exposures`] and commit.
pub async fn claim_exposures(tx: &mut Transaction<'static, Postgres>, limit: i64) -> Result<Vec<QueuedExposure>> {
    Ok(sqlx::query_as(
        "SELECT id, experiment_id, user_id, variant, exposed_at, request_id, attributes, forced FROM exposure_outbox
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
