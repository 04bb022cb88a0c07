//! Ingest, single and batch, each against what its hot path costs without the service.
//!
//! A separate `ingest` instance (same release binary and config as the stack's) runs on its
//! own topic so that no consumer competes.
//!
//! - "ingest single": `POST /events` against the bare axum baseline ([`bare_server`], run as
//!   `abtest-bench bare-server` in a separate process), which answers 202 with the same JSON
//!   to the same body.
//! - "ingest batch": `POST /events/batch` with 1000 events per request against a raw rdkafka
//!   producer ([`raw_produce`]) sending the same 1000 envelopes per task through
//!   `common::kafka::producer` and awaiting every delivery, like the handler.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{http::StatusCode, routing::post, Json, Router};
use bytes::Bytes;
use common::config::Config;
use futures::future::join_all;
use hyper::Method;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{envelopes, http_summary, step, wait_listening, Run, Sizes, CONNS, PROPERTIES};
use crate::{
    load::{self, MakeRequest},
    stack::{self, Stack},
    Line, Report,
};

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

pub(super) async fn ingest(run: &mut Run) -> anyhow::Result<()> {
    let Run { s, config, sizes, run_id, report, peaks } = run;
    let topic = format!("bench_ingest_{run_id}");
    s.create_topic(&topic, config.kafka.topic_partitions).await?;
    let addr = stack::free_port()?;
    let mut ingest = s.spawn(
        "ingest",
        &[("ABTEST_INGEST__LISTEN", addr.to_string()), ("ABTEST_KAFKA__TOPICS__EVENTS", topic.clone())],
    )?;
    s.wait_ready(addr, Duration::from_secs(30)).await?;
    let bare_addr = stack::free_port()?;
    let mut bare = spawn_bare_server(bare_addr)?;
    wait_listening(bare_addr).await?;

    single(s, config, sizes, (addr, bare_addr), &topic, report).await?;
    batch(s, config, sizes, addr, &topic, report).await?;
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

/// `abtest-bench bare-server ADDR`: this very binary, as a separate process.
fn spawn_bare_server(addr: SocketAddr) -> anyhow::Result<stack::Instance> {
    let exe = std::env::current_exe()?;
    Ok(stack::Instance {
        child: std::process::Command::new(exe)
            .arg("bare-server")
            .arg(addr.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()?,
    })
}

/// "ingest single": `POST /events` on `addr` against the bare axum server on `bare_addr`
/// (the target), and beside it what a raw producer reaches with one message per send and
/// as many in flight as there are connections (what the broker's acknowledgements allow).
async fn single(
    s: &Stack,
    config: &Config,
    sizes: &Sizes,
    (addr, bare_addr): (SocketAddr, SocketAddr),
    topic: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let key = s.api_key.clone();
    let requests = |addr: SocketAddr, key: String| -> MakeRequest {
        Arc::new(move |conn, seq| load::request(Method::POST, addr, "/events", &key, single_body(conn, seq)))
    };
    step("ingest single: bare axum baseline");
    let base = load::run("bare", bare_addr, &sizes.load(CONNS), requests(bare_addr, key.clone())).await?;
    step("ingest single: POST /events");
    let subj = load::run("ingest", addr, &sizes.load(CONNS), requests(addr, key.clone())).await?;
    step("ingest single: raw rdkafka producer, one message per send");
    let producer = common::kafka::producer(&config.kafka, Duration::from_secs(30))?;
    let raw = raw_produce(&producer, topic, sizes, CONNS, 1).await?;
    let ratio = subj.rate() / base.rate();
    report.line(
        Line::new(format!("ingest single{}", s.on_broker()), http_summary(&subj, "req/s"))
            .baseline(format!(
                "bare axum 202: {}; raw rdkafka producer, one message per send, {CONNS} in flight: {raw:.0} msgs/s \
                 (ingest = {:.2} of it)",
                http_summary(&base, "req/s"),
                subj.rate() / raw
            ))
            .ratio(ratio)
            .target(">= 0.5", Some(ratio >= 0.5)),
    );
    Ok(())
}

/// "ingest batch": `POST /events/batch` (1000 per request) on `addr` against [`raw_produce`].
async fn batch(
    s: &Stack,
    config: &Config,
    sizes: &Sizes,
    addr: SocketAddr,
    topic: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let body = batch_body(1000);
    let batch: MakeRequest = {
        let key = s.api_key.clone();
        Arc::new(move |_, _| load::request(Method::POST, addr, "/events/batch", &key, body.clone()))
    };
    step("ingest batch: POST /events/batch (1000 per request)");
    let subj = load::run("ingest batch", addr, &sizes.load(sizes.batch_conns), batch).await?;
    let subj_rate = subj.rate() * 1000.0;
    step("ingest batch: raw rdkafka producer baseline");
    let producer = common::kafka::producer(&config.kafka, Duration::from_secs(30))?;
    let base_rate = raw_produce(&producer, topic, sizes, sizes.batch_conns, 1000).await?;
    let ratio = subj_rate / base_rate;
    report.line(
        Line::new(
            format!("ingest batch{}", s.on_broker()),
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
    Ok(())
}

/// `tasks` tasks each enqueue `per_send` envelopes and await all acks, repeatedly: acks/s.
async fn raw_produce(
    producer: &FutureProducer,
    topic: &str,
    sizes: &Sizes,
    tasks: usize,
    per_send: usize,
) -> anyhow::Result<f64> {
    let payloads = Arc::new(envelopes(per_send, "bench_batch", per_send));
    let start = Instant::now();
    let measure_from = start + sizes.warmup;
    let end = measure_from + sizes.http_secs;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let producer = producer.clone();
        let payloads = payloads.clone();
        let topic = topic.to_owned();
        handles.push(tokio::spawn(async move {
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
    for t in handles {
        total += t.await?;
    }
    Ok(total as f64 / sizes.http_secs.as_secs_f64())
}
