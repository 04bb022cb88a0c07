//! Layering, errors that name the key, secrets kept out of output.
#![allow(clippy::result_large_err)] // figment's Jail API returns figment::Error

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
        assert_eq!(config.kafka.brokers.bootstrap(), "env:9092");
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
    // The rollup's future bound K must exceed what ingest lets through.
    jailed(|jail| {
        jail.set_env("ABTEST_INGEST__MAX_FUTURE_SKEW", "3h");
        let err = load_in(jail).expect_err("must fail").to_string();
        assert!(err.contains("`rollup.future_bound`") && err.contains("ABTEST_ROLLUP__FUTURE_BOUND"), "{err}");
        jail.set_env("ABTEST_ROLLUP__FUTURE_BOUND", "4h");
        assert!(load_in(jail).is_ok());
        jail.set_env("ABTEST_ROLLUP__MAX_STEP", "5m");
        let err = load_in(jail).expect_err("must fail").to_string();
        assert!(err.contains("`rollup.max_step`"), "{err}");
        Ok(())
    });
    // min.insync.replicas above the replication factor: no write would ever be acknowledged.
    jailed(|jail| {
        jail.set_env("ABTEST_KAFKA__TOPIC_MIN_INSYNC_REPLICAS", "2");
        let err = load_in(jail).expect_err("must fail").to_string();
        assert!(err.contains("`kafka.topic_min_insync_replicas`"), "{err}");
        jail.set_env("ABTEST_KAFKA__TOPIC_REPLICATION", "3");
        assert_eq!(load_in(jail).expect("valid").kafka.topic_min_insync_replicas, 2);
        Ok(())
    });
    // A cluster name goes into DDL: an identifier; and the rollup runs on one server only.
    jailed(|jail| {
        jail.set_env("ABTEST_CLICKHOUSE__CLUSTER", "a b");
        let err = load_in(jail).expect_err("must fail").to_string();
        assert!(err.contains("`clickhouse.cluster`"), "{err}");
        jail.set_env("ABTEST_CLICKHOUSE__CLUSTER", "abtest");
        let err = load_in(jail).expect_err("must fail").to_string();
        assert!(err.contains("`rollup.enabled`") && err.contains("clickhouse.cluster"), "{err}");
        jail.set_env("ABTEST_ROLLUP__ENABLED", "false");
        assert_eq!(load_in(jail).expect("valid").clickhouse.cluster, "abtest");
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

#[test]
fn brokers_are_a_checked_list_from_text_or_an_array() {
    jailed(|jail| {
        jail.set_env("ABTEST_KAFKA__BROKERS", "k1:9092,k2:9093");
        let config = load_in(jail).expect("loads");
        assert_eq!(config.kafka.brokers.entries(), ["k1:9092", "k2:9093"]);
        jail.create_file("abtest.toml", "[kafka]\nbrokers = [\"f1:9092\", \"f2:9092\"]\n")?;
        jail.set_env("ABTEST_KAFKA__BROKERS", "k1");
        let err = load_in(jail).expect_err("must fail").to_string().to_lowercase();
        assert!(err.contains("kafka.brokers") && err.contains("host:port"), "{err}");
        Ok(())
    });
}
