//! `POST /events` and `POST /events/batch`: validate everything, then hand every event
//! to Kafka and answer 202 only when Kafka acknowledged all of them. `POST /exposures`
//! (`crate::exposures`) shares the state, the producer and the acknowledgement path.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Json, Router,
};
use chrono::Utc;
use common::{
    config::Config,
    event::{EventEnvelope, EventObject},
    kafka::{Message, SendError, Sink},
    metrics::{self, Histogram, IntCounter, IntCounterVec, Registry},
};
use serde::Serialize;
use server::{
    body::{parse, read_body},
    observe::request_id_of,
    ApiError, ErrorCode,
};

/// Everything the event and exposure routes need; shared by the `ingest` and `api` binaries.
pub struct Events {
    sink: Sink,
    topic: String,
    pub(crate) exposures_topic: String,
    pub(crate) limits: Limits,
    pub(crate) metrics: EventMetrics,
}

#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_event_bytes: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_batch_events: usize,
    pub(crate) max_future_skew: std::time::Duration,
}

/// Why events were refused (the `reason` label of `abtest_events_rejected_total`).
#[derive(Debug, Clone, Copy)]
enum Rejection {
    Invalid,
    TooLarge,
    UnsupportedEncoding,
    Backpressure,
    KafkaUnavailable,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::TooLarge => "too_large",
            Rejection::UnsupportedEncoding => "unsupported_encoding",
            Rejection::Backpressure => "backpressure",
            Rejection::KafkaUnavailable => "kafka_unavailable",
        }
    }

    fn of(e: &ApiError) -> Self {
        match e {
            ApiError::TooLarge(_) => Rejection::TooLarge,
            ApiError::UnsupportedMediaType(_) => Rejection::UnsupportedEncoding,
            ApiError::Unavailable { source: Some(s), .. }
                if matches!(s.downcast_ref::<SendError>(), Some(SendError::QueueFull)) =>
            {
                Rejection::Backpressure
            }
            ApiError::Unavailable { .. } => Rejection::KafkaUnavailable,
            _ => Rejection::Invalid,
        }
    }
}

pub(crate) struct EventMetrics {
    events: Counts,
    pub(crate) exposures: Counts,
    ack_seconds: Histogram,
}

/// Messages of one kind (events, exposures) acknowledged, and refused by reason.
pub(crate) struct Counts {
    accepted: IntCounter,
    rejected: IntCounterVec,
}

impl Counts {
    fn new(r: &Registry, kind: &str, what: &str) -> Self {
        Self {
            accepted: metrics::counter(
                r,
                &format!("abtest_{kind}_accepted_total"),
                &format!("{what} acknowledged by Kafka and answered 202"),
            ),
            rejected: metrics::counter_vec(
                r,
                &format!("abtest_{kind}_rejected_total"),
                &format!("{what} refused, by reason"),
                &["reason"],
            ),
        }
    }

    /// Counts the messages of a refused request (at least one) under the error's reason.
    fn reject(&self, e: &ApiError, messages: usize) {
        self.rejected.with_label_values(&[Rejection::of(e).label()]).inc_by(messages.max(1) as u64);
    }
}

impl EventMetrics {
    fn new(r: &Registry, sink: &Sink) -> Self {
        let queued = sink.clone();
        metrics::gauge_fn(
            r,
            "abtest_producer_queue_messages",
            "Messages waiting in the producer for Kafka",
            move || queued.in_flight() as i64,
        );
        Self {
            events: Counts::new(r, "events", "Events"),
            exposures: Counts::new(r, "exposures", "Exposures"),
            ack_seconds: metrics::histogram(
                r,
                "abtest_produce_ack_seconds",
                "Time from enqueue to Kafka acknowledgement of a request's events or exposures",
                metrics::LATENCY_BUCKETS,
            ),
        }
    }
}

