//! Results from the rollup (sealed per-user states plus the unsealed tail) equal the results
//! from the raw events, row for row, on the local stack's ClickHouse 18.16: every count and
//! every sum (values are multiples of 1/4, so sums are exact in any order and compared with
//! `==`). A third answer, computed here in Rust from the rows as generated, checks both.
//!
//! The timeline is written, not waited for: rows carry an explicit `inserted_at` (the
//! server's clock at insertion in production) between a day ago and a minute ago, and the
//! sealer is run up to chosen points of it (`Sealer::round_until`), so every stage is
//! deterministic. The data has duplicates (one event id twice in a batch), a replayed batch
//! (all of the first batch inserted again later), late events (timestamps hours before the
//! last seal, inserted after it), events before exposure, timestamps ahead of insertion,
//! exposures arriving after the user's events, later exposures with another variant and
//! earlier ones inserted later (the user's state is rebuilt), users never exposed, several
//! seals, a compaction, an experiment registered after the metric was sealed (bootstrap),
//! and a seal landing between a read of the seal state and the query (throwIf, retried).
//! At the end the api itself answers `GET /experiments/{id}/results` from the rollup, with
//! the same numbers as an api with the rollup off.

mod support;

use std::{collections::HashMap, time::Duration};

use api::{
    rollup::sealer::Sealer,
    storage::{
        clickhouse::{self as raw, StatsQuery, VariantStats},
        postgres::{self as pg, RollupMetric},
        rollup::{self as store, read, upkeep, RawReason, Source},
    },
};
use common::{
    config::RollupConfig,
    testkit::{Service, Stack, TestEnv},
    Config,
};
use serde_json::{json, Value};
use support::rows::{same, sorted};

const HOUR: u32 = 3600;
const DAY: u32 = 86_400;
const K: u32 = 7200;

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next(u64::from(n.max(1))) as u32
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next(100) < percent
    }
}

#[derive(Debug, Clone)]
struct Exposure {
    experiment: u64,
    user: String,
    variant: &'static str,
    at: u32,
    inserted_at: u32,
    /// A forced user's exposure (flagged at assignment): counted nowhere.
    forced: bool,
}

#[derive(Debug, Clone)]
struct Event {
    id: u128,
    user: String,
    kind: &'static str,
    ts: u32,
    /// In quarters: exact in f64 sums.
    quarters: i32,
    has_amount: bool,
    inserted_at: u32,
}

impl Event {
    fn value(&self, property: &str) -> f64 {
        if property == "amount" && self.has_amount {
            f64::from(self.quarters) / 4.0
        } else {
            0.0
        }
    }
    fn properties(&self) -> String {
        if self.has_amount {
            format!("{{\"amount\":{}}}", f64::from(self.quarters) / 4.0)
        } else {
            "{\"other\":1}".to_owned()
        }
    }
}

/// Rows, in order of `inserted_at`.
struct Data {
    exposures: Vec<Exposure>,
    events: Vec<Event>,
}

