//! `api`: serves the API; `api migrate` applies the migrations.

use clap::{Parser, Subcommand};

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
    let cli = Cli::parse();
    let config = common::Config::load()?;
    common::telemetry::init(&config.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => api::migrate(&config).await,
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.api.listen).await?;
            api::run(config, listener, common::shutdown::on_signal()).await
        }
    }
}
