//! Value types of the security settings (TLS modes, Kafka's security protocol and SASL
//! mechanism), optional values written as an empty string, and secrets read from files.

use std::{fmt, path::Path, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// `postgres.ssl_mode`, libpq's `sslmode` values (`allow` is left out: it only falls back
/// to TLS when plain TCP is refused, which no deployment wants on purpose).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PgSslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked.
    Prefer,
    /// TLS or nothing; the certificate is not checked.
    Require,
    /// TLS, and the server's certificate must be signed by a trusted CA.
    VerifyCa,
    /// `verify-ca`, and the certificate must name the host of `postgres.url`.
    VerifyFull,
}

impl PgSslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PgSslMode::Disable => "disable",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }

    /// Does this mode check the server's certificate (and so use `ssl_root_cert`)?
    pub fn verifies(self) -> bool {
        matches!(self, PgSslMode::VerifyCa | PgSslMode::VerifyFull)
    }
}

/// `kafka.security_protocol`, librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    #[serde(alias = "plaintext")]
    Plaintext,
    #[serde(alias = "ssl")]
    Ssl,
    #[serde(alias = "sasl_plaintext")]
    SaslPlaintext,
    #[serde(alias = "sasl_ssl")]
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// `kafka.sasl_mechanism`, librdkafka's `sasl.mechanism` (GSSAPI/Kerberos is not built in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 4] =
        [SaslMechanism::Plain, SaslMechanism::ScramSha256, SaslMechanism::ScramSha512, SaslMechanism::OAuthBearer];

    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// PLAIN and SCRAM authenticate with `sasl_username` and a password; OAUTHBEARER with
    /// a token (librdkafka's `sasl.oauthbearer.*` properties).
    pub fn uses_password(self) -> bool {
        !matches!(self, SaslMechanism::OAuthBearer)
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_librdkafka())
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|m| m.as_librdkafka().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|m| m.as_librdkafka()).collect();
            format!("`{s}` is not one of {}", names.join(", "))
        })
    }
}

impl Serialize for SaslMechanism {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_librdkafka())
    }
}

/// Optional settings (file paths, the SASL mechanism): absent, or set to an empty string
/// (`ABTEST_POSTGRES__SSL_ROOT_CERT=` in an env file, `${VAR:-}` in compose), mean unset.
pub mod optional {
    use super::*;

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: fmt::Display,
    {
        match Option::<String>::deserialize(d)? {
            Some(text) if !text.trim().is_empty() => text.trim().parse().map(Some).map_err(de::Error::custom),
            _ => Ok(None),
        }
    }

    pub fn serialize<S: Serializer, T: fmt::Display>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(&v.to_string()),
            None => s.serialize_none(),
        }
    }
}

/// [`optional`] for paths (`PathBuf` has no `Display`).
pub mod optional_path {
    use std::path::PathBuf;

    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        super::optional::deserialize(d)
    }

    pub fn serialize<S: Serializer>(value: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }
}

/// Is `path` a readable file? (`None` when it is.)
pub fn unreadable(path: &Path) -> Option<String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!("file `{shown}` does not exist")),
        Err(e) => Some(format!("file `{shown}` cannot be read: {e}")),
        Ok(meta) if !meta.is_file() => Some(format!("`{shown}` is not a file")),
        Ok(_) => std::fs::File::open(path).err().map(|e| format!("file `{shown}` cannot be read: {e}")),
    }
}

/// Why a PEM file holds no certificate (`None` when it holds at least one).
pub fn not_certificates(path: &Path) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    if let Some(why) = unreadable(path) {
        return Some(why);
    }
    match CertificateDer::pem_file_iter(path).map(|certs| certs.collect::<Result<Vec<_>, _>>()) {
        Ok(Ok(certs)) if !certs.is_empty() => None,
        Ok(Ok(_)) => Some(format!("file `{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())),
        Ok(Err(e)) | Err(e) => Some(format!("file `{}` is not valid PEM: {e}", path.display())),
    }
}

/// Why a PEM file holds no private key (`None` when it does).
pub fn not_private_key(path: &Path) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
    if let Some(why) = unreadable(path) {
        return Some(why);
    }
    PrivateKeyDer::from_pem_file(path)
        .err()
        .map(|e| format!("file `{}` holds no PEM private key (PKCS#8, SEC1 or RSA): {e}", path.display()))
}

/// A secret's value from its file: the whole content without its trailing newline (the
/// convention of Docker and Kubernetes secrets and of the `*_FILE` variables of the
/// official database images).
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("file `{}` cannot be read: {e}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("file `{}` is empty", path.display()));
    }
    Ok(value.to_owned())
}

/// API keys from their file: one per line; blank lines and `#` comments are skipped.
pub fn read_keys(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("file `{}` cannot be read: {e}", path.display()))?;
    let keys: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect();
    if keys.is_empty() {
        return Err(format!("file `{}` holds no key (one per line)", path.display()));
    }
    Ok(keys)
}
