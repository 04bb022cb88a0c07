//! The results rollup's statements (`api/src/storage/rollup/`: level 1 from `events FINAL`
//! and from `events_recent`, level 2, bootstrap, a level 2 from `metric_log` in a new
//! session, the seal markers, the results from rollup + tail, the `throwIf` of a seal that
//! landed, compaction) on the two engines of `api/tests/engines.rs`: the local stack's
//! ClickHouse 18.16 and a current release (ClickHouse 26.x via chdb behind
//! `scripts/chdb-server.py`, whose sessions give the seals their temporary tables). On
//! each engine the rollup's answer equals the raw query's (`RESULTS_SQL`), and both
//! engines give the same rows, at every stage.
//!
//! The timeline is written, not waited for: every row carries its `inserted_at` (long
//! before now), seals are run for chosen intervals through the storage API with
//! [`NoFence`], and the data is the same on both engines. Values are multiples of 1/4:
//! sums are exact in any order and compared with `==`.

mod support;

use api::{
    rollup::plan::yyyymm,
    storage::{
        clickhouse::{self as raw, StatsQuery, VariantStats},
        rollup::{
            self as store, read,
            seal::{self, EventSource, Metric, NoFence},
            upkeep, RawReason, Source,
        },
    },
};
use common::{config::ClickHouseConfig, testkit::random_name};
use support::rows::{same, sorted, Dropped};

const HOUR: u32 = 3600;
const DAY: u32 = 86_400;
/// `rollup.future_bound` (K).
const K: u32 = 2 * HOUR;
/// 2026-01-01T00:00:00Z: the timeline is in the past of both engines' clocks.
const T0: u32 = 1_767_225_600;
/// The ends of the seals.
const S: [u32; 4] = [T0 + 6 * HOUR, T0 + 12 * HOUR, T0 + 12 * HOUR + 600, T0 + 13 * HOUR + 600];
const METRICS: [Metric<'static>; 2] =
    [Metric { event_type: "purchase", value_property: "amount" }, Metric { event_type: "click", value_property: "" }];

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(n.max(1))) as u32
    }
}

#[derive(Debug, Clone, clickhouse::Row, serde::Serialize)]
struct Exposure {
    experiment_id: u64,
    user_id: String,
    variant: String,
    exposed_at: u32,
    forced: u8,
    inserted_at: u32,
}

#[derive(Debug, Clone, clickhouse::Row, serde::Serialize)]
struct Event {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: uuid::Uuid,
    user_id: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: u32,
    received_at: u32,
    properties: String,
    inserted_at: u32,
}

/// Users 0..50 in experiment 1 (a, b), 20..60 in experiment 2 (x, y), exposed in the first
/// five hours; users 7 and 33 are forced (their exposures never count); 60..64 are never
/// exposed. Then: users 50..55 exposed after the first seal, user 3's earlier exposure
/// arriving after it (its state is rebuilt). Events around each user's exposure (before
/// it too), some with timestamps ahead of insertion (< K), some late (inserted hours
/// after their timestamp, after seals), some ids twice in one insert, and the first
/// stage's events replayed after the first seal.
fn dataset() -> (Vec<Exposure>, Vec<Event>) {
    let mut rng = Lcg(20_261_130);
    let mut exposures = Vec::new();
    let exposure = |experiment_id, user: u32, variant: &str, at: u32, inserted_at: u32| Exposure {
        experiment_id,
        user_id: format!("u{user}"),
        variant: variant.to_owned(),
        exposed_at: at,
        forced: u8::from(user == 7 || user == 33),
        inserted_at,
    };
    for user in 0..60 {
        for (experiment, range, variants) in [(1, 0..50, ["a", "b"]), (2, 20..60, ["x", "y"])] {
            if range.contains(&user) {
                let at = T0 + rng.below(5 * HOUR);
                let variant = variants[rng.below(2) as usize];
                exposures.push(exposure(experiment, user, variant, at, at + rng.below(60)));
            }
        }
    }
    for user in 50..55 {
        let at = S[0] + rng.below(4 * HOUR);
        exposures.push(exposure(1, user, ["a", "b"][user as usize % 2], at, at + 30));
    }
    exposures.push(exposure(1, 3, "b", T0, S[0] + 1800));

    let mut events = Vec::new();
    for user in 0..64u32 {
        for i in 0..3 + rng.below(6) {
            let ts = T0 + rng.below(11 * HOUR);
            let inserted_at = match rng.below(10) {
                0 => ts + 3 * HOUR + rng.below(6 * HOUR),        // late
                1 => ts.saturating_sub(rng.below(HOUR)).max(T0), // ahead of insertion
                _ => ts + rng.below(60),
            };
            let quarters = rng.below(160) as i32 - 40;
            let properties = if rng.below(8) == 0 {
                "{\"other\":1}".to_owned()
            } else {
                format!("{{\"amount\":{}}}", f64::from(quarters) / 4.0)
            };
            let event = Event {
                event_id: uuid::Uuid::from_u64_pair(u64::from(user), u64::from(i)),
                user_id: format!("u{user}"),
                kind: ["purchase", "purchase", "click"][rng.below(3) as usize].to_owned(),
                timestamp: ts,
                received_at: ts,
                properties,
                inserted_at,
            };
            if rng.below(10) == 0 {
                events.push(event.clone()); // the same id twice in one insert
            }
            if event.inserted_at < S[0] && rng.below(4) == 0 {
                // replayed after the first seal (a consumer that did not commit)
                events.push(Event { inserted_at: S[0] + 900 + rng.below(HOUR), ..event.clone() });
            }
            events.push(event);
        }
    }
    (exposures, events)
}

