//! The API against the real Postgres, ClickHouse and dev broker.

use std::{collections::HashMap, process::Stdio, sync::Arc, time::Duration};

use common::testkit::{eventually, Proxy, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

mod support;

use support::*;

#[tokio::test]
async fn experiments_are_created_listed_fetched_and_patched_with_clear_errors() {
    let (_env, api, c) = setup().await;
    let e = c.create(&[("red_button", 50.0), ("blue_button", 50.0)]).await;
    assert_eq!(e["name"], "Button Color Test");
    assert_eq!(e["status"], "running");
    assert_eq!(
        e["variants"],
        json!([{"name": "red_button", "allocation_percent": 50.0}, {"name": "blue_button", "allocation_percent": 50.0}])
    );
    assert!(e["created_at"].is_string() && e["id"].as_i64().expect("id") > 0);
    let id = e["id"].as_i64().expect("id");
    let (status, got) = c.get(&format!("/experiments/{id}")).await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &e["id"]));

    // Names need not be unique: the walkthrough can run twice.
    let second = c.create(&[("red_button", 50.0), ("blue_button", 50.0)]).await;
    let third = c.create(&[("a", 20.0), ("b", 30.0), ("c", 50.0)]).await;
    let (status, page) = c.get("/experiments?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["experiments"].as_array().expect("list").len(), 2);
    assert_eq!(page["next_after"], second["id"]);
    let (_, page2) = c.get(&format!("/experiments?limit=2&after={}", page["next_after"])).await;
    assert_eq!(page2["experiments"][0]["id"], third["id"]);
    assert_eq!(page2["next_after"], Value::Null);

    let (status, patched) = c.patch(&format!("/experiments/{id}"), json!({"status": "paused"})).await;
    assert_eq!((status, patched["status"].as_str()), (StatusCode::OK, Some("paused")));

    // Which test decides `significant`: sequential unless the experiment says otherwise.
    assert_eq!((e["significance"].as_str(), e["sequential_tuning"].as_f64()), (Some("sequential"), Some(5000.0)));
    let (status, patched) = c
        .patch(&format!("/experiments/{id}"), json!({"significance": "fixed_horizon", "sequential_tuning": 20000}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["significance"].as_str(), patched["sequential_tuning"].as_f64()),
        (Some("fixed_horizon"), Some(20000.0))
    );
    assert_eq!(patched["status"], "paused", "a patch changes only what it names");
    let (_, r) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!((r["significance"].as_str(), r["sequential_tuning"].as_f64()), (Some("fixed_horizon"), Some(20000.0)));
    let (status, err) = c.patch(&format!("/experiments/{id}"), json!({"sequential_tuning": -5})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("sequential_tuning")), "{err}");

    let bad_bodies = [
        (
            json!({"name": "", "variants": [{"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]}),
            "name",
        ),
        (
            json!({"name": "x".repeat(201), "variants": [{"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]}),
            "name",
        ),
        (json!({"name": "n", "variants": [{"name": "a", "allocation_percent": 100}]}), "variants"),
        (
            json!({"name": "n", "variants": [{"name": "a", "allocation_percent": 50}, {"name": "a", "allocation_percent": 50}]}),
            "variants[1].name",
        ),
        (
            json!({"name": "n", "variants": [{"name": "a", "allocation_percent": 0}, {"name": "b", "allocation_percent": 100}]}),
            "variants[0].allocation_percent",
        ),
        (
            json!({"name": "n", "variants": [{"name": "a", "allocation_percent": 60}, {"name": "b", "allocation_percent": 50}]}),
            "variants",
        ),
        (
            json!({"name": "n", "variants": [{"name": "a", "allocation_percent": "50"}, {"name": "b", "allocation_percent": 50}]}),
            "variants[0].allocation_percent",
        ),
        (json!({"name": 7, "variants": []}), "name"),
        (
            json!({"name": "n", "significance": "bayesian", "variants": [{"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]}),
            "significance",
        ),
        (
            json!({"name": "n", "sequential_tuning": 0, "variants": [{"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]}),
            "sequential_tuning",
        ),
    ];
    for (body, field) in bad_bodies {
        let (status, err) = c.post("/experiments", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let (status, err) = c.patch(&format!("/experiments/{id}"), json!({"status": "archived"})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")), "{err}");

    for (path, status) in [
        ("/experiments/999999999", StatusCode::NOT_FOUND),
        ("/experiments/abc", StatusCode::BAD_REQUEST),
        ("/experiments/-1", StatusCode::BAD_REQUEST),
        ("/experiments/99999999999999999999999", StatusCode::BAD_REQUEST),
        ("/experiments/abc/assignment/u", StatusCode::BAD_REQUEST),
        ("/experiments/999999999/assignment/u", StatusCode::NOT_FOUND),
        ("/experiments/999999999/results?event_type=x", StatusCode::NOT_FOUND),
        ("/experiments?limit=0", StatusCode::BAD_REQUEST),
        ("/experiments?limit=abc", StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = c.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let unauthenticated = reqwest::get(format!("{}/experiments", c.base)).await.expect("send");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    api.stop().await;
}

/// The README's bucketing, written again independently of the server's code.
fn documented_bucket(salt: &str, user: &str) -> u64 {
    let digest = Sha256::digest(format!("{salt}:{user}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 10_000
}

#[tokio::test]
async fn assignment_is_deterministic_sticky_and_respects_status() {
    let (env, api, c) = setup().await;
    let e = c.create(&[("control", 30.0), ("treatment", 70.0)]).await;
    let id = e["id"].as_i64().expect("id");
    let salt = e["salt"].as_str().expect("salt").to_owned();
    let mut seen = HashMap::new();
    for i in 0..60 {
        let user = format!("user-{i}");
        let (status, a) = c.get(&format!("/experiments/{id}/assignment/{user}")).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        assert_eq!(a["new"], true);
        let expected = if documented_bucket(&salt, &user) < 3000 { "control" } else { "treatment" };
        assert_eq!(a["variant"], expected, "{user}");
        seen.insert(user, a["variant"].clone());
    }
    // Allocation changes never move assigned users.
    let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"variants": [{"name": "control", "allocation_percent": 99}, {"name": "treatment", "allocation_percent": 1}]})).await;
    assert_eq!(status, StatusCode::OK);
    for (user, variant) in &seen {
        let (_, a) = c.get(&format!("/experiments/{id}/assignment/{user}")).await;
        assert_eq!((&a["variant"], &a["new"]), (variant, &json!(false)), "{user}");
    }
    // Paused: existing users keep their variant, new users get 409.
    c.patch(&format!("/experiments/{id}"), json!({"status": "paused"})).await;
    let (status, _) = c.get(&format!("/experiments/{id}/assignment/user-1")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = c.get(&format!("/experiments/{id}/assignment/newcomer")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["message"].as_str().expect("message").contains("paused"));
    c.patch(&format!("/experiments/{id}"), json!({"status": "running"})).await;
    let (status, _) = c.get(&format!("/experiments/{id}/assignment/newcomer")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = c.get(&format!("/experiments/{id}/assignment/{}", "u".repeat(257))).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("user_id")));

    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM assignments").fetch_one(&pg(&env).await).await.expect("count");
    assert_eq!(rows, 61);
    assert_eq!(exposures_in_kafka(&env, 61).await, 61, "one exposure per first assignment");
    api.stop().await;
}

#[tokio::test]
async fn simultaneous_first_assignments_of_one_user_make_one_row_and_one_exposure() {
    // Two api instances on one Postgres and one Kafka, 200 requests for one new user at
    // once, every other one through each instance; each instance relays exposures.
    let (env, api, c) = setup().await;
    let other = start_api(env.config.clone()).await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    let clients = [Arc::new(c), Arc::new(Client::new(&other))];
    let answers = futures::future::join_all((0..200).map(|i| {
        let c = clients[i % 2].clone();
        tokio::spawn(async move { c.get(&format!("/experiments/{id}/assignment/racer")).await })
    }))
    .await;
    let mut variants = std::collections::HashSet::new();
    let mut new = 0;
    for answer in answers {
        let (status, a) = answer.expect("task");
        assert_eq!(status, StatusCode::OK, "{a}");
        variants.insert(a["variant"].as_str().expect("variant").to_owned());
        new += usize::from(a["new"] == true);
    }
    assert_eq!(variants.len(), 1, "{variants:?}");
    assert_eq!(new, 1, "exactly one request made the assignment");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM assignments WHERE user_id = 'racer'")
        .fetch_one(&pg(&env).await)
        .await
        .expect("count");
    assert_eq!(rows, 1);
    assert_eq!(exposures_in_kafka(&env, 1).await, 1, "one exposure, relayed once by one of the two");
    api.stop().await;
    other.stop().await;
}

/// Deterministic pseudo-random numbers for the simulation (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn close(ours: &Value, reference: &Value, what: &str) {
    let (a, b) = (ours.as_f64().unwrap_or_else(|| panic!("{what}: {ours}")), reference.as_f64().expect("reference"));
    assert!((a - b).abs() <= 1e-9_f64.max(b.abs() * 1e-7), "{what}: ours {a} vs reference {b}");
}

#[tokio::test]
async fn results_of_a_simulated_experiment_are_exact_and_match_scipy() {
    let (env, api, c) = setup().await;
    let consumer = start_consumer(env.config.clone()).await;
    let e = c.create(&[("control", 50.0), ("treatment", 50.0)]).await;
    let id = e["id"].as_i64().expect("id");
    let mut rng = Rng(42);
    let now_ms = chrono::Utc::now().timestamp_millis();

    // 300 users: assignment through the API. 40 % bought something two days before
    // their exposure (the CUPED covariate) and convert more often; conversions at
    // 20 % / 30 % (+30 points with history), values.
    let mut per_variant: HashMap<String, PerUser> = HashMap::new();
    let mut batch = Vec::new();
    for i in 0..300 {
        let user = format!("sim-{i}");
        let (status, a) = c.get(&format!("/experiments/{id}/assignment/{user}")).await;
        assert_eq!(status, StatusCode::OK);
        let variant = a["variant"].as_str().expect("variant").to_owned();
        let entry = per_variant.entry(variant.clone()).or_default();
        let (mut pre_converted, mut pre_value) = (0, 0.0);
        if rng.next() < 0.4 {
            pre_value = (rng.next() * 200.0 * 100.0).round() / 100.0;
            pre_converted = 1;
            let two_days_before = now_ms - 2 * 86_400_000;
            batch.push(json!({"user_id": user, "type": "purchase", "properties": {"order_value": pre_value}, "timestamp": two_days_before}));
        }
        if rng.next() < 0.3 {
            // Before the CUPED window (14 days) and the results window: never counts.
            let twenty_days_before = now_ms - 20 * 86_400_000;
            batch.push(json!({"user_id": user, "type": "purchase", "properties": {"order_value": 5000}, "timestamp": twenty_days_before}));
        }
        entry.pre_converted.push(pre_converted);
        entry.pre_values.push(pre_value);
        let rate = if variant == "control" { 0.2 } else { 0.3 } + 0.3 * f64::from(pre_converted);
        if rng.next() < rate {
            let purchases = 1 + (rng.next() * 3.0) as usize;
            let mut value = 0.0;
            for _ in 0..purchases {
                let order_value = (rng.next() * 100.0 * 100.0).round() / 100.0 + pre_value / 4.0;
                value += order_value;
                let event_id = uuid::Uuid::now_v7();
                let event = json!({"user_id": user, "type": "purchase", "event_id": event_id, "properties": {"order_value": order_value}});
                batch.push(event.clone());
                batch.push(event); // a client retry: the same event id twice counts once
            }
            entry.converted.push(1);
            entry.values.push(value);
            entry.events += purchases as u64;
        } else {
            entry.converted.push(0);
            entry.values.push(0.0);
        }
        batch.push(json!({"user_id": user, "type": "click"}));
    }
    // Events of a user never exposed do not count.
    batch.push(json!({"user_id": "stranger", "type": "purchase", "properties": {"order_value": 5}}));
    for chunk in batch.chunks(400) {
        let (status, body) = c.post("/events/batch", Value::Array(chunk.to_vec())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    let expected_converted: u64 =
        per_variant.values().map(|v| v.converted.iter().map(|&x| u64::from(x)).sum::<u64>()).sum();
    let path = format!("/experiments/{id}/results?event_type=purchase&value_property=order_value&alpha=0.05");
    let results = eventually("every exposure and event in the results", WAIT, || async {
        let (status, r) = c.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let users: u64 = r["variants"].as_array()?.iter().map(|v| v["users"].as_u64().unwrap_or(0)).sum();
        let converted: u64 = r["variants"].as_array()?.iter().map(|v| v["converted_users"].as_u64().unwrap_or(0)).sum();
        let events: u64 = r["variants"].as_array()?.iter().map(|v| v["events"].as_u64().unwrap_or(0)).sum();
        let expected_events: u64 = per_variant.values().map(|v| v.events).sum();
        (users == 300 && converted == expected_converted && events == expected_events).then_some(r)
    })
    .await;

    assert_eq!(results["control"], "control");
    assert_eq!(results["event_type"], "purchase");
    let by_name: HashMap<&str, &Value> = results["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| (v["name"].as_str().expect("name"), v))
        .collect();
    for (name, u) in &per_variant {
        let v = by_name[name.as_str()];
        assert_eq!(v["users"], u.converted.len(), "{name}");
        assert_eq!(v["converted_users"], u.converted.iter().map(|&x| u64::from(x)).sum::<u64>(), "{name}");
        assert_eq!(v["events"], u.events, "{name}");
        close(&v["value"]["sum"], &json!(u.values.iter().sum::<f64>()), "value sum");
    }

    // The same per-user data through scipy/statsmodels.
    let variants: Vec<Value> = ["control", "treatment"]
        .iter()
        .map(|n| {
            let u = &per_variant[*n];
            json!({"converted": u.converted, "values": u.values, "pre_converted": u.pre_converted, "pre_values": u.pre_values})
        })
        .collect();
    let spec = json!({"alpha": 0.05, "allocations": [50.0, 50.0], "variants": variants});
    let reference = python_reference(&spec).await;
    close(&results["srm"]["p_value"], &reference["srm_p_value"], "srm p");
    let ours = &by_name["treatment"]["comparison"];
    let theirs = &reference["comparisons"][0];
    for metric in ["conversion", "value"] {
        close(&ours[metric]["p_value"], &theirs[metric]["p_value"], &format!("{metric} p"));
        for (field, i) in [("absolute_ci", 0), ("absolute_ci", 1), ("relative_ci", 0), ("relative_ci", 1)] {
            close(&ours[metric][field][i], &theirs[metric][field][i], &format!("{metric} {field}[{i}]"));
        }
        close(&ours[metric]["relative_lift"], &theirs[metric]["relative_lift"], &format!("{metric} lift"));
        // The sequential, Bayesian and CUPED views, against GrowthBook's gbstats.
        let views = [
            ("sequential", vec!["p_value", "absolute_ci", "relative_ci"]),
            ("bayesian", vec!["chance_to_beat_control", "expected_loss", "credible_interval"]),
            ("cuped", vec!["relative_lift", "relative_ci", "p_value", "variance_reduction"]),
        ];
        for (view, fields) in views {
            for field in fields {
                let (a, b) = (&ours[metric][view][field], &theirs[metric][view][field]);
                let what = format!("{metric} {view}.{field}");
                match b.as_array() {
                    Some(pair) => (0..2).for_each(|i| close(&a[i], &pair[i], &format!("{what}[{i}]"))),
                    None => close(a, b, &what),
                }
            }
        }
        let reduction = ours[metric]["cuped"]["variance_reduction"].as_f64().expect("variance reduction");
        assert!(reduction > 0.05, "{metric}: history predicts the metric, CUPED must reduce variance ({reduction})");
        let significant = ours[metric]["sequential"]["adjusted_p_value"].as_f64().expect("p") < 0.05;
        assert_eq!(ours[metric]["significant"], significant, "{metric}: sequential significance by default");
        // The decision is the sequential test on the relative scale (one treatment: unadjusted).
        let decision = &ours[metric]["decision"];
        assert_eq!((&decision["test"], &decision["scale"]), (&json!("sequential"), &json!("relative")), "{metric}");
        assert_eq!(decision["significant"], ours[metric]["significant"], "{metric}");
        close(&decision["p_value"], &theirs[metric]["sequential"]["p_value"], &format!("{metric} decision p"));
        for field in ["relative_ci", "absolute_ci"] {
            let pair = &theirs[metric]["sequential"][field];
            (0..2).for_each(|i| close(&decision[field][i], &pair[i], &format!("{metric} decision {field}[{i}]")));
        }
    }
    assert_eq!(results["significance"], "sequential");
    assert_eq!(results["cuped_days"], 14);
    assert_eq!(by_name["control"]["comparison"], Value::Null);

    // Clicks are their own metric: everyone clicked, after exposure.
    let (_, clicks) = c.get(&format!("/experiments/{id}/results?event_type=click")).await;
    let clicked: u64 =
        clicks["variants"].as_array().expect("v").iter().map(|v| v["converted_users"].as_u64().expect("n")).sum();
    assert_eq!(clicked, 300);
    assert_eq!(clicks["variants"][0]["value"], Value::Null);
    consumer.stop().await;
    api.stop().await;
}

/// Per-user truth of one variant, as the simulation generated it.
#[derive(Default)]
struct PerUser {
    converted: Vec<u8>,
    values: Vec<f64>,
    pre_converted: Vec<u8>,
    pre_values: Vec<f64>,
    events: u64,
}

async fn python_reference(spec: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/reference_stats.py");
    let python = std::env::var("ABTESTKIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg("--users")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs scipy and statsmodels)");
    child.stdin.take().expect("stdin").write_all(spec.to_string().as_bytes()).await.expect("write");
    let out = child.wait_with_output().await.expect("python ran");
    assert!(out.status.success(), "reference script failed");
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

#[tokio::test]
async fn last_day_excludes_older_data_and_events_before_exposure_never_count() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    sqlx::query("UPDATE experiments SET created_at = now() - interval '30 days' WHERE id = $1")
        .bind(id)
        .execute(&pg(&env).await)
        .await
        .expect("backdate");
    let now = chrono::Utc::now().timestamp();
    let day = 86_400;
    let ch = env.clickhouse();
    // old-user: exposed 10 days ago, converted 9 days ago. new-user: exposed 1 h ago,
    // purchased 2 h ago (before exposure: no) and 30 min ago (yes).
    ch.query(&format!(
        "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) \
         VALUES ({id}, 'old-user', 'a', {}), ({id}, 'new-user', 'b', {})",
        now - 10 * day,
        now - 3600
    ))
    .execute()
    .await
    .expect("exposures");
    ch.query(&format!(
        "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties) VALUES ('{}', 'old-user', 'purchase', {t1}, {t1}, '{{}}'), ('{}', 'new-user', 'purchase', {t2}, {t2}, '{{}}'), ('{}', 'new-user', 'purchase', {t3}, {t3}, '{{}}')",
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        t1 = now - 9 * day,
        t2 = now - 7200,
        t3 = now - 1800
    ))
    .execute()
    .await
    .expect("events");

    let (_, all) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!([&all["variants"][0]["users"], &all["variants"][1]["users"]], [&json!(1), &json!(1)], "{all}");
    assert_eq!(
        [&all["variants"][0]["converted_users"], &all["variants"][1]["converted_users"]],
        [&json!(1), &json!(1)]
    );
    assert_eq!(all["variants"][1]["events"], 1, "the purchase before exposure does not count");

    let (_, recent) = c.get(&format!("/experiments/{id}/results?event_type=purchase&last_day=2")).await;
    assert_eq!(recent["variants"][0]["users"], 0, "{recent}");
    assert_eq!(recent["variants"][0]["converted_users"], 0);
    assert_eq!(recent["variants"][1]["users"], 1);
    assert_eq!(recent["variants"][1]["converted_users"], 1);
    let from = chrono::DateTime::parse_from_rfc3339(recent["window"]["from"].as_str().expect("from")).expect("date");
    assert!((now - 2 * day - from.timestamp()).abs() <= 5);
    api.stop().await;
}

/// A value property is a JSON number at the top level of `properties` (or at an explicit
/// pointer): a nested key of the same name, a string and a missing key are no value.
/// Rows stored before clickhouse/007 (no leaves) keep the old rule.
#[tokio::test]
async fn a_value_is_a_json_number_at_the_property_pointer() {
    use consumer::rows::{self, Rows, Source, EVENTS};
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    backdate(&env, id).await;
    let now = chrono::Utc::now().timestamp();
    let ch = env.clickhouse();
    ch.query(&format!(
        "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) \
         VALUES ({id}, 'buyer-a', 'a', {t}), ({id}, 'buyer-b', 'b', {t})",
        t = now - 3600
    ))
    .execute()
    .await
    .expect("exposures");
    let mut events = Rows::default();
    for (user, properties) in [
        ("buyer-a", r#"{"items":[{"order_value":3}],"order_value":10,"item":{"price":4.5}}"#),
        ("buyer-a", r#"{"order_value":"12.5"}"#),
        ("buyer-a", r#"{"order_value":true,"item":{"price":1}}"#),
        ("buyer-a", r#"{}"#),
    ] {
        let properties = serde_json::value::RawValue::from_string(properties.to_owned()).expect("json");
        let event = common::event::EventEnvelope {
            v: 1,
            event_id: uuid::Uuid::new_v4(),
            user_id: user.into(),
            event_type: "purchase".into(),
            timestamp_ms: (now - 60) * 1000,
            received_at_ms: (now - 60) * 1000,
            properties: &properties,
        };
        events.push_event(&event, Source { partition: 0, offset: 0 });
    }
    rows::insert(&ch, EVENTS, events.bytes(0..events.len()), Duration::from_secs(30)).await.expect("events");
    // A row as stored before clickhouse/007: no leaves, read with visitParamExtractFloat.
    ch.query(&format!(
        "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties) \
         VALUES ('{}', 'buyer-b', 'purchase', {t}, {t}, '{{\"cart\":{{\"order_value\":3}}}}')",
        uuid::Uuid::new_v4(),
        t = now - 60
    ))
    .execute()
    .await
    .expect("old event");
    for (property, a, b) in [("order_value", 10.0, 3.0), ("/item/price", 5.5, 0.0), ("/items/0/order_value", 3.0, 0.0)]
    {
        let (status, r) =
            c.get(&format!("/experiments/{id}/results?event_type=purchase&value_property={property}")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let sums: Vec<f64> = (0..2).map(|i| r["variants"][i]["value"]["sum"].as_f64().expect("sum")).collect();
        assert_eq!(sums, [a, b], "{property}: {r}");
        assert_eq!(r["variants"][0]["events"], 4, "every event counts as a conversion event");
    }
    api.stop().await;
}

/// New allocations start a phase: results analyse the current phase by default, its users
/// (first exposed in it) against its allocations, so the change raises no sample-ratio
/// alarm; `?phase=1` gives the first. Stopping ends the phase: its results stop changing.
#[tokio::test]
async fn phases_analyse_their_own_users_against_their_own_allocations() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    let db = pg(&env).await;
    for table in ["experiments SET created_at", "experiment_phases SET started_at"] {
        let key = if table.starts_with("experiments") { "id" } else { "experiment_id" };
        sqlx::query(&format!("UPDATE {table} = now() - interval '1 day' WHERE {key} = $1"))
            .bind(id)
            .execute(&db)
            .await
            .expect("backdate");
    }
    let now = chrono::Utc::now().timestamp();
    let ch = env.clickhouse();
    let expose = |rows: Vec<(String, &'static str, i64)>| {
        let values: Vec<String> = rows.iter().map(|(u, v, t)| format!("({id}, '{u}', '{v}', {t})")).collect();
        ch.query(&format!(
            "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) VALUES {}",
            values.join(", ")
        ))
        .execute()
    };
    // Phase 1, 50/50: 100 users each, three hours ago.
    let phase1: Vec<(String, &str, i64)> =
        (0..200).map(|i| (format!("p1-{i}"), if i % 2 == 0 { "a" } else { "b" }, now - 3 * 3600)).collect();
    expose(phase1).await.expect("phase 1 exposures");
    let (status, _) = c
        .patch(
            &format!("/experiments/{id}"),
            json!({"variants": [{"name": "a", "allocation_percent": 90}, {"name": "b", "allocation_percent": 10}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"name": "renamed, same phase"})).await;
    assert_eq!(status, StatusCode::OK);
    // The change happened two hours ago, for the test's clock.
    for (phase, column) in [(2, "started_at"), (1, "ended_at")] {
        sqlx::query(&format!(
            "UPDATE experiment_phases SET {column} = now() - interval '2 hours' WHERE experiment_id = $1 AND phase = $2"
        ))
        .bind(id)
        .bind(phase)
        .execute(&db)
        .await
        .expect("backdate the phase");
    }
    // Phase 2, 90/10: 180 and 20 new users an hour ago, and phase-1 users seen again.
    let mut phase2: Vec<(String, &str, i64)> =
        (0..200).map(|i| (format!("p2-{i}"), if i < 180 { "a" } else { "b" }, now - 3600)).collect();
    phase2.extend((0..40).map(|i| (format!("p1-{i}"), if i % 2 == 0 { "a" } else { "b" }, now - 3600)));
    expose(phase2).await.expect("phase 2 exposures");

    let users = |r: &Value| -> Vec<i64> {
        r["variants"].as_array().expect("variants").iter().map(|v| v["users"].as_i64().expect("users")).collect()
    };
    let allocations = |r: &Value| -> Vec<f64> {
        r["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .map(|v| v["allocation_percent"].as_f64().expect("%"))
            .collect()
    };
    let (_, current) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(
        (current["phase"]["phase"].as_i64(), current["phase"]["reason"].as_str()),
        (Some(2), Some("allocations_changed")),
        "{current}"
    );
    assert_eq!(users(&current), [180, 20], "phase 2's own users; phase 1's seen again stay in phase 1");
    assert_eq!(allocations(&current), [90.0, 10.0]);
    assert_eq!(current["srm"]["mismatch"], false, "{}", current["srm"]);
    let (_, first) = c.get(&format!("/experiments/{id}/results?event_type=purchase&phase=1")).await;
    assert_eq!((users(&first), allocations(&first)), (vec![100, 100], vec![50.0, 50.0]), "{first}");
    assert_eq!((first["srm"]["mismatch"].as_bool(), first["phase"]["reason"].as_str()), (Some(false), Some("created")));
    assert_eq!(first["window"]["to"], first["phase"]["ended_at"], "a closed phase ends its window");
    let (status, err) = c.get(&format!("/experiments/{id}/results?event_type=purchase&phase=3")).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("phase")), "{err}");
    let (status, err) = c.get(&format!("/experiments/{id}/timeseries?event_type=purchase&phase=0")).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("phase")), "{err}");

    // Stopped: the phase ends, later exposures do not count, the results stay put.
    let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"status": "stopped"})).await;
    assert_eq!(status, StatusCode::OK);
    expose((0..30).map(|i| (format!("late-{i}"), "b", now + 120)).collect()).await.expect("late exposures");
    let (_, stopped) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(users(&stopped), [180, 20], "{stopped}");
    assert!(stopped["phase"]["ended_at"].is_string() && stopped["window"]["to"] == stopped["phase"]["ended_at"]);
    let (_, again) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(
        (users(&again), &again["window"]),
        (users(&stopped), &stopped["window"]),
        "a stopped experiment's results do not change"
    );
    // Running again starts phase 3.
    let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"status": "running"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, restarted) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(
        (restarted["phase"]["phase"].as_i64(), restarted["phase"]["reason"].as_str()),
        (Some(3), Some("restarted"))
    );
    api.stop().await;
}

/// `explain=true`: the answer carries the statements it ran and a Python program that,
/// run here with scipy, recomputes every p-value and interval of the answer from the
/// statistics it carries: three variants, Holm and Benjamini-Hochberg, both tests.
#[tokio::test]
async fn explained_results_recompute_in_python_to_the_same_numbers() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 34.0), ("b", 33.0), ("c", 33.0)]).await["id"].as_i64().expect("id");
    backdate(&env, id).await;
    let now = chrono::Utc::now().timestamp();
    let (mut exposures, mut events) = (Vec::new(), Vec::new());
    for i in 0..900u32 {
        let variant = ["a", "b", "c"][(i % 3) as usize];
        exposures.push(format!("({id}, 'x{i}', '{variant}', {})", now - 7200));
        let every = [7, 5, 4][(i % 3) as usize];
        if i % every == 0 {
            let value = 10 + (i * 13) % 90;
            events.push(format!(
                "('{}', 'x{i}', 'purchase', {t}, {t}, '{{\"order_value\":{value}}}')",
                uuid::Uuid::new_v4(),
                t = now - 3600
            ));
        }
    }
    insert(&env, "exposures (experiment_id, user_id, variant, exposed_at)", &exposures).await;
    insert(&env, "events (event_id, user_id, type, timestamp, received_at, properties)", &events).await;
    for (significance, correction) in [("sequential", "holm"), ("fixed_horizon", "bh")] {
        let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"significance": significance})).await;
        assert_eq!(status, StatusCode::OK);
        let path = format!(
            "/experiments/{id}/results?event_type=purchase&value_property=order_value&correction={correction}&explain=true"
        );
        let (status, r) = c.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let explain = &r["explain"];
        let statements = explain["statements"].as_array().expect("statements");
        assert!(
            statements
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.contains("'purchase'") && s.contains("'order_value'"))),
            "the statement with its bound values: {statements:?}"
        );
        assert_eq!(explain["statistics"].as_array().map(Vec::len), Some(3));
        let recomputed = run_python(explain["python"].as_str().expect("program")).await;
        for metric in ["conversion", "value"] {
            let theirs = recomputed[metric].as_array().expect("treatments");
            assert_eq!(theirs.len(), 2, "{metric}: {recomputed}");
            for (i, t) in theirs.iter().enumerate() {
                let ours = &r["variants"][i + 1]["comparison"][metric];
                let what = format!("{significance} {correction} {metric} {}", t["variant"]);
                for (a, b, field) in [
                    (&ours["p_value"], &t["p_value"], "p"),
                    (&ours["adjusted_p_value"], &t["adjusted_p_value"], "adjusted p"),
                    (&ours["sequential"]["p_value"], &t["sequential"]["p_value"], "sequential p"),
                    (
                        &ours["sequential"]["adjusted_p_value"],
                        &t["sequential"]["adjusted_p_value"],
                        "sequential adjusted p",
                    ),
                    (&ours["decision"]["p_value"], &t["decision"]["p_value"], "decision p"),
                    (&ours["decision"]["adjusted_p_value"], &t["decision"]["adjusted_p_value"], "decision adjusted p"),
                ] {
                    close(a, b, &format!("{what} {field}"));
                }
                for (a, b, field) in [
                    (&ours["relative_ci"], &t["relative_ci"], "relative ci"),
                    (&ours["absolute_ci"], &t["absolute_ci"], "absolute ci"),
                    (&ours["sequential"]["relative_ci"], &t["sequential"]["relative_ci"], "sequential relative ci"),
                    (&ours["decision"]["relative_ci"], &t["decision"]["relative_ci"], "decision relative ci"),
                    (&ours["decision"]["absolute_ci"], &t["decision"]["absolute_ci"], "decision absolute ci"),
                ] {
                    assert_eq!(a.is_null(), b.is_null(), "{what} {field}: {a} vs {b}");
                    if !a.is_null() {
                        (0..2).for_each(|k| close(&a[k], &b[k], &format!("{what} {field}[{k}]")));
                    }
                }
                assert_eq!(ours["decision"]["significant"], t["decision"]["significant"], "{what}");
            }
        }
    }
    let (_, plain) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(plain["explain"], Value::Null, "only when asked");
    api.stop().await;
}

#[tokio::test]
async fn timeseries_counts_each_user_once_on_their_exposure_and_first_conversion_day() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    sqlx::query("UPDATE experiments SET created_at = now() - interval '5 days' WHERE id = $1")
        .bind(id)
        .execute(&pg(&env).await)
        .await
        .expect("backdate");
    let today = chrono::Utc::now().date_naive();
    // Seconds since the epoch of `hour` o'clock (UTC), `days` days ago.
    let at = |days: u64, hour: u32| {
        (today - chrono::Days::new(days)).and_hms_opt(hour, 0, 0).expect("time").and_utc().timestamp()
    };
    let day = |days: u64| (today - chrono::Days::new(days)).to_string();
    let ch = env.clickhouse();
    let exposures = [
        ("u1", "a", at(4, 10)),
        ("u2", "a", at(4, 11)),
        ("u3", "a", at(3, 10)),
        ("u3", "a", at(1, 10)), // a replayed exposure: the earliest counts
        ("u4", "b", at(3, 10)),
        ("u4", "a", at(2, 10)), // a later exposure never moves a user
        ("u5", "b", at(2, 10)),
        ("u6", "b", at(0, 0)),
    ];
    let rows: Vec<String> = exposures.iter().map(|(u, v, t)| format!("({id}, '{u}', '{v}', {t})")).collect();
    let insert = "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) VALUES";
    ch.query(&format!("{insert} {}", rows.join(", "))).execute().await.expect("exposures");
    let same = uuid::Uuid::new_v4();
    let events = [
        (uuid::Uuid::new_v4(), "u1", "purchase", at(4, 12)),
        (uuid::Uuid::new_v4(), "u2", "purchase", at(2, 9)), // first conversion two days ago
        (same, "u2", "purchase", at(1, 9)),
        (same, "u2", "purchase", at(1, 9)),                 // the same event id twice
        (uuid::Uuid::new_v4(), "u3", "purchase", at(3, 8)), // before the exposure: never
        (uuid::Uuid::new_v4(), "u4", "purchase", at(1, 10)),
        (uuid::Uuid::new_v4(), "u5", "click", at(2, 11)), // another type
        (uuid::Uuid::new_v4(), "u6", "purchase", at(0, 0)), // the same second as the exposure
        (uuid::Uuid::new_v4(), "stranger", "purchase", at(1, 10)),
    ];
    let rows: Vec<String> =
        events.iter().map(|(e, u, t, ts)| format!("('{e}', '{u}', '{t}', {ts}, {ts}, '{{}}')")).collect();
    ch.query(&format!(
        "INSERT INTO events (event_id, user_id, type, timestamp, received_at, properties) VALUES {}",
        rows.join(", ")
    ))
    .execute()
    .await
    .expect("events");

    let (status, t) = c.get(&format!("/experiments/{id}/timeseries?event_type=purchase")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let days: Vec<String> = serde_json::from_value(t["days"].clone()).expect("days");
    assert_eq!(days.last(), Some(&day(0)), "up to today");
    assert_eq!(days.first(), Some(&t["window"]["from"].as_str().expect("from")[..10].to_owned()));
    let on = |series: &[(u64, u64)]| -> Vec<u64> {
        days.iter().map(|d| series.iter().filter(|(ago, _)| day(*ago) == *d).map(|(_, n)| n).sum()).collect()
    };
    let a = &t["variants"][0];
    let b = &t["variants"][1];
    assert_eq!((a["name"].as_str(), b["name"].as_str()), (Some("a"), Some("b")));
    assert_eq!(a["exposed_users"], json!(on(&[(4, 2), (3, 1)])), "{t}");
    assert_eq!(a["converted_users"], json!(on(&[(4, 1), (2, 1)])), "{t}");
    assert_eq!(b["exposed_users"], json!(on(&[(3, 1), (2, 1), (0, 1)])), "{t}");
    assert_eq!(b["converted_users"], json!(on(&[(1, 1), (0, 1)])), "{t}");
    let last = |v: &Value, f: &str| v[f].as_array().and_then(|a| a.last().cloned()).expect("last");
    assert_eq!(last(a, "cumulative_conversion_rate"), json!(2.0 / 3.0));
    let i = days.iter().position(|d| *d == day(3)).expect("3 days ago");
    assert_eq!(b["cumulative_users"][i], 1);
    assert_eq!(b["cumulative_conversion_rate"][i], 0.0);
    assert_eq!(b["cumulative_conversion_rate"][0], Value::Null, "no users yet");
    // The series ends where the results are.
    let (_, r) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    for (series, v) in [(a, &r["variants"][0]), (b, &r["variants"][1])] {
        assert_eq!(last(series, "cumulative_users"), v["users"], "{r}");
        assert_eq!(last(series, "cumulative_converted_users"), v["converted_users"], "{r}");
    }
    // A window of the last 2 days: three dates, older exposures gone.
    let (_, recent) = c.get(&format!("/experiments/{id}/timeseries?event_type=purchase&last_day=2")).await;
    assert_eq!(recent["days"].as_array().map(Vec::len), Some(3), "{recent}");
    assert_eq!(recent["variants"][1]["exposed_users"][2], 1, "u6, today: {recent}");
    // The event types received lately, most frequent first, for the page's selector.
    let (status, types) = c.get("/event_types?last_day=30").await;
    assert_eq!(status, StatusCode::OK, "{types}");
    assert_eq!(
        types["event_types"],
        json!([{"type": "purchase", "events": 8}, {"type": "click", "events": 1}]),
        "a replayed event id may count twice here"
    );
    let (status, err) = c.get("/event_types?last_day=0").await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("last_day")));
    // The list shows users so far: distinct exposed users per experiment.
    let (_, list) = c.get("/experiments").await;
    assert_eq!(list["experiments"][0]["exposed_users"], 6, "{list}");
    api.stop().await;
}

#[tokio::test]
async fn query_parameters_are_bound_never_spliced_into_sql() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    for hostile in ["purchase' OR 1=1 --", "x'); DROP TABLE events; --", "\\' \\\\ \" ` ?", "ünïcødé ?? ?"] {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("event_type", hostile)
            .append_pair("value_property", hostile)
            .finish();
        let (status, r) = c.get(&format!("/experiments/{id}/results?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{hostile}: {r}");
        assert_eq!(r["event_type"], hostile);
        let (status, t) = c.get(&format!("/experiments/{id}/timeseries?{q}")).await;
        assert_eq!((status, &t["event_type"]), (StatusCode::OK, &json!(hostile)), "{hostile}: {t}");
    }
    assert_eq!(
        env.ch_count("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'events'").await,
        1
    );
    api.stop().await;
}

#[tokio::test]
async fn openapi_and_docs_are_served_without_a_key() {
    let (_env, api, c) = setup().await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", c.base)).await.expect("send").json().await.expect("json");
    // The served document is the one tests/openapi.rs checks in detail.
    assert_eq!(doc, api::routes::openapi::document());
    for path in [
        "/experiments",
        "/experiments/{id}",
        "/experiments/{id}/assignment/{user_id}",
        "/experiments/{id}/results",
        "/experiments/{id}/timeseries",
        "/event_types",
        "/events",
        "/events/batch",
        "/exposures",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("Comparison", "sequential"),
        ("Comparison", "decision"),
        ("Decision", "adjusted_p_value"),
        ("Comparison", "bayesian"),
        ("Comparison", "cuped"),
        ("Comparison", "power"),
        ("Sequential", "adjusted_p_value"),
        ("Bayesian", "chance_to_beat_control"),
        ("Cuped", "variance_reduction"),
        ("Power", "days_to_target"),
        ("ExperimentResults", "significance"),
        ("Experiment", "sequential_tuning"),
    ] {
        assert!(schemas[schema]["properties"][field].is_object(), "{schema}.{field} missing from the OpenAPI document");
    }
    let params: Vec<&str> = doc["paths"]["/experiments/{id}/results"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(params.contains(&"cuped_days") && params.contains(&"target_lift"), "{params:?}");
    for (path, content_type) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/tables.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/vendor/chart.umd.js", "text/javascript"),
    ] {
        let page = reqwest::get(format!("{}{path}", c.base)).await.expect("send");
        assert_eq!(page.status(), StatusCode::OK, "{path} needs no key");
        let got = page.headers()["content-type"].to_str().expect("type").to_owned();
        assert!(got.starts_with(content_type), "{path}: {got}");
        assert!(page.headers().contains_key("content-security-policy"), "{path}");
    }
    let docs = reqwest::get(format!("{}/docs/", c.base)).await.expect("send");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));
    let ready = reqwest::get(format!("{}/readyz", c.base)).await.expect("send");
    assert_eq!(ready.status(), StatusCode::OK);
    api.stop().await;
}

/// The outbox: an assignment commits with its exposure, so assignments keep working while
/// Kafka is down, and every exposure reaches Kafka once it is back, even across a restart
/// of the api (nothing committed is lost).
#[tokio::test]
async fn assignments_made_while_kafka_is_down_reach_kafka_when_it_is_back() {
    let stack = Stack::from_env();
    let cluster = stack.isolated_cluster().await;
    let mut env = stack.env(&cluster).await;
    env.config.ingest.ack_timeout = Duration::from_secs(2);
    let api = start_api(env.config.clone()).await;
    let c = Client::new(&api);
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");

    stack.broker(&cluster, 1, false).await;
    for user in ["while-down-1", "while-down-2"] {
        let (status, a) = c.get(&format!("/experiments/{id}/assignment/{user}")).await;
        assert_eq!((status, a["new"].as_bool()), (StatusCode::OK, Some(true)), "{a}");
    }
    let db = pg(&env).await;
    let waiting = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM exposure_outbox").fetch_one(&db).await.expect("count")
    };
    assert_eq!(waiting().await, 2, "both exposures wait in the outbox");
    eventually("the backlog on /prometheus", WAIT, || async {
        (api.metric("abtest_exposure_outbox_messages").await == 2.0).then_some(())
    })
    .await;
    api.stop().await;

    // Kafka back, a new api process: the exposures committed before are relayed.
    stack.broker(&cluster, 1, true).await;
    let api = start_api(env.config.clone()).await;
    eventually("both exposures in Kafka", WAIT, || async {
        (env.topic_messages(&env.config.kafka.topics.exposures).await == 2).then_some(())
    })
    .await;
    eventually("an empty outbox", WAIT, || async { (waiting().await == 0).then_some(()) }).await;
    assert_eq!(api.metric("abtest_exposures_relayed_total").await, 2.0);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM assignments").fetch_one(&db).await.expect("count");
    assert_eq!(rows, 2);
    api.stop().await;
    stack.drop_cluster(&cluster).await;
}

#[tokio::test]
async fn postgres_down_means_503_for_new_assignments_while_events_and_results_keep_working() {
    let stack = Stack::from_env();
    let env = stack.env(&stack.shared_cluster().await).await;
    let url = env.config.postgres.url.expose().to_owned();
    let host_port = url.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("host:port in the URL");
    let proxy = Proxy::start(host_port.parse().expect("socket address")).await;
    let mut config = env.config.clone();
    config.postgres.url = common::config::Secret::new(url.replace(host_port, &proxy.addr.to_string()));
    config.postgres.acquire_timeout = Duration::from_secs(1);
    let api = start_api(config).await;
    let c = Client::new(&api);
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    let (status, before) = c.get(&format!("/experiments/{id}/assignment/known")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(status, StatusCode::OK);

    proxy.set(false);
    let started = std::time::Instant::now();
    let (status, err) = c.get(&format!("/experiments/{id}/assignment/newcomer")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the acquire timeout");
    let (status, _) = c.post("/events", json!({"user_id": "known", "type": "purchase"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "ingest does not need Postgres");
    let (status, r) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    assert_eq!(status, StatusCode::OK, "results use the cached experiment: {r}");
    // The api stays in the load balancer (results and events work); a check for the
    // assignment capability can ask for Postgres.
    let ready = reqwest::get(api.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(
        (ready["status"].as_str(), ready["checks"]["postgres"].as_str()),
        (Some("degraded"), Some("unavailable"))
    );
    let ready = reqwest::get(api.url("/readyz?require=postgres")).await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Back without restarting the API.
    proxy.set(true);
    let a = eventually("assignments after Postgres is back", WAIT, || async {
        let (status, a) = c.get(&format!("/experiments/{id}/assignment/newcomer")).await;
        (status == StatusCode::OK).then_some(a)
    })
    .await;
    assert_eq!(a["new"], true);
    let (_, again) = c.get(&format!("/experiments/{id}/assignment/known")).await;
    assert_eq!(again["variant"], before["variant"]);
    api.stop().await;
}

/// SQL-looking text where it is valid data is just data, end to end: stored, produced and
/// answered as sent (the refusals of hostile input are `tests/router.rs`, in-process).
#[tokio::test]
async fn sql_looking_data_is_just_data() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    let sql = "'; DROP TABLE experiments; --";
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20");
    let (status, a) = c.get(&format!("/experiments/{id}/assignment/{}", enc(sql))).await;
    assert_eq!((status, a["user_id"].as_str()), (StatusCode::OK, Some(sql)));
    let (status, e) = c.post("/experiments", json!({"name": sql, "description": sql, "variants": [{"name": sql, "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]})).await;
    assert_eq!((status, e["name"].as_str()), (StatusCode::CREATED, Some(sql)), "{e}");
    let (status, _) = c.post("/events", json!({"user_id": sql, "type": sql})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(env.topic_messages(&env.config.kafka.topics.events).await, 1);
    assert_eq!(exposures_in_kafka(&env, 1).await, 1, "the SQL-looking user's exposure");
    api.stop().await;
}
