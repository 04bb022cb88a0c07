//! The lag gauge, refreshed by a task of its own: it keeps moving while the pipeline waits
//! for ClickHouse (a lag that freezes during an outage would hide the outage).

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::{metrics::IntGaugeVec, shutdown::CancellationToken};

use crate::rebalance::GroupContext;
use rdkafka::{
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    Offset,
};

/// How often the lag is measured.
pub(crate) const INTERVAL: Duration = Duration::from_secs(2);

/// How long a watermark query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Measures the lag every [`INTERVAL`] until `shutdown`. Watermarks are asked for over a
/// client of their own: queued on the consumer's connection, behind its long-polling
/// fetches, short-lived queries time out and make librdkafka drop that connection, and
/// after a broker restart the queries piled up meanwhile would do so again and again.
pub(crate) fn spawn(
    consumer: Arc<StreamConsumer<GroupContext>>,
    watermarks: Arc<BaseConsumer>,
    gauge: IntGaugeVec,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let (consumer, watermarks, gauge) = (consumer.clone(), watermarks.clone(), gauge.clone());
            let _ = tokio::task::spawn_blocking(move || observe(&consumer, &watermarks, &gauge)).await;
        }
    });
}

/// Lag per topic: high watermarks minus current positions over the assigned partitions
/// (blocking calls to the brokers; the positions are the consumer's own, known locally).
fn observe(consumer: &StreamConsumer<GroupContext>, watermarks: &BaseConsumer, gauge: &IntGaugeVec) {
    let Ok(positions) = consumer.position() else { return };
    let mut lag: HashMap<String, i64> = HashMap::new();
    for p in positions.elements() {
        let Ok((_, high)) = watermarks.fetch_watermarks(p.topic(), p.partition(), QUERY_TIMEOUT) else {
            continue;
        };
        let behind = match p.offset() {
            Offset::Offset(pos) => (high - pos).max(0),
            // Nothing consumed yet on this partition.
            _ => 0,
        };
        *lag.entry(p.topic().to_owned()).or_default() += behind;
    }
    for (topic, behind) in lag {
        gauge.with_label_values(&[&topic]).set(behind);
    }
}
