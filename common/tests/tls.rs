//! TLS, SASL and startup errors against the local stack's real servers (`scripts/test`
//! starts them, `scripts/lib.sh` makes their certificates from a test CA in `.run/tls`):
//! Postgres 15 with `ssl=on`, ClickHouse 18.16 with an `https_port`, and nisshi brokers
//! with TLS and SCRAM users (SASL_SSL), TLS only (SSL) and SCRAM only (SASL_PLAINTEXT). Every check goes through the code the binaries use:
//! `Config` validation, `preflight::check`, `postgres::pool`, `clickhouse::client`, the
//! Kafka `Sink` and consumer.
#![allow(clippy::result_large_err)] // figment's Jail API returns figment::Error

use std::{path::PathBuf, time::Duration};

use common::{
    config::{Config, PgSslMode, SaslMechanism, Secret, SecurityProtocol},
    kafka::{Message as KafkaMessage, Sink},
    preflight::{self, PreflightError, Store},
};
use rdkafka::{consumer::Consumer, Message};

/// Where the stack's TLS servers are (`export_test_env` in scripts/lib.sh).
struct Tls {
    dir: PathBuf,
    postgres: String,
    postgres_pw: (String, String),
    postgres_cert_user: String,
    clickhouse_https: String,
    clickhouse_http: String,
    clickhouse_pw: (String, String),
    kafka: String,
    kafka_ssl: String,
    kafka_sasl: String,
    scram256: (String, String),
    scram512: (String, String),
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn pair(text: String) -> (String, String) {
    let (a, b) = text.split_once(':').expect("user:password");
    (a.to_owned(), b.to_owned())
}

fn tls() -> Tls {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../.run/tls");
    Tls {
        dir: PathBuf::from(var("ABTESTKIT_TLS_DIR", root)),
        postgres: var("ABTESTKIT_POSTGRES_TLS", "localhost:5433"),
        postgres_pw: pair(var("ABTESTKIT_POSTGRES_PW_USER", "abtest_pw:pg-test-password")),
        postgres_cert_user: var("ABTESTKIT_POSTGRES_CERT_USER", "abtest_cert"),
        clickhouse_https: var("ABTESTKIT_CLICKHOUSE_HTTPS_URL", "https://localhost:8443"),
        clickhouse_http: var("ABTESTKIT_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
        clickhouse_pw: pair(var("ABTESTKIT_CLICKHOUSE_PW_USER", "abtest_pw:ch-test-password")),
        kafka: var("ABTESTKIT_KAFKA_TLS", "localhost:9093"),
        kafka_ssl: var("ABTESTKIT_KAFKA_SSL", "localhost:9095"),
        kafka_sasl: var("ABTESTKIT_KAFKA_SASL", "localhost:9096"),
        scram256: pair(var("ABTESTKIT_KAFKA_SCRAM256", "abtest256:scram256-test-password")),
        scram512: pair(var("ABTESTKIT_KAFKA_SCRAM512", "abtest512:scram512-test-password")),
    }
}

impl Tls {
    fn file(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        assert!(path.exists(), "{} missing: run scripts/test (it makes the test CA)", path.display());
        path
    }
}

/// A secret in a file of its own (as Docker and Kubernetes mount them), with the trailing
/// newline editors add.
fn secret_file(value: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("abtest-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, format!("{value}\n")).expect("write secret file");
    path
}

/// A configuration that passed validation, as a binary would have it.
fn valid(config: Config) -> Config {
    config.validate().unwrap_or_else(|e| panic!("test configuration: {e}"));
    config
}

async fn check(config: &Config, store: Store) -> Result<(), PreflightError> {
    preflight::check(config, &[store]).await
}

/// The fatal error of `store` with `config`, checked to name `key` first.
async fn refused(config: &Config, store: Store, key: &str) -> PreflightError {
    let err = check(config, store).await.expect_err("must be refused at startup");
    assert_eq!(err.settings.first().copied(), Some(key), "{err}");
    let env = common::config::env_var(key);
    assert!(err.to_string().contains(&env), "the message names {env}: {err}");
    err
}

// --- Postgres --------------------------------------------------------------------------

fn postgres(t: &Tls, user: &str, mode: PgSslMode) -> Config {
    let mut config = Config::default();
    config.postgres.url = Secret::new(format!("postgres://{user}@{}/postgres", t.postgres));
    config.postgres.ssl_mode = mode;
    if mode.verifies() {
        config.postgres.ssl_root_cert = Some(t.file("ca.crt"));
    }
    config
}

/// Is this pool's connection encrypted, and as whom?
async fn pg_session(config: &Config) -> (bool, String) {
    let pool = common::postgres::pool(&config.postgres).expect("pool");
    let row: (bool, String) =
        sqlx::query_as("SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("query over the pool");
    pool.close().await;
    row
}

#[tokio::test]
async fn postgres_verify_full_with_the_test_ca() {
    let t = tls();
    let mut config = postgres(&t, &t.postgres_pw.0, PgSslMode::VerifyFull);
    config.postgres.password = Secret::new(t.postgres_pw.1.clone());
    let config = valid(config);
    check(&config, Store::Postgres).await.expect("verify-full with the right CA");
    assert_eq!(pg_session(&config).await, (true, t.postgres_pw.0.clone()));
}

#[tokio::test]
async fn postgres_password_file_is_read_by_config_load() {
    let t = tls();
    let file = secret_file(&t.postgres_pw.1);
    let mut config = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("ABTEST_POSTGRES__URL", format!("postgres://{}@{}/postgres", t.postgres_pw.0, t.postgres));
        jail.set_env("ABTEST_POSTGRES__PASSWORD_FILE", file.display());
        jail.set_env("ABTEST_POSTGRES__SSL_MODE", "verify-full");
        jail.set_env("ABTEST_POSTGRES__SSL_ROOT_CERT", t.file("ca.crt").display());
        config = Some(Config::from_figment(Config::figment(jail.directory().join("none.toml"))).expect("loads"));
        Ok(())
    });
    let config = config.expect("config");
    assert_eq!(pg_session(&config).await, (true, t.postgres_pw.0.clone()), "scram-sha-256 with the file's password");
}

#[tokio::test]
async fn postgres_refuses_a_server_the_configured_ca_did_not_sign() {
    let t = tls();
    let mut config = postgres(&t, "abtest", PgSslMode::VerifyFull);
    config.postgres.ssl_root_cert = Some(t.file("wrong-ca.crt"));
    let err = refused(&valid(config), Store::Postgres, "postgres.ssl_root_cert").await;
    assert!(err.reason.contains("UnknownIssuer"), "the real cause is shown: {err}");
    // verify-ca has the same trust check.
    let mut config = postgres(&t, "abtest", PgSslMode::VerifyCa);
    config.postgres.ssl_root_cert = Some(t.file("wrong-ca.crt"));
    refused(&valid(config), Store::Postgres, "postgres.ssl_root_cert").await;
}

#[tokio::test]
async fn postgres_prefer_takes_tls_when_offered() {
    let t = tls();
    let config = valid(postgres(&t, "abtest", PgSslMode::Prefer));
    assert_eq!(pg_session(&config).await, (true, "abtest".to_owned()), "the default mode encrypts against this server");
    let config = valid(postgres(&t, "abtest", PgSslMode::Disable));
    assert_eq!(pg_session(&config).await, (false, "abtest".to_owned()));
}

#[tokio::test]
async fn postgres_client_certificate_authentication() {
    let t = tls();
    let mut config = postgres(&t, &t.postgres_cert_user, PgSslMode::VerifyFull);
    config.postgres.ssl_client_cert = Some(t.file("client.crt"));
    config.postgres.ssl_client_key = Some(t.file("client.key"));
    let config = valid(config);
    check(&config, Store::Postgres).await.expect("cert authentication");
    assert_eq!(pg_session(&config).await, (true, t.postgres_cert_user.clone()));

    // A certificate from another CA: the server refuses it during the handshake.
    let mut wrong = config.clone();
    wrong.postgres.ssl_client_cert = Some(t.file("wrong-client.crt"));
    wrong.postgres.ssl_client_key = Some(t.file("wrong-client.key"));
    refused(&valid(wrong), Store::Postgres, "postgres.ssl_client_cert").await;

    // No certificate: the login is refused (pg_hba.conf `cert`).
    let none = valid(postgres(&t, &t.postgres_cert_user, PgSslMode::Require));
    let err = refused(&none, Store::Postgres, "postgres.ssl_client_cert").await;
    assert!(err.reason.contains("requires a valid client certificate"), "{err}");
}

#[tokio::test]
async fn postgres_refused_logins_stop_startup_and_an_outage_does_not() {
    let t = tls();
    let mut config = postgres(&t, &t.postgres_pw.0, PgSslMode::Require);
    config.postgres.password = Secret::new("not-the-password");
    let err = refused(&valid(config), Store::Postgres, "postgres.password").await;
    assert!(err.reason.contains("password authentication failed"), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    // This user may only come in over TLS.
    let mut config = postgres(&t, &t.postgres_pw.0, PgSslMode::Disable);
    config.postgres.password = Secret::new(t.postgres_pw.1.clone());
    let err = refused(&valid(config), Store::Postgres, "postgres.ssl_mode").await;
    assert!(err.reason.contains("no encryption"), "{err}");

    // Nothing listens on port 1: a warning, and startup goes on.
    let mut down = postgres(&t, "abtest", PgSslMode::VerifyFull);
    down.postgres.url = Secret::new("postgres://abtest@localhost:1/postgres");
    check(&valid(down), Store::Postgres).await.expect("an outage is not fatal");
}

// --- ClickHouse ------------------------------------------------------------------------

fn clickhouse(t: &Tls, ca: Option<&str>) -> Config {
    let mut config = Config::default();
    config.clickhouse.url = t.clickhouse_https.clone();
    config.clickhouse.database = "default".into();
    config.clickhouse.ca_file = ca.map(|name| t.file(name));
    config
}

async fn ch_select(config: &Config) -> Result<u8, clickhouse::error::Error> {
    let client = common::clickhouse::client(&config.clickhouse).expect("client");
    client.query("SELECT 1").fetch_one::<u8>().await
}

#[tokio::test]
async fn clickhouse_https_with_the_test_ca() {
    let t = tls();
    let config = valid(clickhouse(&t, Some("ca.crt")));
    check(&config, Store::ClickHouse).await.expect("https with the right CA");
    assert_eq!(ch_select(&config).await.expect("query over https"), 1);
    // A large answer over the same client (keep-alive, streaming through rustls).
    let client = common::clickhouse::client(&config.clickhouse).expect("client");
    let n: u64 = client
        .query("SELECT count() FROM (SELECT number FROM system.numbers LIMIT 200000)")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(n, 200_000);
}

#[tokio::test]
async fn clickhouse_refuses_a_server_the_configured_ca_did_not_sign() {
    let t = tls();
    let err = refused(&valid(clickhouse(&t, Some("wrong-ca.crt"))), Store::ClickHouse, "clickhouse.ca_file").await;
    assert!(err.reason.contains("UnknownIssuer"), "{err}");
    // Without a CA file only the public roots are trusted, which did not sign the test CA.
    let err = refused(&valid(clickhouse(&t, None)), Store::ClickHouse, "clickhouse.ca_file").await;
    assert!(err.reason.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn clickhouse_scheme_and_port_mistakes_are_named() {
    let t = tls();
    // https:// to a plain HTTP port. ClickHouse 18.16's own HTTP port answers a TLS hello
    // only when its random bytes happen to hold a newline (else it waits for the end of the
    // request line, and the attempt times out: a warning), so a stand-in answers at once.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = plain.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = plain.accept().await {
            let _ = socket.read(&mut [0u8; 1024]).await;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
        }
    });
    let mut config = clickhouse(&t, Some("ca.crt"));
    config.clickhouse.url = format!("https://localhost:{port}");
    let err = refused(&valid(config), Store::ClickHouse, "clickhouse.url").await;
    assert!(err.reason.contains("does not speak TLS"), "{err}");
    // http:// with a CA file: refused before any connection.
    let mut config = clickhouse(&t, Some("ca.crt"));
    config.clickhouse.url = t.clickhouse_http.clone();
    let err = config.validate().expect_err("a CA file with http://").to_string();
    assert!(err.contains("`clickhouse.ca_file`") && err.contains("ABTEST_CLICKHOUSE__CA_FILE"), "{err}");
}

#[tokio::test]
async fn clickhouse_client_certificates_are_sent() {
    // The server (verificationMode relaxed) takes connections without a certificate and
    // checks the ones it gets against the test CA.
    let t = tls();
    let mut config = clickhouse(&t, Some("ca.crt"));
    config.clickhouse.client_cert = Some(t.file("client.crt"));
    config.clickhouse.client_key = Some(t.file("client.key"));
    let config = valid(config);
    assert_eq!(ch_select(&config).await.expect("with a client certificate"), 1);
    let mut wrong = config.clone();
    wrong.clickhouse.client_cert = Some(t.file("wrong-client.crt"));
    wrong.clickhouse.client_key = Some(t.file("wrong-client.key"));
    refused(&valid(wrong), Store::ClickHouse, "clickhouse.client_cert").await;
}

#[tokio::test]
async fn clickhouse_password_user_and_a_wrong_password() {
    let t = tls();
    let mut config = clickhouse(&t, Some("ca.crt"));
    config.clickhouse.user = t.clickhouse_pw.0.clone();
    config.clickhouse.password = Secret::new(t.clickhouse_pw.1.clone());
    assert_eq!(ch_select(&valid(config.clone())).await.expect("the right password"), 1);
    config.clickhouse.password = Secret::new("not-the-password");
    let err = refused(&valid(config), Store::ClickHouse, "clickhouse.user").await;
    assert!(err.settings.contains(&"clickhouse.password") && !err.to_string().contains("not-the-password"), "{err}");
}

// --- Kafka -----------------------------------------------------------------------------

fn kafka(t: &Tls, mechanism: SaslMechanism, (user, password): &(String, String)) -> Config {
    let mut config = Config::default();
    config.kafka.brokers = t.kafka.parse().expect("bootstrap");
    config.kafka.security_protocol = SecurityProtocol::SaslSsl;
    config.kafka.sasl_mechanism = Some(mechanism);
    config.kafka.sasl_username = user.clone();
    config.kafka.sasl_password = Secret::new(password.clone());
    config.kafka.ssl_ca_location = Some(t.file("ca.crt"));
    config.kafka.group_id = format!("tls-{}", uuid::Uuid::new_v4().simple());
    config.kafka.session_timeout = Duration::from_secs(6);
    config
}

/// Produces one message through our `Sink` and reads it back through our consumer (a
/// consumer group: join, fetch, commit over SASL_SSL).
async fn roundtrip(config: &Config) {
    let topic = format!("tls_{}", uuid::Uuid::new_v4().simple());
    common::kafka::ensure_topics(&config.kafka, &[(topic.as_str(), 1)]).await.expect("create topic over SASL_SSL");
    let sink = Sink::new(&config.kafka, Duration::from_secs(10)).expect("producer");
    let payload = format!("over TLS {}", uuid::Uuid::new_v4());
    let message = KafkaMessage { key: b"user".as_slice(), payload: payload.as_bytes(), request_id: Some("req-tls") };
    sink.send_all(&topic, &[message]).await.expect("acknowledged over SASL_SSL");
    let consumer = common::kafka::consumer(&config.kafka, rdkafka::consumer::DefaultConsumerContext).expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");
    let read = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await.expect("a message within 60 s");
    let read = read.expect("consumed");
    assert_eq!(read.payload(), Some(payload.as_bytes()));
    consumer.commit_message(&read, rdkafka::consumer::CommitMode::Sync).expect("commit over SASL_SSL");
}

#[tokio::test]
async fn kafka_sasl_ssl_scram_sha_512_produce_and_consume() {
    let t = tls();
    let config = valid(kafka(&t, SaslMechanism::ScramSha512, &t.scram512));
    check(&config, Store::Kafka).await.expect("SCRAM-SHA-512 over TLS");
    roundtrip(&config).await;
}

#[tokio::test]
async fn kafka_sasl_ssl_scram_sha_256_produce_and_consume() {
    let t = tls();
    let config = valid(kafka(&t, SaslMechanism::ScramSha256, &t.scram256));
    check(&config, Store::Kafka).await.expect("SCRAM-SHA-256 over TLS");
    roundtrip(&config).await;
}

#[tokio::test]
async fn kafka_wrong_password_and_wrong_ca_are_named() {
    let t = tls();
    let wrong = (t.scram512.0.clone(), "not-the-password".to_owned());
    let err = refused(&valid(kafka(&t, SaslMechanism::ScramSha512, &wrong)), Store::Kafka, "kafka.sasl_password").await;
    assert!(err.reason.contains("SCRAM authentication failed"), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    let mut config = kafka(&t, SaslMechanism::ScramSha512, &t.scram512);
    config.kafka.ssl_ca_location = Some(t.file("wrong-ca.crt"));
    let err = refused(&valid(config), Store::Kafka, "kafka.ssl_ca_location").await;
    assert!(err.reason.contains("certificate verify failed"), "{err}");
}

#[tokio::test]
async fn kafka_plain_reaches_the_broker_which_does_not_offer_it() {
    let t = tls();
    let config = valid(kafka(&t, SaslMechanism::Plain, &t.scram512));
    let err = refused(&config, Store::Kafka, "kafka.sasl_mechanism").await;
    assert!(err.reason.contains("Unsupported SASL mechanism"), "{err}");
}

/// OAUTHBEARER set up entirely through `ABTEST_KAFKA__PROPERTIES__*` variables: the broker
/// answering "Unsupported SASL mechanism" to OAUTHBEARER proves the properties reached
/// librdkafka (without them it would not even try: an unsecured JWT must be enabled).
#[tokio::test]
async fn kafka_properties_from_the_environment_reach_librdkafka() {
    let t = tls();
    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("ABTEST_KAFKA__BROKERS", &t.kafka);
        jail.set_env("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL");
        jail.set_env("ABTEST_KAFKA__SSL_CA_LOCATION", t.file("ca.crt").display());
        jail.set_env("ABTEST_KAFKA__SASL_MECHANISM", "OAUTHBEARER");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT", "true");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__SASL_OAUTHBEARER_CONFIG", "principal=abtest scope=events");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "https");
        loaded = Some(Config::from_figment(Config::figment(jail.directory().join("none.toml"))).expect("loads"));
        Ok(())
    });
    let config = loaded.expect("config");
    assert_eq!(config.kafka.properties.get("enable.sasl.oauthbearer.unsecure.jwt"), Some("true"));
    let err = refused(&config, Store::Kafka, "kafka.sasl_mechanism").await;
    assert!(err.reason.contains("OAUTHBEARER") && err.reason.contains("Unsupported SASL mechanism"), "{err}");

    // Without a token source OAUTHBEARER could never connect: refused by validation.
    let mut without = config.clone();
    without.kafka.properties = Default::default();
    let err = without.validate().expect_err("no token source").to_string();
    assert!(err.contains("`kafka.sasl_mechanism`") && err.contains("SASL_OAUTHBEARER_METHOD=oidc"), "{err}");
}

