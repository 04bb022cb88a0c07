//! `POST/GET /experiments`, `GET/PATCH /experiments/{id}`.

use std::collections::HashMap;

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use server::{body::JsonBody, query::Query, ApiError, ErrorBody};

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
#[utoipa::path(post, path = "/experiments", tag = "experiments", request_body = NewExperiment,
    responses((status = 201, body = Experiment), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewExperiment>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    let new = new.validate()?;
    let id = pg::create_experiment(&state.db, &new).await?;
    let experiment =
        pg::experiment(&state.db, id).await?.ok_or_else(|| ApiError::internal("created experiment vanished"))?;
    tracing::info!(id, name = %experiment.name, "experiment created");
    Ok((StatusCode::CREATED, Json(experiment)))
}

/// List experiments, oldest first, by pages.
#[utoipa::path(get, path = "/experiments", tag = "experiments", params(ListParams),
    responses((status = 200, body = ExperimentPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)),
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
#[utoipa::path(get, path = "/experiments/{id}", tag = "experiments", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = Experiment), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, ExperimentId(id): ExperimentId) -> Result<Json<Experiment>, ApiError> {
    Ok(Json(pg::experiment(&state.db, id).await?.ok_or_else(|| not_found(id))?))
}

/// Change status (`running`, `paused`, `stopped`), name, description, settings or allocations.
#[utoipa::path(patch, path = "/experiments/{id}", tag = "experiments", params(("id" = i64, Path, minimum = 1)),
    request_body = ExperimentPatch,
    responses((status = 200, body = Experiment), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    ExperimentId(id): ExperimentId,
    JsonBody(patch): JsonBody<ExperimentPatch>,
) -> Result<Json<Experiment>, ApiError> {
    patch.check()?;
    let current = pg::experiment(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let allocations = patch.allocations(&current)?;
    pg::update_experiment(&state.db, id, &patch, allocations).await?;
    state.experiments.invalidate(id);
    Ok(Json(pg::experiment(&state.db, id).await?.ok_or_else(|| not_found(id))?))
}
