//! What types alone cannot check, one function per section; errors name the key and its
//! environment variable.

use std::{net::SocketAddr, path::Path, time::Duration};

use super::{
    security::{read_keys, read_secret, unreadable},
    Config, KafkaProperties, Secret, DEV_API_KEY, ENV_PREFIX,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid configuration: `{key}` (env {env}): {reason}")]
    Invalid { key: &'static str, env: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { key, env: env_var(key), reason: reason.into() }
    }
}

/// A figment error with the values of secret settings left out: serde's "invalid type:
/// found string \"...\"" would otherwise quote a malformed password back into the logs.
pub fn redacted(err: figment::Error) -> ConfigError {
    let errors: Vec<figment::Error> = err
        .into_iter()
        .map(|mut e| {
            if is_secret_path(&e.path) {
                use figment::error::{Actual, Kind};
                let hidden = || Actual::Other("a value (not shown: a secret)".into());
                e.kind = match e.kind {
                    Kind::InvalidType(_, expected) => Kind::InvalidType(hidden(), expected),
                    Kind::InvalidValue(_, expected) => Kind::InvalidValue(hidden(), expected),
                    other => other,
                };
            }
            e
        })
        .collect();
    let mut rev = errors.into_iter().rev();
    let last = rev.next().unwrap_or_else(|| figment::Error::from("invalid configuration".to_owned()));
    ConfigError::Parse(Box::new(rev.fold(last, |acc, e| acc.chain(e))))
}

fn is_secret_path(path: &[String]) -> bool {
    let key = path.join(".").to_ascii_lowercase();
    matches!(
        key.as_str(),
        "auth.api_keys" | "postgres.url" | "postgres.password" | "clickhouse.password" | "kafka.sasl_password"
    ) || key.starts_with("auth.api_keys.")
        || (key.starts_with("kafka.properties") && KafkaProperties::is_secret(&key))
}

/// `kafka.topics.dlq` -> `ABTEST_KAFKA__TOPICS__DLQ`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

type Checked = Result<(), ConfigError>;

fn check(ok: bool, key: &'static str, reason: impl Into<String>) -> Checked {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, reason))
    }
}

