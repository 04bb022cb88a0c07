//! Checks of the TLS, SASL and secret settings: files exist and hold what they should, and
//! settings that only make sense together are set together (a CA file with a plain-text
//! URL is a mistake that would otherwise go unnoticed until traffic flows in clear).

use std::path::PathBuf;

use super::{
    security::{not_certificates, not_private_key, unreadable},
    validate::{env_var, file_check, ConfigError},
    Config, PgSslMode, Secret,
};

type Checked = Result<(), ConfigError>;

fn invalid(key: &'static str, reason: impl Into<String>) -> Checked {
    Err(ConfigError::invalid(key, reason))
}

/// librdkafka properties that have a setting of their own: they are validated (files
/// exist, protocol and mechanism agree) and named in startup errors, which a property
/// would bypass, so setting them twice is refused rather than one silently winning.
const TYPED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.brokers"),
    ("metadata.broker.list", "kafka.brokers"),
    ("group.id", "kafka.group_id"),
    ("security.protocol", "kafka.security_protocol"),
    ("sasl.mechanism", "kafka.sasl_mechanism"),
    ("sasl.mechanisms", "kafka.sasl_mechanism"),
    ("sasl.username", "kafka.sasl_username"),
    ("sasl.password", "kafka.sasl_password"),
    ("ssl.ca.location", "kafka.ssl_ca_location"),
];

/// A secret given both inline and as a file.
fn one_of(key: &'static str, value: &Secret, file: &Option<PathBuf>, file_key: &'static str) -> Checked {
    if let Some(path) = file {
        file_check(file_key, path, unreadable)?;
        if !value.expose().is_empty() {
            return invalid(file_key, format!("set {key} or {file_key}, not both"));
        }
    }
    Ok(())
}

/// A client certificate and its key come in pairs, and hold what they should.
fn cert_pair(cert: (&'static str, &Option<PathBuf>), key: (&'static str, &Option<PathBuf>)) -> Checked {
    match (cert.1, key.1) {
        (Some(c), Some(k)) => {
            file_check(cert.0, c, not_certificates)?;
            file_check(key.0, k, not_private_key)
        }
        (Some(_), None) => invalid(key.0, format!("{} is set, so its private key is needed too", cert.0)),
        (None, Some(_)) => invalid(cert.0, format!("{} is set, so its certificate is needed too", key.0)),
        (None, None) => Ok(()),
    }
}

impl Config {
    pub(super) fn validate_kafka_security(&self) -> Checked {
        let kafka = &self.kafka;
        for (name, _) in kafka.properties.iter() {
            if let Some((_, key)) = TYPED_PROPERTIES.iter().find(|(p, _)| *p == name) {
                let reason = format!("`{name}` has a setting of its own: use {key} ({})", env_var(key));
                return invalid("kafka.properties", reason);
            }
        }
        let protocol = kafka.security_protocol;
        let shown = protocol.as_librdkafka();
        if let Some(ca) = &kafka.ssl_ca_location {
            if !protocol.tls() {
                return invalid(
                    "kafka.ssl_ca_location",
                    format!("is set but kafka.security_protocol is {shown}: use SSL or SASL_SSL"),
                );
            }
            if !ca.is_dir() {
                file_check("kafka.ssl_ca_location", ca, not_certificates)?;
            }
        }
        if !protocol.sasl() {
            let sasl_set = [
                ("kafka.sasl_mechanism", kafka.sasl_mechanism.is_some()),
                ("kafka.sasl_username", !kafka.sasl_username.is_empty()),
                ("kafka.sasl_password", !kafka.sasl_password.expose().is_empty()),
                ("kafka.sasl_password_file", kafka.sasl_password_file.is_some()),
            ];
            if let Some((key, _)) = sasl_set.iter().find(|(_, set)| *set) {
                return invalid(
                    key,
                    format!("is set but kafka.security_protocol is {shown}: use SASL_SSL (or SASL_PLAINTEXT)"),
                );
            }
            return Ok(());
        }
        self.validate_sasl()
    }

