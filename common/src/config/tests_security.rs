//! The security settings: librdkafka properties from the environment, secrets from files,
//! TLS settings that disagree, the local stack's key beyond loopback, secrets kept out of
//! errors and `Debug` output.
#![allow(clippy::result_large_err)] // figment's Jail API returns figment::Error

use super::*;
use figment::Jail;

const CERT: &str = include_str!("testdata/cert.pem");
const KEY: &str = include_str!("testdata/key.pem");

fn jailed(f: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        f(jail)
    });
}

fn load_in(jail: &Jail) -> Result<Config, ConfigError> {
    Config::from_figment(Config::figment(jail.directory().join("abtest.toml")))
}

fn path(jail: &Jail, name: &str) -> String {
    jail.directory().join(name).display().to_string()
}

/// The error of loading `vars`, which must fail; checked to name `key` and its variable.
fn refused(vars: &[(&str, &str)], key: &str) -> String {
    let mut message = String::new();
    jailed(|jail| {
        jail.create_file("ca.crt", CERT)?;
        jail.create_file("client.key", KEY)?;
        for (k, v) in vars {
            jail.set_env(k, v.replace("{dir}", &jail.directory().display().to_string()));
        }
        message = load_in(jail).expect_err("must be refused").to_string();
        Ok(())
    });
    assert!(message.contains(&format!("`{key}`")), "{message}");
    assert!(message.contains(&validate::env_var(key)), "{message}");
    message
}

#[test]
fn librdkafka_properties_come_from_the_environment_verbatim() {
    jailed(|jail| {
        jail.create_file(
            "abtest.toml",
            "[kafka.properties]\n\"client.id\" = \"from-toml\"\nsocket.timeout.ms = 7000\n",
        )?;
        jail.set_env("ABTEST_KAFKA__PROPERTIES__SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "https");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__CLIENT_ID", "0123");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__BROKER_VERSION_FALLBACK", "0.10");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__LOG_LEVEL", "6");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__API__VERSION__REQUEST", "true");
        jail.set_env("ABTEST_KAFKA__BROKERS", "k1:9092");
        let config = load_in(jail).expect("loads");
        let props = &config.kafka.properties;
        assert_eq!(props.get("ssl.endpoint.identification.algorithm"), Some("https"));
        assert_eq!(props.get("client.id"), Some("0123"), "env wins over TOML, and stays a string");
        assert_eq!(props.get("broker.version.fallback"), Some("0.10"));
        assert_eq!(props.get("log_level"), Some("6"));
        assert_eq!(props.get("api.version.request"), Some("true"));
        assert_eq!(props.get("socket.timeout.ms"), Some("7000"), "bare dotted TOML keys");
        assert_eq!(config.kafka.brokers.bootstrap(), "k1:9092");
        Ok(())
    });
}

#[test]
fn the_dotted_variable_form_loads_too() {
    // What .env.example used to advertise: figment made a nested map of it and failed.
    jailed(|jail| {
        jail.set_env("ABTEST_KAFKA__PROPERTIES__SOCKET.KEEPALIVE.ENABLE", "true");
        let config = load_in(jail).expect("loads");
        assert_eq!(config.kafka.properties.get("socket.keepalive.enable"), Some("true"));
        Ok(())
    });
}

#[test]
fn properties_with_a_setting_of_their_own_are_refused() {
    let message = refused(&[("ABTEST_KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL")], "kafka.properties");
    assert!(
        message.contains("kafka.security_protocol") && message.contains("ABTEST_KAFKA__SECURITY_PROTOCOL"),
        "{message}"
    );
    refused(&[("ABTEST_KAFKA__PROPERTIES__SASL_PASSWORD", "pw")], "kafka.properties");
}

#[test]
fn secrets_are_read_from_files_without_their_trailing_newline() {
    jailed(|jail| {
        jail.create_file("pg", "pg-secret-1\n")?;
        jail.create_file("ch", "ch-secret-2\r\n")?;
        jail.create_file("kafka", "kafka-secret-3")?;
        jail.create_file("keys", "# rotated 2026-11\nkey-one\n\n  key-two  \n")?;
        jail.set_env("ABTEST_POSTGRES__PASSWORD_FILE", path(jail, "pg"));
        jail.set_env("ABTEST_CLICKHOUSE__PASSWORD_FILE", path(jail, "ch"));
        jail.set_env("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL");
        jail.set_env("ABTEST_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512");
        jail.set_env("ABTEST_KAFKA__SASL_USERNAME", "abtest");
        jail.set_env("ABTEST_KAFKA__SASL_PASSWORD_FILE", path(jail, "kafka"));
        jail.set_env("ABTEST_AUTH__API_KEYS_FILE", path(jail, "keys"));
        jail.set_env("ABTEST_API__LISTEN", "0.0.0.0:9000");
        let config = load_in(jail).expect("loads");
        assert_eq!(config.postgres.password.expose(), "pg-secret-1");
        assert_eq!(config.clickhouse.password.expose(), "ch-secret-2");
        assert_eq!(config.kafka.sasl_password.expose(), "kafka-secret-3");
        assert_eq!(config.auth.api_keys, [Secret::new("key-one"), Secret::new("key-two")]);
        Ok(())
    });
}

