//! `POST /events` and `POST /events/batch`: validate everything, then hand every event
//! to Kafka and answer 202 only when Kafka acknowledged all of them.

use std::{
    io::Read,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    routing::post,
    Json, Router,
};
use bytes::Bytes;
use chrono::Utc;
use common::{
    config::Config,
    event::{EventEnvelope, EventObject},
    metrics::{self, Histogram, IntCounter, IntCounterVec, IntGauge, Registry},
};
use futures::future::join_all;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer},
    types::RDKafkaErrorCode,
};
use serde::Serialize;

use crate::error::ApiError;

/// Everything the event routes need; shared by the `ingest` and `api` binaries.
pub struct Events {
    pub producer: FutureProducer,
    pub topic: String,
    pub limits: Limits,
    pub metrics: EventMetrics,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
    pub max_batch_events: usize,
    pub ack_timeout: Duration,
    pub max_future_skew: Duration,
    pub queue_max_messages: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_event_bytes: config.ingest.max_event_bytes,
            max_batch_bytes: config.ingest.max_batch_bytes,
            max_batch_events: config.ingest.max_batch_events,
            ack_timeout: config.ingest.ack_timeout,
            max_future_skew: config.ingest.max_future_skew,
            queue_max_messages: config.kafka.queue_max_messages as usize,
        }
    }
}

#[derive(Clone)]
pub struct EventMetrics {
    accepted: IntCounter,
    rejected: IntCounterVec,
    ack_seconds: Histogram,
    queue_depth: IntGauge,
}

impl EventMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            accepted: metrics::counter(
                r,
                "abtest_events_accepted_total",
                "Events acknowledged by Kafka and answered 202",
            ),
            rejected: metrics::counter_vec(r, "abtest_events_rejected_total", "Events refused, by reason", &["reason"]),
            ack_seconds: metrics::histogram(
                r,
                "abtest_produce_ack_seconds",
                "Time from enqueue to Kafka acknowledgement of a request's events",
                metrics::LATENCY_BUCKETS,
            ),
            queue_depth: metrics::gauge(r, "abtest_producer_queue_depth", "Messages waiting in the producer for Kafka"),
        }
    }

    fn reject(&self, reason: &str, events: usize) {
        self.rejected.with_label_values(&[reason]).inc_by(events.max(1) as u64);
    }
}

impl Events {
    pub fn new(config: &Config, producer: FutureProducer, registry: &Registry) -> Arc<Self> {
        Arc::new(Self {
            producer,
            topic: config.kafka.topics.events.clone(),
            limits: Limits::from_config(config),
            metrics: EventMetrics::new(registry),
        })
    }

    /// Refreshes gauges that are read rather than counted; called on every scrape.
    pub fn observe(&self) {
        self.metrics.queue_depth.set(i64::from(self.producer.in_flight_count()));
    }
}

/// The unauthenticated event routes; callers put them behind the API key middleware.
pub fn router(events: Arc<Events>) -> Router {
    Router::new().route("/events", post(post_event)).route("/events/batch", post(post_batch)).with_state(events)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// How many events Kafka acknowledged.
    pub accepted: usize,
}

/// Record one event.
#[utoipa::path(post, path = "/events", tag = "events",
    request_body(content = serde_json::Value, description = "`{user_id, type, properties?, event_id?, timestamp?}`; `Content-Encoding: gzip` accepted"),
    responses(
        (status = 202, body = Accepted, description = "Kafka has the event"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody, description = "Kafka did not acknowledge in time; retry")),
    security(("bearer" = [])))]
pub async fn post_event(
    State(events): State<Arc<Events>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let bytes = read_body(&headers, body, events.limits.max_event_bytes)
        .await
        .inspect_err(|e| events.metrics.reject(reason(e), 1))?;
    let EventObject(incoming) = parse(&bytes).inspect_err(|e| events.metrics.reject(reason(e), 1))?;
    let now = Utc::now();
    let envelope = incoming
        .into_envelope(now, events.limits.max_future_skew)
        .map_err(|e| ApiError::field("invalid_event", e.field, e.to_string()))
        .inspect_err(|e| events.metrics.reject(reason(e), 1))?;
    events.produce(&[envelope]).await
}

