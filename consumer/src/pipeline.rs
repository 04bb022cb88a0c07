//! Kafka -> ClickHouse, at least once into the table and exactly once in every count.
//!
//! Messages accumulate in one batch until it holds `consumer.batch_max_rows` rows or its
//! first row has waited `consumer.batch_max_wait`. A full batch goes to a writer task
//! (`writer`) that inserts the rows (retrying while ClickHouse is down, setting aside rows it
//! refuses for good) and then commits, per partition, the offset after the last message of
//! the batch, in batch order: a batch commits only after every earlier batch committed. Up
//! to `writer::WRITERS` batches are written while the next one fills; then reading waits,
//! so an outage stops consumption after a bounded amount. A crash between insert and commit
//! replays the batch; the tables collapse on the event id and the queries count each id
//! once, so a replay never counts twice. A message that reached neither ClickHouse nor the
//! DLQ (shutdown while the DLQ was down) is never committed past.

use std::{sync::Arc, time::Duration};

use clickhouse::Client;
use common::{
    config::Config,
    event::{DecodeError, EventEnvelope, ExposureEnvelope},
    shutdown::CancellationToken,
};
use futures::{FutureExt, StreamExt};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{BorrowedMessage, Message},
};

use crate::{
    batch::{Batch, Stream},
    dlq::{DeadLetters, Stage},
    lag,
    metrics::ConsumerMetrics,
    rebalance::{GroupContext, InFlight},
    rows::Source,
    writer::Writers,
};

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("Kafka")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("ClickHouse client")]
    ClickHouse(#[from] common::tls::SetupError),
    #[error("stopped by fault injection after an insert, before its commit")]
    InjectedCrash,
    #[error("a batch writer task failed: {0}")]
    Writer(String),
}

/// Test-only switches that simulate failures at the worst moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Return right after the first successful insert, without committing (as a process
    /// killed between the two would).
    pub crash_after_insert: bool,
    /// Every write to the DLQ fails (as when its brokers are down).
    pub dlq_unavailable: bool,
}

pub struct Pipeline {
    pub(crate) config: Config,
    pub(crate) consumer: Arc<StreamConsumer<GroupContext>>,
    pub(crate) in_flight: Arc<InFlight>,
    /// A group-less client of its own for watermarks and readiness probes (see `lag`).
    probe: Arc<rdkafka::consumer::BaseConsumer>,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) clickhouse: Client,
    pub(crate) metrics: ConsumerMetrics,
    pub(crate) faults: Faults,
}

impl Pipeline {
    pub fn new(config: Config, metrics: ConsumerMetrics) -> Result<Self, ConsumerError> {
        let in_flight = Arc::new(InFlight::default());
        let context = GroupContext {
            in_flight: in_flight.clone(),
            assigned: metrics.assigned_partitions.clone(),
            rebalances: metrics.rebalances.clone(),
        };
        let consumer = Arc::new(common::kafka::consumer(&config.kafka, context)?);
        let probe = Arc::new(common::kafka::reader(&config.kafka)?);
        let dead_letters = DeadLetters::new(config.clone(), metrics.clone())?;
        let clickhouse = common::clickhouse::client(&config.clickhouse)?;
        Ok(Self { config, consumer, in_flight, probe, dead_letters, clickhouse, metrics, faults: Faults::default() })
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.dead_letters.unavailable = faults.dlq_unavailable;
        self.faults = faults;
        self
    }

    /// A Kafka client for readiness probes (not the consumer's own connection).
    pub fn kafka(&self) -> Arc<rdkafka::consumer::BaseConsumer> {
        self.probe.clone()
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
        // The lag task ends with this run, however it ends (it holds the consumer, which
        // must be dropped, and so leave its group, when the run is over).
        let lag_stop = shutdown.child_token();
        let _lag_guard = lag_stop.clone().drop_guard();
        lag::spawn(self.consumer.clone(), self.probe.clone(), self.metrics.lag.clone(), lag_stop);
        let this = Arc::new(self);
        let mut batch = Batch::default();
        let mut writers = Writers::default();
        this.consume(&mut batch, &mut writers, &shutdown).await?;
        this.finish(batch, writers).await?;
        this.consumer.unsubscribe();
        tracing::info!("consumer stopped");
        Ok(())
    }

    /// The main loop: read, batch, hand full or old batches to writers, until shutdown.
    async fn consume(
        self: &Arc<Self>,
        batch: &mut Batch,
        writers: &mut Writers,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumerError> {
        let (max_rows, max_wait) = (self.config.consumer.batch_max_rows, self.config.consumer.batch_max_wait);
        // One message stream and one timer for the whole run: creating them per message
        // (a `recv()` registers a waker slot, a `sleep_until` a timer entry) cost more
        // than decoding the message.
        let mut stream = self.consumer.stream();
        let deadline = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = &mut deadline, if batch.started.is_some() => {
                    writers.start(self, std::mem::take(batch), shutdown).await?;
                }
                written = writers.oldest_done(), if writers.busy() => written?,
                received = stream.next() => match received {
                    Some(Ok(msg)) => {
                        let was_empty = batch.started.is_none();
                        self.take(batch, &msg, shutdown).await;
                        drop(msg);
                        // Take whatever librdkafka has already fetched without another
                        // round through `select!`.
                        while batch.rows() < max_rows {
                            match stream.next().now_or_never() {
                                Some(Some(Ok(msg))) => self.take(batch, &msg, shutdown).await,
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
                            writers.start(self, std::mem::take(batch), shutdown).await?;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    /// Shutdown: one last batch, then every writer in order; a writer gives up (and no
    /// later batch commits) if ClickHouse is down.
    async fn finish(self: &Arc<Self>, batch: Batch, mut writers: Writers) -> Result<(), ConsumerError> {
        let last = CancellationToken::new();
        let drain = async {
            if !batch.is_empty() {
                writers.start(self, batch, &last).await?;
            }
            writers.drain().await
        };
        match tokio::time::timeout(self.config.clickhouse.timeout, drain).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("final flush did not finish; its messages stay uncommitted and will be replayed");
                Ok(())
            }
        }
    }

    /// Decodes one message into the batch; an undecodable one goes to the DLQ.
    async fn take(&self, batch: &mut Batch, msg: &BorrowedMessage<'_>, shutdown: &CancellationToken) {
        let payload = msg.payload().unwrap_or_default();
        let source = Source { partition: msg.partition(), offset: msg.offset() };
        let stream = if msg.topic() == self.config.kafka.topics.events { Stream::Events } else { Stream::Exposures };
        let decoded: Result<(), DecodeError> = match stream {
            Stream::Events => EventEnvelope::decode(payload).map(|e| {
                let dropped = batch.events.push_event(&e, source);
                self.metrics.property_leaves_dropped.inc_by(dropped as u64);
            }),
            Stream::Exposures => ExposureEnvelope::decode(payload).map(|e| batch.exposures.push_exposure(&e, source)),
        };
        match decoded {
            Ok(()) => batch.done(stream, msg),
            Err(reason) if self.dead_letters.send(msg, Stage::Decode, &reason.to_string(), shutdown).await => {
                batch.done(stream, msg)
            }
            Err(_) => batch.hold(stream, msg),
        }
    }
}
