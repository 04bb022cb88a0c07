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

    /// The answer to a GET the API must refuse with a 400.
    async fn refused(&self, path: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(KEY).send().await.expect("request");
        let status = response.status();
        let value: Value = response.json().await.expect("JSON");
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{path}: {value}");
        value
    }

    /// Assigns `users` through the API, each with the attributes `attributes(i)` (a query
    /// string, stored with the exposure); returns (user, variant) in order.
    async fn assign(
        &self,
        id: i64,
        prefix: &str,
        users: std::ops::Range<usize>,
        attributes: impl Fn(usize) -> String,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for i in users {
            let user = format!("{prefix}-{i}");
            let a = self.get(&format!("/experiments/{id}/assignment/{user}?{}", attributes(i))).await;
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

/// `x` × 10^`shift` with `digits` decimals, as `Intl.NumberFormat` writes it: ICU rounds
/// the shortest decimal that reads back as `x` (what `{x}` prints), half away from zero,
/// after moving the point; `format!("{:.2}")` rounds the binary value instead, so 5.475
/// (binary 5.47499…) would read "5.47" here and "5.48" on the page.
fn fixed(x: f64, shift: usize, digits: usize) -> String {
    let shortest = format!("{}", x.abs());
    let (int, frac) = shortest.split_once('.').unwrap_or((&shortest, ""));
    let mut all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let mut point = int.len() + shift;
    all.resize(all.len().max(point + digits + 1), 0);
    let up = all[point + digits] >= 5;
    all.truncate(point + digits);
    if up {
        match all.iter().rposition(|d| *d < 9) {
            Some(i) => {
                all[i] += 1;
                all[i + 1..].iter_mut().for_each(|d| *d = 0);
            }
            None => {
                all.iter_mut().for_each(|d| *d = 0);
                all.insert(0, 1);
                point += 1;
            }
        }
    }
    let text = |ds: &[u8]| ds.iter().map(|d| char::from(b'0' + d)).collect::<String>();
    let int = text(&all[..point]).trim_start_matches('0').to_owned();
    let int = if int.is_empty() { "0".to_owned() } else { int };
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let frac = text(&all[point..]);
    thousands(&if digits == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") })
}

fn rate(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{}%", fixed(x, 2, 2)))
}

fn lift(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| {
        let s = fixed(x, 2, 1);
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
    v.as_f64().map_or("—".into(), |p| if p < 0.001 { "< 0.001".into() } else { fixed(p, 0, 3) })
}

fn chance(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{}%", fixed(x, 2, 1)))
}

fn decimal2(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| fixed(x, 0, 2))
}

/// Reference values from node 20's `Intl.NumberFormat("en-US", ...)`, the page's formats.
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
    // Ties of the shortest decimal round away from zero, as ICU does.
    let cases = [(5.475, "5.48"), (1.005, "1.01"), (-2.675, "-2.68"), (-0.001, "-0.00"), (999.995, "1,000.00")];
    for (x, page) in cases {
        assert_eq!(decimal2(&json!(x)), page, "{x}");
    }
    assert_eq!(rate(&json!(0.123455)), "12.35%");
    assert_eq!(rate(&json!(0.0012345)), "0.12%");
    assert_eq!(lift(&json!(0.01225)), "+1.2%");
    assert_eq!(lift(&json!(-0.00049)), "0.0%");
    assert_eq!(lift(&json!(-0.0005)), "-0.1%");
    assert_eq!(p_value(&json!(0.0125)), "0.013");
    assert_eq!(p_value(&json!(0.9995)), "1.000");
    assert_eq!(chance(&json!(0.99995)), "100.0%");
}

/// The rendered rows of a table, in order: the row's key (its `data-` attributes joined
/// by `/`) and its cells, data-field -> text.
async fn rows(browser: &Browser, id: &str, keys: &[&str]) -> Vec<(String, HashMap<String, String>)> {
    let rows = browser
        .execute(
            "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)].map(tr => [
                arguments[1].map(k => tr.dataset[k]).join('/'),
                Object.fromEntries([...tr.cells].map(td => [td.dataset.field, td.innerText.trim()]))]);",
            vec![json!(id), json!(keys)],
        )
        .await
        .unwrap_or_else(|e| panic!("read the table {id}: {e}"));
    serde_json::from_value(rows).expect("rows")
}

