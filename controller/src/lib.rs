//! The Concord control plane: etcd store, HTTP API and the loops that act on topologies.

pub mod api;
pub mod auth;
pub mod gitops;
pub mod metrics;
pub mod observe;
pub mod readiness;
pub mod reconcile;
pub mod store;
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
    /// The GitOps syncer; `None` leaves GitRepository objects unsynced.
    pub gitops: Option<gitops::GitOpsConfig>,
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

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    config: ControllerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let store = Store::connect(&config.etcd_endpoints, &config.etcd_prefix).await?;
    let (command_tx, command_rx) = tokio::sync::mpsc::channel(64);
    let state = ApiState {
        store: store.clone(),
        metrics: metrics::Metrics::new(),
        readiness: readiness::Readiness::default(),
        commands: config.reconciler.is_some().then_some(command_tx),
        tokens: config.tokens.map(std::sync::Arc::new),
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
        })),
    };
    if let Some(reconciler) = config.reconciler.clone() {
        tokio::spawn(reconcile::run(
            store.clone(),
            reconciler,
            state.readiness.clone(),
            command_rx,
            state.metrics.clone(),
        ));
    }
    if let Some(gitops) = config.gitops.clone() {
        tokio::spawn(gitops::run(store.clone(), gitops));
    }
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControllerError::Listen {
                addr: config.listen,
                source,
            })?;
    let local = listener.local_addr().map_err(ControllerError::Serve)?;
    tracing::info!(listen = %local, etcd = ?config.etcd_endpoints, prefix = %config.etcd_prefix, "controller API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ControllerError::Serve)
}
