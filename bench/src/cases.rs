//! The cases of issue #5, each next to its baseline.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use axum::{http::StatusCode, routing::post, Json, Router};
use bytes::Bytes;
use common::{config::Config, event::EventEnvelope};
use futures::future::join_all;
use hyper::Method;
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    producer::{BaseRecord, FutureRecord, Producer, ThreadedProducer},
    Message,
};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    load::{self, Load, MakeRequest},
    stack::{self, Stack},
    Line, Options, Report,
};

const PROPERTIES: &str = r#"{"plan":"pro","value":12.5,"page":"/checkout"}"#;
const CONNS: usize = 64;

struct Sizes {
    warmup: Duration,
    http_secs: Duration,
    batch_conns: usize,
    backlog: usize,
    partitions: i32,
    fresh_rate: u32,
    fresh_secs: u64,
    results: [(u64, u64); 2],
    result_reps: usize,
    repeat_pool: i64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup: Duration::from_millis(500),
                http_secs: Duration::from_secs(3),
                batch_conns: 4,
                backlog: 200_000,
                partitions: 16,
                fresh_rate: 200,
                fresh_secs: 4,
                results: [(10_000, 100_000), (1_000, 10_000)],
                result_reps: 3,
                repeat_pool: 10_000,
            }
        } else {
            Self {
                warmup: Duration::from_secs(2),
                http_secs: Duration::from_secs(15),
                batch_conns: 4,
                backlog: 2_000_000,
                partitions: 64,
                fresh_rate: 1000,
                fresh_secs: 20,
                results: [(1_000_000, 10_000_000), (100_000, 1_000_000)],
                result_reps: 5,
                repeat_pool: 100_000,
            }
        }
    }

    fn load(&self, conns: usize) -> Load {
        Load { conns, warmup: self.warmup, duration: self.http_secs }
    }
}

fn step(what: &str) {
    eprintln!("==> {} {what}", chrono::Utc::now().format("%H:%M:%S"));
}

/// Peak RSS of the extra instances the bench started, by binary.
type Peaks = Vec<(String, u64)>;

pub async fn run_all(opts: &Options) -> anyhow::Result<Report> {
    let config = Config::load().context("configuration (run through scripts/bench)")?;
    let s = Stack::from_env(&config)?;
    let sizes = Sizes::new(opts.quick);
    let run_id = format!("{:x}", chrono::Utc::now().timestamp());
    let mut report = Report::default();
    let mut peaks: Peaks = Vec::new();
    report.note(format!(
        "Load generator: `abtest-bench`'s own closed-loop HTTP/1.1 client (hyper): {CONNS} keep-alive connections, \
         each sends its next request when the previous answer is read; latency from send to last body byte, \
         percentiles over every request of the measured window ({} s after {} s warm-up). It shares the 2 cores \
         with the server under test, for the subject and its baseline alike.",
        sizes.http_secs.as_secs(),
        sizes.warmup.as_secs_f64()
    ));
    if opts.wants("ingest") {
        ingest(&s, &config, &sizes, &run_id, &mut report, &mut peaks).await.context("ingest cases")?;
    }
    if opts.wants("consumer") {
        drain(&s, &config, &sizes, &run_id, &mut report, &mut peaks).await.context("consumer case")?;
    }
    if opts.wants("freshness") {
        freshness(&s, &sizes, &run_id, &mut report).await.context("freshness case")?;
    }
    if opts.wants("results") {
        results(&s, &config, &sizes, &mut report).await.context("results case")?;
    }
    if opts.wants("assignment") {
        assignment(&s, &config, &sizes, &run_id, &mut report, &mut peaks).await.context("assignment case")?;
    }
    memory(&s, &peaks, &mut report);
    Ok(report)
}

// --- ingest -------------------------------------------------------------------------------

/// The baseline of "ingest single": what axum alone costs for the same request and answer.
pub async fn bare_server(addr: SocketAddr) -> anyhow::Result<()> {
    async fn accept(_body: Bytes) -> (StatusCode, Json<serde_json::Value>) {
        (StatusCode::ACCEPTED, Json(serde_json::json!({ "accepted": 1 })))
    }
    let app = Router::new().route("/events", post(accept)).route("/events/batch", post(accept));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).with_graceful_shutdown(common::shutdown::signal()).await?;
    Ok(())
}