/// The rendered cells of a table of variants: variant name -> data-field -> text.
async fn table(browser: &Browser, id: &str) -> HashMap<String, HashMap<String, String>> {
    rows(browser, id, &["variant"]).await.into_iter().collect()
}

/// A decision's interval as the page writes it: relative, or in the metric's units.
fn decision_range(d: &Value) -> String {
    match d["scale"].as_str() {
        Some("relative") => range(&d["relative_ci"]),
        _ if d["absolute_ci"][0].is_null() || d["absolute_ci"][1].is_null() => "—".into(),
        _ => format!("{} to {}", decimal2(&d["absolute_ci"][0]), decimal2(&d["absolute_ci"][1])),
    }
}

/// A row of the results columns (the results table's, or a breakdown slice's) is the
/// API's variant `v`: every cell as the JSON has it, formatted for people.
fn same_row(row: &HashMap<String, String>, v: &Value, what: &str) {
    let name = v["name"].as_str().expect("name");
    let treatment = !v["comparison"].is_null();
    let or_dash = |s: String| if treatment { s } else { "—".into() };
    let label = if treatment || name == "control" { name.to_owned() } else { format!("{name} (control)") };
    assert_eq!(row["variant"], label, "{what}");
    assert_eq!(row["users"], int(&v["users"]), "{what}: {name} users");
    assert_eq!(row["conversions"], int(&v["converted_users"]), "{what}: {name} conversions");
    assert_eq!(row["rate"], rate(&v["conversion_rate"]), "{what}: {name} rate");
    assert_eq!(row["value-mean"], decimal2(&v["value"]["mean"]), "{what}: {name} mean value");
    // Each metric's columns are its decision: one test, one scale, at the adjusted level.
    for (prefix, metric) in [("", "conversion"), ("value-", "value")] {
        let m = &v["comparison"][metric];
        let d = &m["decision"];
        let cell = |field: &str| &row[&format!("{prefix}{field}")];
        assert_eq!(cell("lift"), &or_dash(lift(&m["relative_lift"])), "{what}: {name} {metric} lift");
        assert_eq!(cell("ci"), &or_dash(decision_range(d)), "{what}: {name} {metric} interval");
        assert_eq!(cell("p"), &or_dash(p_value(&d["p_value"])), "{what}: {name} {metric} p");
        assert_eq!(cell("adjusted-p"), &or_dash(p_value(&d["adjusted_p_value"])), "{what}: {name} {metric} adjusted p");
        let significant = if m["significant"].as_bool().unwrap_or(false) { "Yes" } else { "No" };
        assert_eq!(cell("significant"), &or_dash(significant.into()), "{what}: {name} {metric} significant");
        if treatment {
            let ci = if d["scale"] == "relative" { &d["relative_ci"] } else { &d["absolute_ci"] };
            let excludes_zero = ci[0].as_f64() > Some(0.0) || ci[1].as_f64() < Some(0.0);
            assert_eq!(m["significant"].as_bool(), Some(excludes_zero), "{what}: {name} {metric}: {d}");
        }
    }
    let to_beat = &v["comparison"]["conversion"]["bayesian"]["chance_to_beat_control"];
    assert_eq!(row["chance"], or_dash(chance(to_beat)), "{what}: {name} chance");
}

