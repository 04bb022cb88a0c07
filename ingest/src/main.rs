//! `ingest`: the event edge.

use common::preflight::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "The event edge: POST /events and /events/batch into Kafka; 202 only once Kafka has them.";
    server::command_line("ingest", env!("CARGO_PKG_VERSION"), about);
    server::launch(|config| config.ingest.listen, &[Store::Kafka], ingest::run).await
}