fn single_body(conn: usize, seq: u64) -> Bytes {
    Bytes::from(format!(r#"{{"user_id":"u{conn}-{seq}","type":"bench_single","properties":{PROPERTIES}}}"#))
}

fn batch_body(n: usize) -> Bytes {
    let events: Vec<String> =
        (0..n).map(|i| format!(r#"{{"user_id":"u{i}","type":"bench_batch","properties":{PROPERTIES}}}"#)).collect();
    Bytes::from(format!("[{}]", events.join(",")))
}

fn envelopes(n: usize, event_type: &str, user_mod: usize) -> Vec<Vec<u8>> {
    let props: Box<RawValue> = RawValue::from_string(PROPERTIES.to_owned()).unwrap_or_else(|_| unreachable!());
    let now = chrono::Utc::now().timestamp_millis();
    (0..n)
        .map(|i| {
            let user = format!("u{}", i % user_mod);
            EventEnvelope {
                v: common::event::ENVELOPE_VERSION,
                event_id: Uuid::now_v7(),
                user_id: user.as_str().into(),
                event_type: event_type.into(),
                timestamp_ms: now,
                received_at_ms: now,
                properties: &props,
            }
            .encode()
        })
        .collect()
}

async fn ingest(
    s: &Stack,
    config: &Config,
    sizes: &Sizes,
    run_id: &str,
    report: &mut Report,
    peaks: &mut Peaks,
) -> anyhow::Result<()> {
    let topic = format!("bench_ingest_{run_id}");
    s.create_topic(&topic, config.kafka.topic_partitions).await?;
    let addr = stack::free_port()?;
    let mut ingest = s.spawn(
        "ingest",
        &[("ABTEST_INGEST__LISTEN", addr.to_string()), ("ABTEST_KAFKA__TOPICS__EVENTS", topic.clone())],
    )?;
    s.wait_ready(addr, Duration::from_secs(30)).await?;
    let bare_addr = stack::free_port()?;
    let exe = std::env::current_exe()?;
    let mut bare = stack::Instance {
        child: std::process::Command::new(exe)
            .arg("bare-server")
            .arg(bare_addr.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()?,
    };
    wait_listening(bare_addr).await?;

    // single
    let key = s.api_key.clone();
    let single = |addr: SocketAddr, key: String| -> MakeRequest {
        Arc::new(move |conn, seq| load::request(Method::POST, addr, "/events", &key, single_body(conn, seq)))
    };
    step("ingest single: bare axum baseline");
    let base = load::run("bare", bare_addr, &sizes.load(CONNS), single(bare_addr, key.clone())).await?;
    step("ingest single: POST /events");
    let subj = load::run("ingest", addr, &sizes.load(CONNS), single(addr, key.clone())).await?;
    let ratio = subj.rate() / base.rate();
    report.line(
        Line::new("ingest single", http_summary(&subj, "req/s"))
            .baseline(format!("bare axum 202: {}", http_summary(&base, "req/s")))
            .ratio(ratio)
            .target(">= 0.5", Some(ratio >= 0.5)),
    );

    // batch
    let body = batch_body(1000);
    let batch: MakeRequest = {
        let key = key.clone();
        Arc::new(move |_, _| load::request(Method::POST, addr, "/events/batch", &key, body.clone()))
    };
    step("ingest batch: POST /events/batch (1000 per request)");
    let subj = load::run("ingest batch", addr, &sizes.load(sizes.batch_conns), batch).await?;
    let subj_rate = subj.rate() * 1000.0;
    step("ingest batch: raw rdkafka producer baseline");
    let producer = common::kafka::producer(&config.kafka, Duration::from_secs(30))?;
    let base_rate = raw_produce(&producer, &topic, sizes).await?;
    let ratio = subj_rate / base_rate;
    report.line(
        Line::new(
            "ingest batch",
            format!(
                "{:.0} events/s ({} errors, p50 {:.1} ms, p99 {:.1} ms per request)",
                subj_rate,
                subj.errors,
                subj.percentile_ms(50.0),
                subj.percentile_ms(99.0)
            ),
        )
        .baseline(format!("raw rdkafka producer, same config and envelopes: {base_rate:.0} events/s"))
        .ratio(ratio)
        .target(">= 0.5", Some(ratio >= 0.5)),
    );
    report.note(format!(
        "ingest: a separate `ingest` instance (same release binary and config as the stack's) on its own topic \
         `{topic}` ({} partitions) so that no consumer competes; the bare axum baseline (`abtest-bench bare-server`) \
         is a separate process answering 202 with the same JSON to the same body. Batch: {} connections of \
         1000-event requests; its baseline sends the same 1000 envelopes per task with {} tasks through \
         `common::kafka::producer` (idempotent, acks=all, lz4, linger {} ms) and awaits every delivery, like the \
         handler.",
        config.kafka.topic_partitions,
        sizes.batch_conns,
        sizes.batch_conns,
        config.kafka.linger.as_millis()
    ));
    if let Some(kib) = ingest.peak_rss_kib() {
        peaks.push(("ingest (bench instance)".into(), kib));
    }
    ingest.stop();
    bare.stop();
    Ok(())
}

async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listens on {addr}")
}

fn http_summary(o: &load::Outcome, unit: &str) -> String {
    format!(
        "{:.0} {unit}, p50 {:.2} ms, p99 {:.2} ms{}",
        o.rate(),
        o.percentile_ms(50.0),
        o.percentile_ms(99.0),
        if o.errors > 0 { format!(" ({} errors)", o.errors) } else { String::new() }
    )
}

/// `batch_conns` tasks each enqueue 1000 envelopes and await all acks, repeatedly.
async fn raw_produce(producer: &rdkafka::producer::FutureProducer, topic: &str, sizes: &Sizes) -> anyhow::Result<f64> {
    let payloads = Arc::new(envelopes(1000, "bench_batch", 1000));
    let start = Instant::now();
    let measure_from = start + sizes.warmup;
    let end = measure_from + sizes.http_secs;
    let mut tasks = Vec::new();
    for _ in 0..sizes.batch_conns {
        let producer = producer.clone();
        let payloads = payloads.clone();
        let topic = topic.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            while Instant::now() < end {
                let sent = Instant::now();
                let mut deliveries = Vec::with_capacity(payloads.len());
                for (i, p) in payloads.iter().enumerate() {
                    let key = format!("u{i}");
                    let record = FutureRecord::to(&topic).key(key.as_bytes()).payload(p.as_slice());
                    match producer.send_result(record) {
                        Ok(d) => deliveries.push(d),
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
                let n = join_all(deliveries).await.into_iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
                if sent >= measure_from && Instant::now() <= end {
                    acked += n as u64;
                }
            }
            acked
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / sizes.http_secs.as_secs_f64())
}

// --- consumer -----------------------------------------------------------------------------

async fn drain(
    s: &Stack,
    config: &Config,
    sizes: &Sizes,
    run_id: &str,
    report: &mut Report,
    peaks: &mut Peaks,
) -> anyhow::Result<()> {
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

    step("consumer: raw consumption baseline");
    let consume_rate = raw_consume(&config.kafka.brokers.bootstrap(), &topic, n, run_id).await?;
    eprintln!("    raw consumption: {consume_rate:.0} msgs/s");

    step("consumer: raw RowBinary insert baseline");
    let insert_rate = raw_insert(s, config, &payloads).await?;
    eprintln!("    raw insert: {insert_rate:.0} rows/s");
    drop(payloads);

    step("consumer: draining the backlog with the consumer binary");
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
    let cpu_pids =
        [("consumer", Some(consumer.pid())), ("clickhouse", s.pid("clickhouse")), ("devbroker", s.pid("devbroker"))];
    let cpu_before: Vec<Option<f64>> = cpu_pids.iter().map(|(_, p)| p.and_then(stack::cpu_seconds)).collect();
    let key = "abtest_consumer_rows_inserted_total{table=\"events\"}";
    let deadline = Instant::now() + Duration::from_secs(60 + (n / 2000) as u64);
    let mut first: Option<(Instant, f64)> = None;
    let mut last_print = Instant::now();
    let last = loop {
        let rows = s.metrics(addr).await.ok().and_then(|m| m.get(key).copied()).unwrap_or(0.0);
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
    let wall = first.map_or(0.0, |(t0, _)| (last.0 - t0).as_secs_f64());
    let cpu: Vec<String> = cpu_pids
        .iter()
        .zip(&cpu_before)
        .filter_map(|((name, pid), before)| {
            let used = pid.and_then(stack::cpu_seconds)? - (*before)?;
            Some(format!("{name} {used:.1} s"))
        })
        .collect();
    let m = s.metrics(addr).await.unwrap_or_default();
    let inserts = m.get("abtest_consumer_insert_seconds_count").copied().unwrap_or(0.0);
    let insert_secs = m.get("abtest_consumer_insert_seconds_sum").copied().unwrap_or(0.0);
    let drain_facts = format!(
        "CPU used while draining (from the consumer's start, {wall:.1} s of timed drain): {}; {inserts:.0} inserts \
         taking {insert_secs:.1} s in total",
        cpu.join(", ")
    );
    eprintln!("    {drain_facts}");
    if let Some(kib) = consumer.peak_rss_kib() {
        peaks.push(("consumer (bench instance)".into(), kib));
    }
    consumer.stop();
    let (t0, r0) = first.context("no rows")?;
    let rate = (last.1 - r0) / (last.0 - t0).as_secs_f64().max(1e-3);
    let stored = s.ch_u64(&format!("SELECT uniqExact(event_id) FROM events WHERE type = '{event_type}'")).await?;
    let slower = consume_rate.min(insert_rate);
    let ratio = rate / slower;
    report.line(
        Line::new("consumer", format!("{rate:.0} rows/s ({stored} of {n} distinct events stored)"))
            .baseline(format!("raw RowBinary insert {insert_rate:.0} rows/s; raw consumption {consume_rate:.0} msgs/s"))
            .ratio(ratio)
            .target(">= 0.7 of the slower", Some(ratio >= 0.7 && stored == n as u64)),
    );
    report.note(format!(
        "consumer: {n} envelopes ({} MiB) produced with lz4 to `{topic}` ({} partitions) and checked present \
         (watermarks) before timing. The dev broker (librdkafka's mock cluster, in-process in devbroker) keeps at \
         most 100 000 messages and 5 MiB per partition and drops older ones, hence the many partitions; it also \
         uses CPU of the same 2 cores while serving fetches. Raw consumption: a BaseConsumer reading every \
         message (fetch.queue.backoff.ms=20 like the consumer), timed from the first message. Raw insert: the same rows (decoded beforehand) inserted with the \
         `clickhouse` crate in RowBinary, 1 M rows per insert, into a copy of `events`. Consumer: a separate \
         instance of the release `consumer` binary (stack config, own group and topic), rate from its rows-inserted \
         metric between the first and the last observation (the group join is not timed). {drain_facts}.",
        bytes >> 20,
        sizes.partitions
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

async fn raw_consume(brokers: &str, topic: &str, n: usize, run_id: &str) -> anyhow::Result<f64> {
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

async fn raw_insert(s: &Stack, config: &Config, payloads: &[Vec<u8>]) -> anyhow::Result<f64> {
    let rows: Vec<consumer::rows::EventRow> = payloads
        .iter()
        .map(|p| EventEnvelope::decode(p).map(Into::into))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    s.ch("DROP TABLE IF EXISTS bench_raw_events").await?;
    s.ch("CREATE TABLE bench_raw_events AS events").await?;
    let client = common::clickhouse::client(&config.clickhouse);
    let started = Instant::now();
    for chunk in rows.chunks(1 << 20) {
        let mut insert = client.insert::<consumer::rows::EventRow>("bench_raw_events").await?;
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
    s.ch("DROP TABLE IF EXISTS bench_raw_events").await?;
    Ok(rate)
}

// --- freshness ----------------------------------------------------------------------------

async fn freshness(s: &Stack, sizes: &Sizes, run_id: &str, report: &mut Report) -> anyhow::Result<()> {
    let event_type = format!("bench_fresh_{run_id}");
    let total = u64::from(sizes.fresh_rate) * sizes.fresh_secs;
    step(&format!(
        "freshness: {} events/s for {} s through the stack's ingest and consumer",
        sizes.fresh_rate, sizes.fresh_secs
    ));
    let acked: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let url = format!("http://{}/events", s.ingest);
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let rate = sizes.fresh_rate;
    let sender = {
        let acked = acked.clone();
        let failed = failed.clone();
        let key = s.api_key.clone();
        let event_type = event_type.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            let mut inflight = Vec::new();
            for i in 0..total {
                tick.tick().await;
                let id = Uuid::new_v4();
                let body = format!(
                    r#"{{"user_id":"f{i}","type":"{event_type}","event_id":"{id}","properties":{PROPERTIES}}}"#
                );
                let req = client.post(&url).bearer_auth(&key).header("content-type", "application/json").body(body);
                let acked = acked.clone();
                let failed = failed.clone();
                inflight.push(tokio::spawn(async move {
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            if let Ok(mut a) = acked.lock() {
                                a.insert(id, Instant::now());
                            }
                        }
                        _ => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }));
            }
            join_all(inflight).await;
        })
    };
    // Poll ClickHouse for the ids that became visible.
    let mut seen: HashMap<Uuid, Instant> = HashMap::new();
    let started = Instant::now();
    let mut sender = Some(sender);
    let mut last_print = Instant::now();
    loop {
        let since = chrono::Utc::now().timestamp() - 30;
        let body = s
            .ch(&format!(
                "SELECT toString(event_id) FROM events WHERE type = '{event_type}' AND received_at >= toDateTime({since})"
            ))
            .await?;
        let now = Instant::now();
        for line in body.lines() {
            if let Ok(id) = line.trim().parse::<Uuid>() {
                seen.entry(id).or_insert(now);
            }
        }
        if sender.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = sender.take() {
                h.await?;
            }
        }
        let acked_n = acked.lock().map(|a| a.len()).unwrap_or(0);
        if sender.is_none() && seen.len() >= acked_n {
            break;
        }
        if started.elapsed() > Duration::from_secs(sizes.fresh_secs + 60) {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("    freshness: {acked_n} acknowledged, {} visible", seen.len());
            last_print = now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let mut lat: Vec<f64> = acked
        .iter()
        .filter_map(|(id, at)| seen.get(id).map(|v| v.saturating_duration_since(*at).as_secs_f64()))
        .collect();
    lat.sort_by(f64::total_cmp);
    let missing = acked.len() - lat.len();
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((p / 100.0 * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1]
        }
    };
    let (p50, p99) = (pct(50.0), pct(99.0));
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    report.line(
        Line::new(
            "freshness",
            format!(
                "p50 {p50:.2} s, p99 {p99:.2} s, max {:.2} s ({} events, {missing} never seen, {failed} not acked)",
                pct(100.0),
                acked.len()
            ),
        )
        .target("p99 <= 2 s", Some(p99 <= 2.0 && missing == 0)),
    );
    report.note(format!(
        "freshness: {} single-event POSTs/s for {} s to the stack's ingest (open loop, one request per tick), \
         from each 202 to the first poll (every 50 ms, HTTP to ClickHouse) that returns its event id, through the \
         stack's consumer (batch_max_wait decides most of it).",
        sizes.fresh_rate, sizes.fresh_secs
    ));
    Ok(())
}

// --- results ------------------------------------------------------------------------------

async fn results(s: &Stack, config: &Config, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let db = sqlx::PgPool::connect(config.postgres.url.expose()).await?;
    for (users, events) in sizes.results {
        let id = results_dataset(s, &db, users, events).await?;
        let event_type = format!("bench_buy_{id}");
        let exp: serde_json::Value = s
            .http
            .get(format!("http://{}/experiments/{id}", s.api))
            .bearer_auth(&s.api_key)
            .send()
            .await?
            .json()
            .await?;
        let created = exp["created_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .context("experiment created_at")?;
        let url = format!("http://{}/experiments/{id}/results?event_type={event_type}&value_property=value", s.api);
        step(&format!("results: {users} users / {events} events, {} repetitions each", sizes.result_reps));
        let mut api_ms = Vec::new();
        let mut api_users = 0u64;
        for rep in 0..=sizes.result_reps {
            let t = Instant::now();
            let resp = s.http.get(&url).bearer_auth(&s.api_key).send().await?;
            if !resp.status().is_success() {
                bail!("results answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
            }
            let body: serde_json::Value = resp.json().await?;
            if rep > 0 {
                api_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            api_users = body["variants"]
                .as_array()
                .map(|v| v.iter().filter_map(|x| x["users"].as_u64()).sum())
                .unwrap_or_default();
        }
        // The same numbers by a hand-written query: the straightforward one (each event id
        // once by GROUP BY, every exposed user joined with their events), literals inlined.
        let from = created.timestamp() - 1;
        let to = chrono::Utc::now().timestamp() + 3600;
        let sql = hand_written_sql(id, &event_type, "value", from, to);
        let mut ch_ms = Vec::new();
        let mut ch_users = 0u64;
        for rep in 0..=sizes.result_reps {
            let out = tokio::process::Command::new("clickhouse-client")
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &s.clickhouse_tcp_port.to_string(),
                    "--database",
                    &s.clickhouse_db,
                ])
                .args(["--time", "--query"])
                .arg(&sql)
                .output()
                .await?;
            if !out.status.success() {
                bail!("clickhouse-client: {}", String::from_utf8_lossy(&out.stderr));
            }
            let secs: f64 = String::from_utf8_lossy(&out.stderr).trim().parse().context("--time output")?;
            if rep > 0 {
                ch_ms.push(secs * 1000.0);
            }
            ch_users = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split('\t').nth(1)?.parse::<u64>().ok())
                .sum();
        }
        if ch_users != api_users || api_users != users {
            bail!("results disagree: api {api_users} users, hand-written query {ch_users}, dataset {users}");
        }
        let (a50, a_max) = median_max(&mut api_ms);
        let (c50, c_max) = median_max(&mut ch_ms);
        let ratio = a50 / c50;
        report.line(
            Line::new(
                format!("results {} users / {} events", human(users), human(events)),
                format!("p50 {a50:.0} ms, max {a_max:.0} ms"),
            )
            .baseline(format!("clickhouse-client, hand-written SQL: p50 {c50:.0} ms, max {c_max:.0} ms"))
            .ratio(ratio)
            .target("<= 1.2x and < 1 s", Some(ratio <= 1.2 && a50 < 1000.0)),
        );
    }
    report.note(format!(
        "results: datasets generated inside ClickHouse (INSERT ... SELECT FROM numbers) for an experiment created \
         through the API (two variants 50/50; every user exposed, events spread by intHash32 over the users, a \
         numeric `value` property), reused by later runs while intact. {} timed repetitions after one warm-up, \
         sequential: GET /experiments/{{id}}/results?event_type=...&value_property=value against \
         `clickhouse-client --time` running a hand-written query for the same users, conversions, events and value \
         sums (the straightforward SQL: each event id once by GROUP BY user_id, event_id, every exposed user joined \
         with their events; without the CUPED sums the API also computes; users checked equal).",
        sizes.result_reps
    ));
    Ok(())
}

fn human(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn median_max(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[v.len() - 1])
}

fn hand_written_sql(id: i64, event_type: &str, prop: &str, from: i64, to: i64) -> String {
    format!(
        "SELECT assigned_variant AS variant, count() AS users, countIf(n_events > 0) AS converted_users,
       sum(n_events) AS events, sum(value) AS value_sum, sum(value * value) AS value_sum_sq
FROM (
  SELECT user_id, assigned_variant, n_events, value FROM (
    SELECT user_id, argMin(variant, exposed_at) AS assigned_variant FROM exposures
    WHERE experiment_id = {id} AND exposed_at >= toDateTime({from}) AND exposed_at <= toDateTime({to})
    GROUP BY user_id
  ) ANY LEFT JOIN (
    SELECT user_id, toUInt64(count()) AS n_events, sum(v) AS value FROM (
      SELECT user_id, ts, v FROM (
        SELECT user_id, event_id, min(timestamp) AS ts, any(visitParamExtractFloat(properties, '{prop}')) AS v
        FROM events
        WHERE type = '{event_type}' AND timestamp >= toDateTime({from}) AND timestamp <= toDateTime({to})
          AND user_id IN (SELECT user_id FROM exposures WHERE experiment_id = {id})
        GROUP BY user_id, event_id
      ) ALL INNER JOIN (
        SELECT user_id, min(exposed_at) AS first_exposed FROM exposures
        WHERE experiment_id = {id} AND exposed_at >= toDateTime({from}) AND exposed_at <= toDateTime({to})
        GROUP BY user_id
      ) USING user_id
      WHERE ts >= first_exposed
    ) GROUP BY user_id
  ) USING user_id
) GROUP BY assigned_variant"
    )
}

async fn create_experiment(s: &Stack, name: &str) -> anyhow::Result<i64> {
    let resp = s
        .http
        .post(format!("http://{}/experiments", s.api))
        .bearer_auth(&s.api_key)
        .json(&serde_json::json!({
            "name": name,
            "variants": [{"name": "control", "allocation_percent": 50}, {"name": "treatment", "allocation_percent": 50}]
        }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("create experiment: {}", resp.text().await.unwrap_or_default());
    }
    let v: serde_json::Value = resp.json().await?;
    v["id"].as_i64().context("experiment id")
}

/// The experiment holding `users` exposed users and `events` events, made once.
async fn results_dataset(s: &Stack, db: &sqlx::PgPool, users: u64, events: u64) -> anyhow::Result<i64> {
    let name = format!("bench-results-{users}u-{events}e");
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM experiments WHERE name = $1 ORDER BY id DESC LIMIT 1")
            .bind(&name)
            .fetch_optional(db)
            .await?;
    if let Some(id) = existing {
        let have_users = s.ch_u64(&format!("SELECT count() FROM exposures WHERE experiment_id = {id}")).await?;
        let have_events = s.ch_u64(&format!("SELECT count() FROM events WHERE type = 'bench_buy_{id}'")).await?;
        if have_users == users && have_events == events {
            eprintln!("    reusing dataset of experiment {id}");
            return Ok(id);
        }
    }
    step(&format!("results: generating {users} users / {events} events in ClickHouse"));
    let id = create_experiment(s, &name).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.ch(&format!(
        "INSERT INTO exposures SELECT {id}, concat('b{id}-', toString(number)), \
         if(number % 2 = 0, 'control', 'treatment'), now() FROM numbers({users})"
    ))
    .await?;
    s.ch(&format!(
        "INSERT INTO events SELECT generateUUIDv4(), concat('b{id}-', toString(intHash32(number) % {users})), \
         'bench_buy_{id}', now(), now(), concat('{{\"value\":', toString(number % 100), '}}') FROM numbers({events})"
    ))
    .await?;
    Ok(id)
}

// --- assignment ---------------------------------------------------------------------------

async fn assignment(
    s: &Stack,
    config: &Config,
    sizes: &Sizes,
    run_id: &str,
    report: &mut Report,
    peaks: &mut Peaks,
) -> anyhow::Result<()> {
    let db = sqlx::PgPool::connect(config.postgres.url.expose()).await?;
    let id = create_experiment(s, &format!("bench-assign-{run_id}")).await?;
    // An api instance of its own, with exposures going to a fresh topic: the stack's
    // long-lived `exposures` topic sits at the dev broker's cap (100 000 messages per
    // partition, the oldest dropped on every append), which slows every acknowledgement
    // with an artefact of the mock broker; the ingest case does the same for events.
    let exposures = format!("bench_exposures_{run_id}");
    s.create_topic(&exposures, config.kafka.topic_partitions).await?;
    let api = stack::free_port()?;
    let mut api_instance =
        s.spawn("api", &[("ABTEST_API__LISTEN", api.to_string()), ("ABTEST_KAFKA__TOPICS__EXPOSURES", exposures)])?;
    s.wait_ready(api, Duration::from_secs(30)).await?;
    let variant: i64 = sqlx::query_scalar("SELECT id FROM variants WHERE experiment_id = $1 AND position = 0")
        .bind(id)
        .fetch_one(&db)
        .await?;
    sqlx::query(
        "INSERT INTO assignments (experiment_id, user_id, variant_id) \
         SELECT $1, 'rep-' || g, $2 FROM generate_series(1, $3) g",
    )
    .bind(id)
    .bind(variant)
    .bind(sizes.repeat_pool)
    .execute(&db)
    .await?;
    let key = s.api_key.clone();
    let run = run_id.to_owned();
    let new_user: MakeRequest = {
        let key = key.clone();
        Arc::new(move |conn, seq| {
            let path = format!("/experiments/{id}/assignment/n{run}-{conn}-{seq}");
            load::request(Method::GET, api, &path, &key, Bytes::new())
        })
    };
    let pool = sizes.repeat_pool as u64;
    let repeat: MakeRequest = Arc::new(move |conn, seq| {
        let user = 1 + (seq.wrapping_mul(2_654_435_761).wrapping_add(conn as u64 * 40_503)) % pool;
        let path = format!("/experiments/{id}/assignment/rep-{user}");
        load::request(Method::GET, api, &path, &key, Bytes::new())
    });
    std::fs::create_dir_all(&s.tmp)?;
    let new_sql = s.tmp.join("pgbench_new.sql");
    std::fs::write(
        &new_sql,
        "\\set u random(1, 1000000000000)\n\
         SELECT variant_id, assigned_at FROM assignments WHERE experiment_id = :eid AND user_id = 'pgn-' || :u::text;\n\
         BEGIN;\n\
         INSERT INTO assignments (experiment_id, user_id, variant_id) SELECT :eid, 'pgn-' || :u::text, :vid \
         FROM experiments WHERE id = :eid AND status = 'running' \
         ON CONFLICT (experiment_id, user_id) DO NOTHING RETURNING assigned_at;\n\
         COMMIT;\n",
    )?;
    let repeat_sql = s.tmp.join("pgbench_repeat.sql");
    std::fs::write(
        &repeat_sql,
        format!(
            "\\set u random(1, {pool})\n\
             SELECT variant_id, assigned_at FROM assignments WHERE experiment_id = :eid AND user_id = 'rep-' || :u::text;\n"
        ),
    )?;
    for (label, make, script) in [("new-user", new_user, new_sql), ("repeat", repeat, repeat_sql)] {
        step(&format!("assignment {label}: pgbench baseline"));
        let tps = pgbench(s, &script, id, variant, sizes).await?;
        step(&format!("assignment {label}: GET /experiments/{{id}}/assignment/{{user}}"));
        let subj = load::run(label, api, &sizes.load(CONNS), make).await?;
        let ratio = subj.rate() / tps;
        report.line(
            Line::new(format!("assignment {label}"), http_summary(&subj, "assignments/s"))
                .baseline(format!("pgbench, same SQL: {tps:.0} tps"))
                .ratio(ratio)
                .target(">= 0.5", Some(ratio >= 0.5)),
        );
    }
    report.note(format!(
        "assignment: {CONNS} connections; new-user requests use a fresh user id each, repeat requests pick among \
         {pool} users assigned beforehand. pgbench runs the handler's statements ({CONNS} clients, 2 threads, \
         prepared): new-user = the SELECT that misses, then BEGIN / INSERT ... ON CONFLICT DO NOTHING RETURNING / \
         COMMIT; repeat = the SELECT. The API's new-user path also waits for Kafka to acknowledge the exposure \
         before it commits, which pgbench does not. The API is an instance of the release `api` binary (stack \
         config) of its own whose exposures go to a fresh topic (`bench_exposures_<run>`), not the stack's \
         long-lived one that the dev broker keeps at its per-partition cap."
    ));
    if let Some(kib) = api_instance.peak_rss_kib() {
        peaks.push(("api (bench instance)".into(), kib));
    }
    api_instance.stop();
    Ok(())
}

async fn pgbench(s: &Stack, script: &std::path::Path, id: i64, variant: i64, sizes: &Sizes) -> anyhow::Result<f64> {
    let secs = (sizes.http_secs.as_secs_f64().ceil() as u64).max(1);
    let out = tokio::process::Command::new("/usr/lib/postgresql/15/bin/pgbench")
        .args(["-n", "-M", "prepared", "-c", &CONNS.to_string(), "-j", "2", "-T", &secs.to_string()])
        .args(["-h", "127.0.0.1", "-p", &s.postgres_port.to_string(), "-U", "abtest"])
        .args(["-D", &format!("eid={id}"), "-D", &format!("vid={variant}"), "-f"])
        .arg(script)
        .arg("abtest")
        .env("PGPASSWORD", "abtest")
        .output()
        .await
        .context("pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output: {text}"))
}

// --- memory -------------------------------------------------------------------------------

fn memory(s: &Stack, peaks: &Peaks, report: &mut Report) {
    let mut parts: Vec<String> = Vec::new();
    for svc in ["ingest", "consumer", "api", "devbroker"] {
        if let Some(kib) = s.pid(svc).and_then(stack::peak_rss_kib) {
            parts.push(format!("{svc} {} MiB", kib / 1024));
        }
    }
    for (name, kib) in peaks {
        parts.push(format!("{name} {} MiB", kib / 1024));
    }
    report.line(Line::new("memory (peak RSS, VmHWM)", parts.join("; ")).target("reported", None));
    report.note(
        "memory: VmHWM of the stack's processes (.run/<svc>.pid; since they started, which may include earlier \
         runs) and of the instances the bench started for the ingest and consumer cases, read before they stop.",
    );
}
