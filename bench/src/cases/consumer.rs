//! The consumer: draining a backlog against the slower of its two halves done raw.
//!
//! A backlog of envelopes is produced with lz4 to a topic of its own and checked present
//! (watermarks) before timing, on the stack's broker (nisshi) or, with `BENCH_BROKER=mock`,
//! on a mock cluster of the devbroker, which keeps at most 100 000 messages and 5 MiB per
//! partition and drops older ones (hence the many partitions).
//!
//! - Baseline "raw consumption" ([`raw_consume`]): a `BaseConsumer` reading every message
//!   (fetch.queue.backoff.ms=20 like the consumer), timed from the first message.
//! - Baseline "raw insert" ([`raw_insert`]): the same rows (decoded beforehand) inserted with
//!   the `clickhouse` crate in RowBinary, 1 M rows per insert, into a copy of `events` with
//!   a copy of the rollup's view into `events_recent` (the same writes as into `events`).
//! - Subject: a separate instance of the release `consumer` binary (stack config, own group
//!   and topic), rate from its rows-inserted metric between the first and the last
//!   observation (the group join is not timed), compared with the slower baseline.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use common::config::Config;
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    producer::{BaseRecord, Producer, ThreadedProducer},
};

mod raw;

use raw::{raw_consume, raw_insert};

use super::{envelopes, step, Peaks, Run, Sizes};
use crate::{
    stack::{self, Stack},
    Line, Report,
};

/// The backlog the consumer drains: `n` envelopes of `event_type` on `topic`, `bytes` in all.
struct Backlog {
    n: usize,
    topic: String,
    event_type: String,
    bytes: usize,
}

/// The rates of the two baselines.
struct Baselines {
    consume_rate: f64,
    insert_rate: f64,
}

/// What the consumer instance did: the first observation of its rows-inserted metric with
/// rows, the last one (all rows in), and the CPU and insert facts of the drain.
struct Drained {
    first: Option<(Instant, f64)>,
    last: (Instant, f64),
    facts: String,
}

/// The processes whose CPU time the drain reports, by name.
type CpuPids<'a> = [(&'a str, Option<u32>); 3];

pub(super) async fn drain(run: &mut Run) -> anyhow::Result<()> {
    let Run { s, config, sizes, run_id, report, peaks } = run;
    let (backlog, payloads) = prepare_backlog(s, config, sizes, run_id).await?;
    let baselines = measure_baselines(s, config, &backlog, run_id, payloads).await?;
    let drained = run_consumer(s, &backlog, run_id, peaks).await?;
    write_report(s, sizes, &backlog, &baselines, drained, report).await
}

/// Creates the topics, fills the backlog and checks that all of it is present.
async fn prepare_backlog(
    s: &Stack,
    config: &Config,
    sizes: &Sizes,
    run_id: &str,
) -> anyhow::Result<(Backlog, Arc<Vec<Vec<u8>>>)> {
    let n = sizes.backlog;
    let topic = format!("bench_drain_{run_id}");
    let event_type = format!("bench_drain_{run_id}");
    s.create_topic(&topic, sizes.partitions).await?;
    s.create_topic(&format!("{topic}_exp"), 1).await?;
    s.create_topic(&format!("{topic}_dlq"), 1).await?;
    step(&format!("consumer: filling {topic} with {n} events ({} partitions)", sizes.partitions));
    let payloads = Arc::new(envelopes(n, &event_type, 100_000));
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    fill(&config.kafka.brokers.bootstrap(), &topic, payloads.clone()).await?;
    let (present, dropped) = watermarks(&config.kafka.brokers.bootstrap(), &topic, sizes.partitions).await?;
    if present != n as i64 || dropped != 0 {
        bail!("the backlog is not fully present: {present} of {n} messages, low watermarks sum {dropped}");
    }
    eprintln!("    backlog present: {present} messages, {} MiB of envelopes", bytes >> 20);
    Ok((Backlog { n, topic, event_type, bytes }, payloads))
}

