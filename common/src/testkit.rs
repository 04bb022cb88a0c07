//! Test helpers for the local stack (`scripts/test` starts it): every test gets its own
//! Postgres database, ClickHouse database, Kafka topics and consumer group, named at
//! random, so tests run in parallel and repeated runs never share state.
//!
//! Locations come from `ABTESTKIT_POSTGRES_URL` (a role allowed to create databases),
//! `ABTESTKIT_CLICKHOUSE_URL`, `ABTESTKIT_KAFKA` (the stack's broker, nisshi) and
//! `ABTESTKIT_BROKER_CONTROL` (the devbroker's control API: isolated mock clusters whose
//! brokers a test can switch off), defaulting to the local stack of `scripts/up`.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use rand::Rng;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig,
};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use crate::config::{Config, Secret};

/// `prefix_` followed by 12 random lowercase hex digits: valid for Postgres, ClickHouse
/// and Kafka names.
pub fn random_name(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}_{:012x}", n & 0xffff_ffff_ffff)
}

/// Logs to stderr when `TEST_LOG` is set, like zero-to-production's helpers.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    }
}

/// Waits for `check` to return `Some`, polling every 100 ms, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One of our binaries running in-process on a port-0 listener, as `run(config, listener,
/// shutdown)`; stopped (and checked to have ended cleanly) with [`Service::stop`].
pub struct Service {
    pub addr: std::net::SocketAddr,
    shutdown: crate::shutdown::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Service {
    pub async fn start<F, Fut, E>(config: Config, run: F) -> Self
    where
        F: FnOnce(Config, tokio::net::TcpListener, crate::shutdown::CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Debug,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let shutdown = crate::shutdown::CancellationToken::new();
        let running = run(config, listener, shutdown.clone());
        let task = tokio::spawn(async move { running.await.map_err(|e| format!("{e:?}")) });
        Self { addr, shutdown, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sums the samples of a Prometheus metric (all label sets) from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/prometheus")).await.expect("metrics").text().await.expect("metrics text");
        crate::metrics::sum_samples(&text, name)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("service task").expect("service ended cleanly");
    }
}

/// A TCP proxy in front of a dependency that a test can cut, as an outage looks to the
/// client: established connections are dropped and new ones reset.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: std::sync::Arc<tokio::sync::Notify>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::{atomic::AtomicBool, Arc};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees a reset
                }
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    pub fn set(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            self.cut.notify_waiters();
        }
    }
}

#[derive(Clone, Debug)]
pub struct Stack {
    pub postgres_admin_url: String,
    pub clickhouse_url: String,
    /// Bootstrap address of the stack's Kafka-protocol broker (nisshi).
    pub kafka: String,
    pub broker_control: String,
    http: reqwest::Client,
}

impl Default for Stack {
    fn default() -> Self {
        Self::from_env()
    }
}

/// A Kafka cluster: the stack's broker (`id: None`), or a mock cluster of the devbroker
/// with fault switches.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub id: Option<u64>,
    pub bootstrap: String,
}

