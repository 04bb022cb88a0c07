//! `POST /exposures`: exposures from clients that assign users themselves (local
//! evaluation with `GET /sdk/config`), into the `exposures` topic the api's outbox also
//! writes. All or nothing, 202 only once Kafka acknowledged every exposure, as
//! `POST /events/batch`.
//!
//! Idempotent: the `exposures` table keeps one row per experiment and user, the earliest
//! (`clickhouse/003`), so a batch sent again, or an exposure the api already recorded,
//! counts once. The client's `exposure_id` is stored with the row.

use std::sync::Arc;

use axum::{body::Body, extract::State, http::HeaderMap};
use chrono::Utc;
use common::{
    event::{IncomingExposures, JsonObject},
    kafka::Message,
};
use server::{
    body::{parse, read_body},
    observe::request_id_of,
    ApiError, ErrorCode,
};

use crate::events::{accepted, Answer, Events};

/// Record up to `ingest.max_batch_events` (10 000) exposures, all or nothing. A bad
/// exposure is a 400 whose `field` names it (`exposures[3].user_id`); nothing of the batch
/// is accepted then. Sending a batch again changes nothing: each user keeps the earliest
/// exposure of an experiment.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/exposures", tag = "exposures", operation_id = "post_exposures",
    request_body(content = ExposureBatchSchema, description = "`Content-Encoding: gzip` accepted; at most `ingest.max_batch_bytes` (20 MiB)"),
    responses(
        (status = 202, body = crate::events::Accepted, description = "Kafka has every exposure of the batch"),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = []))))]
pub async fn post_exposures(State(events): State<Arc<Events>>, headers: HeaderMap, body: Body) -> Answer {
    let mut n = 1;
    let answer = async {
        let bytes = read_body(&headers, body, events.limits.max_batch_bytes).await?;
        let JsonObject(IncomingExposures { exposures }) = parse(&bytes)?;
        n = exposures.len();
        if n == 0 {
            return Err(ApiError::field(ErrorCode::EmptyBatch, "exposures", "a batch holds at least one exposure"));
        }
        let max = events.limits.max_batch_events;
        if n > max {
            return Err(ApiError::TooLarge(format!("{n} exposures in one batch; at most {max} are accepted")));
        }
        let now = Utc::now();
        let envelopes = exposures
            .into_iter()
            .enumerate()
            .map(|(i, JsonObject(exposure))| {
                exposure.into_envelope(now, events.limits.max_future_skew).map_err(|e| {
                    let field = format!("exposures[{i}].{}", e.field);
                    ApiError::field(ErrorCode::InvalidExposure, field, format!("exposure {i}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request_id = request_id_of(&headers);
        let messages: Vec<Message<Vec<u8>>> =
            envelopes.iter().map(|e| Message { key: e.user_id.as_bytes(), payload: e.encode(), request_id }).collect();
        events.send(&events.exposures_topic, &messages, &events.metrics.exposures).await
    }
    .await;
    accepted(&events.metrics.exposures, answer, n)
}

/// An exposure a client assigned itself (OpenAPI schema; parsing is
/// `common::event::IncomingExposure`).
///
/// A rule the schema cannot express: `timestamp` is at most `ingest.max_future_skew` (1 h
/// by default) after the time the exposure is received, and not before 1970.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"exposure_id": "9b2f4c1e-exp-42-user_A_123", "experiment_id": 42, "variant": "treatment",
    "user_id": "user_A_123", "timestamp": "2026-11-30T12:00:00Z", "attributes": {"country": "DE", "app_version": "5.2.0"}}))]
#[allow(dead_code)]
pub struct ExposureSchema {
    /// The client's id of this exposure, 1 to 128 characters: stored with the exposure.
    #[schema(min_length = 1, max_length = 128)]
    exposure_id: String,
    /// The experiment's id.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    experiment_id: i64,
    /// The variant the client assigned: 1 to 100 characters, not only blanks (Unicode
    /// White_Space, as the api's variant names), no NUL.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    variant: String,
    /// Any text of 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    user_id: String,
    /// RFC 3339 date-time or epoch milliseconds, from 1970 to `ingest.max_future_skew`
    /// ahead; the receive time when absent or null.
    #[schema(schema_with = crate::events::timestamp_schema)]
    timestamp: Option<serde_json::Value>,
    /// The user's attributes (for breakdowns): at most 50, names of 1 to 128 characters
    /// without NUL, values strings of at most 1024 characters, or numbers and booleans
    /// (stored as their JSON text).
    #[schema(schema_with = attributes_schema)]
    attributes: Option<serde_json::Value>,
}

/// `{"exposures": [...]}` with 1 to `ingest.max_batch_events` (10 000) exposures.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExposureBatchSchema {
    #[schema(min_items = 1, max_items = 10_000)]
    exposures: Vec<ExposureSchema>,
}

/// `attributes`: an object of at most 50 strings, numbers or booleans, or null.
#[cfg(feature = "openapi")]
fn attributes_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
    let value = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(1024)))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean));
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(50))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(128))
                .pattern(Some(r"^[^\u0000]*$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(utoipa::openapi::RefOr::T(value.build().into()))));
    OneOfBuilder::new()
        .item(object)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("At most 50 attributes: names of 1 to 128 characters without NUL; values strings of at most 1024 characters, numbers or booleans (stored as their JSON text); none when absent or null."))
        .build()
        .into()
}