#[tokio::test]
async fn kafka_ssl_without_sasl_produce_and_consume() {
    let t = tls();
    let mut config = Config::default();
    config.kafka.brokers = t.kafka_ssl.parse().expect("bootstrap");
    config.kafka.security_protocol = SecurityProtocol::Ssl;
    config.kafka.ssl_ca_location = Some(t.file("ca.crt"));
    config.kafka.group_id = format!("tls-{}", uuid::Uuid::new_v4().simple());
    config.kafka.session_timeout = Duration::from_secs(6);
    let config = valid(config);
    check(&config, Store::Kafka).await.expect("SSL with the right CA");
    roundtrip(&config).await;
    let mut wrong = config.clone();
    wrong.kafka.ssl_ca_location = Some(t.file("wrong-ca.crt"));
    refused(&valid(wrong), Store::Kafka, "kafka.ssl_ca_location").await;
}

#[tokio::test]
async fn kafka_sasl_plaintext_scram_produce_and_consume() {
    let t = tls();
    let mut config = kafka(&t, SaslMechanism::ScramSha512, &t.scram512);
    config.kafka.brokers = t.kafka_sasl.parse().expect("bootstrap");
    config.kafka.security_protocol = SecurityProtocol::SaslPlaintext;
    config.kafka.ssl_ca_location = None;
    let config = valid(config);
    check(&config, Store::Kafka).await.expect("SCRAM without TLS");
    roundtrip(&config).await;
    let mut wrong = config.clone();
    wrong.kafka.sasl_password = Secret::new("not-the-password");
    refused(&valid(wrong), Store::Kafka, "kafka.sasl_password").await;
}

fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A token endpoint of our own: answers every POST with an (unsigned) JWT and keeps the
/// requests it got.
async fn token_endpoint() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/oauth2/token", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            keep.lock().expect("lock").push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
            let claims = format!(r#"{{"sub":"abtest","iat":{now},"exp":{}}}"#, now + 3600);
            let jwt = format!(
                "{}.{}.c2lnbmF0dXJl",
                base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
                base64url(claims.as_bytes())
            );
            let body = format!(r#"{{"access_token":"{jwt}","token_type":"bearer","expires_in":3600}}"#);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (url, seen)
}

/// OAUTHBEARER with tokens from an OIDC endpoint, the way a managed Kafka is used
/// (librdkafka's own client-credentials flow, built with libcurl): the endpoint gets our
/// client id and secret, and the broker then gets the OAUTHBEARER handshake (which nisshi
/// does not offer).
#[tokio::test]
async fn kafka_oauthbearer_fetches_its_token_from_an_oidc_endpoint() {
    let t = tls();
    let (url, seen) = token_endpoint().await;
    let mut config = Config::default();
    config.kafka.brokers = t.kafka.parse().expect("bootstrap");
    config.kafka.security_protocol = SecurityProtocol::SaslSsl;
    config.kafka.ssl_ca_location = Some(t.file("ca.crt"));
    config.kafka.sasl_mechanism = Some(SaslMechanism::OAuthBearer);
    let props = &mut config.kafka.properties;
    props.insert("sasl.oauthbearer.method", "oidc");
    props.insert("sasl.oauthbearer.client.id", "abtest-client");
    props.insert("sasl.oauthbearer.client.secret", "oidc-client-secret");
    props.insert("sasl.oauthbearer.token.endpoint.url", url.as_str());
    let err = refused(&valid(config), Store::Kafka, "kafka.sasl_mechanism").await;
    assert!(err.reason.contains("OAUTHBEARER") && err.reason.contains("Unsupported SASL mechanism"), "{err}");
    let requests = seen.lock().expect("lock").clone();
    let basic = base64url(b"abtest-client:oidc-client-secret").replace('-', "+").replace('_', "/");
    assert!(
        requests.iter().any(|r| r.starts_with("POST /oauth2/token") && r.contains(basic.trim_end_matches('='))),
        "the token endpoint got no client-credentials request: {requests:?}"
    );
}

/// The broker hangs up on plain text, as a restarting broker could: a warning (startup
/// goes on) that names the likely setting.
#[tokio::test]
async fn kafka_plaintext_to_a_tls_listener_is_a_warning_with_a_hint() {
    let t = tls();
    let mut config = Config::default();
    config.kafka.brokers = t.kafka.parse().expect("bootstrap");
    let why = preflight::attempt(&valid(config), Store::Kafka).await.expect("not fatal").expect_err("unreachable");
    assert!(why.contains("ABTEST_KAFKA__SECURITY_PROTOCOL"), "{why}");
}
