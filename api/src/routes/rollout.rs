//! Layers, holdouts and the configuration local evaluators fetch: `POST/GET /layers`,
//! `GET /layers/{key}`, `POST /holdouts`, `GET /sdk/config`.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use server::{body::JsonBody, ApiError, ErrorCode};

use crate::{
    domain::{
        experiment::{validate_description, validate_name, ValidExperiment, TOTAL_BP},
        rollout::{self, Layer, LayerMember, NewHoldout, NewLayer},
        rules::{SdkConfig, GENERAL_VARIANT, HOLDOUT_VARIANT},
        Experiment,
    },
    stats::{Significance, DEFAULT_SEQUENTIAL_TUNING},
    storage::postgres as pg,
    AppState,
};

/// A layer, its experiments' ranges and what is still free.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LayerDetail {
    #[serde(flatten)]
    pub layer: Layer,
    /// Experiments holding a range (stopped ones free theirs), by range.
    pub experiments: Vec<LayerMember>,
    /// `[start, end)` ranges in basis points no experiment holds.
    pub free: Vec<[u32; 2]>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LayerList {
    pub layers: Vec<Layer>,
}

fn layer_error(v: rollout::Violation) -> ApiError {
    ApiError::field(ErrorCode::InvalidLayer, v.field, v.message)
}

/// Create a layer: experiments placed in it get disjoint ranges of its bucket, so a user
/// is in at most one of them.
#[utoipa::path(post, path = "/layers", tag = "rollout", operation_id = "create_layer", request_body = NewLayer,
    responses(
        (status = 201, body = Layer),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 409, response = server::openapi::Conflict),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn create_layer(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewLayer>,
) -> Result<(StatusCode, Json<Layer>), ApiError> {
    rollout::check_layer_key(&new.key, "key").map_err(layer_error)?;
    validate_description(new.description.as_deref()).map_err(layer_error)?;
    let layer = pg::create_layer(&state.db, &new.key, new.description.as_deref())
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("layer `{}` exists already", new.key)))?;
    state.config.invalidate();
    Ok((StatusCode::CREATED, Json(layer)))
}

/// Every layer, by key.
#[utoipa::path(get, path = "/layers", tag = "rollout", operation_id = "list_layers",
    responses(
        (status = 200, body = LayerList),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn list_layers(State(state): State<AppState>) -> Result<Json<LayerList>, ApiError> {
    Ok(Json(LayerList { layers: pg::layers(&state.db).await? }))
}

/// One layer with its experiments' ranges and the free ranges.
#[utoipa::path(get, path = "/layers/{key}", tag = "rollout", operation_id = "get_layer",
    params(("key" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "The layer's key")),
    responses(
        (status = 200, body = LayerDetail),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn get_layer(State(state): State<AppState>, Path(key): Path<String>) -> Result<Json<LayerDetail>, ApiError> {
    let layer =
        pg::layer(&state.db, &key).await?.ok_or_else(|| ApiError::NotFound(format!("layer `{key}` does not exist")))?;
    let experiments = pg::layer_members(&state.db, &key).await?;
    let taken: Vec<[u32; 2]> = experiments.iter().map(|m| m.range).collect();
    Ok(Json(LayerDetail { layer, free: pg::gaps(&taken), experiments }))
}

/// Create a holdout: `percent` of users get no variant of the experiments it covers (every
/// experiment, or those of `layer`). It is an experiment with the variants `general` and
/// `holdout` (shares fixed): its results compare the held-out users with everyone else.
#[utoipa::path(post, path = "/holdouts", tag = "rollout", operation_id = "create_holdout", request_body = NewHoldout,
    responses(
        (status = 201, body = Experiment),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn create_holdout(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewHoldout>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    validate_name(&new.name)?;
    let held = rollout::basis_points(new.percent, "percent", false)?;
    if held >= TOTAL_BP {
        return Err(ApiError::field(ErrorCode::InvalidExperiment, "percent", "percent must be below 100"));
    }
    if let Some(key) = &new.layer {
        rollout::check_layer_key(key, "layer")?;
    }
    validate_description(new.description.as_deref())?;
    let valid = ValidExperiment {
        name: new.name.trim().to_owned(),
        description: new.description,
        variants: vec![(GENERAL_VARIANT.to_owned(), TOTAL_BP - held), (HOLDOUT_VARIANT.to_owned(), held)],
        significance: Significance::Sequential,
        sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
        hash: Default::default(),
        seed: None,
        coverage_bp: TOTAL_BP,
        conditions: None,
        start_at: None,
        stop_at: None,
        forced: Default::default(),
        holdout: Some(new.layer),
        layer: None,
        metrics: Default::default(),
    };
    let id = pg::create_experiment(&state.db, &valid).await?;
    state.config.invalidate();
    let holdout = pg::experiment(&state.db, id).await?.ok_or_else(|| ApiError::internal("created holdout vanished"))?;
    Ok((StatusCode::CREATED, Json(holdout)))
}

/// Everything a client needs to assign locally, as docs/assignment.md specifies: experiments
/// (salts, hashes, allocations, coverage, conditions, schedule, forced users), layers and
/// holdouts. Cacheable: send the `ETag` back as `If-None-Match` for a 304.
#[utoipa::path(get, path = "/sdk/config", tag = "rollout", operation_id = "get_sdk_config",
    params(("If-None-Match" = Option<String>, Header, description = "The ETag of the copy you hold")),
    responses(
        (status = 200, body = SdkConfig, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Your copy is current"),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn sdk_config(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let snapshot = state.config.get(&state.db).await?;
    let etag = HeaderValue::from_str(&snapshot.etag).map_err(|e| ApiError::internal(e.to_string()))?;
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=10"));
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == snapshot.etag || t.trim() == "*");
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag), cache]).into_response());
    }
    let json = (header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(([(header::ETAG, etag), cache, json], snapshot.body.clone()).into_response())
}
