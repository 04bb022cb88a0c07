//! Kafka -> ClickHouse against the real dev broker and ClickHouse: nothing lost, nothing
//! counted twice, through crashes, outages, poison messages and rows ClickHouse refuses.

use std::{net::SocketAddr, time::Duration};

use chrono::Utc;
use common::{
    event::{EventEnvelope, ENVELOPE_VERSION},
    kafka::{Message as KafkaMessage, Sink},
    shutdown::CancellationToken,
    testkit::{eventually, Proxy, Service, Stack, TestEnv},
    Config,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::{Headers, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message, Offset, TopicPartitionList,
};
use serde_json::{json, value::RawValue, Value};

const WAIT: Duration = Duration::from_secs(60);

async fn start_consumer(config: Config) -> Service {
    Service::start(config, consumer::run).await
}

async fn start_faulty(config: Config, faults: consumer::Faults) -> Service {
    Service::start(config, move |c, l, s| consumer::run_with(c, l, s, faults)).await
}

/// Produces `n` events for users `{prefix}-{i}` as ingest does (the same envelope, the
/// same producer settings); returns the user ids.
async fn produce_events(env: &TestEnv, prefix: &str, n: usize) -> Vec<String> {
    let sink = Sink::new(&env.config.kafka, Duration::from_secs(10)).expect("producer");
    let properties = RawValue::from_string(r#"{"order_value":2.5,"tag":"x\"y"}"#.into()).expect("json");
    let users: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let now = Utc::now().timestamp_millis();
    let payloads: Vec<Vec<u8>> = users
        .iter()
        .map(|u| {
            let envelope = EventEnvelope {
                v: ENVELOPE_VERSION,
                event_id: uuid::Uuid::now_v7(),
                user_id: u.as_str().into(),
                event_type: "purchase".into(),
                timestamp_ms: now,
                received_at_ms: now,
                properties: &properties,
            };
            envelope.encode()
        })
        .collect();
    let messages: Vec<KafkaMessage<&[u8]>> = users
        .iter()
        .zip(&payloads)
        .map(|(u, p)| KafkaMessage { key: u.as_bytes(), payload: p.as_slice(), request_id: Some("req-test") })
        .collect();
    sink.send_all(&env.config.kafka.topics.events, &messages).await.expect("acknowledged");
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

fn raw_producer(env: &TestEnv) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", env.config.kafka.brokers.bootstrap()).create().expect("producer")
}

/// The first `expected` messages of the DLQ topic, in order (the DLQ has one partition),
/// once they are there.
async fn read_dlq(env: &TestEnv, expected: usize) -> Vec<OwnedMessage> {
    eventually("the DLQ messages", WAIT, || async {
        (env.topic_messages(&env.config.kafka.topics.dlq).await >= expected as i64).then_some(())
    })
    .await;
    let (brokers, topic) = (env.config.kafka.brokers.bootstrap(), env.config.kafka.topics.dlq.clone());
    tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", common::testkit::random_name("dlq-reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("reader");
        reader.subscribe(&[topic.as_str()]).expect("subscribe");
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        while out.len() < expected && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
                out.push(m.detach());
            }
        }
        out
    })
    .await
    .expect("reader task")
}

fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    let value = m.headers()?.iter().find(|h| h.key == key)?.value?;
    Some(String::from_utf8_lossy(value).into_owned())
}

