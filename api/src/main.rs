//! `api` serves the API; `api migrate` applies the Postgres migrations and ClickHouse DDL.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::Config::load()?;
    common::telemetry::init(&config.log);
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => api::migrate(&config).await,
        None | Some("serve") => {
            let listener = tokio::net::TcpListener::bind(config.api.listen).await?;
            api::run(config, listener, common::shutdown::on_signal()).await
        }
        Some(other) => anyhow::bail!("unknown command `{other}`; use `api [serve]` or `api migrate`"),
    }
}
