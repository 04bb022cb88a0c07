//! Deterministic, sticky assignment of users to variants.
//!
//! Bucketing (reproducible offline, see README "Assignment"):
//! `bucket = u64_be(sha256(salt + ":" + user_id)[0..8]) % 10000`, then the first variant,
//! in order, whose cumulative allocation in basis points exceeds `bucket`.
//!
//! Stickiness: the first assignment is a row in Postgres and wins forever. It is inserted
//! in a transaction that commits only after Kafka acknowledged the user's exposure, so
//! concurrent first requests wait on the row's unique key and all see one variant, one
//! row and one exposure, and a 200 always means the exposure is in Kafka.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use common::event::{ExposureEnvelope, ENVELOPE_VERSION, MAX_USER_ID_BYTES};
use ingest::error::ApiError;
use rdkafka::producer::FutureRecord;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    db_error,
    experiments::{self, Experiment, Status, Variant},
    AppState,
};

/// The bucket of `user_id` in an experiment with `salt`, in `[0, 10000)`.
pub fn bucket(salt: &str, user_id: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b":");
    hasher.update(user_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as u32
}

/// The variant owning `bucket` under cumulative allocations (they sum to 10000).
pub fn pick(variants: &[Variant], bucket: u32) -> Option<&Variant> {
    let mut upper = 0;
    variants.iter().find(|v| {
        upper += v.allocation_bp;
        bucket < upper
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub experiment_id: i64,
    pub user_id: String,
    /// The variant's name.
    pub variant: String,
    pub assigned_at: DateTime<Utc>,
    /// True when this request made the assignment (and wrote the exposure).
    pub new: bool,
}

/// Experiment definitions for assignment, cached for `api.experiment_cache_ttl`.
/// Users' stored assignments are cached too: a row, once committed, never changes (the
/// first assignment wins forever), so a cached copy is never stale and a repeat request
/// needs no Postgres round trip. At most this many users per experiment are kept; the
/// set is emptied when full.
const MAX_CACHED_ASSIGNMENTS: usize = 200_000;

type Stored = (i64, DateTime<Utc>);

#[derive(Default)]
pub struct ExperimentCache {
    ttl: Duration,
    entries: std::sync::RwLock<HashMap<i64, (Instant, Arc<Experiment>)>>,
    assignments: std::sync::RwLock<HashMap<i64, HashMap<String, Stored>>>,
}

impl ExperimentCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Default::default(), assignments: Default::default() }
    }

    /// The committed assignment of `user_id`, when this process has seen it.
    fn assignment(&self, id: i64, user_id: &str) -> Option<Stored> {
        self.assignments.read().ok()?.get(&id)?.get(user_id).copied()
    }

    /// Remembers a committed assignment.
    fn remember(&self, id: i64, user_id: &str, stored: Stored) {
        if let Ok(mut all) = self.assignments.write() {
            let users = all.entry(id).or_default();
            if users.len() >= MAX_CACHED_ASSIGNMENTS {
                users.clear();
            }
            users.insert(user_id.to_owned(), stored);
        }
    }

    /// The experiment, from the cache while fresh. When Postgres is unavailable, a stale
    /// copy still serves (results and existing definitions keep working through an outage).
    pub async fn get(&self, db: &sqlx::PgPool, id: i64) -> Result<Option<Arc<Experiment>>, ApiError> {
        let cached = self.entries.read().ok().and_then(|entries| entries.get(&id).cloned());
        if let Some((at, e)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(Some(e.clone()));
            }
        }
        let loaded = match experiments::load(db, id).await {
            Err(ApiError::Unavailable { .. }) if cached.is_some() => {
                return Ok(cached.map(|(_, e)| e));
            }
            other => other?,
        };
        let Some(experiment) = loaded else { return Ok(None) };
        let experiment = Arc::new(experiment);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(id, (Instant::now(), experiment.clone()));
        }
        Ok(Some(experiment))
    }

    pub fn invalidate(&self, id: i64) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&id);
        }
    }
}

#[derive(sqlx::FromRow)]
struct Existing {
    variant_id: i64,
    assigned_at: DateTime<Utc>,
}

/// The user's variant: the stored one, or a new sticky assignment.
#[utoipa::path(get, path = "/experiments/{id}/assignment/{user_id}", tag = "assignment",
    params(("id" = i64, Path), ("user_id" = String, Path, description = "1 to 256 bytes")),
    responses(
        (status = 200, body = Assignment),
        (status = 400, body = ingest::error::ErrorBody), (status = 404, body = ingest::error::ErrorBody),
        (status = 409, body = ingest::error::ErrorBody, description = "The experiment is paused or stopped and the user has no assignment"),
        (status = 503, body = ingest::error::ErrorBody, description = "Postgres or Kafka unavailable; nothing was stored")),
    security(("bearer" = [])))]
