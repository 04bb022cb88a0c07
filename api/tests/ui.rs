//! The results page (`/ui`) in a real headless Chromium, driven over WebDriver
//! (chromedriver) against the API and consumer on the real local stack: what the page
//! shows must be exactly what the JSON API says.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them); the
//! driver is `ABTESTKIT_CHROMEDRIVER` or `/usr/bin/chromedriver`, the browser
//! `ABTESTKIT_CHROMIUM` or `/usr/bin/chromium`. Screenshots go to `target/ui-artifacts/`.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use common::testkit::{eventually, Service, Stack};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);
const KEY: &str = "test-key";

/// chromedriver on a free loopback port, in a process group of its own which the
/// Chromium it starts shares: dropping the driver kills that group by its id, so no
/// browser outlives the test even when something failed before the session closed.
struct Driver {
    child: tokio::process::Child,
    url: String,
    /// Chromium's profile, removed with the driver.
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Driver {
    async fn start() -> Self {
        let path = std::env::var("ABTESTKIT_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            Path::new(&path).exists(),
            "{path} is missing: the browser test needs Debian's chromium and chromium-driver \
             (`apt-get install chromium chromium-driver`, which scripts/test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        // Chromium's profile and temporary files, all in one directory removed with the driver.
        let profile = std::env::temp_dir().join(common::testkit::random_name("abtest_chromium"));
        std::fs::create_dir_all(&profile).expect("profile directory");
        let child = tokio::process::Command::new(&path)
            .env("TMPDIR", &profile)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {path}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver to answer", Duration::from_secs(20), || async {
            let ready = http.get(format!("{url}/status")).send().await.ok()?.json::<Value>().await.ok()?;
            ready["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        Self { child, url, profile }
    }

    async fn browser(&self) -> Browser {
        let chromium = std::env::var("ABTESTKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=en-US", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", self.profile.display())],
            }
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let value: Value = response.json().await.expect("JSON");
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn create(&self, name: &str, variants: &[(&str, f64)]) -> i64 {
        let variants: Vec<Value> = variants.iter().map(|(n, p)| json!({"name": n, "allocation_percent": p})).collect();
        let e = self
            .post("/experiments", json!({"name": name, "description": "Seeded by tests/ui.rs", "variants": variants}))
            .await;
        e["id"].as_i64().expect("id")
    }

    /// Assigns `users` through the API; returns (user, variant) in order.
    async fn assign(&self, id: i64, prefix: &str, users: std::ops::Range<usize>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for i in users {
            let user = format!("{prefix}-{i}");
            let a = self.get(&format!("/experiments/{id}/assignment/{user}")).await;
            out.push((user, a["variant"].as_str().expect("variant").to_owned()));
        }
        out
    }
}

// --- the page's number formats (en-US, as app.js formats them) -------------------------

fn thousands(digits: &str) -> String {
    let (sign, digits) = digits.strip_prefix('-').map_or(("", digits), |d| ("-", d));
    let (int, frac) = digits.split_once('.').map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn int(v: &Value) -> String {
    v.as_u64().map_or("—".into(), |n| thousands(&n.to_string()))
}

fn rate(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{}%", thousands(&format!("{:.2}", x * 100.0))))
}

fn lift(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| {
        let s = thousands(&format!("{:.1}", x * 100.0));
        match s.as_str() {
            "0.0" | "-0.0" => "0.0%".into(),
            _ if s.starts_with('-') => format!("{s}%"),
            _ => format!("+{s}%"),
        }
    })
}

fn range(v: &Value) -> String {
    if v[0].is_null() || v[1].is_null() {
        return "—".into();
    }
    format!("{} to {}", lift(&v[0]), lift(&v[1]))
}

fn p_value(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |p| if p < 0.001 { "< 0.001".into() } else { format!("{p:.3}") })
}

fn chance(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{:.1}%", x * 100.0))
}

fn decimal2(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| thousands(&format!("{x:.2}")))
}

#[test]
fn formats_are_those_of_the_page() {
    assert_eq!(int(&json!(1234567)), "1,234,567");
    assert_eq!(rate(&json!(0.123456)), "12.35%");
    assert_eq!(lift(&json!(0.5)), "+50.0%");
    assert_eq!(lift(&json!(-0.0421)), "-4.2%");
    assert_eq!(range(&json!([-0.1, 12.3456])), "-10.0% to +1,234.6%");
    assert_eq!(p_value(&json!(0.0004)), "< 0.001");
    assert_eq!(p_value(&json!(0.04321)), "0.043");
    assert_eq!(decimal2(&json!(1234.5)), "1,234.50");
}

/// The rendered cells of the results table: variant name -> data-field -> text.
async fn table(browser: &Browser) -> HashMap<String, HashMap<String, String>> {
    let rows = browser
        .execute(
            "return [...document.querySelectorAll('#results-table tbody tr')].map(tr => [tr.dataset.variant,
                Object.fromEntries([...tr.cells].map(td => [td.dataset.field, td.innerText.trim()]))]);",
            vec![],
        )
        .await
        .expect("read the table");
    serde_json::from_value::<Vec<(String, HashMap<String, String>)>>(rows).expect("rows").into_iter().collect()
}

