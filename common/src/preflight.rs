//! One connection attempt per dependency at startup, so that a configuration mistake stops
//! the binary with the setting named instead of hiding behind lazily connecting clients.
//!
//! - A certificate the client refuses, a certificate the server refuses, TLS spoken to a
//!   plain-text port, a refused login or SASL handshake: **fatal**, with the cause
//!   (rustls's `UnknownIssuer` and friends only show in an error's source chain, so the
//!   whole chain is printed) and the settings to look at.
//! - No answer, connection refused, DNS: the server is down or not there yet. An outage must
//!   not stop a deployment (the clients reconnect by themselves), so this only logs a
//!   warning and startup continues.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rdkafka::{
    client::ClientContext,
    error::KafkaError,
    producer::{BaseProducer, Producer},
    types::RDKafkaErrorCode,
};
use sqlx::{Connection, PgConnection};

use crate::{
    config::{env_var, ClickHouseConfig, Config, KafkaConfig, PostgresConfig},
    tls,
};

/// How long each attempt may take (they run concurrently).
pub const ATTEMPT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Postgres,
    ClickHouse,
    Kafka,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Postgres => "Postgres",
            Store::ClickHouse => "ClickHouse",
            Store::Kafka => "Kafka",
        }
    }
}

/// A dependency that cannot work with this configuration.
#[derive(Debug, thiserror::Error)]
#[error("{store}: {reason}; check {}", settings.iter().map(|k| format!("{k} ({})", env_var(k))).collect::<Vec<_>>().join(", "))]
pub struct PreflightError {
    pub store: &'static str,
    /// The configuration keys to look at, most likely first.
    pub settings: Vec<&'static str>,
    pub reason: String,
}

/// `Ok(Ok(()))`: reachable; `Ok(Err(why))`: not reachable now (a warning); `Err`: fatal.
pub type Attempt = Result<Result<(), String>, PreflightError>;

