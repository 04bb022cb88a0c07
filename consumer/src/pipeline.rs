//! Kafka -> ClickHouse, at least once into the table and exactly once in every count.
//!
//! Messages accumulate in one batch until it holds `consumer.batch_max_rows` rows or its
//! first row has waited `consumer.batch_max_wait`. A flush inserts the rows (retrying with
//! backoff while ClickHouse is down, consuming nothing meanwhile), then commits, per
//! partition, the offset after the last message of the batch. A crash between insert and
//! commit replays the batch; the tables collapse on the event id and the queries count
//! each id once, so a replay never counts twice.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use clickhouse::Client;
use common::{
    config::Config,
    event::{DecodeError, EventEnvelope, ExposureEnvelope},
    shutdown::CancellationToken,
};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Header, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};

use crate::{
    metrics::ConsumerMetrics,
    rows::{EventRow, ExposureRow},
};

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("stopped by fault injection after an insert, before its commit")]
    InjectedCrash,
}

/// Test-only switches that simulate a crash at the worst moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Return right after the first successful insert, without committing (as a process
    /// killed between the two would).
    pub crash_after_insert: bool,
}

pub struct Pipeline {
    config: Config,
    consumer: Arc<StreamConsumer>,
    dlq: FutureProducer,
    clickhouse: Client,
    metrics: ConsumerMetrics,
    faults: Faults,
}

#[derive(Default)]
struct Batch {
    events: Vec<EventRow>,
    exposures: Vec<ExposureRow>,
    /// Highest offset seen per (topic, partition): everything up to it is in this batch or
    /// already in the DLQ.
    offsets: HashMap<(String, i32), i64>,
    started: Option<Instant>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.events.len() + self.exposures.len()
    }

    fn track(&mut self, msg: &BorrowedMessage<'_>) {
        self.started.get_or_insert_with(Instant::now);
        let key = (msg.topic().to_owned(), msg.partition());
        let entry = self.offsets.entry(key).or_insert(msg.offset());
        *entry = (*entry).max(msg.offset());
    }
}

