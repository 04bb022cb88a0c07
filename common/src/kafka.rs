//! Kafka clients configured once for every binary, and the [`Sink`] behind "a 2xx means
//! it is in Kafka".

use std::time::Duration;

use futures::future::join_all;
use rdkafka::{
    config::ClientConfig,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    types::RDKafkaErrorCode,
};

use crate::config::KafkaConfig;

/// Kafka header carrying the id of the HTTP request that produced a message, so an event
/// can be followed from the access log to the topic (and to the DLQ, which keeps headers).
pub const REQUEST_ID_HEADER: &str = "request_id";

/// Where the brokers are and how to talk to them (TLS, SASL): the same for every client.
pub(crate) fn base(cfg: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", cfg.brokers.bootstrap());
    client.set("security.protocol", cfg.security_protocol.as_librdkafka());
    if let Some(mechanism) = cfg.sasl_mechanism {
        client.set("sasl.mechanism", mechanism.as_librdkafka());
    }
    if !cfg.sasl_username.is_empty() {
        client.set("sasl.username", &cfg.sasl_username);
    }
    // Read from kafka.sasl_password_file by Config::load when that is set.
    if !cfg.sasl_password.expose().is_empty() {
        client.set("sasl.password", cfg.sasl_password.expose());
    }
    if let Some(ca) = &cfg.ssl_ca_location {
        client.set("ssl.ca.location", ca.to_string_lossy());
    }
    client
}

