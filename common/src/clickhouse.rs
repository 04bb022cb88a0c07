//! The ClickHouse client and our DDL.
//!
//! The client speaks plain `RowBinary` over HTTP with validation and compression off: our
//! local ClickHouse (18.16) lacks `RowBinaryWithNamesAndTypes`, and with LZ4 responses its
//! fetches come back empty (see `shared/ENVIRONMENT.md`). Row types are checked against the
//! schema by the integration tests instead.

use clickhouse::{Client, Compression};

use crate::config::ClickHouseConfig;

/// The files of `clickhouse/`, in the order they are applied. Each statement must be
/// idempotent (`IF NOT EXISTS`), so applying them again is harmless.
pub const DDL: &[(&str, &str)] = &[
    ("001_events.sql", include_str!("../../clickhouse/001_events.sql")),
    ("002_exposures.sql", include_str!("../../clickhouse/002_exposures.sql")),
];

pub fn client(cfg: &ClickHouseConfig) -> Client {
    Client::default()
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_password(cfg.password.expose())
        .with_database(&cfg.database)
        .with_compression(Compression::None)
        .with_validation(false)
}

/// Creates the database and applies every DDL file in order.
pub async fn apply_ddl(cfg: &ClickHouseConfig) -> Result<(), clickhouse::error::Error> {
    // The database name was validated as a plain identifier by `Config::validate`.
    let server = client(cfg).with_database("default");
    server.query(&format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database)).execute().await?;
    let db = client(cfg);
    for (name, text) in DDL {
        for statement in statements(text) {
            tracing::debug!(file = name, "applying ClickHouse DDL");
            db.query(&statement).execute().await?;
        }
    }
    Ok(())
}

/// Splits a DDL file on `;` at line ends and drops `--` comment lines.
fn statements(text: &str) -> Vec<String> {
    let without_comments: String =
        text.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    without_comments
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Readiness: does the server answer `SELECT 1`?
pub async fn ping(client: &Client) -> bool {
    client.query("SELECT 1").fetch_one::<u8>().await.is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ddl_files_split_into_idempotent_statements() {
        for (name, text) in super::DDL {
            let statements = super::statements(text);
            assert!(!statements.is_empty(), "{name}");
            for s in statements {
                assert!(s.contains("IF NOT EXISTS"), "{name}: not idempotent: {s}");
                assert!(!s.contains("abtest."), "{name}: must not hard-code the database: {s}");
            }
        }
    }
}