/// Users 0..400: experiment 1 (a, b) exposes 0..300, experiment 2 (x, y, z) 150..400; users
/// 400..450 are never exposed. Exposures fall in [t, t + 22 h], events from ten days
/// before t (inserted from t on: a backfill) to two minutes ago.
fn generate(e1: u64, e2: u64, t: u32, now: u32, rng: &mut Lcg) -> Data {
    let last = now - 60;
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    let mut next_id = 1u128;
    for i in 0..450u32 {
        let user = format!("u{i}");
        let forced = i % 37 == 5;
        let mut first = None;
        for (experiment, range, variants) in [(e1, 0..300, &["a", "b"][..]), (e2, 150..400, &["x", "y", "z"][..])] {
            if !range.contains(&i) {
                continue;
            }
            let at = t + rng.below(22 * HOUR);
            let variant = variants[rng.below(variants.len() as u32) as usize];
            let delay = if rng.chance(10) { HOUR + rng.below(8 * HOUR) } else { rng.below(60) };
            let inserted_at = (at + delay).min(last);
            exposures.push(Exposure { experiment, user: user.clone(), variant, at, inserted_at, forced });
            if rng.chance(10) {
                // A later exposure with any variant: it changes nothing.
                let later = at + 1 + rng.below(3 * HOUR);
                let variant = variants[rng.below(variants.len() as u32) as usize];
                exposures.push(Exposure {
                    experiment,
                    user: user.clone(),
                    variant,
                    at: later,
                    inserted_at: (later + rng.below(60)).min(last),
                    forced,
                });
            }
            if rng.chance(8) {
                // An earlier exposure that arrives hours later: the user's state is rebuilt.
                let earlier = at.saturating_sub(1 + rng.below(3 * HOUR)).max(t);
                if earlier < at {
                    let variant = variants[rng.below(variants.len() as u32) as usize];
                    exposures.push(Exposure {
                        experiment,
                        user: user.clone(),
                        variant,
                        at: earlier,
                        inserted_at: (inserted_at + HOUR + rng.below(6 * HOUR)).min(last),
                        forced,
                    });
                }
            }
            first = Some(first.map_or(at, |f: u32| f.min(at)));
        }
        let anchor = first.unwrap_or(t + 6 * HOUR);
        for _ in 0..rng.below(12) {
            let kind = if rng.chance(70) { "purchase" } else { "click" };
            // Mostly around the exposure (before it too), some long before.
            let ts = if rng.chance(15) {
                anchor.saturating_sub(rng.below(10 * DAY))
            } else {
                (anchor + rng.below(30 * HOUR)).saturating_sub(6 * HOUR)
            }
            .min(now - 120);
            let delay: i64 = if rng.chance(10) {
                i64::from(2 * HOUR + rng.below(10 * HOUR)) // late
            } else if rng.chance(5) {
                -i64::from(rng.below(HOUR - 100)) // timestamp ahead of insertion (< K)
            } else {
                i64::from(rng.below(60))
            };
            let inserted_at = (i64::from(ts) + delay).clamp(i64::from(t), i64::from(last)) as u32;
            let event = Event {
                id: next_id,
                user: user.clone(),
                kind,
                ts,
                quarters: rng.below(160) as i32 - 40,
                has_amount: rng.chance(85),
                inserted_at,
            };
            next_id += 1;
            if rng.chance(8) {
                // The same event id twice, a few seconds apart.
                events.push(Event { inserted_at: (inserted_at + rng.below(30)).min(last), ..event.clone() });
            }
            events.push(event);
        }
    }
    exposures.sort_by_key(|e| e.inserted_at);
    events.sort_by_key(|e| e.inserted_at);
    Data { exposures, events }
}

fn uuid(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

async fn insert_events(ch: &clickhouse::Client, rows: &[Event]) {
    for chunk in rows.chunks(2000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|e| {
                format!(
                    "('{}', '{}', '{}', {}, {}, '{}', {})",
                    uuid(e.id),
                    e.user,
                    e.kind,
                    e.ts,
                    e.inserted_at,
                    e.properties(),
                    e.inserted_at
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties, inserted_at) VALUES {}",
            values.join(", ")
        );
        ch.query(&sql).execute().await.expect("insert events");
    }
}

async fn insert_exposures(ch: &clickhouse::Client, rows: &[Exposure]) {
    for chunk in rows.chunks(2000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|e| {
                let forced = u8::from(e.forced);
                format!("({}, '{}', '{}', {}, {}, {forced})", e.experiment, e.user, e.variant, e.at, e.inserted_at)
            })
            .collect();
        let sql = format!(
            "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at, inserted_at, forced) VALUES {}",
            values.join(", ")
        );
        ch.query(&sql).execute().await.expect("insert exposures");
    }
}

