//! What only needs the router: validation, keys, error shapes, limits. In-process, no
//! stack: every dependency points at a closed port, so anything that got past validation
//! would answer 503, and every assertion here is about what is refused before that.

use std::time::Duration;

use axum::{body::Body, http::Request, Router};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tower::ServiceExt;

fn app() -> Router {
    let mut config = common::Config::default();
    config.auth.api_keys = vec![common::config::Secret::new("test-key")];
    config.kafka.brokers = "127.0.0.1:1".parse().expect("brokers");
    config.clickhouse.url = "http://127.0.0.1:1".into();
    config.postgres.url = common::config::Secret::new("postgres://u:p@127.0.0.1:1/db");
    config.postgres.acquire_timeout = Duration::from_millis(200);
    let registry = common::metrics::Registry::new();
    let state = api::AppState::new(&config, &registry).expect("state");
    api::app(&config, state, registry, common::shutdown::CancellationToken::new())
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Vec<u8>,
    gzip: bool,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = app.clone().oneshot(request.body(Body::from(body)).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{method} {path}: not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    (StatusCode::from_u16(status.as_u16()).expect("status"), value)
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, "GET", path, Some("Bearer test-key"), Vec::new(), false).await
}

fn hostile_bodies() -> Vec<(&'static str, Vec<u8>, bool)> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &vec![b'{'; 64 << 20]).expect("gzip");
    let sql = "'; DROP TABLE experiments; --";
    vec![
        ("malformed JSON", b"{\"name\": ".to_vec(), false),
        // serde's derived structs would read an array of the fields in order.
        ("an array, not an object", b"[null, null, null]".to_vec(), false),
        ("wrong types", br#"{"name": ["x"], "variants": "many", "status": 5}"#.to_vec(), false),
        ("empty strings", br#"{"name": "", "variants": [{"name": "", "allocation_percent": 50}], "status": ""}"#.to_vec(), false),
        ("huge string", format!(r#"{{"name": "{}", "variants": []}}"#, "x".repeat(900_000)).into_bytes(), false),
        ("over the body limit", vec![b' '; 21 << 20], false),
        ("deep nesting", deep.into_bytes(), false),
        ("invalid UTF-8", b"{\"name\": \"\xff\xfe\"}".to_vec(), false),
        ("gzip bomb", gz.finish().expect("gzip"), true),
        ("not gzip", b"plain".to_vec(), true),
        ("SQL in every field", serde_json::to_vec(&json!({"name": sql, "description": sql, "status": sql, "variants": [{"name": sql, "allocation_percent": sql}]})).expect("json"), false),
    ]
}

/// Every body route against hostile input: a 4xx JSON error each time, never a 5xx.
#[tokio::test]
async fn hostile_bodies_on_every_route_get_a_4xx_json_error() {
    let app = app();
    for (method, path) in [
        ("POST", "/experiments"),
        ("PATCH", "/experiments/1"),
        ("POST", "/events"),
        ("POST", "/events/batch"),
        ("POST", "/exposures"),
    ] {
        for (what, body, gzip) in hostile_bodies() {
            let (status, error) = send(&app, method, path, Some("Bearer test-key"), body, gzip).await;
            assert!(status.is_client_error(), "{method} {path} with {what}: {status} {error}");
            assert!(error["error"].is_string() && error["message"].is_string(), "{error}");
        }
    }
}

#[tokio::test]
async fn bad_paths_and_parameters_are_400s_naming_them() {
    let app = app();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20");
    let sql = enc("'; DROP TABLE experiments; --");
    for (path, field) in [
        (format!("/experiments/{sql}"), "id"),
        ("/experiments/1e3".to_owned(), "id"),
        ("/experiments/0".to_owned(), "id"),
        ("/experiments/9223372036854775808".to_owned(), "id"),
        (format!("/experiments?limit={sql}"), "limit"),
        ("/experiments?limit=0".to_owned(), "limit"),
        ("/experiments?after=-1".to_owned(), "after"),
        (format!("/experiments/{sql}/assignment/u"), "id"),
        (format!("/experiments/1/assignment/{}", "x".repeat(257)), "user_id"),
        // Postgres text cannot hold NUL: refused before any storage (it was a 500).
        ("/experiments/1/assignment/a%00b".to_owned(), "user_id"),
        ("/experiments/1/results?event_type=".to_owned(), "event_type"),
        ("/experiments/1/results?phase=0".to_owned(), "phase"),
        ("/metrics/a%20b".to_owned(), "key"),
        ("/metrics?archived=maybe".to_owned(), "archived"),
        (format!("/experiments/1/results?event_type=x&last_day={sql}"), "last_day"),
        ("/experiments/1/results?event_type=x&last_day=0".to_owned(), "last_day"),
        ("/experiments/1/results?event_type=x&alpha=2".to_owned(), "alpha"),
        ("/experiments/1/results?event_type=x&alpha=nan".to_owned(), "alpha"),
        ("/experiments/1/results?event_type=x&correction=sidak".to_owned(), "correction"),
        ("/experiments/1/results?event_type=x&cuped_days=-1".to_owned(), "cuped_days"),
        ("/experiments/1/results?event_type=x&cuped_days=1.5".to_owned(), "cuped_days"),
        ("/experiments/1/results?event_type=x&target_lift=0".to_owned(), "target_lift"),
        ("/experiments/1/results?event_type=x&target_lift=five".to_owned(), "target_lift"),
        (format!("/experiments/1/results?event_type={}", "x".repeat(129)), "event_type"),
        (format!("/experiments/1/results?event_type=x&value_property={}", "x".repeat(129)), "value_property"),
        ("/experiments/1/timeseries".to_owned(), "event_type"),
        (format!("/experiments/1/timeseries?event_type=x&last_day={sql}"), "last_day"),
        (format!("/experiments/{sql}/timeseries?event_type=x"), "id"),
        (format!("/event_types?last_day={sql}"), "last_day"),
    ] {
        let (status, error) = get(&app, &path).await;
        assert_eq!((status, error["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "GET {path}: {error}");
    }
}

#[tokio::test]
async fn rules_of_experiments_are_400s_naming_the_field_before_any_storage() {
    let app = app();
    let v = |name: &str, pct: Value| json!({"name": name, "allocation_percent": pct});
    for (body, field) in [
        (json!({"name": " ", "variants": [v("a", json!(50)), v("b", json!(50))]}), "name"),
        (json!({"name": "n", "variants": [v("a", json!(100))]}), "variants"),
        (json!({"name": "n", "variants": [v("a", json!(50)), v("a", json!(50))]}), "variants[1].name"),
        (json!({"name": "n", "variants": [v("a", json!(40)), v("b", json!(50))]}), "variants"),
        (
            json!({"name": "n", "variants": [v("a", json!(33.333)), v("b", json!(66.667))]}),
            "variants[0].allocation_percent",
        ),
        (
            json!({"name": "n", "sequential_tuning": 0, "variants": [v("a", json!(50)), v("b", json!(50))]}),
            "sequential_tuning",
        ),
        (
            json!({"name": "n", "significance": "bayes", "variants": [v("a", json!(50)), v("b", json!(50))]}),
            "significance",
        ),
        (json!({"variants": [v("a", json!(50)), v("b", json!(50))]}), "name"),
        (json!({"name": "a\u{0}b", "variants": [v("a", json!(50)), v("b", json!(50))]}), "name"),
        (json!({"name": "\u{85}\u{3000}", "variants": [v("a", json!(50)), v("b", json!(50))]}), "name"),
        (
            json!({"name": "n", "description": "\u{0}", "variants": [v("a", json!(50)), v("b", json!(50))]}),
            "description",
        ),
        (json!({"name": "n", "variants": [v("a\u{0}", json!(50)), v("b", json!(50))]}), "variants[0].name"),
    ] {
        let (status, error) =
            send(&app, "POST", "/experiments", Some("Bearer test-key"), body.to_string().into_bytes(), false).await;
        assert_eq!((status, error["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {error}");
    }
    let (status, error) =
        send(&app, "PATCH", "/experiments/1", Some("Bearer test-key"), br#"{"name": ""}"#.to_vec(), false).await;
    assert_eq!((status, error["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")), "{error}");
}

#[tokio::test]
async fn every_route_needs_a_key_and_every_error_is_json() {
    let app = app();
    let routes = [
        ("POST", "/experiments"),
        ("GET", "/experiments"),
        ("GET", "/experiments/1"),
        ("PATCH", "/experiments/1"),
        ("GET", "/experiments/1/assignment/u"),
        ("GET", "/experiments/1/results?event_type=x"),
        ("GET", "/experiments/1/timeseries?event_type=x"),
        ("GET", "/event_types"),
        ("POST", "/events"),
        ("POST", "/events/batch"),
        ("POST", "/exposures"),
    ];
    for (method, path) in routes {
        for auth in [None, Some("Bearer nope"), Some("Bearer "), Some("test-key")] {
            let (status, error) = send(&app, method, path, auth, b"{}".to_vec(), false).await;
            assert_eq!(
                (status, error["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path} with {auth:?}"
            );
        }
    }
    let (status, error) = send(&app, "DELETE", "/experiments/1", Some("Bearer test-key"), Vec::new(), false).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    let (status, error) = get(&app, "/nope").await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, error) = send(&app, "POST", "/experiments", Some("Bearer test-key"), vec![b' '; 2 << 20], false).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let mut request = Request::post("/experiments").header("authorization", "Bearer test-key");
    request = request.header("content-encoding", "br");
    let response = app.clone().oneshot(request.body(Body::from("{}")).expect("request")).await.expect("response");
    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn an_unreachable_store_is_a_503_with_retry_after_never_a_500() {
    let app = app();
    let request = Request::get("/experiments/1").header("authorization", "Bearer test-key");
    let response = app.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let (status, ready) = get(&app, "/readyz").await;
    assert_eq!((status, ready["status"].as_str()), (StatusCode::OK, Some("degraded")), "{ready}");
    let (status, _) = get(&app, "/readyz?require=postgres").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
