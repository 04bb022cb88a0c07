//! Kafka -> ClickHouse, at least once into the table and exactly once in every count.
//!
//! Messages accumulate in one batch until it holds `consumer.batch_max_rows` rows or its
//! first row has waited `consumer.batch_max_wait`. A full batch goes to a writer task that
//! inserts the rows (retrying with backoff while ClickHouse is down) and then commits, per
//! partition, the offset after the last message of the batch, in batch order: a batch
//! commits only after every earlier batch committed. Up to `WRITERS` batches are written
//! while the next one fills; then reading waits, so an outage stops consumption after a
//! bounded amount. A crash between insert and commit replays the batch; the tables
//! collapse on the event id and the queries count each id once, so a replay never counts
//! twice.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use clickhouse::Client;
use common::{
    config::Config,
    event::{DecodeError, EventEnvelope, ExposureEnvelope},
    shutdown::CancellationToken,
};
use futures::{FutureExt, StreamExt};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Header, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};
use tokio::{sync::oneshot, task::JoinHandle};

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
    #[error("a batch writer task failed: {0}")]
    Writer(String),
}

/// How many batches may be inserting (and then committing, in order) while the next one
/// fills. While ClickHouse is down this bounds what is consumed ahead: the reader stops
/// when this many batches wait for their insert.
const WRITERS: usize = 2;

/// Batches being written in the background, oldest first.
#[derive(Default)]
struct Writers {
    tasks: VecDeque<JoinHandle<Result<(), ConsumerError>>>,
    /// Resolves once the newest batch is committed (`true`) or was given up (`false`).
    newest: Option<oneshot::Receiver<bool>>,
}

