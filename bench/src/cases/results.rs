//! Results: the experiment results endpoint against a hand-written query for the same numbers.
//!
//! Datasets are generated inside ClickHouse (INSERT ... SELECT FROM numbers) for an
//! experiment created through the API (two variants 50/50; every user exposed, events spread
//! by intHash32 over the users, a numeric `value` property), reused by later runs while
//! intact. Timed repetitions after one warm-up, sequential: `GET /experiments/{id}/results`
//! against `clickhouse-client --time` running [`hand_written_sql`], the straightforward query
//! (each event id once by GROUP BY user_id, event_id, every exposed user joined with their
//! events; without the CUPED sums the API also computes), users checked equal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::config::Config;

use super::{human, median_max, step, Sizes};
use crate::{stack::Stack, Line, Report};

pub(super) async fn results(s: &Stack, config: &Config, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let db = sqlx::PgPool::connect(config.postgres.url.expose()).await?;
    for (users, events) in sizes.results {
        compare(s, &db, sizes, users, events, report).await?;
    }
    report.note(format!(
        "results: datasets generated inside ClickHouse (INSERT ... SELECT FROM numbers) for an experiment created \
         through the API (two variants 50/50; every user exposed, events spread by intHash32 over the users, a \
         numeric `value` property), reused by later runs while intact. {} timed repetitions after one warm-up, \
         sequential: GET /experiments/{{id}}/results?event_type=...&value_property=value against \
         `clickhouse-client --time` running a hand-written query for the same users, conversions, events and value \
         sums (the straightforward SQL: each event id once by GROUP BY user_id, event_id, every exposed user joined \
         with their events; without the CUPED sums the API also computes; users checked equal). The case name \
         says which path of the api answered (`abtest_results_total{{source}}`): `rollup`, or the raw events \
         (`raw_not_sealed`: the metric awaits its first seal; the sealer starts `rollup.future_bound` + \
         `rollup.lag` after the ClickHouse DDL was applied, so a freshly migrated stack answers raw); the \
         `rollup` case times the rollup path itself.",
        sizes.result_reps
    ));
    Ok(())
}

/// One dataset of `users` users and `events` events: the API against the hand-written query.
async fn compare(
    s: &Stack,
    db: &sqlx::PgPool,
    sizes: &Sizes,
    users: u64,
    events: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let id = results_dataset(s, db, users, events).await?;
    let event_type = format!("bench_buy_{id}");
    let created = created_at(s, id).await?;
    let url = format!("http://{}/experiments/{id}/results?event_type={event_type}&value_property=value", s.api);
    step(&format!("results: {users} users / {events} events, {} repetitions each", sizes.result_reps));
    let before = answers_by_source(s).await?;
    let (mut api_ms, api_users) = time_api(s, &url, sizes.result_reps).await?;
    let source = answered_from(&before, &answers_by_source(s).await?);
    // The same numbers by a hand-written query: the straightforward one (each event id
    // once by GROUP BY, every exposed user joined with their events), literals inlined.
    let from = created.timestamp() - 1;
    let to = chrono::Utc::now().timestamp() + 3600;
    let sql = hand_written_sql(id, &event_type, "value", from, to);
    let (mut ch_ms, ch_users) = time_hand_written(s, &sql, sizes.result_reps).await?;
    if ch_users != api_users || api_users != users {
        bail!("results disagree: api {api_users} users, hand-written query {ch_users}, dataset {users}");
    }
    let (a50, a_max) = median_max(&mut api_ms);
    let (c50, c_max) = median_max(&mut ch_ms);
    let ratio = a50 / c50;
    report.line(
        Line::new(
            format!("results {} users / {} events (api: {source})", human(users), human(events)),
            format!("p50 {a50:.0} ms, max {a_max:.0} ms"),
        )
        .baseline(format!("clickhouse-client, hand-written SQL: p50 {c50:.0} ms, max {c_max:.0} ms"))
        .ratio(ratio)
        .target("<= 1.2x and < 1 s", Some(ratio <= 1.2 && a50 < 1000.0)),
    );
    Ok(())
}

