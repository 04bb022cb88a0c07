//! Pieces shared by the `ingest`, `consumer` and `api` binaries.
//!
//! Nothing in here knows about HTTP: the binaries own their transports, this crate owns
//! the event envelope, the typed configuration and the clients of Kafka, ClickHouse and
//! Postgres.

pub mod clickhouse;
pub mod config;
pub mod event;
pub mod kafka;
pub mod metrics;
pub mod postgres;
pub mod preflight;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;

pub use config::Config;
