//! Phases of an experiment (`migrations/20261202000001_phases.sql`): kept in step with the
//! experiment in the transaction that creates or changes it.

use std::collections::BTreeMap;

use sqlx::{types::Json, PgPool, Postgres, Transaction};

use super::Result;
use crate::domain::{Phase, PhaseReason, Status};

#[derive(sqlx::FromRow)]
struct PhaseRow {
    experiment_id: i64,
    #[sqlx(flatten)]
    phase: Phase,
}

/// The phases of experiments `ids` (each has at least one), each experiment's in order.
pub async fn of(db: &PgPool, ids: &[i64]) -> Result<Vec<(i64, Phase)>> {
    let rows: Vec<PhaseRow> = sqlx::query_as(
        "SELECT experiment_id, phase, started_at, ended_at, allocations, reason FROM experiment_phases
         WHERE experiment_id = ANY($1) ORDER BY experiment_id, phase",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.experiment_id, r.phase)).collect())
}

/// The first phase of a new experiment, from its creation.
pub async fn start_first(tx: &mut Transaction<'static, Postgres>, experiment_id: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_phases (experiment_id, phase, started_at, allocations, reason)
         SELECT $1, 1, e.created_at,
                (SELECT jsonb_object_agg(v.name, v.allocation_bp) FROM variants v WHERE v.experiment_id = $1),
                'created'
         FROM experiments e WHERE e.id = $1",
    )
    .bind(experiment_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// After a change (the experiment's row is locked by the transaction's UPDATE): a stopped
/// experiment ends its open phase; one running (or paused) again after a stop starts a new
/// phase; new allocations end the open phase and start one.
pub async fn follow(tx: &mut Transaction<'static, Postgres>, experiment_id: i64) -> Result<()> {
    let (status, allocations): (Status, Json<BTreeMap<String, u32>>) = sqlx::query_as(
        "SELECT e.status,
                (SELECT jsonb_object_agg(v.name, v.allocation_bp) FROM variants v WHERE v.experiment_id = e.id)
         FROM experiments e WHERE e.id = $1",
    )
    .bind(experiment_id)
    .fetch_one(&mut **tx)
    .await?;
    let (last, ended, current): (i32, bool, Json<BTreeMap<String, u32>>) = sqlx::query_as(
        "SELECT phase, ended_at IS NOT NULL, allocations FROM experiment_phases
         WHERE experiment_id = $1 ORDER BY phase DESC LIMIT 1",
    )
    .bind(experiment_id)
    .fetch_one(&mut **tx)
    .await?;
    let end = "UPDATE experiment_phases SET ended_at = now() WHERE experiment_id = $1 AND phase = $2";
    let start = "INSERT INTO experiment_phases (experiment_id, phase, started_at, allocations, reason)
                 VALUES ($1, $2, now(), $3, $4)";
    let new_phase = match (status, ended) {
        (Status::Stopped, false) => {
            sqlx::query(end).bind(experiment_id).bind(last).execute(&mut **tx).await?;
            None
        }
        (Status::Stopped, true) => None,
        (_, true) => Some(PhaseReason::Restarted),
        (_, false) if current.0 != allocations.0 => {
            sqlx::query(end).bind(experiment_id).bind(last).execute(&mut **tx).await?;
            Some(PhaseReason::AllocationsChanged)
        }
        (_, false) => None,
    };
    if let Some(reason) = new_phase {
        sqlx::query(start)
            .bind(experiment_id)
            .bind(last + 1)
            .bind(&allocations)
            .bind(reason)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
