//! Rollout control against the real Postgres and dev broker: traffic share, targeting,
//! schedule, forced users, layers, holdouts, the configuration local evaluators fetch, and
//! assignments made before all of it keeping their variants.

use std::collections::{BTreeMap, HashMap, HashSet};

use api::domain::{
    rules::{Reason, Rules, SdkConfig},
    targeting::{Attr, Attributes},
};
use chrono::Utc;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

mod support;

use support::*;

fn id_of(experiment: &Value) -> i64 {
    experiment["id"].as_i64().expect("id")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn create_with(c: &Client, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"name": "rollout", "variants": [
        {"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    c.post("/experiments", body).await
}

async fn created(c: &Client, extra: Value) -> Value {
    let (status, body) = create_with(c, extra).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn assignment_rows(db: &sqlx::PgPool, id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM assignments WHERE experiment_id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("count")
}

#[tokio::test]
async fn assignments_made_before_rollout_control_keep_their_variants() {
    let (env, api, c) = setup().await;
    let db = pg(&env).await;
    let fixture: Value =
        serde_json::from_str(include_str!("data/assignments_v1.json")).expect("api/tests/data/assignments_v1.json");
    for e in fixture["experiments"].as_array().expect("experiments") {
        let id = id_of(&c.post("/experiments", json!({"name": "made before", "variants": e["variants"]})).await.1);
        // As the migration left an experiment of then: its salt, every new setting at default.
        sqlx::query("UPDATE experiments SET salt = $1 WHERE id = $2")
            .bind(e["salt"].as_str().expect("salt"))
            .bind(id)
            .execute(&db)
            .await
            .expect("salt");
        let (_, stored) = c.get(&format!("/experiments/{id}")).await;
        assert_eq!(
            (&stored["coverage_percent"], &stored["hash"], &stored["conditions"], &stored["layer"]),
            (&json!(100.0), &json!("sha256"), &Value::Null, &Value::Null)
        );
        for pair in e["assignments"].as_array().expect("assignments") {
            let (user, variant) = (pair[0].as_str().expect("user"), &pair[1]);
            let (status, a) = c.get(&format!("/experiments/{id}/assignment/{}", urlencoding(user))).await;
            assert_eq!((status, &a["variant"], &a["reason"]), (StatusCode::OK, variant, &json!("assigned")), "{user}");
        }
    }
    api.stop().await;
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn coverage_grows_without_moving_anyone_and_targeting_is_sticky() {
    let (env, api, c) = setup().await;
    let db = pg(&env).await;
    let id = id_of(&created(&c, json!({"coverage_percent": 10})).await);
    let mut included = HashMap::new();
    for i in 0..1000 {
        let (status, a) = c.get(&format!("/experiments/{id}/assignment/cov-{i}")).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        match a["reason"].as_str() {
            Some("assigned") => {
                included.insert(i, a["variant"].clone());
            }
            Some("not_in_traffic") => assert_eq!((&a["variant"], &a["assigned_at"]), (&Value::Null, &Value::Null)),
            other => panic!("unexpected reason {other:?}: {a}"),
        }
    }
    // 10 % of 1000: sd 9.5; 5 sd either side.
    assert!((52..=148).contains(&included.len()), "{}", included.len());
    assert_eq!(assignment_rows(&db, id).await, included.len() as i64, "users outside the traffic get no row");

    let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"coverage_percent": 20})).await;
    assert_eq!(status, StatusCode::OK);
    // Forget the stored rows: the rules alone must keep every included user included.
    sqlx::query("DELETE FROM assignments WHERE experiment_id = $1").bind(id).execute(&db).await.expect("delete");
    let other = start_api(env.config.clone()).await;
    let fresh = Client::new(&other);
    let mut now_included = 0;
    for i in 0..1000 {
        let (_, a) = fresh.get(&format!("/experiments/{id}/assignment/cov-{i}")).await;
        if let Some(before) = included.get(&i) {
            assert_eq!(&a["variant"], before, "cov-{i} stays in, in the same variant");
        }
        now_included += usize::from(a["reason"] == "assigned");
    }
    assert!((143..=257).contains(&now_included), "{now_included}");
    other.stop().await;

    // Targeting: attributes from the query string or a JSON body; a user who stops
    // matching keeps the variant they have.
    let t = id_of(&created(&c, json!({"conditions": {"country": {"$in": ["DE", "AT"]}, "age": {"$gte": 18}}})).await);
    let (_, a) = c.get(&format!("/experiments/{t}/assignment/t1?country=DE&age=30")).await;
    assert_eq!(a["reason"], "assigned", "{a}");
    let (_, a) = c.get(&format!("/experiments/{t}/assignment/t2?country=FR&age=30")).await;
    assert_eq!((&a["reason"], &a["variant"]), (&json!("not_targeted"), &Value::Null));
    let (status, a) =
        c.post(&format!("/experiments/{t}/assignment/t3"), json!({"attributes": {"country": "AT", "age": 17}})).await;
    assert_eq!((status, &a["reason"]), (StatusCode::OK, &json!("not_targeted")), "{a}");
    let (_, a) =
        c.post(&format!("/experiments/{t}/assignment/t3"), json!({"attributes": {"country": "AT", "age": 18}})).await;
    assert_eq!(a["reason"], "assigned", "{a}");
    let (_, before) = c.get(&format!("/experiments/{t}/assignment/t1")).await;
    let (status, _) = c.patch(&format!("/experiments/{t}"), json!({"conditions": {"country": "FR"}})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = c.get(&format!("/experiments/{t}/assignment/t1?country=DE")).await;
    assert_eq!((&after["variant"], &after["reason"]), (&before["variant"], &json!("assigned")), "sticky");
    let (_, a) = c.get(&format!("/experiments/{t}/assignment/t4?country=DE")).await;
    assert_eq!(a["reason"], "not_targeted");
    // Bad input: 400 naming the part.
    for (body, field) in [
        (json!({"conditions": {"age": {"$gte": "x"}}}), "conditions.age.$gte"),
        (json!({"conditions": {"name": {"$regex": "("}}}), "conditions.name.$regex"),
        (json!({"coverage_percent": 101}), "coverage_percent"),
        (json!({"start_at": "2030-01-02T00:00:00Z", "stop_at": "2030-01-01T00:00:00Z"}), "stop_at"),
        (json!({"forced": {"qa": "nope"}}), "forced.qa"),
        (json!({"hash": "md5"}), "hash"),
    ] {
        let (status, err) = create_with(&c, body.clone()).await;
        assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {err}");
    }
    let (status, err) = c.get(&format!("/experiments/{t}/assignment/u?{}=1", "n".repeat(129))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["field"].as_str().expect("field").starts_with("attributes."), "{err}");
    let (status, err) = c.get(&format!("/experiments/{t}/assignment/u?a=1&a=2")).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("attributes.a")), "{err}");
    let (status, err) = c.post(&format!("/experiments/{t}/assignment/u"), json!({"attributes": {"x": {"y": 1}}})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("attributes.x")), "{err}");
    api.stop().await;
}