/// Raw consumption of the backlog, then the raw insert of its rows; the payloads are freed
/// before the consumer runs.
async fn measure_baselines(
    s: &Stack,
    config: &Config,
    backlog: &Backlog,
    run_id: &str,
    payloads: Arc<Vec<Vec<u8>>>,
) -> anyhow::Result<Baselines> {
    step("consumer: raw consumption baseline");
    let consume_rate = raw_consume(&config.kafka.brokers.bootstrap(), &backlog.topic, backlog.n, run_id).await?;
    eprintln!("    raw consumption: {consume_rate:.0} msgs/s");

    step("consumer: raw RowBinary insert baseline");
    let insert_rate = raw_insert(s, config, &payloads).await?;
    eprintln!("    raw insert: {insert_rate:.0} rows/s");
    drop(payloads);
    Ok(Baselines { consume_rate, insert_rate })
}

/// Runs a consumer instance of its own on the backlog until all rows are inserted.
async fn run_consumer(s: &Stack, backlog: &Backlog, run_id: &str, peaks: &mut Peaks) -> anyhow::Result<Drained> {
    step("consumer: draining the backlog with the consumer binary");
    let topic = &backlog.topic;
    let addr = stack::free_port()?;
    let mut consumer = s.spawn(
        "consumer",
        &[
            ("ABTEST_CONSUMER__LISTEN", addr.to_string()),
            ("ABTEST_KAFKA__TOPICS__EVENTS", topic.clone()),
            ("ABTEST_KAFKA__TOPICS__EXPOSURES", format!("{topic}_exp")),
            ("ABTEST_KAFKA__TOPICS__DLQ", format!("{topic}_dlq")),
            ("ABTEST_KAFKA__GROUP_ID", format!("bench-drain-{run_id}")),
        ],
    )?;
    s.wait_ready(addr, Duration::from_secs(30)).await?;
    let cpu_pids: CpuPids =
        [("consumer", Some(consumer.pid())), ("clickhouse", s.pid("clickhouse")), (s.broker_name(), s.broker_pid())];
    let cpu_before: Vec<Option<f64>> = cpu_pids.iter().map(|(_, p)| p.and_then(stack::cpu_seconds)).collect();
    let (first, last) = wait_for_rows(s, addr, backlog.n).await?;
    let wall = first.map_or(0.0, |(t0, _)| (last.0 - t0).as_secs_f64());
    let drain_facts = cpu_and_insert_facts(s, addr, &cpu_pids, &cpu_before, wall).await;
    eprintln!("    {drain_facts}");
    if let Some(kib) = consumer.peak_rss_kib() {
        peaks.push(("consumer (bench instance)".into(), kib));
    }
    consumer.stop();
    Ok(Drained { first, last, facts: drain_facts })
}

