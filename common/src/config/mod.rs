//! One typed configuration for the whole system.
//!
//! Layers, later ones win: built-in defaults (the local stack of `scripts/up`), an optional
//! TOML file (`ABTEST_CONFIG_FILE`, default `abtest.toml`), then `ABTEST_*` environment
//! variables nested with `__` (`ABTEST_KAFKA__TOPICS__EVENTS=events`). A `.env` file in the
//! working directory is loaded into the environment first when present, as the previous
//! service did. Every binary reads the same structure and uses the sections it needs, so
//! one `.env` configures the whole stack.

pub mod properties;
mod rollup;
pub mod security;
mod types;
mod validate;
mod validate_tls;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

pub use properties::KafkaProperties;
pub use rollup::RollupConfig;
pub use security::{PgSslMode, SaslMechanism, SecurityProtocol};
pub use types::{Brokers, Compression, LogFormat, Secret};
pub use validate::{env_var, ConfigError};

/// Environment variable naming the optional TOML file.
pub const CONFIG_FILE_VAR: &str = "ABTEST_CONFIG_FILE";
/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "ABTEST_";
/// Credentials taken from their variables as written: figment's environment provider
/// parses values, so a password `0123` became the number 123 and was refused (quoting
/// it in the error), and `true` a boolean.
const VERBATIM: &[&str] =
    &["postgres.password", "clickhouse.user", "clickhouse.password", "kafka.sasl_username", "kafka.sasl_password"];

/// The local stack's API key (the previous service's walkthrough uses it). Refused when the
/// api or ingest listens beyond loopback (see `validate`).
pub const DEV_API_KEY: &str = "my_secret_api_key_123";

/// Where configuration comes from, for every binary's `--help`.
pub const HELP: &str = "Configuration (later layers win):
  1. built-in defaults: the local stack of scripts/up
  2. abtest.toml in the working directory, or the file named by ABTEST_CONFIG_FILE
  3. ABTEST_* environment variables, nested with __ (ABTEST_KAFKA__BROKERS=k1:9092,k2:9092);
     librdkafka properties as ABTEST_KAFKA__PROPERTIES__<NAME> with _ for . in the name
A .env file in the working directory is loaded into the environment first.
Secrets can come from files: ABTEST_POSTGRES__PASSWORD_FILE, ABTEST_CLICKHOUSE__PASSWORD_FILE,
ABTEST_KAFKA__SASL_PASSWORD_FILE, ABTEST_AUTH__API_KEYS_FILE (see the README's Production section).
Every key with its variable and default: .env.example, and the README's Configuration section.
Invalid values stop the binary at startup, naming the key and its variable.";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub ingest: IngestConfig,
    pub consumer: ConsumerConfig,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub postgres: PostgresConfig,
    pub rollup: RollupConfig,
    pub log: LogConfig,
}

