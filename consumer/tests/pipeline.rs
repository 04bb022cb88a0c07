//! Kafka -> ClickHouse against the real dev broker and ClickHouse: nothing lost, nothing
//! counted twice, through crashes, outages and poison messages.

use std::{io::Write, net::SocketAddr, time::Duration};

use common::{
    shutdown::CancellationToken,
    testkit::{eventually, Proxy, Service, Stack, TestEnv},
    Config,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::Headers,
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

async fn start_consumer(config: Config) -> Service {
    Service::start(config, consumer::run).await
}

async fn start_ingest(config: Config) -> Service {
    Service::start(config, ingest::run).await
}

async fn post(ingest: &Service, path: &str, body: Vec<u8>, gzip: bool) -> Value {
    let mut request = reqwest::Client::new().post(ingest.url(path)).bearer_auth("test-key");
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).expect("gzip");
        request = request.header("content-encoding", "gzip").body(encoder.finish().expect("gzip"));
    } else {
        request = request.body(body);
    }
    let response = request.send().await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    response.json().await.expect("json")
}

/// Sends `n` events through ingest, a quarter each as single, gzip single, batch and
/// gzip batch requests. Returns their user ids.
async fn send_events(ingest: &Service, prefix: &str, n: usize) -> Vec<String> {
    let users: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let event =
        |u: &String| json!({"user_id": u, "type": "purchase", "properties": {"order_value": 2.5, "tag": "x\"y"}});
    let quarter = n / 4;
    for (i, u) in users[..2 * quarter].iter().enumerate() {
        post(ingest, "/events", event(u).to_string().into_bytes(), i % 2 == 1).await;
    }
    let half: Vec<Value> = users[2 * quarter..3 * quarter].iter().map(event).collect();
    assert_eq!(
        post(ingest, "/events/batch", serde_json::to_vec(&half).expect("json"), false).await,
        json!({"accepted": half.len()})
    );
    let rest: Vec<Value> = users[3 * quarter..].iter().map(event).collect();
    assert_eq!(
        post(ingest, "/events/batch", serde_json::to_vec(&rest).expect("json"), true).await,
        json!({"accepted": rest.len()})
    );
    users
}

async fn distinct_events(env: &TestEnv) -> u64 {
    env.ch_count("SELECT uniqExact(event_id) FROM events").await
}

async fn setup() -> (Stack, TestEnv) {
    let stack = Stack::from_env();
    let cluster = stack.shared_cluster().await;
    let env = stack.env(&cluster).await;
    (stack, env)
}

