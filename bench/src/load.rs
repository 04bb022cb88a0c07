//! A closed-loop HTTP/1.1 load generator on hyper: `conns` fixed keep-alive connections,
//! each sending its next request as soon as the previous answer is read in full. Latency is
//! measured per request from the moment it is sent (closed loop: no coordinated-omission
//! correction is needed because nothing is scheduled ahead of the previous answer; the
//! figures are service times at that concurrency). Nothing is recorded during the warm-up.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// How one request of connection `conn`, sequence number `seq`, looks.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

pub struct Load {
    pub conns: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Successful (2xx) requests in the measured window.
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Sorted latencies of successful requests, microseconds.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

pub fn request(method: Method, addr: SocketAddr, path: &str, key: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {key}"));
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(Full::new(body)).unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// Runs the load against `addr`, printing progress to stderr every 5 s.
pub async fn run(label: &str, addr: SocketAddr, load: &Load, make: MakeRequest) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(load.conns);
    for conn in 0..load.conns {
        let make = make.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move { connection(addr, conn, measure_from, end, make, done).await }));
    }
    let progress = {
        let done = done.clone();
        let label = label.to_owned();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "    {label}: {} ok after {:.0} s",
                    done.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut total = Outcome { seconds: load.duration.as_secs_f64(), ..Outcome::default() };
    for t in tasks {
        let o = t.await??;
        total.ok += o.ok;
        total.errors += o.errors;
        total.latencies_us.extend(o.latencies_us);
    }
    progress.abort();
    total.latencies_us.sort_unstable();
    Ok(total)
}

async fn connection(
    addr: SocketAddr,
    conn: usize,
    measure_from: Instant,
    end: Instant,
    make: MakeRequest,
    done: Arc<AtomicU64>,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let mut seq = 0u64;
    'reconnect: while Instant::now() < end {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        while Instant::now() < end {
            let req = make(conn, seq);
            seq += 1;
            let sent = Instant::now();
            let ok = match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.into_body().collect().await;
                    status.is_success() && body.is_ok()
                }
                Err(_) => {
                    if sent >= measure_from {
                        out.errors += 1;
                    }
                    continue 'reconnect;
                }
            };
            let now = Instant::now();
            if sent < measure_from || now > end {
                continue;
            }
            if ok {
                out.ok += 1;
                done.fetch_add(1, Ordering::Relaxed);
                out.latencies_us.push(u32::try_from((now - sent).as_micros()).unwrap_or(u32::MAX));
            } else {
                out.errors += 1;
            }
        }
    }
    Ok(out)
}