impl Config {
    pub fn validate(&self) -> Checked {
        self.validate_auth()?;
        self.validate_sizes()?;
        self.validate_durations()?;
        self.validate_kafka()?;
        self.validate_kafka_security()?;
        self.validate_stores()?;
        self.validate_rollup()?;
        self.validate_postgres_security()?;
        self.validate_clickhouse_security()?;
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            format!("`{}` is not a tracing filter such as `info`", self.log.level),
        )
    }

    fn validate_auth(&self) -> Checked {
        let keys = &self.auth.api_keys;
        check(!keys.is_empty(), "auth.api_keys", "at least one API key is required")?;
        check(keys.iter().all(|k| !k.expose().trim().is_empty()), "auth.api_keys", "API keys must not be empty")?;
        if let Some(file) = &self.auth.api_keys_file {
            file_check("auth.api_keys_file", file, unreadable)?;
            check(
                keys == &[Secret::new(DEV_API_KEY)],
                "auth.api_keys_file",
                "set auth.api_keys or auth.api_keys_file, not both",
            )?;
            return Ok(());
        }
        self.refuse_dev_key_beyond_loopback()
    }

    /// The local stack's key is public (it is in the README): a listener beyond loopback
    /// (compose, a pod) must not accept it. The consumer serves no keyed routes.
    pub(super) fn refuse_dev_key_beyond_loopback(&self) -> Checked {
        if !self.auth.api_keys.iter().any(|k| k.expose() == DEV_API_KEY) {
            return Ok(());
        }
        let exposed: Vec<(&str, SocketAddr)> = [("api.listen", self.api.listen), ("ingest.listen", self.ingest.listen)]
            .into_iter()
            .filter(|(_, addr)| !addr.ip().is_loopback())
            .collect();
        match exposed.first() {
            None => Ok(()),
            Some((key, addr)) => Err(ConfigError::invalid(
                "auth.api_keys",
                format!(
                    "the local stack's key `{DEV_API_KEY}` is refused when {key} is {addr} (beyond loopback): \
                     set your own keys in {} or {}",
                    env_var("auth.api_keys"),
                    env_var("auth.api_keys_file")
                ),
            )),
        }
    }

    /// Reads the `*_file` secrets into their settings (their files were checked by
    /// `validate`).
    pub(super) fn read_secret_files(&mut self) -> Checked {
        let read = |key: &'static str, path: &Path| {
            read_secret(path).map(Secret::new).map_err(|e| ConfigError::invalid(key, e))
        };
        if let Some(path) = &self.postgres.password_file {
            self.postgres.password = read("postgres.password_file", path)?;
        }
        if let Some(path) = &self.clickhouse.password_file {
            self.clickhouse.password = read("clickhouse.password_file", path)?;
        }
        if let Some(path) = &self.kafka.sasl_password_file {
            self.kafka.sasl_password = read("kafka.sasl_password_file", path)?;
        }
        if let Some(path) = &self.auth.api_keys_file {
            let keys = read_keys(path).map_err(|e| ConfigError::invalid("auth.api_keys_file", e))?;
            self.auth.api_keys = keys.into_iter().map(Secret::new).collect();
            self.refuse_dev_key_beyond_loopback()?;
        }
        Ok(())
    }

    fn validate_sizes(&self) -> Checked {
        let positive = [
            ("ingest.max_event_bytes", self.ingest.max_event_bytes),
            ("ingest.max_batch_bytes", self.ingest.max_batch_bytes),
            ("ingest.max_batch_events", self.ingest.max_batch_events),
            ("consumer.batch_max_rows", self.consumer.batch_max_rows),
            ("kafka.queue_max_messages", self.kafka.queue_max_messages as usize),
            ("postgres.max_connections", self.postgres.max_connections as usize),
        ];
        for (key, value) in positive {
            check(value > 0, key, "must be greater than 0")?;
        }
        Ok(())
    }

    fn validate_durations(&self) -> Checked {
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
            check(!value.is_zero(), key, "must be a positive duration such as `5s` or `250ms`")?;
        }
        check(self.ingest.ack_timeout <= Duration::from_secs(300), "ingest.ack_timeout", "must be at most 5m")
    }

    fn validate_kafka(&self) -> Checked {
        let kafka = &self.kafka;
        check(kafka.topic_partitions >= 1, "kafka.topic_partitions", "must be at least 1")?;
        check(kafka.topic_replication >= 1, "kafka.topic_replication", "must be at least 1")?;
        check(
            (0..=kafka.topic_replication).contains(&kafka.topic_min_insync_replicas),
            "kafka.topic_min_insync_replicas",
            "must be 0 (the brokers' default) or at most kafka.topic_replication (else no write is ever acknowledged)",
        )?;
        for (key, topic) in [
            ("kafka.topics.events", &kafka.topics.events),
            ("kafka.topics.exposures", &kafka.topics.exposures),
            ("kafka.topics.dlq", &kafka.topics.dlq),
        ] {
            check(
                valid_topic(topic),
                key,
                format!("`{topic}` is not a Kafka topic name ([a-zA-Z0-9._-], 1 to 249 characters)"),
            )?;
        }
        check(!kafka.group_id.trim().is_empty(), "kafka.group_id", "must not be empty")
    }

    fn validate_stores(&self) -> Checked {
        let url = &self.clickhouse.url;
        check(
            url.starts_with("http://") || url.starts_with("https://"),
            "clickhouse.url",
            "must be an http:// or https:// URL of the HTTP interface",
        )?;
        check(
            valid_identifier(&self.clickhouse.database),
            "clickhouse.database",
            "must be an identifier ([a-zA-Z_][a-zA-Z0-9_]*)",
        )?;
        let cluster = &self.clickhouse.cluster;
        check(
            cluster.is_empty() || valid_identifier(cluster),
            "clickhouse.cluster",
            "must be empty (one server) or an identifier ([a-zA-Z_][a-zA-Z0-9_]*)",
        )?;
        check(
            cluster.is_empty() || !self.rollup.enabled,
            "rollup.enabled",
            "must be false with clickhouse.cluster: the results rollup runs on one server only (README \"Scaling out\")",
        )?;
        let pg = self.postgres.url.expose();
        check(
            pg.starts_with("postgres://") || pg.starts_with("postgresql://"),
            "postgres.url",
            "must start with postgres:// (value not shown: it is a secret)",
        )
    }
}

impl Config {
    fn validate_rollup(&self) -> Checked {
        let r = &self.rollup;
        for (key, value) in [
            ("rollup.interval", r.interval),
            ("rollup.max_step", r.max_step),
            ("rollup.compact_interval", r.compact_interval),
        ] {
            check(value >= Duration::from_secs(1), key, "must be at least 1s")?;
        }
        check(r.max_step >= r.interval, "rollup.max_step", "must be at least rollup.interval")?;
        check(
            r.future_bound > self.ingest.max_future_skew,
            "rollup.future_bound",
            "must be greater than ingest.max_future_skew (the rollup relies on it)",
        )
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

/// Fails with `key` named when `path` does not pass `problem` (one of `security`'s checks).
pub(super) fn file_check(key: &'static str, path: &Path, problem: fn(&Path) -> Option<String>) -> Checked {
    match problem(path) {
        Some(why) => Err(ConfigError::invalid(key, why)),
        None => Ok(()),
    }
}
