//! `POST/GET /experiments`, `GET/PATCH /experiments/{id}`.

use std::collections::HashMap;

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use server::{body::JsonBody, query::Query, ApiError};

use super::{not_found, params::ListParams, ExperimentId};
use crate::{
    domain::{Experiment, ExperimentPatch, NewExperiment},
    storage::{clickhouse as ch, postgres as pg},
    AppState,
};

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

/// Create an experiment.
///
/// Rules the schema cannot express: variant names are unique within the experiment and
/// the allocations sum to exactly 100 (a 400 naming `variants` otherwise); forced users
/// name existing variants; `start_at` precedes `stop_at`; a layer range that overlaps
/// another experiment's, or a share the layer has no room for, is a 409 naming the free
/// ranges.
#[utoipa::path(post, path = "/experiments", tag = "experiments", operation_id = "create_experiment",
    request_body = NewExperiment,
    responses(
        (status = 201, body = Experiment, description = "The new experiment, running", links(
            ("GetExperiment" = (operation_id = "get_experiment", parameters(("id" = "$response.body#/id")))),
            ("PatchExperiment" = (operation_id = "patch_experiment", parameters(("id" = "$response.body#/id")),
                request_body = json!({"variants": "$response.body#/variants"}),
                description = "Same variants, so the allocations are valid")),
            ("GetAssignment" = (operation_id = "get_assignment", parameters(("id" = "$response.body#/id")))),
            ("GetResults" = (operation_id = "get_results", parameters(("id" = "$response.body#/id")))),
            ("GetTimeseries" = (operation_id = "get_timeseries", parameters(("id" = "$response.body#/id")))))),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 409, response = server::openapi::Conflict),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewExperiment>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    let new = new.validate()?;
    let id = pg::create_experiment(&state.db, &new).await?;
    state.config.invalidate();
    let experiment =
        pg::experiment(&state.db, id).await?.ok_or_else(|| ApiError::internal("created experiment vanished"))?;
    tracing::info!(id, name = %experiment.name, "experiment created");
    Ok((StatusCode::CREATED, Json(experiment)))
}

/// List experiments, oldest first, by pages.
#[utoipa::path(get, path = "/experiments", tag = "experiments", operation_id = "list_experiments", params(ListParams),
    responses(
        (status = 200, body = ExperimentPage),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ExperimentPage>, ApiError> {
    let limit = params.limit.map_or(50, |l| l.0);
    let mut experiments = pg::experiments_after(&state.db, params.after.map_or(0, |a| a.0), limit + 1).await?;
    let next_after = (experiments.len() as i64 > limit).then(|| experiments[limit as usize - 1].id);
    experiments.truncate(limit as usize);
    let mut users = match (experiments.first(), experiments.last()) {
        (Some(first), Some(last)) => ch::exposed_users(&state.clickhouse, first.id, last.id)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "exposed users per experiment: ClickHouse did not answer"))
            .ok(),
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

/// One experiment.
#[utoipa::path(get, path = "/experiments/{id}", tag = "experiments", operation_id = "get_experiment", params(ExperimentId),
    responses(
        (status = 200, body = Experiment),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, ExperimentId(id): ExperimentId) -> Result<Json<Experiment>, ApiError> {
    Ok(Json(pg::experiment(&state.db, id).await?.ok_or_else(|| not_found(id))?))
}

/// Change status (`running`, `paused`, `stopped`), name, description, settings or allocations.
///
/// A rule the schema cannot express: `variants` names exactly the experiment's variants
/// (new allocations, summing to 100, for the same names; a 400 naming `variants` otherwise).
#[utoipa::path(patch, path = "/experiments/{id}", tag = "experiments", operation_id = "patch_experiment",
    params(ExperimentId), request_body = ExperimentPatch,
    responses(
        (status = 200, body = Experiment, description = "The experiment as changed", links(
            ("GetExperiment" = (operation_id = "get_experiment", parameters(("id" = "$response.body#/id")))),
            ("GetAssignment" = (operation_id = "get_assignment", parameters(("id" = "$response.body#/id")))))),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 409, response = server::openapi::Conflict),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    ExperimentId(id): ExperimentId,
    JsonBody(patch): JsonBody<ExperimentPatch>,
) -> Result<Json<Experiment>, ApiError> {
    patch.check()?;
    let current = pg::experiment(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let allocations = patch.against(&current)?;
    pg::update_experiment(&state.db, id, &patch, allocations).await?;
    state.experiments.invalidate(id);
    state.config.invalidate();
    Ok(Json(pg::experiment(&state.db, id).await?.ok_or_else(|| not_found(id))?))
}
