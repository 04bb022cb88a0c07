//! Results from the rollup (sealed per-user states plus the unsealed tail) against the raw
//! fallback, the fastest exact SQL on raw events measured (`RESULTS_SQL`, no JOIN, no FINAL:
//! `notes` sql/21), on the same data in the same run, through the api's own storage calls.
//!
//! A ClickHouse database of its own (dropped afterwards): `users` users exposed over the last
//! two days (two variants, 50/50), 10 % more users with events who were never exposed,
//! `events` events with timestamps over the last three days (so some before exposure), each
//! inserted up to a minute after its timestamp (`inserted_at` written explicitly: the data
//! arrives as it would have), 1 % of them inserted a second time an hour later (replays),
//! integer values (sums exact: the two answers are compared with `==`). Sealed as the api's
//! sealer seals a new metric (`api::rollup::plan`: the history in steps of a day, the
//! experiment bootstrapped from the metric's log, compacted), then one 10-minute seal; the
//! tail is what was inserted after the last seal (5-15 minutes, as in production).
//!
//! Sizes: `scripts/bench` 1 M users / 10 M events (`--quick`: 10 k / 100 k); the 100 M event
//! run is opt-in: `BENCH_ROLLUP_EVENTS=100000000 BENCH_ROLLUP_REPS=2 scripts/bench --only
//! rollup` (about 12 GB of disk while it runs, and half an hour; `BENCH_ROLLUP_REPS` sets
//! the timed repetitions, 5 by default).

use std::time::Instant;

use anyhow::{bail, Context};
use api::{
    rollup::plan::Plan,
    storage::{
        clickhouse::{self as raw, StatsQuery, VariantStats},
        rollup::{
            self as store,
            seal::{self, Metric, NoFence},
            upkeep, Source,
        },
    },
};
use common::config::{Config, RollupConfig};

use super::{human, median_max, step, Sizes};
use crate::{Line, Report};

const DAY: u32 = 86_400;
const EXPERIMENT: u64 = 1;
const EVENT_TYPE: &str = "bench_buy";
const PROPERTY: &str = "value";
const CUPED_DAYS: u32 = 14;

pub(super) async fn rollup(config: &Config, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let (users, events) = match std::env::var("BENCH_ROLLUP_EVENTS") {
        Ok(n) => (sizes.rollup.0, n.parse().context("BENCH_ROLLUP_EVENTS")?),
        Err(_) => sizes.rollup,
    };
    let mut cfg = config.clickhouse.clone();
    cfg.database = format!("bench_rollup_{:x}", chrono::Utc::now().timestamp());
    common::clickhouse::migrate(&cfg).await.context("migrations")?;
    let ch = common::clickhouse::client(&cfg)?;
    let reps = match std::env::var("BENCH_ROLLUP_REPS") {
        Ok(n) => n.parse().context("BENCH_ROLLUP_REPS")?,
        Err(_) => sizes.result_reps,
    };
    let outcome = measure(&ch, users, events, reps, report).await;
    let server = ch.clone().with_database("default");
    server.query(&format!("DROP DATABASE IF EXISTS {}", cfg.database)).execute().await?;
    outcome
}

