//! What every request goes through: a request id (the client's `x-request-id` when it is
//! sane, else a new UUID; echoed in the response, passed on to Kafka message headers), an
//! access log line at info, per-route request, error and latency metrics, and a JSON 500
//! if a handler panics.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use common::metrics::{self as m, HistogramVec, IntCounterVec, Registry};
use tower_http::{
    catch_panic::CatchPanicLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::error::{self, ApiError};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen request id we keep; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// The id of the request being served (an extension set by [`finish`]'s middleware, which
/// also puts it in the request's `x-request-id` header).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

fn sane(id: &HeaderValue) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

/// The request id a handler passes on (to Kafka headers), when [`finish`] set one.
pub fn request_id_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok())
}

async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| sane(v))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).unwrap_or(HeaderValue::from_static("-")));
    // Handlers read it from the headers; the access log from the extension.
    request.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

/// Per-route HTTP metrics (see README "Metrics").
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    seconds: HistogramVec,
}

impl HttpMetrics {
    pub fn new(r: &Registry) -> Self {
        let labels = &["route", "method", "status"];
        Self {
            requests: m::counter_vec(r, "abtest_http_requests_total", "HTTP requests answered, by route", labels),
            errors: m::counter_vec(r, "abtest_http_errors_total", "HTTP requests answered 4xx or 5xx, by route", labels),
            seconds: m::histogram_vec(
                r,
                "abtest_http_request_duration_seconds",
                "Time from request to response head, by route",
                &["route", "method"],
                m::LATENCY_BUCKETS,
            ),
        }
    }
}

async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    metrics.seconds.with_label_values(&[&route, &method]).observe(started.elapsed().as_secs_f64());
    let labels = [route.as_str(), method.as_str(), status.as_str()];
    metrics.requests.with_label_values(&labels).inc();
    if status.is_client_error() || status.is_server_error() {
        metrics.errors.with_label_values(&labels).inc();
    }
    response
}

/// The outer layers of every binary's router: JSON 404 and 405, metrics, panics as JSON
/// 500s, the access log and request ids. Call it last, on the fully merged router.
pub fn finish(router: Router, registry: &Registry) -> Router {
    let access_log = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let id = request.extensions().get::<RequestId>().map(RequestId::as_str).unwrap_or_default().to_owned();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    router
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(HttpMetrics::new(registry), track))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
        .layer(access_log)
        .layer(middleware::from_fn(request_id))
}