/// The api's results answers so far by source (`abtest_results_total{source="..."}`).
async fn answers_by_source(s: &Stack) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = s.http.get(format!("http://{}/prometheus", s.api)).send().await?.text().await?;
    let prefix = "abtest_results_total{source=\"";
    Ok(text
        .lines()
        .filter_map(|l| {
            let (source, value) = l.strip_prefix(prefix)?.split_once("\"} ")?;
            Some((source.to_owned(), value.parse().ok()?))
        })
        .collect())
}

/// Which sources answered between two readings of [`answers_by_source`], e.g. `raw_not_sealed`.
fn answered_from(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let grown: Vec<&str> = after
        .iter()
        .filter(|(k, v)| **v > before.get(*k).copied().unwrap_or_default())
        .map(|(k, _)| k.as_str())
        .collect();
    if grown.is_empty() {
        "unknown".into()
    } else {
        grown.join(" + ")
    }
}

/// When experiment `id` was created, as the API reports it.
async fn created_at(s: &Stack, id: i64) -> anyhow::Result<chrono::DateTime<chrono::FixedOffset>> {
    let exp: serde_json::Value =
        s.http.get(format!("http://{}/experiments/{id}", s.api)).bearer_auth(&s.api_key).send().await?.json().await?;
    exp["created_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .context("experiment created_at")
}

/// One warm-up and `reps` timed requests to the results `url`: the times in ms and the users
/// of the last answer, summed over the variants.
async fn time_api(s: &Stack, url: &str, reps: usize) -> anyhow::Result<(Vec<f64>, u64)> {
    let mut api_ms = Vec::new();
    let mut api_users = 0u64;
    for rep in 0..=reps {
        let t = Instant::now();
        let resp = s.http.get(url).bearer_auth(&s.api_key).send().await?;
        if !resp.status().is_success() {
            bail!("results answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let body: serde_json::Value = resp.json().await?;
        if rep > 0 {
            api_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        api_users =
            body["variants"].as_array().map(|v| v.iter().filter_map(|x| x["users"].as_u64()).sum()).unwrap_or_default();
    }
    Ok((api_ms, api_users))
}

/// One warm-up and `reps` timed runs of `sql` by `clickhouse-client --time`: the times in ms
/// (as the client measures them) and the users of the last answer, summed over the variants.
async fn time_hand_written(s: &Stack, sql: &str, reps: usize) -> anyhow::Result<(Vec<f64>, u64)> {
    let mut ch_ms = Vec::new();
    let mut ch_users = 0u64;
    for rep in 0..=reps {
        let out = tokio::process::Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &s.clickhouse_tcp_port.to_string(), "--database", &s.clickhouse_db])
            .args(["--time", "--query"])
            .arg(sql)
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
    Ok((ch_ms, ch_users))
}

/// The straightforward query for the numbers the results endpoint gives (each event id once by
/// GROUP BY user_id, event_id, every exposed user joined with their events; without the CUPED
/// sums), literals inlined.
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

/// An experiment named `name` with two variants 50/50, created through the API: its id.
pub(super) async fn create_experiment(s: &Stack, name: &str) -> anyhow::Result<i64> {
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
        "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) \
         SELECT {id}, concat('b{id}-', toString(number)), \
         if(number % 2 = 0, 'control', 'treatment'), now() FROM numbers({users})"
    ))
    .await?;
    s.ch(&format!(
        "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties) SELECT generateUUIDv4(), concat('b{id}-', toString(intHash32(number) % {users})), \
         'bench_buy_{id}', now(), now(), concat('{{\"value\":', toString(number % 100), '}}') FROM numbers({events})"
    ))
    .await?;
    Ok(id)
}
