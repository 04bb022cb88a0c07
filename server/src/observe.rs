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
    let id = request.headers().get(&X_REQUEST_ID).filter(|v| sane(v)).cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).unwrap_or(HeaderValue::from_static("-"))
    });
    // Handlers read it from the headers; the access log from the extension.
    request.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

/// The access log line: at info for API routes, at debug for probes and scrapes (the
/// level of the request's span).
#[derive(Clone, Copy)]
struct AccessLog;

impl<B> tower_http::trace::OnResponse<B> for AccessLog {
    fn on_response(self, response: &Response<B>, latency: std::time::Duration, span: &tracing::Span) {
        let level = span.metadata().map_or(Level::INFO, |m| *m.level());
        let on_response = DefaultOnResponse::new().level(level);
        on_response.on_response(response, latency, span);
    }
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
            errors: m::counter_vec(
                r,
                "abtest_http_errors_total",
                "HTTP requests answered 4xx or 5xx, by route",
                labels,
            ),
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
            let (method, path) = (request.method(), request.uri().path());
            // Probes and scrapes (every few seconds, from machines) at debug, the rest at info.
            if matches!(path, "/livez" | "/readyz" | "/prometheus") {
                tracing::debug_span!("request", %method, %path, request_id = %id)
            } else {
                tracing::info_span!("request", %method, %path, request_id = %id)
            }
        })
        .on_response(AccessLog);
    router
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
        .layer(middleware::from_fn_with_state(HttpMetrics::new(registry), track))
        .layer(access_log)
        .layer(middleware::from_fn(request_id))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request, routing::get};
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    fn app(registry: &Registry) -> Router {
        let routes =
            Router::new()
                .route(
                    "/things/{id}",
                    get(|headers: axum::http::HeaderMap| async move {
                        request_id_of(&headers).unwrap_or_default().to_owned()
                    }),
                )
                .route("/boom", get(boom));
        finish(routes, registry)
    }

    async fn call(app: &Router, request: Request<Body>) -> (axum::http::StatusCode, axum::http::HeaderMap, String) {
        let response = app.clone().oneshot(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 16).await.expect("body");
        (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn every_answer_has_a_request_id_and_every_error_is_json() {
        let registry = Registry::new();
        let app = app(&registry);
        let (status, headers, body) = call(&app, Request::get("/things/1").body(Body::empty()).expect("req")).await;
        assert_eq!(status, 200);
        let id = headers.get(&X_REQUEST_ID).expect("request id").to_str().expect("ascii").to_owned();
        assert_eq!(body, id, "handlers see the id they answer with");
        let given = Request::get("/things/2").header("x-request-id", "abc-123").body(Body::empty()).expect("req");
        let (_, headers, body) = call(&app, given).await;
        assert_eq!(
            (headers.get(&X_REQUEST_ID).map(|v| v.as_bytes()), body.as_str()),
            (Some(&b"abc-123"[..]), "abc-123")
        );
        let insane =
            Request::get("/things/3").header("x-request-id", "x".repeat(500)).body(Body::empty()).expect("req");
        assert_ne!(call(&app, insane).await.2.len(), 500, "an oversized id is replaced");

        let (status, headers, body) = call(&app, Request::delete("/things/1").body(Body::empty()).expect("req")).await;
        assert_eq!(status, 405);
        assert_eq!(headers.get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
        assert!(body.contains(r#""error":"method_not_allowed""#), "{body}");
        let (status, _, body) = call(&app, Request::get("/nope").body(Body::empty()).expect("req")).await;
        assert_eq!((status.as_u16(), body.contains(r#""error":"not_found""#)), (404, true));
        let (status, _, body) = call(&app, Request::get("/boom").body(Body::empty()).expect("req")).await;
        assert_eq!((status.as_u16(), body.contains(r#""error":"internal""#)), (500, true));

        let text = common::metrics::render(&registry);
        let count = |needle: &str| common::metrics::sum_samples(&text, needle);
        assert_eq!(count("abtest_http_requests_total"), 6.0, "{text}");
        assert!(
            text.contains(r#"abtest_http_requests_total{method="GET",route="/things/{id}",status="200"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"abtest_http_errors_total{method="DELETE",route="/things/{id}",status="405"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert_eq!(count("abtest_http_errors_total"), 3.0, "{text}");
        assert_eq!(count("abtest_http_request_duration_seconds_count"), 6.0, "{text}");
    }
}
