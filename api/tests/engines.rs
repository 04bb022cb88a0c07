//! Every ClickHouse statement of ours with the same data on two engines (the local stack's
//! ClickHouse 18.16 and a current release: ClickHouse 26.x via chdb behind
//! `scripts/chdb-server.py`) and on two deployments (one server, and the local cluster of
//! 2 shards x 2 replicas: `clickhouse.cluster`, `clickhouse/cluster/`). Migrations, the
//! consumer's RowBinary inserts, results, timeseries, event types and the experiment list's
//! counts must give the same answers. The results rollup's statements (seals in sessions):
//! `api/tests/engines_rollup.rs`.

mod support;

use std::time::Duration;

use api::storage::clickhouse::{self as ch, StatsQuery};
use common::{
    config::ClickHouseConfig,
    event::{EventEnvelope, ExposureEnvelope},
    testkit::random_name,
};
use consumer::rows::{self, Rows, Source, EVENTS, EXPOSURES};
use serde_json::value::RawValue;
use support::rows::Dropped;

const DAY: u32 = 86_400;
/// 2026-01-01T00:00:00Z.
const T0: u32 = 1_767_225_600;

fn engine(var: &str, default: &str) -> ClickHouseConfig {
    ClickHouseConfig {
        url: std::env::var(var).unwrap_or_else(|_| default.into()),
        database: random_name("abtest_engines"),
        ..ClickHouseConfig::default()
    }
}

/// The local cluster (scripts/cluster.sh) through its first node, and every node's URL.
fn cluster() -> (ClickHouseConfig, Vec<String>) {
    let nodes: Vec<String> = std::env::var("ABTESTKIT_CLICKHOUSE_CLUSTER_NODES")
        .unwrap_or_else(|_| {
            "http://127.0.0.1:8131,http://127.0.0.1:8132,http://127.0.0.1:8133,http://127.0.0.1:8134".into()
        })
        .split(',')
        .map(str::to_owned)
        .collect();
    let cfg = ClickHouseConfig {
        url: nodes[0].clone(),
        cluster: std::env::var("ABTESTKIT_CLICKHOUSE_CLUSTER").unwrap_or_else(|_| "abtest".into()),
        ..engine("", "")
    };
    (cfg, nodes)
}

/// A small deterministic generator (no dependency on rand's algorithms across versions).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Exposures in two inserts (replays: a later second exposure with another variant for
/// some users), events in three (duplicates of the same event id in a later insert; events
/// before exposure, long before, outside windows; numeric, nested, missing and
/// non-numeric values).
fn dataset() -> (Vec<Rows>, Vec<Rows>) {
    let mut rng = Lcg(20_261_130);
    let (mut exposures, mut replays) = (Rows::default(), Rows::default());
    let source = Source { partition: 0, offset: 0 };
    let mut first_exposure = Vec::new();
    for i in 0..300u32 {
        let user = format!("u{i}");
        let at = T0 + (i % 10) * DAY + i * 37;
        let variant = ["a", "b", "c"][rng.next(3) as usize];
        let envelope = |experiment_id, variant: &str, at: u32| {
            let mut e = ExposureEnvelope::new(
                experiment_id,
                variant.to_owned().into(),
                user.clone().into(),
                i64::from(at) * 1000,
            );
            if i % 5 == 0 {
                // what local evaluation and targeting add (clickhouse/004)
                e.forced = i % 10 == 0;
                e.exposure_id = Some(format!("x-{i}-{experiment_id}").into());
                e.attributes.insert("country".into(), ["DE", "FR"][(i % 2) as usize].into());
                e.attributes.insert("age".into(), (20 + i % 50).to_string().into());
            }
            e
        };
        exposures.push_exposure(&envelope(1, variant, at), source);
        if i % 2 == 0 {
            exposures.push_exposure(&envelope(2, ["x", "y"][rng.next(2) as usize], at + 3600), source);
        }
        if i % 17 == 0 {
            replays.push_exposure(&envelope(1, "c", at + 2 * DAY), source);
        }
        first_exposure.push(at);
    }
    let mut batches = vec![Rows::default(), Rows::default(), Rows::default()];
    let values = [
        r#"{"order_value":12.5}"#,
        r#"{"cart":{"order_value":3}}"#,
        r#"{"order_value":"x"}"#,
        r#"{}"#,
        r#"{"order_value":-2.25,"n":1}"#,
    ];
    for (i, at) in first_exposure.iter().enumerate() {
        for _ in 0..rng.next(9) {
            let offset = rng.next(40 * u64::from(DAY)) as i64 - 20 * i64::from(DAY);
            let ts = (i64::from(*at) + offset).max(0) as u32;
            let properties = RawValue::from_string(values[rng.next(5) as usize].to_owned()).expect("json");
            let event = EventEnvelope {
                v: 1,
                event_id: uuid::Uuid::from_u64_pair(rng.next(u64::MAX), i as u64),
                user_id: format!("u{i}").into(),
                event_type: ["purchase", "click"][rng.next(2) as usize].into(),
                timestamp_ms: i64::from(ts) * 1000,
                received_at_ms: i64::from(ts) * 1000,
                properties: &properties,
            };
            let batch = rng.next(2) as usize;
            batches[batch].push_event(&event, source);
            if rng.next(20) == 0 {
                batches[2].push_event(&event, source); // the same event id again, later
            }
        }
    }
    (vec![exposures, replays], batches)
}

