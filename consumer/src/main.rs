//! `consumer`: Kafka -> ClickHouse.

use common::preflight::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Kafka -> ClickHouse: a consumer group writing events and exposures in large batches, \
                 committing offsets only after the insert. Serves /livez, /readyz, /metrics.";
    server::command_line("consumer", env!("CARGO_PKG_VERSION"), about);
    server::launch(|config| config.consumer.listen, &[Store::Kafka, Store::ClickHouse], consumer::run).await
}