pub async fn assign(
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Json<Assignment>, ApiError> {
    let id = crate::parse_id(&id)?;
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_BYTES {
        return Err(ApiError::field(
            "invalid_user_id",
            "user_id",
            format!("user_id must be 1 to {MAX_USER_ID_BYTES} bytes"),
        ));
    }
    let experiment = state.cache.get(&state.db, id).await?.ok_or_else(|| experiments::not_found(id))?;
    let answer = |variant_id: i64, assigned_at: DateTime<Utc>, new: bool| -> Result<Json<Assignment>, ApiError> {
        let variant = experiment
            .variants
            .iter()
            .find(|v| v.id == variant_id)
            .ok_or_else(|| ApiError::Internal(format!("variant {variant_id} not in experiment {id}")))?;
        Ok(Json(Assignment {
            experiment_id: id,
            user_id: user_id.clone(),
            variant: variant.name.clone(),
            assigned_at,
            new,
        }))
    };
    let existing = |db| {
        sqlx::query_as::<_, Existing>(
            "SELECT variant_id, assigned_at FROM assignments WHERE experiment_id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(&user_id)
        .fetch_optional(db)
    };
    if let Some((variant_id, assigned_at)) = state.cache.assignment(id, &user_id) {
        return answer(variant_id, assigned_at, false);
    }
    if let Some(found) = existing(&state.db).await.map_err(db_error)? {
        state.cache.remember(id, &user_id, (found.variant_id, found.assigned_at));
        return answer(found.variant_id, found.assigned_at, false);
    }
    // The cached status may be a few seconds old; the insert below re-checks it.
    if experiment.status != Status::Running {
        return Err(not_running(id, experiment.status));
    }
    let variant = pick(&experiment.variants, bucket(&experiment.salt, &user_id))
        .ok_or_else(|| ApiError::Internal(format!("allocations of experiment {id} do not cover every bucket")))?;

    let mut tx = state.db.begin().await.map_err(db_error)?;
    // Waits on a concurrent first request for the same user until it commits or rolls back.
    let inserted: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO assignments (experiment_id, user_id, variant_id)
         SELECT $1, $2, $3 FROM experiments WHERE id = $1 AND status = 'running'
         ON CONFLICT (experiment_id, user_id) DO NOTHING RETURNING assigned_at",
    )
    .bind(id)
    .bind(&user_id)
    .bind(variant.id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(assigned_at) = inserted else {
        tx.rollback().await.map_err(db_error)?;
        return match existing(&state.db).await.map_err(db_error)? {
            Some(found) => {
                state.cache.remember(id, &user_id, (found.variant_id, found.assigned_at));
                answer(found.variant_id, found.assigned_at, false)
            }
            None => {
                state.cache.invalidate(id);
                Err(not_running(id, Status::Paused))
            }
        };
    };
    let exposure = ExposureEnvelope {
        v: ENVELOPE_VERSION,
        experiment_id: id,
        variant: variant.name.as_str().into(),
        user_id: user_id.as_str().into(),
        exposed_at_ms: assigned_at.timestamp_millis(),
    };
    // Dropping `tx` on an error rolls the assignment back: no 200, no row, retry is safe.
    state.send_exposure(&exposure).await?;
    tx.commit().await.map_err(db_error)?;
    state.cache.remember(id, &user_id, (variant.id, assigned_at));
    answer(variant.id, assigned_at, true)
}

fn not_running(id: i64, status: Status) -> ApiError {
    let status = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    ApiError::Conflict(format!("experiment {id} is {status}: it keeps existing assignments and assigns no new users"))
}

impl AppState {
    /// Writes an exposure and waits for Kafka's acknowledgement, bounded by the ingest
    /// acknowledgement timeout.
    async fn send_exposure(&self, exposure: &ExposureEnvelope<'_>) -> Result<(), ApiError> {
        let payload = exposure.encode();
        let record = FutureRecord::to(&self.exposures_topic).key(exposure.user_id.as_bytes()).payload(&payload);
        let timeout = self.events.limits.ack_timeout;
        match tokio::time::timeout(timeout, self.events.producer.send(record, timeout)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(ApiError::unavailable(format!("Kafka did not take the exposure: {e}"))),
            Err(_) => Err(ApiError::unavailable(format!("Kafka did not acknowledge the exposure within {timeout:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(bps: &[u32]) -> Vec<Variant> {
        Variant::test_set(bps)
    }

    #[test]
    fn bucket_is_the_documented_hash() {
        // sha256("salt:user_A_123") = 6d0b3f8d... computed independently with `sha256sum`.
        let digest = Sha256::digest(b"s1:user_A_123");
        let expected = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 10_000;
        assert_eq!(u64::from(bucket("s1", "user_A_123")), expected);
        assert_eq!(bucket("s1", "user_A_123"), bucket("s1", "user_A_123"));
        assert_ne!(
            (0..50).map(|i| bucket("s1", &format!("u{i}"))).collect::<Vec<_>>(),
            (0..50).map(|i| bucket("s2", &format!("u{i}"))).collect::<Vec<_>>(),
            "the salt changes the buckets"
        );
    }

    #[test]
    fn pick_follows_cumulative_allocations() {
        let vs = variants(&[2000, 5000, 3000]);
        assert_eq!(pick(&vs, 0).map(|v| v.id), Some(0));
        assert_eq!(pick(&vs, 1999).map(|v| v.id), Some(0));
        assert_eq!(pick(&vs, 2000).map(|v| v.id), Some(1));
        assert_eq!(pick(&vs, 6999).map(|v| v.id), Some(1));
        assert_eq!(pick(&vs, 7000).map(|v| v.id), Some(2));
        assert_eq!(pick(&vs, 9999).map(|v| v.id), Some(2));
    }

    #[test]
    fn buckets_are_uniform_enough_to_honour_allocations() {
        let vs = variants(&[2000, 8000]);
        let n = 100_000;
        let first = (0..n).filter(|i| pick(&vs, bucket("salt", &format!("user-{i}"))).map(|v| v.id) == Some(0)).count();
        // 20 % of 100k: sd = 126; 5 sd either side.
        assert!((19_370..=20_630).contains(&first), "{first}");
    }
}