/// What the results must be, from the rows inserted so far: per user the first exposure in
/// the window (forced users' exposures never count), each event id once, events at or after
/// it counted, those in the CUPED days before it the covariate.
fn expected(exposures: &[Exposure], events: &[Event], q: &StatsQuery<'_>) -> Vec<VariantStats> {
    let mut first: HashMap<&str, (u32, &str)> = HashMap::new();
    let counted = |e: &&Exposure| !e.forced && e.experiment as i64 == q.experiment_id && e.at >= q.from && e.at <= q.to;
    for e in exposures.iter().filter(counted) {
        let entry = first.entry(&e.user).or_insert((e.at, e.variant));
        if e.at < entry.0 {
            *entry = (e.at, e.variant);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut per_user: HashMap<&str, (u64, f64, u64, f64)> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == q.event_type && e.ts <= q.to) {
        let Some(&(fe, _)) = first.get(e.user.as_str()) else { continue };
        if !seen.insert(e.id) {
            continue;
        }
        let v = e.value(q.value_property);
        let s = per_user.entry(&e.user).or_default();
        if e.ts >= fe {
            s.0 += 1;
            s.1 += v;
        } else if u64::from(e.ts) + u64::from(q.cuped_seconds) >= u64::from(fe) {
            s.2 += 1;
            s.3 += v;
        }
    }
    let mut by_variant: HashMap<&str, VariantStats> = HashMap::new();
    for (user, (_, variant)) in &first {
        let (n, y, npre, x) = per_user.get(user).copied().unwrap_or_default();
        let s = by_variant
            .entry(variant)
            .or_insert_with(|| VariantStats { variant: (*variant).to_owned(), ..Default::default() });
        s.users += 1;
        s.converted_users += u64::from(n > 0);
        s.events += n;
        s.events_sum_sq += (n * n) as f64;
        s.value_sum += y;
        s.value_sum_sq += y * y;
        s.pre_converted_users += u64::from(npre > 0);
        s.converted_both += u64::from(npre > 0 && n > 0);
        s.pre_value_sum += x;
        s.pre_value_sum_sq += x * x;
        s.value_pre_value += x * y;
    }
    sorted(by_variant.into_values().collect())
}

struct Question {
    experiment: u64,
    event_type: &'static str,
    value_property: &'static str,
    cuped_days: u32,
    /// The window's end: None = an hour from now, else this many seconds after the last seal.
    to_after_seal: Option<u32>,
}

const QUESTIONS: [Question; 6] = [
    Question { experiment: 1, event_type: "purchase", value_property: "amount", cuped_days: 14, to_after_seal: None },
    Question { experiment: 1, event_type: "purchase", value_property: "amount", cuped_days: 0, to_after_seal: None },
    Question { experiment: 1, event_type: "click", value_property: "", cuped_days: 7, to_after_seal: None },
    Question {
        experiment: 1,
        event_type: "purchase",
        value_property: "amount",
        cuped_days: 3,
        to_after_seal: Some(1800),
    },
    Question { experiment: 2, event_type: "purchase", value_property: "amount", cuped_days: 365, to_after_seal: None },
    Question { experiment: 2, event_type: "purchase", value_property: "", cuped_days: 1, to_after_seal: None },
];

struct Timeline {
    ch: clickhouse::Client,
    /// Rows still to insert, in order of `inserted_at`.
    pending: Data,
    /// Rows in ClickHouse (copies included): what the answers must reflect.
    inserted: Data,
    ids: [u64; 2],
    from: u32,
    now: u32,
}

impl Timeline {
    /// Inserts every pending row with `inserted_at` before `until`.
    async fn insert_until(&mut self, until: u32) {
        let x = self.pending.exposures.partition_point(|e| e.inserted_at < until);
        let v = self.pending.events.partition_point(|e| e.inserted_at < until);
        let exposures: Vec<Exposure> = self.pending.exposures.drain(..x).collect();
        let events: Vec<Event> = self.pending.events.drain(..v).collect();
        insert_exposures(&self.ch, &exposures).await;
        insert_events(&self.ch, &events).await;
        self.inserted.exposures.extend(exposures);
        self.inserted.events.extend(events);
    }

    /// Inserts again every row inserted before `until`, now at `at`: a consumer that
    /// crashed before committing its offsets replays its batches.
    async fn replay(&mut self, until: u32, at: u32) {
        let exposures: Vec<Exposure> = self
            .inserted
            .exposures
            .iter()
            .filter(|e| e.inserted_at < until)
            .map(|e| Exposure { inserted_at: at, ..e.clone() })
            .collect();
        let events: Vec<Event> = self
            .inserted
            .events
            .iter()
            .filter(|e| e.inserted_at < until)
            .map(|e| Event { inserted_at: at, ..e.clone() })
            .collect();
        insert_exposures(&self.ch, &exposures).await;
        insert_events(&self.ch, &events).await;
        self.inserted.exposures.extend(exposures);
        self.inserted.events.extend(events);
    }

    /// Every question from the rollup (when sealed) and from the raw events, against the
    /// rows inserted so far; `sealed_to` is what the answer must come from (`None`: raw).
    async fn check(&self, stage: &str, sealed_to: [Option<u32>; 2]) {
        for question in &QUESTIONS {
            let index = usize::from(question.experiment == 2);
            let to = match (question.to_after_seal, sealed_to[index]) {
                (Some(after), Some(sealed)) => sealed + after,
                _ => self.now + HOUR,
            };
            let q = StatsQuery {
                experiment_id: self.ids[index] as i64,
                event_type: question.event_type,
                value_property: question.value_property,
                from: self.from,
                to,
                cuped_seconds: question.cuped_days * DAY,
                segment: ("", ""),
                ..Default::default()
            };
            let want = expected(&self.inserted.exposures, &self.inserted.events, &q);
            let what = format!(
                "{stage}: experiment {} {} {:?} cuped {} to {to}",
                question.experiment, question.event_type, question.value_property, question.cuped_days
            );
            assert!(want.iter().any(|s| s.converted_users > 0), "{what}: data to compare");
            let raw_rows = sorted(raw::variant_stats(&self.ch, &q).await.expect("raw results"));
            assert!(same(&raw_rows, &want), "{what}: raw SQL\n{raw_rows:#?}\nexpected\n{want:#?}");
            let (rows, source) = store::variant_stats(&self.ch, &q, Some(K)).await.expect("results");
            let rows = sorted(rows);
            match sealed_to[index] {
                Some(s) => assert_eq!(source, Source::Rollup { sealed_to: s }, "{what}"),
                None => assert_eq!(source, Source::Raw(RawReason::NotSealed), "{what}"),
            }
            assert!(same(&rows, &want), "{what}: from {source:?}\n{rows:#?}\nexpected\n{want:#?}");
        }
    }
}

async fn api_with(env: &TestEnv, rollup: bool) -> Service {
    let mut config: Config = env.config.clone();
    config.rollup = RollupConfig { enabled: rollup, ..RollupConfig::default() };
    // The experiments are dated back after creation: no cached copy may outlive that.
    config.api.experiment_cache_ttl = Duration::ZERO;
    Service::start(config, api::run).await
}

async fn create_experiment(http: &reqwest::Client, api: &Service, variants: &[(&str, f64)]) -> u64 {
    let variants: Vec<Value> = variants.iter().map(|(n, p)| json!({"name": n, "allocation_percent": p})).collect();
    let response = http
        .post(api.url("/experiments"))
        .bearer_auth("test-key")
        .json(&json!({"name": "rollup", "description": "d", "variants": variants}))
        .send()
        .await
        .expect("create");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    body["id"].as_u64().expect("id")
}

async fn results(http: &reqwest::Client, api: &Service, id: u64) -> Value {
    let url = api.url(&format!("/experiments/{id}/results?event_type=purchase&value_property=amount&cuped_days=14"));
    let response = http.get(url).bearer_auth("test-key").send().await.expect("results");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let variants = body["variants"].as_array().expect("variants").iter();
    json!(variants
        .map(|v| json!([v["name"], v["users"], v["converted_users"], v["events"], v["value"]]))
        .collect::<Vec<_>>())
}

async fn results_from(api: &Service, source: &str) -> f64 {
    let text = reqwest::get(api.url("/prometheus")).await.expect("metrics").text().await.expect("text");
    let prefix = format!("abtest_results_total{{source=\"{source}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn results_from_the_rollup_equal_results_from_the_raw_events() {
    let stack = Stack::from_env();
    let env = stack.env(&stack.shared_cluster().await).await;
    let ch = env.clickhouse();
    let db = common::postgres::pool(&env.config.postgres).expect("pool");
    let http = reqwest::Client::new();

    // Experiments created through the api (rollup off: no sealer of its own), dated back
    // to the start of the timeline.
    let plain = api_with(&env, false).await;
    let ids = [
        create_experiment(&http, &plain, &[("a", 50.0), ("b", 50.0)]).await,
        create_experiment(&http, &plain, &[("x", 40.0), ("y", 30.0), ("z", 30.0)]).await,
    ];
    let now: u32 = ch.query("SELECT toUInt32(now())").fetch_one().await.expect("clock");
    let t = (now - DAY) / HOUR * HOUR;
    let from = t - 60;
    sqlx::query("UPDATE experiments SET created_at = to_timestamp($1) WHERE id = ANY($2)")
        .bind(f64::from(from))
        .bind(ids.iter().map(|i| *i as i64).collect::<Vec<_>>())
        .execute(&db)
        .await
        .expect("date the experiments back");
    // This database is new and its recent tables have held every row from the start: say
    // so from before the timeline (the migration dated it now).
    for sql in [
        "DROP TABLE recent_floor".to_owned(),
        "CREATE TABLE recent_floor (since DateTime) ENGINE = TinyLog".to_owned(),
        format!("INSERT INTO recent_floor VALUES ({})", t - 3 * HOUR),
    ] {
        ch.query(&sql).execute().await.expect("recent_floor");
    }

    let mut rng = Lcg(u64::from(now));
    let data = generate(ids[0], ids[1], t, now, &mut rng);
    let inserted = Data { exposures: Vec::new(), events: Vec::new() };
    let mut timeline = Timeline { ch: ch.clone(), pending: data, inserted, ids, from, now };
    let register = |experiment: u64, event_type: &str, value_property: &str| {
        let m = RollupMetric {
            experiment_id: experiment as i64,
            event_type: event_type.to_owned(),
            value_property: value_property.to_owned(),
        };
        let db = db.clone();
        async move { pg::register_rollup_metric(&db, &m).await.expect("register") }
    };
    for (event_type, value_property) in [("purchase", "amount"), ("purchase", ""), ("click", "")] {
        register(ids[0], event_type, value_property).await;
    }
    let registry = common::metrics::registry();
    let mut sealer = Sealer::new(db.clone(), ch.clone(), &RollupConfig::default(), &registry);

    let (s1, s2, s3, s4) = (t + 6 * HOUR, t + 12 * HOUR, t + 12 * HOUR + 600, t + 15 * HOUR);
    timeline.insert_until(s1).await;
    timeline.check("before any seal", [None, None]).await;

    let round = sealer.round_until(Some(s1)).await.expect("seal");
    assert!(round.locked && round.seals > 0, "{round:?}");
    timeline.check("sealed to s1, no tail", [Some(s1), None]).await;

    timeline.insert_until(s1 + 2 * HOUR).await;
    timeline.replay(s1, s1 + 2 * HOUR).await;
    timeline.insert_until(s2).await;
    timeline.check("sealed to s1, tail with a replayed batch and late events", [Some(s1), None]).await;

    // Experiment 2 joins once the metric is sealed: bootstrapped from the metric's log.
    register(ids[1], "purchase", "amount").await;
    register(ids[1], "purchase", "").await;
    sealer.round_until(Some(s2)).await.expect("seal");
    timeline.check("sealed to s2", [Some(s2), Some(s2)]).await;

    timeline.insert_until(s3).await;
    sealer.round_until(Some(s3)).await.expect("seal");
    timeline.check("sealed to s3 (one interval)", [Some(s3), Some(s3)]).await;

    timeline.insert_until(s4).await;
    timeline.check("sealed to s3, three hours of tail", [Some(s3), Some(s3)]).await;
    sealer.round_until(Some(s4)).await.expect("seal");
    upkeep::compact(&ch, api::rollup::plan::yyyymm(s4)).await.expect("compact");
    ch.query("OPTIMIZE TABLE metric_log FINAL").execute().await.expect("optimize");
    timeline.check("sealed to s4, compacted", [Some(s4), Some(s4)]).await;

    // The rest up to a minute ago: late events and replays of sealed rows in the tail.
    timeline.replay(s2, s4 + 600).await;
    timeline.insert_until(now).await;
    timeline.check("sealed to s4, tail to now", [Some(s4), Some(s4)]).await;

    // A seal that lands after the state was read: the query fails (throwIf) instead of
    // counting it twice, and the dispatch retries with the new seal.
    let q = StatsQuery {
        experiment_id: ids[0] as i64,
        event_type: "purchase",
        value_property: "amount",
        from,
        to: now + HOUR,
        cuped_seconds: 14 * DAY,
        segment: ("", ""),
        ..Default::default()
    };
    let s5 = s4 + HOUR;
    sealer.round_until(Some(s5)).await.expect("seal");
    let stale = read::variant_stats(&ch, &q, s4, now, K).await.expect_err("a seal after the state read");
    match stale {
        api::storage::StorageError::ClickHouse(e) => assert_eq!(common::clickhouse::error_code(&e), Some(395), "{e}"),
        other => panic!("{other:?}"),
    }
    timeline.check("sealed to s5", [Some(s5), Some(s5)]).await;

    // The api itself: the results route answers from the rollup (its sealer takes over and
    // seals up to now - lag), with the numbers of an api reading the raw events.
    let rolled = api_with(&env, true).await;
    for id in ids {
        let a = results(&http, &rolled, id).await;
        let b = results(&http, &plain, id).await;
        assert_eq!(a, b, "experiment {id}: rollup api vs raw api");
    }
    assert!(results_from(&rolled, "rollup").await >= 2.0, "the route answered from the rollup");
    assert_eq!(results_from(&plain, "raw").await, 2.0);
    rolled.stop().await;
    plain.stop().await;
}
