//! Freshness: how long an acknowledged event takes to become visible in ClickHouse.
//!
//! Single-event POSTs at a fixed rate to the stack's ingest (open loop, one request per
//! tick), timed from each 202 to the first poll (every 50 ms, HTTP to ClickHouse) that
//! returns its event id, through the stack's consumer (batch_max_wait decides most of it).
//! There is no baseline: the target is p99 <= 2 s with every acknowledged event seen.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::future::join_all;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{step, Sizes, PROPERTIES};
use crate::{stack::Stack, Line, Report};

/// When each acknowledged event id was acknowledged (its 202 read).
type Acked = Arc<Mutex<HashMap<Uuid, Instant>>>;

pub(super) async fn freshness(s: &Stack, sizes: &Sizes, run_id: &str, report: &mut Report) -> anyhow::Result<()> {
    let event_type = format!("bench_fresh_{run_id}");
    step(&format!(
        "freshness: {} events/s for {} s through the stack's ingest and consumer",
        sizes.fresh_rate, sizes.fresh_secs
    ));
    let acked: Acked = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let sender = spawn_sender(s, sizes, &event_type, &acked, &failed)?;
    let seen = poll_visible(s, sizes, &event_type, &acked, sender).await?;
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let lat = latencies(&acked, &seen);
    let missing = acked.len() - lat.len();
    let pct = |p: f64| percentile(&lat, p);
    let (p50, p99) = (pct(50.0), pct(99.0));
    let failed = failed.load(Ordering::Relaxed);
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

/// Sends `fresh_rate` single events per second for `fresh_secs` seconds, one request per
/// tick without waiting for the previous answer, recording each 202 in `acked` and every
/// other outcome in `failed`.
fn spawn_sender(
    s: &Stack,
    sizes: &Sizes,
    event_type: &str,
    acked: &Acked,
    failed: &Arc<AtomicU64>,
) -> anyhow::Result<JoinHandle<()>> {
    let total = u64::from(sizes.fresh_rate) * sizes.fresh_secs;
    let url = format!("http://{}/events", s.ingest);
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let rate = sizes.fresh_rate;
    let acked = acked.clone();
    let failed = failed.clone();
    let key = s.api_key.clone();
    let event_type = event_type.to_owned();
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        let mut inflight = Vec::new();
        for i in 0..total {
            tick.tick().await;
            let id = Uuid::new_v4();
            let body =
                format!(r#"{{"user_id":"f{i}","type":"{event_type}","event_id":"{id}","properties":{PROPERTIES}}}"#);
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
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        join_all(inflight).await;
    }))
}

/// Polls ClickHouse for the ids that became visible, until the sender is done and every
/// acknowledged event is seen, or `fresh_secs` + 60 s have passed: when each id was first seen.
async fn poll_visible(
    s: &Stack,
    sizes: &Sizes,
    event_type: &str,
    acked: &Acked,
    sender: JoinHandle<()>,
) -> anyhow::Result<HashMap<Uuid, Instant>> {
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
    Ok(seen)
}

/// From acknowledgement to visibility, in seconds, of every acknowledged event seen; sorted.
fn latencies(acked: &HashMap<Uuid, Instant>, seen: &HashMap<Uuid, Instant>) -> Vec<f64> {
    let mut lat: Vec<f64> = acked
        .iter()
        .filter_map(|(id, at)| seen.get(id).map(|v| v.saturating_duration_since(*at).as_secs_f64()))
        .collect();
    lat.sort_by(f64::total_cmp);
    lat
}

/// The `p`th percentile (nearest rank) of sorted `lat`; NaN when empty.
fn percentile(lat: &[f64], p: f64) -> f64 {
    if lat.is_empty() {
        f64::NAN
    } else {
        lat[((p / 100.0 * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1]
    }
}