/// What Chart.js holds for a canvas: labels and each dataset's label and data.
async fn chart(browser: &Browser, id: &str) -> Value {
    browser
        .execute(
            "const canvas = document.getElementById(arguments[0]); const c = Chart.getChart(canvas);
             return { labels: c.data.labels, width: canvas.width, height: canvas.height,
                      datasets: c.data.datasets.map(d => ({ label: d.label, type: d.type || c.config.type, data: d.data })) };",
            vec![json!(id)],
        )
        .await
        .unwrap_or_else(|e| panic!("read chart {id}: {e}"))
}

async fn js(browser: &Browser, script: &str) -> Value {
    browser.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Waits for a JavaScript expression to be truthy.
async fn until(browser: &Browser, what: &str, expression: &str) {
    let script = format!("return !!({expression});");
    eventually(what, WAIT, || async {
        let error =
            js(browser, "const e = document.getElementById('error'); return e.hidden ? null : e.innerText").await;
        assert!(error.is_null(), "waiting for {what}, the page shows an error: {error}");
        js(browser, &script).await.as_bool().filter(|b| *b)
    })
    .await;
}

/// The condition of an experiment's page being open, its results not asked for yet.
fn opened(experiment: &Value) -> String {
    format!(
        "!document.getElementById('experiment').hidden && document.getElementById('experiment-name').innerText === {} \
         && document.body.dataset.results === ''",
        experiment["name"]
    )
}

async fn click(browser: &Browser, css: &str) {
    browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.expect("click");
}

async fn screenshot(browser: &Browser, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let path = dir.join(name);
    std::fs::write(&path, browser.screenshot().await.expect("screenshot")).expect("write screenshot");
    path
}

/// Equal numbers at any depth, up to the last bit or two: the API's JSON is parsed by
/// serde_json here and by V8 in the page, which may round the last digit differently.
fn same(drawn: &Value, api: &Value, what: &str) {
    match (drawn, api) {
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{what}: {drawn} vs {api}");
            a.iter().zip(b).for_each(|(a, b)| same(a, b, what));
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: {drawn} vs {api}");
            a.iter().for_each(|(k, v)| same(v, &b[k], what));
        }
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().expect("number"), b.as_f64().expect("number"));
            assert!((a - b).abs() <= b.abs() * 1e-13, "{what}: drawn {a}, API {b}");
        }
        _ => assert_eq!(drawn, api, "{what}"),
    }
}

fn pct(v: &Value) -> Value {
    v.as_f64().map_or(Value::Null, |x| json!(x * 100.0))
}

