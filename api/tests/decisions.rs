//! The metrics answer (results without `event_type`) against the real Postgres and
//! ClickHouse: its explanation, recomputed by the Python program it carries; its breakdown
//! by an exposure attribute, corrected across every slice; a metric's proper prior.

use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::*;

const VARIANTS: [&str; 3] = ["a", "b", "c"];
const COUNTRIES: [&str; 3] = ["DE", "FR", "US"];
/// The decision's family (primary and secondaries), then the guardrails.
const DECIDING: [&str; 4] = ["purchases", "revenue", "revenue_capped", "order_value"];
const GUARDRAILS: [&str; 2] = ["latency", "refunds"];

fn close(ours: &Value, reference: &Value, what: &str) {
    let (a, b) = (ours.as_f64().unwrap_or_else(|| panic!("{what}: {ours}")), reference.as_f64().expect("reference"));
    assert!((a - b).abs() <= 1e-9_f64.max(b.abs() * 1e-9), "{what}: ours {a} vs reference {b}");
}

fn close_interval(ours: &Value, reference: &Value, what: &str) {
    assert_eq!(ours.is_null(), reference.is_null(), "{what}: {ours} vs {reference}");
    if !ours.is_null() {
        (0..2).for_each(|k| close(&ours[k], &reference[k], &format!("{what}[{k}]")));
    }
}

fn metric<'a>(metrics: &'a Value, key: &str) -> &'a Value {
    metrics.as_array().expect("metrics").iter().find(|m| m["key"] == key).unwrap_or_else(|| panic!("{key}"))
}

