//! The HTTP pieces every binary serves the same way, so that `ingest`, `consumer` and `api`
//! share them without depending on each other, and `common` stays free of HTTP:
//!
//! - [`error`]: the JSON error envelope and its one `IntoResponse`;
//! - [`body`] and [`query`]: extractors whose rejections are those errors (bodies within a
//!   limit, gzip, 413 a client can read; query parameters named when they are wrong);
//! - [`auth`]: API keys compared in constant time;
//! - [`ops`]: `/livez`, `/readyz` per dependency, `/metrics`;
//! - [`observe`]: request ids, access logs, per-route metrics, panics as JSON 500s;
//! - [`serve`]: serving until shutdown, in-flight requests finished;
//! - `openapi` (feature `openapi`): the error answers as reusable OpenAPI responses.

pub mod auth;
pub mod body;
pub mod error;
pub mod observe;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod ops;
pub mod query;

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use axum::Router;
use common::{preflight::Store, shutdown::CancellationToken, Config};
use tokio::net::TcpListener;

pub use error::{ApiError, ErrorBody, ErrorCode};

/// Serves `app` until `shutdown` is cancelled, then stops accepting connections and lets
/// in-flight requests finish.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// The main of a serving binary once its command line is parsed: the configuration
/// (stopping with the key named when it is invalid), logs, one connection attempt to each
/// of `stores` (stopping when TLS or a login fails, see `common::preflight`), the listener
/// on the address `listen` picks, and `run` until SIGTERM or Ctrl-C.
pub async fn launch<F, Fut>(listen: fn(&Config) -> SocketAddr, stores: &[Store], run: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = Config::load()?;
    common::telemetry::init(&config.log);
    preflight(&config, stores).await?;
    let addr = listen(&config);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
    run(config, listener, common::shutdown::on_signal()).await
}

/// [`common::preflight::check`], its failure logged (for log shippers) and returned.
pub async fn preflight(config: &Config, stores: &[Store]) -> anyhow::Result<()> {
    if let Err(e) = common::preflight::check(config, stores).await {
        tracing::error!(error = %e, "startup check failed");
        return Err(e.into());
    }
    Ok(())
}

/// A serving binary's command line: `--help` (what it does and where configuration comes
/// from) and `--version`; anything else is an error.
pub fn command_line(name: &'static str, version: &'static str, about: &'static str) {
    clap::Command::new(name).version(version).about(about).after_help(common::config::HELP).get_matches();
}
