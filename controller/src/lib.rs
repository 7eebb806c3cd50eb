//! The Concord control plane: etcd store, HTTP API and the loops that act on topologies.

pub mod api;
pub mod auth;
pub mod dataplane_secret;
pub mod etcd_access;
pub mod gitops;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod paging;
pub mod readiness;
pub mod reconcile;
pub mod request_guard;
pub mod state_dir;
pub mod store;
pub mod tls;
pub mod ui;
pub mod watch;

use std::net::SocketAddr;

use thiserror::Error;
use tokio::net::TcpListener;

pub use api::{ApiState, router};
pub use store::{ApplyOutcome, Store, StoreError};

/// How the controller is started.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    pub listen: SocketAddr,
    /// `None` serves the API only (no scheduling).
    pub reconciler: Option<reconcile::ReconcilerConfig>,
    /// API bearer tokens; `None` leaves the API open.
    pub tokens: Option<auth::Tokens>,
    /// Host names accepted besides loopback ones while `listen` is a loopback address
    /// (`request_guard`, rule 4).
    pub allowed_hosts: Vec<String>,
    /// The GitOps syncer; `None` leaves GitRepository objects unsynced.
    pub gitops: Option<gitops::GitOpsConfig>,
    /// Leader election among replicas sharing this etcd.
    pub leader: leader::LeaderConfig,
    /// TLS and user for etcd.
    pub etcd_access: etcd_access::EtcdAccess,
    /// Serve the API over TLS with this configuration ([`tls::server_config`]);
    /// `None` serves plain HTTP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Whether GitRepositories may name local repositories (`--allow-local-git`).
    pub allow_local_git: bool,
}

/// Errors that stop the controller.
#[derive(Debug, Error)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Why the controller refuses to serve an open API to the network.
#[derive(Debug, Error)]
#[error(
    "refusing to serve the API on {listen} without authentication: anyone who can reach it could run commands on the agents. Pass --token-file FILE (see docs/operations.md, \"TLS and tokens\"), listen on loopback (--listen 127.0.0.1:PORT), or pass --insecure-allow-anonymous if something in front of it authenticates"
)]
pub struct AnonymousExposure {
    pub listen: SocketAddr,
}

/// An API without tokens may only listen on loopback, unless the operator says so
/// explicitly (`--insecure-allow-anonymous`).
pub fn check_exposure(
    listen: SocketAddr,
    has_tokens: bool,
    allow_anonymous: bool,
) -> Result<(), AnonymousExposure> {
    if has_tokens || allow_anonymous || listen.ip().is_loopback() {
        Ok(())
    } else {
        Err(AnonymousExposure { listen })
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    config: ControllerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let store = Store::connect_with(
        &config.etcd_endpoints,
        &config.etcd_prefix,
        &config.etcd_access,
    )
    .await?;
    let (command_tx, command_rx) = tokio::sync::mpsc::channel(64);
    let (role_tx, leadership) = leader::channel();
    let metrics = metrics::Metrics::new();
    let state = ApiState {
        store: store.clone(),
        metrics: metrics.clone(),
        readiness: readiness::Readiness::default(),
        commands: config.reconciler.is_some().then_some(command_tx),
        tokens: config.tokens.map(std::sync::Arc::new),
        guard: std::sync::Arc::new(request_guard::GuardConfig {
            loopback: config.listen.ip().is_loopback(),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }),
        observe: observe::Observer::new(config.reconciler.as_ref().map(|r| {
            observe::MesosAccess {
                master: r.mesos_master.clone(),
                credentials: r.principal.clone().map(|principal| {
                    mesos_v1::scheduler::Credentials {
                        principal,
                        secret: r.secret.clone().unwrap_or_default(),
                    }
                }),
            }
        }))
        .counting_oversized(metrics.scrape_oversized.clone()),
        leadership: leadership.clone(),
        allow_local_git: config.allow_local_git,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let election = if config.reconciler.is_some() || config.gitops.is_some() {
        let start_term = term_starter(
            config.reconciler.clone(),
            config.gitops.clone(),
            state.readiness.clone(),
            state.metrics.clone(),
            std::sync::Arc::new(tokio::sync::Mutex::new(command_rx)),
        );
        tokio::spawn(follow_role(
            leadership.clone(),
            state.readiness.clone(),
            state.metrics.clone(),
            config.reconciler.is_some(),
        ));
        Some(tokio::spawn(leader::run(
            store.clone(),
            config.leader.clone(),
            role_tx,
            start_term,
            stop_rx.clone(),
        )))
    } else {
        None
    };
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControllerError::Listen {
                addr: config.listen,
                source,
            })?;
    let local = listener.local_addr().map_err(ControllerError::Serve)?;
    tracing::info!(listen = %local, tls = config.tls.is_some(), etcd = ?config.etcd_endpoints, prefix = %config.etcd_prefix, identity = %config.leader.identity, "controller API listening");
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stopped = stop_rx;
    let stopping = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let served = match config.tls {
        Some(tls) => {
            tls::serve(listener, router(state), tls, stopping).await;
            Ok(())
        }
        None => axum::serve(listener, router(state))
            .with_graceful_shutdown(stopping)
            .await
            .map_err(ControllerError::Serve),
    };
    // Hand leadership over at once instead of letting the lease run out.
    if let Some(election) = election {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), election).await;
    }
    served
}

