//! Partitions moving between the consumers of one group (cooperative-sticky: only the
//! partitions that move are revoked). Before partitions are taken away, the batches
//! already handed to writers finish inserting and committing, so the new owner replays at
//! most the one batch that was still filling.

use std::{
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};

use common::metrics::{IntCounterVec, IntGauge};
use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance},
    ClientContext,
};

/// How long a revocation waits for the writers at most.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Batches being written (inserted, not yet committed or given up).
#[derive(Default)]
pub(crate) struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

/// Held by a writer while its batch is in flight.
pub(crate) struct Writing(Arc<InFlight>);

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>) -> Writing {
        if let Ok(mut n) = self.count.lock() {
            *n += 1;
        }
        Writing(self.clone())
    }

    /// Blocks until no batch is in flight, at most `timeout`; `false` on timeout.
    fn wait_idle(&self, timeout: Duration) -> bool {
        let Ok(n) = self.count.lock() else { return false };
        self.idle.wait_timeout_while(n, timeout, |n| *n > 0).is_ok_and(|(_, t)| !t.timed_out())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.count.lock() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.0.idle.notify_all();
            }
        }
    }
}

pub struct GroupContext {
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) assigned: IntGauge,
    pub(crate) rebalances: IntCounterVec,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else { return };
        tracing::info!(partitions = partitions.count(), "partitions revoked: letting in-flight batches commit first");
        // The callback runs inside the read loop's poll. On a multi-threaded runtime the
        // writers keep running on the other workers while this one waits; on a
        // single-threaded one (some tests) they could not, so it does not wait there.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread && !tokio::task::block_in_place(|| self.in_flight.wait_idle(DRAIN_TIMEOUT)) {
            tracing::warn!("in-flight batches did not commit before the revocation; they will be replayed");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let kind = match rebalance {
            Rebalance::Assign(p) => {
                tracing::info!(partitions = p.count(), "partitions assigned");
                "assign"
            }
            Rebalance::Revoke(_) => "revoke",
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                "error"
            }
        };
        self.rebalances.with_label_values(&[kind]).inc();
        if let Ok(assignment) = consumer.assignment() {
            self.assigned.set(assignment.count() as i64);
        }
    }
}