/// `kafka.properties`, last: they win over our tuning (the security settings cannot be
/// among them, see `config::validate_tls`).
pub(crate) fn apply_overrides(client: &mut ClientConfig, cfg: &KafkaConfig) {
    for (key, value) in cfg.properties.iter() {
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
/// consumer only after ClickHouse acknowledged the rows that hold them. Partitions move
/// between the members with the cooperative-sticky assignor: a rebalance revokes only
/// the partitions that move, and the others keep being consumed.
pub fn consumer<C: rdkafka::consumer::ConsumerContext + 'static>(
    cfg: &KafkaConfig,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
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
        .set("fetch.queue.backoff.ms", "20")
        .set("partition.assignment.strategy", "cooperative-sticky");
    apply_overrides(&mut client, cfg);
    client.create_with_context(context)
}

/// A group-less reader for fetching single messages by offset (assign, never commit).
pub fn reader(cfg: &KafkaConfig) -> Result<rdkafka::consumer::BaseConsumer, KafkaError> {
    let mut client = base(cfg);
    client
        .set("group.id", format!("{}-reader", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    apply_overrides(&mut client, cfg);
    client.create()
}

/// Creates whichever of the events, exposures and DLQ topics do not exist yet
/// (`api migrate`). Existing topics are left as they are.
pub async fn create_topics(cfg: &KafkaConfig) -> Result<(), KafkaError> {
    let wanted = [
        (cfg.topics.events.as_str(), cfg.topic_partitions),
        (cfg.topics.exposures.as_str(), cfg.topic_partitions),
        (cfg.topics.dlq.as_str(), 1),
    ];
    ensure_topics(cfg, &wanted).await
}

/// Creates the `(name, partitions)` topics that do not exist yet, with the configured
/// replication factor and `min.insync.replicas`. Existing topics are left as they are; one
/// whose replication differs from the configured one is logged (a warning).
pub async fn ensure_topics(cfg: &KafkaConfig, wanted: &[(&str, i32)]) -> Result<(), KafkaError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let mut client = base(cfg);
    apply_overrides(&mut client, cfg);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = client.create()?;
    let existing: Vec<String> = {
        let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
        for topic in metadata.topics().iter().filter(|t| wanted.iter().any(|(name, _)| *name == t.name())) {
            let replicas = topic.partitions().first().map_or(0, |p| p.replicas().len());
            if replicas != cfg.topic_replication as usize {
                tracing::warn!(
                    topic = topic.name(),
                    replicas,
                    configured = cfg.topic_replication,
                    "the topic exists with another replication factor than kafka.topic_replication: left as it is"
                );
            }
        }
        metadata.topics().iter().map(|t| t.name().to_owned()).collect()
    };
    let min_insync = cfg.topic_min_insync_replicas.to_string();
    let missing: Vec<NewTopic> = wanted
        .iter()
        .filter(|(name, _)| !existing.iter().any(|e| e == name))
        .map(|(name, partitions)| {
            let topic = NewTopic::new(name, *partitions, TopicReplication::Fixed(cfg.topic_replication));
            if cfg.topic_min_insync_replicas > 0 {
                topic.set("min.insync.replicas", &min_insync)
            } else {
                topic
            }
        })
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

/// Why Kafka did not take a request's messages. Whatever the variant, nothing of the
/// request may be reported as acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the producer queue is full")]
    QueueFull,
    #[error("Kafka refused the message")]
    Refused(#[source] KafkaError),
    #[error("Kafka did not take the message")]
    Failed(#[source] KafkaError),
    #[error("Kafka did not acknowledge within {0:?}")]
    Timeout(Duration),
    #[error("the producer shut down before Kafka acknowledged")]
    Canceled,
}

/// One message for [`Sink::send_all`]: the key (a user id: a user's messages stay in
/// order in one partition), the payload and the id of the HTTP request it comes from.
pub struct Message<'a, P> {
    pub key: &'a [u8],
    pub payload: P,
    pub request_id: Option<&'a str>,
}

/// Produces messages and waits until Kafka acknowledged every one of them, bounded by
/// `ack_timeout`: the events of a request (ingest) and a user's exposure (assignment).
#[derive(Clone)]
pub struct Sink {
    producer: FutureProducer,
    ack_timeout: Duration,
    queue_max: usize,
}

impl Sink {
    /// `ack_timeout` is also the producer's `message.timeout.ms` (see [`producer`]).
    pub fn new(cfg: &KafkaConfig, ack_timeout: Duration) -> Result<Self, KafkaError> {
        Ok(Self { producer: producer(cfg, ack_timeout)?, ack_timeout, queue_max: cfg.queue_max_messages as usize })
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// Messages waiting in the producer for Kafka.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.producer.in_flight_count()).unwrap_or(0)
    }

    /// Enqueues every message and waits for all acknowledgements. A full producer queue
    /// refuses the whole set before anything is enqueued (backpressure).
    pub async fn send_all<P: AsRef<[u8]>>(&self, topic: &str, messages: &[Message<'_, P>]) -> Result<(), SendError> {
        if self.in_flight() + messages.len() > self.queue_max {
            return Err(SendError::QueueFull);
        }
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            let mut record = FutureRecord::to(topic).key(message.key).payload(message.payload.as_ref());
            if let Some(id) = message.request_id {
                record = record.headers(OwnedHeaders::new().insert(Header { key: REQUEST_ID_HEADER, value: Some(id) }));
            }
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(SendError::QueueFull)
                }
                Err((e, _)) => return Err(SendError::Refused(e)),
            }
        }
        let acked = tokio::time::timeout(self.ack_timeout, join_all(deliveries))
            .await
            .map_err(|_| SendError::Timeout(self.ack_timeout))?;
        for result in acked {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(SendError::Failed(e)),
                Err(_canceled) => return Err(SendError::Canceled),
            }
        }
        Ok(())
    }

    /// Waits for queued messages (shutdown); anything still queued after the acknowledgement
    /// timeout was never acknowledged to a client, so nothing promised is lost.
    pub async fn flush(&self) {
        let (producer, timeout) = (self.producer.clone(), self.ack_timeout);
        let _ = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }

    /// Readiness: can the producer fetch cluster metadata within `timeout`?
    pub async fn ping(&self, timeout: Duration) -> bool {
        ping(&self.producer, timeout).await
    }
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

impl HasClient for std::sync::Arc<rdkafka::consumer::BaseConsumer> {
    fn metadata_ok(&self, timeout: Duration) -> bool {
        self.fetch_metadata(None, timeout).map(|m| !m.brokers().is_empty()).unwrap_or(false)
    }
}