/// 900 users over three variants and three countries: purchases (order values 10 to 159,
/// every 5th / 4th / 3rd user of a variant), two pages each (c 25 ms slower), a refund for
/// every 11th user.
async fn experiment_with_metrics(env: &common::testkit::TestEnv, c: &Client) -> i64 {
    for m in [
        json!({"key": "purchases", "name": "Purchases", "kind": "conversion", "event_type": "purchase"}),
        json!({"key": "revenue", "name": "Revenue", "kind": "mean", "event_type": "purchase", "value_property": "order_value", "prior": {"mean": 0.0, "sd": 0.05}}),
        json!({"key": "revenue_capped", "name": "Revenue capped", "kind": "mean", "event_type": "purchase", "value_property": "order_value", "capping": {"absolute": 100}}),
        json!({"key": "order_value", "name": "Order value", "kind": "ratio", "event_type": "purchase", "value_property": "order_value", "denominator": {"event_type": "purchase"}}),
        json!({"key": "latency", "name": "Latency p50", "kind": "quantile", "quantile": 0.5, "event_type": "page", "value_property": "latency_ms", "direction": "lower"}),
        json!({"key": "refunds", "name": "Refunds", "kind": "conversion", "event_type": "refund", "direction": "lower"}),
    ] {
        let (status, body) = c.post("/metrics", m).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let variants: Vec<Value> =
        VARIANTS.iter().zip([33.34, 33.33, 33.33]).map(|(v, p)| json!({"name": v, "allocation_percent": p})).collect();
    let (status, e) = c
        .post(
            "/experiments",
            json!({"name": "decisions", "variants": variants,
                   "metrics": {"primary": "purchases", "secondary": ["revenue", "revenue_capped", "order_value"],
                               "guardrails": [{"metric": "latency", "margin": 0.2}, {"metric": "refunds", "margin": 0.05}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let id = e["id"].as_i64().expect("id");
    backdate(env, id).await;
    let now = chrono::Utc::now().timestamp();
    let (mut exposures, mut events) = (Vec::new(), Vec::new());
    let mut event = |user: &str, kind: &str, properties: String| {
        let t = now - 3600;
        events.push(format!("('{}', '{user}', '{kind}', {t}, {t}, '{properties}')", uuid::Uuid::new_v4()));
    };
    for i in 0..900usize {
        let (v, j, user) = (i % 3, i / 3, format!("d{i}"));
        let country = COUNTRIES[(j / 3) % 3];
        exposures.push(format!("({id}, '{user}', '{}', {}, ['country'], ['{country}'])", VARIANTS[v], now - 7200));
        if j % [5, 4, 3][v] == 0 {
            event(&user, "purchase", format!("{{\"order_value\":{}}}", 10 + (i * 37) % 150));
            if i % 2 == 0 {
                event(&user, "purchase", format!("{{\"order_value\":{}}}", 10 + (i * 13) % 90));
            }
        }
        for k in 0..2 {
            event(&user, "page", format!("{{\"latency_ms\":{}}}", 100 + (i * 17 + k * 29) % 400 + 25 * v / 2));
        }
        if i % 11 == 0 {
            event(&user, "refund", "{}".into());
        }
    }
    insert(
        env,
        "exposures (experiment_id, user_id, variant, exposed_at, attribute_keys, attribute_values)",
        &exposures,
    )
    .await;
    insert(env, "events (event_id, user_id, type, timestamp, received_at, properties)", &events).await;
    id
}

/// `explain=true` on the metrics answer: every metric's decision (p, adjusted p across the
/// decision's family or the guardrail's treatments, both intervals, significance) and every
/// guardrail status, recomputed by the Python program the answer carries.
#[tokio::test]
async fn the_metrics_answer_carries_its_proof() {
    let (env, api, c) = setup().await;
    let id = experiment_with_metrics(&env, &c).await;
    for (significance, correction) in [("sequential", "holm"), ("fixed_horizon", "bh")] {
        let (status, _) = c.patch(&format!("/experiments/{id}"), json!({"significance": significance})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, r) = c.get(&format!("/experiments/{id}/results?correction={correction}&explain=true")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let explain = &r["explain"];
        let statements: Vec<&str> =
            explain["statements"].as_array().expect("statements").iter().filter_map(Value::as_str).collect();
        assert!(statements.len() >= 6, "one statement per metric at least: {statements:?}");
        for bound in ["'purchase'", "'page'", "'refund'", "'latency_ms'"] {
            assert!(statements.iter().any(|s| s.contains(bound)), "{bound} bound in place");
        }
        assert_eq!(explain["metrics"].as_array().map(Vec::len), Some(6));
        let recomputed = run_python(explain["python"].as_str().expect("program")).await;
        for key in DECIDING.iter().chain(&GUARDRAILS) {
            let theirs = recomputed[key].as_array().unwrap_or_else(|| panic!("{key}: {recomputed}"));
            assert_eq!(theirs.len(), 2, "both treatments tested: {key}");
            for (i, t) in theirs.iter().enumerate() {
                let variant = &r["metrics"].as_array().expect("m").iter().find(|m| m["key"] == *key).expect("key")
                    ["variants"][i + 1];
                let (ours, what) =
                    (&variant["comparison"]["decision"], format!("{significance} {correction} {key} {i}"));
                let theirs = &t["decision"];
                close(&ours["p_value"], &theirs["p_value"], &format!("{what} p"));
                close(&ours["adjusted_p_value"], &theirs["adjusted_p_value"], &format!("{what} adjusted p"));
                close_interval(&ours["relative_ci"], &theirs["relative_ci"], &format!("{what} relative ci"));
                close_interval(&ours["absolute_ci"], &theirs["absolute_ci"], &format!("{what} absolute ci"));
                assert_eq!(ours["significant"], theirs["significant"], "{what}");
                if GUARDRAILS.contains(key) {
                    assert_eq!(variant["guardrail"], theirs["guardrail"], "{what}");
                }
            }
        }
    }
    let (_, plain) = c.get(&format!("/experiments/{id}/results")).await;
    assert_eq!(plain["explain"], Value::Null, "only when asked");
    api.stop().await;
}

/// `dimension=country` on the metrics answer: each slice's metrics are the segment asked
/// alone; decisions adjusted across every slice × metric × treatment of the decision, each
/// guardrail across slices × treatments; and a metric's proper prior shrinks its Bayesian
/// view (only that metric's).
#[tokio::test]
async fn the_metrics_answer_breaks_down_and_honours_a_metrics_prior() {
    let (env, api, c) = setup().await;
    let id = experiment_with_metrics(&env, &c).await;
    let (status, r) = c.get(&format!("/experiments/{id}/results?dimension=country")).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let slices = r["breakdown"]["slices"].as_array().expect("slices");
    let values: Vec<&str> = slices.iter().filter_map(|s| s["value"].as_str()).collect();
    let mut sorted = values.clone();
    sorted.sort();
    assert_eq!(sorted, COUNTRIES, "{r}");
    let decision = |m: &Value, i: usize| m["variants"][i]["comparison"]["decision"].clone();
    let (mut deciding, mut adjusted) = (Vec::new(), Vec::new());
    let mut guardrails: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    let mut everyone = 0;
    for slice in slices {
        let country = slice["value"].as_str().expect("value");
        let (_, alone) = c.get(&format!("/experiments/{id}/results?attribute=country&attribute_value={country}")).await;
        assert_eq!(slice["users"], alone["users"], "{country}");
        everyone += slice["users"].as_array().map_or(0, |u| u.iter().filter_map(Value::as_u64).sum::<u64>());
        for key in DECIDING.iter().chain(&GUARDRAILS) {
            let (m, a) = (metric(&slice["metrics"], key), metric(&alone["metrics"], key));
            for i in 1..3 {
                let (d, da) = (decision(m, i), decision(a, i));
                assert_eq!(d["p_value"], da["p_value"], "{country} {key}: the slice is the segment alone");
                assert_eq!(m["variants"][i]["mean"], a["variants"][i]["mean"], "{country} {key}");
                let p = d["p_value"].as_f64().unwrap_or_else(|| panic!("{country} {key} {i}: {d}"));
                let adj = d["adjusted_p_value"].as_f64().expect("adjusted");
                match GUARDRAILS.iter().position(|g| g == key) {
                    Some(g) => {
                        guardrails[g].0.push(p);
                        guardrails[g].1.push(adj);
                    }
                    None => {
                        deciding.push(p);
                        adjusted.push(adj);
                    }
                }
                let ci = &d["relative_ci"];
                let excludes = ci[0].as_f64() > Some(0.0) || ci[1].as_f64() < Some(0.0);
                assert_eq!(d["significant"].as_bool(), Some(excludes), "{country} {key}: {d}");
            }
        }
    }
    assert_eq!(everyone, 900, "every user in one slice");
    assert_eq!(deciding.len(), 3 * 4 * 2, "slices × decision metrics × treatments");
    for (a, b) in adjusted.iter().zip(holm(&deciding)) {
        assert!((a - b).abs() <= 1e-12, "Holm across the breakdown: {a} vs {b}");
    }
    for (p, adjusted) in &guardrails {
        assert_eq!(p.len(), 6, "slices × treatments");
        for (a, b) in adjusted.iter().zip(holm(p)) {
            assert!((a - b).abs() <= 1e-12, "a guardrail's Holm across slices: {a} vs {b}");
        }
    }

    // The prior: N(0, 0.05²) on revenue's relative lift; the same numbers asked as an event
    // type carry the flat default. Posterior mean = r·(1/v) / (1/v + 1/0.05²), with v the
    // flat posterior's variance.
    let (_, all) = c.get(&format!("/experiments/{id}/results")).await;
    let (_, flat) = c.get(&format!("/experiments/{id}/results?event_type=purchase&value_property=order_value")).await;
    let z = 1.959_963_984_540_054;
    for i in 1..3 {
        let flat = &flat["variants"][i]["comparison"]["value"]["bayesian"]["credible_interval"];
        let (lo, hi) = (flat[0].as_f64().expect("lo"), flat[1].as_f64().expect("hi"));
        let (r, v) = ((lo + hi) / 2.0, ((hi - lo) / (2.0 * z)).powi(2));
        let precision = 1.0 / v + 1.0 / 0.05_f64.powi(2);
        let shrunk = &metric(&all["metrics"], "revenue")["variants"][i]["comparison"]["bayesian"]["credible_interval"];
        let centre = (shrunk[0].as_f64().expect("lo") + shrunk[1].as_f64().expect("hi")) / 2.0;
        assert!((centre - r / v / precision).abs() < 1e-9, "variant {i}: {centre} vs {}", r / v / precision);
        assert!(centre.abs() < r.abs(), "pulled towards 0");
        let capped = &metric(&all["metrics"], "revenue_capped")["variants"][i]["comparison"];
        let [lo, hi] = [0, 1].map(|k| capped["bayesian"]["credible_interval"][k].as_f64().expect("ci"));
        assert!(((lo + hi) / 2.0 - capped["relative_lift"].as_f64().expect("lift")).abs() < 1e-12, "flat elsewhere");
    }
    // A prior is checked, changed and cleared like any field.
    for bad in [json!({"mean": 0, "sd": 0}), json!({"mean": 0, "sd": 0.1, "weight": 1})] {
        let (status, err) = c.patch("/metrics/revenue", json!({"prior": bad})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    }
    let (status, m) = c.patch("/metrics/revenue", json!({"prior": null})).await;
    assert_eq!((status, &m["prior"]), (StatusCode::OK, &Value::Null), "{m}");
    api.stop().await;
}