#[tokio::test]
async fn results_page_shows_exactly_what_the_api_says_in_a_real_browser() {
    let started = std::time::Instant::now();
    let driver = Driver::start().await;
    let stack = Stack::from_env();
    let env = stack.env(&stack.shared_cluster().await).await;
    let api_service = Service::start(env.config.clone(), api::run).await;
    let consumer = Service::start(env.config.clone(), consumer::run).await;
    let api = Api { base: api_service.url(""), http: reqwest::Client::new() };

    // Known data through the public API: 900 users over three variants; the k-th user of a
    // variant converts when k is a multiple of 10 (control), 6 (green) or 9 (blue), with
    // one or two purchases of known value.
    let id = api.create("Checkout button colour", &[("control", 34.0), ("green", 33.0), ("blue", 33.0)]).await;
    let every = HashMap::from([("control", 10), ("green", 6), ("blue", 9)]);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut events = Vec::new();
    let mut expected_events = 0;
    for (user, variant) in api.assign(id, "shopper", 0..900).await {
        let k = seen.entry(variant.clone()).or_default();
        *k += 1;
        if *k % every[variant.as_str()] == 0 {
            for n in 0..1 + *k % 2 {
                let value = 20.0 + (*k % 7) as f64 * 5.0 + n as f64;
                events.push(json!({"user_id": user, "type": "purchase", "properties": {"order_value": value}}));
                expected_events += 1;
            }
        }
        events.push(json!({"user_id": user, "type": "view"}));
    }
    for chunk in events.chunks(500) {
        api.post("/events/batch", Value::Array(chunk.to_vec())).await;
    }
    // A second experiment whose exposure logging is broken (a client reports 150 more users
    // of `off` than it assigned): the sample-ratio check fails.
    let skewed = api.create("Free shipping banner", &[("off", 50.0), ("on", 50.0)]).await;
    api.assign(skewed, "visitor", 0..250).await;
    let extra: Vec<Value> = (0..150)
        .map(|i| json!({"exposure_id": format!("extra-{i}"), "experiment_id": skewed, "variant": "off", "user_id": format!("extra-{i}")}))
        .collect();
    api.post("/exposures", json!({"exposures": extra})).await;
    // Its rollout settings, which the page lists (assigned users keep their variants).
    api.patch(
        &format!("/experiments/{skewed}"),
        json!({"coverage_percent": 80, "conditions": {"country": {"$in": ["DE", "AT"]}}, "forced": {"qa-anna": "on"}}),
    )
    .await;

    // The catalog metrics the checkout experiment is decided on.
    for m in [
        json!({"key": "ui-buyers", "name": "Buyers", "kind": "conversion", "event_type": "purchase"}),
        json!({"key": "ui-revenue", "name": "Revenue", "kind": "mean", "event_type": "purchase", "value_property": "order_value"}),
        json!({"key": "ui-viewers", "name": "Viewers", "kind": "conversion", "event_type": "view"}),
    ] {
        api.post("/metrics", m).await;
    }
    api.patch(
        &format!("/experiments/{id}"),
        json!({"metrics": {"primary": "ui-buyers", "secondary": ["ui-revenue"], "guardrails": [{"metric": "ui-viewers", "margin": 0.05}]}}),
    )
    .await;

    let query = "event_type=purchase&value_property=order_value";
    let results = eventually("every seeded exposure and purchase in the results", WAIT, || async {
        let r = api.get(&format!("/experiments/{id}/results?{query}")).await;
        let sum = |f: &str| r["variants"].as_array().map_or(0, |v| v.iter().map(|v| v[f].as_u64().unwrap_or(0)).sum());
        (sum("users") == 900 && sum("events") == expected_events).then_some(r)
    })
    .await;
    for v in results["variants"].as_array().expect("variants") {
        let name = v["name"].as_str().expect("name");
        let users = seen[name] as u64;
        assert_eq!(v["users"], users, "{name}: the users assigned to it");
        assert_eq!(v["converted_users"], users / every[name] as u64, "{name}: every {}th converted", every[name]);
    }
    eventually("the skewed experiment's exposures", WAIT, || async {
        let r = api.get(&format!("/experiments/{skewed}/results?event_type=purchase")).await;
        (r["variants"].as_array()?.iter().map(|v| v["users"].as_u64().unwrap_or(0)).sum::<u64>() == 400).then_some(())
    })
    .await;
    let timeseries = api.get(&format!("/experiments/{id}/timeseries?event_type=purchase")).await;
    let list = api.get("/experiments").await;
    let seeded = std::time::Instant::now();

    let browser = driver.browser().await;
    // Whatever happens in the page, the session is closed (Chromium quits) before failing.
    let shot = AssertUnwindSafe(drive(&browser, &api, &api_service, [id, skewed], &results, &timeseries, &list))
        .catch_unwind()
        .await;
    let _ = browser.close().await;
    let shot = shot.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    driver.stop().await;
    consumer.stop().await;
    api_service.stop().await;
    eprintln!("ui test: seeding {:?}, browser {:?}, screenshot {}", seeded - started, seeded.elapsed(), shot.display());
}

