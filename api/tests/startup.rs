//! The api binary as an operator runs it, against the local stack's TLS servers
//! (`scripts/test`): TLS everywhere with secrets from files (`api migrate`, then serving),
//! startup stopped with the setting named when TLS or a login fails, startup going on
//! when a server is merely down, and no secret in any log line, `/metrics`, `/readyz`,
//! error or `--help` along the way.

use std::{
    collections::BTreeMap,
    io::Read,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};

const API: &str = env!("CARGO_BIN_EXE_api");

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn tls_file(name: &str) -> String {
    let dir = var("ABTESTKIT_TLS_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../.run/tls"));
    let path = PathBuf::from(dir).join(name);
    assert!(path.exists(), "{} missing: run scripts/test", path.display());
    path.display().to_string()
}

fn user(name: &str, default: &str) -> (String, String) {
    let text = var(name, default);
    let (u, p) = text.split_once(':').expect("user:password");
    (u.to_owned(), p.to_owned())
}

fn random(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A secret file in a fresh directory (the binaries run there too, away from any `.env`).
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(random("abtest_startup"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Dir(dir)
    }

    fn secret(&self, name: &str, value: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, format!("{value}\n")).expect("secret file");
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything an operator would set for managed services with TLS, secrets in files.
struct Deployment {
    dir: Dir,
    env: BTreeMap<String, String>,
    secrets: Vec<String>,
    api_key: String,
    pg_db: String,
    ch_db: String,
}

async fn deployment() -> Deployment {
    let dir = Dir::new();
    let (pg_user, pg_password) = user("ABTESTKIT_POSTGRES_PW_USER", "abtest_pw:pg-test-password");
    let (ch_user, ch_password) = user("ABTESTKIT_CLICKHOUSE_PW_USER", "abtest_pw:ch-test-password");
    let (kafka_user, kafka_password) = user("ABTESTKIT_KAFKA_SCRAM512", "abtest512:scram512-test-password");
    let api_key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let oauth_secret = format!("oauth-{}", uuid::Uuid::new_v4().simple());
    let pg_db = random("abtest_tls");
    // The database belongs to the stack's `abtest` role; the TLS-only password user works in it.
    let admin_url = var("ABTESTKIT_POSTGRES_URL", "postgres://abtest:abtest@127.0.0.1:5433/postgres");
    let mut admin = PgConnection::connect(&admin_url).await.expect("Postgres admin connection");
    sqlx::query(&format!("CREATE DATABASE {pg_db}")).execute(&mut admin).await.expect("create database");
    let db_url = format!("{}/{pg_db}", admin_url.rsplit_once('/').expect("url").0);
    let mut db = PgConnection::connect(&db_url).await.expect("connect to the new database");
    sqlx::query(&format!("GRANT ALL ON SCHEMA public TO {pg_user}")).execute(&mut db).await.expect("grant");
    let pg_host = var("ABTESTKIT_POSTGRES_TLS", "localhost:5433");
    let ch_db = random("abtest_tls");
    let env: BTreeMap<String, String> = [
        ("ABTEST_POSTGRES__URL", format!("postgres://{pg_user}@{pg_host}/{pg_db}")),
        ("ABTEST_POSTGRES__PASSWORD_FILE", dir.secret("pg", &pg_password)),
        ("ABTEST_POSTGRES__SSL_MODE", "verify-full".into()),
        ("ABTEST_POSTGRES__SSL_ROOT_CERT", tls_file("ca.crt")),
        ("ABTEST_CLICKHOUSE__URL", var("ABTESTKIT_CLICKHOUSE_HTTPS_URL", "https://localhost:8443")),
        ("ABTEST_CLICKHOUSE__CA_FILE", tls_file("ca.crt")),
        ("ABTEST_CLICKHOUSE__USER", ch_user),
        ("ABTEST_CLICKHOUSE__PASSWORD_FILE", dir.secret("ch", &ch_password)),
        ("ABTEST_CLICKHOUSE__DATABASE", ch_db.clone()),
        ("ABTEST_KAFKA__BROKERS", var("ABTESTKIT_KAFKA_TLS", "localhost:9093")),
        ("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL".into()),
        ("ABTEST_KAFKA__SSL_CA_LOCATION", tls_file("ca.crt")),
        ("ABTEST_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512".into()),
        ("ABTEST_KAFKA__SASL_USERNAME", kafka_user),
        ("ABTEST_KAFKA__SASL_PASSWORD_FILE", dir.secret("kafka", &kafka_password)),
        ("ABTEST_KAFKA__PROPERTIES__SASL_OAUTHBEARER_CLIENT_SECRET", oauth_secret.clone()),
        ("ABTEST_KAFKA__TOPICS__EVENTS", random("events")),
        ("ABTEST_KAFKA__TOPICS__EXPOSURES", random("exposures")),
        ("ABTEST_KAFKA__TOPICS__DLQ", random("dlq")),
        ("ABTEST_KAFKA__TOPIC_PARTITIONS", "2".into()),
        ("ABTEST_AUTH__API_KEYS_FILE", dir.secret("keys", &api_key)),
        ("ABTEST_API__LISTEN", format!("127.0.0.1:{}", free_port())),
        ("RUST_LOG", "debug".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let secrets = vec![pg_password, ch_password, kafka_password, api_key.clone(), oauth_secret];
    Deployment { dir, env, secrets, api_key, pg_db, ch_db }
}

impl Deployment {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.env["ABTEST_API__LISTEN"])
    }

    fn spawn(&self, args: &[&str], overrides: &[(&str, &str)]) -> Child {
        let mut command = Command::new(API);
        command.args(args).current_dir(&self.dir.0).env_clear().envs(&self.env);
        command.env("PATH", var("PATH", "/usr/bin:/bin"));
        for (k, v) in overrides {
            command.env(k, v);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run the api binary")
    }

    /// Runs to the end (bounded): success and everything it printed.
    fn run(&self, args: &[&str], overrides: &[(&str, &str)]) -> (bool, String) {
        let mut child = self.spawn(args, overrides);
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("api {args:?} still running after 60 s: {}", output(child));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ok = child.try_wait().ok().flatten().is_some_and(|s| s.success());
        (ok, output(child))
    }

    async fn cleanup(&self) {
        let admin_url = var("ABTESTKIT_POSTGRES_URL", "postgres://abtest:abtest@127.0.0.1:5433/postgres");
        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.pg_db)).execute(&mut admin).await;
        }
        let ch = common::config::ClickHouseConfig {
            url: var("ABTESTKIT_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ..Default::default()
        };
        if let Ok(client) = common::clickhouse::client(&ch) {
            let _ = client.query(&format!("DROP DATABASE IF EXISTS {}", self.ch_db)).execute().await;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Stops a child by its pid (SIGTERM: a graceful shutdown) and returns what it printed.
fn stop(child: Child) -> String {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    output(child)
}

fn output(mut child: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    let _ = child.wait();
    text
}

fn assert_no_secret(secrets: &[String], what: &str, text: &str) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a secret appears in {what}:\n{text}");
    }
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(url).send().await {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let checks = &body["checks"];
            if ["postgres", "clickhouse", "kafka"].iter().all(|d| checks[d] == "ok") {
                return body;
            }
            assert!(Instant::now() < deadline, "not ready over TLS after 60 s: {body}");
        }
        assert!(Instant::now() < deadline, "api not answering at {url}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `api migrate` and `api` over TLS to all three servers, secrets from files; every output
/// and HTTP answer searched for the secrets, then a failing start with a wrong password.
#[tokio::test]
async fn tls_everywhere_with_secrets_from_files_and_no_secret_anywhere() {
    let d = deployment().await;
    let (ok, migrate_log) = d.run(&["migrate"], &[]);
    assert!(ok && migrate_log.contains("migrations applied"), "api migrate over TLS: {migrate_log}");
    assert_no_secret(&d.secrets, "the migrate log", &migrate_log);

    let server = d.spawn(&[], &[]);
    let http = reqwest::Client::new();
    let ready = wait_ready(&http, &d.url("/readyz")).await;
    let created = http
        .post(d.url("/experiments"))
        .bearer_auth(&d.api_key)
        .json(&serde_json::json!({"name": "tls", "variants": [
            {"name": "a", "allocation_percent": 50}, {"name": "b", "allocation_percent": 50}]}))
        .send()
        .await
        .expect("create an experiment");
    let status = created.status();
    let body = created.text().await.expect("body");
    let refused = http.get(d.url("/experiments")).bearer_auth("wrong-key").send().await.expect("401");
    let refused_status = refused.status();
    let refused_body = refused.text().await.expect("body");
    let metrics = http.get(d.url("/prometheus")).send().await.expect("metrics").text().await.expect("metrics text");
    let serve_log = stop(server);
    assert!(status.is_success(), "POST /experiments with the key from the file: {status} {body}\n{serve_log}");
    assert_eq!(refused_status, reqwest::StatusCode::UNAUTHORIZED);
    // What was searched: debug logs of a whole run, the startup checks, the access lines.
    for wanted in ["DEBUG", "reachable", "api listening", "/experiments"] {
        assert!(serve_log.contains(wanted), "{wanted} missing from the api's log:\n{serve_log}");
    }
    for (what, text) in [
        ("the api's log", serve_log.as_str()),
        ("/prometheus", metrics.as_str()),
        ("/readyz", &ready.to_string()),
        ("a 401", refused_body.as_str()),
    ] {
        assert_no_secret(&d.secrets, what, text);
    }

    // The same deployment with a wrong Kafka password: startup stops, the setting named.
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let wrong_file = d.dir.secret("kafka-wrong", &wrong);
    let (ok, failed_log) = d.run(&[], &[("ABTEST_KAFKA__SASL_PASSWORD_FILE", &wrong_file)]);
    assert!(!ok, "a wrong SASL password must stop the api: {failed_log}");
    assert!(
        failed_log.contains("kafka.sasl_password") && failed_log.contains("ABTEST_KAFKA__SASL_PASSWORD"),
        "{failed_log}"
    );
    let mut all = d.secrets.clone();
    all.push(wrong);
    assert_no_secret(&all, "the failed start's log", &failed_log);

    let (ok, help) = d.run(&["--help"], &[]);
    assert!(ok && help.contains("ABTEST_KAFKA__PROPERTIES__"), "{help}");
    assert_no_secret(&all, "--help", &help);
    d.cleanup().await;
}

#[tokio::test]
async fn a_postgres_server_signed_by_another_ca_stops_the_api_naming_the_setting() {
    let d = deployment().await;
    let (ok, log) = d.run(&[], &[("ABTEST_POSTGRES__SSL_ROOT_CERT", &tls_file("wrong-ca.crt"))]);
    assert!(!ok, "{log}");
    for wanted in ["postgres.ssl_root_cert", "ABTEST_POSTGRES__SSL_ROOT_CERT", "UnknownIssuer"] {
        assert!(log.contains(wanted), "{wanted} missing from:\n{log}");
    }
    assert_no_secret(&d.secrets, "the log", &log);
    d.cleanup().await;
}

#[tokio::test]
async fn a_clickhouse_server_signed_by_another_ca_stops_the_api_naming_the_setting() {
    let d = deployment().await;
    let (ok, log) = d.run(&["migrate"], &[("ABTEST_CLICKHOUSE__CA_FILE", &tls_file("wrong-ca.crt"))]);
    assert!(!ok, "{log}");
    for wanted in ["clickhouse.ca_file", "ABTEST_CLICKHOUSE__CA_FILE", "UnknownIssuer"] {
        assert!(log.contains(wanted), "{wanted} missing from:\n{log}");
    }
    d.cleanup().await;
}

#[tokio::test]
async fn a_missing_ca_file_or_a_scheme_mismatch_stops_the_api_before_connecting() {
    let d = deployment().await;
    let (ok, log) = d.run(&[], &[("ABTEST_KAFKA__SSL_CA_LOCATION", "/nonexistent/kafka-ca.crt")]);
    assert!(!ok && log.contains("kafka.ssl_ca_location") && log.contains("does not exist"), "{log}");
    let (ok, log) = d.run(&[], &[("ABTEST_CLICKHOUSE__URL", "http://127.0.0.1:8123")]);
    assert!(!ok && log.contains("clickhouse.ca_file") && log.contains("https://"), "{log}");
    d.cleanup().await;
}

#[tokio::test]
async fn a_server_that_is_down_does_not_stop_startup() {
    let d = deployment().await;
    let down = format!("postgres://abtest@localhost:{}/x", free_port());
    let server = d.spawn(&[], &[("ABTEST_POSTGRES__URL", &down)]);
    let http = reqwest::Client::new();
    let url = d.url("/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(response) = http.get(&url).send().await {
            break response.json::<serde_json::Value>().await.expect("readiness JSON");
        }
        assert!(Instant::now() < deadline, "the api did not start with Postgres down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = stop(server);
    assert_eq!(body["checks"]["postgres"], "unavailable", "{body}");
    assert!(log.contains("not reachable at startup"), "{log}");
    d.cleanup().await;
}