impl Pipeline {
    pub fn new(config: Config, metrics: ConsumerMetrics) -> Result<Self, ConsumerError> {
        let consumer = Arc::new(common::kafka::consumer(&config.kafka)?);
        let dlq = common::kafka::producer(&config.kafka, Duration::from_secs(30))?;
        let clickhouse = common::clickhouse::client(&config.clickhouse);
        Ok(Self { config, consumer, dlq, clickhouse, metrics, faults: Faults::default() })
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The Kafka consumer, for readiness probes.
    pub fn kafka(&self) -> Arc<StreamConsumer> {
        self.consumer.clone()
    }

    pub fn clickhouse(&self) -> Client {
        self.clickhouse.clone()
    }

    /// Consumes until `shutdown`, then flushes and commits what it holds and leaves the
    /// group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ConsumerError> {
        let topics = &self.config.kafka.topics;
        self.consumer.subscribe(&[topics.events.as_str(), topics.exposures.as_str()])?;
        tracing::info!(topics = ?[&topics.events, &topics.exposures], group = %self.config.kafka.group_id, "consumer started");
        let max_rows = self.config.consumer.batch_max_rows;
        let max_wait = self.config.consumer.batch_max_wait;
        let mut batch = Batch::default();
        let mut last_lag = Instant::now();
        loop {
            let deadline = batch.started.map(|t| tokio::time::Instant::from_std(t + max_wait));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(deadline) => {
                    self.flush(&mut batch, &shutdown).await?;
                }
                received = self.consumer.recv() => match received {
                    Ok(msg) => {
                        self.take(&mut batch, &msg, &shutdown).await;
                        if batch.rows() >= max_rows {
                            self.flush(&mut batch, &shutdown).await?;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
            if last_lag.elapsed() > Duration::from_secs(5) {
                self.observe_lag();
                last_lag = Instant::now();
            }
        }
        // Shutdown: one last flush; it gives up (committing nothing) if ClickHouse is down.
        let last = CancellationToken::new();
        let drain = self.flush(&mut batch, &last);
        if tokio::time::timeout(self.config.clickhouse.timeout, drain).await.is_err() {
            tracing::warn!("final flush did not finish; its messages stay uncommitted and will be replayed");
        }
        self.consumer.unsubscribe();
        tracing::info!("consumer stopped");
        Ok(())
    }

    /// Decodes one message into the batch; an undecodable one goes to the DLQ.
    async fn take(&self, batch: &mut Batch, msg: &BorrowedMessage<'_>, shutdown: &CancellationToken) {
        let payload = msg.payload().unwrap_or_default();
        let topics = &self.config.kafka.topics;
        let decoded: Result<(), DecodeError> = if msg.topic() == topics.events {
            EventEnvelope::decode(payload).map(|e| batch.events.push(e.into()))
        } else {
            ExposureEnvelope::decode(payload).map(|e| batch.exposures.push(e.into()))
        };
        if let Err(reason) = decoded {
            self.dead_letter(msg, &reason, shutdown).await;
        }
        batch.track(msg);
    }

    /// Copies a poison message to the DLQ with the reason in headers, retrying until the
    /// DLQ acknowledged it: skipping it unacknowledged would lose it.
    async fn dead_letter(&self, msg: &BorrowedMessage<'_>, reason: &DecodeError, shutdown: &CancellationToken) {
        let reason = reason.to_string();
        tracing::warn!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), %reason, "poison message to DLQ");
        let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
        let mut backoff = Backoff::new(self.config.consumer.retry_max_backoff);
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header { key: "error", value: Some(reason.as_bytes()) })
                .insert(Header { key: "source_topic", value: Some(msg.topic().as_bytes()) })
                .insert(Header { key: "source_partition", value: Some(partition.as_bytes()) })
                .insert(Header { key: "source_offset", value: Some(offset.as_bytes()) });
            let mut record = FutureRecord::to(&self.config.kafka.topics.dlq).headers(headers);
            if let Some(key) = msg.key() {
                record = record.key(key);
            }
            if let Some(payload) = msg.payload() {
                record = record.payload(payload);
            }
            match self.dlq.send(record, Duration::from_secs(5)).await {
                Ok(_) => {
                    self.metrics.dlq_messages.inc();
                    return;
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, "could not write to the DLQ; retrying");
                    if !backoff.wait(shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Inserts the batch, then commits its offsets. Returns with the batch untouched and
    /// nothing committed when shut down while ClickHouse is unavailable.
    async fn flush(&self, batch: &mut Batch, shutdown: &CancellationToken) -> Result<(), ConsumerError> {
        if batch.offsets.is_empty() {
            batch.started = None;
            return Ok(());
        }
        self.metrics.batch_rows.observe(batch.rows() as f64);
        if !self.insert("events", &batch.events, shutdown).await
            || !self.insert("exposures", &batch.exposures, shutdown).await
        {
            return Ok(());
        }
        if self.faults.crash_after_insert {
            return Err(ConsumerError::InjectedCrash);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &batch.offsets {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))?;
        }
        // A synchronous commit blocks until the coordinator answers: off the async threads.
        let consumer = self.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
            .await
            .unwrap_or(Err(rdkafka::error::KafkaError::Canceled));
        match committed {
            Ok(()) => self.metrics.commits.inc(),
            Err(e) => {
                // Typically a rebalance took the partitions away: their new owner replays
                // from the last commit and the tables deduplicate.
                self.metrics.commit_failures.inc();
                tracing::warn!(error = %e, "offset commit failed; rows will be replayed and deduplicated");
            }
        }
        *batch = Batch::default();
        Ok(())
    }

    /// Inserts `rows`, retrying with exponential backoff. `false` when shut down first.
    async fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
        &self,
        table: &str,
        rows: &[T],
        shutdown: &CancellationToken,
    ) -> bool {
        if rows.is_empty() {
            return true;
        }
        let mut backoff = Backoff::new(self.config.consumer.retry_max_backoff);
        loop {
            let started = Instant::now();
            match self.try_insert(table, rows).await {
                Ok(()) => {
                    self.metrics.insert_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.rows_inserted.with_label_values(&[table]).inc_by(rows.len() as u64);
                    return true;
                }
                Err(e) => {
                    self.metrics.insert_failures.with_label_values(&[table]).inc();
                    tracing::warn!(table, rows = rows.len(), error = %e, "ClickHouse insert failed; retrying");
                    if !backoff.wait(shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn try_insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
        &self,
        table: &str,
        rows: &[T],
    ) -> clickhouse::error::Result<()> {
        let timeout = Some(self.config.clickhouse.timeout);
        let mut insert = self.clickhouse.insert::<T>(table).await?.with_timeouts(timeout, timeout);
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }

    /// Lag per topic: high watermarks minus current positions over the assigned
    /// partitions, fetched off the async threads.
    fn observe_lag(&self) {
        let consumer = self.consumer.clone();
        let gauge = self.metrics.lag.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(positions) = consumer.position() else { return };
            let mut lag: HashMap<String, i64> = HashMap::new();
            for p in positions.elements() {
                let Ok((_, high)) = consumer.fetch_watermarks(p.topic(), p.partition(), Duration::from_secs(1)) else {
                    continue;
                };
                let behind = match p.offset() {
                    Offset::Offset(pos) => (high - pos).max(0),
                    _ => 0,
                };
                *lag.entry(p.topic().to_owned()).or_default() += behind;
            }
            for (topic, behind) in lag {
                gauge.with_label_values(&[&topic]).set(behind);
            }
        });
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self { next: Duration::from_millis(100).min(max), max }
    }

    /// Sleeps for the next interval; `false` if shutdown came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
