//! `ingest`: the event edge.

use clap::Parser;

/// The event edge: POST /events and /events/batch into Kafka; 202 only once Kafka has them.
#[derive(Parser)]
#[command(version, after_help = common::config::HELP)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    let config = common::Config::load()?;
    common::telemetry::init(&config.log);
    let listener = tokio::net::TcpListener::bind(config.ingest.listen).await?;
    ingest::run(config, listener, common::shutdown::on_signal()).await
}
