//! `concord-controller`: serves the API and keeps topologies running on Mesos.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use concord_controller::{ControllerConfig, run};
use tracing_subscriber::EnvFilter;

/// The Concord controller.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// etcd endpoints, comma-separated.
    #[arg(
        long,
        env = "CONCORD_ETCD",
        default_value = "http://127.0.0.1:2379",
        value_delimiter = ','
    )]
    etcd: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, env = "CONCORD_PREFIX", default_value = "/concord")]
    prefix: String,
    /// Mesos master URL.
    #[arg(long, env = "CONCORD_MESOS", default_value = "http://127.0.0.1:5050")]
    mesos: String,
    /// Address of the HTTP API.
    #[arg(long, env = "CONCORD_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "CONCORD_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = ControllerConfig {
        etcd_endpoints: args.etcd,
        etcd_prefix: args.prefix,
        mesos_master: args.mesos,
        listen: args.listen,
    };
    run(config, shutdown_signal())
        .await
        .context("controller stopped")
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
