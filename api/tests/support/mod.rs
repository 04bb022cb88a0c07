//! What the api's integration tests share: a client for the running api, the stack's
//! services, and waiting for the outbox to reach Kafka.
#![allow(dead_code)]

pub mod rows;

use std::time::Duration;

use common::{
    testkit::{eventually, Service, Stack, TestEnv},
    Config,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(90);

pub async fn start_api(config: Config) -> Service {
    Service::start(config, api::run).await
}

pub async fn start_consumer(config: Config) -> Service {
    Service::start(config, consumer::run).await
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(api: &Service) -> Self {
        Self { base: api.url(""), http: reqwest::Client::new() }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth("test-key");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON ({status}): {text:.200}")))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn create(&self, variants: &[(&str, f64)]) -> Value {
        let variants: Vec<Value> = variants.iter().map(|(n, p)| json!({"name": n, "allocation_percent": p})).collect();
        let (status, body) = self
            .post("/experiments", json!({"name": "Button Color Test", "description": "d", "variants": variants}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

pub async fn setup() -> (TestEnv, Service, Client) {
    let stack = Stack::from_env();
    let env = stack.env(&stack.shared_cluster().await).await;
    let api = start_api(env.config.clone()).await;
    let client = Client::new(&api);
    (env, api, client)
}

/// Exposures in Kafka once the relay has sent `expected` of them (and the outbox is
/// empty), so a test can then check that no more arrived.
pub async fn exposures_in_kafka(env: &TestEnv, expected: i64) -> i64 {
    let db = pg(env).await;
    eventually("the exposures relayed", WAIT, || async {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM exposure_outbox").fetch_one(&db).await.ok()?;
        let sent = env.topic_messages(&env.config.kafka.topics.exposures).await;
        (waiting == 0 && sent >= expected).then_some(sent)
    })
    .await
}

pub async fn pg(env: &TestEnv) -> sqlx::PgPool {
    common::postgres::pool(&env.config.postgres).expect("pool")
}

/// Moves an experiment's creation and first phase a day into the past, so that rows
/// inserted with earlier times fall in its results' window.
pub async fn backdate(env: &TestEnv, id: i64) {
    let db = pg(env).await;
    for sql in [
        "UPDATE experiments SET created_at = now() - interval '1 day' WHERE id = $1",
        "UPDATE experiment_phases SET started_at = now() - interval '1 day' WHERE experiment_id = $1 AND phase = 1",
    ] {
        sqlx::query(sql).bind(id).execute(&db).await.expect("backdate");
    }
}

/// `INSERT INTO <into> VALUES <rows>` on the test's ClickHouse (`into`: the table and its
/// columns).
pub async fn insert(env: &TestEnv, into: &str, rows: &[String]) {
    env.clickhouse()
        .query(&format!("INSERT INTO {into} VALUES {}", rows.join(",")))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("INSERT INTO {into}: {e}"));
}

/// Runs `program` with `ABTESTKIT_PYTHON` (default `python3`; scipy installed by
/// scripts/test) and parses what it prints as JSON.
pub async fn run_python(program: &str) -> Value {
    let python = std::env::var("ABTESTKIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = tokio::process::Command::new(python)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with scipy (scripts/test installs it)");
    tokio::io::AsyncWriteExt::write_all(&mut child.stdin.take().expect("stdin"), program.as_bytes())
        .await
        .expect("write");
    let out = child.wait_with_output().await.expect("python ran");
    assert!(out.status.success(), "the explained program failed");
    serde_json::from_slice(&out.stdout).expect("its JSON")
}

/// Holm's step-down adjustment of `p` (written here from Holm 1979, not the api's code).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; p.len()];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((p.len() - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}
