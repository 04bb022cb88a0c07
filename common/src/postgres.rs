//! The Postgres pool and migrations.

use std::str::FromStr;

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode as Mode},
    PgPool,
};

use crate::config::{PgSslMode, PostgresConfig};

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A lazily connecting pool: the API starts (and serves what it can) while Postgres is
/// down, and recovers by itself when it comes back.
pub fn pool(cfg: &PostgresConfig) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .connect_lazy_with(options(cfg)?))
}

/// The URL, then the password and TLS settings of `cfg` over it (validation refused TLS
/// parameters in the URL, so these are the only TLS settings).
///
/// sqlx (0.8.6, `tls-rustls-ring-webpki`) trusts the Mozilla roots plus `ssl_root_cert`,
/// and its `verify-ca` checks the host name too (sqlx issue #3793): use a certificate
/// that names the host, or `verify-full` anyway.
pub fn options(cfg: &PostgresConfig) -> Result<PgConnectOptions, sqlx::Error> {
    let mode = match cfg.ssl_mode {
        PgSslMode::Disable => Mode::Disable,
        PgSslMode::Prefer => Mode::Prefer,
        PgSslMode::Require => Mode::Require,
        PgSslMode::VerifyCa => Mode::VerifyCa,
        PgSslMode::VerifyFull => Mode::VerifyFull,
    };
    let mut options = PgConnectOptions::from_str(cfg.url.expose())?.ssl_mode(mode);
    // Filled from postgres.password_file by Config::load when that is set.
    if !cfg.password.expose().is_empty() {
        options = options.password(cfg.password.expose());
    }
    if let Some(root) = &cfg.ssl_root_cert {
        options = options.ssl_root_cert(root);
    }
    if let (Some(cert), Some(key)) = (&cfg.ssl_client_cert, &cfg.ssl_client_key) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    Ok(options)
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.is_ok()
}
