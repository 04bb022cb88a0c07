//! `api`: serves the API; `api migrate` applies the migrations.

use clap::{Parser, Subcommand};
use common::preflight::Store;

/// The api uses all three; a TLS or login mistake with any of them stops it at startup.
const STORES: &[Store] = &[Store::Postgres, Store::ClickHouse, Store::Kafka];

/// Experiments, sticky assignments, results with statistics, and POST /events, on one port.
#[derive(Parser)]
#[command(version, after_help = common::config::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the Postgres migrations and the ClickHouse DDL, and create the Kafka topics
    /// that are missing; every step is idempotent.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => server::launch(|config| config.api.listen, STORES, api::run).await,
        Command::Migrate => {
            let config = common::Config::load()?;
            common::telemetry::init(&config.log);
            server::preflight(&config, STORES).await?;
            api::migrate(&config).await
        }
    }
}
