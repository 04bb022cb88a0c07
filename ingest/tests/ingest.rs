//! The ingest edge against the real dev broker over TCP: every event that gets a 202 is in
//! Kafka, every refused request leaves Kafka untouched.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use common::{
    event::EventEnvelope,
    testkit::{Service, Stack, TestEnv},
    Config,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig, Message,
};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

/// The ingest service in-process, with a client holding the test key.
struct Ingest {
    service: Service,
    http: reqwest::Client,
}

impl Ingest {
    async fn start(config: Config) -> Self {
        Self { service: Service::start(config, ingest::run).await, http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        self.service.url(path)
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>, gzip: bool) -> (StatusCode, Value) {
        let mut request =
            self.http.post(self.url(path)).bearer_auth("test-key").header(header::CONTENT_TYPE, "application/json");
        if gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        let response = request.body(body).send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.service.stop().await;
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn setup() -> (TestEnv, Ingest) {
    let stack = Stack::from_env();
    let env = stack.env(&stack.shared_cluster().await).await;
    let ingest = Ingest::start(env.config.clone()).await;
    (env, ingest)
}

/// Reads every message of a topic from the beginning.
fn read_all(env: &TestEnv, topic: &str, expected: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", env.config.kafka.brokers.bootstrap())
        .set("group.id", common::testkit::random_name("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec()));
        }
    }
    out
}

#[tokio::test]
async fn single_and_batch_events_plain_and_gzip_all_reach_kafka_intact() {
    let (env, ingest) = setup().await;
    let topic = env.config.kafka.topics.events.clone();

    let (status, body) = ingest
        .post(
            "/events",
            json!({"user_id": "u-1", "type": "purchase", "properties": {"order_value": 49.99, "nested": {"a": [1, 2]}},
            "event_id": "0190b5a4-5d6e-7c3a-8f00-0000000000aa", "timestamp": "2026-01-02T03:04:05.678Z"})
            .to_string(),
            false,
        )
        .await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1})));

    let (status, body) =
        ingest.post("/events", gzip(json!({"user_id": "u-2", "type": "click"}).to_string().as_bytes()), true).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1})));

    let batch: Vec<Value> = (0..250)
        .map(|i| json!({"user_id": format!("b-{i}"), "type": "view", "timestamp": 1_767_225_600_000_i64 + i}))
        .collect();
    let (status, body) = ingest.post("/events/batch", serde_json::to_vec(&batch).expect("json"), false).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 250})));
    let (status, body) = ingest.post("/events/batch", gzip(&serde_json::to_vec(&batch).expect("json")), true).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 250})));

    assert_eq!(env.topic_messages(&topic).await, 502);
    let messages = read_all(&env, &topic, 502);
    assert_eq!(messages.len(), 502);
    let first = messages.iter().find(|(k, _)| k == b"u-1").expect("u-1's message, keyed by user_id");
    let e = EventEnvelope::decode(&first.1).expect("decodes");
    assert_eq!(e.event_id.to_string(), "0190b5a4-5d6e-7c3a-8f00-0000000000aa");
    assert_eq!(e.event_type, "purchase");
    assert_eq!(e.timestamp_ms, 1_767_323_045_678);
    assert_eq!(
        serde_json::from_str::<Value>(e.properties.get()).expect("json"),
        json!({"order_value": 49.99, "nested": {"a": [1, 2]}})
    );
    let ids: std::collections::HashSet<_> =
        messages.iter().map(|(_, p)| EventEnvelope::decode(p).expect("decodes").event_id).collect();
    assert_eq!(ids.len(), 502, "every generated event id is unique");
    ingest.stop().await;
}

