//! Kafka clients configured once for every binary.

use std::time::Duration;

use rdkafka::{
    config::ClientConfig,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
    producer::{FutureProducer, Producer},
};

use crate::config::KafkaConfig;

fn base(cfg: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &cfg.brokers);
    client
}

fn apply_overrides(client: &mut ClientConfig, cfg: &KafkaConfig) {
    for (key, value) in &cfg.properties {
        client.set(key, value);
    }
}

/// The idempotent producer behind "a 2xx means it is in Kafka": `acks=all`, retries
/// without duplicates or reordering, and `message.timeout.ms` equal to the time a request
/// may wait, so librdkafka gives up on a message no later than we answer 503.
pub fn producer(cfg: &KafkaConfig, delivery_timeout: Duration) -> Result<FutureProducer, KafkaError> {
    let mut client = base(cfg);
    client
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", cfg.compression.as_librdkafka())
        .set("linger.ms", cfg.linger.as_millis().to_string())
        .set("queue.buffering.max.messages", cfg.queue_max_messages.to_string())
        .set("message.timeout.ms", delivery_timeout.as_millis().max(1).to_string())
        .set("statistics.interval.ms", "0");
    apply_overrides(&mut client, cfg);
    client.create()
}

/// A group member that never commits on its own: offsets are stored and committed by the
/// consumer only after ClickHouse acknowledged the rows that hold them.
pub fn consumer(cfg: &KafkaConfig) -> Result<StreamConsumer, KafkaError> {
    let mut client = base(cfg);
    client
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", cfg.session_timeout.as_millis().to_string())
        .set("enable.partition.eof", "false")
        // When the prefetch queue is full (the consumer is busy writing a batch), librdkafka
        // waits this long before fetching again; its default (1 s) left the consumer idle
        // for most of a backlog drain (scripts/bench, bench/RESULTS.md).
        .set("fetch.queue.backoff.ms", "20");
    apply_overrides(&mut client, cfg);
    client.create()
}

/// Creates whichever of the events, exposures and DLQ topics do not exist yet
/// (`api migrate`). Existing topics are left as they are.
pub async fn create_topics(cfg: &KafkaConfig) -> Result<(), KafkaError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    let mut client = base(cfg);
    apply_overrides(&mut client, cfg);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = client.create()?;
    let wanted = [
        (cfg.topics.events.as_str(), cfg.topic_partitions),
        (cfg.topics.exposures.as_str(), cfg.topic_partitions),
        (cfg.topics.dlq.as_str(), 1),
    ];
    let existing: Vec<String> = {
        let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
        metadata.topics().iter().map(|t| t.name().to_owned()).collect()
    };
    let missing: Vec<NewTopic> = wanted
        .iter()
        .filter(|(name, _)| !existing.iter().any(|e| e == name))
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(cfg.topic_replication)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&missing, &options).await? {
        match result {
            Ok(topic) => tracing::info!(%topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(%topic, %code, "could not create topic");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// Readiness: can the client fetch cluster metadata within `timeout`?
pub async fn ping<C>(client: &C, timeout: Duration) -> bool
where
    C: HasClient + Clone + Send + 'static,
{
    let client = client.clone();
    tokio::task::spawn_blocking(move || client.metadata_ok(timeout)).await.unwrap_or(false)
}

/// Clients whose broker connectivity can be probed.
pub trait HasClient {
    fn metadata_ok(&self, timeout: Duration) -> bool;
}

impl HasClient for FutureProducer {
    fn metadata_ok(&self, timeout: Duration) -> bool {
        self.client().fetch_metadata(None, timeout).map(|m| !m.brokers().is_empty()).unwrap_or(false)
    }
}

impl HasClient for std::sync::Arc<StreamConsumer> {
    fn metadata_ok(&self, timeout: Duration) -> bool {
        self.fetch_metadata(None, timeout).map(|m| !m.brokers().is_empty()).unwrap_or(false)
    }
}