#[test]
fn a_missing_secret_or_ca_file_is_named() {
    let message = refused(&[("ABTEST_POSTGRES__PASSWORD_FILE", "/nonexistent/pg")], "postgres.password_file");
    assert!(message.contains("/nonexistent/pg") && message.contains("does not exist"), "{message}");
    refused(&[("ABTEST_AUTH__API_KEYS_FILE", "/nonexistent/keys")], "auth.api_keys_file");
    let ca = [("ABTEST_CLICKHOUSE__URL", "https://ch:8443"), ("ABTEST_CLICKHOUSE__CA_FILE", "/nonexistent/ca.crt")];
    refused(&ca, "clickhouse.ca_file");
    let pg = [("ABTEST_POSTGRES__SSL_MODE", "verify-full"), ("ABTEST_POSTGRES__SSL_ROOT_CERT", "/nonexistent/ca.crt")];
    refused(&pg, "postgres.ssl_root_cert");
    let kafka = [("ABTEST_KAFKA__SECURITY_PROTOCOL", "SSL"), ("ABTEST_KAFKA__SSL_CA_LOCATION", "/nonexistent/ca.crt")];
    refused(&kafka, "kafka.ssl_ca_location");
    // A key where a certificate belongs.
    let wrong = [("ABTEST_POSTGRES__SSL_MODE", "verify-full"), ("ABTEST_POSTGRES__SSL_ROOT_CERT", "{dir}/client.key")];
    assert!(refused(&wrong, "postgres.ssl_root_cert").contains("no PEM certificate"));
}

#[test]
fn a_secret_given_twice_is_refused() {
    jailed(|jail| {
        jail.create_file("pw", "x\n")?;
        jail.set_env("ABTEST_CLICKHOUSE__PASSWORD", "inline");
        jail.set_env("ABTEST_CLICKHOUSE__PASSWORD_FILE", path(jail, "pw"));
        let err = load_in(jail).expect_err("both").to_string();
        assert!(err.contains("`clickhouse.password_file`") && err.contains("not both"), "{err}");
        Ok(())
    });
}

