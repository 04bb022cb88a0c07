//! Exposures into ClickHouse with what they carry since local evaluation (`forced`,
//! `attributes`, `exposure_id`: clickhouse/004), through the real stack: `POST /exposures`
//! on the ingest edge, the stack's broker, this consumer, ClickHouse 18.16.

use std::time::Duration;

use chrono::Utc;
use common::{
    event::ExposureEnvelope,
    kafka::{Message, Sink},
    testkit::{eventually, Service, Stack, TestEnv},
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

async fn setup() -> TestEnv {
    let stack = Stack::from_env();
    let cluster = stack.shared_cluster().await;
    stack.env(&cluster).await
}

#[derive(clickhouse::Row, serde::Deserialize, Debug, PartialEq)]
struct Row {
    user_id: String,
    variant: String,
    exposed_at: u32,
    forced: u8,
    attribute_keys: Vec<String>,
    attribute_values: Vec<String>,
    exposure_id: String,
}

/// Each user's exposure of `experiment` as queries see it (FINAL: after replacement).
async fn rows(env: &TestEnv, experiment: u64) -> Vec<Row> {
    env.clickhouse()
        .query(
            "SELECT user_id, variant, toUInt32(exposed_at) AS exposed_at, forced, attribute_keys, attribute_values, \
             exposure_id FROM exposures FINAL WHERE experiment_id = ? ORDER BY user_id",
        )
        .bind(experiment)
        .fetch_all()
        .await
        .expect("exposures")
}

async fn post(http: &reqwest::Client, ingest: &Service, body: &Value) -> (reqwest::StatusCode, Value) {
    let response = http.post(ingest.url("/exposures")).bearer_auth("test-key").json(body).send().await.expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A client that evaluates locally reports its exposures; it sends the batch again (a
/// retry after a timeout), and later reports some users again with another variant (a
/// re-evaluation after a config change). Each user counts once, with the first exposure.
#[tokio::test]
async fn posted_exposures_land_with_their_attributes_and_a_batch_sent_again_counts_once() {
    let env = setup().await;
    let consumer = Service::start(env.config.clone(), consumer::run).await;
    let ingest = Service::start(env.config.clone(), ingest::run).await;
    let http = reqwest::Client::new();

    let first_ms = (Utc::now().timestamp() - 3600) * 1000;
    let exposures: Vec<Value> = (0..200)
        .map(|i| {
            let variant = ["control", "treatment"][i % 2];
            let mut e = json!({
                "exposure_id": format!("x-{i}"),
                "experiment_id": 7,
                "variant": variant,
                "user_id": format!("user-{i:03}"),
                "timestamp": first_ms,
            });
            if i % 4 == 0 {
                e["attributes"] = json!({"country": "DE", "age": 41, "beta": true, "ratio": 0.5, "note": "a \"b\""});
            }
            e
        })
        .collect();
    let batch = json!({ "exposures": exposures });
    assert_eq!(post(&http, &ingest, &batch).await, (reqwest::StatusCode::ACCEPTED, json!({"accepted": 200})));
    assert_eq!(post(&http, &ingest, &batch).await, (reqwest::StatusCode::ACCEPTED, json!({"accepted": 200})), "again");
    let later: Vec<Value> = (0..20)
        .map(|i| {
            json!({"exposure_id": format!("y-{i}"), "experiment_id": 7, "variant": "other",
                   "user_id": format!("user-{i:03}"), "attributes": {"country": "FR"}})
        })
        .collect();
    let (status, _) = post(&http, &ingest, &json!({ "exposures": later })).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    assert_eq!(env.topic_messages(&env.config.kafka.topics.exposures).await, 420, "every message is in Kafka");

    // Every message reached ClickHouse (420 rows before merges), yet each user is one row.
    eventually("420 exposure rows", WAIT, || async {
        (env.ch_count("SELECT count() FROM exposures").await == 420).then_some(())
    })
    .await;
    let seen = rows(&env, 7).await;
    assert_eq!(seen.len(), 200, "one exposure per user, however often sent");
    assert_eq!(env.ch_count("SELECT uniqExact(user_id) FROM exposures WHERE experiment_id = 7").await, 200);
    assert!(seen.iter().all(|r| r.exposed_at as i64 == first_ms / 1000 && r.forced == 0), "the earliest, not forced");
    assert_eq!(seen.iter().filter(|r| r.variant == "treatment").count(), 100, "the later re-evaluation lost");
    assert_eq!(
        seen[4],
        Row {
            user_id: "user-004".into(),
            variant: "control".into(),
            exposed_at: (first_ms / 1000) as u32,
            forced: 0,
            attribute_keys: vec!["age".into(), "beta".into(), "country".into(), "note".into(), "ratio".into()],
            attribute_values: vec!["41".into(), "true".into(), "DE".into(), "a \"b\"".into(), "0.5".into()],
            exposure_id: "x-4".into(),
        }
    );
    assert_eq!((seen[5].attribute_keys.len(), seen[5].exposure_id.as_str()), (0, "x-5"));

    // Merges keep the same rows.
    env.clickhouse().query("OPTIMIZE TABLE exposures FINAL").execute().await.expect("merge");
    assert_eq!(env.ch_count("SELECT count() FROM exposures").await, 200);
    assert_eq!(rows(&env, 7).await, seen);
    assert_eq!(ingest.metric("abtest_exposures_accepted_total").await, 420.0);
    assert_eq!(ingest.metric("abtest_events_accepted_total").await, 0.0);
    ingest.stop().await;
    consumer.stop().await;
}

/// A message of a build before `forced`, `attributes` and `exposure_id` lands with the
/// defaults; one of a build that sets them (the api's assignment) lands with them.
#[tokio::test]
async fn an_old_format_exposure_lands_with_defaults_and_a_forced_one_with_its_flag() {
    let env = setup().await;
    let consumer = Service::start(env.config.clone(), consumer::run).await;
    let sink = Sink::new(&env.config.kafka, Duration::from_secs(10)).expect("producer");
    let at_ms = (Utc::now().timestamp() - 60) * 1000;
    let old = format!(r#"{{"v":1,"experiment_id":3,"variant":"a","user_id":"old","exposed_at_ms":{at_ms}}}"#);
    let mut forced = ExposureEnvelope::new(3, "b".into(), "qa".into(), at_ms);
    forced.forced = true;
    forced.exposure_id = Some("assign-1".into());
    forced.attributes.insert("platform".into(), "ios".into());
    let forced = forced.encode();
    let messages = [
        Message { key: b"old".as_slice(), payload: old.as_bytes(), request_id: None },
        Message { key: b"qa".as_slice(), payload: forced.as_slice(), request_id: None },
    ];
    sink.send_all(&env.config.kafka.topics.exposures, &messages).await.expect("acknowledged");

    let seen = eventually("both exposures", WAIT, || async {
        let seen = rows(&env, 3).await;
        (seen.len() == 2).then_some(seen)
    })
    .await;
    let at = (at_ms / 1000) as u32;
    assert_eq!(
        seen,
        [
            Row {
                user_id: "old".into(),
                variant: "a".into(),
                exposed_at: at,
                forced: 0,
                attribute_keys: vec![],
                attribute_values: vec![],
                exposure_id: "".into(),
            },
            Row {
                user_id: "qa".into(),
                variant: "b".into(),
                exposed_at: at,
                forced: 1,
                attribute_keys: vec!["platform".into()],
                attribute_values: vec!["ios".into()],
                exposure_id: "assign-1".into(),
            },
        ]
    );
    assert_eq!(env.topic_messages(&env.config.kafka.topics.dlq).await, 0, "nothing set aside");
    consumer.stop().await;
}
