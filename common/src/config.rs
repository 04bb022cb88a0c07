//! One typed configuration for the whole system.
//!
//! Layers, later ones win: built-in defaults (the local stack of `scripts/up`), an optional
//! TOML file (`ABTEST_CONFIG_FILE`, default `abtest.toml`), then `ABTEST_*` environment
//! variables nested with `__` (`ABTEST_KAFKA__TOPICS__EVENTS=events`). A `.env` file in the
//! working directory is loaded into the environment first when present, as the previous
//! service did. Every binary reads the same structure and uses the sections it needs, so
//! one `.env` configures the whole stack.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// Environment variable naming the optional TOML file.
pub const CONFIG_FILE_VAR: &str = "ABTEST_CONFIG_FILE";
/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "ABTEST_";

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
    pub log: LogConfig,
}

/// API keys accepted in `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub api_keys: Vec<Secret>,
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
    /// librdkafka `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
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
    /// Extra librdkafka properties (security settings, tuning), applied last.
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub events: String,
    pub exposures: String,
    pub dlq: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// Upper bound of one query or insert.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`; a secret because it holds the password.
    pub url: Secret,
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// A string that never shows up in logs or `Debug` output.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { api_keys: vec![Secret::new("my_secret_api_key_123")] }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            request_timeout: Duration::from_secs(30),
            experiment_cache_ttl: Duration::from_secs(5),
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
            brokers: "127.0.0.1:9092".into(),
            topics: Topics::default(),
            compression: Compression::Lz4,
            linger: Duration::ZERO,
            queue_max_messages: 500_000,
            group_id: "abtest-consumer".into(),
            session_timeout: Duration::from_secs(45),
            topic_partitions: 6,
            topic_replication: 1,
            properties: BTreeMap::new(),
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
            timeout: Duration::from_secs(30),
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://abtest:abtest@127.0.0.1:5433/abtest"),
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid configuration: `{key}` (env {env}): {reason}")]
    Invalid { key: &'static str, env: String, reason: String },
}

impl ConfigError {
    fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        let env = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
        ConfigError::Invalid { key, env, reason: reason.into() }
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

