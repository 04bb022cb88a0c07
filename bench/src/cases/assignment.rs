//! Assignment: the assignment endpoint against pgbench running the handler's statements.
//!
//! Two cases, each against its own pgbench run ([`CONNS`] clients, 2 threads, prepared):
//!
//! - "assignment new-user": a fresh user id per request, against the SELECT that misses, then
//!   BEGIN / INSERT ... ON CONFLICT DO NOTHING RETURNING / COMMIT. The API's new-user path
//!   also waits for Kafka to acknowledge the exposure before it commits, which pgbench does
//!   not.
//! - "assignment repeat": users picked among a pool assigned beforehand, against the SELECT.
//!
//! The API is an instance of the release `api` binary (stack config) of its own whose
//! exposures go to a fresh topic (`bench_exposures_<run>`), not the stack's long-lived one
//! that the dev broker keeps at its per-partition cap.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use common::config::Config;
use futures::StreamExt;
use hyper::Method;

use super::{http_summary, results::create_experiment, step, Run, Sizes, CONNS};
use crate::{
    load::{self, MakeRequest},
    stack::{self, Stack},
    Line,
};

pub(super) async fn assignment(run: &mut Run) -> anyhow::Result<()> {
    let Run { s, config, sizes, run_id, report, peaks } = run;
    let db = sqlx::PgPool::connect(config.postgres.url.expose()).await?;
    let id = create_experiment(s, &format!("bench-assign-{run_id}")).await?;
    let (api, mut api_instance) = spawn_api(s, config, run_id).await?;
    let variant = assign_repeat_users(&db, id, sizes.repeat_pool).await?;
    let (new_user, repeat) = requests(s, api, id, run_id, sizes.repeat_pool);
    let (new_sql, repeat_sql) = pgbench_scripts(s, sizes.repeat_pool)?;
    for (label, make, script) in [("new-user", new_user, new_sql), ("repeat", repeat, repeat_sql)] {
        step(&format!("assignment {label}: pgbench baseline"));
        let tps = pgbench(s, &script, id, variant, sizes).await?;
        // pgbench's new-user rows (and the API's) wait in the outbox until the api instances
        // relay them to Kafka; the API is measured once that work is done, not during it.
        let waited = outbox_drained(&db).await?;
        eprintln!("    exposure outbox empty after {waited:.1} s");
        if label == "repeat" {
            let secs = visit_every_repeat_user(s, api, id, sizes.repeat_pool).await?;
            eprintln!("    every repeat user asked once in {secs:.1} s (the api now holds them in its cache)");
        }
        step(&format!("assignment {label}: GET /experiments/{{id}}/assignment/{{user}}"));
        let subj = load::run(label, api, &sizes.load(CONNS), make).await?;
        let ratio = subj.rate() / tps;
        report.line(
            Line::new(format!("assignment {label}{}", s.on_broker()), http_summary(&subj, "assignments/s"))
                .baseline(format!("pgbench, same SQL: {tps:.0} tps"))
                .ratio(ratio)
                .target(">= 0.5", Some(ratio >= 0.5)),
        );
    }
    let pool = sizes.repeat_pool as u64;
    report.note(format!(
        "assignment: {CONNS} connections; new-user requests use a fresh user id each, repeat requests pick among \
         {pool} users assigned beforehand and each asked once through this api before the timed run (so they \
         come from its assignment cache; a repeat user new to an instance costs one SELECT, like pgbench's). pgbench runs the handler's statements ({CONNS} clients, 2 threads, \
         prepared): new-user = the SELECT that misses, then the one statement that inserts the assignment and \
         its exposure into the outbox; repeat = the SELECT. The API relays the outbox to Kafka in the \
         background (its own batches, not timed here); each API run starts once the outbox is empty (what \
         pgbench and the previous run queued has been relayed). The API is an instance of the release `api` binary \
         (stack config) of its own whose exposures go to a fresh topic (`bench_exposures_<run>`)."
    ));
    if let Some(kib) = api_instance.peak_rss_kib() {
        peaks.push(("api (bench instance)".into(), kib));
    }
    api_instance.stop();
    Ok(())
}

