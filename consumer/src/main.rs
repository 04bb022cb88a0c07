//! `consumer`: Kafka -> ClickHouse.

use clap::Parser;

/// Kafka -> ClickHouse: a consumer group writing events and exposures in large batches,
/// committing offsets only after the insert. Serves /livez, /readyz, /metrics.
#[derive(Parser)]
#[command(version, after_help = common::config::HELP)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    let config = common::Config::load()?;
    common::telemetry::init(&config.log);
    let listener = tokio::net::TcpListener::bind(config.consumer.listen).await?;
    consumer::run(config, listener, common::shutdown::on_signal()).await
}