fn fatal(store: Store, settings: &[&'static str], reason: impl Into<String>) -> Attempt {
    let mut unique: Vec<&'static str> = Vec::new();
    for key in settings {
        if !unique.contains(key) {
            unique.push(key);
        }
    }
    Err(PreflightError { store: store.name(), settings: unique, reason: reason.into() })
}

/// Tries each of `stores` once, concurrently; the first fatal error stops startup.
pub async fn check(config: &Config, stores: &[Store]) -> Result<(), PreflightError> {
    let attempts = stores.iter().map(|store| async move { (store.name(), attempt(config, *store).await) });
    for (store, attempt) in futures::future::join_all(attempts).await {
        match attempt? {
            Ok(()) => tracing::info!(store, "reachable"),
            Err(why) => tracing::warn!(store, error = %why, "not reachable at startup; continuing (it is retried)"),
        }
    }
    Ok(())
}

/// One connection attempt to `store`.
pub async fn attempt(config: &Config, store: Store) -> Attempt {
    match store {
        Store::Postgres => postgres(&config.postgres).await,
        Store::ClickHouse => clickhouse(&config.clickhouse).await,
        Store::Kafka => kafka(&config.kafka).await,
    }
}

/// What a rustls error says about the configuration: which settings, and in words.
fn tls_fatal(store: Store, err: &rustls::Error, chain: &str, keys: TlsKeys) -> Attempt {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    match err {
        E::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => fatal(
            store,
            &[keys.host, keys.mode],
            format!("the server's certificate does not name the host we connect to: {chain}"),
        ),
        E::InvalidCertificate(_) | E::InvalidCertRevocationList(_) => fatal(
            store,
            &[keys.ca, keys.mode],
            format!("the server's certificate is not trusted (is it signed by the CA of {}?): {chain}", keys.ca),
        ),
        E::AlertReceived(
            Alert::CertificateRequired | Alert::BadCertificate | Alert::UnknownCA | Alert::AccessDenied,
        ) => fatal(
            store,
            &[keys.client_cert],
            format!("the server refused our client certificate (or its absence): {chain}"),
        ),
        E::InvalidMessage(_) => fatal(
            store,
            &[keys.host, keys.mode],
            format!("the server does not speak TLS on this port (a plain-text port?): {chain}"),
        ),
        _ => fatal(store, &[keys.mode, keys.ca], format!("TLS failed: {chain}")),
    }
}

/// The settings a TLS failure of one store can be about.
#[derive(Clone, Copy)]
struct TlsKeys {
    host: &'static str,
    mode: &'static str,
    ca: &'static str,
    client_cert: &'static str,
}

async fn postgres(cfg: &PostgresConfig) -> Attempt {
    let options = match crate::postgres::options(cfg) {
        Ok(options) => options,
        Err(e) => return fatal(Store::Postgres, &["postgres.url"], tls::chain(&e)),
    };
    let err = match tokio::time::timeout(ATTEMPT, PgConnection::connect_with(&options)).await {
        Err(_) => return Ok(Err(format!("no answer within {ATTEMPT:?}"))),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(Ok(()));
        }
        Ok(Err(e)) => e,
    };
    let chain = tls::chain(&err);
    let keys = TlsKeys {
        host: "postgres.url",
        mode: "postgres.ssl_mode",
        ca: "postgres.ssl_root_cert",
        client_cert: "postgres.ssl_client_cert",
    };
    if let Some(tls_err) = tls::rustls_cause(&err) {
        return tls_fatal(Store::Postgres, tls_err, &chain, keys);
    }
    match &err {
        sqlx::Error::Tls(_) => fatal(Store::Postgres, &["postgres.ssl_mode", "postgres.ssl_root_cert"], chain),
        // Class 28, invalid authorization: a wrong password, a user pg_hba.conf refuses
        // (on this host, without TLS, without a client certificate).
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
            let message = db.message();
            let settings: &[&'static str] = if db.code().is_some_and(|c| c == "28P01") {
                &["postgres.password", "postgres.url"]
            } else if message.contains("no encryption") {
                &["postgres.ssl_mode"]
            } else if message.contains("certificate") {
                &["postgres.ssl_client_cert", "postgres.ssl_client_key"]
            } else {
                &["postgres.url", "postgres.password", "postgres.ssl_mode", "postgres.ssl_client_cert"]
            };
            fatal(Store::Postgres, settings, format!("the server refused the login: {chain}"))
        }
        _ => Ok(Err(chain)),
    }
}

/// ClickHouse's codes for a refused login (18.16: 192 unknown user, 193 wrong password;
/// current releases: 516 authentication failed).
const CLICKHOUSE_AUTH: &[u32] = &[192, 193, 516];

async fn clickhouse(cfg: &ClickHouseConfig) -> Attempt {
    let client = match crate::clickhouse::client(cfg) {
        Ok(client) => client,
        Err(e) => return fatal(Store::ClickHouse, &[e.key], e.reason),
    };
    let err = match tokio::time::timeout(ATTEMPT, client.query("SELECT 1").fetch_one::<u8>()).await {
        Err(_) => return Ok(Err(format!("no answer within {ATTEMPT:?}"))),
        Ok(Ok(_)) => return Ok(Ok(())),
        Ok(Err(e)) => e,
    };
    let chain = tls::chain(&err);
    if let Some(tls_err) = tls::rustls_cause(&err) {
        let keys = TlsKeys {
            host: "clickhouse.url",
            mode: "clickhouse.url",
            ca: "clickhouse.ca_file",
            client_cert: "clickhouse.client_cert",
        };
        return tls_fatal(Store::ClickHouse, tls_err, &chain, keys);
    }
    match crate::clickhouse::error_code(&err) {
        Some(code) if CLICKHOUSE_AUTH.contains(&code) => fatal(
            Store::ClickHouse,
            &["clickhouse.user", "clickhouse.password"],
            format!("the server refused the login: {chain}"),
        ),
        _ => Ok(Err(chain)),
    }
}

/// An error callback: its code, when it has one, and its text.
type Reported = (Option<RDKafkaErrorCode>, String);