/// Waits until the exposure outbox is empty (every committed exposure relayed to Kafka by
/// the api instances), at most 10 minutes: the seconds waited.
async fn outbox_drained(db: &sqlx::PgPool) -> anyhow::Result<f64> {
    let t = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM exposure_outbox").fetch_one(db).await?;
        if waiting == 0 {
            return Ok(t.elapsed().as_secs_f64());
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the exposure outbox still holds {waiting} exposures after 10 min");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks the api for every repeat user once ([`CONNS`] at a time), so that the repeat case
/// measures users this instance has answered before (its assignment cache); a repeat user
/// new to an instance costs one SELECT, the new-user case's first statement. Seconds taken.
async fn visit_every_repeat_user(s: &Stack, api: SocketAddr, id: i64, pool: i64) -> anyhow::Result<f64> {
    let t = Instant::now();
    let asks = futures::stream::iter(1..=pool).map(|user| async move {
        let url = format!("http://{api}/experiments/{id}/assignment/rep-{user}");
        s.http.get(url).bearer_auth(&s.api_key).send().await?.error_for_status()?;
        Ok::<_, anyhow::Error>(())
    });
    let mut asks = asks.buffer_unordered(CONNS);
    while let Some(done) = asks.next().await {
        done?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// An api instance of its own, ready: its address and process.
async fn spawn_api(s: &Stack, config: &Config, run_id: &str) -> anyhow::Result<(SocketAddr, stack::Instance)> {
    // An api instance of its own, with exposures going to a fresh topic: the stack's
    // long-lived `exposures` topic sits at the dev broker's cap (100 000 messages per
    // partition, the oldest dropped on every append), which slows every acknowledgement
    // with an artefact of the mock broker; the ingest case does the same for events.
    let exposures = format!("bench_exposures_{run_id}");
    s.create_topic(&exposures, config.kafka.topic_partitions).await?;
    let api = stack::free_port()?;
    let api_instance =
        s.spawn("api", &[("ABTEST_API__LISTEN", api.to_string()), ("ABTEST_KAFKA__TOPICS__EXPOSURES", exposures)])?;
    s.wait_ready(api, Duration::from_secs(30)).await?;
    Ok((api, api_instance))
}

/// Assigns users `rep-1` ..= `rep-{pool}` of experiment `id` to its first variant: that variant.
async fn assign_repeat_users(db: &sqlx::PgPool, id: i64, pool: i64) -> anyhow::Result<i64> {
    let variant: i64 = sqlx::query_scalar("SELECT id FROM variants WHERE experiment_id = $1 AND position = 0")
        .bind(id)
        .fetch_one(db)
        .await?;
    sqlx::query(
        "INSERT INTO assignments (experiment_id, user_id, variant_id) \
         SELECT $1, 'rep-' || g, $2 FROM generate_series(1, $3) g",
    )
    .bind(id)
    .bind(variant)
    .bind(pool)
    .execute(db)
    .await?;
    Ok(variant)
}

/// The requests of the two cases: a fresh user per request, and one of the `pool` repeat users.
fn requests(s: &Stack, api: SocketAddr, id: i64, run_id: &str, pool: i64) -> (MakeRequest, MakeRequest) {
    let key = s.api_key.clone();
    let run = run_id.to_owned();
    let new_user: MakeRequest = {
        let key = key.clone();
        Arc::new(move |conn, seq| {
            let path = format!("/experiments/{id}/assignment/n{run}-{conn}-{seq}");
            load::request(Method::GET, api, &path, &key, Bytes::new())
        })
    };
    let pool = pool as u64;
    let repeat: MakeRequest = Arc::new(move |conn, seq| {
        let user = 1 + (seq.wrapping_mul(2_654_435_761).wrapping_add(conn as u64 * 40_503)) % pool;
        let path = format!("/experiments/{id}/assignment/rep-{user}");
        load::request(Method::GET, api, &path, &key, Bytes::new())
    });
    (new_user, repeat)
}

/// The pgbench scripts of the two cases, written to the stack's tmp directory: their paths.
fn pgbench_scripts(s: &Stack, pool: i64) -> anyhow::Result<(PathBuf, PathBuf)> {
    let pool = pool as u64;
    std::fs::create_dir_all(&s.tmp)?;
    let new_sql = s.tmp.join("pgbench_new.sql");
    std::fs::write(
        &new_sql,
        "\\set u random(1, 1000000000000)\n\
         SELECT variant_id, assigned_at FROM assignments WHERE experiment_id = :eid AND user_id = 'pgn-' || :u::text;\n\
         WITH assigned AS (INSERT INTO assignments (experiment_id, user_id, variant_id) SELECT :eid, 'pgn-' || :u::text, :vid \
         FROM experiments WHERE id = :eid AND status = 'running' \
         ON CONFLICT (experiment_id, user_id) DO NOTHING RETURNING experiment_id, user_id, assigned_at), \
         queued AS (INSERT INTO exposure_outbox (experiment_id, user_id, variant, exposed_at, request_id) \
         SELECT experiment_id, user_id, 'control', assigned_at, NULL FROM assigned) \
         SELECT assigned_at FROM assigned;\n",
    )?;
    let repeat_sql = s.tmp.join("pgbench_repeat.sql");
    std::fs::write(
        &repeat_sql,
        format!(
            "\\set u random(1, {pool})\n\
             SELECT variant_id, assigned_at FROM assignments WHERE experiment_id = :eid AND user_id = 'rep-' || :u::text;\n"
        ),
    )?;
    Ok((new_sql, repeat_sql))
}

/// pgbench running `script` ([`CONNS`] clients, 2 threads, prepared) for the measured window
/// of the HTTP cases, rounded up: its tps.
async fn pgbench(s: &Stack, script: &Path, id: i64, variant: i64, sizes: &Sizes) -> anyhow::Result<f64> {
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