/// Record up to `ingest.max_batch_events` events, all or nothing.
#[utoipa::path(post, path = "/events/batch", tag = "events",
    request_body(content = Vec<serde_json::Value>, description = "A JSON array of events; `Content-Encoding: gzip` accepted"),
    responses(
        (status = 202, body = Accepted, description = "Kafka has every event of the batch"),
        (status = 400, body = crate::error::ErrorBody, description = "Nothing was accepted; `field` names the first bad event, e.g. `[3].user_id`"),
        (status = 401, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_batch(
    State(events): State<Arc<Events>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let bytes = read_body(&headers, body, events.limits.max_batch_bytes)
        .await
        .inspect_err(|e| events.metrics.reject(reason(e), 1))?;
    let incoming: Vec<EventObject> = parse(&bytes).inspect_err(|e| events.metrics.reject(reason(e), 1))?;
    let n = incoming.len();
    if n == 0 {
        events.metrics.reject("invalid", 1);
        return Err(ApiError::invalid("empty_batch", "a batch holds at least one event"));
    }
    if n > events.limits.max_batch_events {
        events.metrics.reject("too_large", n);
        return Err(ApiError::TooLarge(format!(
            "{n} events in one batch; at most {} are accepted",
            events.limits.max_batch_events
        )));
    }
    let now = Utc::now();
    let mut envelopes = Vec::with_capacity(n);
    for (i, EventObject(event)) in incoming.into_iter().enumerate() {
        match event.into_envelope(now, events.limits.max_future_skew) {
            Ok(envelope) => envelopes.push(envelope),
            Err(e) => {
                events.metrics.reject("invalid", n);
                return Err(ApiError::field("invalid_event", format!("[{i}].{}", e.field), format!("event {i}: {e}")));
            }
        }
    }
    events.produce(&envelopes).await
}

fn reason(e: &ApiError) -> &'static str {
    match e {
        ApiError::TooLarge(_) => "too_large",
        ApiError::UnsupportedMediaType(_) => "unsupported_encoding",
        ApiError::Unavailable { .. } => "kafka_unavailable",
        _ => "invalid",
    }
}

impl Events {
    /// Enqueues every envelope and waits for all acknowledgements, bounded by
    /// `ingest.ack_timeout`. Anything short of a full acknowledgement is a 503.
    pub async fn produce(&self, envelopes: &[EventEnvelope<'_>]) -> Result<(StatusCode, Json<Accepted>), ApiError> {
        let n = envelopes.len();
        // Backpressure before enqueuing anything, so a request is refused whole rather than
        // half-queued when the producer is full.
        let in_flight = usize::try_from(self.producer.in_flight_count()).unwrap_or(0);
        if in_flight + n > self.limits.queue_max_messages {
            self.metrics.reject("backpressure", n);
            return Err(ApiError::unavailable("the producer queue is full; retry shortly"));
        }
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(n);
        for envelope in envelopes {
            let payload = envelope.encode();
            let record = FutureRecord::to(&self.topic).key(envelope.user_id.as_bytes()).payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.metrics.reject("backpressure", n);
                    return Err(ApiError::unavailable("the producer queue is full; retry shortly"));
                }
                Err((e, _)) => {
                    self.metrics.reject("kafka_unavailable", n);
                    return Err(ApiError::unavailable(format!("Kafka refused the event: {e}")));
                }
            }
        }
        let acked = tokio::time::timeout(self.limits.ack_timeout, join_all(deliveries)).await;
        self.metrics.ack_seconds.observe(started.elapsed().as_secs_f64());
        let results = acked.map_err(|_| {
            self.metrics.reject("kafka_unavailable", n);
            ApiError::unavailable(format!(
                "Kafka did not acknowledge within {:?}; nothing is guaranteed, retry",
                self.limits.ack_timeout
            ))
        })?;
        for result in results {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    self.metrics.reject("kafka_unavailable", n);
                    return Err(ApiError::unavailable(format!("Kafka did not take the event: {e}")));
                }
                Err(_canceled) => {
                    self.metrics.reject("kafka_unavailable", n);
                    return Err(ApiError::unavailable("the producer shut down before Kafka acknowledged"));
                }
            }
        }
        self.metrics.accepted.inc_by(n as u64);
        Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: n })))
    }
}

/// Reads the body within `limit` bytes, inflating gzip within the same limit.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("request body exceeds {limit} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let raw = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => return Err(ApiError::invalid("invalid_body", format!("could not read the body: {e}"))),
    };
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            let mut inflated = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
            let read = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1).read_to_end(&mut inflated);
            match read {
                Ok(n) if n > limit => Err(ApiError::TooLarge(format!("decompressed body exceeds {limit} bytes"))),
                Ok(_) => Ok(Bytes::from(inflated)),
                Err(e) => Err(ApiError::invalid("invalid_gzip", format!("the body is not valid gzip: {e}"))),
            }
        }
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding `{other}` is not supported; use gzip or none"
        ))),
    }
}

/// Parses JSON, naming the path of the first bad value (`[3].user_id`).
pub fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = format!("invalid JSON: {inner}");
        if path == "." || path.is_empty() {
            ApiError::invalid("invalid_json", message)
        } else {
            ApiError::field("invalid_json", path, message)
        }
    })?;
    de.end().map_err(|e| ApiError::invalid("invalid_json", format!("invalid JSON: {e}")))?;
    Ok(value)
}