    fn validate_sasl(&self) -> Checked {
        let kafka = &self.kafka;
        let shown = kafka.security_protocol.as_librdkafka();
        let Some(mechanism) = kafka.sasl_mechanism else {
            return invalid(
                "kafka.sasl_mechanism",
                format!("is required with {shown}: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
            );
        };
        one_of("kafka.sasl_password", &kafka.sasl_password, &kafka.sasl_password_file, "kafka.sasl_password_file")?;
        let has_password = !kafka.sasl_password.expose().is_empty() || kafka.sasl_password_file.is_some();
        if !mechanism.uses_password() {
            if !kafka.sasl_username.is_empty() || has_password {
                return invalid(
                    "kafka.sasl_username",
                    "OAUTHBEARER takes no username or password: configure its token with kafka.properties \
                     (sasl.oauthbearer.method=oidc, sasl.oauthbearer.client.id, ...)",
                );
            }
            // We install no token callback, so librdkafka must fetch tokens itself (OIDC) or
            // make unsigned ones (tests only); without either it never connects, silently.
            let props = &kafka.properties;
            let oidc = props.get("sasl.oauthbearer.method").is_some_and(|m| m.eq_ignore_ascii_case("oidc"));
            let unsecured = props.get("enable.sasl.oauthbearer.unsecure.jwt") == Some("true");
            if !oidc && !unsecured {
                return invalid(
                    "kafka.sasl_mechanism",
                    "OAUTHBEARER needs a token source: kafka.properties sasl.oauthbearer.method=oidc with \
                     sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and \
                     sasl.oauthbearer.token.endpoint.url (ABTEST_KAFKA__PROPERTIES__SASL_OAUTHBEARER_METHOD=oidc, ...)",
                );
            }
            return Ok(());
        }
        if kafka.sasl_username.trim().is_empty() {
            return invalid("kafka.sasl_username", format!("is required with {mechanism}"));
        }
        if !has_password {
            return invalid(
                "kafka.sasl_password",
                format!(
                    "is required with {mechanism} (or kafka.sasl_password_file, env {})",
                    env_var("kafka.sasl_password_file")
                ),
            );
        }
        Ok(())
    }

    pub(super) fn validate_postgres_security(&self) -> Checked {
        let pg = &self.postgres;
        if let Some(param) = tls_url_parameter(pg.url.expose()) {
            let reason = format!(
                "TLS is configured by postgres.ssl_mode, ssl_root_cert, ssl_client_cert and ssl_client_key \
                 (ABTEST_POSTGRES__SSL_MODE, ...), not by the URL: remove `{param}` from the URL \
                 (value not shown: it is a secret)"
            );
            return invalid("postgres.url", reason);
        }
        one_of("postgres.password", &pg.password, &pg.password_file, "postgres.password_file")?;
        let mode = pg.ssl_mode.as_str();
        if let Some(root) = &pg.ssl_root_cert {
            if !pg.ssl_mode.verifies() {
                let reason = format!(
                    "only verify-ca and verify-full check the server's certificate, and postgres.ssl_mode is {mode}: \
                     set {}=verify-full",
                    env_var("postgres.ssl_mode")
                );
                return invalid("postgres.ssl_root_cert", reason);
            }
            file_check("postgres.ssl_root_cert", root, not_certificates)?;
        }
        if pg.ssl_mode == PgSslMode::Disable && pg.ssl_client_cert.is_some() {
            return invalid("postgres.ssl_client_cert", "is set but postgres.ssl_mode is disable");
        }
        cert_pair(("postgres.ssl_client_cert", &pg.ssl_client_cert), ("postgres.ssl_client_key", &pg.ssl_client_key))
    }

    pub(super) fn validate_clickhouse_security(&self) -> Checked {
        let ch = &self.clickhouse;
        let authority =
            ch.url.split_once("://").map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or("")).unwrap_or("");
        if authority.contains('@') {
            return invalid(
                "clickhouse.url",
                "must not hold credentials: use clickhouse.user and clickhouse.password (value not shown)",
            );
        }
        one_of("clickhouse.password", &ch.password, &ch.password_file, "clickhouse.password_file")?;
        let https = ch.url.starts_with("https://");
        let tls_keys = [
            ("clickhouse.ca_file", &ch.ca_file),
            ("clickhouse.client_cert", &ch.client_cert),
            ("clickhouse.client_key", &ch.client_key),
        ];
        if let Some((key, _)) = tls_keys.iter().find(|(_, v)| v.is_some()).filter(|_| !https) {
            return invalid(key, format!("is set but clickhouse.url `{}` is not https://: use https://", ch.url));
        }
        if let Some(ca) = &ch.ca_file {
            file_check("clickhouse.ca_file", ca, not_certificates)?;
        }
        cert_pair(("clickhouse.client_cert", &ch.client_cert), ("clickhouse.client_key", &ch.client_key))
    }
}

/// The first TLS parameter of a libpq-style URL (`?sslmode=require`), if any.
fn tls_url_parameter(url: &str) -> Option<String> {
    const NAMES: &[&str] =
        &["sslmode", "sslrootcert", "sslcert", "sslkey", "ssl-mode", "ssl-root-cert", "ssl-ca", "ssl-cert", "ssl-key"];
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .map(|name| name.to_ascii_lowercase())
        .find(|name| NAMES.contains(&name.as_str()))
}
