//! The dead-letter topic: messages that cannot become rows (undecodable), and rows that
//! ClickHouse refuses for good (bad data for a column). Each goes to the DLQ as the
//! original Kafka message, byte for byte with its headers, plus `error`, `stage`,
//! `source_topic`, `source_partition` and `source_offset` headers. Sending is retried
//! until the DLQ acknowledges it: skipping an unacknowledged letter would lose it.

use std::time::Duration;

use common::{config::Config, shutdown::CancellationToken};
use rdkafka::{
    consumer::Consumer,
    error::KafkaError,
    message::{Header, Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};

use crate::{backoff::Backoff, metrics::ConsumerMetrics, rows::Source};

/// Where a letter was refused: decoding the message, or inserting its row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Decode,
    Insert,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Insert => "insert",
        }
    }
}

pub(crate) struct DeadLetters {
    producer: FutureProducer,
    config: Config,
    metrics: ConsumerMetrics,
    /// Fault injection: every send fails (tests of what happens when the DLQ is down).
    pub(crate) unavailable: bool,
}

impl DeadLetters {
    pub(crate) fn new(config: Config, metrics: ConsumerMetrics) -> Result<Self, KafkaError> {
        let producer = common::kafka::producer(&config.kafka, Duration::from_secs(30))?;
        Ok(Self { producer, config, metrics, unavailable: false })
    }

    /// Sends `msg` to the DLQ; `false` if shutdown came before the DLQ acknowledged it.
    pub(crate) async fn send<M: Message>(
        &self,
        msg: &M,
        stage: Stage,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::warn!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), stage = stage.as_str(), %reason, "to the DLQ");
        let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
        let mut backoff = Backoff::new(self.config.consumer.retry_max_backoff);
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = msg.headers() {
                for h in original.iter() {
                    headers = headers.insert(h);
                }
            }
            let ours = [
                ("error", reason),
                ("stage", stage.as_str()),
                ("source_topic", msg.topic()),
                ("source_partition", partition.as_str()),
                ("source_offset", offset.as_str()),
            ];
            for (key, value) in ours {
                headers = headers.insert(Header { key, value: Some(value) });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.config.kafka.topics.dlq).headers(headers);
            if let Some(key) = msg.key() {
                record = record.key(key);
            }
            if let Some(payload) = msg.payload() {
                record = record.payload(payload);
            }
            let sent = if self.unavailable {
                Err(KafkaError::Canceled)
            } else {
                self.producer.send(record, Duration::from_secs(5)).await.map(|_| ()).map_err(|(e, _)| e)
            };
            match sent {
                Ok(()) => {
                    self.metrics.dlq_messages.inc();
                    return true;
                }
                Err(e) => {
                    self.metrics.dlq_failures.inc();
                    tracing::error!(error = %e, "could not write to the DLQ; retrying");
                }
            }
            if !backoff.wait(shutdown).await {
                return false;
            }
        }
    }

    /// Sends the message behind a refused row, fetched again by its offset.
    pub(crate) async fn send_row(
        &self,
        topic: &str,
        source: Source,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::new(self.config.consumer.retry_max_backoff);
        loop {
            let (config, topic_name) = (self.config.clone(), topic.to_owned());
            match tokio::task::spawn_blocking(move || fetch(&config, &topic_name, source)).await {
                Ok(Ok(msg)) => return self.send(&msg, Stage::Insert, reason, shutdown).await,
                Ok(Err(e)) => {
                    tracing::error!(topic, ?source, error = %e, "could not read a refused row's message again; retrying")
                }
                Err(e) => tracing::error!(error = %e, "DLQ fetch task failed; retrying"),
            }
            if !backoff.wait(shutdown).await {
                return false;
            }
        }
    }
}

/// Reads the message at `source` of `topic`.
fn fetch(config: &Config, topic: &str, source: Source) -> Result<OwnedMessage, KafkaError> {
    let reader = common::kafka::reader(&config.kafka)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, source.partition, Offset::Offset(source.offset))?;
    reader.assign(&assignment)?;
    match reader.poll(Duration::from_secs(10)) {
        Some(Ok(msg)) if msg.offset() == source.offset => Ok(msg.detach()),
        Some(Err(e)) => Err(e),
        _ => Err(KafkaError::NoMessageReceived),
    }
}