/// Polls the consumer's rows-inserted metric until it reaches `n`, within a deadline that
/// grows with `n`: the first observation with rows and the last one.
async fn wait_for_rows(
    s: &Stack,
    addr: SocketAddr,
    n: usize,
) -> anyhow::Result<(Option<(Instant, f64)>, (Instant, f64))> {
    // Only the events table receives rows in this case.
    let key = "abtest_consumer_rows_inserted_total";
    let deadline = Instant::now() + Duration::from_secs(60 + (n / 2000) as u64);
    let mut first: Option<(Instant, f64)> = None;
    let mut last_print = Instant::now();
    let last = loop {
        let rows = s.metric(addr, key).await.unwrap_or(0.0);
        let now = Instant::now();
        if rows > 0.0 && first.is_none() {
            first = Some((now, rows));
        }
        if rows >= n as f64 {
            break (now, rows);
        }
        if now > deadline {
            bail!("the consumer inserted only {rows} of {n} rows in time");
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("    consumer: {rows} of {n} rows");
            last_print = now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok((first, last))
}

/// The CPU each process used since `cpu_before` and the consumer's insert metrics.
async fn cpu_and_insert_facts(
    s: &Stack,
    addr: SocketAddr,
    cpu_pids: &CpuPids<'_>,
    cpu_before: &[Option<f64>],
    wall: f64,
) -> String {
    let cpu: Vec<String> = cpu_pids
        .iter()
        .zip(cpu_before)
        .filter_map(|((name, pid), before)| {
            let used = pid.and_then(stack::cpu_seconds)? - (*before)?;
            Some(format!("{name} {used:.1} s"))
        })
        .collect();
    let inserts = s.metric(addr, "abtest_consumer_insert_seconds_count").await.unwrap_or(0.0);
    let insert_secs = s.metric(addr, "abtest_consumer_insert_seconds_sum").await.unwrap_or(0.0);
    format!(
        "CPU used while draining (from the consumer's start, {wall:.1} s of timed drain): {}; {inserts:.0} inserts \
         taking {insert_secs:.1} s in total",
        cpu.join(", ")
    )
}

/// The consumer's rate against the slower baseline, the events stored, and the note.
async fn write_report(
    s: &Stack,
    sizes: &Sizes,
    backlog: &Backlog,
    baselines: &Baselines,
    drained: Drained,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Backlog { n, ref topic, ref event_type, bytes } = *backlog;
    let Baselines { consume_rate, insert_rate } = *baselines;
    let Drained { first, last, facts: drain_facts } = drained;
    let (t0, r0) = first.context("no rows")?;
    let rate = (last.1 - r0) / (last.0 - t0).as_secs_f64().max(1e-3);
    let stored = s.ch_u64(&format!("SELECT uniqExact(event_id) FROM events WHERE type = '{event_type}'")).await?;
    let slower = consume_rate.min(insert_rate);
    let ratio = rate / slower;
    report.line(
        Line::new(
            format!("consumer{}", s.on_broker()),
            format!("{rate:.0} rows/s ({stored} of {n} distinct events stored)"),
        )
        .baseline(format!("raw RowBinary insert {insert_rate:.0} rows/s; raw consumption {consume_rate:.0} msgs/s"))
        .ratio(ratio)
        .target(">= 0.7 of the slower", Some(ratio >= 0.7 && stored == n as u64)),
    );
    report.note(format!(
        "consumer: {n} envelopes ({} MiB) produced with lz4 to `{topic}` ({} partitions) and checked present \
         (watermarks) before timing, on {}; the broker uses CPU of the same 2 cores while serving fetches. Raw consumption: a BaseConsumer reading every \
         message (fetch.queue.backoff.ms=20 like the consumer), timed from the first message. Raw insert: the same rows (decoded beforehand) inserted with the \
         `clickhouse` crate in RowBinary, 1 M rows per insert, into a copy of `events` with a copy of the rollup's \
         materialized view (`events_recent`): the same writes as an insert into `events`. Consumer: a separate \
         instance of the release `consumer` binary (stack config, own group and topic), rate from its rows-inserted \
         metric between the first and the last observation (the group join is not timed). {drain_facts}.",
        bytes >> 20,
        sizes.partitions,
        if s.mock.is_some() {
            "a mock cluster of the devbroker (librdkafka's in-memory broker, BENCH_BROKER=mock), which keeps at most \
             100 000 messages and 5 MiB per partition (hence the many partitions)"
        } else {
            "the stack's broker (nisshi, SQLite storage)"
        }
    ));
    Ok(())
}

async fn fill(brokers: &str, topic: &str, payloads: Arc<Vec<Vec<u8>>>) -> anyhow::Result<()> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("compression.type", "lz4")
            .set("linger.ms", "50")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .create()?;
        let started = Instant::now();
        for (i, p) in payloads.iter().enumerate() {
            let key = format!("u{}", i % 100_000);
            loop {
                match producer.send(BaseRecord::<[u8], [u8]>::to(&topic).key(key.as_bytes()).payload(p.as_slice())) {
                    Ok(()) => break,
                    Err((rdkafka::error::KafkaError::MessageProduction(_), _)) => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
            if i > 0 && i % 500_000 == 0 {
                eprintln!("    filled {i} in {:.0} s", started.elapsed().as_secs_f64());
            }
        }
        producer.flush(Duration::from_secs(120))?;
        Ok(())
    })
    .await?
}

async fn watermarks(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<(i64, i64)> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(i64, i64)> {
        let c: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", "bench-watermarks").create()?;
        let (mut present, mut dropped) = (0, 0);
        for p in 0..partitions {
            let (low, high) = c.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            present += high - low;
            dropped += low;
        }
        Ok((present, dropped))
    })
    .await?
}
