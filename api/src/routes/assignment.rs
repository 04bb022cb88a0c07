//! `GET` and `POST /experiments/{id}/assignment/{user_id}`: the user's variant, sticky.
//!
//! In order (docs/assignment.md): a forced user gets the forced variant (never stored, the
//! exposure flagged); a user with a stored assignment keeps it, whatever changed since;
//! anyone else is decided by the rules `GET /sdk/config` publishes (schedule, holdouts,
//! layer, targeting, traffic, allocations). A new assignment is a row in Postgres and wins
//! forever; it is inserted together with the user's exposure in the outbox, in one
//! statement: concurrent first requests wait on the row's unique key and all see one
//! variant, one row and one exposure, and a 200 means the exposure is committed and will
//! reach Kafka (`crate::outbox`).

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    Json,
};
use chrono::Utc;
use common::event::{length_ok, MAX_USER_ID_CHARS};
use serde::Deserialize;
use serde_json::Value;
use server::{body::JsonBody, observe::request_id_of, query::Query, ApiError, ErrorCode};

use super::{not_found, ExperimentId};
use crate::{
    cache::Snapshot,
    domain::{
        rollout::{self, attribute_texts},
        rules::Reason,
        targeting::Attributes,
        Assignment, Status,
    },
    storage::postgres::{self as pg, ExposureContext, StoredAssignment},
    AppState,
};

/// The user id path segment, and the request's attributes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct UserId {
    /// Any text of 1 to 256 characters without NUL (U+0000).
    #[param(min_length = 1, max_length = 256, pattern = "^[^\\u0000]*$", example = "user_A_123")]
    user_id: String,
}

/// The user's variant: forced, stored, or newly decided and stored. Query parameters are
/// the user's attributes for targeting (`?country=DE&platform=ios`), stored with the exposure.
///
/// Rules the schema cannot express: only a running experiment assigns new users (a paused
/// or stopped one answers 409 for them and keeps existing assignments); at most 50
/// attributes, names up to 128 characters, values up to 1024.
#[utoipa::path(get, path = "/experiments/{id}/assignment/{user_id}", tag = "assignment", operation_id = "get_assignment",
    params(ExperimentId, UserId),
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
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Json<Assignment>, ApiError> {
    let mut raw = BTreeMap::new();
    for (name, value) in query {
        if raw.insert(name.clone(), Value::String(value)).is_some() {
            let message = format!("attribute `{name}` is given twice");
            return Err(ApiError::field(ErrorCode::InvalidAttributes, format!("attributes.{name}"), message));
        }
    }
    answer(&state, id, path.1, raw, request_id_of(&headers)).await
}

/// The attributes of a `POST` assignment request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"attributes": {"country": "DE", "platform": "ios", "age": 31}}))]
pub struct AssignmentRequest {
    /// Name -> string, number or boolean; at most 50.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, Value>,
}

/// As `GET`, with the attributes in a JSON body (typed values: numbers stay numbers).
#[utoipa::path(post, path = "/experiments/{id}/assignment/{user_id}", tag = "assignment", operation_id = "post_assignment",
    params(ExperimentId, UserId), request_body = AssignmentRequest,
    responses(
        (status = 200, body = Assignment),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 409, response = server::openapi::Conflict),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn assign_with_attributes(
    State(state): State<AppState>,
    ExperimentId(id): ExperimentId,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<AssignmentRequest>,
) -> Result<Json<Assignment>, ApiError> {
    answer(&state, id, path.1, request.attributes, request_id_of(&headers)).await
}