impl Stack {
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            postgres_admin_url: var("ABTESTKIT_POSTGRES_URL", "postgres://abtest:abtest@127.0.0.1:5433/postgres"),
            clickhouse_url: var("ABTESTKIT_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            kafka: var("ABTESTKIT_KAFKA", "127.0.0.1:9092"),
            broker_control: var("ABTESTKIT_BROKER_CONTROL", "http://127.0.0.1:9094"),
            http: reqwest::Client::new(),
        }
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.broker_control);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("devbroker at {url}: {e} (is the stack up? run scripts/test)"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or_else(|e| panic!("devbroker answer: {e}"));
        assert!(status.is_success(), "devbroker {path}: {status} {value}");
        value
    }

    /// The stack's broker (nisshi): durable, real group coordination; no fault switches.
    pub async fn shared_cluster(&self) -> Cluster {
        Cluster { id: None, bootstrap: self.kafka.clone() }
    }

    /// A mock cluster of its own, for tests that take brokers down.
    pub async fn isolated_cluster(&self) -> Cluster {
        let v = self.control(reqwest::Method::POST, "/clusters", Some(json!({ "brokers": 1 }))).await;
        Cluster {
            id: Some(v["id"].as_u64().unwrap_or_default()),
            bootstrap: v["bootstrap"].as_str().unwrap_or_default().to_owned(),
        }
    }

    pub async fn create_topic(&self, cluster: &Cluster, name: &str, partitions: i32) {
        match cluster.id {
            Some(id) => {
                let body = json!({ "name": name, "partitions": partitions });
                self.control(reqwest::Method::POST, &format!("/clusters/{id}/topics"), Some(body)).await;
            }
            None => {
                let kafka = crate::config::KafkaConfig {
                    brokers: cluster.bootstrap.parse().expect("bootstrap address"),
                    ..Default::default()
                };
                crate::kafka::ensure_topics(&kafka, &[(name, partitions)])
                    .await
                    .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
            }
        }
    }

    /// Switches a broker of a mock cluster off or on.
    pub async fn broker(&self, cluster: &Cluster, broker: i32, up: bool) {
        let id = cluster.id.expect("only mock clusters (isolated_cluster) have broker switches");
        let state = if up { "up" } else { "down" };
        self.control(reqwest::Method::POST, &format!("/clusters/{id}/brokers/{broker}/{state}"), None).await;
    }

    pub async fn drop_cluster(&self, cluster: &Cluster) {
        if let Some(id) = cluster.id {
            self.control(reqwest::Method::DELETE, &format!("/clusters/{id}"), None).await;
        }
    }

    /// A configuration of its own: fresh Postgres and ClickHouse databases with the schema
    /// applied, fresh topics on `cluster`, a fresh consumer group, short timeouts. The
    /// databases are dropped with the returned guard.
    pub async fn env(&self, cluster: &Cluster) -> TestEnv {
        init_tracing();
        let mut config = Config::default();
        config.auth.api_keys = vec![Secret::new("test-key")];
        config.kafka.brokers = cluster.bootstrap.parse().expect("bootstrap address");
        config.kafka.topics.events = random_name("events");
        config.kafka.topics.exposures = random_name("exposures");
        config.kafka.topics.dlq = random_name("dlq");
        config.kafka.group_id = random_name("group");
        config.kafka.session_timeout = Duration::from_secs(6);
        config.kafka.linger = Duration::from_millis(1);
        config.consumer.batch_max_wait = Duration::from_millis(200);
        config.consumer.retry_max_backoff = Duration::from_millis(500);
        config.clickhouse.timeout = Duration::from_secs(10);
        config.ingest.ack_timeout = Duration::from_secs(3);
        for topic in [&config.kafka.topics.events, &config.kafka.topics.exposures] {
            self.create_topic(cluster, topic, 4).await;
        }
        self.create_topic(cluster, &config.kafka.topics.dlq, 1).await;

        let pg_db = random_name("abtest_test");
        let mut admin = PgConnection::connect(&self.postgres_admin_url)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {}: {e}", self.postgres_admin_url));
        sqlx::query(&format!("CREATE DATABASE {pg_db}")).execute(&mut admin).await.expect("create test database");
        let base = self.postgres_admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&self.postgres_admin_url);
        config.postgres.url = Secret::new(format!("{base}/{pg_db}"));
        config.postgres.acquire_timeout = Duration::from_secs(5);
        let pool = crate::postgres::pool(&config.postgres).expect("pool");
        crate::postgres::migrate(&pool).await.expect("Postgres migrations");
        pool.close().await;

        config.clickhouse.url = self.clickhouse_url.clone();
        config.clickhouse.database = random_name("abtest_test");
        crate::clickhouse::migrate(&config.clickhouse).await.expect("ClickHouse migrations");
        config.validate().expect("test config is valid");
        TestEnv { config, postgres_admin_url: self.postgres_admin_url.clone(), pg_db, stack: self.clone() }
    }
}

/// A test's own configuration; drops its databases when dropped.
pub struct TestEnv {
    pub config: Config,
    pub stack: Stack,
    postgres_admin_url: String,
    pg_db: String,
}

impl TestEnv {
    pub fn clickhouse(&self) -> clickhouse::Client {
        crate::clickhouse::client(&self.config.clickhouse).expect("ClickHouse client")
    }

    /// Messages in a topic (sum of high watermarks): how tests see that nothing, or
    /// exactly N messages, reached Kafka.
    pub async fn topic_messages(&self, topic: &str) -> i64 {
        let brokers = self.config.kafka.brokers.bootstrap();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer =
                ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("client");
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)).expect("metadata");
            let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
            (0..partitions as i32)
                .map(|p| consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)).expect("watermarks").1)
                .sum()
        })
        .await
        .expect("watermark task")
    }

    /// `SELECT count()` style scalar from this test's ClickHouse database.
    pub async fn ch_count(&self, sql: &str) -> u64 {
        self.clickhouse().query(sql).fetch_one::<u64>().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let admin = self.postgres_admin_url.clone();
        let pg_db = self.pg_db.clone();
        let ch = self.config.clickhouse.clone();
        // Async cleanup from a synchronous Drop: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            let cleanup = async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")).execute(&mut conn).await;
                }
                if let Ok(client) = crate::clickhouse::client(&ch) {
                    let client = client.with_database("default");
                    let _ = client.query(&format!("DROP DATABASE IF EXISTS {}", ch.database)).execute().await;
                }
            };
            // Best effort: a test that broke a dependency must not hang here.
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), cleanup).await });
        })
        .join();
    }
}
