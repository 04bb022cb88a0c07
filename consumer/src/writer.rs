//! Writing a batch: insert its rows (retrying what can succeed later, setting aside rows
//! ClickHouse refuses for good), then commit its offsets in batch order.

use std::{collections::VecDeque, time::Instant};

use common::{clickhouse::Failure, shutdown::CancellationToken};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    Offset, TopicPartitionList,
};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    backoff::Backoff,
    batch::{Batch, Stream},
    pipeline::{ConsumerError, Pipeline},
    rows::{Rows, Table, EVENTS, EXPOSURES},
};

/// How many batches may be inserting (and then committing, in order) while the next one
/// fills. While ClickHouse is down this bounds what is consumed ahead: the reader stops
/// when this many batches wait for their insert.
pub(crate) const WRITERS: usize = 2;

type Task = JoinHandle<Result<(), ConsumerError>>;

/// Batches being written in the background, oldest first.
#[derive(Default)]
pub(crate) struct Writers {
    tasks: VecDeque<Task>,
    /// Resolves once the newest batch is committed (`true`) or was given up (`false`).
    newest: Option<oneshot::Receiver<bool>>,
}

impl Writers {
    pub(crate) fn busy(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Waits for the oldest writer (forever when there is none: for `select!`).
    pub(crate) async fn oldest_done(&mut self) -> Result<(), ConsumerError> {
        let result = match self.tasks.front_mut() {
            Some(task) => task.await.unwrap_or_else(|e| Err(ConsumerError::Writer(e.to_string()))),
            None => std::future::pending().await,
        };
        self.tasks.pop_front();
        result
    }

    /// Starts writing `batch` once fewer than [`WRITERS`] are busy.
    pub(crate) async fn start(
        &mut self,
        pipeline: &std::sync::Arc<Pipeline>,
        batch: Batch,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumerError> {
        while self.tasks.len() >= WRITERS {
            self.oldest_done().await?;
        }
        let (done, newest) = oneshot::channel();
        let earlier = self.newest.replace(newest);
        let (pipeline, shutdown) = (pipeline.clone(), shutdown.clone());
        // In flight until written (or given up): a revocation waits for it (`rebalance`).
        let writing = pipeline.in_flight.enter();
        self.tasks.push_back(tokio::spawn(async move {
            let written = pipeline.write(batch, earlier, done, &shutdown).await;
            drop(writing);
            written
        }));
        Ok(())
    }

    /// Waits for every writer, oldest first.
    pub(crate) async fn drain(&mut self) -> Result<(), ConsumerError> {
        while self.busy() {
            self.oldest_done().await?;
        }
        Ok(())
    }
}

impl Pipeline {
    /// Inserts the batch, then, once every earlier batch is committed, commits its offsets.
    /// Commits nothing when shut down before the rows are in (or in the DLQ), nor after an
    /// earlier batch gave up.
    pub(crate) async fn write(
        &self,
        batch: Batch,
        earlier: Option<oneshot::Receiver<bool>>,
        done: oneshot::Sender<bool>,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumerError> {
        self.metrics.batch_rows.observe(batch.rows() as f64);
        let topics = &self.config.kafka.topics;
        let inserted = self.insert(EVENTS, &topics.events, &batch.events, shutdown).await
            && self.insert(EXPOSURES, &topics.exposures, &batch.exposures, shutdown).await;
        if !inserted {
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
        if earlier_committed {
            self.commit(&batch).await?;
        }
        let _ = done.send(earlier_committed);
        Ok(())
    }

    async fn commit(&self, batch: &Batch) -> Result<(), ConsumerError> {
        let mut offsets = TopicPartitionList::new();
        let topics = &self.config.kafka.topics;
        for (topic, stream) in [(&topics.events, Stream::Events), (&topics.exposures, Stream::Exposures)] {
            for (partition, offset) in batch.commit_offsets(stream) {
                offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
            }
        }
        if offsets.count() == 0 {
            return Ok(());
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
        Ok(())
    }

    /// Inserts `rows`. Transient failures are retried with backoff; when ClickHouse refuses
    /// rows for good, the batch is split in halves until the refused rows are found, and
    /// those go to the DLQ. `false` when shut down before everything was in.
    async fn insert(&self, table: Table, topic: &str, rows: &Rows, shutdown: &CancellationToken) -> bool {
        // Ranges of rows still to insert, the next one last.
        let mut pending = Vec::with_capacity(16);
        pending.push(0..rows.len());
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            let mut backoff = Backoff::new(self.config.consumer.retry_max_backoff);
            loop {
                let started = Instant::now();
                let Err(e) = self.try_insert(table, rows.bytes(range.clone())).await else {
                    self.metrics.insert_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.rows_inserted.with_label_values(&[table.name]).inc_by(range.len() as u64);
                    break;
                };
                let failure = common::clickhouse::classify(&e);
                self.metrics.insert_failures.with_label_values(&[table.name, failure.label()]).inc();
                match failure {
                    Failure::Rows if range.len() == 1 => {
                        let reason = format!("ClickHouse refused the row: {e}");
                        if !self.dead_letters.send_row(topic, rows.source(range.start), &reason, shutdown).await {
                            return false;
                        }
                        break;
                    }
                    Failure::Rows => {
                        let middle = range.start + range.len() / 2;
                        tracing::warn!(table = table.name, rows = range.len(), error = %e, "ClickHouse refused rows; splitting the batch to find them");
                        pending.push(middle..range.end);
                        pending.push(range.start..middle);
                        break;
                    }
                    Failure::Transient => {
                        tracing::warn!(table = table.name, rows = range.len(), error = %e, "ClickHouse insert failed; retrying");
                        if !backoff.wait(shutdown).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    async fn try_insert(&self, table: Table, rowbinary: &[u8]) -> clickhouse::error::Result<()> {
        crate::rows::insert(&self.clickhouse, table, rowbinary, self.config.clickhouse.timeout).await
    }
}