/// The rows (keyed `{prefix}{role}/{metric}/{variant}`) of a decision metrics table are
/// the API's `metrics`, every cell as the JSON has it; returns the keys in the page's
/// order: primary, guardrails, secondaries, each role in the API's order.
fn same_metric_rows(
    drawn: &[(String, HashMap<String, String>)],
    metrics: &Value,
    prefix: &str,
    what: &str,
) -> Vec<String> {
    let metrics = metrics.as_array().expect("metrics");
    let mut keys = Vec::new();
    for role in ["primary", "guardrail", "secondary"] {
        for m in metrics.iter().filter(|m| m["role"] == role) {
            let control = &m["variants"][0]["mean"];
            let format = |x: &Value| if m["kind"] == "conversion" { rate(x) } else { decimal2(x) };
            for v in m["variants"].as_array().expect("variants").iter().skip(1) {
                let key =
                    format!("{prefix}{role}/{}/{}", m["key"].as_str().expect("key"), v["name"].as_str().expect("name"));
                let (_, row) = drawn.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("{what}: no row {key}"));
                let c = &v["comparison"];
                let what = format!("{what} {key}");
                assert_eq!(row["control-mean"], format(control), "{what} control mean");
                assert_eq!(row["mean"], format(&v["mean"]), "{what} mean");
                assert_eq!(row["lift"], lift(&c["relative_lift"]), "{what} lift");
                assert_eq!(row["ci"], decision_range(&c["decision"]), "{what} interval");
                assert_eq!(row["adjusted-p"], p_value(&c["decision"]["adjusted_p_value"]), "{what} adjusted p");
                assert_eq!(row["significant"], if c["significant"] == true { "Yes" } else { "No" }, "{what}");
                let guardrail = match v["guardrail"].as_str() {
                    Some(g) => format!("{g} (margin {})", lift(&m["margin"])),
                    None => "—".into(),
                };
                assert_eq!(row["guardrail"], guardrail, "{what} guardrail");
                keys.push(key);
            }
        }
    }
    keys
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
    // Each shopper's country goes with the assignment request: DE, FR, DE, US, FR, ...
    let country = |i: usize| ["DE", "FR", "DE", "US", "FR"][i % 5];
    let mut per_country: HashMap<(String, String), u64> = HashMap::new();
    for (i, (user, variant)) in
        api.assign(id, "shopper", 0..900, |i| format!("country={}", country(i))).await.into_iter().enumerate()
    {
        *per_country.entry((country(i).to_owned(), variant.clone())).or_default() += 1;
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
    api.assign(skewed, "visitor", 0..250, |_| String::new()).await;
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
    // The breakdown by country: a slice per country the assignments carried, with their users.
    let breakdown = api.get(&format!("/experiments/{id}/results?{query}&dimension=country")).await;
    let slices = breakdown["breakdown"]["slices"].as_array().expect("slices");
    let mut sliced: HashMap<(String, String), u64> = HashMap::new();
    for s in slices {
        assert_eq!(s["other"], false, "three countries, no other slice: {s}");
        for v in s["variants"].as_array().expect("variants") {
            let key = (s["value"].as_str().expect("value").to_owned(), v["name"].as_str().expect("name").to_owned());
            sliced.insert(key, v["users"].as_u64().expect("users"));
        }
    }
    assert_eq!(slices.len(), 3, "DE, FR and US");
    assert_eq!(sliced, per_country, "each slice's users are those assigned with that country");
    let timeseries = api.get(&format!("/experiments/{id}/timeseries?event_type=purchase")).await;
    let list = api.get("/experiments").await;
    let seeded = std::time::Instant::now();

    let browser = driver.browser().await;
    let answers = Seeded { ids: [id, skewed], results, breakdown, timeseries, list };
    // Whatever happens in the page, the session is closed (Chromium quits) before failing.
    let shot = AssertUnwindSafe(drive(&browser, &api, &api_service, &answers)).catch_unwind().await;
    let _ = browser.close().await;
    let shot = shot.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    driver.stop().await;
    consumer.stop().await;
    api_service.stop().await;
    eprintln!("ui test: seeding {:?}, browser {:?}, screenshot {}", seeded - started, seeded.elapsed(), shot.display());
}

