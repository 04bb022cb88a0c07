//! The metric catalog: `POST /metrics`, `GET /metrics`, `GET /metrics/{key}`,
//! `PATCH /metrics/{key}`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use server::{body::JsonBody, query::Query, ApiError, ErrorCode};

use crate::{
    domain::metric::{check_key, Metric, MetricPatch, NewMetric},
    storage::postgres::metrics as store,
    AppState,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricList {
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricListParams {
    /// Include archived metrics (default false).
    #[serde(default)]
    pub archived: Option<bool>,
}

fn metric_error(v: crate::domain::Violation) -> ApiError {
    ApiError::field(ErrorCode::InvalidMetric, v.field, v.message)
}

fn key_of(key: &str) -> Result<(), ApiError> {
    check_key(key).map_err(|v| ApiError::field(ErrorCode::InvalidPath, "key", v.message))
}

fn missing(key: &str) -> ApiError {
    ApiError::NotFound(format!("metric `{key}` does not exist"))
}

/// Define a metric once; experiments reference it by key.
#[utoipa::path(post, path = "/metrics", tag = "metrics", operation_id = "create_metric", request_body = NewMetric,
    responses(
        (status = 201, body = Metric),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 409, response = server::openapi::Conflict),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewMetric>,
) -> Result<(StatusCode, Json<Metric>), ApiError> {
    new.check().map_err(metric_error)?;
    let metric = store::create_metric(&state.db, &new)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("metric `{}` exists already", new.key)))?;
    Ok((StatusCode::CREATED, Json(metric)))
}

/// Every metric, by key.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "list_metrics", params(MetricListParams),
    responses(
        (status = 200, body = MetricList),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<MetricListParams>,
) -> Result<Json<MetricList>, ApiError> {
    Ok(Json(MetricList { metrics: store::metrics(&state.db, params.archived.unwrap_or(false)).await? }))
}

/// One metric.
#[utoipa::path(get, path = "/metrics/{key}", tag = "metrics", operation_id = "get_metric",
    params(("key" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "The metric's key")),
    responses(
        (status = 200, body = Metric),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Path(key): Path<String>) -> Result<Json<Metric>, ApiError> {
    key_of(&key)?;
    Ok(Json(store::metric(&state.db, &key).await?.ok_or_else(|| missing(&key))?))
}

/// Change a metric (archive it with `{"archived": true}`). Results of every experiment
/// using it follow the new definition.
#[utoipa::path(patch, path = "/metrics/{key}", tag = "metrics", operation_id = "patch_metric", request_body = MetricPatch,
    params(("key" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "The metric's key")),
    responses(
        (status = 200, body = Metric),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Path(key): Path<String>,
    JsonBody(patch): JsonBody<MetricPatch>,
) -> Result<Json<Metric>, ApiError> {
    key_of(&key)?;
    let current = store::metric(&state.db, &key).await?.ok_or_else(|| missing(&key))?;
    let changed = patch.apply(&current).map_err(metric_error)?;
    let stored = store::update_metric(&state.db, &changed).await?.ok_or_else(|| missing(&key))?;
    state.experiments.expire_all();
    Ok(Json(stored))
}
