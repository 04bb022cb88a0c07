//! The consumer's metrics (see README "Metrics").

use common::metrics::{self as m, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// The consumer's metrics (see README "Metrics").
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub rows_inserted: IntCounterVec,
    pub batch_rows: Histogram,
    pub insert_seconds: Histogram,
    pub insert_failures: IntCounterVec,
    pub dlq_messages: IntCounter,
    pub property_leaves_dropped: IntCounter,
    pub dlq_failures: IntCounter,
    pub commits: IntCounter,
    pub commit_failures: IntCounter,
    pub lag: IntGaugeVec,
    pub assigned_partitions: IntGauge,
    pub rebalances: IntCounterVec,
}

impl ConsumerMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            rows_inserted: m::counter_vec(
                r,
                "abtest_consumer_rows_inserted_total",
                "Rows inserted into ClickHouse, by table",
                &["table"],
            ),
            batch_rows: m::histogram(
                r,
                "abtest_consumer_batch_rows",
                "Rows per flushed batch",
                &[1.0, 10.0, 100.0, 1e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5],
            ),
            insert_seconds: m::histogram(
                r,
                "abtest_consumer_insert_seconds",
                "Latency of one successful ClickHouse insert",
                m::LATENCY_BUCKETS,
            ),
            insert_failures: m::counter_vec(
                r,
                "abtest_consumer_insert_failures_total",
                "Failed ClickHouse inserts, by table and kind (transient: retried; rows: split to find the refused rows)",
                &["table", "kind"],
            ),
            dlq_messages: m::counter(
                r,
                "abtest_consumer_dlq_messages_total",
                "Messages sent to the DLQ topic (undecodable, or refused by ClickHouse)",
            ),
            property_leaves_dropped: m::counter(
                r,
                "abtest_consumer_property_leaves_dropped_total",
                "Scalar leaves of event properties beyond the 256 stored per event (not queryable by pointer)",
            ),
            dlq_failures: m::counter(
                r,
                "abtest_consumer_dlq_failures_total",
                "DLQ writes that failed (each is retried; the message is not committed past meanwhile)",
            ),
            commits: m::counter(r, "abtest_consumer_commits_total", "Offset commits after a successful insert"),
            commit_failures: m::counter(
                r,
                "abtest_consumer_commit_failures_total",
                "Offset commits that failed (the rows will be replayed and deduplicated)",
            ),
            lag: m::gauge_vec(
                r,
                "abtest_consumer_lag_messages",
                "Messages behind the high watermark over assigned partitions, by topic",
                &["topic"],
            ),
            assigned_partitions: m::gauge(
                r,
                "abtest_consumer_assigned_partitions",
                "Partitions of events and exposures this consumer owns now",
            ),
            rebalances: m::counter_vec(
                r,
                "abtest_consumer_rebalances_total",
                "Rebalances of the consumer group seen by this consumer, by kind (assign, revoke, error)",
                &["kind"],
            ),
        }
    }
}
