//! Sticky assignments and the exposures committed with them (the outbox).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{types::Json, PgPool};

use super::Result;

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

/// What an exposure carries besides the assignment: the request's id (passed on to the
/// Kafka message's headers) and the attributes it sent (text values).
#[derive(Debug, Clone, Copy)]
pub struct ExposureContext<'a> {
    pub request_id: Option<&'a str>,
    pub attributes: &'a BTreeMap<String, String>,
}

impl ExposureContext<'_> {
    fn attributes(&self) -> Option<Json<&BTreeMap<String, String>>> {
        (!self.attributes.is_empty()).then_some(Json(self.attributes))
    }
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
    context: ExposureContext<'_>,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "WITH assigned AS (
             INSERT INTO assignments (experiment_id, user_id, variant_id)
             SELECT $1, $2, $3 FROM experiments WHERE id = $1 AND status = 'running'
             ON CONFLICT (experiment_id, user_id) DO NOTHING
             RETURNING experiment_id, user_id, assigned_at
         ), queued AS (
             INSERT INTO exposure_outbox (experiment_id, user_id, variant, exposed_at, request_id, attributes)
             SELECT experiment_id, user_id, $4, assigned_at, $5, $6 FROM assigned
         )
         SELECT assigned_at FROM assigned",
    )
    .bind(experiment_id)
    .bind(user_id)
    .bind(variant.0)
    .bind(variant.1)
    .bind(context.request_id)
    .bind(context.attributes())
    .fetch_optional(db)
    .await?)
}

/// A forced user's exposure, flagged so analysis leaves it out; nothing is assigned.
pub async fn expose_forced(
    db: &PgPool,
    experiment_id: i64,
    user_id: &str,
    variant: &str,
    context: ExposureContext<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO exposure_outbox (experiment_id, user_id, variant, exposed_at, request_id, attributes, forced)
         VALUES ($1, $2, $3, now(), $4, $5, true)",
    )
    .bind(experiment_id)
    .bind(user_id)
    .bind(variant)
    .bind(context.request_id)
    .bind(context.attributes())
    .execute(db)
    .await?;
    Ok(())
}
