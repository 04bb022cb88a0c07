//! What types alone cannot check, one function per section; errors name the key and its
//! environment variable.

use std::time::Duration;

use super::{Config, ENV_PREFIX};

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
        self.validate_stores()?;
        self.validate_rollup()?;
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            format!("`{}` is not a tracing filter such as `info`", self.log.level),
        )
    }

    fn validate_auth(&self) -> Checked {
        let keys = &self.auth.api_keys;
        check(!keys.is_empty(), "auth.api_keys", "at least one API key is required")?;
        check(keys.iter().all(|k| !k.expose().trim().is_empty()), "auth.api_keys", "API keys must not be empty")
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
