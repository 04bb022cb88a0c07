//! The local stack as `scripts/bench` hands it over (environment), plus helpers to start
//! extra instances of our release binaries, create topics and read peak RSS.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

pub struct Stack {
    pub api: SocketAddr,
    pub ingest: SocketAddr,
    pub api_key: String,
    pub kafka: common::config::KafkaConfig,
    pub clickhouse_http: String,
    pub clickhouse_db: String,
    pub clickhouse_tcp_port: u16,
    pub postgres_port: u16,
    pub bin: PathBuf,
    pub run: PathBuf,
    pub tmp: PathBuf,
    pub http: reqwest::Client,
    /// `BENCH_BROKER=mock`: the cases' own topics and instances use a mock cluster of the
    /// devbroker (librdkafka's in-memory broker) instead of the stack's durable broker.
    pub mock: Option<MockCluster>,
}

/// A mock cluster of the devbroker: its control API and id (topics are created there).
pub struct MockCluster {
    control: String,
    id: u64,
}

/// The broker the cases' own topics and instances use: the stack's (nisshi), or with
/// `BENCH_BROKER=mock` a new mock cluster of the devbroker (control `BENCH_BROKER_CONTROL`),
/// written into `config` so that every case and instance uses it.
pub async fn choose_broker(config: &mut common::config::Config) -> anyhow::Result<Option<MockCluster>> {
    if std::env::var("BENCH_BROKER").as_deref() != Ok("mock") {
        return Ok(None);
    }
    let control = env("BENCH_BROKER_CONTROL")?;
    let body = serde_json::json!({ "brokers": 1 });
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{control}/clusters"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bootstrap = v["bootstrap"].as_str().context("devbroker: no bootstrap in its answer")?;
    config.kafka.brokers = bootstrap.parse().map_err(|e| anyhow::anyhow!("mock bootstrap {bootstrap}: {e}"))?;
    Ok(Some(MockCluster { control, id: v["id"].as_u64().context("devbroker: no cluster id")? }))
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (run through scripts/bench)"))
}

impl Stack {
    pub fn from_env(config: &common::config::Config, mock: Option<MockCluster>) -> anyhow::Result<Self> {
        let root = PathBuf::from(env("BENCH_ROOT")?);
        Ok(Self {
            api: env("ABTEST_API__LISTEN")?.parse()?,
            ingest: env("ABTEST_INGEST__LISTEN")?.parse()?,
            api_key: std::env::var("BENCH_API_KEY").unwrap_or_else(|_| "my_secret_api_key_123".into()),
            kafka: config.kafka.clone(),
            clickhouse_http: config.clickhouse.url.clone(),
            clickhouse_db: config.clickhouse.database.clone(),
            clickhouse_tcp_port: env("BENCH_CLICKHOUSE_TCP_PORT")?.parse()?,
            postgres_port: env("BENCH_POSTGRES_PORT")?.parse()?,
            bin: root.join("target/release"),
            run: root.join(".run"),
            tmp: root.join("bench/tmp"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?,
            mock,
        })
    }

    /// The broker's name in the report.
    pub fn broker_name(&self) -> &'static str {
        if self.mock.is_some() {
            "mock broker"
        } else {
            "nisshi"
        }
    }

    /// Appended to the names of the cases that ran on the mock broker.
    pub fn on_broker(&self) -> &'static str {
        if self.mock.is_some() {
            " (mock broker)"
        } else {
            ""
        }
    }

    /// The broker's process (CPU in the reports): the devbroker or the stack's broker.
    pub fn broker_pid(&self) -> Option<u32> {
        self.pid(if self.mock.is_some() { "devbroker" } else { "kafka" })
    }

    /// Creates a topic on the cases' broker.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        match &self.mock {
            None => Ok(common::kafka::ensure_topics(&self.kafka, &[(name, partitions)]).await?),
            Some(m) => {
                let body = serde_json::json!({ "name": name, "partitions": partitions });
                let url = format!("{}/clusters/{}/topics", m.control, m.id);
                self.http.post(url).json(&body).send().await?.error_for_status()?;
                Ok(())
            }
        }
    }

    /// Runs a statement or query on ClickHouse over HTTP; returns the body.
    pub async fn ch(&self, sql: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(&self.clickhouse_http)
            .query(&[("database", &self.clickhouse_db)])
            .body(sql.to_owned())
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            bail!("ClickHouse: {body} (query: {})", sql.chars().take(200).collect::<String>());
        }
        Ok(body)
    }

    pub async fn ch_u64(&self, sql: &str) -> anyhow::Result<u64> {
        Ok(self.ch(sql).await?.trim().parse()?)
    }

    /// The pid the stack recorded for `svc` in `.run/<svc>.pid`.
    pub fn pid(&self, svc: &str) -> Option<u32> {
        std::fs::read_to_string(self.run.join(format!("{svc}.pid"))).ok()?.trim().parse().ok()
    }

    /// Starts one of our release binaries with the stack's environment plus `overrides`.
    pub fn spawn(&self, name: &str, overrides: &[(&str, String)]) -> anyhow::Result<Instance> {
        std::fs::create_dir_all(&self.tmp)?;
        let log = std::fs::File::create(self.tmp.join(format!("{name}.log")))?;
        // BENCH_BIN_<NAME>=path runs another build of the binary (before/after comparisons);
        // BENCH_PERF=<binary> runs it under `perf record -g` (profile in bench/tmp/).
        let exe = std::env::var_os(format!("BENCH_BIN_{}", name.to_uppercase()))
            .map(PathBuf::from)
            .unwrap_or_else(|| self.bin.join(name));
        let mut cmd = if std::env::var("BENCH_PERF").is_ok_and(|b| b == name) {
            let mut c = Command::new("perf");
            c.args(["record", "-F", "499", "-g", "-o"]).arg(self.tmp.join(format!("{name}.perf.data"))).arg("--");
            c.arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.stdout(log.try_clone()?).stderr(log).stdin(Stdio::null());
        cmd.env("ABTEST_KAFKA__BROKERS", self.kafka.brokers.bootstrap());
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        Ok(Instance { child })
    }

    pub async fn wait_ready(&self, addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = self.http.get(format!("http://{addr}/readyz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{addr} not ready after {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The sum of metric `name` (every label set) on `addr`/prometheus.
    pub async fn metric(&self, addr: SocketAddr, name: &str) -> anyhow::Result<f64> {
        let text = self.http.get(format!("http://{addr}/prometheus")).send().await?.text().await?;
        Ok(common::metrics::sum_samples(&text, name))
    }
}

/// An extra instance of one of our binaries, stopped (SIGTERM, by pid) on drop.
pub struct Instance {
    pub child: Child,
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid())
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// VmHWM of a process, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used so far, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}
