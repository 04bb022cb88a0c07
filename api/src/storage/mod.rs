//! Where the api keeps and reads things: all Postgres SQL in [`postgres`], all ClickHouse
//! SQL in [`clickhouse`] and, for the results rollup, [`rollup`]. Both return [`StorageError`], which knows whether a store was
//! unavailable (retry later) or failed otherwise; the HTTP edge maps it once
//! (`routes::error`).

pub mod clickhouse;
pub mod postgres;
pub mod rollup;
pub mod trace;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("Postgres is unavailable")]
    PostgresUnavailable(#[source] sqlx::Error),
    #[error("Postgres failed")]
    Postgres(#[source] sqlx::Error),
    #[error("ClickHouse is unavailable")]
    ClickHouseUnavailable(#[source] ::clickhouse::error::Error),
    #[error("ClickHouse failed")]
    ClickHouse(#[source] ::clickhouse::error::Error),
    /// Stored data breaks an invariant the code relies on (a bug or a manual edit).
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
    /// An experiment named a metric that does not exist or is archived.
    #[error("metric `{key}` does not exist or is archived")]
    UnknownMetric { key: String, archived: bool },
    /// A request named a layer that does not exist (`field` names where).
    #[error("layer `{key}` does not exist")]
    UnknownLayer { key: String, field: &'static str },
    /// The range asked for overlaps another experiment's, or no free range is large enough.
    #[error("layer `{key}` has no room for this experiment; its free ranges are {free:?}")]
    LayerTaken { key: String, free: Vec<[u32; 2]> },
}

impl StorageError {
    /// The store did not answer (in time): the request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::PostgresUnavailable(_) | StorageError::ClickHouseUnavailable(_))
    }

    /// Did Postgres refuse the statement with this SQLSTATE?
    pub fn is_code(&self, code: &str) -> bool {
        match self {
            StorageError::Postgres(sqlx::Error::Database(db)) => db.code().as_deref() == Some(code),
            _ => false,
        }
    }
}

/// Unreachable, saturated or shutting down is "unavailable"; anything else is a failure.
impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        let unavailable = match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
            // The connection closed while asking for TLS (sslmode prefer and up): sqlx reads
            // the missing answer byte as 0x00 and calls it a protocol error.
            sqlx::Error::Protocol(text) => text.starts_with("unexpected response from SSLRequest"),
            // Class 08: connection exceptions; class 57: operator intervention (shutdown).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("57") || c.starts_with("08")),
            _ => false,
        };
        if unavailable {
            StorageError::PostgresUnavailable(e)
        } else {
            StorageError::Postgres(e)
        }
    }
}

impl From<::clickhouse::error::Error> for StorageError {
    fn from(e: ::clickhouse::error::Error) -> Self {
        use ::clickhouse::error::Error as E;
        match e {
            E::Network(_) | E::TimedOut => StorageError::ClickHouseUnavailable(e),
            other => StorageError::ClickHouse(other),
        }
    }
}
