//! The exposure relay: sends the exposures the assignments committed to the outbox
//! (`exposure_outbox`) to Kafka, in batches, and deletes what Kafka acknowledged.
//!
//! Each api instance runs one relay; several share the work (`FOR UPDATE SKIP LOCKED`). A
//! batch is deleted only after Kafka acknowledged all of it, in the same transaction that
//! locked it: a crash in between sends it again (the exposures table keeps one row per
//! user and experiment, the earliest, so a resent exposure changes nothing). While Kafka or
//! Postgres is down the relay retries with backoff; nothing waiting is lost.

use std::time::{Duration, Instant};

use common::{
    event::ExposureEnvelope,
    kafka::{Message, Sink},
    metrics::{self, Registry},
    shutdown::CancellationToken,
};
use sqlx::PgPool;

use crate::storage::{postgres as pg, StorageError};

/// Most exposures sent in one batch.
const BATCH: i64 = 1000;
/// How often an idle relay looks for new exposures.
const POLL: Duration = Duration::from_millis(25);
/// Longest wait between attempts while Kafka or Postgres fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("outbox")]
    Storage(#[from] StorageError),
    #[error("Kafka")]
    Kafka(#[from] common::kafka::SendError),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Storage(e.into())
    }
}

pub struct Relay {
    db: PgPool,
    sink: Sink,
    topic: String,
    relayed: metrics::IntCounter,
    failures: metrics::IntCounter,
    waiting: metrics::IntGauge,
    oldest_seconds: metrics::IntGauge,
}

impl Relay {
    pub fn new(db: PgPool, sink: Sink, topic: String, r: &Registry) -> Self {
        Self {
            db,
            sink,
            topic,
            relayed: metrics::counter(r, "abtest_exposures_relayed_total", "Exposures sent from the outbox to Kafka"),
            failures: metrics::counter(
                r,
                "abtest_exposure_relay_failures_total",
                "Relay batches that failed (retried)",
            ),
            waiting: metrics::gauge(r, "abtest_exposure_outbox_messages", "Exposures committed, not yet in Kafka"),
            oldest_seconds: metrics::gauge(
                r,
                "abtest_exposure_outbox_lag_seconds",
                "Age of the oldest exposure not yet in Kafka (0 when none waits)",
            ),
        }
    }

    /// Relays until `shutdown`; refreshes the backlog gauges about once a second.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failed_in_a_row = 0u32;
        let mut gauges_at = Instant::now() - Duration::from_secs(1);
        loop {
            let wait = match self.relay_batch().await {
                Ok(sent) => {
                    failed_in_a_row = 0;
                    if sent as i64 == BATCH {
                        Duration::ZERO
                    } else {
                        POLL
                    }
                }
                Err(e) => {
                    self.failures.inc();
                    failed_in_a_row += 1;
                    let wait = (Duration::from_millis(100) * 2u32.saturating_pow(failed_in_a_row)).min(MAX_BACKOFF);
                    tracing::warn!(error = %server::error::Chain(&e), retry_in = ?wait, "exposure relay failed");
                    wait
                }
            };
            if gauges_at.elapsed() >= Duration::from_secs(1) {
                gauges_at = Instant::now();
                if let Ok((n, age)) = pg::outbox_backlog(&self.db).await {
                    self.waiting.set(n);
                    self.oldest_seconds.set(age.ceil() as i64);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends one batch and deletes it; how many were sent.
    async fn relay_batch(&self) -> Result<usize, RelayError> {
        let mut tx = self.db.begin().await?;
        let batch = pg::claim_exposures(&mut tx, BATCH).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let payloads: Vec<Vec<u8>> = batch.iter().map(envelope).collect();
        let messages: Vec<Message<&[u8]>> = batch
            .iter()
            .zip(&payloads)
            .map(|(e, p)| Message {
                key: e.user_id.as_bytes(),
                payload: p.as_slice(),
                request_id: e.request_id.as_deref(),
            })
            .collect();
        self.sink.send_all(&self.topic, &messages).await?;
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        pg::forget_exposures(&mut tx, &ids).await?;
        tx.commit().await?;
        self.relayed.inc_by(batch.len() as u64);
        Ok(batch.len())
    }
}

fn envelope(e: &pg::QueuedExposure) -> Vec<u8> {
    let exposed_at_ms = e.exposed_at.timestamp_millis();
    let mut envelope =
        ExposureEnvelope::new(e.experiment_id, e.variant.as_str().into(), e.user_id.as_str().into(), exposed_at_ms);
    envelope.forced = e.forced;
    let attributes = e.attributes.iter().flat_map(|a| a.0.iter());
    envelope.attributes = attributes.map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect();
    envelope.encode()
}