/// What the API said once the seeded data was in: the two experiments, the checkout
/// experiment's results (purchases with `order_value`), the same broken down by country,
/// its time series, and the experiment list.
struct Seeded {
    ids: [i64; 2],
    results: Value,
    breakdown: Value,
    timeseries: Value,
    list: Value,
}

/// Everything done in the browser; returns the screenshot's path.
async fn drive(browser: &Browser, api: &Api, api_service: &Service, seeded: &Seeded) -> PathBuf {
    let Seeded { ids: [id, skewed], results, breakdown, timeseries, list } = seeded;
    let (id, skewed) = (*id, *skewed);
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
    let dimension_input = browser.find(Locator::Css("#dimension")).await.expect("break down by");
    dimension_input.send_keys("country").await.expect("type");
    click(browser, "#show").await;
    until(browser, "the results", "document.body.dataset.results === 'ready'").await;

    // The table: every number as the JSON API has it, formatted for people.
    let cells = table(browser, "results-table").await;
    let variants = results["variants"].as_array().expect("variants");
    assert_eq!(cells.len(), variants.len());
    for v in variants {
        let name = v["name"].as_str().expect("name");
        for metric in ["conversion", "value"] {
            let d = &v["comparison"][metric]["decision"];
            assert!(v["comparison"].is_null() || d["scale"] == "relative", "{name} {metric}: {d}");
        }
        same_row(&cells[name], v, "results table");
    }
    assert_eq!(js(browser, "return document.getElementById('srm-warning').hidden").await, true, "no SRM here");

    // The breakdown by country: a row per slice and variant, in the API's order, each cell
    // as the slice's JSON has it (its decision: corrected across every slice × treatment).
    assert_eq!(js(browser, "return document.getElementById('breakdown-card').hidden").await, false);
    let title = browser.find(Locator::Css("#breakdown-card h3")).await.expect("title").text().await.expect("text");
    assert_eq!(title, "Breakdown by country");
    let drawn = rows(browser, "breakdown-table", &["other", "slice", "variant"]).await;
    let slices = breakdown["breakdown"]["slices"].as_array().expect("slices");
    let mut expected_keys = Vec::new();
    for s in slices {
        let value = s["value"].as_str().expect("value");
        let name = match (s["other"].as_bool(), value) {
            (Some(true), _) => "other values",
            (_, "") => "(not set)",
            _ => value,
        };
        let name = if s["srm"]["mismatch"] == true { format!("{name} ⚠") } else { name.to_owned() };
        for v in s["variants"].as_array().expect("variants") {
            let key = format!(
                "{}/{}/{}",
                s["other"],
                if s["other"] == true { "" } else { value },
                v["name"].as_str().expect("n")
            );
            let (_, row) = drawn.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no row {key}: {drawn:?}"));
            assert_eq!(row["slice"], name, "{key}");
            same_row(row, v, &format!("breakdown {key}"));
            expected_keys.push(key);
        }
    }
    assert!(slices.len() >= 2, "the assignments carried several countries: {slices:?}");
    assert_eq!(drawn.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), expected_keys, "a row per slice × variant");
    let adjusted_differs = slices.iter().flat_map(|s| s["variants"].as_array().expect("v").iter().skip(1)).any(|v| {
        let d = &v["comparison"]["conversion"]["decision"];
        d["adjusted_p_value"] != d["p_value"]
    });
    assert!(adjusted_differs, "raw and adjusted p differ somewhere, so the cells tell them apart");

    // The decision metrics: a row per metric and treatment, each number from its decision,
    // in the order of a ship decision: the primary, the guardrail, then the secondary. The
    // page asked with the dimension; the whole experiment's rows do not change with it.
    let decided = api.get(&format!("/experiments/{id}/results")).await;
    let drawn = rows(browser, "metrics-table", &["role", "metric", "variant"]).await;
    let keys = same_metric_rows(&drawn, &decided["metrics"], "", "metrics table");
    assert_eq!(
        keys,
        [
            "primary/ui-buyers/green",
            "primary/ui-buyers/blue",
            "guardrail/ui-viewers/green",
            "guardrail/ui-viewers/blue",
            "secondary/ui-revenue/green",
            "secondary/ui-revenue/blue",
        ],
        "primary, guardrails, secondaries"
    );
    assert!(drawn.iter().any(|(k, row)| k.contains("/ui-viewers/") && row["guardrail"] != "—"), "a guardrail status");

    // The same per country: a row per slice, metric and treatment, as that slice's JSON has
    // it (decisions corrected across every slice × metric × treatment).
    let by_country = api.get(&format!("/experiments/{id}/results?dimension=country")).await;
    assert_eq!(js(browser, "return document.getElementById('metrics-breakdown-card').hidden").await, false);
    let title = browser.find(Locator::Css("#metrics-breakdown-card h3")).await.expect("title").text().await;
    assert_eq!(title.expect("text"), "Decision metrics by country");
    let drawn = rows(browser, "metrics-breakdown-table", &["other", "slice", "role", "metric", "variant"]).await;
    let slices = by_country["breakdown"]["slices"].as_array().expect("metric slices");
    let mut keys = Vec::new();
    for s in slices {
        let value = s["value"].as_str().expect("value");
        assert_eq!(s["other"], false, "three countries: {s}");
        let prefix = format!("false/{value}/");
        let name = if s["srm"]["mismatch"] == true { format!("{value} ⚠") } else { value.to_owned() };
        for (key, row) in drawn.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            assert_eq!(row["slice"], name, "{key}");
        }
        keys.extend(same_metric_rows(&drawn, &s["metrics"], &prefix, &format!("breakdown {value}")));
    }
    assert_eq!((slices.len(), keys.len()), (3, 18), "3 countries × 3 metrics × 2 treatments");
    assert_eq!(keys, drawn.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), "in the API's slice order");
    let widened = slices.iter().flat_map(|s| s["metrics"].as_array().expect("m").iter()).any(|m| {
        m["variants"].as_array().expect("v").iter().skip(1).any(|v| {
            let d = &v["comparison"]["decision"];
            d["adjusted_p_value"] != d["p_value"]
        })
    });
    assert!(widened, "the slices' decisions are corrected");
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

    // A breakdown and a segment do not go together: the page says what the API says. Then,
    // with both emptied, the results again and no breakdown card.
    browser.set_window_size(1280, 1000).await.expect("resize");
    browser.find(Locator::Css("#attribute")).await.expect("attribute").send_keys("country").await.expect("type");
    browser.find(Locator::Css("#attribute-value")).await.expect("value").send_keys("DE").await.expect("type");
    click(browser, "#show").await;
    let refused = api
        .refused(&format!(
            "/experiments/{id}/results?event_type=purchase&attribute=country&attribute_value=DE&value_property=order_value&dimension=country"
        ))
        .await;
    let message = refused["message"].as_str().expect("message");
    let shown = eventually("the API's refusal on the page", WAIT, || async {
        let script = "const e = document.getElementById('error');
                      return document.body.dataset.results === 'error' && !e.hidden ? e.innerText : null";
        js(browser, script).await.as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(shown, message, "the page shows the API's reason");
    assert!(message.contains("dimension"), "{message}");
    for input in ["#dimension", "#attribute", "#attribute-value"] {
        browser.find(Locator::Css(input)).await.expect("input").clear().await.expect("clear");
    }
    click(browser, "#show").await;
    until(browser, "the results without a breakdown", "document.body.dataset.results === 'ready'").await;
    assert_eq!(js(browser, "return document.getElementById('breakdown-card').hidden").await, true, "no dimension");
    let hidden = js(browser, "return document.getElementById('metrics-breakdown-card').hidden").await;
    assert_eq!(hidden, true, "no dimension, no metrics breakdown");
    let green = variants.iter().find(|v| v["name"] == "green").expect("green");
    same_row(&table(browser, "results-table").await["green"], green, "results table again");

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
