//! `GET /experiments/{id}/assignment/{user_id}`: the user's variant, sticky.
//!
//! The first assignment is a row in Postgres and wins forever. It is inserted together
//! with the user's exposure in the outbox, in one statement: concurrent first requests
//! wait on the row's unique key and all see one variant, one row and one exposure, and a
//! 200 means the exposure is committed and will reach Kafka (`crate::outbox`).

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    Json,
};
use common::event::{length_ok, MAX_USER_ID_CHARS};
use server::{observe::request_id_of, ApiError, ErrorCode};

use super::{not_found, ExperimentId};
use crate::{
    domain::{bucket, pick, Assignment, Experiment, Status},
    storage::postgres::{self as pg, StoredAssignment},
    AppState,
};

/// The user's variant: the stored one, or a new sticky assignment.
///
/// A rule the schema cannot express: only a running experiment assigns new users (a
/// paused or stopped one answers 409 for them and keeps existing assignments).
#[utoipa::path(get, path = "/experiments/{id}/assignment/{user_id}", tag = "assignment", operation_id = "get_assignment",
    params(ExperimentId,
        ("user_id" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000]*$",
            description = "Any text of 1 to 256 characters without NUL (U+0000)", example = "user_A_123")),
    responses(
        (status = 200, body = Assignment),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 409, response = server::openapi::Conflict),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn assign(
    State(state): State<AppState>,
    ExperimentId(id): ExperimentId,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Assignment>, ApiError> {
    let user_id = path.1;
    if !length_ok(&user_id, MAX_USER_ID_CHARS) || user_id.contains('\0') {
        let message = format!("user_id must be 1 to {MAX_USER_ID_CHARS} characters, without NUL");
        return Err(ApiError::field(ErrorCode::InvalidUserId, "user_id", message));
    }
    let experiment = state.experiments.get(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let (stored, new) = match existing(&state, id, &user_id).await? {
        Some(stored) => (stored, false),
        None => assign_new(&state, &experiment, &user_id, request_id_of(&headers)).await?,
    };
    state.assignments.remember(id, &user_id, stored);
    let variant = experiment
        .variants
        .iter()
        .find(|v| v.id == stored.variant_id)
        .ok_or_else(|| ApiError::internal(format!("variant {} not in experiment {id}", stored.variant_id)))?;
    Ok(Json(Assignment {
        experiment_id: id,
        user_id,
        variant: variant.name.clone(),
        assigned_at: stored.assigned_at,
        new,
    }))
}

/// The committed assignment, from this process's cache or from Postgres.
async fn existing(state: &AppState, id: i64, user_id: &str) -> Result<Option<StoredAssignment>, ApiError> {
    match state.assignments.get(id, user_id) {
        Some(stored) => Ok(Some(stored)),
        None => Ok(pg::assignment(&state.db, id, user_id).await?),
    }
}

/// Assigns a user who had no variant; the exposure commits with the assignment (outbox,
/// relayed to Kafka by `outbox`). `(assignment, true)` when this request made it; a
/// concurrent request may have won.
async fn assign_new(
    state: &AppState,
    experiment: &Experiment,
    user_id: &str,
    request_id: Option<&str>,
) -> Result<(StoredAssignment, bool), ApiError> {
    let id = experiment.id;
    // The cached status may be a few seconds old; the insert re-checks it.
    if experiment.status != Status::Running {
        return Err(not_running(id, experiment.status));
    }
    let variant = pick(&experiment.variants, bucket(&experiment.salt, user_id))
        .ok_or_else(|| ApiError::internal(format!("allocations of experiment {id} do not cover every bucket")))?;
    match pg::assign(&state.db, id, user_id, (variant.id, &variant.name), request_id).await? {
        Some(assigned_at) => Ok((StoredAssignment { variant_id: variant.id, assigned_at }, true)),
        // A concurrent first request committed first, or the experiment stopped meanwhile.
        None => match pg::assignment(&state.db, id, user_id).await? {
            Some(found) => Ok((found, false)),
            None => {
                state.experiments.invalidate(id);
                Err(not_running(id, Status::Paused))
            }
        },
    }
}

fn not_running(id: i64, status: Status) -> ApiError {
    let status = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    ApiError::Conflict(format!("experiment {id} is {status}: it keeps existing assignments and assigns no new users"))
}
