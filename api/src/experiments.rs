//! Experiments and variants in Postgres.

use std::collections::{HashMap, HashSet};

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use ingest::{
    error::ApiError,
    extract::{JsonBody, Query},
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{
    db_error,
    stats::{Significance, DEFAULT_SEQUENTIAL_TUNING},
    AppState, ExperimentId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Assigns new users.
    Running,
    /// Keeps existing assignments, assigns nobody new.
    Paused,
    /// Like paused, for good.
    Stopped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "running" => Ok(Status::Running),
            "paused" => Ok(Status::Paused),
            "stopped" => Ok(Status::Stopped),
            other => Err(ApiError::Internal(format!("unknown status {other} in the database"))),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Variant {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub allocation_percent: f64,
    /// Allocation in basis points (1/100 %); the bucketing uses these.
    #[serde(skip)]
    pub allocation_bp: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub status: Status,
    /// Hashed with the user id for bucketing; see README "Assignment".
    pub salt: String,
    /// In order; the first is the control.
    pub variants: Vec<Variant>,
    /// Which test decides `significant` in the results (default `sequential`).
    pub significance: Significance,
    /// Sample size (both variants) around which the sequential intervals are tightest.
    pub sequential_tuning: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewExperiment {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub variants: Vec<NewVariant>,
    /// `sequential` (default: safe to look at results any time) or `fixed_horizon`.
    #[serde(default)]
    pub significance: Option<Significance>,
    /// Default 5000; from 1 to 1e9.
    #[serde(default)]
    pub sequential_tuning: Option<f64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewVariant {
    pub name: String,
    pub allocation_percent: f64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ExperimentPatch {
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// New allocations for the same variant names. Assigned users never move.
    #[serde(default)]
    pub variants: Option<Vec<NewVariant>>,
    #[serde(default)]
    pub significance: Option<Significance>,
    #[serde(default)]
    pub sequential_tuning: Option<f64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Return experiments with an id greater than this (the previous page's `next_after`).
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListedExperiment {
    #[serde(flatten)]
    pub experiment: Experiment,
    /// Users exposed so far (distinct users with an exposure in ClickHouse); null when
    /// ClickHouse did not answer, so the list still works without it.
    pub exposed_users: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentPage {
    pub experiments: Vec<ListedExperiment>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 10_000;
const MAX_VARIANTS: usize = 20;
const MAX_VARIANT_NAME_CHARS: usize = 100;

fn validate_name(name: &str) -> Result<(), ApiError> {
    let chars = name.trim().chars().count();
    if chars == 0 || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::field(
            "invalid_experiment",
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

fn validate_tuning(tuning: Option<f64>) -> Result<(), ApiError> {
    match tuning {
        Some(t) if !(1.0..=1e9).contains(&t) => Err(ApiError::field(
            "invalid_experiment",
            "sequential_tuning",
            "sequential_tuning must be a number from 1 to 1e9 (a sample size; default 5000)",
        )),
        _ => Ok(()),
    }
}

fn validate_description(description: &Option<String>) -> Result<(), ApiError> {
    if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        return Err(ApiError::field(
            "invalid_experiment",
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Checks the variant rules and converts allocations to basis points.
pub fn validate_variants(variants: &[NewVariant]) -> Result<Vec<u32>, ApiError> {
    let bad = |field: String, message: String| ApiError::field("invalid_experiment", field, message);
    if variants.len() < 2 || variants.len() > MAX_VARIANTS {
        return Err(bad("variants".into(), format!("an experiment has 2 to {MAX_VARIANTS} variants")));
    }
    let mut seen = HashSet::new();
    let mut bps = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        let chars = v.name.chars().count();
        if v.name.trim().is_empty() || chars > MAX_VARIANT_NAME_CHARS {
            return Err(bad(
                format!("variants[{i}].name"),
                format!("variant names are 1 to {MAX_VARIANT_NAME_CHARS} characters"),
            ));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(bad(format!("variants[{i}].name"), format!("duplicate variant name `{}`", v.name)));
        }
        let pct = v.allocation_percent;
        if !pct.is_finite() || pct <= 0.0 || pct > 100.0 {
            return Err(bad(
                format!("variants[{i}].allocation_percent"),
                "allocation_percent must be in (0, 100]".into(),
            ));
        }
        let bp = (pct * 100.0).round();
        if (pct * 100.0 - bp).abs() > 1e-6 {
            return Err(bad(
                format!("variants[{i}].allocation_percent"),
                "allocation_percent has at most two decimals".into(),
            ));
        }
        bps.push(bp as u32);
    }
    let total: u32 = bps.iter().sum();
    if total != 10_000 {
        return Err(bad(
            "variants".into(),
            format!("allocations must sum to 100 (they sum to {})", f64::from(total) / 100.0),
        ));
    }
    Ok(bps)
}

/// Create an experiment.
#[utoipa::path(post, path = "/experiments", tag = "experiments", request_body = NewExperiment,
    responses((status = 201, body = Experiment), (status = 400, body = ingest::error::ErrorBody), (status = 401, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewExperiment>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    validate_name(&new.name)?;
    validate_description(&new.description)?;
    validate_tuning(new.sequential_tuning)?;
    let bps = validate_variants(&new.variants)?;
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let mut tx = state.db.begin().await.map_err(db_error)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO experiments (name, description, salt, significance, sequential_tuning)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(new.name.trim())
    .bind(&new.description)
    .bind(&salt)
    .bind(new.significance.unwrap_or(Significance::Sequential).as_str())
    .bind(new.sequential_tuning.unwrap_or(DEFAULT_SEQUENTIAL_TUNING))
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    for (position, (variant, bp)) in new.variants.iter().zip(&bps).enumerate() {
        sqlx::query("INSERT INTO variants (experiment_id, position, name, allocation_bp) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(position as i32)
            .bind(&variant.name)
            .bind(*bp as i32)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    let experiment =
        load(&state.db, id).await?.ok_or_else(|| ApiError::Internal("created experiment vanished".into()))?;
    tracing::info!(id, name = %experiment.name, "experiment created");
    Ok((StatusCode::CREATED, Json(experiment)))
}

/// List experiments, oldest first, by pages.
#[utoipa::path(get, path = "/experiments", tag = "experiments", params(ListParams),
    responses((status = 200, body = ExperimentPage), (status = 400, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ExperimentPage>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("invalid_query", "limit", "limit must be 1 to 200"));
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM experiments WHERE id > $1 ORDER BY id LIMIT $2")
        .bind(params.after.unwrap_or(0))
        .bind(limit + 1)
        .fetch_all(&state.db)
        .await
        .map_err(db_error)?;
    let more = ids.len() as i64 > limit;
    let mut experiments = Vec::with_capacity(ids.len());
    for id in ids.into_iter().take(limit as usize) {
        if let Some(e) = load(&state.db, id).await? {
            experiments.push(e);
        }
    }
    let next_after = if more { experiments.last().map(|e| e.id) } else { None };
    let mut users = match (experiments.first(), experiments.last()) {
        (Some(first), Some(last)) => exposed_users(&state.clickhouse, first.id, last.id).await,
        _ => Some(HashMap::new()),
    };
    let experiments = experiments
        .into_iter()
        .map(|experiment| {
            let exposed_users = users.as_mut().map(|u| u.remove(&experiment.id).unwrap_or(0));
            ListedExperiment { experiment, exposed_users }
        })
        .collect();
    Ok(Json(ExperimentPage { experiments, next_after }))
}

#[derive(clickhouse::Row, Deserialize)]
struct ExposedUsers {
    experiment_id: u64,
    users: u64,
}

/// Distinct exposed users of the experiments with ids in `first..=last` (a page is a
/// contiguous id range, so this reads only those experiments' part of the primary key),
/// in one query; `None` when ClickHouse fails (logged).
async fn exposed_users(ch: &clickhouse::Client, first: i64, last: i64) -> Option<HashMap<i64, u64>> {
    let rows = ch
        .query(
            "SELECT experiment_id, toUInt64(uniqExact(user_id)) AS users FROM exposures
             WHERE experiment_id >= ? AND experiment_id <= ? GROUP BY experiment_id",
        )
        .bind(first)
        .bind(last)
        .fetch_all::<ExposedUsers>()
        .await;
    match rows {
        Ok(rows) => Some(rows.into_iter().map(|r| (r.experiment_id as i64, r.users)).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "exposed users per experiment: ClickHouse did not answer");
            None
        }
    }
}

/// One experiment.
#[utoipa::path(get, path = "/experiments/{id}", tag = "experiments", params(("id" = i64, Path)),
    responses((status = 200, body = Experiment), (status = 400, body = ingest::error::ErrorBody), (status = 404, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, id: ExperimentId) -> Result<Json<Experiment>, ApiError> {
    Ok(Json(load(&state.db, id.0).await?.ok_or_else(|| not_found(id.0))?))
}

/// Change status (`running`, `paused`, `stopped`), name, description or allocations.
#[utoipa::path(patch, path = "/experiments/{id}", tag = "experiments", params(("id" = i64, Path)), request_body = ExperimentPatch,
    responses((status = 200, body = Experiment), (status = 400, body = ingest::error::ErrorBody), (status = 404, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    id: ExperimentId,
    JsonBody(patch): JsonBody<ExperimentPatch>,
) -> Result<Json<Experiment>, ApiError> {
    let id = id.0;
    if let Some(name) = &patch.name {
        validate_name(name)?;
    }
    validate_description(&patch.description)?;
    validate_tuning(patch.sequential_tuning)?;
    let current = load(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let new_bps = match &patch.variants {
        Some(variants) => {
            let bps = validate_variants(variants)?;
            let current_names: HashSet<&str> = current.variants.iter().map(|v| v.name.as_str()).collect();
            let new_names: HashSet<&str> = variants.iter().map(|v| v.name.as_str()).collect();
            if current_names != new_names {
                return Err(ApiError::field(
                    "invalid_experiment",
                    "variants",
                    "allocations can change, variants cannot: name exactly the existing variants",
                ));
            }
            Some(variants.iter().map(|v| v.name.as_str()).zip(bps).collect::<Vec<_>>())
        }
        None => None,
    };
    let mut tx = state.db.begin().await.map_err(db_error)?;
    sqlx::query(
        "UPDATE experiments SET status = COALESCE($2, status), name = COALESCE($3, name),
         description = COALESCE($4, description), significance = COALESCE($5, significance),
         sequential_tuning = COALESCE($6, sequential_tuning), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(patch.status.map(Status::as_str))
    .bind(patch.name.as_deref().map(str::trim))
    .bind(&patch.description)
    .bind(patch.significance.map(Significance::as_str))
    .bind(patch.sequential_tuning)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    for (name, bp) in new_bps.unwrap_or_default() {
        sqlx::query("UPDATE variants SET allocation_bp = $3 WHERE experiment_id = $1 AND name = $2")
            .bind(id)
            .bind(name)
            .bind(bp as i32)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    state.cache.invalidate(id);
    Ok(Json(load(&state.db, id).await?.ok_or_else(|| not_found(id))?))
}

impl Variant {
    /// Variants `v0`, `v1`, ... with these allocations in basis points, for tests.
    #[cfg(test)]
    pub fn test_set(bps: &[u32]) -> Vec<Variant> {
        bps.iter()
            .enumerate()
            .map(|(i, &bp)| Variant {
                id: i as i64,
                name: format!("v{i}"),
                allocation_percent: f64::from(bp) / 100.0,
                allocation_bp: bp,
            })
            .collect()
    }
}

impl Experiment {
    /// A running experiment 1 with variants `v0`, `v1`, ... (see [`Variant::test_set`]) and
    /// fixed-horizon significance, for tests.
    #[cfg(test)]
    pub fn test(bps: &[u32]) -> Experiment {
        Experiment {
            id: 1,
            name: "e".into(),
            description: None,
            status: Status::Running,
            salt: "s".into(),
            variants: Variant::test_set(bps),
            significance: Significance::FixedHorizon,
            sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }
}

pub fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("experiment {id} does not exist"))
}

#[derive(sqlx::FromRow)]
struct ExperimentRow {
    id: i64,
    name: String,
    description: Option<String>,
    status: String,
    salt: String,
    significance: String,
    sequential_tuning: f64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct VariantRow {
    id: i64,
    name: String,
    allocation_bp: i32,
}

/// Loads an experiment with its variants in order; `None` when it does not exist.
pub async fn load(db: &PgPool, id: i64) -> Result<Option<Experiment>, ApiError> {
    let Some(row) = sqlx::query_as::<_, ExperimentRow>(
        "SELECT id, name, description, status, salt, significance, sequential_tuning, created_at, updated_at
         FROM experiments WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    else {
        return Ok(None);
    };
    let variants = sqlx::query_as::<_, VariantRow>(
        "SELECT id, name, allocation_bp FROM variants WHERE experiment_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .map_err(db_error)?;
    Ok(Some(Experiment {
        id: row.id,
        name: row.name,
        description: row.description,
        status: Status::parse(&row.status)?,
        salt: row.salt,
        variants: variants
            .into_iter()
            .map(|v| Variant {
                id: v.id,
                name: v.name,
                allocation_percent: f64::from(v.allocation_bp) / 100.0,
                allocation_bp: u32::try_from(v.allocation_bp).unwrap_or(0),
            })
            .collect(),
        significance: Significance::parse(&row.significance)
            .ok_or_else(|| ApiError::Internal(format!("unknown significance {} in the database", row.significance)))?,
        sequential_tuning: row.sequential_tuning,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, pct: f64) -> NewVariant {
        NewVariant { name: name.into(), allocation_percent: pct }
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::Invalid { field: Some(f), .. } => f,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn allocations_become_basis_points() {
        assert_eq!(validate_variants(&[v("a", 50.0), v("b", 50.0)]).expect("ok"), vec![5000, 5000]);
        assert_eq!(
            validate_variants(&[v("a", 33.33), v("b", 33.33), v("c", 33.34)]).expect("ok"),
            vec![3333, 3333, 3334]
        );
    }

    #[test]
    fn variant_rules_name_the_field() {
        assert_eq!(field_of(validate_variants(&[v("a", 100.0)]).expect_err("one")), "variants");
        assert_eq!(field_of(validate_variants(&[v("a", 50.0), v("a", 50.0)]).expect_err("dup")), "variants[1].name");
        assert_eq!(
            field_of(validate_variants(&[v("a", 0.0), v("b", 100.0)]).expect_err("zero")),
            "variants[0].allocation_percent"
        );
        assert_eq!(
            field_of(validate_variants(&[v("a", 101.0), v("b", -1.0)]).expect_err("range")),
            "variants[0].allocation_percent"
        );
        assert_eq!(
            field_of(validate_variants(&[v("a", f64::NAN), v("b", 50.0)]).expect_err("nan")),
            "variants[0].allocation_percent"
        );
        assert_eq!(field_of(validate_variants(&[v("a", 40.0), v("b", 50.0)]).expect_err("sum")), "variants");
        assert_eq!(
            field_of(validate_variants(&[v("a", 33.333), v("b", 66.667)]).expect_err("decimals")),
            "variants[0].allocation_percent"
        );
        assert_eq!(field_of(validate_variants(&[v(" ", 50.0), v("b", 50.0)]).expect_err("blank")), "variants[0].name");
        assert_eq!(field_of(validate_name("").expect_err("empty")), "name");
        assert_eq!(field_of(validate_name(&"n".repeat(201)).expect_err("long")), "name");
        validate_name(&"n".repeat(200)).expect("200 chars is fine");
    }
}