struct Engine {
    name: &'static str,
    ch: clickhouse::Client,
    version: String,
}

async fn engine(name: &'static str, cfg: &ClickHouseConfig) -> Engine {
    let applied = common::clickhouse::migrate(cfg).await.unwrap_or_else(|e| panic!("{name}: migrations: {e}"));
    assert_eq!(applied.len(), common::clickhouse::MIGRATIONS.len(), "{name}");
    let ch = common::clickhouse::client(cfg).expect("client");
    // The recent tables of a new database hold every row inserted into it: say so from
    // before the timeline (the migration dated the floor now).
    for sql in ["DROP TABLE recent_floor", "CREATE TABLE recent_floor (since DateTime) ENGINE = TinyLog"] {
        ch.query(sql).execute().await.unwrap_or_else(|e| panic!("{name}: {sql}: {e}"));
    }
    upkeep::raise_floor(&ch, T0 - 3 * HOUR).await.expect("floor");
    let version = ch.query("SELECT version()").fetch_one::<String>().await.expect("version");
    Engine { name, ch, version }
}

impl Engine {
    /// Inserts the rows with `inserted_at` in `[from, to)`.
    async fn insert(&self, (exposures, events): &(Vec<Exposure>, Vec<Event>), from: u32, to: u32) {
        let mut insert = self.ch.insert::<Exposure>("exposures").await.expect("insert");
        for row in exposures.iter().filter(|r| (from..to).contains(&r.inserted_at)) {
            insert.write(row).await.expect("exposure");
        }
        insert.end().await.unwrap_or_else(|e| panic!("{}: exposures: {e}", self.name));
        let mut insert = self.ch.insert::<Event>("events").await.expect("insert");
        for row in events.iter().filter(|r| (from..to).contains(&r.inserted_at)) {
            insert.write(row).await.expect("event");
        }
        insert.end().await.unwrap_or_else(|e| panic!("{}: events: {e}", self.name));
    }