async fn measure(
    ch: &clickhouse::Client,
    users: u64,
    events: u64,
    reps: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (now, start, generated) = prepare(ch, users, events).await?;
    let Sealed { plan, target, history, ten_minutes, tail } = seal_everything(ch, now, start).await?;

    let q = StatsQuery {
        experiment_id: EXPERIMENT as i64,
        event_type: EVENT_TYPE,
        value_property: PROPERTY,
        from: start,
        to: now + 3600,
        cuped_seconds: CUPED_DAYS * DAY,
        ..Default::default()
    };
    step(&format!("rollup: {reps} repetitions each (after one warm-up), rollup + tail then raw"));
    let from_rollup = || async {
        let (rows, source) = store::variant_stats(ch, &q, Some(plan.k)).await?;
        if source != (Source::Rollup { sealed_to: target }) {
            bail!("the rollup did not answer: {source:?}");
        }
        Ok::<_, anyhow::Error>(rows)
    };
    let (mut rolled_ms, rolled) = timed(reps, from_rollup).await?;
    eprintln!("    rollup + tail: {rolled_ms:.0?} ms");
    // The raw queries may fail where the rollup does not (at 100 M events the arrays query
    // needs more than the stack's 8 GB per query): reported, not fatal.
    let (mut raw_ms, raw_rows) = match timed(reps, || raw::variant_stats(ch, &q)).await {
        Ok(done) => done,
        Err(e) => return raw_failed(report, users, events, &rolled_ms, tail, "the arrays query", &e),
    };
    eprintln!("    raw (arrays): {raw_ms:.0?} ms");
    if format!("{rolled:?}") != format!("{raw_rows:?}") || rolled.iter().map(|r| r.users).sum::<u64>() != users {
        bail!("rollup and raw results differ:\n{rolled:?}\n{raw_rows:?}");
    }
    let (mut final_ms, final_rows) = match timed(reps, || final_join(ch, &q)).await {
        Ok(done) => done,
        Err(e) => return raw_failed(report, users, events, &rolled_ms, tail, "the FINAL + JOIN query", &e),
    };
    if format!("{final_rows:?}") != format!("{raw_rows:?}") {
        bail!("the FINAL + JOIN query differs:\n{final_rows:?}\n{raw_rows:?}");
    }
    let (f50, f_max) = median_max(&mut final_ms);
    let (r50, r_max) = median_max(&mut rolled_ms);
    let (b50, b_max) = median_max(&mut raw_ms);
    let ratio = r50 / b50;
    let limit = if events > 50_000_000 { 2000.0 } else { 1000.0 };
    report.line(
        Line::new(
            format!("results on the rollup, {} users / {} events", human(users), human(events)),
            format!("rollup + tail ({} tail events): p50 {r50:.0} ms, max {r_max:.0} ms", human(tail)),
        )
        .baseline(format!("raw events, fastest exact SQL (the api's fallback): p50 {b50:.0} ms, max {b_max:.0} ms"))
        .ratio(ratio)
        .target(format!("< {:.0} s, rows equal", limit / 1000.0), Some(r50 < limit)),
    );
    report.line(
        Line::new(
            format!("raw fallback, {} users / {} events", human(users), human(events)),
            format!("arrays query (no JOIN, no FINAL): p50 {b50:.0} ms, max {b_max:.0} ms"),
        )
        .baseline(format!("the previous raw query (FINAL + JOIN): p50 {f50:.0} ms, max {f_max:.0} ms"))
        .ratio(b50 / f50)
        .target("<= 1x, rows equal", Some(b50 <= f50)),
    );
    report.note(format!(
        "results on the rollup ({} users / {} events): a database of its own, generated in {generated:.0} s; \
         history sealed, experiment bootstrapped and compacted in {history:.0} s; one 10-minute seal {ten_minutes:.1} s; \
         timed in-process through the api's storage calls (rollup: the seal state read and the query, as the route \
         does; raw: `RESULTS_SQL`, then the previous FINAL + JOIN query), {reps} repetitions after one warm-up, every column of every row compared equal \
         (integer values: exact sums). See `bench/src/cases/rollup.rs`.",
        human(users),
        human(events)
    ));
    Ok(())
}

/// A new database's recent tables hold every row inserted into it (through the views),
/// whatever the rows' inserted_at: its floor goes back before the data, then the data is
/// generated. Returns now, the experiment's start and the seconds generating took.
async fn prepare(ch: &clickhouse::Client, users: u64, events: u64) -> anyhow::Result<(u32, u32, f64)> {
    let now: u32 = ch.query("SELECT toUInt32(now())").fetch_one().await?;
    let start = now - 3 * DAY;
    for sql in [
        "DROP TABLE recent_floor".to_owned(),
        "CREATE TABLE recent_floor (since DateTime) ENGINE = TinyLog".to_owned(),
        format!("INSERT INTO recent_floor VALUES ({})", start - DAY),
    ] {
        ch.query(&sql).execute().await?;
    }
    step(&format!("rollup: generating {} users / {} events", human(users), human(events)));
    let t = Instant::now();
    generate(ch, users, events, now).await?;
    let generated = t.elapsed().as_secs_f64();
    Ok((now, start, generated))
}

/// What [`seal_everything`] did: the plan, the last seal's end and how long the steps took.
struct Sealed {
    plan: Plan,
    target: u32,
    history: f64,
    ten_minutes: f64,
    tail: u64,
}

