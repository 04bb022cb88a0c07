//! The api's HTTP edge: handlers, the typed parameters, and the one place where storage,
//! rule and Kafka errors become HTTP answers.

pub mod assignment;
pub mod experiments;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod results;
pub mod rollout;
pub mod ui;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
    middleware,
    routing::get,
    Router,
};
use common::config::Config;
use server::{auth, ApiError, ErrorCode};
use utoipa::openapi::{
    path::{Parameter, ParameterBuilder, ParameterIn},
    schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type},
    Required,
};

use crate::{domain::Violation, storage::StorageError, AppState};

/// The authenticated API routes, the event routes of `ingest` included, each request
/// bounded by `api.request_timeout`.
pub fn api(config: &Config, state: AppState) -> Router {
    let keys = auth::ApiKeys::new(config.auth.api_keys.clone());
    Router::new()
        .route("/experiments", get(experiments::list).post(experiments::create))
        .route("/experiments/{id}", get(experiments::get).patch(experiments::patch))
        .route(
            "/experiments/{id}/assignment/{user_id}",
            get(assignment::assign).post(assignment::assign_with_attributes),
        )
        .route("/metrics", get(metrics::list).post(metrics::create))
        .route("/metrics/{key}", get(metrics::get).patch(metrics::patch))
        .route("/layers", get(rollout::list_layers).post(rollout::create_layer))
        .route("/layers/{key}", get(rollout::get_layer))
        .route("/holdouts", axum::routing::post(rollout::create_holdout))
        .route("/sdk/config", get(rollout::sdk_config))
        .route("/experiments/{id}/results", get(results::results))
        .route("/experiments/{id}/timeseries", get(results::timeseries))
        .route("/event_types", get(results::event_types))
        .with_state(state.clone())
        .merge(ingest::router(state.events.clone()))
        .layer(middleware::from_fn_with_state(keys, auth::require_api_key))
        .layer(middleware::from_fn_with_state(config.api.request_timeout, request_timeout))
}

/// Bounds every request by `limit`: past it the client gets a 503 JSON error; the work it
/// started is dropped and none of it was acknowledged.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::unavailable(format!(
            "the request took longer than {limit:?}"
        ))),
    }
}

/// Storage errors, mapped once: unavailable is 503 (retry), anything else a logged 500.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::UnknownLayer { key, field } => {
                let message = format!("layer `{key}` does not exist (create it with POST /layers)");
                return ApiError::field(ErrorCode::InvalidExperiment, field, message);
            }
            StorageError::LayerTaken { .. } => return ApiError::Conflict(e.to_string()),
            StorageError::UnknownMetric { key, archived } => {
                let message = if archived {
                    format!("metric `{key}` is archived: unarchive it (PATCH /metrics/{key}) to use it")
                } else {
                    format!("metric `{key}` does not exist (create it with POST /metrics)")
                };
                return ApiError::field(ErrorCode::InvalidExperiment, "metrics", message);
            }
            _ => {}
        }
        if e.is_unavailable() {
            ApiError::unavailable_because(e.to_string(), e)
        } else {
            ApiError::internal_because("storage", e)
        }
    }
}

/// A broken experiment rule is a 400 naming the field.
impl From<Violation> for ApiError {
    fn from(v: Violation) -> Self {
        ApiError::field(ErrorCode::InvalidExperiment, v.field, v.message)
    }
}

/// The `{id}` of `/experiments/{id}/...`: a positive 64-bit integer, else a 400 naming `id`.
pub struct ExperimentId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ExperimentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let raw = params.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or_default();
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(ExperimentId(id)),
            _ => Err(ApiError::field(
                ErrorCode::InvalidId,
                "id",
                format!("experiment id must be a positive integer, got `{raw}`"),
            )),
        }
    }
}

/// The document's `id` parameter: what [`ExperimentId`] accepts, exactly.
impl utoipa::IntoParams for ExperimentId {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(i64::MAX));
        vec![ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The experiment's id, a positive 64-bit integer."))
            .schema(Some(schema))
            .build()]
    }
}

pub fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("experiment {id} does not exist"))
}