    /// Level 1 of `(s0, s1)` for every metric, each in a session of its own, then level 2
    /// of each metric for `experiments` in that session or, with `new_session`, in a new
    /// one from `metric_log` (a seal interrupted between its levels); `bootstrap`:
    /// experiments sealed for the first time, from the metric's log. The metrics' sessions
    /// are open at the same time: each level 2 must read its own metric's temporary `iv`.
    async fn seal(&self, (s0, s1): (u32, u32), experiments: &[u64], bootstrap: &[u64], new_session: bool) {
        let what = |e| format!("{}: seal ({s0}, {s1}): {e:?}", self.name);
        let source = if s0 == 0 { EventSource::Final } else { EventSource::Recent };
        let mut sessions = Vec::new();
        for m in METRICS {
            let session = seal::session(&self.ch).await.unwrap_or_else(|e| panic!("{}", what(e)));
            seal::level1(&session, m, (s0, s1), K, source, &mut NoFence)
                .await
                .unwrap_or_else(|e| panic!("{}", what(e)));
            sessions.push(session);
        }
        for (m, session) in METRICS.into_iter().zip(sessions) {
            let session = if new_session {
                seal::drop_temporaries(&session).await.expect("drop temporaries");
                let other = seal::session(&self.ch).await.expect("session");
                seal::interval_from_log(&other, m, (s0, s1)).await.unwrap_or_else(|e| panic!("{}", what(e)));
                other
            } else {
                session
            };
            for id in experiments {
                seal::level2(&session, *id, m, (s0, s1), &mut NoFence).await.unwrap_or_else(|e| panic!("{}", what(e)));
            }
            seal::drop_temporaries(&session).await.expect("drop temporaries");
            for id in bootstrap {
                seal::bootstrap_level2(&self.ch, *id, m, s1, &mut NoFence)
                    .await
                    .unwrap_or_else(|e| panic!("{}", what(e)));
            }
        }
    }

    /// Every question from the rollup (experiment `i + 1` sealed to `sealed[i]`, `None`: not
    /// yet, raw) and from the raw events: the same rows; returns them with the seal markers'
    /// state, for the other engine.
    async fn answers(&self, stage: &str, sealed: [Option<u32>; 2]) -> Vec<(Vec<VariantStats>, [store::Seals; 2])> {
        let mut out = Vec::new();
        for (experiment_id, m, cuped_days) in
            [(1, METRICS[0], 14), (1, METRICS[1], 0), (2, METRICS[0], 1), (2, METRICS[1], 7)]
        {
            let expected = match sealed[experiment_id as usize - 1] {
                Some(sealed_to) => Source::Rollup { sealed_to },
                None => Source::Raw(RawReason::NotSealed),
            };
            let q = StatsQuery {
                experiment_id,
                event_type: m.event_type,
                value_property: m.value_property,
                from: T0 - 60,
                to: T0 + 30 * DAY,
                cuped_seconds: cuped_days * DAY,
                segment: ("", ""),
                ..Default::default()
            };
            let what = format!("{}, {stage}: experiment {experiment_id} {m:?}", self.name);
            let want = sorted(raw::variant_stats(&self.ch, &q).await.unwrap_or_else(|e| panic!("{what}: raw: {e}")));
            assert!(want.iter().any(|s| s.converted_users > 0), "{what}: data\n{want:?}");
            assert!(cuped_days == 0 || want.iter().any(|s| s.pre_converted_users > 0), "{what}: data\n{want:?}");
            let (rows, source) = store::variant_stats(&self.ch, &q, Some(K)).await.expect("results");
            assert_eq!(source, expected, "{what}");
            let rows = sorted(rows);
            assert!(same(&rows, &want), "{what}: rollup\n{rows:#?}\nraw\n{want:#?}");
            let seals = [
                store::metric_seals(&self.ch, m.event_type, m.value_property).await.expect("seals"),
                store::experiment_seals(&self.ch, experiment_id as u64, m.event_type, m.value_property)
                    .await
                    .expect("seals"),
            ];
            out.push((rows, seals));
        }
        out
    }

    /// Where a metric's history starts; the recent tables' days, dropped once the floor
    /// has passed them.
    async fn upkeep(&self, events: &[Event]) {
        let first = events.iter().filter(|r| r.kind == "purchase").map(|r| r.timestamp).min();
        assert_eq!(upkeep::first_event(&self.ch, "purchase").await.expect("first event"), first, "{}", self.name);
        let days = upkeep::recent_partitions(&self.ch).await.expect("partitions");
        let mut named: Vec<_> = days.iter().map(|p| (p.table.clone(), p.day)).collect();
        named.sort();
        let day = |table: &str| (table.to_owned(), yyyymm(T0) * 100 + 1);
        assert_eq!(named, [day("events_recent"), day("exposures_recent")], "{}", self.name);
        upkeep::raise_floor(&self.ch, T0 + DAY).await.expect("floor");
        for p in &days {
            upkeep::drop_partition(&self.ch, p).await.unwrap_or_else(|e| panic!("{}: {e:?}", self.name));
        }
        assert!(upkeep::recent_partitions(&self.ch).await.expect("partitions").is_empty(), "{}", self.name);
    }
}