/// Seals the generated history in steps of a day, bootstraps the experiment, compacts, then
/// times one 10-minute seal as the sealer runs it; counts the tail left after it.
async fn seal_everything(ch: &clickhouse::Client, now: u32, start: u32) -> anyhow::Result<Sealed> {
    let plan = Plan::new(&RollupConfig::default());
    let m = Metric { event_type: EVENT_TYPE, value_property: PROPERTY };
    let target = plan.target(now);
    let before = target - plan.interval;
    let first = upkeep::first_event(ch, EVENT_TYPE).await?;
    let floor = start - DAY;
    step("rollup: sealing the history (steps of a day), bootstrapping the experiment, compacting");
    let t = Instant::now();
    let session = seal::session(ch).await?;
    let mut sealed = None;
    while let Some((s0, s1)) = plan.next(sealed, first, before) {
        seal::level1(&session, m, (s0, s1), plan.k, plan.source(s0, floor), &mut NoFence).await?;
        sealed = Some(s1);
    }
    seal::bootstrap_level2(ch, EXPERIMENT, m, before, &mut NoFence).await?;
    upkeep::compact(ch, api::rollup::plan::yyyymm(now)).await?;
    let history = t.elapsed().as_secs_f64();
    let t = Instant::now();
    seal::level1(&session, m, (before, target), plan.k, plan.source(before, floor), &mut NoFence).await?;
    seal::level2(&session, EXPERIMENT, m, (before, target), &mut NoFence).await?;
    seal::drop_temporaries(&session).await?;
    let ten_minutes = t.elapsed().as_secs_f64();
    let tail: u64 = ch
        .query("SELECT count() FROM events_recent WHERE type = ? AND inserted_at >= toDateTime(?)")
        .bind(EVENT_TYPE)
        .bind(target)
        .fetch_one()
        .await?;
    Ok(Sealed { plan, target, history, ten_minutes, tail })
}

/// The raw query the api ran before the rollup (main until the rollup landed): events read
/// with `FINAL` and joined with the first exposures. Timed as a second baseline, so that the
/// raw fallback's choice (the arrays query) is measured on the same data in the same run.
const FINAL_JOIN_SQL: &str = "
SELECT
    variant,
    toUInt64(sum(n_users)) AS users,
    toUInt64(sum(n_converted)) AS converted_users,
    toUInt64(sum(n_events_total)) AS events,
    toFloat64(sum(n_events_sq)) AS events_sum_sq,
    toFloat64(sum(y_sum)) AS value_sum,
    toFloat64(sum(y_sum_sq)) AS value_sum_sq,
    toUInt64(sum(n_pre_converted)) AS pre_converted_users,
    toUInt64(sum(n_both)) AS converted_both,
    toFloat64(sum(x_sum)) AS pre_value_sum,
    toFloat64(sum(x_sum_sq)) AS pre_value_sum_sq,
    toFloat64(sum(xy_sum)) AS value_pre_value
FROM
(
    SELECT
        assigned_variant AS variant, count() AS n_users, 0 AS n_converted, 0 AS n_events_total, 0 AS n_events_sq,
        0. AS y_sum, 0. AS y_sum_sq, 0 AS n_pre_converted, 0 AS n_both, 0. AS x_sum, 0. AS x_sum_sq, 0. AS xy_sum
    FROM
    (
        SELECT user_id, argMin(variant, exposed_at) AS assigned_variant
        FROM exposures
        WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
        GROUP BY user_id
    )
    GROUP BY assigned_variant
    UNION ALL
    SELECT
        assigned_variant AS variant, 0 AS n_users,
        countIf(n_events > 0) AS n_converted, sum(n_events) AS n_events_total, sum(n_events * n_events) AS n_events_sq,
        sum(value) AS y_sum, sum(value * value) AS y_sum_sq,
        countIf(n_pre > 0) AS n_pre_converted, countIf(n_pre > 0 AND n_events > 0) AS n_both,
        sum(pre_value) AS x_sum, sum(pre_value * pre_value) AS x_sum_sq, sum(value * pre_value) AS xy_sum
    FROM
    (
        SELECT
            user_id,
            any(assigned_variant) AS assigned_variant,
            countIf(ts >= first_exposed) AS n_events,
            sumIf(v, ts >= first_exposed) AS value,
            countIf(ts < first_exposed) AS n_pre,
            sumIf(v, ts < first_exposed) AS pre_value
        FROM
        (
            SELECT user_id, timestamp AS ts, visitParamExtractFloat(properties, ?) AS v
            FROM events FINAL
            WHERE type = ? AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
        ) AS ev
        ALL INNER JOIN
        (
            SELECT user_id, min(exposed_at) AS first_exposed, argMin(variant, exposed_at) AS assigned_variant
            FROM exposures
            WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
            GROUP BY user_id
        ) AS ex USING user_id
        WHERE ts >= first_exposed - ?
        GROUP BY user_id
    )
    GROUP BY assigned_variant
)
GROUP BY variant";