async fn answer(
    state: &AppState,
    id: i64,
    user_id: String,
    raw: impl IntoIterator<Item = (String, Value)>,
    request_id: Option<&str>,
) -> Result<Json<Assignment>, ApiError> {
    if !length_ok(&user_id, MAX_USER_ID_CHARS) || user_id.contains('\0') {
        let message = format!("user_id must be 1 to {MAX_USER_ID_CHARS} characters, without NUL");
        return Err(ApiError::field(ErrorCode::InvalidUserId, "user_id", message));
    }
    let attrs =
        rollout::attributes(raw).map_err(|v| ApiError::field(ErrorCode::InvalidAttributes, v.field, v.message))?;
    let snapshot = state.config.with(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let texts = attribute_texts(&attrs);
    let context = ExposureContext { request_id, attributes: &texts };
    let (variant, reason, stored, new) = decide(state, &snapshot, id, &user_id, &attrs, context).await?;
    Ok(Json(Assignment {
        experiment_id: id,
        user_id,
        variant,
        reason,
        assigned_at: stored.map(|s| s.assigned_at),
        new,
    }))
}

type Answer = (Option<String>, Reason, Option<StoredAssignment>, bool);

async fn decide(
    state: &AppState,
    snapshot: &Snapshot,
    id: i64,
    user_id: &str,
    attrs: &Attributes,
    context: ExposureContext<'_>,
) -> Result<Answer, ApiError> {
    let experiment = snapshot.experiments.get(&id).ok_or_else(|| not_found(id))?;
    if let Some(variant) = experiment.rollout.forced.get(user_id).filter(|_| experiment.status != Status::Stopped) {
        pg::expose_forced(&state.db, id, user_id, variant, context).await?;
        return Ok((Some(variant.clone()), Reason::Forced, None, false));
    }
    if let Some(stored) = existing(state, id, user_id).await? {
        return Ok((Some(variant_name(snapshot, id, stored)?), Reason::Assigned, Some(stored), false));
    }
    let decision = snapshot.rules.decide(id, user_id, attrs, Utc::now());
    if matches!(decision.reason, Reason::Assigned | Reason::Holdout) {
        // The holdouts covering the experiment store their side too, so a holdout's
        // results compare its users with everyone else's.
        let sdk = snapshot.rules.experiment(id).ok_or_else(|| not_found(id))?;
        for holdout in snapshot.rules.holdouts_of(sdk) {
            let side = snapshot.rules.decide(holdout, user_id, attrs, Utc::now());
            if let (Reason::Assigned, Some(name)) = (side.reason, side.variant) {
                if existing(state, holdout, user_id).await?.is_none() {
                    commit(state, snapshot, holdout, user_id, &name, context).await?;
                }
            }
        }
    }
    match (decision.reason, decision.variant) {
        (Reason::Assigned, Some(name)) => {
            let (stored, new) = commit(state, snapshot, id, user_id, &name, context).await?;
            Ok((Some(variant_name(snapshot, id, stored)?), Reason::Assigned, Some(stored), new))
        }
        (Reason::NotRunning, _) => Err(not_running(id, experiment.status)),
        (reason, _) => Ok((None, reason, None, false)),
    }
}

/// The committed assignment, from this process's cache or from Postgres.
async fn existing(state: &AppState, id: i64, user_id: &str) -> Result<Option<StoredAssignment>, ApiError> {
    match state.assignments.get(id, user_id) {
        Some(stored) => Ok(Some(stored)),
        None => {
            let stored = pg::assignment(&state.db, id, user_id).await?;
            if let Some(s) = stored {
                state.assignments.remember(id, user_id, s);
            }
            Ok(stored)
        }
    }
}

fn variant_name(snapshot: &Snapshot, id: i64, stored: StoredAssignment) -> Result<String, ApiError> {
    let experiment = snapshot.experiments.get(&id).ok_or_else(|| not_found(id))?;
    let variant = experiment.variants.iter().find(|v| v.id == stored.variant_id);
    variant
        .map(|v| v.name.clone())
        .ok_or_else(|| ApiError::internal(format!("variant {} not in experiment {id}", stored.variant_id)))
}

/// Stores the assignment of a user who had none, with its exposure (outbox, relayed to
/// Kafka by `outbox`). `(assignment, true)` when this request made it; a concurrent
/// request may have won.
async fn commit(
    state: &AppState,
    snapshot: &Snapshot,
    id: i64,
    user_id: &str,
    name: &str,
    context: ExposureContext<'_>,
) -> Result<(StoredAssignment, bool), ApiError> {
    let experiment = snapshot.experiments.get(&id).ok_or_else(|| not_found(id))?;
    let variant = experiment
        .variants
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::internal(format!("variant `{name}` not in experiment {id}")))?;
    let (stored, new) = match pg::assign(&state.db, id, user_id, (variant.id, &variant.name), context).await? {
        Some(assigned_at) => (StoredAssignment { variant_id: variant.id, assigned_at }, true),
        // A concurrent first request committed first, or the experiment stopped meanwhile.
        None => match pg::assignment(&state.db, id, user_id).await? {
            Some(found) => (found, false),
            None => {
                state.config.invalidate();
                state.experiments.invalidate(id);
                return Err(not_running(id, Status::Paused));
            }
        },
    };
    state.assignments.remember(id, user_id, stored);
    Ok((stored, new))
}

fn not_running(id: i64, status: Status) -> ApiError {
    let status = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    ApiError::Conflict(format!("experiment {id} is {status}: it keeps existing assignments and assigns no new users"))
}