/// Both engines' answers at one stage: the rollup equals the raw query on each, and the
/// engines agree.
async fn check(engines: &[Engine; 2], stage: &str, sealed: [Option<u32>; 2]) {
    let old = engines[0].answers(stage, sealed).await;
    let current = engines[1].answers(stage, sealed).await;
    for ((a, seals_a), (b, seals_b)) in old.iter().zip(&current) {
        assert!(same(a, b), "{stage}: 18.16\n{a:#?}\ncurrent\n{b:#?}");
        assert_eq!(seals_a, seals_b, "{stage}: seal markers");
    }
}

fn config(var: &str, default: &str) -> ClickHouseConfig {
    ClickHouseConfig {
        url: std::env::var(var).unwrap_or_else(|_| default.into()),
        database: random_name("abtest_engines_rollup"),
        ..ClickHouseConfig::default()
    }
}

#[tokio::test]
async fn the_rollup_answers_as_the_raw_events_on_18_16_and_a_current_release() {
    let configs = [
        config("ABTESTKIT_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
        config("ABTESTKIT_CURRENT_CLICKHOUSE_URL", "http://127.0.0.1:8124"),
    ];
    let _drop = Dropped(configs.to_vec());
    let engines = [engine("18.16", &configs[0]).await, engine("current", &configs[1]).await];
    let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
    assert!(
        engines[0].version.starts_with("18.16") && major(&engines[1].version) >= Some(24),
        "{} vs {}",
        engines[0].version,
        engines[1].version
    );
    let data = dataset();
    let [s1, s2, s3, s4] = S;

    // The first seal reads `events FINAL`; experiment 1 is bootstrapped from the log.
    for e in &engines {
        e.insert(&data, 0, s1).await;
        e.seal((0, s1), &[], &[1], false).await;
    }
    check(&engines, "sealed to s1, no tail", [Some(s1), None]).await;
    // The tail: replays of sealed events, late events, new users, an earlier exposure.
    for e in &engines {
        e.insert(&data, s1, s2).await;
    }
    check(&engines, "sealed to s1, a tail", [Some(s1), None]).await;
    // Level 1 from events_recent and level 2 in its session; experiment 2 bootstrapped.
    for e in &engines {
        e.seal((s1, s2), &[1], &[2], false).await;
    }
    check(&engines, "sealed to s2", [Some(s2); 2]).await;
    // Level 2 in a session of its own, from metric_log.
    for e in &engines {
        e.insert(&data, s2, s3).await;
        e.seal((s2, s3), &[1, 2], &[], true).await;
    }
    check(&engines, "sealed to s3", [Some(s3); 2]).await;
    for e in &engines {
        e.insert(&data, s3, u32::MAX).await;
        upkeep::compact(&e.ch, yyyymm(s3)).await.unwrap_or_else(|err| panic!("{}: compact: {err}", e.name));
    }
    check(&engines, "sealed to s3, compacted, the rest in the tail", [Some(s3); 2]).await;

    // A seal that lands after the state was read: the rollup query fails (throwIf, 395)
    // rather than count it twice; the dispatch reads the new seal.
    let q = StatsQuery {
        experiment_id: 1,
        event_type: "purchase",
        value_property: "amount",
        from: T0 - 60,
        to: T0 + 30 * DAY,
        cuped_seconds: 14 * DAY,
        segment: ("", ""),
        ..Default::default()
    };
    for e in &engines {
        e.seal((s3, s4), &[1, 2], &[], false).await;
        let now: u32 = e.ch.query("SELECT toUInt32(now())").fetch_one().await.expect("clock");
        match read::variant_stats(&e.ch, &q, s3, now, K).await.expect_err("a seal after the state read") {
            api::storage::StorageError::ClickHouse(err) => {
                assert_eq!(common::clickhouse::error_code(&err), Some(395), "{}: {err}", e.name)
            }
            other => panic!("{}: {other:?}", e.name),
        }
    }
    check(&engines, "sealed to s4", [Some(s4); 2]).await;

    for e in &engines {
        e.upkeep(&data.1).await;
    }
}
