//! `consumer`: Kafka -> ClickHouse. Configuration: see README "Configuration".

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::Config::load()?;
    common::telemetry::init(&config.log);
    let listener = tokio::net::TcpListener::bind(config.consumer.listen).await?;
    consumer::run(config, listener, common::shutdown::on_signal()).await
}