#[tokio::test]
async fn every_validation_rule_answers_4xx_naming_the_field_and_nothing_reaches_kafka() {
    let (env, ingest) = setup().await;
    let topic = env.config.kafka.topics.events.clone();
    let long = "x".repeat(257);
    let future = (chrono::Utc::now() + chrono::Duration::minutes(61)).to_rfc3339();
    let single_cases: Vec<(String, StatusCode, Option<&str>)> = vec![
        (json!({"type": "t"}).to_string(), StatusCode::BAD_REQUEST, Some("user_id")),
        (json!({"user_id": "", "type": "t"}).to_string(), StatusCode::BAD_REQUEST, Some("user_id")),
        (json!({"user_id": long, "type": "t"}).to_string(), StatusCode::BAD_REQUEST, Some("user_id")),
        (json!({"user_id": 5, "type": "t"}).to_string(), StatusCode::BAD_REQUEST, Some("user_id")),
        (json!({"user_id": "u", "type": ""}).to_string(), StatusCode::BAD_REQUEST, Some("type")),
        (json!({"user_id": "u", "type": "x".repeat(129)}).to_string(), StatusCode::BAD_REQUEST, Some("type")),
        (
            json!({"user_id": "u", "type": "t", "properties": [1]}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("properties"),
        ),
        (
            json!({"user_id": "u", "type": "t", "event_id": "not-a-uuid"}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("event_id"),
        ),
        (
            json!({"user_id": "u", "type": "t", "timestamp": "tomorrow"}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("timestamp"),
        ),
        (
            json!({"user_id": "u", "type": "t", "timestamp": future}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("timestamp"),
        ),
        (
            json!({"user_id": "u", "type": "t", "timestamp": true}).to_string(),
            StatusCode::BAD_REQUEST,
            Some("timestamp"),
        ),
        ("{\"user_id\": \"u\", \"type\": ".to_owned(), StatusCode::BAD_REQUEST, Some("type")),
        ("[]".to_owned(), StatusCode::BAD_REQUEST, None),
        (format!("{}{}", "[".repeat(5000), "]".repeat(5000)), StatusCode::BAD_REQUEST, None),
        (
            format!(
                "{{\"user_id\": \"u\", \"type\": \"t\", \"properties\": {}1{}}}",
                "{\"a\":".repeat(5000),
                "}".repeat(5000)
            ),
            StatusCode::BAD_REQUEST,
            Some("properties"),
        ),
    ];
    for (body, status, field) in single_cases {
        let (got, err) = ingest.post("/events", body.clone(), false).await;
        assert_eq!(got, status, "{body:.100}: {err}");
        assert!(err["error"].is_string() && err["message"].is_string(), "{err}");
        assert_eq!(err["field"].as_str(), field, "{body:.100}: {err}");
    }
    // invalid UTF-8
    let (got, err) = ingest.post("/events", b"{\"user_id\": \"\xff\xfe\", \"type\": \"t\"}".to_vec(), false).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{err}");

    // A batch is all or nothing; the error names the index and field.
    let mut batch: Vec<Value> = (0..10).map(|i| json!({"user_id": format!("u{i}"), "type": "t"})).collect();
    batch[7] = json!({"user_id": "u7", "type": ""});
    let (got, err) = ingest.post("/events/batch", serde_json::to_vec(&batch).expect("json"), false).await;
    assert_eq!((got, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("[7].type")), "{err}");
    batch[7] = json!({"user_id": "u7", "type": 3});
    let (got, err) = ingest.post("/events/batch", serde_json::to_vec(&batch).expect("json"), false).await;
    assert_eq!((got, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("[7].type")), "{err}");
    let (got, _) = ingest.post("/events/batch", "[]", false).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    let (got, _) = ingest.post("/events/batch", json!({"user_id": "u", "type": "t"}).to_string(), false).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "a batch must be an array");

    // Sizes: 413.
    let too_many: Vec<Value> = (0..10_001).map(|_| json!({"user_id": "u", "type": "t"})).collect();
    let (got, err) = ingest.post("/events/batch", serde_json::to_vec(&too_many).expect("json"), false).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    let big = json!({"user_id": "u", "type": "t", "properties": {"blob": "x".repeat(1 << 20)}}).to_string();
    let (got, _) = ingest.post("/events", big.clone(), false).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
    let (got, err) = ingest.post("/events", gzip(big.as_bytes()), true).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "compressed small, inflated too big: {err}");
    let bomb = gzip(&vec![b' '; 200 << 20]);
    assert!(bomb.len() < 1 << 20);
    let (got, _) = ingest.post("/events/batch", bomb, true).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "a gzip bomb inflating to 200 MiB");
    let (got, _) = ingest.post("/events", b"not gzip".to_vec(), true).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    let response = ingest
        .http
        .post(ingest.url("/events"))
        .bearer_auth("test-key")
        .header(header::CONTENT_ENCODING, "br")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Auth: 401 JSON, before anything else.
    for auth in [None, Some("Bearer wrong"), Some("test-key"), Some("Basic dGVzdC1rZXk=")] {
        let mut request =
            ingest.http.post(ingest.url("/events")).body(json!({"user_id": "u", "type": "t"}).to_string());
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = response.json().await.expect("json error");
        assert_eq!(body["error"], "unauthorized");
    }

    assert_eq!(env.topic_messages(&topic).await, 0, "no rejected event reached Kafka");
    let metrics = ingest.http.get(ingest.url("/prometheus")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("abtest_events_rejected_total{reason=\"invalid\"}"), "{metrics}");
    assert!(metrics.contains("abtest_events_rejected_total{reason=\"too_large\"}"), "{metrics}");
    // and it is still healthy
    let ready = ingest.http.get(ingest.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    ingest.stop().await;
}

#[tokio::test]
async fn broker_down_means_503_within_the_bound_and_recovery_after() {
    let stack = Stack::from_env();
    let cluster = stack.isolated_cluster().await;
    let mut env = stack.env(&cluster).await;
    env.config.ingest.ack_timeout = Duration::from_secs(2);
    let ingest = Ingest::start(env.config.clone()).await;
    let event = json!({"user_id": "u", "type": "t"}).to_string();
    let (status, _) = ingest.post("/events", event.clone(), false).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    stack.broker(&cluster, 1, false).await;
    let started = Instant::now();
    let response =
        ingest.http.post(ingest.url("/events")).bearer_auth("test-key").body(event.clone()).send().await.expect("send");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert!(elapsed < Duration::from_secs(4), "answered after {elapsed:?}, bound is 2 s");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "unavailable");
    let ready = ingest.http.get(ingest.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready while Kafka is down");

    // The queue gauge is read on every scrape (not only when /readyz runs).
    let waiting =
        tokio::spawn(ingest.http.post(ingest.url("/events")).bearer_auth("test-key").body(event.clone()).send());
    common::testkit::eventually("the queued event on /prometheus", Duration::from_secs(10), || async {
        let text = ingest.http.get(ingest.url("/prometheus")).send().await.ok()?.text().await.ok()?;
        (common::metrics::sum_samples(&text, "abtest_producer_queue_messages") >= 1.0).then_some(())
    })
    .await;
    assert_eq!(waiting.await.expect("task").expect("send").status(), StatusCode::SERVICE_UNAVAILABLE);

    stack.broker(&cluster, 1, true).await;
    common::testkit::eventually("ingest to accept again", Duration::from_secs(30), || async {
        let (status, _) = ingest.post("/events", event.clone(), false).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    // Every 2xx is in Kafka (a 503'd event may also be there: at least once).
    assert!(env.topic_messages(&env.config.kafka.topics.events).await >= 2);
    ingest.stop().await;
    stack.drop_cluster(&cluster).await;
}

#[tokio::test]
async fn unknown_routes_and_health_answer_json() {
    let (_env, ingest) = setup().await;
    let response = ingest.http.get(ingest.url("/nope")).bearer_auth("test-key").send().await.expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.json::<Value>().await.expect("json")["error"], "not_found");
    let live = ingest.http.get(ingest.url("/livez")).send().await.expect("livez");
    assert_eq!(live.status(), StatusCode::OK);
    let ready: Value = ingest.http.get(ingest.url("/readyz")).send().await.expect("readyz").json().await.expect("json");
    assert_eq!(ready["checks"]["kafka"], "ok");
    ingest.stop().await;
}

#[tokio::test]
async fn events_must_be_objects_not_arrays_of_fields() {
    let (env, ingest) = setup().await;
    let (status, err) = ingest.post("/events", r#"["u1", "click"]"#, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, err) =
        ingest.post("/events/batch", r#"[{"user_id": "u", "type": "t"}, ["u1", "click"]]"#, false).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("[1]")), "{err}");
    assert_eq!(env.topic_messages(&env.config.kafka.topics.events).await, 0);
    ingest.stop().await;
}

#[tokio::test]
async fn a_full_producer_queue_is_backpressure_not_memory() {
    let stack = Stack::from_env();
    let mut env = stack.env(&stack.shared_cluster().await).await;
    env.config.kafka.queue_max_messages = 5;
    let ingest = Ingest::start(env.config.clone()).await;
    let batch: Vec<Value> = (0..6).map(|i| json!({"user_id": format!("u{i}"), "type": "t"})).collect();
    let response =
        ingest.http.post(ingest.url("/events/batch")).bearer_auth("test-key").json(&batch).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(env.topic_messages(&env.config.kafka.topics.events).await, 0, "refused whole, nothing enqueued");
    let (status, body) = ingest.post("/events/batch", serde_json::to_vec(&batch[..5]).expect("json"), false).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 5})));
    ingest.stop().await;
}

#[tokio::test]
async fn shutdown_under_load_finishes_in_flight_requests_and_loses_nothing_acknowledged() {
    let (env, ingest) = setup().await;
    let url = ingest.url("/events/batch");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let senders: Vec<_> = (0..16)
        .map(|sender| {
            let (url, stop, http, progress) = (url.clone(), stop.clone(), ingest.http.clone(), progress.clone());
            tokio::spawn(async move {
                let (mut accepted, mut refused_connections) = (0u64, 0u64);
                for round in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) && round > 0 {
                        break;
                    }
                    let batch: Vec<Value> =
                        (0..20).map(|i| json!({"user_id": format!("s{sender}-{round}-{i}"), "type": "t"})).collect();
                    match http.post(&url).bearer_auth("test-key").json(&batch).send().await {
                        Ok(r) => {
                            assert_eq!(r.status(), StatusCode::ACCEPTED, "an in-flight request must finish");
                            accepted += 20;
                            progress.fetch_add(20, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(_) => {
                            refused_connections += 1; // the listener is closed: nothing was acknowledged
                            break;
                        }
                    }
                }
                (accepted, refused_connections)
            })
        })
        .collect();
    common::testkit::eventually("load to build up", Duration::from_secs(30), || async {
        (progress.load(std::sync::atomic::Ordering::SeqCst) >= 400).then_some(())
    })
    .await;
    let Ingest { service, .. } = ingest;
    let stopping = tokio::spawn(service.stop());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    stopping.await.expect("shutdown completes");
    let mut accepted = 0;
    for sender in senders {
        accepted += sender.await.expect("sender").0;
    }
    assert!(accepted > 0);
    assert_eq!(
        env.topic_messages(&env.config.kafka.topics.events).await,
        accepted as i64,
        "every acknowledged event is in Kafka, and only those"
    );
}

/// What a client that does not wait for `100-continue` (Python's urllib, most SDKs) sees
/// when its body is too large: the 413, not a reset connection.
#[tokio::test]
async fn python_urllib_reads_its_413_for_an_oversized_body() {
    let (env, ingest) = setup().await;
    let script = r#"
import json, sys, urllib.request, urllib.error
body = b'{"user_id": "u", "type": "t", "properties": {"pad": "' + b'x' * (12 << 20) + b'"}}'
request = urllib.request.Request(sys.argv[1], data=body, method="POST",
    headers={"Authorization": "Bearer test-key", "Content-Type": "application/json"})
try:
    urllib.request.urlopen(request, timeout=60)
    print("no error")
except urllib.error.HTTPError as e:
    print(e.code, json.loads(e.read())["error"])
except Exception as e:
    print("failed:", repr(e))
"#;
    let output = tokio::process::Command::new(std::env::var("ABTESTKIT_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg("-c")
        .arg(script)
        .arg(ingest.url("/events"))
        .output()
        .await
        .expect("python3");
    let answer = String::from_utf8_lossy(&output.stdout);
    assert_eq!(answer.trim(), "413 payload_too_large", "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(env.topic_messages(&env.config.kafka.topics.events).await, 0);
    ingest.stop().await;
}

#[tokio::test]
async fn request_ids_reach_kafka_headers_and_routes_are_measured() {
    let (env, ingest) = setup().await;
    let response = ingest
        .http
        .post(ingest.url("/events"))
        .bearer_auth("test-key")
        .header("x-request-id", "trace-me-7")
        .json(&json!({"user_id": "u", "type": "t"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-me-7"));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", env.config.kafka.brokers.bootstrap())
        .set("group.id", common::testkit::random_name("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[env.config.kafka.topics.events.as_str()]).expect("subscribe");
    let message = common::testkit::eventually("the event in Kafka", Duration::from_secs(30), || async {
        consumer.poll(Duration::from_millis(200)).and_then(Result::ok).map(|m| m.detach())
    })
    .await;
    use rdkafka::message::Headers;
    let header = message.headers().and_then(|h| h.iter().find(|h| h.key == common::kafka::REQUEST_ID_HEADER));
    assert_eq!(header.and_then(|h| h.value), Some(&b"trace-me-7"[..]));

    let (status, body) = ingest.post("/events", "{}", false).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let response = ingest.http.delete(ingest.url("/events")).bearer_auth("test-key").send().await.expect("send");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.json::<Value>().await.expect("a JSON body")["error"], "method_not_allowed");
    let metrics = ingest.http.get(ingest.url("/prometheus")).send().await.expect("metrics");
    assert_eq!(
        metrics.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = metrics.text().await.expect("text");
    for expected in [
        r#"abtest_http_requests_total{method="POST",route="/events",status="202"} 1"#,
        r#"abtest_http_errors_total{method="POST",route="/events",status="400"} 1"#,
        r#"abtest_http_request_duration_seconds_count{method="POST",route="/events"} 2"#,
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "abtest_producer_queue_messages 0",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    ingest.stop().await;
}

#[tokio::test]
async fn exposures_reach_the_exposures_topic_and_bad_ones_are_400s_naming_the_field() {
    let (env, ingest) = setup().await;
    let topic = env.config.kafka.topics.exposures.clone();
    let exposure = |i: usize| {
        json!({"exposure_id": format!("x-{i}"), "experiment_id": 42, "variant": "treatment",
               "user_id": format!("u-{i}"), "timestamp": 1_767_225_600_000_i64 + i as i64})
    };
    let mut batch: Vec<Value> = (0..5).map(exposure).collect();
    batch[1]["attributes"] = json!({"country": "DE", "age": 41, "beta": false});
    batch[2]["timestamp"] = Value::Null;
    let (status, body) =
        ingest.post("/exposures", gzip(json!({"exposures": batch}).to_string().as_bytes()), true).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 5})));
    let messages = read_all(&env, &topic, 5);
    assert_eq!(messages.len(), 5);
    assert_eq!(env.topic_messages(&env.config.kafka.topics.events).await, 0, "nothing in the events topic");
    let (key, payload) = messages.iter().find(|(k, _)| k == b"u-1").expect("u-1's message, keyed by user_id");
    let e = common::event::ExposureEnvelope::decode(payload).expect("decodes");
    assert_eq!((key.as_slice(), e.experiment_id, e.variant.as_ref()), (b"u-1".as_slice(), 42, "treatment"));
    assert_eq!((e.exposed_at_ms, e.forced, e.exposure_id.as_deref()), (1_767_225_600_001, false, Some("x-1")));
    let attributes: Vec<(&str, &str)> = e.attributes.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    assert_eq!(attributes, [("age", "41"), ("beta", "false"), ("country", "DE")]);

    let with = |i: usize, field: &str, value: Value| {
        let mut batch: Vec<Value> = (0..5).map(exposure).collect();
        if value.is_null() {
            batch[i].as_object_mut().expect("object").remove(field);
        } else {
            batch[i][field] = value;
        }
        json!({ "exposures": batch })
    };
    let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (with(3, "user_id", Value::Null), "exposures[3].user_id", "invalid_exposure"),
        (with(3, "user_id", json!("")), "exposures[3].user_id", "invalid_exposure"),
        (with(3, "user_id", json!("u".repeat(257))), "exposures[3].user_id", "invalid_exposure"),
        (with(0, "exposure_id", Value::Null), "exposures[0].exposure_id", "invalid_exposure"),
        (with(0, "exposure_id", json!("e".repeat(129))), "exposures[0].exposure_id", "invalid_exposure"),
        (with(4, "experiment_id", json!(0)), "exposures[4].experiment_id", "invalid_exposure"),
        (with(4, "experiment_id", json!("42")), "exposures[4].experiment_id", "invalid_json"),
        (with(2, "variant", json!(" ")), "exposures[2].variant", "invalid_exposure"),
        (with(2, "variant", json!(["a"])), "exposures[2].variant", "invalid_json"),
        (with(1, "timestamp", json!("yesterday")), "exposures[1].timestamp", "invalid_exposure"),
        (with(1, "attributes", json!({"a": {"b": 1}})), "exposures[1].attributes", "invalid_exposure"),
        (with(1, "attributes", json!({"a": "v".repeat(1025)})), "exposures[1].attributes", "invalid_exposure"),
        (with(1, "attributes", Value::Object(many)), "exposures[1].attributes", "invalid_exposure"),
        (with(1, "attributes", json!(["country"])), "exposures[1].attributes", "invalid_json"),
        (json!({"exposures": []}), "exposures", "empty_batch"),
        (json!({"exposures": [exposure(0), ["x-1", 42, "a", "u"]]}), "exposures[1]", "invalid_json"),
        (json!({"exposure": [exposure(0)]}), "exposures", "invalid_json"),
    ];
    for (body, field, code) in cases {
        let (status, error) = ingest.post("/exposures", body.to_string(), false).await;
        assert_eq!(
            (status, error["field"].as_str(), error["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field), Some(code)),
            "{body}: {error}"
        );
    }
    for body in ["[]", "not json", r#"{"exposures": {}}"#] {
        let (status, error) = ingest.post("/exposures", body, false).await;
        assert_eq!(
            (status, error["error"].as_str().map(|c| c.starts_with("invalid"))),
            (StatusCode::BAD_REQUEST, Some(true)),
            "{body}: {error}"
        );
    }
    let too_many: Vec<Value> = (0..10_001).map(exposure).collect();
    let (status, error) = ingest.post("/exposures", json!({"exposures": too_many}).to_string(), false).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let all: Vec<Value> = (0..10_000).map(exposure).collect();
    let (status, _) = ingest.post("/exposures", json!({"exposures": all}).to_string(), false).await;
    assert_eq!(status, StatusCode::ACCEPTED, "10 000 is the limit, inclusive");
    assert_eq!(env.topic_messages(&topic).await, 10_005, "no refused exposure reached Kafka");
    let metrics = ingest.http.get(ingest.url("/prometheus")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("abtest_exposures_rejected_total{reason=\"invalid\"}"), "{metrics}");
    assert!(metrics.contains("abtest_exposures_rejected_total{reason=\"too_large\"} 10001"), "{metrics}");
    assert!(metrics.contains("abtest_exposures_accepted_total 10005"), "{metrics}");
    ingest.stop().await;
}
