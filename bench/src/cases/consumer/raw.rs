//! The consumer case's two baselines: raw consumption of the backlog and the raw insert of
//! its rows.

use std::time::{Duration, Instant};

use anyhow::bail;
use common::{config::Config, event::EventEnvelope};
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    Message,
};

use crate::stack::Stack;

pub(super) async fn raw_consume(brokers: &str, topic: &str, n: usize, run_id: &str) -> anyhow::Result<f64> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    let group = format!("bench-raw-{run_id}");
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            // The consumer's own fetch setting (common::kafka::consumer), so the baseline is
            // not held back by librdkafka's 1 s default either.
            .set("fetch.queue.backoff.ms", "20")
            .create()?;
        c.subscribe(&[&topic])?;
        let deadline = Instant::now() + Duration::from_secs(120 + (n / 5000) as u64);
        let mut seen = 0usize;
        let mut bytes = 0usize;
        let mut first = None;
        while seen < n {
            if Instant::now() > deadline {
                bail!("raw consumption read {seen} of {n}");
            }
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m?;
                first.get_or_insert_with(Instant::now);
                bytes += m.payload().map_or(0, <[u8]>::len);
                seen += 1;
            }
        }
        let secs = first.map_or(1e-3, |t| t.elapsed().as_secs_f64());
        std::hint::black_box(bytes);
        Ok(seen as f64 / secs)
    })
    .await?
}

/// A row of `events` for the `clickhouse` crate's own typed insert (the baseline).
#[derive(clickhouse::Row, serde::Serialize)]
struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: uuid::Uuid,
    user_id: String,
    r#type: String,
    timestamp: u32,
    received_at: u32,
    properties: String,
    prop_keys: Vec<String>,
    prop_values: Vec<String>,
    num_keys: Vec<String>,
    num_values: Vec<f64>,
    props_v: u8,
}

impl From<EventEnvelope<'_>> for EventRow {
    /// The row the consumer writes, its properties' leaves included (computed before the
    /// clock starts: the baseline is the insert alone).
    fn from(e: EventEnvelope<'_>) -> Self {
        let (leaves, _) = common::event::properties::leaves(e.properties.get());
        let numbers: Vec<(String, f64)> = leaves.iter().filter_map(|l| Some((l.pointer.clone(), l.number?))).collect();
        Self {
            event_id: e.event_id,
            user_id: e.user_id.into_owned(),
            r#type: e.event_type.into_owned(),
            timestamp: (e.timestamp_ms / 1000) as u32,
            received_at: (e.received_at_ms / 1000) as u32,
            properties: common::event::compact_json(e.properties.get()),
            prop_keys: leaves.iter().map(|l| l.pointer.clone()).collect(),
            prop_values: leaves.into_iter().map(|l| l.text).collect(),
            num_keys: numbers.iter().map(|n| n.0.clone()).collect(),
            num_values: numbers.iter().map(|n| n.1).collect(),
            props_v: 1,
        }
    }
}

pub(super) async fn raw_insert(s: &Stack, config: &Config, payloads: &[Vec<u8>]) -> anyhow::Result<f64> {
    let rows: Vec<EventRow> = payloads
        .iter()
        .map(|p| EventEnvelope::decode(p).map(Into::into))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A copy of `events` with what an insert into `events` also writes: the rollup's view
    // into a copy of `events_recent` (clickhouse/006_rollup.sql).
    for sql in RAW_DROP.iter().chain(RAW_CREATE) {
        s.ch(sql).await?;
    }
    let client = common::clickhouse::client(&config.clickhouse)?;
    let started = Instant::now();
    for chunk in rows.chunks(1 << 20) {
        let mut insert = client.insert::<EventRow>("bench_raw_events").await?;
        for row in chunk {
            insert.write(row).await?;
        }
        insert.end().await?;
    }
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let stored = s.ch_u64("SELECT count() FROM bench_raw_events").await?;
    if stored != rows.len() as u64 {
        bail!("raw insert stored {stored} of {} rows", rows.len());
    }
    for sql in RAW_DROP {
        s.ch(sql).await?;
    }
    Ok(rate)
}

const RAW_DROP: &[&str] = &[
    "DROP TABLE IF EXISTS bench_raw_events_mv",
    "DROP TABLE IF EXISTS bench_raw_events_recent",
    "DROP TABLE IF EXISTS bench_raw_events",
];

const RAW_CREATE: &[&str] = &[
    "CREATE TABLE bench_raw_events AS events",
    "CREATE TABLE bench_raw_events_recent AS events_recent",
    "CREATE MATERIALIZED VIEW bench_raw_events_mv TO bench_raw_events_recent AS \
     SELECT type, inserted_at, user_id, event_id, timestamp, properties, prop_keys, prop_values, num_keys, num_values, \
     props_v FROM bench_raw_events",
];
