//! The metric catalog against the real Postgres and ClickHouse: definitions with clear
//! errors, experiments decided on several metrics, and every metric's numbers recomputed
//! here from the data inserted.

use std::{collections::HashMap, time::Duration};

use consumer::rows::{self, Rows, Source, EVENTS};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::*;

#[tokio::test]
async fn metrics_are_defined_once_listed_changed_and_archived_with_clear_errors() {
    let (_env, api, c) = setup().await;
    let purchases = json!({"key": "purchases", "name": "Purchases", "kind": "conversion", "event_type": "purchase"});
    let (status, m) = c.post("/metrics", purchases.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(
        (&m["key"], &m["direction"], &m["archived"], &m["filters"]),
        (&json!("purchases"), &json!("higher"), &json!(false), &json!([]))
    );
    let (status, err) = c.post("/metrics", purchases).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    for (body, field) in [
        (json!({"key": "bad key", "name": "n", "kind": "conversion", "event_type": "t"}), "key"),
        (
            json!({"key": "k", "name": "n", "kind": "conversion", "event_type": "t", "value_property": "v"}),
            "value_property",
        ),
        (json!({"key": "k", "name": "n", "kind": "mean", "event_type": "t", "capping": {"percentile": 2}}), "capping"),
        (json!({"key": "k", "name": "n", "kind": "mean", "event_type": "t", "window_hours": -1}), "window_hours"),
        (
            json!({"key": "k", "name": "n", "kind": "mean", "event_type": "t", "filters": [{"property": "a", "value": [1]}]}),
            "filters",
        ),
        (json!({"key": "k", "name": " ", "kind": "mean", "event_type": "t"}), "name"),
    ] {
        let (status, err) = c.post("/metrics", body.clone()).await;
        assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {err}");
        assert_eq!(err["error"], "invalid_metric", "{err}");
    }
    for body in [
        json!({"key": "k", "name": "n", "kind": "ratio", "event_type": "t"}),
        json!({"key": "k", "name": "n", "kind": "mean", "event_type": "t", "windw_hours": 3}),
    ] {
        let (status, err) = c.post("/metrics", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err["message"].is_string(), "{err}");
    }
    let (status, revenue) = c
        .post(
            "/metrics",
            json!({"key": "revenue", "name": "Revenue", "kind": "mean", "event_type": "purchase",
                   "value_property": "order_value", "capping": {"percentile": 0.99}, "window_hours": 72,
                   "filters": [{"property": "country", "value": "DE"}, {"property": "/app/build", "value": 42}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{revenue}");
    assert_eq!(revenue["capping"], json!({"percentile": 0.99}));

    let (_, list) = c.get("/metrics").await;
    let keys: Vec<&str> = list["metrics"].as_array().expect("list").iter().filter_map(|m| m["key"].as_str()).collect();
    assert_eq!(keys, ["purchases", "revenue"]);
    let (status, err) = c.get("/metrics/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let (status, err) = c.get("/metrics/no%20pe").await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("key")), "{err}");

    let (status, changed) =
        c.patch("/metrics/revenue", json!({"name": "Revenue (DE)", "capping": null, "direction": "higher"})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["capping"], &changed["window_hours"]),
        (&json!("Revenue (DE)"), &Value::Null, &json!(72.0))
    );
    let (status, err) = c.patch("/metrics/purchases", json!({"value_property": "x"})).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("value_property")), "{err}");
    let (status, err) = c.patch("/metrics/purchases", json!({"kind": "mean"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the kind never changes: {err}");

    // Archived: hidden from the list unless asked, refused on experiments.
    let (status, _) = c.patch("/metrics/revenue", json!({"archived": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = c.get("/metrics").await;
    assert_eq!(list["metrics"].as_array().map(Vec::len), Some(1));
    let (_, all) = c.get("/metrics?archived=true").await;
    assert_eq!(all["metrics"].as_array().map(Vec::len), Some(2));
    let variants = json!([{"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]);
    for (metrics, what) in [
        (json!({"primary": "revenue"}), "archived"),
        (json!({"primary": "missing"}), "create it"),
        (json!({"primary": "purchases", "secondary": ["purchases"]}), "twice"),
    ] {
        let (status, err) =
            c.post("/experiments", json!({"name": "e", "variants": variants, "metrics": metrics})).await;
        assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("metrics")), "{err}");
        assert!(err["message"].as_str().is_some_and(|m| m.contains(what)), "{err}");
    }
    let (status, e) =
        c.post("/experiments", json!({"name": "e", "variants": variants, "metrics": {"primary": "purchases"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(e["metrics"], json!({"primary": "purchases", "secondary": [], "guardrails": []}));
    let id = e["id"].as_i64().expect("id");
    let (status, err) = c.get(&format!("/experiments/{id}/results")).await;
    assert_eq!(status, StatusCode::OK, "an experiment with metrics answers without event_type: {err}");
    // Archiving a metric keeps it on the experiments that use it.
    let (status, _) = c.patch("/metrics/purchases", json!({"archived": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, kept) = c.get(&format!("/experiments/{id}/results")).await;
    assert_eq!(kept["metrics"][0]["key"], "purchases", "{kept}");
    let (status, none) = c.post("/experiments", json!({"name": "e", "variants": variants})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = c.get(&format!("/experiments/{}/results", none["id"])).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("event_type")), "{err}");
    api.stop().await;
}

/// What one user did: variant, country, purchases (minutes after exposure, order value)
/// and whether they asked for a refund.
struct User {
    name: String,
    variant: &'static str,
    country: &'static str,
    purchases: Vec<(i64, f64)>,
    refund: bool,
}

fn users() -> Vec<User> {
    (0..240)
        .map(|i: i64| {
            let variant = if i % 2 == 0 { "a" } else { "b" };
            let bought = (i % 5) as usize + usize::from(variant == "b" && i % 3 == 0);
            User {
                name: format!("m-{i}"),
                variant,
                country: if i % 3 == 0 { "DE" } else { "FR" },
                purchases: (0..bought)
                    .map(|j| (50 * (j as i64 + 1), 5.0 + ((i * 37 + j as i64 * 11) % 140) as f64))
                    .collect(),
                refund: i % 7 == 0,
            }
        })
        .collect()
}

/// Per variant `[a, b]`: exposed users and the per-user values of a metric.
fn per_user(users: &[User], value: impl Fn(&User) -> f64) -> [Vec<f64>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for u in users {
        out[usize::from(u.variant == "b")].push(value(u));
    }
    out
}

/// A user's page latencies (ms): 1 to 3 pages, b 30 ms slower.
fn latencies(u: &User) -> Vec<f64> {
    let i: f64 = u.name.trim_start_matches("m-").parse().expect("user number");
    let slower = if u.variant == "b" { 30.0 } else { 0.0 };
    (0..1 + (i as usize) % 3).map(|k| 100.0 + ((i * 17.0 + k as f64 * 29.0) % 400.0) + slower).collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: api {a} vs expected {b}");
}

#[tokio::test]
async fn an_experiment_is_decided_on_all_its_metrics_in_one_answer() {
    let (env, api, c) = setup().await;
    for m in [
        json!({"key": "purchases", "name": "Purchases", "kind": "conversion", "event_type": "purchase"}),
        json!({"key": "revenue", "name": "Revenue", "kind": "mean", "event_type": "purchase", "value_property": "order_value", "capping": {"absolute": 100}}),
        json!({"key": "revenue_p90", "name": "Revenue, p90-capped", "kind": "mean", "event_type": "purchase", "value_property": "order_value", "capping": {"percentile": 0.9}}),
        json!({"key": "items_2h", "name": "Purchases in 2 h", "kind": "mean", "event_type": "purchase", "window_hours": 2}),
        json!({"key": "de_buyers", "name": "Buyers in DE", "kind": "conversion", "event_type": "purchase", "filters": [{"property": "country", "value": "DE"}]}),
        json!({"key": "refunds", "name": "Refunds", "kind": "conversion", "event_type": "refund", "direction": "lower"}),
        json!({"key": "order_value", "name": "Revenue per order", "kind": "ratio", "event_type": "purchase", "value_property": "order_value", "denominator": {"event_type": "purchase"}}),
        json!({"key": "refund_rate", "name": "Refunds per purchase", "kind": "ratio", "event_type": "refund", "denominator": {"event_type": "purchase"}, "direction": "lower"}),
        json!({"key": "latency_p90", "name": "Page latency p90", "kind": "quantile", "quantile": 0.9, "event_type": "page", "value_property": "latency_ms", "direction": "lower"}),
    ] {
        let (status, body) = c.post("/metrics", m).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, e) = c
        .post(
            "/experiments",
            json!({"name": "checkout", "variants": [{"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}],
                   "metrics": {"primary": "purchases", "secondary": ["revenue", "revenue_p90", "items_2h", "de_buyers", "order_value"],
                               "guardrails": [{"metric": "refunds", "margin": 0.05}, {"metric": "refund_rate", "margin": 0.1}, {"metric": "latency_p90", "margin": 0.1}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let id = e["id"].as_i64().expect("id");
    backdate(&env, id).await;

    let users = users();
    let fe = chrono::Utc::now().timestamp() - 5 * 3600;
    let ch = env.clickhouse();
    let exposures: Vec<String> = users.iter().map(|u| format!("({id}, '{}', '{}', {fe})", u.name, u.variant)).collect();
    ch.query(&format!(
        "INSERT INTO exposures (experiment_id, user_id, variant, exposed_at) VALUES {}",
        exposures.join(",")
    ))
    .execute()
    .await
    .expect("exposures");
    let mut events = Rows::default();
    let mut push = |user: &str, kind: &str, at: i64, properties: String| {
        let properties = serde_json::value::RawValue::from_string(properties).expect("json");
        let event = common::event::EventEnvelope {
            v: 1,
            event_id: uuid::Uuid::new_v4(),
            user_id: user.into(),
            event_type: kind.into(),
            timestamp_ms: at * 1000,
            received_at_ms: at * 1000,
            properties: &properties,
        };
        events.push_event(&event, Source { partition: 0, offset: 0 });
    };
    for u in &users {
        for (minutes, value) in &u.purchases {
            push(
                &u.name,
                "purchase",
                fe + minutes * 60,
                json!({"order_value": value, "country": u.country}).to_string(),
            );
        }
        if u.refund {
            push(&u.name, "refund", fe + 600, "{}".into());
        }
        for (k, latency) in latencies(u).iter().enumerate() {
            push(&u.name, "page", fe + 60 * (k as i64 + 1), json!({"latency_ms": latency}).to_string());
        }
        push(&u.name, "page", fe + 30, json!({"latency_ms": "slow"}).to_string());
        // no value
    }
    rows::insert(&ch, EVENTS, events.bytes(0..events.len()), Duration::from_secs(30)).await.expect("events");

    let (status, r) = c.get(&format!("/experiments/{id}/results")).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let metrics: HashMap<&str, &Value> =
        r["metrics"].as_array().expect("metrics").iter().map(|m| (m["key"].as_str().expect("key"), m)).collect();
    let order: Vec<&str> = r["metrics"].as_array().expect("m").iter().filter_map(|m| m["key"].as_str()).collect();
    assert_eq!(
        order,
        [
            "purchases",
            "revenue",
            "revenue_p90",
            "items_2h",
            "de_buyers",
            "order_value",
            "refunds",
            "refund_rate",
            "latency_p90"
        ]
    );
    assert_eq!(r["users"], json!([120, 120]));

    // Every metric recomputed from the same data by numpy, scipy and gbstats
    // (`reference_stats.py --metrics`, independently of the api): counts exact, every other
    // number to 1e-9.
    assert_eq!(r["significance"], "sequential", "the decisions below are the sequential test");
    fn lists(users: &[User], f: impl Fn(&User) -> Vec<f64>) -> Value {
        let of = |v: &str| users.iter().filter(|u| u.variant == v).map(&f).collect::<Vec<_>>();
        json!([of("a"), of("b")])
    }
    let orders = |u: &User| u.purchases.iter().map(|p| p.1).collect::<Vec<f64>>();
    let ones = |n: usize| vec![1.0; n];
    let pages = ["a", "b"].map(|v| users.iter().filter(|u| u.variant == v).flat_map(latencies).collect::<Vec<_>>());
    let spec = json!({"alpha": r["alpha"], "tuning": r["sequential_tuning"], "metrics": [
        {"key": "purchases", "kind": "conversion", "users": lists(&users, orders)},
        {"key": "revenue", "kind": "mean", "cap": {"absolute": 100}, "users": lists(&users, orders)},
        {"key": "revenue_p90", "kind": "mean", "cap": {"percentile": 0.9}, "users": lists(&users, orders)},
        {"key": "items_2h", "kind": "mean",
         "users": lists(&users, |u| ones(u.purchases.iter().filter(|p| p.0 <= 120).count()))},
        {"key": "de_buyers", "kind": "conversion",
         "users": lists(&users, |u| if u.country == "DE" { orders(u) } else { Vec::new() })},
        {"key": "refunds", "kind": "conversion", "users": lists(&users, |u| ones(usize::from(u.refund)))},
        {"key": "order_value", "kind": "ratio", "numerator": lists(&users, orders),
         "denominator": lists(&users, |u| ones(u.purchases.len()))},
        {"key": "refund_rate", "kind": "ratio", "numerator": lists(&users, |u| ones(usize::from(u.refund))),
         "denominator": lists(&users, |u| ones(u.purchases.len()))},
        {"key": "latency_p90", "kind": "quantile", "q": 0.9, "values": pages},
    ]});
    async fn reference_of(spec: &Value) -> Value {
        use tokio::io::AsyncWriteExt;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/reference_stats.py");
        let python = std::env::var("ABTESTKIT_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = tokio::process::Command::new(python)
            .args([script, "--metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with numpy, scipy and gbstats (scripts/test installs them)");
        child.stdin.take().expect("stdin").write_all(spec.to_string().as_bytes()).await.expect("write");
        let out = child.wait_with_output().await.expect("python ran");
        assert!(out.status.success(), "reference script failed");
        serde_json::from_slice(&out.stdout).expect("reference JSON")
    }
    let reference = reference_of(&spec).await;
    let num = |v: &Value, what: &str| v.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    let near = |ours: &Value, theirs: &Value, what: &str| close(num(ours, what), num(theirs, what), what);
    let pair = |ours: &Value, theirs: &Value, what: &str| {
        (0..2).for_each(|i| near(&ours[i], &theirs[i], &format!("{what}[{i}]")));
    };
    for key in order.iter().copied() {
        let (ours, theirs) = (metrics[key], &reference[key]);
        for i in 0..2 {
            let (o, t) = (&ours["variants"][i], &theirs["variants"][i]);
            if ours["kind"] == "quantile" {
                // a quantile counts valued events; its users are everyone exposed
                assert_eq!((o["total"].as_f64(), o["users"].as_u64()), (t["n"].as_f64(), Some(120)), "{key} {i}");
                near(&o["mean"], &t["value"], &format!("{key} quantile {i}"));
                continue;
            }
            assert_eq!(o["users"], t["users"], "{key} users {i}");
            if ours["kind"] == "conversion" {
                assert_eq!(o["total"].as_f64(), t["total"].as_f64(), "{key} converted {i}");
            }
            for field in ["total", "mean", "denominator"].into_iter().filter(|f| t.get(f).is_some()) {
                near(&o[field], &t[field], &format!("{key} {field} {i}"));
            }
        }
        // The treatment against the control: both tests' p-values and intervals.
        let (o, t) = (&ours["variants"][1]["comparison"], &theirs["comparisons"][0]);
        near(&o["relative_lift"], &t["relative_lift"], &format!("{key} lift"));
        for (view, theirs_view) in [(o, t), (&o["sequential"], &t["sequential"])] {
            near(&view["p_value"], &theirs_view["p_value"], &format!("{key} p"));
            pair(&view["relative_ci"], &theirs_view["relative_ci"], &format!("{key} relative_ci"));
            pair(&view["absolute_ci"], &theirs_view["absolute_ci"], &format!("{key} absolute_ci"));
        }
        // The decision is the sequential test; its intervals are the sequential ones, widened
        // to the adjusted p-value (unadjusted for a guardrail with one treatment).
        let d = &o["decision"];
        near(&d["p_value"], &t["sequential"]["p_value"], &format!("{key} decision p"));
        if ours["role"] == "guardrail" {
            pair(&d["relative_ci"], &t["sequential"]["relative_ci"], &format!("{key} decision relative_ci"));
            pair(&d["absolute_ci"], &t["sequential"]["absolute_ci"], &format!("{key} decision absolute_ci"));
        } else {
            let [lo, hi] = [0, 1].map(|i| num(&d["relative_ci"][i], key));
            let [a, b] = [0, 1].map(|i| num(&t["sequential"]["relative_ci"][i], key));
            assert!(lo <= a + 1e-9 * a.abs().max(1.0) && hi >= b - 1e-9 * b.abs().max(1.0), "{key}: {d} vs {t}");
        }
    }
    let latency = &metrics["latency_p90"]["variants"][1]["comparison"];
    assert!(latency["relative_lift"].as_f64().is_some_and(|l| l > 0.0), "b is slower: {latency}");
    assert!(metrics["latency_p90"]["variants"][1]["guardrail"].is_string());
    // The window and the cap mattered: they are not the plain numbers. The percentile cap is
    // quantileExact's element at floor(level · n) of the pooled per-user sums, here too.
    let purchases_a = users.iter().filter(|u| u.variant == "a").map(|u| u.purchases.len() as f64).sum::<f64>();
    assert!(num(&reference["items_2h"]["variants"][0]["total"], "items") < purchases_a);
    let pooled_p90 = {
        let mut all: Vec<f64> = users.iter().map(|u| u.purchases.iter().map(|p| p.1).sum::<f64>()).collect();
        all.sort_by(f64::total_cmp);
        all[(0.9 * all.len() as f64) as usize]
    };
    assert_eq!(reference["revenue_p90"]["cap"].as_f64(), Some(pooled_p90));
    let uncapped: f64 = per_user(&users, |u| u.purchases.iter().map(|p| p.1).sum::<f64>())[0].iter().sum();
    for key in ["revenue", "revenue_p90"] {
        assert!(num(&reference[key]["variants"][0]["total"], key) < uncapped, "{key}: the cap changed nothing");
    }
    assert!(pooled_p90 != 100.0, "{pooled_p90}");

    // The decision's family is primary and secondaries: Holm over their six p-values.
    let decision = |key: &str| metrics[key]["variants"][1]["comparison"]["decision"].clone();
    let family = ["purchases", "revenue", "revenue_p90", "items_2h", "de_buyers", "order_value"];
    let p: Vec<f64> = family.iter().map(|k| decision(k)["p_value"].as_f64().expect("p")).collect();
    for (k, adjusted) in family.iter().zip(holm(&p)) {
        let d = decision(k);
        close(d["adjusted_p_value"].as_f64().expect("adjusted"), adjusted, &format!("{k} adjusted"));
        assert_eq!(d["significant"].as_bool(), Some(adjusted < 0.05), "{k}");
        let ci = &d["relative_ci"];
        let excludes = ci[0].as_f64() > Some(0.0) || ci[1].as_f64() < Some(0.0);
        assert_eq!(d["significant"].as_bool(), Some(excludes), "{k}: {d}");
    }
    // The guardrail: corrected alone (one treatment: unadjusted), judged against its margin.
    let refunds = decision("refunds");
    assert_eq!(refunds["adjusted_p_value"], refunds["p_value"]);
    let [lo, hi] = [refunds["relative_ci"][0].as_f64(), refunds["relative_ci"][1].as_f64()];
    let status = match (lo, hi) {
        (Some(lo), _) if lo > 0.05 => "fail",
        (_, Some(hi)) if hi < 0.05 => "pass",
        _ => "inconclusive",
    };
    assert_eq!(metrics["refunds"]["variants"][1]["guardrail"], status, "{}", metrics["refunds"]);
    assert_eq!(metrics["refunds"]["variants"][0]["guardrail"], Value::Null, "the control has no status");
    assert_eq!(
        (metrics["refunds"]["role"].as_str(), metrics["refunds"]["margin"].as_f64()),
        (Some("guardrail"), Some(0.05))
    );

    // The same metric asked as an event type gives the same unadjusted numbers.
    let (_, single) = c.get(&format!("/experiments/{id}/results?event_type=purchase")).await;
    let one = &single["variants"][1]["comparison"]["conversion"];
    let many = &metrics["purchases"]["variants"][1]["comparison"];
    assert_eq!((&one["p_value"], &one["relative_ci"]), (&many["p_value"], &many["relative_ci"]));
    assert_eq!(one["decision"]["p_value"], many["decision"]["p_value"]);
    api.stop().await;
}

/// `dimension=country`: the results per country (the 10 largest, the rest as `other`),
/// each slice equal to the segment asked alone, corrected across every slice × treatment.
#[tokio::test]
async fn results_break_down_by_an_exposure_attribute() {
    let (env, api, c) = setup().await;
    let id = c.create(&[("a", 50.0), ("b", 50.0)]).await["id"].as_i64().expect("id");
    backdate(&env, id).await;
    let now = chrono::Utc::now().timestamp();
    // Countries c0..c11 with 60, 55, ... users; every 4th user (every 3rd in b) buys.
    let (mut exposures, mut events, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..12 {
        let size = 60 - 5 * k;
        sizes.push((format!("c{k}"), size));
        for i in 0..size {
            let (user, variant) = (format!("u{k}-{i}"), if i % 2 == 0 { "a" } else { "b" });
            exposures.push(format!("({id}, '{user}', '{variant}', {}, ['country'], ['c{k}'])", now - 7200));
            if i % if variant == "a" { 4 } else { 3 } == 0 {
                events.push(format!(
                    "('{}', '{user}', 'purchase', {t}, {t}, '{{}}')",
                    uuid::Uuid::new_v4(),
                    t = now - 3600
                ));
            }
        }
    }
    insert(
        &env,
        "exposures (experiment_id, user_id, variant, exposed_at, attribute_keys, attribute_values)",
        &exposures,
    )
    .await;
    insert(&env, "events (event_id, user_id, type, timestamp, received_at, properties)", &events).await;

    let (status, r) = c.get(&format!("/experiments/{id}/results?event_type=purchase&dimension=country")).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let slices = r["breakdown"]["slices"].as_array().expect("slices");
    assert_eq!(slices.len(), 11, "ten countries and the rest");
    let users = |s: &Value| -> u64 {
        s["variants"].as_array().expect("v").iter().map(|v| v["users"].as_u64().expect("n")).sum()
    };
    for (slice, (country, size)) in slices.iter().take(10).zip(&sizes) {
        assert_eq!((slice["value"].as_str(), users(slice)), (Some(country.as_str()), *size as u64), "{slice}");
        assert_eq!(slice["other"], false);
        // The slice equals the segment asked alone (unadjusted numbers).
        let (_, alone) = c
            .get(&format!("/experiments/{id}/results?event_type=purchase&attribute=country&attribute_value={country}"))
            .await;
        let (x, y) =
            (&slice["variants"][1]["comparison"]["conversion"], &alone["variants"][1]["comparison"]["conversion"]);
        assert_eq!((&x["p_value"], &x["relative_ci"]), (&y["p_value"], &y["relative_ci"]), "{country}");
    }
    let other = &slices[10];
    assert_eq!(other["other"].as_bool(), Some(true));
    assert_eq!(users(other), sizes[10].1 as u64 + sizes[11].1 as u64, "c10 and c11: 10 and 5 users");
    // Holm across all eleven slices (one treatment each), on the deciding test.
    let p: Vec<f64> = slices
        .iter()
        .filter_map(|s| s["variants"][1]["comparison"]["conversion"]["sequential"]["p_value"].as_f64())
        .collect();
    let adjusted: Vec<f64> = slices
        .iter()
        .filter_map(|s| s["variants"][1]["comparison"]["conversion"]["decision"]["adjusted_p_value"].as_f64())
        .collect();
    assert_eq!(p.len(), adjusted.len());
    for (a, b) in adjusted.iter().zip(holm(&p)) {
        close(*a, b, "slice adjusted p");
    }
    let (status, err) = c
        .get(&format!(
            "/experiments/{id}/results?event_type=purchase&dimension=country&attribute=country&attribute_value=c1"
        ))
        .await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("dimension")), "{err}");
    api.stop().await;
}