async fn load(cfg: &ClickHouseConfig) -> clickhouse::Client {
    let applied = common::clickhouse::migrate(cfg).await.unwrap_or_else(|e| panic!("{}: migrations: {e}", cfg.url));
    let files =
        if cfg.cluster.is_empty() { common::clickhouse::MIGRATIONS } else { common::clickhouse::CLUSTER_MIGRATIONS };
    assert_eq!(applied.len(), files.len(), "{}", cfg.url);
    assert!(common::clickhouse::migrate(cfg).await.expect("again").is_empty(), "{}: applied once", cfg.url);
    let client = common::clickhouse::client(cfg).expect("client");
    let (exposures, events) = dataset();
    for r in &exposures {
        rows::insert(&client, EXPOSURES, r.bytes(0..r.len()), Duration::from_secs(30)).await.expect("exposures");
    }
    for r in &events {
        rows::insert(&client, EVENTS, r.bytes(0..r.len()), Duration::from_secs(30)).await.expect("events");
    }
    client
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn same_stats(a: &ch::VariantStats, b: &ch::VariantStats) -> bool {
    let ints = |s: &ch::VariantStats| {
        (s.variant.clone(), s.users, s.converted_users, s.events, s.pre_converted_users, s.converted_both)
    };
    let floats = |s: &ch::VariantStats| {
        [s.events_sum_sq, s.value_sum, s.value_sum_sq, s.pre_value_sum, s.pre_value_sum_sq, s.value_pre_value]
    };
    ints(a) == ints(b) && floats(a).iter().zip(floats(b)).all(|(x, y)| close(*x, y))
}

#[tokio::test]
async fn every_statement_answers_the_same_on_18_16_and_a_current_release() {
    let old = engine("ABTESTKIT_CLICKHOUSE_URL", "http://127.0.0.1:8123");
    let current = engine("ABTESTKIT_CURRENT_CLICKHOUSE_URL", "http://127.0.0.1:8124");
    let _drop = Dropped(vec![old.clone(), current.clone()]);
    let (a, b) = (load(&old).await, load(&current).await);
    let version = |c: clickhouse::Client| async move {
        c.query("SELECT version()").fetch_one::<String>().await.expect("version")
    };
    let (va, vb) = (version(a.clone()).await, version(b.clone()).await);
    assert!(
        va.starts_with("18.16") && vb.split('.').next().and_then(|m| m.parse::<u32>().ok()) >= Some(24),
        "{va} vs {vb}"
    );
    for c in [&a, &b] {
        merge_duplicates(std::slice::from_ref(c), std::slice::from_ref(c), "events").await;
    }
    same_answers(&a, &b).await;
}

/// The cluster answers as one server does, holds each user's rows on the user's shard
/// only, and both replicas of a shard hold the same rows.
#[tokio::test]
async fn every_statement_answers_the_same_on_one_server_and_a_cluster() {
    let single = engine("ABTESTKIT_CLICKHOUSE_URL", "http://127.0.0.1:8123");
    let (cluster, nodes) = cluster();
    let _drop = Dropped(vec![single.clone(), cluster.clone()]);
    let (a, b) = (load(&single).await, load(&cluster).await);
    merge_duplicates(std::slice::from_ref(&a), std::slice::from_ref(&a), "events").await;
    let node = |i: usize| {
        common::clickhouse::client(&ClickHouseConfig { url: nodes[i].clone(), ..cluster.clone() }).expect("client")
    };
    let replicas: Vec<clickhouse::Client> = (0..nodes.len()).map(node).collect();
    // One replica of each shard merges, the other gets the merge through the replication log.
    merge_duplicates(&[replicas[0].clone(), replicas[2].clone()], &replicas, "events_local").await;
    for (i, url) in nodes.iter().enumerate() {
        let c = node(i);
        c.query("SYSTEM SYNC REPLICA exposures_local").execute().await.expect("sync exposures");
        let (shard, total) = ((i / 2) as u64, 2u64);
        for table in ["events_local", "exposures_local"] {
            let (rows, elsewhere) = c
                .query(&format!("SELECT count(), countIf(cityHash64(user_id) % ? != ?) FROM {table}"))
                .bind(total)
                .bind(shard)
                .fetch_one::<(u64, u64)>()
                .await
                .expect("shard rows");
            assert!(rows > 0 && elsewhere == 0, "{url} {table}: {rows} rows, {elsewhere} of another shard's users");
        }
    }
    // Every column of every row. Background merges run on each replica after its sync, so
    // the replicas are compared until they agree (they converge), within a deadline.
    let fingerprint = |c: clickhouse::Client| async move {
        for table in ["events_local", "exposures_local"] {
            c.query(&format!("SYSTEM SYNC REPLICA {table}")).execute().await.expect("sync");
        }
        let events = "SELECT count(), sum(cityHash64(toString(event_id), user_id, type, properties, \
                      timestamp, received_at, inserted_at)) FROM events_local";
        let exposures = "SELECT count(), sum(cityHash64(experiment_id, user_id, variant, exposed_at, forced, \
                         attribute_keys, attribute_values, exposure_id, inserted_at)) FROM exposures_local";
        let mut out = Vec::new();
        for sql in [events, exposures] {
            out.push(c.query(sql).fetch_one::<(u64, u64)>().await.expect("fingerprint"));
        }
        out
    };
    for shard in [0, 2] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (x, y) = (fingerprint(node(shard)).await, fingerprint(node(shard + 1)).await);
            if x == y {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "replicas of shard {shard} differ: {x:?} {y:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    same_answers(&a, &b).await;
}

/// Event types count rows, not distinct ids ("a replayed event may count twice"), so they
/// are compared once merges have collapsed the duplicates: `OPTIMIZE ... FINAL` of `table`
/// on `mergers` until every event id is one row on each of `replicas` (on a cluster, after
/// `SYNC REPLICA`). A merge asked for while parts are busy (being merged, or fetched by the
/// other replica) can be skipped, so it is asked again, within a deadline.
async fn merge_duplicates(mergers: &[clickhouse::Client], replicas: &[clickhouse::Client], table: &str) {
    let replicated = table.ends_with("_local");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        for c in mergers {
            c.query(&format!("OPTIMIZE TABLE {table} FINAL")).execute().await.expect("optimize");
        }
        let mut merged = true;
        for c in replicas {
            if replicated {
                c.query(&format!("SYSTEM SYNC REPLICA {table}")).execute().await.expect("sync");
            }
            let once: u8 = c
                .query(&format!("SELECT count() = uniqExact(event_id) FROM {table}"))
                .fetch_one()
                .await
                .expect("count");
            merged &= once == 1;
        }
        if merged {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "duplicates of {table} still unmerged after 90 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every read statement gives the same answer on `a` and on `b`.
async fn same_answers(a: &clickhouse::Client, b: &clickhouse::Client) {
    let everyone = ("", "");
    let questions = [
        (1, "purchase", "order_value", T0 - 30 * DAY, T0 + 40 * DAY, 14, everyone),
        (1, "click", "", T0 - 30 * DAY, T0 + 40 * DAY, 0, everyone),
        (1, "purchase", "missing", T0 + 2 * DAY, T0 + 9 * DAY, 7, everyone),
        (2, "purchase", "order_value", T0 + 3 * DAY, T0 + 10 * DAY, 14, everyone),
        (2, "click", "n", T0 - 30 * DAY, T0 + 40 * DAY, 365, everyone),
        // Users with attributes: every 5th; of them the even ones are forced (left out).
        (1, "purchase", "order_value", T0 - 30 * DAY, T0 + 40 * DAY, 14, ("country", "FR")),
        (1, "click", "", T0 - 30 * DAY, T0 + 40 * DAY, 0, ("age", "25")),
    ];
    for (experiment_id, event_type, value_property, from, to, cuped_days, segment) in questions {
        let cuped_seconds = cuped_days * DAY;
        let q = StatsQuery {
            experiment_id,
            event_type,
            value_property,
            from,
            to,
            cuped_seconds,
            segment,
            ..Default::default()
        };
        let mut x = ch::variant_stats(a, &q).await.expect("results");
        let mut y = ch::variant_stats(b, &q).await.expect("results");
        x.sort_by(|l, r| l.variant.cmp(&r.variant));
        y.sort_by(|l, r| l.variant.cmp(&r.variant));
        assert!(!x.is_empty() && x.iter().any(|s| s.converted_users > 0), "{event_type}: data to compare");
        assert!(
            x.len() == y.len() && x.iter().zip(&y).all(|(l, r)| same_stats(l, r)),
            "{experiment_id} {event_type}:\n{x:?}\n{y:?}"
        );

        let q = ch::DaysQuery { experiment_id, event_type, from, to, segment };
        let mut x = ch::day_stats(a, &q).await.expect("timeseries");
        let mut y = ch::day_stats(b, &q).await.expect("timeseries");
        let key = |s: &ch::DayStats| (s.variant.clone(), s.day.clone(), s.exposed_users, s.converted_users);
        let (mut x, mut y): (Vec<_>, Vec<_>) =
            (x.drain(..).map(|s| key(&s)).collect(), y.drain(..).map(|s| key(&s)).collect());
        x.sort();
        y.sort();
        assert!(!x.is_empty());
        assert_eq!(x, y, "{experiment_id} {event_type} timeseries");
    }
    catalog_answers(a, b).await;
    assert_eq!(ch::exposed_users(a, 1, 2).await.expect("users"), ch::exposed_users(b, 1, 2).await.expect("users"));
    #[derive(clickhouse::Row, serde::Deserialize, Debug, PartialEq)]
    struct Attributed {
        experiment_id: u64,
        user_id: String,
        forced: u8,
        attribute_keys: Vec<String>,
        attribute_values: Vec<String>,
        exposure_id: String,
    }
    let attributes = |c: clickhouse::Client| async move {
        // Each user's earliest exposure (what merges keep; FINAL does not work through a
        // cluster's Distributed table).
        c.query(
            "SELECT experiment_id, user_id, argMin(forced, exposed_at) AS f, argMin(attribute_keys, exposed_at) AS k, \
             argMin(attribute_values, exposed_at) AS vs, argMin(exposure_id, exposed_at) AS x FROM exposures \
             GROUP BY experiment_id, user_id HAVING length(k) > 0 OR f = 1 OR x != '' ORDER BY experiment_id, user_id",
        )
        .fetch_all::<Attributed>()
        .await
        .expect("exposure attributes")
    };
    let (x, y) = (attributes(a.clone()).await, attributes(b.clone()).await);
    assert!(x.len() > 50 && x.iter().any(|r| r.forced == 1), "{x:?}");
    assert_eq!(x, y, "the columns of clickhouse/004 hold the same on both");
    let types = |c: clickhouse::Client| async move {
        let mut t: Vec<(String, u64)> = ch::event_types(&c, 0, u32::MAX)
            .await
            .expect("event types")
            .into_iter()
            .map(|t| (t.event_type, t.events))
            .collect();
        t.sort();
        t
    };
    let (x, y) = (types(a.clone()).await, types(b.clone()).await);
    assert_eq!(x.len(), 2);
    assert_eq!(x, y);
}

/// The catalog's statements (filters, window, capping, ratios, quantiles, a breakdown's
/// values and its `other` slice) answer the same on `a` and on `b`.
async fn catalog_answers(a: &clickhouse::Client, b: &clickhouse::Client) {
    let filters = vec![("/n".to_owned(), "1".to_owned())];
    let base = StatsQuery {
        experiment_id: 1,
        event_type: "purchase",
        value_property: "order_value",
        from: T0 - 30 * DAY,
        to: T0 + 40 * DAY,
        ..Default::default()
    };
    let rest = vec!["FR".to_owned()];
    let refined = [
        StatsQuery { refine: ch::Refine { window_seconds: Some(3 * DAY), ..Default::default() }, ..base.clone() },
        StatsQuery { refine: ch::Refine { cap: Some(ch::Cap::Absolute(5.0)), ..Default::default() }, ..base.clone() },
        StatsQuery { refine: ch::Refine { cap: Some(ch::Cap::Percentile(0.9)), ..Default::default() }, ..base.clone() },
        StatsQuery { refine: ch::Refine { filters: &filters, ..Default::default() }, ..base.clone() },
        StatsQuery { segment: ("country", ""), rest: &rest, ..base.clone() },
    ];
    for (i, q) in refined.iter().enumerate() {
        let mut x = ch::variant_stats(a, q).await.unwrap_or_else(|e| panic!("refined {i}: {e}"));
        let mut y = ch::variant_stats(b, q).await.unwrap_or_else(|e| panic!("refined {i}: {e}"));
        x.sort_by(|l, r| l.variant.cmp(&r.variant));
        y.sort_by(|l, r| l.variant.cmp(&r.variant));
        assert!(!x.is_empty() && x.iter().any(|s| s.users > 0), "refined {i}: data");
        assert!(x.len() == y.len() && x.iter().zip(&y).all(|(l, r)| same_stats(l, r)), "refined {i}:\n{x:?}\n{y:?}");
    }
    let (numerator, denominator) = (
        ch::Part { event_type: "purchase", value_property: Some("order_value") },
        ch::Part { event_type: "click", value_property: None },
    );
    let ratio = |c| {
        let q = base.clone();
        async move {
            let mut rows = ch::ratio_stats(c, &q, numerator, denominator).await.expect("ratio");
            rows.sort_by(|l, r| l.variant.cmp(&r.variant));
            rows.into_iter()
                .map(|r| (r.variant, r.users, [r.num_sum, r.num_sum_sq, r.den_sum, r.den_sum_sq, r.num_den]))
                .collect::<Vec<_>>()
        }
    };
    let (x, y) = (ratio(a).await, ratio(b).await);
    assert!(!x.is_empty() && x.iter().any(|r| r.2[2] > 0.0), "ratio data: {x:?}");
    let same = |p: &[f64], q: &[f64]| p.iter().zip(q).all(|(u, v)| close(*u, *v));
    assert!(
        x.len() == y.len() && x.iter().zip(&y).all(|(l, r)| l.0 == r.0 && l.1 == r.1 && same(&l.2, &r.2)),
        "{x:?}\n{y:?}"
    );
    let quantile = |c| {
        let q = base.clone();
        async move {
            let mut rows = ch::quantile_stats(c, &q, 0.5, 0.05).await.expect("quantile");
            rows.sort_by(|l, r| l.variant.cmp(&r.variant));
            rows.into_iter().map(|r| (r.variant, r.n, [r.value, r.lo, r.hi])).collect::<Vec<_>>()
        }
    };
    let (x, y) = (quantile(a).await, quantile(b).await);
    assert!(!x.is_empty() && x.iter().all(|r| r.1 > 0), "quantile data: {x:?}");
    assert!(
        x.len() == y.len() && x.iter().zip(&y).all(|(l, r)| l.0 == r.0 && l.1 == r.1 && same(&l.2, &r.2)),
        "{x:?}\n{y:?}"
    );
    let top = |c| {
        let q = base.clone();
        async move {
            let rows = ch::top_values(c, &q, "country", 5).await.expect("top values");
            rows.into_iter().map(|r| (r.value, r.users)).collect::<Vec<_>>()
        }
    };
    let (x, y) = (top(a).await, top(b).await);
    assert!(x.iter().any(|(v, _)| v == "FR"), "{x:?}"); // the DE users are all forced
    assert_eq!(x, y, "top values");
}