#[test]
fn tls_settings_that_disagree_are_refused() {
    let http_with_ca = [("ABTEST_CLICKHOUSE__URL", "http://ch:8123"), ("ABTEST_CLICKHOUSE__CA_FILE", "{dir}/ca.crt")];
    assert!(refused(&http_with_ca, "clickhouse.ca_file").contains("not https://"));
    let unverified_root =
        [("ABTEST_POSTGRES__SSL_MODE", "require"), ("ABTEST_POSTGRES__SSL_ROOT_CERT", "{dir}/ca.crt")];
    assert!(refused(&unverified_root, "postgres.ssl_root_cert").contains("verify-full"));
    let url_mode = [("ABTEST_POSTGRES__URL", "postgres://u:hunter2@db/x?sslmode=require")];
    let message = refused(&url_mode, "postgres.url");
    assert!(message.contains("sslmode") && !message.contains("hunter2"), "{message}");
    let half_pair =
        [("ABTEST_POSTGRES__SSL_MODE", "verify-full"), ("ABTEST_POSTGRES__SSL_CLIENT_CERT", "{dir}/ca.crt")];
    refused(&half_pair, "postgres.ssl_client_key");
    refused(&[("ABTEST_KAFKA__SSL_CA_LOCATION", "{dir}/ca.crt")], "kafka.ssl_ca_location");
    refused(&[("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")], "kafka.sasl_mechanism");
    refused(
        &[("ABTEST_KAFKA__SECURITY_PROTOCOL", "SSL"), ("ABTEST_KAFKA__SASL_MECHANISM", "PLAIN")],
        "kafka.sasl_mechanism",
    );
    let no_password = [
        ("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
        ("ABTEST_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256"),
        ("ABTEST_KAFKA__SASL_USERNAME", "u"),
    ];
    refused(&no_password, "kafka.sasl_password");
    refused(&[("ABTEST_CLICKHOUSE__URL", "https://user:pw@ch:8443")], "clickhouse.url");
}

#[test]
fn valid_tls_settings_load() {
    jailed(|jail| {
        jail.create_file("ca.crt", CERT)?;
        jail.create_file("client.key", KEY)?;
        jail.set_env("ABTEST_POSTGRES__SSL_MODE", "verify-full");
        jail.set_env("ABTEST_POSTGRES__SSL_ROOT_CERT", path(jail, "ca.crt"));
        jail.set_env("ABTEST_POSTGRES__SSL_CLIENT_CERT", path(jail, "ca.crt"));
        jail.set_env("ABTEST_POSTGRES__SSL_CLIENT_KEY", path(jail, "client.key"));
        jail.set_env("ABTEST_CLICKHOUSE__URL", "https://ch.example.com:8443");
        jail.set_env("ABTEST_CLICKHOUSE__CA_FILE", path(jail, "ca.crt"));
        jail.set_env("ABTEST_KAFKA__SECURITY_PROTOCOL", "sasl_ssl");
        jail.set_env("ABTEST_KAFKA__SASL_MECHANISM", "scram-sha-512");
        jail.set_env("ABTEST_KAFKA__SASL_USERNAME", "abtest");
        jail.set_env("ABTEST_KAFKA__SASL_PASSWORD", "pw");
        jail.set_env("ABTEST_KAFKA__SSL_CA_LOCATION", path(jail, "ca.crt"));
        jail.set_env("ABTEST_KAFKA__SASL_PASSWORD_FILE", "");
        let config = load_in(jail).expect("loads");
        assert_eq!(config.postgres.ssl_mode, PgSslMode::VerifyFull);
        assert_eq!(config.kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(config.kafka.sasl_mechanism, Some(SaslMechanism::ScramSha512));
        assert_eq!(config.kafka.sasl_password_file, None, "an empty value is unset");
        Ok(())
    });
}

#[test]
fn the_local_stack_key_is_refused_beyond_loopback() {
    let message = refused(&[("ABTEST_API__LISTEN", "0.0.0.0:9000")], "auth.api_keys");
    assert!(message.contains("api.listen") && message.contains("ABTEST_AUTH__API_KEYS_FILE"), "{message}");
    refused(&[("ABTEST_INGEST__LISTEN", "10.0.0.5:9001")], "auth.api_keys");
    jailed(|jail| {
        jail.set_env("ABTEST_API__LISTEN", "0.0.0.0:9000");
        jail.set_env("ABTEST_AUTH__API_KEYS", "a-key-of-our-own");
        let config = load_in(jail).expect("an own key, given as one string");
        assert_eq!(config.auth.api_keys, [Secret::new("a-key-of-our-own")]);
        jail.set_env("ABTEST_API__LISTEN", "[::1]:9000");
        jail.set_env("ABTEST_AUTH__API_KEYS", DEV_API_KEY);
        load_in(jail).expect("loopback keeps the local stack's key");
        Ok(())
    });
}

#[test]
fn credentials_are_taken_verbatim_and_malformed_secrets_are_not_quoted() {
    jailed(|jail| {
        jail.set_env("ABTEST_POSTGRES__PASSWORD", "0123");
        jail.set_env("ABTEST_CLICKHOUSE__PASSWORD", "true");
        jail.set_env("ABTEST_CLICKHOUSE__USER", "1e3");
        jail.set_env("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL");
        jail.set_env("ABTEST_KAFKA__SASL_MECHANISM", "PLAIN");
        jail.set_env("ABTEST_KAFKA__SASL_USERNAME", "4711");
        jail.set_env("ABTEST_KAFKA__SASL_PASSWORD", "[\"not\", \"a list\"]");
        let config = load_in(jail).expect("loads");
        assert_eq!(config.postgres.password.expose(), "0123");
        assert_eq!((config.clickhouse.user.as_str(), config.clickhouse.password.expose()), ("1e3", "true"));
        assert_eq!(config.kafka.sasl_username, "4711");
        assert_eq!(config.kafka.sasl_password.expose(), "[\"not\", \"a list\"]");
        Ok(())
    });
    for keys in ["{ key = \"api-hunter2\" }", "987654321"] {
        jailed(|jail| {
            jail.set_env("ABTEST_AUTH__API_KEYS", keys);
            let err = load_in(jail).expect_err("malformed").to_string();
            assert!(!err.contains("hunter2") && !err.contains("987654321"), "{err}");
            assert!(err.to_lowercase().contains("auth.api_keys"), "{err}");
            Ok(())
        });
    }
}

#[test]
fn every_secret_stays_out_of_debug_output() {
    jailed(|jail| {
        jail.create_file("keys", "file-key-secret\n")?;
        jail.set_env("ABTEST_POSTGRES__URL", "postgres://u:pg-url-secret@db/x");
        jail.set_env("ABTEST_POSTGRES__PASSWORD", "pg-password-secret");
        jail.set_env("ABTEST_CLICKHOUSE__PASSWORD", "ch-password-secret");
        jail.set_env("ABTEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL");
        jail.set_env("ABTEST_KAFKA__SASL_MECHANISM", "PLAIN");
        jail.set_env("ABTEST_KAFKA__SASL_USERNAME", "u");
        jail.set_env("ABTEST_KAFKA__SASL_PASSWORD", "sasl-password-secret");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__SASL_OAUTHBEARER_CLIENT_SECRET", "oauth-client-secret");
        jail.set_env("ABTEST_KAFKA__PROPERTIES__SSL_KEY_PASSWORD", "ssl-key-secret");
        jail.set_env("ABTEST_AUTH__API_KEYS_FILE", path(jail, "keys"));
        let shown = format!("{:?} {:#?}", load_in(jail).expect("loads"), load_in(jail).expect("loads"));
        for secret in [
            "pg-url-secret",
            "pg-password",
            "ch-password",
            "sasl-password",
            "oauth-client",
            "ssl-key-secret",
            "file-key",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        Ok(())
    });
}