    /// The layered sources, without reading `.env`.
    pub fn figment(file: PathBuf) -> Figment {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed(ENV_PREFIX).ignore(&["CONFIG_FILE"]).split("__"))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot; the error names the key and its variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.api_keys.is_empty() {
            return Err(ConfigError::invalid("auth.api_keys", "at least one API key is required"));
        }
        if self.auth.api_keys.iter().any(|k| k.expose().trim().is_empty()) {
            return Err(ConfigError::invalid("auth.api_keys", "API keys must not be empty"));
        }
        let positive = [
            ("ingest.max_event_bytes", self.ingest.max_event_bytes),
            ("ingest.max_batch_bytes", self.ingest.max_batch_bytes),
            ("ingest.max_batch_events", self.ingest.max_batch_events),
            ("consumer.batch_max_rows", self.consumer.batch_max_rows),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        let durations = [
            ("api.request_timeout", self.api.request_timeout),
            ("ingest.ack_timeout", self.ingest.ack_timeout),
            ("consumer.batch_max_wait", self.consumer.batch_max_wait),
            ("consumer.retry_max_backoff", self.consumer.retry_max_backoff),
            ("kafka.session_timeout", self.kafka.session_timeout),
            ("clickhouse.timeout", self.clickhouse.timeout),
            ("postgres.acquire_timeout", self.postgres.acquire_timeout),
        ];
        for (key, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be a positive duration such as `5s` or `250ms`"));
            }
        }
        if self.ingest.ack_timeout > Duration::from_secs(300) {
            return Err(ConfigError::invalid("ingest.ack_timeout", "must be at most 5m"));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.brokers", "must list at least one host:port"));
        }
        if self.kafka.topic_partitions < 1 {
            return Err(ConfigError::invalid("kafka.topic_partitions", "must be at least 1"));
        }
        if self.kafka.topic_replication < 1 {
            return Err(ConfigError::invalid("kafka.topic_replication", "must be at least 1"));
        }
        if self.kafka.queue_max_messages == 0 {
            return Err(ConfigError::invalid("kafka.queue_max_messages", "must be greater than 0"));
        }
        for (key, topic) in [
            ("kafka.topics.events", &self.kafka.topics.events),
            ("kafka.topics.exposures", &self.kafka.topics.exposures),
            ("kafka.topics.dlq", &self.kafka.topics.dlq),
        ] {
            if !valid_topic(topic) {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{topic}` is not a Kafka topic name ([a-zA-Z0-9._-], 1 to 249 characters)"),
                ));
            }
        }
        if self.kafka.group_id.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.group_id", "must not be empty"));
        }
        if !(self.clickhouse.url.starts_with("http://") || self.clickhouse.url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "clickhouse.url",
                "must be an http:// or https:// URL of the HTTP interface",
            ));
        }
        if !valid_identifier(&self.clickhouse.database) {
            return Err(ConfigError::invalid("clickhouse.database", "must be an identifier ([a-zA-Z_][a-zA-Z0-9_]*)"));
        }
        let pg = self.postgres.url.expose();
        if !(pg.starts_with("postgres://") || pg.starts_with("postgresql://")) {
            return Err(ConfigError::invalid(
                "postgres.url",
                "must start with postgres:// (value not shown: it is a secret)",
            ));
        }
        if self.postgres.max_connections == 0 {
            return Err(ConfigError::invalid("postgres.max_connections", "must be greater than 0"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::invalid(
                "log.level",
                format!("`{}` is not a tracing filter such as `info`", self.log.level),
            ));
        }
        Ok(())
    }
}

fn valid_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// ClickHouse database names are spliced into DDL, so only plain identifiers are allowed.
pub fn valid_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    /// A figment jail without the process environment: a developer's ABTEST_* (scripts/test
    /// exports `.env`) must not leak into these tests.
    fn jailed(f: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
        Jail::expect_with(|jail| {
            jail.clear_env();
            f(jail)
        });
    }

    fn load_in(jail: &Jail) -> Result<Config, ConfigError> {
        Config::from_figment(Config::figment(jail.directory().join("abtest.toml")))
    }

    #[test]
    fn defaults_are_valid_and_match_the_local_stack() {
        let config = Config::default();
        config.validate().expect("defaults validate");
        assert_eq!(config.api.listen.port(), 9000);
        assert_eq!(config.ingest.listen.port(), 9001);
        assert_eq!(config.auth.api_keys, vec![Secret::new("my_secret_api_key_123")]);
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        jailed(|jail| {
            jail.create_file(
                "abtest.toml",
                r#"
                [ingest]
                listen = "0.0.0.0:7001"
                ack_timeout = "2s"
                [kafka]
                brokers = "file:9092"
                "#,
            )?;
            jail.set_env("ABTEST_KAFKA__BROKERS", "env:9092");
            jail.set_env("ABTEST_KAFKA__TOPICS__EVENTS", "events_v2");
            jail.set_env("ABTEST_CONSUMER__BATCH_MAX_WAIT", "250ms");
            jail.set_env("ABTEST_AUTH__API_KEYS", r#"["k1", "k2"]"#);
            jail.set_env("ABTEST_LOG__FORMAT", "json");
            let config = load_in(jail).expect("loads");
            assert_eq!(config.ingest.listen, "0.0.0.0:7001".parse().expect("addr"));
            assert_eq!(config.ingest.ack_timeout, Duration::from_secs(2));
            assert_eq!(config.kafka.brokers, "env:9092");
            assert_eq!(config.kafka.topics.events, "events_v2");
            assert_eq!(config.kafka.topics.exposures, "exposures");
            assert_eq!(config.consumer.batch_max_wait, Duration::from_millis(250));
            assert_eq!(config.auth.api_keys, vec![Secret::new("k1"), Secret::new("k2")]);
            assert_eq!(config.log.format, LogFormat::Json);
            // untouched keys keep their defaults
            assert_eq!(config.api.listen.port(), 9000);
            Ok(())
        });
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_key() {
        jailed(|jail| {
            jail.set_env("ABTEST_INGEST__LISTEN", "not-an-address");
            let err = load_in(jail).expect_err("must fail").to_string().to_lowercase();
            assert!(err.contains("ingest.listen") && err.contains("socket address"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_bad_enum_value_names_the_key() {
        jailed(|jail| {
            jail.set_env("ABTEST_KAFKA__COMPRESSION", "brotli");
            let err = load_in(jail).expect_err("must fail").to_string().to_lowercase();
            assert!(err.contains("kafka.compression") && err.contains("brotli"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_rejected() {
        jailed(|jail| {
            jail.set_env("ABTEST_KAFKA__BROKER", "typo:9092");
            let err = load_in(jail).expect_err("must fail").to_string();
            assert!(err.contains("broker"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn validation_names_the_key_and_its_variable() {
        jailed(|jail| {
            jail.set_env("ABTEST_INGEST__MAX_BATCH_EVENTS", "0");
            let err = load_in(jail).expect_err("must fail").to_string();
            assert!(err.contains("`ingest.max_batch_events`"), "{err}");
            assert!(err.contains("ABTEST_INGEST__MAX_BATCH_EVENTS"), "{err}");
            Ok(())
        });
        jailed(|jail| {
            jail.set_env("ABTEST_KAFKA__TOPICS__DLQ", "bad topic!");
            let err = load_in(jail).expect_err("must fail").to_string();
            assert!(err.contains("kafka.topics.dlq"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        jailed(|jail| {
            jail.set_env("ABTEST_POSTGRES__URL", "postgres://u:hunter2@db/x");
            jail.set_env("ABTEST_AUTH__API_KEYS", r#"["topsecretkey"]"#);
            let config = load_in(jail).expect("loads");
            let shown = format!("{config:?}");
            assert!(!shown.contains("hunter2") && !shown.contains("topsecretkey"), "{shown}");
            Ok(())
        });
    }
}