async fn final_join(ch: &clickhouse::Client, q: &StatsQuery<'_>) -> anyhow::Result<Vec<VariantStats>> {
    Ok(ch
        .query(FINAL_JOIN_SQL)
        .bind(q.experiment_id)
        .bind(q.from)
        .bind(q.to)
        .bind(q.value_property)
        .bind(q.event_type)
        .bind(q.from.saturating_sub(q.cuped_seconds))
        .bind(q.to)
        .bind(q.experiment_id)
        .bind(q.from)
        .bind(q.to)
        .bind(q.cuped_seconds)
        .fetch_all::<VariantStats>()
        .await?)
}

/// One warm-up and `reps` timed runs of `query`: the times in ms and the last rows.
async fn timed<F, Fut, E>(reps: usize, query: F) -> anyhow::Result<(Vec<f64>, Vec<VariantStats>)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<VariantStats>, E>>,
    anyhow::Error: From<E>,
{
    let mut ms = Vec::new();
    let mut rows = Vec::new();
    for rep in 0..=reps {
        let t = Instant::now();
        rows = sorted(query().await?);
        if rep > 0 {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((ms, rows))
}

/// The rollup's line when a raw baseline failed: the failure in place of the baseline.
fn raw_failed(
    report: &mut Report,
    users: u64,
    events: u64,
    rolled_ms: &[f64],
    tail: u64,
    which: &str,
    e: &anyhow::Error,
) -> anyhow::Result<()> {
    let mut rolled_ms = rolled_ms.to_vec();
    let (r50, r_max) = median_max(&mut rolled_ms);
    let error = e.to_string().chars().take(160).collect::<String>();
    report.line(
        Line::new(
            format!("results on the rollup, {} users / {} events", human(users), human(events)),
            format!("rollup + tail ({} tail events): p50 {r50:.0} ms, max {r_max:.0} ms", human(tail)),
        )
        .baseline(format!("{which} failed: {error}"))
        .target("< 2 s", Some(r50 < 2000.0)),
    );
    Ok(())
}

fn sorted(mut rows: Vec<VariantStats>) -> Vec<VariantStats> {
    rows.sort_by(|a, b| a.variant.cmp(&b.variant));
    rows
}

/// Exposures over the last two days, events over the last three (inserted up to a minute
/// after their timestamp, never later than a minute ago), 1 % replayed an hour later.
async fn generate(ch: &clickhouse::Client, users: u64, events: u64, now: u32) -> anyhow::Result<()> {
    let last = now - 60;
    ch.query(
        "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at, inserted_at)
         SELECT ?, concat('u', toString(number)), if(number % 2 = 0, 'control', 'treatment'),
             toDateTime(? + intHash32(number) % ?) AS at, least(at + 5, toDateTime(?))
         FROM numbers(?)",
    )
    .bind(EXPERIMENT)
    .bind(now - 2 * DAY)
    .bind(2 * DAY - 3600)
    .bind(last)
    .bind(users)
    .execute()
    .await?;
    let chunk = 10_000_000u64;
    let mut offset = 0;
    while offset < events {
        let n = chunk.min(events - offset);
        ch.query(
            "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties, inserted_at)
             SELECT generateUUIDv4(), concat('u', toString(intHash32(number) % ?)), ?,
                 toDateTime(? + intHash32(number + 1) % ?) AS ts, ts,
                 concat('{\"value\":', toString(number % 100), '}'), least(ts + number % 60, toDateTime(?))
             FROM numbers(?, ?)",
        )
        .bind(users + users / 10)
        .bind(EVENT_TYPE)
        .bind(now - 3 * DAY)
        .bind(3 * DAY - 120)
        .bind(last)
        .bind(offset)
        .bind(n)
        .execute()
        .await?;
        offset += n;
    }
    ch.query(
        "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties, inserted_at)
         SELECT event_id, user_id, type, timestamp, received_at, properties, least(inserted_at + 3600, toDateTime(?))
         FROM events WHERE type = ? AND cityHash64(toString(event_id)) % 100 = 0",
    )
    .bind(last)
    .bind(EVENT_TYPE)
    .execute()
    .await?;
    Ok(())
}