async fn oldest_done(tasks: &mut VecDeque<JoinHandle<Result<(), ConsumerError>>>) -> Result<(), ConsumerError> {
    match tasks.front_mut() {
        Some(task) => task.await.unwrap_or_else(|e| Err(ConsumerError::Writer(e.to_string()))),
        None => std::future::pending().await,
    }
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
    /// Highest offset seen per partition of the events and of the exposures topic:
    /// everything up to it is in this batch or already in the DLQ.
    event_offsets: HashMap<i32, i64>,
    exposure_offsets: HashMap<i32, i64>,
    started: Option<Instant>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.events.len() + self.exposures.len()
    }

    fn is_empty(&self) -> bool {
        self.event_offsets.is_empty() && self.exposure_offsets.is_empty()
    }

    fn track(&mut self, events: bool, msg: &BorrowedMessage<'_>) {
        self.started.get_or_insert_with(Instant::now);
        let offsets = if events { &mut self.event_offsets } else { &mut self.exposure_offsets };
        let entry = offsets.entry(msg.partition()).or_insert(msg.offset());
        *entry = (*entry).max(msg.offset());
    }

    /// Empties the batch, keeping its allocations for the next one.
    fn clear(&mut self) {
        self.events.clear();
        self.exposures.clear();
        self.event_offsets.clear();
        self.exposure_offsets.clear();
        self.started = None;
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
        Arc::new(self).consume(shutdown).await
    }

    async fn consume(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), ConsumerError> {
        let topics = &self.config.kafka.topics;
        self.consumer.subscribe(&[topics.events.as_str(), topics.exposures.as_str()])?;
        tracing::info!(topics = ?[&topics.events, &topics.exposures], group = %self.config.kafka.group_id, "consumer started");
        let max_rows = self.config.consumer.batch_max_rows;
        let max_wait = self.config.consumer.batch_max_wait;
        let mut batch = Batch::default();
        let mut writers = Writers::default();
        let mut last_lag = Instant::now();
        // One message stream and one timer for the whole run: creating them per message
        // (a `recv()` registers a waker slot, a `sleep_until` a timer entry) cost more
        // than decoding the message.
        let mut stream = self.consumer.stream();
        let deadline = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = &mut deadline, if batch.started.is_some() => {
                    self.flush(&mut batch, &shutdown, &mut writers).await?;
                }
                written = oldest_done(&mut writers.tasks), if !writers.tasks.is_empty() => {
                    writers.tasks.pop_front();
                    written?;
                }
                received = stream.next() => match received {
                    Some(Ok(msg)) => {
                        let was_empty = batch.started.is_none();
                        self.take(&mut batch, &msg, &shutdown).await;
                        drop(msg);
                        // Take whatever librdkafka has already fetched without another
                        // round through `select!`.
                        while batch.rows() < max_rows {
                            match stream.next().now_or_never() {
                                Some(Some(Ok(msg))) => self.take(&mut batch, &msg, &shutdown).await,
                                Some(Some(Err(e))) => {
                                    tracing::warn!(error = %e, "Kafka consumer error");
                                    break;
                                }
                                _ => break,
                            }
                        }
                        if let (true, Some(started)) = (was_empty, batch.started) {
                            deadline.as_mut().reset(tokio::time::Instant::from_std(started + max_wait));
                        }
                        if batch.rows() >= max_rows {
                            self.flush(&mut batch, &shutdown, &mut writers).await?;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None => break,
                },
            }
            if last_lag.elapsed() > Duration::from_secs(5) {
                self.observe_lag();
                last_lag = Instant::now();
            }
        }
        drop(stream);
        // Shutdown: one last flush, then every writer in order; a writer gives up (and no
        // later batch commits) if ClickHouse is down.
        let last = CancellationToken::new();
        let drain = async {
            self.flush(&mut batch, &last, &mut writers).await?;
            while let Some(task) = writers.tasks.pop_front() {
                task.await.unwrap_or_else(|e| Err(ConsumerError::Writer(e.to_string())))?;
            }
            Ok::<(), ConsumerError>(())
        };
        match tokio::time::timeout(self.config.clickhouse.timeout, drain).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!("final flush did not finish; its messages stay uncommitted and will be replayed"),
        }
        self.consumer.unsubscribe();
        tracing::info!("consumer stopped");
        Ok(())
    }

    /// Decodes one message into the batch; an undecodable one goes to the DLQ.
    async fn take(&self, batch: &mut Batch, msg: &BorrowedMessage<'_>, shutdown: &CancellationToken) {
        let payload = msg.payload().unwrap_or_default();
        let topics = &self.config.kafka.topics;
        let events = msg.topic() == topics.events;
        let decoded: Result<(), DecodeError> = if events {
            EventEnvelope::decode(payload).map(|e| batch.events.push(e.into()))
        } else {
            ExposureEnvelope::decode(payload).map(|e| batch.exposures.push(e.into()))
        };
        if let Err(reason) = decoded {
            self.dead_letter(msg, &reason, shutdown).await;
        }
        batch.track(events, msg);
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

    /// Hands the batch to a writer task (waiting for the oldest writer when `WRITERS` are
    /// busy) and starts an empty one.
    async fn flush(
        self: &Arc<Self>,
        batch: &mut Batch,
        shutdown: &CancellationToken,
        writers: &mut Writers,
    ) -> Result<(), ConsumerError> {
        if batch.is_empty() {
            batch.clear();
            return Ok(());
        }
        while writers.tasks.len() >= WRITERS {
            oldest_done(&mut writers.tasks).await?;
            writers.tasks.pop_front();
        }
        let full = std::mem::take(batch);
        let (done, newest) = oneshot::channel();
        let earlier = writers.newest.replace(newest);
        let this = self.clone();
        let shutdown = shutdown.clone();
        writers.tasks.push_back(tokio::spawn(async move { this.write(full, earlier, done, &shutdown).await }));
        Ok(())
    }

    /// Inserts the batch, then, once every earlier batch is committed, commits its offsets.
    /// Commits nothing when shut down while ClickHouse is unavailable, nor after an earlier
    /// batch gave up.
    async fn write(
        &self,
        batch: Batch,
        earlier: Option<oneshot::Receiver<bool>>,
        done: oneshot::Sender<bool>,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumerError> {
        self.metrics.batch_rows.observe(batch.rows() as f64);
        if !self.insert("events", &batch.events, shutdown).await
            || !self.insert("exposures", &batch.exposures, shutdown).await
        {
            let _ = done.send(false);
            return Ok(());
        }
        if self.faults.crash_after_insert {
            let _ = done.send(false);
            return Err(ConsumerError::InjectedCrash);
        }
        // Offsets are committed in batch order, or a later commit could cover an earlier
        // batch that never reached ClickHouse.
        let earlier_committed = match earlier {
            Some(rx) => rx.await.unwrap_or(false),
            None => true,
        };
        if !earlier_committed {
            let _ = done.send(false);
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        let topics = &self.config.kafka.topics;
        for (topic, partitions) in
            [(&topics.events, &batch.event_offsets), (&topics.exposures, &batch.exposure_offsets)]
        {
            for (partition, offset) in partitions {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))?;
            }
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
        let _ = done.send(true);
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