/// What each leadership term runs: the reconciler (with the API's kill commands
/// forwarded to it) and the GitOps syncer, on the term's fenced store.
fn term_starter(
    reconciler: Option<reconcile::ReconcilerConfig>,
    gitops: Option<gitops::GitOpsConfig>,
    readiness: readiness::Readiness,
    metrics: metrics::Metrics,
    commands: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<reconcile::Command>>>,
) -> leader::StartTerm {
    Box::new(move |fenced: Store| {
        let mut tasks = Vec::new();
        if let Some(config) = reconciler.clone() {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let shared = commands.clone();
            tasks.push(tokio::spawn(async move {
                let mut commands = shared.lock().await;
                while let Some(command) = commands.recv().await {
                    if tx.send(command).await.is_err() {
                        break;
                    }
                }
            }));
            tasks.push(tokio::spawn(reconcile::run(
                fenced.clone(),
                config,
                readiness.clone(),
                rx,
                metrics.clone(),
            )));
        }
        if let Some(config) = gitops.clone() {
            tasks.push(tokio::spawn(gitops::run(fenced, config)));
        }
        tasks
    })
}

/// Mirrors the role into `/readyz` and `/metrics`.
async fn follow_role(
    leadership: leader::Leadership,
    readiness: readiness::Readiness,
    metrics: metrics::Metrics,
    schedules: bool,
) {
    let mut rx = leadership.subscribe();
    loop {
        let leads = leadership.is_leader();
        readiness.set("leader", leadership.describe().map(|_| ()));
        metrics.leader.set(i64::from(leads));
        if !leads && schedules {
            readiness.set(
                "mesos",
                Err("not the leader; the leader talks to Mesos".into()),
            );
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_api_listens_only_on_loopback_unless_allowed() {
        let any: SocketAddr = "0.0.0.0:7070".parse().expect("addr");
        let lan: SocketAddr = "[::]:7070".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:7070".parse().expect("addr");
        let local6: SocketAddr = "[::1]:7070".parse().expect("addr");
        for addr in [any, lan] {
            let err = check_exposure(addr, false, false).expect_err("open to the network");
            assert!(
                err.to_string().contains("--insecure-allow-anonymous"),
                "{err}"
            );
            assert!(err.to_string().contains(&addr.to_string()), "{err}");
            assert!(check_exposure(addr, true, false).is_ok(), "tokens");
            assert!(
                check_exposure(addr, false, true).is_ok(),
                "explicitly allowed"
            );
        }
        for addr in [local, local6] {
            assert!(check_exposure(addr, false, false).is_ok(), "{addr}");
        }
    }
}