#[tokio::test]
async fn n_events_in_means_exactly_n_distinct_events_in_clickhouse_with_fields_intact() {
    let (_stack, env) = setup().await;
    let consumer = start_consumer(env.config.clone()).await;
    let users = produce_events(&env, "intact", 400).await;

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
    assert!(row.skew.abs() <= 1);
    eventually("a commit", WAIT, || async {
        (consumer.metric("abtest_consumer_commits_total").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(consumer.metric("abtest_consumer_rows_inserted_total").await, 400.0);
    consumer.stop().await;
}

#[tokio::test]
async fn a_crash_between_insert_and_commit_replays_but_counts_each_event_once() {
    let (_stack, env) = setup().await;
    produce_events(&env, "crash", 200).await;

    let metrics = consumer::metrics::ConsumerMetrics::new(&common::metrics::Registry::new());
    let crashing = consumer::Pipeline::new(env.config.clone(), metrics)
        .expect("pipeline")
        .with_faults(consumer::Faults { crash_after_insert: true, ..Default::default() });
    let result = tokio::time::timeout(WAIT, crashing.run(CancellationToken::new())).await.expect("crashes in time");
    assert!(matches!(result, Err(consumer::pipeline::ConsumerError::InjectedCrash)), "{result:?}");
    assert!(env.ch_count("SELECT count() FROM events").await > 0, "the crash came after an insert");

    // The restarted consumer re-reads from the last commit (none): everything again.
    let consumer = start_consumer(env.config.clone()).await;
    eventually("the replay to finish", WAIT, || async {
        (consumer.metric("abtest_consumer_rows_inserted_total").await >= 200.0).then_some(())
    })
    .await;
    assert_eq!(distinct_events(&env).await, 200, "each event counted once");
    assert_eq!(env.ch_count("SELECT count() FROM events FINAL").await, 200, "replayed copies collapse");
    consumer.stop().await;
}

#[tokio::test]
async fn clickhouse_down_while_events_flow_loses_nothing_and_the_lag_gauge_keeps_moving() {
    let (_stack, env) = setup().await;
    let target: SocketAddr =
        env.config.clickhouse.url.trim_start_matches("http://").parse().expect("clickhouse host:port");
    let proxy = Proxy::start(target).await;
    let mut through_proxy = env.config.clone();
    through_proxy.clickhouse.url = format!("http://{}", proxy.addr);
    let consumer = start_consumer(through_proxy).await;

    produce_events(&env, "before", 100).await;
    eventually("the first 100", WAIT, || async { (distinct_events(&env).await == 100).then_some(()) }).await;

    proxy.set(false);
    // Several batches (batch_max_wait is 200 ms in tests) fill both writers and block the
    // read loop; the lag must still be measured.
    for round in 0..6 {
        produce_events(&env, &format!("during{round}"), 50).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    produce_events(&env, "during-last", 300).await;
    eventually("the lag gauge to show the backlog", WAIT, || async {
        (consumer.metric("abtest_consumer_lag_messages").await >= 300.0).then_some(())
    })
    .await;
    eventually("failed inserts to be retried", WAIT, || async {
        (consumer.metric("abtest_consumer_insert_failures_total").await >= 2.0).then_some(())
    })
    .await;
    let ready = reqwest::get(consumer.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(distinct_events(&env).await, 100, "nothing new while ClickHouse is away");

    proxy.set(true);
    produce_events(&env, "after", 100).await;
    eventually("all 800 events", WAIT, || async { (distinct_events(&env).await == 800).then_some(()) }).await;
    eventually("the lag to fall back to 0", WAIT, || async {
        (consumer.metric("abtest_consumer_lag_messages").await == 0.0).then_some(())
    })
    .await;
    consumer.stop().await;
}

fn poison_payloads() -> Vec<String> {
    vec![
        "definitely not json".to_owned(),
        json!({"v": 2, "event_id": uuid::Uuid::now_v7(), "user_id": "u", "type": "t", "timestamp_ms": 1, "received_at_ms": 1, "properties": {}}).to_string(),
        json!({"v": 1, "event_id": uuid::Uuid::now_v7(), "user_id": "", "type": "t", "timestamp_ms": 1, "received_at_ms": 1, "properties": {}}).to_string(),
    ]
}

fn good_payload(user: &str) -> String {
    json!({"v": 1, "event_id": uuid::Uuid::now_v7(), "user_id": user, "type": "t", "timestamp_ms": 1_767_225_600_000_i64, "received_at_ms": 1_767_225_600_000_i64, "properties": {}})
        .to_string()
}

/// Produces `payloads` in order to partition 0 of `topic`; returns their offsets.
async fn produce_to_partition_0(env: &TestEnv, topic: &str, payloads: &[String]) -> Vec<i64> {
    let producer = raw_producer(env);
    let mut offsets = Vec::new();
    for p in payloads {
        let record = FutureRecord::to(topic).partition(0).key("same-user").payload(p);
        let delivery = producer.send(record, Duration::from_secs(5)).await.expect("produce");
        let offset = delivery.offset;
        offsets.push(offset);
    }
    offsets
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_and_the_partition_moves_on() {
    let (_stack, env) = setup().await;
    let topics = env.config.kafka.topics.clone();
    let mut payloads = poison_payloads();
    payloads.extend((0..50).map(|i| good_payload(&format!("p-{i}"))));
    produce_to_partition_0(&env, &topics.events, &payloads).await;
    produce_to_partition_0(&env, &topics.exposures, &["{\"v\":1}".to_owned()]).await;

    let consumer = start_consumer(env.config.clone()).await;
    eventually("the 50 good events", WAIT, || async { (distinct_events(&env).await == 50).then_some(()) }).await;
    eventually("4 DLQ messages", WAIT, || async { (env.topic_messages(&topics.dlq).await == 4).then_some(()) }).await;
    assert_eq!(consumer.metric("abtest_consumer_dlq_messages_total").await, 4.0);
    let letters = read_dlq(&env, 4).await;
    let reasons: Vec<String> = letters.iter().filter_map(|m| header(m, "error")).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a valid envelope")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("version 2")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("user_id")), "{reasons:?}");
    assert!(letters.iter().all(|m| header(m, "stage").as_deref() == Some("decode")));
    consumer.stop().await;
}

/// The group's committed offset of partition 0 of `topic`.
fn committed_offset(env: &TestEnv, topic: &str) -> Option<i64> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", env.config.kafka.brokers.bootstrap())
        .set("group.id", &env.config.kafka.group_id)
        .create()
        .expect("reader");
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(topic, 0);
    let committed = reader.committed_offsets(partitions, Duration::from_secs(10)).expect("committed offsets");
    match committed.find_partition(topic, 0)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[tokio::test]
async fn a_poison_message_is_never_committed_past_when_the_dlq_is_down_at_shutdown() {
    let (_stack, env) = setup().await;
    let events = env.config.kafka.topics.events.clone();
    let before: Vec<String> = (0..20).map(|i| good_payload(&format!("b-{i}"))).collect();
    produce_to_partition_0(&env, &events, &before).await;
    let consumer =
        start_faulty(env.config.clone(), consumer::Faults { dlq_unavailable: true, ..Default::default() }).await;
    eventually("the first 20 committed", WAIT, || async {
        (committed_offset(&env, &events) == Some(20)).then_some(())
    })
    .await;
    let mut rest = vec![poison_payloads().remove(0)];
    rest.extend((0..5).map(|i| good_payload(&format!("a-{i}"))));
    let offsets = produce_to_partition_0(&env, &events, &rest).await;
    eventually("a failed DLQ write for the poison message", WAIT, || async {
        (consumer.metric("abtest_consumer_dlq_failures_total").await >= 1.0).then_some(())
    })
    .await;
    consumer.stop().await;
    assert_eq!(env.topic_messages(&env.config.kafka.topics.dlq).await, 0, "the DLQ was down");
    assert_eq!(
        committed_offset(&env, &events),
        Some(offsets[0]),
        "the commit stops at the poison message, so a restart reads it again"
    );
    // Back with a working DLQ: the poison message goes there and everything is committed.
    let consumer = start_consumer(env.config.clone()).await;
    eventually("the poison message in the DLQ", WAIT, || async {
        (env.topic_messages(&env.config.kafka.topics.dlq).await == 1).then_some(())
    })
    .await;
    eventually("all 25 good events", WAIT, || async { (distinct_events(&env).await == 25).then_some(()) }).await;
    consumer.stop().await;
}

#[tokio::test]
async fn rows_clickhouse_refuses_go_to_the_dlq_with_the_reason_and_the_rest_are_inserted() {
    let (_stack, env) = setup().await;
    // A check on the table that refuses one row: ClickHouse answers the whole insert with
    // an error about the data (code 395), as it does for a value that does not fit a column.
    env.clickhouse()
        .query("ALTER TABLE events ADD COLUMN refused UInt8 MATERIALIZED throwIf(user_id = 'refused-row')")
        .execute()
        .await
        .expect("alter");
    let events = env.config.kafka.topics.events.clone();
    let mut payloads: Vec<String> = (0..40).map(|i| good_payload(&format!("ok-{i}"))).collect();
    payloads.insert(17, good_payload("refused-row"));
    let offsets = produce_to_partition_0(&env, &events, &payloads).await;
    let consumer = start_consumer(env.config.clone()).await;
    eventually("the 40 other rows", WAIT, || async { (distinct_events(&env).await == 40).then_some(()) }).await;
    let letters = read_dlq(&env, 1).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.payload(), Some(payloads[17].as_bytes()), "the original message, byte for byte");
    assert_eq!(header(letter, "stage").as_deref(), Some("insert"));
    assert_eq!(header(letter, "source_offset"), Some(offsets[17].to_string()));
    assert!(header(letter, "error").is_some_and(|e| e.contains("395")), "{:?}", header(letter, "error"));
    eventually("everything committed", WAIT, || async { (committed_offset(&env, &events) == Some(41)).then_some(()) })
        .await;
    assert!(consumer.metric("abtest_consumer_insert_failures_total").await >= 1.0);
    consumer.stop().await;
}

#[tokio::test]
async fn events_keep_the_request_id_header_into_the_dlq() {
    let (_stack, env) = setup().await;
    let producer = raw_producer(&env);
    let headers = rdkafka::message::OwnedHeaders::new()
        .insert(rdkafka::message::Header { key: common::kafka::REQUEST_ID_HEADER, value: Some("req-42") });
    producer
        .send(
            FutureRecord::to(&env.config.kafka.topics.events).key("k").payload("not json").headers(headers),
            Duration::from_secs(5),
        )
        .await
        .expect("produce");
    let consumer = start_consumer(env.config.clone()).await;
    let letters = read_dlq(&env, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(header(&letters[0], common::kafka::REQUEST_ID_HEADER).as_deref(), Some("req-42"));
    consumer.stop().await;
}

/// Two consumers of one group split the partitions (cooperative-sticky), and when the
/// second joins, the first lets its in-flight batches commit before giving partitions up:
/// the replay is at most about one batch, and every event is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_one_group_split_the_partitions_and_a_rebalance_replays_little() {
    let (_stack, env) = setup().await;
    let first = start_consumer(env.config.clone()).await;
    let sender = {
        let env_config = env.config.clone();
        tokio::spawn(async move {
            let sink = Sink::new(&env_config.kafka, Duration::from_secs(10)).expect("producer");
            for round in 0..30 {
                let payloads: Vec<String> = (0..100).map(|i| good_payload(&format!("r{round}-{i}"))).collect();
                let keys: Vec<String> = (0..100).map(|i| format!("r{round}-{i}")).collect();
                let messages: Vec<KafkaMessage<&[u8]>> = keys
                    .iter()
                    .zip(&payloads)
                    .map(|(k, p)| KafkaMessage { key: k.as_bytes(), payload: p.as_bytes(), request_id: None })
                    .collect();
                sink.send_all(&env_config.kafka.topics.events, &messages).await.expect("acknowledged");
                tokio::time::sleep(Duration::from_millis(100)).await; // the pace of the load, not a wait
            }
        })
    };
    eventually("the first consumer at work", WAIT, || async { (distinct_events(&env).await >= 500).then_some(()) })
        .await;
    let second = start_consumer(env.config.clone()).await;
    sender.await.expect("sender");
    eventually("every event", WAIT, || async { (distinct_events(&env).await == 3000).then_some(()) }).await;
    let (a, b) = (
        first.metric("abtest_consumer_assigned_partitions").await,
        second.metric("abtest_consumer_assigned_partitions").await,
    );
    assert!(a > 0.0 && b > 0.0 && a + b == 8.0, "both own partitions of the 4 + 4: {a} and {b}");
    assert!(first.metric("abtest_consumer_rebalances_total").await >= 2.0, "the first saw the second join");
    let batches = first.metric("abtest_consumer_batch_rows_count").await.max(1.0);
    let mean_batch = first.metric("abtest_consumer_batch_rows_sum").await / batches;
    let replayed = env.ch_count("SELECT count() FROM events").await - 3000;
    eprintln!("rows replayed by the rebalance: {replayed} (mean batch {mean_batch:.0} rows)");
    assert!((replayed as f64) <= 2.0 * mean_batch + 50.0, "{replayed} rows replayed, mean batch {mean_batch:.0}");
    first.stop().await;
    second.stop().await;
}