/// Everything done in the browser; returns the screenshot's path.
async fn drive(
    browser: &Browser,
    api: &Api,
    api_service: &Service,
    [id, skewed]: [i64; 2],
    results: &Value,
    timeseries: &Value,
    list: &Value,
) -> PathBuf {
    browser.goto(&api_service.url("/ui")).await.expect("open /ui");
    // The key, once, into the page's form.
    let key_input = browser.wait().at_most(WAIT).for_element(Locator::Css("#key")).await.expect("key form");
    key_input.send_keys(KEY).await.expect("type the key");
    click(browser, "#key-submit").await;
    until(browser, "the experiment list", "document.querySelectorAll('#experiment-list tbody tr').length === 2").await;
    assert!(!browser.current_url().await.expect("url").as_str().contains(KEY), "the key never goes into a URL");

    // The list: name, status, variants, created, users so far, as GET /experiments says.
    for e in list["experiments"].as_array().expect("experiments") {
        let row: HashMap<String, String> = serde_json::from_value(
            js(browser, &format!(
                "return Object.fromEntries([...document.querySelector('#experiment-list tr[data-experiment-id=\"{}\"]').cells].map(td => [td.dataset.field, td.innerText.trim()]));",
                e["id"]
            ))
            .await,
        )
        .expect("row");
        assert_eq!(row["name"], e["name"].as_str().expect("name"));
        assert_eq!(row["status"], "running");
        assert_eq!(row["users"], int(&e["exposed_users"]), "{e}");
        assert_eq!(row["created"], e["created_at"].as_str().expect("created")[..10]);
        let variants: Vec<String> = e["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .map(|v| format!("{} ({}%)", v["name"].as_str().expect("n"), v["allocation_percent"]))
            .collect();
        assert_eq!(row["variants"], variants.join(", ").replace(".0%", "%"));
    }
    assert_eq!(list["experiments"][0]["exposed_users"], 900);
    screenshot(browser, "experiments.png").await;

    // Pick the experiment, ask for purchases with order_value.
    click(browser, &format!("a[data-experiment-id=\"{id}\"]")).await;
    until(browser, "the experiment", &opened(&list["experiments"][0])).await;
    // The event type field suggests the types the API lists.
    let types: Vec<Value> = api.get("/event_types").await["event_types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| t["type"].clone())
        .collect();
    assert_eq!(types, [json!("view"), json!("purchase")], "more views than purchases");
    until(browser, "event type suggestions", "document.querySelectorAll('#event-types option').length === 2").await;
    let suggested = js(browser, "return [...document.querySelectorAll('#event-types option')].map(o => o.value)").await;
    assert_eq!(suggested, json!(types));
    let value_input = browser.find(Locator::Css("#value-property")).await.expect("value property");
    value_input.send_keys("order_value").await.expect("type");
    click(browser, "#show").await;
    until(browser, "the results", "document.body.dataset.results === 'ready'").await;

    // The table: every number as the JSON API has it, formatted for people.
    let cells = table(browser).await;
    let variants = results["variants"].as_array().expect("variants");
    assert_eq!(cells.len(), variants.len());
    for v in variants {
        let name = v["name"].as_str().expect("name");
        let row = &cells[name];
        let c = &v["comparison"]["conversion"];
        let treatment = !v["comparison"].is_null();
        let or_dash = |s: String| if treatment { s } else { "—".into() };
        let label = if treatment || name == "control" { name.to_owned() } else { format!("{name} (control)") };
        assert_eq!(row["variant"], label);
        assert_eq!(row["users"], int(&v["users"]), "{name} users");
        assert_eq!(row["conversions"], int(&v["converted_users"]), "{name} conversions");
        assert_eq!(row["rate"], rate(&v["conversion_rate"]), "{name} rate");
        assert_eq!(row["value-mean"], decimal2(&v["value"]["mean"]), "{name} mean value");
        // Each metric's columns are its decision: one test, one scale, at the adjusted level.
        for (prefix, metric) in [("", "conversion"), ("value-", "value")] {
            let m = &v["comparison"][metric];
            let d = &m["decision"];
            assert!(!treatment || d["scale"] == "relative", "{name} {metric}: {d}");
            let cell = |field: &str| &row[&format!("{prefix}{field}")];
            assert_eq!(cell("lift"), &or_dash(lift(&m["relative_lift"])), "{name} {metric} lift");
            assert_eq!(cell("ci"), &or_dash(range(&d["relative_ci"])), "{name} {metric} interval");
            assert_eq!(cell("p"), &or_dash(p_value(&d["p_value"])), "{name} {metric} p");
            assert_eq!(cell("adjusted-p"), &or_dash(p_value(&d["adjusted_p_value"])), "{name} {metric} adjusted p");
            let significant = if m["significant"].as_bool().unwrap_or(false) { "Yes" } else { "No" };
            assert_eq!(cell("significant"), &or_dash(significant.into()), "{name} {metric} significant");
            if treatment {
                let excludes_zero =
                    d["relative_ci"][0].as_f64() > Some(0.0) || d["relative_ci"][1].as_f64() < Some(0.0);
                assert_eq!(m["significant"].as_bool(), Some(excludes_zero), "{name} {metric}: {d}");
            }
        }
        assert_eq!(row["chance"], or_dash(chance(&c["bayesian"]["chance_to_beat_control"])), "{name} chance");
    }
    assert_eq!(js(browser, "return document.getElementById('srm-warning').hidden").await, true, "no SRM here");

    // The decision metrics: a row per metric and treatment, each number from its decision.
    let decided = api.get(&format!("/experiments/{id}/results")).await;
    let drawn = js(
        browser,
        "return [...document.querySelectorAll('#metrics-table tbody tr')].map(tr => [tr.dataset.metric + '/' + tr.dataset.variant,
            Object.fromEntries([...tr.cells].map(td => [td.dataset.field, td.innerText.trim()]))]);",
    )
    .await;
    let drawn: HashMap<String, HashMap<String, String>> = serde_json::from_value(json!(drawn
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[0].as_str().expect("key").to_owned(), r[1].clone()))
        .collect::<serde_json::Map<_, _>>()))
    .expect("metric rows");
    let mut expected_rows = 0;
    for m in decided["metrics"].as_array().expect("metrics") {
        for v in m["variants"].as_array().expect("variants").iter().skip(1) {
            expected_rows += 1;
            let key = format!("{}/{}", m["key"].as_str().expect("key"), v["name"].as_str().expect("name"));
            let row = &drawn[&key];
            let c = &v["comparison"];
            let mean = if m["kind"] == "conversion" { rate(&v["mean"]) } else { decimal2(&v["mean"]) };
            assert_eq!(row["mean"], mean, "{key} mean");
            assert_eq!(row["lift"], lift(&c["relative_lift"]), "{key} lift");
            assert_eq!(row["ci"], range(&c["decision"]["relative_ci"]), "{key} interval");
            assert_eq!(row["adjusted-p"], p_value(&c["decision"]["adjusted_p_value"]), "{key} adjusted p");
            assert_eq!(row["significant"], if c["significant"] == true { "Yes" } else { "No" }, "{key}");
            let guardrail = match v["guardrail"].as_str() {
                Some(g) => format!("{g} (margin {})", lift(&m["margin"])),
                None => "—".into(),
            };
            assert_eq!(row["guardrail"], guardrail, "{key} guardrail");
        }
    }
    assert_eq!((drawn.len(), expected_rows), (6, 6), "three metrics, two treatments");
    assert!(drawn.keys().any(|k| k.starts_with("ui-viewers/")) && drawn["ui-viewers/green"]["guardrail"] != "—");
    let phases =
        js(browser, "return [...document.querySelectorAll('#phase option')].map(o => [o.value, o.innerText])").await;
    assert_eq!(phases.as_array().map(Vec::len), Some(1), "one phase: {phases}");
    assert_eq!(phases[0][0], "", "the current phase is the default");

    // The charts: the very numbers of the JSON API, drawn.
    let treatments: Vec<&Value> = variants.iter().filter(|v| !v["comparison"].is_null()).collect();
    for (id, metric) in [("lift-chart", "conversion"), ("value-lift-chart", "value")] {
        let lift_chart = chart(browser, id).await;
        assert_eq!(lift_chart["labels"], json!(treatments.iter().map(|v| v["name"].clone()).collect::<Vec<_>>()));
        let intervals: Vec<Value> = treatments
            .iter()
            .map(|v| {
                let ci = &v["comparison"][metric]["decision"]["relative_ci"];
                json!([pct(&ci[0]), pct(&ci[1])])
            })
            .collect();
        assert_eq!(lift_chart["datasets"][0]["type"], "bar");
        same(&lift_chart["datasets"][0]["data"], &json!(intervals), &format!("{metric} interval bars"));
        let points: Vec<Value> = treatments
            .iter()
            .map(|v| json!({"x": pct(&v["comparison"][metric]["relative_lift"]), "y": v["name"]}))
            .collect();
        assert_eq!(lift_chart["datasets"][1]["type"], "scatter");
        same(&lift_chart["datasets"][1]["data"], &json!(points), &format!("{metric} point estimates"));
    }
    for (id, field, scale) in
        [("users-chart", "cumulative_users", 1.0), ("rate-chart", "cumulative_conversion_rate", 100.0)]
    {
        let drawn = chart(browser, id).await;
        assert_eq!(drawn["labels"], timeseries["days"], "{id} days");
        assert!(
            drawn["width"].as_u64().unwrap_or(0) > 100 && drawn["height"].as_u64().unwrap_or(0) > 100,
            "{id} drawn"
        );
        for (i, series) in timeseries["variants"].as_array().expect("series").iter().enumerate() {
            let expected: Vec<Value> = series[field]
                .as_array()
                .expect("numbers")
                .iter()
                .map(|x| x.as_f64().map_or(Value::Null, |x| json!(x * scale)))
                .collect();
            assert_eq!(drawn["datasets"][i]["label"], series["name"]);
            same(&drawn["datasets"][i]["data"], &json!(expected), &format!("{id} {}", series["name"]));
        }
    }
    // The time series ends where the results are.
    for (series, v) in timeseries["variants"].as_array().expect("series").iter().zip(variants) {
        assert_eq!(series["cumulative_users"].as_array().and_then(|a| a.last()), Some(&v["users"]));
        assert_eq!(series["cumulative_converted_users"].as_array().and_then(|a| a.last()), Some(&v["converted_users"]));
    }

    // The whole page, for the README and as the test's artifact.
    let height = js(browser, "return document.documentElement.scrollHeight").await.as_u64().expect("height");
    browser.set_window_size(1280, height as u32 + 140).await.expect("resize");
    until(browser, "charts resized", "Chart.getChart(document.getElementById('rate-chart')).width > 0").await;
    let shot = screenshot(browser, "results.png").await;

    // Pause, resume and stop from the page, as the API then reports.
    let status = |expected: &'static str| async move {
        let got = api.get(&format!("/experiments/{id}")).await;
        assert_eq!(got["status"], expected);
    };
    click(browser, "#pause").await;
    until(browser, "paused", "document.getElementById('experiment-status').innerText === 'paused'").await;
    status("paused").await;
    click(browser, "#resume").await;
    until(browser, "running", "document.getElementById('experiment-status').innerText === 'running'").await;
    status("running").await;
    click(browser, "#stop").await;
    browser.accept_alert().await.expect("confirm stopping");
    until(browser, "stopped", "document.getElementById('experiment-status').innerText === 'stopped'").await;
    status("stopped").await;
    assert_eq!(js(browser, "return document.getElementById('resume').disabled").await, true, "stopped is for good");

    // The skewed experiment: a visible sample-ratio-mismatch warning, as the API says.
    browser.set_window_size(1280, 1000).await.expect("resize");
    browser.goto(&api_service.url(&format!("/ui#/experiments/{skewed}"))).await.expect("open skewed");
    until(browser, "the skewed experiment", &opened(&list["experiments"][1])).await;
    let rollout = js(
        browser,
        "return Object.fromEntries([...document.querySelectorAll('#rollout dd')].map(d => [d.dataset.rollout, d.innerText]))",
    )
    .await;
    assert_eq!(
        rollout,
        json!({
            "Traffic": "80 % of users",
            "Targeting": r#"{"country":{"$in":["DE","AT"]}}"#,
            "Forced users": "1 (left out of the results): qa-anna → on",
        }),
        "the rollout settings as GET /experiments/{skewed} has them"
    );
    click(browser, "#show").await;
    until(browser, "its results", "document.body.dataset.results === 'ready'").await;
    let srm = api.get(&format!("/experiments/{skewed}/results?event_type=purchase")).await;
    assert_eq!(srm["srm"]["mismatch"], true, "{srm}");
    let warning = browser.find(Locator::Css("#srm-warning")).await.expect("warning");
    assert!(warning.is_displayed().await.expect("displayed"), "the SRM warning is visible");
    let text = warning.text().await.expect("text");
    assert!(text.contains("Sample ratio mismatch") && text.contains(&p_value(&srm["srm"]["p_value"])), "{text}");

    // A phone: nothing wider than the screen but the table, which scrolls inside its box.
    browser.goto(&api_service.url(&format!("/ui#/experiments/{id}"))).await.expect("reopen");
    browser.set_window_size(390, 844).await.expect("phone size");
    until(browser, "the experiment", &opened(&list["experiments"][0])).await;
    click(browser, "#show").await;
    until(browser, "results on a phone", "document.body.dataset.results === 'ready'").await;
    let overflow =
        js(browser, "return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
    assert_eq!(overflow, 0, "the page is no wider than a phone");
    screenshot(browser, "results-phone.png").await;

    // A wrong key is refused and the page asks again.
    js(browser, "sessionStorage.setItem('abtest.api_key', 'wrong'); location.hash = '#'; return true").await;
    eventually("the key form again", WAIT, || async {
        js(browser, "return !document.getElementById('key-form').hidden").await.as_bool().filter(|b| *b)
    })
    .await;
    let error = browser.find(Locator::Css("#error")).await.expect("error").text().await.expect("text");
    assert!(error.contains("API key"), "{error}");
    shot
}