/// API keys accepted in `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A TOML array (`["k1", "k2"]`) or one key.
    #[serde(deserialize_with = "types::one_or_many")]
    pub api_keys: Vec<Secret>,
    /// A file of keys, one per line, used instead of `api_keys`.
    #[serde(with = "security::optional_path")]
    pub api_keys_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Upper bound for one request end to end (database and ClickHouse calls included).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long experiment definitions are cached in memory for assignment.
    #[serde(with = "humantime_serde")]
    pub experiment_cache_ttl: Duration,
    /// Most committed assignments kept in memory (repeat requests skip Postgres); about
    /// 100 bytes each.
    pub assignment_cache_entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub listen: SocketAddr,
    /// Largest body of `POST /events`, compressed or not, in bytes.
    pub max_event_bytes: usize,
    /// Largest body of `POST /events/batch`, compressed or not, in bytes.
    pub max_batch_bytes: usize,
    /// Most events in one `POST /events/batch`.
    pub max_batch_events: usize,
    /// How long a request waits for Kafka to acknowledge its events before answering 503.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Largest accepted clock skew of a client timestamp into the future.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Where the consumer serves `/livez`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// A batch is inserted when it holds this many rows ...
    pub batch_max_rows: usize,
    /// ... or when its oldest row has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// Ceiling of the exponential backoff between failed ClickHouse inserts.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// librdkafka `bootstrap.servers`.
    pub brokers: Brokers,
    pub topics: Topics,
    /// Producer compression codec.
    pub compression: Compression,
    /// How long the producer waits to fill a batch (`linger.ms`).
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Most messages buffered in the producer; beyond it requests get 503 (backpressure).
    pub queue_max_messages: u32,
    /// Consumer group of the `consumer` binary.
    pub group_id: String,
    /// Consumer group session timeout (`session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Partitions of `events` and `exposures` when `api migrate` creates them.
    pub topic_partitions: i32,
    /// Replication factor of the topics `api migrate` creates.
    pub topic_replication: i32,
    /// `min.insync.replicas` of the topics `api migrate` creates: with the producer's
    /// `acks=all`, a message is acknowledged (and ingest answers 2xx) only once this many
    /// replicas hold it. 0: the brokers' default.
    pub topic_min_insync_replicas: i32,
    /// `security.protocol`: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: SecurityProtocol,
    /// `sasl.mechanism` (with the SASL_ protocols): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    /// or OAUTHBEARER.
    #[serde(with = "security::optional")]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// `sasl.username` (PLAIN and SCRAM).
    pub sasl_username: String,
    /// `sasl.password` (PLAIN and SCRAM), or read from `sasl_password_file`.
    pub sasl_password: Secret,
    #[serde(with = "security::optional_path")]
    pub sasl_password_file: Option<PathBuf>,
    /// `ssl.ca.location`: CA certificates (PEM file or directory) that sign the brokers'
    /// certificates; unset, the system's CA store.
    #[serde(with = "security::optional_path")]
    pub ssl_ca_location: Option<PathBuf>,
    /// Any other librdkafka property (client certificates, OAUTHBEARER's OIDC settings,
    /// tuning), applied last.
    pub properties: KafkaProperties,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub events: String,
    pub exposures: String,
    pub dlq: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// A file holding the password, instead of `password`.
    #[serde(with = "security::optional_path")]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for an `https://` URL instead of the public roots.
    #[serde(with = "security::optional_path")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key (PEM), for servers that require one.
    #[serde(with = "security::optional_path")]
    pub client_cert: Option<PathBuf>,
    #[serde(with = "security::optional_path")]
    pub client_key: Option<PathBuf>,
    /// Upper bound of one query or insert.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A ClickHouse cluster (a name of the servers' `remote_servers`): the tables are
    /// created `ON CLUSTER` as replicated tables per shard behind `Distributed` tables
    /// sharded by user (`clickhouse/cluster/`), and inserts return once every shard holds
    /// its rows. Empty (the default): one server, `clickhouse/*.sql`.
    pub cluster: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`; a secret because it may hold the
    /// password. TLS is set by the keys below, not by URL parameters.
    pub url: Secret,
    /// The password, instead of the URL's.
    pub password: Secret,
    /// A file holding the password, instead of the URL's.
    #[serde(with = "security::optional_path")]
    pub password_file: Option<PathBuf>,
    /// disable, prefer (the default: TLS when offered, unverified), require, verify-ca or
    /// verify-full.
    pub ssl_mode: PgSslMode,
    /// CA certificates (PEM) that sign the server's certificate (verify-ca, verify-full).
    #[serde(with = "security::optional_path")]
    pub ssl_root_cert: Option<PathBuf>,
    /// A client certificate and its key (PEM), for `cert` authentication.
    #[serde(with = "security::optional_path")]
    pub ssl_client_cert: Option<PathBuf>,
    #[serde(with = "security::optional_path")]
    pub ssl_client_key: Option<PathBuf>,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before answering 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,ingest=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { api_keys: vec![Secret::new(DEV_API_KEY)], api_keys_file: None }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            request_timeout: Duration::from_secs(30),
            experiment_cache_ttl: Duration::from_secs(5),
            assignment_cache_entries: 200_000,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            max_event_bytes: 1 << 20,
            max_batch_bytes: 20 << 20,
            max_batch_events: 10_000,
            ack_timeout: Duration::from_secs(5),
            max_future_skew: Duration::from_secs(3600),
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9002)),
            batch_max_rows: 50_000,
            batch_max_wait: Duration::from_secs(1),
            retry_max_backoff: Duration::from_secs(10),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".parse().unwrap_or_else(|_| unreachable!()),
            topics: Topics::default(),
            compression: Compression::Lz4,
            linger: Duration::ZERO,
            queue_max_messages: 500_000,
            group_id: "abtest-consumer".into(),
            session_timeout: Duration::from_secs(45),
            topic_partitions: 6,
            topic_replication: 1,
            topic_min_insync_replicas: 0,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: String::new(),
            sasl_password: Secret::new(""),
            sasl_password_file: None,
            ssl_ca_location: None,
            properties: KafkaProperties::default(),
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self { events: "events".into(), exposures: "exposures".into(), dlq: "events_dlq".into() }
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "abtest".into(),
            user: "default".into(),
            password: Secret::new(""),
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            timeout: Duration::from_secs(30),
            cluster: String::new(),
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://abtest:abtest@127.0.0.1:5433/abtest"),
            password: Secret::new(""),
            password_file: None,
            ssl_mode: PgSslMode::Prefer,
            ssl_root_cert: None,
            ssl_client_cert: None,
            ssl_client_key: None,
            max_connections: 32,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

impl Config {
    /// Loads `.env` (when present), then the layers described in the module docs, and
    /// validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported by the variables it lacks.
        let _ = dotenvy::dotenv();
        let file = std::env::var_os(CONFIG_FILE_VAR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("abtest.toml"));
        Self::from_figment(Self::figment(file))
    }

    /// The layered sources, without reading `.env`. The `ABTEST_KAFKA__PROPERTIES__*`
    /// variables (see [`properties`]) and the credentials of [`VERBATIM`] are read
    /// verbatim by layers of their own.
    pub fn figment(file: PathBuf) -> Figment {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .ignore(&["CONFIG_FILE"])
                    .split("__")
                    .filter(|key| !properties::is_property_variable(key.as_str()) && !VERBATIM.contains(&key.as_str())),
            )
            .merge(properties::from_env());
        VERBATIM.iter().fold(figment, |figment, key| match std::env::var(env_var(key)) {
            Ok(value) => figment.merge(Serialized::default(key, value)),
            Err(_) => figment,
        })
    }

    /// Extracts and validates the configuration, then reads the secrets kept in files
    /// (`*_file` keys) into their settings, so the rest of the code sees one value.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(validate::redacted)?;
        config.validate()?;
        config.read_secret_files()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_security;
