//! `ingest`: the event edge. Configuration: see README "Configuration".

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::Config::load()?;
    common::telemetry::init(&config.log);
    let listener = tokio::net::TcpListener::bind(config.ingest.listen).await?;
    ingest::run(config, listener, common::shutdown::on_signal()).await
}
