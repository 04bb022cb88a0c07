//! rustls pieces shared by the HTTPS client of ClickHouse and the startup checks: trust
//! stores from PEM files, client certificates, and finding the TLS cause of an error.
//!
//! Postgres goes through sqlx's own rustls (same ring provider, webpki roots), Kafka
//! through librdkafka's OpenSSL; only ClickHouse needs a `ClientConfig` of ours, because
//! the `clickhouse` crate has no setting for a CA file.

use std::{error::Error as StdError, path::Path, sync::Arc};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, RootCertStore,
};

/// What went wrong building a TLS client, with the setting to look at.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct SetupError {
    pub key: &'static str,
    pub reason: String,
}

fn setup(key: &'static str, reason: impl ToString) -> SetupError {
    SetupError { key, reason: reason.to_string() }
}

/// Exactly the CA certificates of `ca_file` (the behaviour of `curl --cacert` and of
/// libpq's `sslrootcert`: a private CA is trusted instead of the public ones, not beside
/// them), or the Mozilla roots of `webpki-roots` when no file is given.
pub fn roots(key: &'static str, ca_file: Option<&Path>) -> Result<RootCertStore, SetupError> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| setup(key, format!("`{}`: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| setup(key, format!("`{}`: {e}", path.display())))?;
        store.add(cert).map_err(|e| setup(key, format!("`{}`: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(setup(key, format!("`{}` holds no certificate", path.display())));
    }
    Ok(store)
}

/// A file and the setting that names it (for errors).
pub type Named<'a> = (&'static str, &'a Path);

/// A client configuration on the ring provider (the one sqlx uses: one crypto library for
/// all rustls clients), TLS 1.2 and 1.3, with an optional client certificate.
pub fn client_config(roots: RootCertStore, client: Option<(Named<'_>, Named<'_>)>) -> Result<ClientConfig, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup("tls", e))?
        .with_root_certificates(roots);
    let Some(((cert_key, cert), (key_key, key))) = client else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| setup(cert_key, format!("`{}`: {e}", cert.display())))?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| setup(key_key, format!("`{}`: {e}", key.display())))?;
    builder.with_client_auth_cert(chain, private).map_err(|e| setup(key_key, e))
}

/// The rustls error behind `err`, if any. `std::io::Error` hides the error it wraps from
/// `source()` (it forwards to that error's own source), so each I/O error is opened with
/// `get_ref` as well.
pub fn rustls_cause<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(tls) = rustls_cause(inner) {
                return Some(tls);
            }
        }
        next = e.source();
    }
    None
}

/// The messages of `err` and its causes, `: `-joined, I/O wrappers opened (what a log line
/// needs to show "invalid peer certificate: UnknownIssuer" rather than "client error").
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn StdError + 'static))
        });
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_cause_is_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        assert!(matches!(
            rustls_cause(&outer),
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        ));
        assert!(chain(&outer).contains("UnknownIssuer"), "{}", chain(&outer));
        assert!(rustls_cause(&std::io::Error::other("refused")).is_none());
    }
}