#[tokio::test]
async fn n_events_in_means_exactly_n_distinct_events_in_clickhouse_with_fields_intact() {
    let (_stack, env) = setup().await;
    let ingest = start_ingest(env.config.clone()).await;
    let consumer = start_consumer(env.config.clone()).await;
    let users = send_events(&ingest, "intact", 400).await;

    eventually("400 events in ClickHouse", WAIT, || async { (distinct_events(&env).await == 400).then_some(()) }).await;
    assert_eq!(env.ch_count("SELECT count() FROM events").await, 400, "no duplicates without a crash");
    assert_eq!(env.ch_count("SELECT uniqExact(user_id) FROM events").await, 400);
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Check {
        user_id: String,
        r#type: String,
        properties: String,
        skew: i64,
    }
    let row: Check = env
        .clickhouse()
        .query("SELECT user_id, type, properties, toInt64(received_at) - toInt64(timestamp) AS skew FROM events WHERE user_id = ?")
        .bind(&users[7])
        .fetch_one()
        .await
        .expect("row");
    assert_eq!((row.user_id.as_str(), row.r#type.as_str()), (users[7].as_str(), "purchase"));
    assert_eq!(
        serde_json::from_str::<Value>(&row.properties).expect("json"),
        json!({"order_value": 2.5, "tag": "x\"y"})
    );
    assert!(row.skew.abs() <= 1, "timestamp defaults to the receive time");
    eventually("a commit", WAIT, || async {
        (consumer.metric("abtest_consumer_commits_total").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(consumer.metric("abtest_consumer_rows_inserted_total").await, 400.0);
    consumer.stop().await;
    ingest.stop().await;
}

#[tokio::test]
async fn a_crash_between_insert_and_commit_replays_but_counts_each_event_once() {
    let (_stack, env) = setup().await;
    let ingest = start_ingest(env.config.clone()).await;
    send_events(&ingest, "crash", 200).await;

    let metrics = consumer::metrics::ConsumerMetrics::new(&common::metrics::Registry::new());
    let crashing = consumer::Pipeline::new(env.config.clone(), metrics)
        .expect("pipeline")
        .with_faults(consumer::Faults { crash_after_insert: true });
    let result = tokio::time::timeout(WAIT, crashing.run(CancellationToken::new())).await.expect("crashes in time");
    assert!(matches!(result, Err(consumer::pipeline::ConsumerError::InjectedCrash)), "{result:?}");
    let inserted_before_crash = env.ch_count("SELECT count() FROM events").await;
    assert!(inserted_before_crash > 0, "the crash came after an insert");

    // The restarted consumer re-reads from the last commit (none): everything again.
    let consumer = start_consumer(env.config.clone()).await;
    eventually("the replay to finish", WAIT, || async {
        (consumer.metric("abtest_consumer_rows_inserted_total").await >= 200.0).then_some(())
    })
    .await;
    assert_eq!(distinct_events(&env).await, 200, "each event counted once");
    assert_eq!(env.ch_count("SELECT count() FROM events FINAL").await, 200, "replayed copies collapse");
    assert!(env.ch_count("SELECT count() FROM events").await >= 200);
    consumer.stop().await;
    ingest.stop().await;
}

#[tokio::test]
async fn clickhouse_down_while_events_flow_loses_nothing() {
    let (_stack, env) = setup().await;
    let target: SocketAddr =
        env.config.clickhouse.url.trim_start_matches("http://").parse().expect("clickhouse host:port");
    let proxy = Proxy::start(target).await;
    let ingest = start_ingest(env.config.clone()).await;
    let mut through_proxy = env.config.clone();
    through_proxy.clickhouse.url = format!("http://{}", proxy.addr);
    let consumer = start_consumer(through_proxy).await;

    send_events(&ingest, "before", 100).await;
    eventually("the first 100", WAIT, || async { (distinct_events(&env).await == 100).then_some(()) }).await;

    proxy.set(false);
    send_events(&ingest, "during", 300).await;
    eventually("failed inserts to be retried", WAIT, || async {
        (consumer.metric("abtest_consumer_insert_failures_total").await >= 2.0).then_some(())
    })
    .await;
    let ready = reqwest::get(consumer.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(distinct_events(&env).await, 100, "nothing new while ClickHouse is away");

    proxy.set(true);
    send_events(&ingest, "after", 100).await;
    eventually("all 500 events", WAIT, || async { (distinct_events(&env).await == 500).then_some(()) }).await;
    consumer.stop().await;
    ingest.stop().await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_and_the_partition_moves_on() {
    let (_stack, env) = setup().await;
    let topics = env.config.kafka.topics.clone();
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &env.config.kafka.brokers).create().expect("producer");
    let good = |i: usize| {
        json!({"v": 1, "event_id": uuid::Uuid::now_v7(), "user_id": format!("p-{i}"), "type": "t", "timestamp_ms": 1_767_225_600_000_i64, "received_at_ms": 1_767_225_600_000_i64, "properties": {}})
            .to_string()
    };
    let poison = [
        "definitely not json".to_owned(),
        json!({"v": 2, "event_id": uuid::Uuid::now_v7(), "user_id": "u", "type": "t", "timestamp_ms": 1, "received_at_ms": 1, "properties": {}}).to_string(),
        json!({"v": 1, "event_id": uuid::Uuid::now_v7(), "user_id": "", "type": "t", "timestamp_ms": 1, "received_at_ms": 1, "properties": {}}).to_string(),
    ];
    // Same key, so poison and good messages share a partition, poison first.
    let mut payloads: Vec<String> = poison.to_vec();
    payloads.extend((0..50).map(good));
    for p in &payloads {
        producer
            .send(FutureRecord::to(&topics.events).key("same-user").payload(p), Duration::from_secs(5))
            .await
            .expect("produce");
    }
    producer
        .send(FutureRecord::to(&topics.exposures).key("x").payload("{\"v\":1}"), Duration::from_secs(5))
        .await
        .expect("produce");

    let consumer = start_consumer(env.config.clone()).await;
    eventually("the 50 good events", WAIT, || async { (distinct_events(&env).await == 50).then_some(()) }).await;
    eventually("4 DLQ messages", WAIT, || async { (env.topic_messages(&topics.dlq).await == 4).then_some(()) }).await;
    assert_eq!(consumer.metric("abtest_consumer_dlq_messages_total").await, 4.0);

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.config.kafka.brokers)
        .set("group.id", common::testkit::random_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    reader.subscribe(&[topics.dlq.as_str()]).expect("subscribe");
    let mut reasons = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while reasons.len() < 4 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let headers = m.headers().expect("headers");
            let error = headers.iter().find(|h| h.key == "error").and_then(|h| h.value).expect("error header");
            reasons.push(String::from_utf8_lossy(error).into_owned());
        }
    }
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a valid envelope")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("version 2")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("user_id")), "{reasons:?}");
    consumer.stop().await;
}
