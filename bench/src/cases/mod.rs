//! The cases of issue #5, each next to its baseline.
//!
//! Every case measures a hot path of the stack and, in the same run on the same machine, the
//! simplest thing that does the same work without the service around it:
//!
//! - [`ingest`]: `POST /events` against a bare axum server answering 202 with the same JSON
//!   to the same body; `POST /events/batch` (1000 events per request) against a raw rdkafka
//!   producer sending the same envelopes with the same config.
//! - [`consumer`]: draining a backlog with the `consumer` binary against the slower of raw
//!   consumption (a `BaseConsumer` reading every message) and a raw RowBinary insert of the
//!   same rows with the `clickhouse` crate.
//! - [`freshness`]: from each 202 of the stack's ingest to the first ClickHouse poll that
//!   returns the event id (no baseline; target p99 <= 2 s).
//! - [`results`]: `GET /experiments/{id}/results` against `clickhouse-client --time` running
//!   a hand-written query for the same numbers.
//! - [`rollup`]: results from the rollup plus the unsealed tail against the raw fallback
//!   (the fastest exact raw-events SQL), on a database of its own.
//! - [`assignment`]: `GET /experiments/{id}/assignment/{user}` (new and repeat users) against
//!   pgbench running the handler's statements.
//! - [`memory`]: peak RSS (VmHWM) of the stack's processes and of the instances the bench
//!   started (reported, no baseline).
//!
//! This module holds what the cases share: the sizes of a full and a quick run, the request
//! body properties, progress output and the small formatting and waiting helpers.

mod assignment;
mod consumer;
mod freshness;
mod ingest;
mod memory;
mod results;
mod rollup;

use std::{net::SocketAddr, time::Duration};

use anyhow::{bail, Context};
use common::{config::Config, event::EventEnvelope};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    load::{self, Load},
    stack::Stack,
    Options, Report,
};

pub use ingest::bare_server;

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
    /// Users and events of the rollup case.
    rollup: (u64, u64),
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
                rollup: (10_000, 100_000),
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
                rollup: (1_000_000, 10_000_000),
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

/// One run of the bench: where it runs, how big, and what it found so far.
pub(super) struct Run {
    s: Stack,
    config: Config,
    sizes: Sizes,
    run_id: String,
    report: Report,
    peaks: Peaks,
}

pub async fn run_all(opts: &Options) -> anyhow::Result<Report> {
    let mut config = Config::load().context("configuration (run through scripts/bench)")?;
    let mock = crate::stack::choose_broker(&mut config).await.context("BENCH_BROKER=mock")?;
    let s = Stack::from_env(&config, mock)?;
    let sizes = Sizes::new(opts.quick);
    let run_id = format!("{:x}", chrono::Utc::now().timestamp());
    let mut run = Run { s, config, sizes, run_id, report: Report::default(), peaks: Vec::new() };
    run.report.note(format!(
        "Load generator: `abtest-bench`'s own closed-loop HTTP/1.1 client (hyper): {CONNS} keep-alive connections, \
         each sends its next request when the previous answer is read; latency from send to last body byte, \
         percentiles over every request of the measured window ({} s after {} s warm-up). It shares the 2 cores \
         with the server under test, for the subject and its baseline alike.",
        run.sizes.http_secs.as_secs(),
        run.sizes.warmup.as_secs_f64()
    ));
    if opts.wants("ingest") {
        ingest::ingest(&mut run).await.context("ingest cases")?;
    }
    if opts.wants("consumer") {
        consumer::drain(&mut run).await.context("consumer case")?;
    }
    if opts.wants("freshness") {
        freshness::freshness(&run.s, &run.sizes, &run.run_id, &mut run.report).await.context("freshness case")?;
    }
    if opts.wants("results") {
        results::results(&run.s, &run.config, &run.sizes, &mut run.report).await.context("results case")?;
    }
    if opts.wants("rollup") {
        rollup::rollup(&run.config, &run.sizes, &mut run.report).await.context("rollup case")?;
    }
    if opts.wants("assignment") {
        assignment::assignment(&mut run).await.context("assignment case")?;
    }
    memory::memory(&run.s, &run.peaks, &mut run.report);
    Ok(run.report)
}

/// `n` encoded envelopes of `event_type` with [`PROPERTIES`], spread over `user_mod` users.
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