#[tokio::test]
async fn schedule_and_forced_users() {
    let (env, api, c) = setup().await;
    let db = pg(&env).await;
    let later = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let id = id_of(&created(&c, json!({"start_at": later, "forced": {"qa-1": "b", "qa-2": "a"}})).await);
    let (_, a) = c.get(&format!("/experiments/{id}/assignment/early")).await;
    assert_eq!((&a["variant"], &a["reason"]), (&Value::Null, &json!("not_started")));
    // Forced users get their variant before the start, are never stored, and their
    // exposure is flagged.
    let (_, a) = c.get(&format!("/experiments/{id}/assignment/qa-1")).await;
    assert_eq!((&a["variant"], &a["reason"], &a["new"]), (&json!("b"), &json!("forced"), &json!(false)));
    assert_eq!(assignment_rows(&db, id).await, 0);
    let earlier = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, e) = c.patch(&format!("/experiments/{id}"), json!({"start_at": null, "stop_at": earlier})).await;
    assert_eq!((status, &e["start_at"]), (StatusCode::OK, &Value::Null), "{e}");
    let (_, a) = c.get(&format!("/experiments/{id}/assignment/late")).await;
    assert_eq!(a["reason"], "ended");
    let (status, e) = c.patch(&format!("/experiments/{id}"), json!({"stop_at": null, "forced": {}})).await;
    assert_eq!((status, &e["forced"]), (StatusCode::OK, &json!({})));
    let (_, a) = c.get(&format!("/experiments/{id}/assignment/qa-1")).await;
    assert_eq!(a["reason"], "assigned", "no longer forced: decided and stored as anyone");
    let (status, err) = c.patch(&format!("/experiments/{id}"), json!({"forced": {"qa-3": "c"}})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("forced.qa-3")));
    let (status, err) = c
        .patch(
            &format!("/experiments/{id}"),
            json!({"start_at": "2030-01-01T00:00:00Z", "stop_at": "2029-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("stop_at")));
    api.stop().await;
}

#[tokio::test]
async fn layers_hand_out_disjoint_ranges_and_refuse_overlaps_even_under_races() {
    let (_env, api, c) = setup().await;
    let key = unique("checkout");
    let (status, layer) = c.post("/layers", json!({"key": key, "description": "checkout page"})).await;
    assert_eq!(status, StatusCode::CREATED, "{layer}");
    assert_eq!(c.post("/layers", json!({"key": key})).await.0, StatusCode::CONFLICT);
    let (status, err) = c.post("/layers", json!({"key": "no spaces"})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("key")));

    let a = created(&c, json!({"layer": {"key": key, "percent": 50}})).await;
    let b = created(&c, json!({"layer": {"key": key, "percent": 30}})).await;
    assert_eq!(a["layer"], json!({"key": key, "range": [0, 5000]}));
    assert_eq!(b["layer"], json!({"key": key, "range": [5000, 8000]}));
    let (status, err) = create_with(&c, json!({"layer": {"key": key, "range": [7000, 9000]}})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["message"].as_str().expect("message").contains("[8000, 10000]"), "names the free ranges: {err}");
    assert_eq!(create_with(&c, json!({"layer": {"key": key, "percent": 30}})).await.0, StatusCode::CONFLICT);
    let (status, err) = create_with(&c, json!({"layer": {"key": "missing-layer", "percent": 5}})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("layer.key")));

    // No user is in two experiments of the layer.
    let (ia, ib) = (id_of(&a), id_of(&b));
    let (mut in_a, mut in_b) = (0, 0);
    for i in 0..400 {
        let (_, ra) = c.get(&format!("/experiments/{ia}/assignment/l-{i}")).await;
        let (_, rb) = c.get(&format!("/experiments/{ib}/assignment/l-{i}")).await;
        let (ha, hb) = (ra["reason"] == "assigned", rb["reason"] == "assigned");
        assert!(!(ha && hb), "l-{i} in both: {ra} {rb}");
        assert!(ha || ra["reason"] == "not_in_layer", "l-{i}: {ra}");
        (in_a, in_b) = (in_a + usize::from(ha), in_b + usize::from(hb));
    }
    assert!(in_a > 150 && in_b > 80 && in_a + in_b < 400, "{in_a} {in_b}");

    // Stopping frees a range; running again while it is taken is a 409.
    assert_eq!(c.patch(&format!("/experiments/{ia}"), json!({"status": "stopped"})).await.0, StatusCode::OK);
    let (_, detail) = c.get(&format!("/layers/{key}")).await;
    assert_eq!(detail["free"], json!([[0, 5000], [8000, 10000]]), "{detail}");
    let taker = created(&c, json!({"layer": {"key": key, "range": [0, 1000]}})).await;
    let (status, err) = c.patch(&format!("/experiments/{ia}"), json!({"status": "running"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let (_, detail) = c.get(&format!("/layers/{key}")).await;
    let members: Vec<i64> = detail["experiments"].as_array().expect("members").iter().map(id_of).collect();
    assert_eq!(members, vec![id_of(&taker), ib]);

    // Ten requests race for one range: one wins, nine get a 409. Ten race for a share each:
    // all fit, in disjoint ranges.
    let race = unique("race");
    c.post("/layers", json!({"key": race})).await;
    let exact = futures::future::join_all(
        (0..10).map(|_| create_with(&c, json!({"layer": {"key": race, "range": [2000, 3000]}}))),
    )
    .await;
    let statuses: Vec<StatusCode> = exact.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 9, "{statuses:?}");
    let shares =
        futures::future::join_all((0..9).map(|_| create_with(&c, json!({"layer": {"key": race, "percent": 10}}))))
            .await;
    let mut ranges: Vec<(u64, u64)> = shares
        .iter()
        .map(|(status, e)| {
            assert_eq!(*status, StatusCode::CREATED, "{e}");
            (e["layer"]["range"][0].as_u64().expect("start"), e["layer"]["range"][1].as_u64().expect("end"))
        })
        .collect();
    ranges.push((2000, 3000));
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "disjoint: {ranges:?}");
    assert_eq!(ranges.iter().map(|(s, e)| e - s).sum::<u64>(), 10_000);
    api.stop().await;
}

#[tokio::test]
async fn a_holdout_keeps_its_users_out_and_both_sides_are_stored() {
    let (env, api, c) = setup().await;
    let db = pg(&env).await;
    let key = unique("hl");
    c.post("/layers", json!({"key": key})).await;
    let (status, h) = c.post("/holdouts", json!({"name": "holdout", "percent": 20, "layer": key})).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert_eq!(h["holdout"], true);
    assert_eq!(
        h["variants"],
        json!([{"name": "general", "allocation_percent": 80.0}, {"name": "holdout", "allocation_percent": 20.0}])
    );
    let (hid, e) = (id_of(&h), id_of(&created(&c, json!({"layer": {"key": key, "percent": 100}})).await));
    let outside = id_of(&created(&c, json!({})).await);
    let mut held = 0;
    for i in 0..500 {
        let user = format!("h-{i}");
        let (_, a) = c.get(&format!("/experiments/{e}/assignment/{user}")).await;
        let (_, side) = c.get(&format!("/experiments/{hid}/assignment/{user}")).await;
        assert_eq!(side["new"], false, "the holdout's side was stored with the first request");
        if a["reason"] == "holdout" {
            held += 1;
            assert_eq!((&a["variant"], &side["variant"]), (&Value::Null, &json!("holdout")));
        } else {
            assert_eq!((&a["reason"], &side["variant"]), (&json!("assigned"), &json!("general")), "{a}");
        }
        let (_, o) = c.get(&format!("/experiments/{outside}/assignment/{user}")).await;
        assert_eq!(o["reason"], "assigned", "a layer's holdout leaves other experiments alone");
    }
    // 20 % of 500: sd 8.9; 5 sd either side.
    assert!((55..=145).contains(&held), "{held}");
    assert_eq!(assignment_rows(&db, hid).await, 500);
    let (status, err) = c
        .patch(
            &format!("/experiments/{hid}"),
            json!({"variants": [
        {"name": "general", "allocation_percent": 50}, {"name": "holdout", "allocation_percent": 50}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a holdout's shares are fixed: {err}");
    api.stop().await;
}

/// User `i`'s attributes: a quarter each from DE, FR, US and BR; ages 15 to 54.
fn attrs(i: usize) -> (&'static str, usize, Attributes) {
    let (country, age) = (["DE", "FR", "US", "BR"][i % 4], 15 + i % 40);
    let attributes = BTreeMap::from([
        ("country".to_owned(), Attr::Text(country.to_owned())),
        ("age".to_owned(), Attr::Number(age as f64)),
    ]);
    (country, age, attributes)
}

async fn sdk_config(c: &Client, etag: Option<&str>) -> (StatusCode, Option<String>, Option<SdkConfig>) {
    let mut request = c.http.get(format!("{}/sdk/config", c.base)).bearer_auth("test-key");
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let etag = response.headers().get(header::ETAG).map(|v| v.to_str().expect("ascii").to_owned());
    if status == StatusCode::OK {
        assert_eq!(response.headers()[header::CACHE_CONTROL], "private, max-age=10");
    }
    let body = response.bytes().await.expect("body");
    (status, etag, serde_json::from_slice(&body).ok())
}

#[tokio::test]
async fn the_sdk_config_is_cacheable_and_local_evaluation_agrees_with_the_api() {
    let (_env, api, c) = setup().await;
    let key = unique("sim");
    c.post("/layers", json!({"key": key})).await;
    let holdout = id_of(&c.post("/holdouts", json!({"name": "global holdout", "percent": 10})).await.1);
    let three = [
        created(&c, json!({"layer": {"key": key, "percent": 40}})).await,
        created(&c, json!({"layer": {"key": key, "percent": 30}, "coverage_percent": 50})).await,
        created(&c, json!({"layer": {"key": key, "percent": 30}, "conditions": {"country": {"$in": ["DE", "FR"]}}}))
            .await,
    ];
    let ids: Vec<i64> = three.iter().map(id_of).collect();

    let (status, etag, config) = sdk_config(&c, None).await;
    assert_eq!(status, StatusCode::OK);
    let (etag, config) = (etag.expect("ETag"), config.expect("a config document"));
    assert_eq!(sdk_config(&c, Some(&etag)).await.0, StatusCode::NOT_MODIFIED);
    let rules = Rules::new(config);

    // The api answers as the rules it publishes (users it has not seen yet).
    for i in 0..300 {
        let user = format!("agree-{i}");
        let (country, age, a) = attrs(i);
        let body = json!({"attributes": {"country": country, "age": age}});
        for &id in &ids {
            let local = rules.decide(id, &user, &a, Utc::now());
            let (_, remote) = c.post(&format!("/experiments/{id}/assignment/{user}"), body.clone()).await;
            assert_eq!(remote["variant"], json!(local.variant), "{user} in {id}: {remote}");
            assert_eq!(remote["reason"], serde_json::to_value(local.reason).expect("reason"), "{user} in {id}");
        }
    }

    // One million users through the three layered experiments and the 10 % holdout.
    let n = 1_000_000usize;
    let mut counts: HashMap<(i64, Option<String>), usize> = HashMap::new();
    let mut held = 0usize;
    let now = Utc::now();
    for i in 0..n {
        let user = format!("sim-{i}");
        let (_, _, a) = attrs(i);
        let decisions: Vec<_> = ids.iter().map(|&id| rules.decide(id, &user, &a, now)).collect();
        let in_experiments = decisions.iter().filter(|d| d.variant.is_some()).count();
        assert!(in_experiments <= 1, "{user} is in {in_experiments} experiments of one layer");
        if decisions.iter().any(|d| d.reason == Reason::Holdout) {
            held += 1;
            assert!(decisions.iter().all(|d| d.reason == Reason::Holdout), "{user}");
        }
        for (id, d) in ids.iter().zip(decisions) {
            *counts.entry((*id, d.variant)).or_default() += 1;
        }
    }
    let share = |count: usize| count as f64 / n as f64 * 100.0;
    let within = |what: &str, got: f64, expected: f64| {
        assert!((got - expected).abs() < 0.5, "{what}: {got:.3} % of users, configured {expected} %");
    };
    within("holdout", share(held), 10.0);
    // 90 % not held out; of them: 40 % of the layer; 30 % at 50 % coverage; 30 % for the
    // half of the users from DE or FR. Each split 50/50.
    for (id, expected) in ids.iter().zip([0.9 * 40.0, 0.9 * 30.0 * 0.5, 0.9 * 30.0 * 0.5]) {
        for variant in ["a", "b"] {
            let count = counts.get(&(*id, Some(variant.to_owned()))).copied().unwrap_or(0);
            within(&format!("experiment {id} variant {variant}"), share(count), expected / 2.0);
        }
    }
    let holdouts: Vec<i64> = rules.config().holdouts.iter().map(|h| h.experiment_id).collect();
    assert!(holdouts.contains(&holdout), "{holdouts:?}");
    // Any change shows in a new ETag.
    c.patch(&format!("/experiments/{}", ids[0]), json!({"coverage_percent": 90})).await;
    let (status, new_etag, _) = sdk_config(&c, Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(new_etag.as_deref(), Some(etag.as_str()));
    let known: HashSet<i64> = rules.config().experiments.iter().map(|e| e.id).collect();
    assert!(ids.iter().all(|id| known.contains(id)));
    api.stop().await;
}

#[tokio::test]
async fn results_leave_forced_users_out_and_break_down_by_attribute() {
    let (env, api, c) = setup().await;
    let consumer = start_consumer(env.config.clone()).await;
    let id = id_of(&created(&c, json!({"forced": {"qa-1": "b"}})).await);
    let mut expected: HashMap<(&str, String), (u64, u64)> = HashMap::new();
    let mut events = Vec::new();
    for i in 0..60 {
        let (user, country) = (format!("seg-{i}"), ["DE", "FR", "US"][i % 3]);
        let (_, a) = c
            .post(
                &format!("/experiments/{id}/assignment/{user}"),
                json!({"attributes": {"country": country, "age": 20 + i}}),
            )
            .await;
        let variant = a["variant"].as_str().expect("variant").to_owned();
        let converts = i % 4 == 0;
        let entry = expected.entry((country, variant)).or_default();
        entry.0 += 1;
        entry.1 += u64::from(converts);
        if converts {
            events.push(json!({"user_id": user, "type": "purchase"}));
        }
    }
    // The forced user converts too, and must count nowhere.
    let (_, a) = c.post(&format!("/experiments/{id}/assignment/qa-1"), json!({"attributes": {"country": "DE"}})).await;
    assert_eq!(a["reason"], "forced");
    events.push(json!({"user_id": "qa-1", "type": "purchase"}));
    assert_eq!(c.post("/events/batch", Value::Array(events)).await.0, StatusCode::ACCEPTED);

    let users = |r: &Value| -> u64 {
        r["variants"].as_array().map_or(0, |v| v.iter().filter_map(|v| v["users"].as_u64()).sum())
    };
    let everyone =
        eventually_results(&c, &format!("/experiments/{id}/results?event_type=purchase"), |r| users(r) == 60).await;
    let converted: u64 =
        everyone["variants"].as_array().expect("variants").iter().filter_map(|v| v["converted_users"].as_u64()).sum();
    assert_eq!(converted, 15, "every 4th of 60 users; the forced user's purchase is not counted");
    for country in ["DE", "FR", "US"] {
        let path = format!("/experiments/{id}/results?event_type=purchase&attribute=country&attribute_value={country}");
        let (status, r) = c.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["segment"], json!({"attribute": "country", "value": country}));
        for v in r["variants"].as_array().expect("variants") {
            let name = v["name"].as_str().expect("name").to_owned();
            let (n, k) = expected.get(&(country, name.clone())).copied().unwrap_or_default();
            assert_eq!((v["users"].as_u64(), v["converted_users"].as_u64()), (Some(n), Some(k)), "{country} {name}");
        }
        let (_, t) = c
            .get(&format!(
                "/experiments/{id}/timeseries?event_type=purchase&attribute=country&attribute_value={country}"
            ))
            .await;
        let last: u64 = t["variants"]
            .as_array()
            .expect("series")
            .iter()
            .filter_map(|s| s["cumulative_users"].as_array()?.last()?.as_u64())
            .sum();
        assert_eq!(last, 20, "{country}: the time series counts the same users");
    }
    let (status, err) = c.get(&format!("/experiments/{id}/results?event_type=purchase&attribute=country")).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("attribute_value")));
    let (_, list) = c.get(&format!("/experiments?after={}&limit=1", id - 1)).await;
    assert_eq!(list["experiments"][0]["exposed_users"], 60, "the list counts as the results do");
    consumer.stop().await;
    api.stop().await;
}

async fn eventually_results(c: &Client, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::testkit::eventually(path, WAIT, || async {
        let (status, r) = c.get(path).await;
        (status == StatusCode::OK && done(&r)).then_some(r)
    })
    .await
}