impl Events {
    pub fn new(config: &Config, sink: Sink, registry: &Registry) -> Arc<Self> {
        let metrics = EventMetrics::new(registry, &sink);
        Arc::new(Self {
            sink,
            topic: config.kafka.topics.events.clone(),
            exposures_topic: config.kafka.topics.exposures.clone(),
            limits: Limits {
                max_event_bytes: config.ingest.max_event_bytes,
                max_batch_bytes: config.ingest.max_batch_bytes,
                max_batch_events: config.ingest.max_batch_events,
                max_future_skew: config.ingest.max_future_skew,
            },
            metrics,
        })
    }

    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Sends every envelope and waits for all acknowledgements; anything short of a full
    /// acknowledgement is a 503 and nothing is reported accepted.
    async fn produce(&self, envelopes: &[EventEnvelope<'_>], request_id: Option<&str>) -> Result<usize, ApiError> {
        let messages: Vec<Message<Vec<u8>>> =
            envelopes.iter().map(|e| Message { key: e.user_id.as_bytes(), payload: e.encode(), request_id }).collect();
        self.send(&self.topic, &messages, &self.metrics.events).await
    }

    /// Sends `messages` to `topic` and waits for every acknowledgement, counting them in
    /// `counts` once all are in: the one path of the event and exposure routes to Kafka.
    pub(crate) async fn send(
        &self,
        topic: &str,
        messages: &[Message<'_, Vec<u8>>],
        counts: &Counts,
    ) -> Result<usize, ApiError> {
        let started = Instant::now();
        let sent = self.sink.send_all(topic, messages).await;
        self.metrics.ack_seconds.observe(started.elapsed().as_secs_f64());
        sent?;
        counts.accepted.inc_by(messages.len() as u64);
        Ok(messages.len())
    }
}

/// An event as clients send it (OpenAPI schema; parsing is `common::event::IncomingEvent`).
///
/// A rule the schema cannot express: `timestamp` is at most `ingest.max_future_skew` (1 h
/// by default) after the time the event is received, and not before 1970.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"user_id": "user_A_123", "type": "purchase", "properties": {"order_value": 49.99}}))]
#[allow(dead_code)]
pub struct EventSchema {
    /// Any text of 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    user_id: String,
    /// The event type, e.g. `purchase`: any text of 1 to 128 characters.
    #[schema(rename = "type", min_length = 1, max_length = 128)]
    event_type: String,
    /// A JSON object (at most 32 levels deep); `{}` when absent or null.
    properties: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// A UUID; a UUIDv7 is generated when absent or null. Send your own to make retries
    /// count once.
    #[schema(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    event_id: Option<String>,
    /// RFC 3339 date-time or epoch milliseconds, from 1970 to `ingest.max_future_skew`
    /// ahead; the receive time when absent or null.
    #[schema(schema_with = timestamp_schema)]
    timestamp: Option<serde_json::Value>,
}

/// A batch: 1 to `ingest.max_batch_events` (10 000) events.
#[cfg(feature = "openapi")]
pub struct EventBatch;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for EventBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::{openapi::schema::ArrayBuilder, ToSchema};
        ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name(EventSchema::name()))
            .min_items(Some(1))
            .max_items(Some(10_000))
            .description(Some("1 to `ingest.max_batch_events` (10 000) events"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for EventBatch {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((EventSchema::name().into_owned(), EventSchema::schema()));
        EventSchema::schemas(schemas);
    }
}

/// `timestamp`: a date-time, epoch milliseconds or null.
#[cfg(feature = "openapi")]
pub(crate) fn timestamp_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))).minimum(Some(0)))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("RFC 3339 date-time or epoch milliseconds, from 1970 to `ingest.max_future_skew` ahead; the receive time when absent or null."))
        .build()
        .into()
}

/// The unauthenticated event routes; callers put them behind the API key middleware.
pub fn router(events: Arc<Events>) -> Router {
    Router::new()
        .route("/events", post(post_event))
        .route("/events/batch", post(post_batch))
        .route("/exposures", post(crate::exposures::post_exposures))
        .with_state(events)
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    /// How many events (exposures) Kafka acknowledged: all of the request's.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub accepted: usize,
}

pub(crate) type Answer = Result<(StatusCode, Json<Accepted>), ApiError>;

/// Record one event.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/events", tag = "events", operation_id = "post_event",
    request_body(content = EventSchema, description = "`Content-Encoding: gzip` accepted; at most `ingest.max_event_bytes` (1 MiB)"),
    responses(
        (status = 202, body = Accepted, description = "Kafka has the event"),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = []))))]
pub async fn post_event(State(events): State<Arc<Events>>, headers: HeaderMap, body: Body) -> Answer {
    let answer = async {
        let bytes = read_body(&headers, body, events.limits.max_event_bytes).await?;
        let EventObject(incoming) = parse(&bytes)?;
        let envelope = incoming
            .into_envelope(Utc::now(), events.limits.max_future_skew)
            .map_err(|e| ApiError::field(ErrorCode::InvalidEvent, e.field, e.to_string()))?;
        events.produce(&[envelope], request_id_of(&headers)).await
    }
    .await;
    accepted(&events.metrics.events, answer, 1)
}

/// Record up to `ingest.max_batch_events` events, all or nothing. A bad event is a 400
/// whose `field` names it (`[3].user_id`); nothing of the batch is accepted then.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/events/batch", tag = "events", operation_id = "post_event_batch",
    request_body(content = EventBatch, description = "`Content-Encoding: gzip` accepted; at most `ingest.max_batch_bytes` (20 MiB)"),
    responses(
        (status = 202, body = Accepted, description = "Kafka has every event of the batch"),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 413, response = server::openapi::PayloadTooLarge),
        (status = 415, response = server::openapi::UnsupportedMediaType),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = []))))]
pub async fn post_batch(State(events): State<Arc<Events>>, headers: HeaderMap, body: Body) -> Answer {
    let mut n = 1;
    let answer = async {
        let bytes = read_body(&headers, body, events.limits.max_batch_bytes).await?;
        let incoming: Vec<EventObject> = parse(&bytes)?;
        n = incoming.len();
        if n == 0 {
            return Err(ApiError::invalid(ErrorCode::EmptyBatch, "a batch holds at least one event"));
        }
        if n > events.limits.max_batch_events {
            let max = events.limits.max_batch_events;
            return Err(ApiError::TooLarge(format!("{n} events in one batch; at most {max} are accepted")));
        }
        let now = Utc::now();
        let envelopes = incoming
            .into_iter()
            .enumerate()
            .map(|(i, EventObject(event))| {
                event.into_envelope(now, events.limits.max_future_skew).map_err(|e| {
                    ApiError::field(ErrorCode::InvalidEvent, format!("[{i}].{}", e.field), format!("event {i}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        events.produce(&envelopes, request_id_of(&headers)).await
    }
    .await;
    accepted(&events.metrics.events, answer, n)
}

/// 202 with the count, or the error after counting the refused messages by reason.
pub(crate) fn accepted(counts: &Counts, answer: Result<usize, ApiError>, in_request: usize) -> Answer {
    match answer {
        Ok(accepted) => Ok((StatusCode::ACCEPTED, Json(Accepted { accepted }))),
        Err(e) => {
            counts.reject(&e, in_request);
            Err(e)
        }
    }
}