/// librdkafka reports TLS and SASL failures only through its error callback and its log,
/// so the probe client records them while it asks for metadata.
#[derive(Default, Clone)]
struct Recorder {
    errors: Arc<Mutex<Vec<Reported>>>,
    /// Connection failures (`FAIL` log lines), for the warning when nothing is fatal.
    failures: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut seen) = self.errors.lock() {
            seen.push((error.rdkafka_error_code(), reason.to_owned()));
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "FAIL" {
            if let Ok(mut seen) = self.failures.lock() {
                seen.push(message.to_owned());
            }
        }
        rdkafka::client::DefaultClientContext.log(level, fac, message);
    }
}

impl rdkafka::producer::ProducerContext for Recorder {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

impl Recorder {
    /// A recorded failure that no retry fixes.
    fn fatal(&self) -> Option<Attempt> {
        let seen = self.errors.lock().ok()?;
        seen.iter().find_map(|(code, reason)| {
            let sasl = matches!(code, Some(RDKafkaErrorCode::Authentication)) || reason.contains("SASL authentication");
            let ssl = matches!(code, Some(RDKafkaErrorCode::SSL)) || reason.contains("SSL handshake failed");
            let protocol = reason.contains("security.protocol");
            if sasl {
                let settings: &[&'static str] = if reason.contains("Unsupported SASL mechanism") {
                    &["kafka.sasl_mechanism"]
                } else {
                    &["kafka.sasl_password", "kafka.sasl_username", "kafka.sasl_mechanism"]
                };
                Some(fatal(Store::Kafka, settings, format!("SASL authentication failed: {reason}")))
            } else if ssl || protocol {
                Some(fatal(
                    Store::Kafka,
                    &["kafka.ssl_ca_location", "kafka.security_protocol"],
                    format!("TLS with the broker failed: {reason}"),
                ))
            } else {
                None
            }
        })
    }

    /// Why nothing answered: the last connection failure, with a hint when it looks like
    /// plain text spoken to a TLS listener (the broker hangs up before any answer; that
    /// also happens while a broker restarts, so it is a warning, not fatal).
    fn unreachable(&self, tls: bool) -> String {
        let failure = self.failures.lock().ok().and_then(|f| f.last().cloned());
        let error = self.errors.lock().ok().and_then(|e| e.last().map(|(_, reason)| reason.clone()));
        let why = failure.or(error).unwrap_or_else(|| format!("no metadata within {ATTEMPT:?}"));
        if !tls && why.contains("APIVERSION_QUERY") {
            return format!(
                "{why} (a TLS listener? check kafka.security_protocol, env {})",
                env_var("kafka.security_protocol")
            );
        }
        why
    }
}

async fn kafka(cfg: &KafkaConfig) -> Attempt {
    let mut client = crate::kafka::base(cfg);
    crate::kafka::apply_overrides(&mut client, cfg);
    // rdkafka derives librdkafka's log level from the `log` crate's; the connection
    // failures (`FAIL`, info level) are wanted here whatever the logging.
    client.set_log_level(rdkafka::config::RDKafkaLogLevel::Info);
    let recorder = Recorder::default();
    let tls = cfg.security_protocol.tls();
    let producer: BaseProducer<Recorder> = match client.create_with_context(recorder.clone()) {
        Ok(producer) => producer,
        Err(e) => {
            return fatal(Store::Kafka, &["kafka.properties"], format!("librdkafka refused the configuration: {e}"))
        }
    };
    let probe = move || {
        let deadline = Instant::now() + ATTEMPT;
        loop {
            let metadata = producer.client().fetch_metadata(None, Duration::from_millis(250));
            if metadata.is_ok_and(|m| !m.brokers().is_empty()) {
                return Ok(Ok(()));
            }
            producer.poll(Duration::from_millis(50)); // serves the error callbacks
            if let Some(fatal) = recorder.fatal() {
                return fatal;
            }
            if Instant::now() >= deadline {
                return Ok(Err(recorder.unreachable(tls)));
            }
        }
    };
    tokio::task::spawn_blocking(probe).await.unwrap_or_else(|e| Ok(Err(format!("probe failed: {e}"))))
}
