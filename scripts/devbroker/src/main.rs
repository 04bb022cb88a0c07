//! A Kafka-protocol broker for the local stack and the tests, where no Kafka distribution
//! can be installed: librdkafka's mock cluster (real protocol over TCP on loopback, data in
//! memory) hosted in one process, plus an HTTP control API on `--control`:
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /livez` | 200 |
//! | `GET /clusters/{id}` | `{"id", "bootstrap"}`; cluster 0 is the stack's |
//! | `POST /clusters` `{"brokers": n}` | a new, isolated cluster (for fault tests) |
//! | `DELETE /clusters/{id}` | drops it |
//! | `POST /clusters/{id}/topics` `{"name", "partitions"}` | creates a topic |
//! | `POST /clusters/{id}/brokers/{broker}/down` or `/up` | the mock's fault switches |
//!
//! Usage: `devbroker --control 127.0.0.1:9094 --bootstrap-file .run/kafka.bootstrap
//!         --topics events:6,exposures:6,events_dlq:1`
//!
//! Never use it in production: it keeps everything in memory.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::mpsc, thread};

use anyhow::{bail, Context};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use rdkafka::{mocking::MockCluster, producer::DefaultProducerContext};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

enum Command {
    Create { brokers: i32 },
    Get { id: u32 },
    Drop { id: u32 },
    Topic { id: u32, name: String, partitions: i32 },
    Broker { id: u32, broker: i32, up: bool },
}

type Reply = Result<Value, String>;
type Mailbox = mpsc::Sender<(Command, oneshot::Sender<Reply>)>;

/// The mock clusters live on one thread of their own (their handles are not `Send`);
/// HTTP handlers talk to it through a channel.
fn spawn_clusters() -> Mailbox {
    let (tx, rx) = mpsc::channel::<(Command, oneshot::Sender<Reply>)>();
    thread::spawn(move || {
        let mut clusters: HashMap<u32, MockCluster<'static, DefaultProducerContext>> = HashMap::new();
        let mut next_id = 0u32;
        for (command, reply) in rx {
            let result = match command {
                Command::Create { brokers } => match MockCluster::new(brokers) {
                    Ok(cluster) => {
                        let id = next_id;
                        next_id += 1;
                        let bootstrap = cluster.bootstrap_servers();
                        clusters.insert(id, cluster);
                        Ok(json!({ "id": id, "bootstrap": bootstrap }))
                    }
                    Err(e) => Err(e.to_string()),
                },
                Command::Get { id } => clusters
                    .get(&id)
                    .map(|c| json!({ "id": id, "bootstrap": c.bootstrap_servers() }))
                    .ok_or_else(|| format!("no cluster {id}")),
                Command::Drop { id } => clusters
                    .remove(&id)
                    .map(|_| json!({ "id": id, "dropped": true }))
                    .ok_or_else(|| format!("no cluster {id}")),
                Command::Topic { id, name, partitions } => match clusters.get(&id) {
                    Some(c) => c
                        .create_topic(&name, partitions, 1)
                        .map(|_| json!({ "topic": name, "partitions": partitions }))
                        .map_err(|e| e.to_string()),
                    None => Err(format!("no cluster {id}")),
                },
                Command::Broker { id, broker, up } => match clusters.get(&id) {
                    Some(c) => {
                        let r = if up { c.broker_up(broker) } else { c.broker_down(broker) };
                        r.map(|_| json!({ "broker": broker, "up": up })).map_err(|e| e.to_string())
                    }
                    None => Err(format!("no cluster {id}")),
                },
            };
            let _ = reply.send(result);
        }
    });
    tx
}

async fn ask(mailbox: &Mailbox, command: Command) -> (StatusCode, Json<Value>) {
    let (tx, rx) = oneshot::channel();
    if mailbox.send((command, tx)).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "cluster thread gone" })));
    }
    match rx.await {
        Ok(Ok(v)) => (StatusCode::OK, Json(v)),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "no reply" }))),
    }
}

#[derive(Deserialize)]
struct NewCluster {
    #[serde(default = "one")]
    brokers: i32,
}

#[derive(Deserialize)]
struct NewTopic {
    name: String,
    #[serde(default = "one")]
    partitions: i32,
}

fn one() -> i32 {
    1
}

fn router(mailbox: Mailbox) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/clusters",
            post(|State(m): State<Mailbox>, Json(b): Json<NewCluster>| async move {
                ask(&m, Command::Create { brokers: b.brokers }).await
            }),
        )
        .route(
            "/clusters/{id}",
            get(|State(m): State<Mailbox>, Path(id): Path<u32>| async move { ask(&m, Command::Get { id }).await })
                .delete(
                    |State(m): State<Mailbox>, Path(id): Path<u32>| async move { ask(&m, Command::Drop { id }).await },
                ),
        )
        .route(
            "/clusters/{id}/topics",
            post(|State(m): State<Mailbox>, Path(id): Path<u32>, Json(t): Json<NewTopic>| async move {
                ask(&m, Command::Topic { id, name: t.name, partitions: t.partitions }).await
            }),
        )
        .route(
            "/clusters/{id}/brokers/{broker}/{state}",
            post(|State(m): State<Mailbox>, Path((id, broker, state)): Path<(u32, i32, String)>| async move {
                match state.as_str() {
                    "up" | "down" => ask(&m, Command::Broker { id, broker, up: state == "up" }).await,
                    _ => (StatusCode::NOT_FOUND, Json(json!({ "error": "use /up or /down" }))),
                }
            }),
        )
        .with_state(mailbox)
}

struct Args {
    control: SocketAddr,
    bootstrap_file: Option<PathBuf>,
    topics: Vec<(String, i32)>,
    brokers: i32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        control: SocketAddr::from(([127, 0, 0, 1], 9094)),
        bootstrap_file: None,
        topics: Vec::new(),
        brokers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--control" => args.control = value.parse().context("--control")?,
            "--bootstrap-file" => args.bootstrap_file = Some(value.into()),
            "--brokers" => args.brokers = value.parse().context("--brokers")?,
            "--topics" => {
                for spec in value.split(',').filter(|s| !s.is_empty()) {
                    let (name, partitions) = spec.split_once(':').unwrap_or((spec, "1"));
                    args.topics.push((name.to_owned(), partitions.parse().context("--topics partitions")?));
                }
            }
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init(&common::config::LogConfig::default());
    let args = parse_args()?;
    let mailbox = spawn_clusters();
    let (status, Json(cluster)) = ask(&mailbox, Command::Create { brokers: args.brokers }).await;
    if status != StatusCode::OK {
        bail!("could not create the mock cluster: {cluster}");
    }
    for (name, partitions) in &args.topics {
        let (status, Json(reply)) =
            ask(&mailbox, Command::Topic { id: 0, name: name.clone(), partitions: *partitions }).await;
        if status != StatusCode::OK {
            bail!("could not create topic {name}: {reply}");
        }
    }
    let bootstrap = cluster["bootstrap"].as_str().unwrap_or_default().to_owned();
    let listener = tokio::net::TcpListener::bind(args.control).await.context("bind --control")?;
    if let Some(path) = &args.bootstrap_file {
        std::fs::write(path, &bootstrap).with_context(|| format!("write {}", path.display()))?;
    }
    tracing::info!(%bootstrap, control = %args.control, topics = ?args.topics, "mock Kafka cluster up");
    axum::serve(listener, router(mailbox)).with_graceful_shutdown(common::shutdown::signal()).await?;
    Ok(())
}
