//! `concord-controller`: serves the API and keeps topologies running on Mesos.

use concord_schemas::parse_duration;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use concord_controller::reconcile::{LaunchSettings, ReadinessMode, ReconcilerConfig};
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
    #[command(flatten)]
    etcd_access: concord_controller::etcd_access::EtcdAccess,
    /// Key prefix in etcd.
    #[arg(long, env = "CONCORD_PREFIX", default_value = "/concord")]
    prefix: String,
    /// Mesos master URL.
    #[arg(long, env = "CONCORD_MESOS", default_value = "http://127.0.0.1:5050")]
    mesos: String,
    /// Address of the HTTP API.
    #[arg(long, env = "CONCORD_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Mesos framework name.
    #[arg(long, env = "CONCORD_FRAMEWORK_NAME", default_value = "concord")]
    framework_name: String,
    /// Mesos role the framework's tasks use.
    #[arg(long, env = "CONCORD_MESOS_ROLE", default_value = "concord")]
    mesos_role: String,
    /// Mesos principal (with --mesos-secret-file for HTTP Basic authentication).
    #[arg(long, env = "CONCORD_MESOS_PRINCIPAL")]
    mesos_principal: Option<String>,
    /// File holding the Mesos secret.
    #[arg(long, env = "CONCORD_MESOS_SECRET_FILE")]
    mesos_secret_file: Option<std::path::PathBuf>,
    /// How long Mesos keeps the tasks running while no controller is connected.
    #[arg(long, default_value = "1w", value_parser = parse_duration)]
    failover_timeout: Duration,
    /// Period of the full resync of every topology.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    resync: Duration,
    /// When a task counts as ready: `endpoint` (its executor says so in etcd) or `running`.
    #[arg(long, default_value = "endpoint", value_parser = ["endpoint", "running"])]
    readiness: String,
    /// Path of concord-executor on the agents (default: next to this binary).
    #[arg(long, env = "CONCORD_EXECUTOR_PATH")]
    executor_path: Option<String>,
    /// URI agents fetch concord-executor from (for clusters where it is not installed).
    #[arg(long, env = "CONCORD_EXECUTOR_URI")]
    executor_uri: Option<String>,
    /// Grace period between SIGTERM and SIGKILL when a task is killed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    kill_grace: Duration,
    /// File of API bearer tokens, one `<token> <role> [name]` per line (roles: admin,
    /// readonly). Without it the API is open, which is allowed on loopback only (see
    /// --insecure-allow-anonymous).
    #[arg(long, env = "CONCORD_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Host names (without port) the API answers besides loopback ones while it listens
    /// on loopback, e.g. behind a proxy that keeps the client's `Host`. Comma-separated.
    #[arg(
        long = "allowed-host",
        env = "CONCORD_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// Serve an API without --token-file on a non-loopback --listen address (only when
    /// something in front of the controller authenticates every request).
    #[arg(long, env = "CONCORD_INSECURE_ALLOW_ANONYMOUS")]
    insecure_allow_anonymous: bool,
    /// PEM certificate chain of the API (server certificate first): serve HTTPS.
    #[arg(long, env = "CONCORD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CONCORD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Fraction (0..=1) of source records every executor samples for tracing
    /// (`concord trace`, `GET …/topologies/NAME/traces`); default: the executor's 0.001.
    #[arg(long, env = "CONCORD_TRACE_SAMPLE_RATE", value_parser = parse_fraction)]
    trace_sample_rate: Option<f64>,
    /// Serve the API only; do not connect to Mesos.
    #[arg(long)]
    no_scheduler: bool,
    /// Where the GitOps syncer keeps bare mirrors of repositories (default: `gitops` in
    /// the state directory); created 0700, refused if others can write to it.
    #[arg(long, env = "CONCORD_GITOPS_CACHE")]
    gitops_cache_dir: Option<std::path::PathBuf>,
    /// The controller's private state directory, created 0700 when needed (default:
    /// $STATE_DIRECTORY, else $XDG_STATE_HOME/concord, else ~/.local/state/concord).
    #[arg(long, env = "CONCORD_STATE_DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// Accept and sync GitRepositories whose URL is a local path or file:// (lets API
    /// users make the controller read repositories on its machine).
    #[arg(long)]
    allow_local_git: bool,
    /// Do not sync GitRepository objects (another controller does, or GitOps is unused).
    #[arg(long)]
    no_gitops: bool,
    /// TTL of the leader's etcd lease: a dead leader is replaced within about this long.
    #[arg(long, env = "CONCORD_LEADER_LEASE_TTL", default_value = "10s", value_parser = parse_duration)]
    leader_lease_ttl: Duration,
    /// This replica's identity in leader election (default: host, port and a random suffix).
    #[arg(long, env = "CONCORD_ID")]
    id: Option<String>,
    /// URL of this replica's API as others reach it (default: http://<--listen>, https
    /// with --tls-cert).
    #[arg(long, env = "CONCORD_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "CONCORD_LOG_JSON")]
    log_json: bool,
}

/// A number between 0 and 1.
fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number between 0 and 1")),
    }
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
    // Refuse a bad exposure or unusable TLS files before connecting to anything.
    concord_controller::check_exposure(
        args.listen,
        args.token_file.is_some(),
        args.insecure_allow_anonymous,
    )?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(concord_controller::tls::server_config(
            &concord_controller::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
        )?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let secret = match &args.mesos_secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the Mesos secret file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let executor_path = match args.executor_path {
        Some(p) => p,
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("concord-executor")))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "concord-executor".into()),
    };
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let reconciler = (!args.no_scheduler).then(|| ReconcilerConfig {
        mesos_master: args.mesos.clone(),
        framework_name: args.framework_name.clone(),
        role: args.mesos_role.clone(),
        principal: args.mesos_principal.clone(),
        secret,
        failover_timeout: args.failover_timeout.as_secs_f64(),
        resync: args.resync,
        readiness: if args.readiness == "running" {
            ReadinessMode::Running
        } else {
            ReadinessMode::Endpoint
        },
        launch: LaunchSettings {
            executor_path,
            executor_uri: args.executor_uri.clone(),
            etcd_endpoints: args.etcd.clone(),
            etcd_prefix: args.prefix.clone(),
            etcd_env: args.etcd_access.task_env(),
            kill_grace: args.kill_grace,
            trace_sample_rate: args.trace_sample_rate,
        },
        hostname: hostname.clone(),
        webui_url: Some(format!("{scheme}://{}/ui/", args.listen)),
    });
    let tokens = match &args.token_file {
        Some(path) => Some(concord_controller::auth::Tokens::load(path)?),
        None => {
            if !args.listen.ip().is_loopback() {
                tracing::warn!(listen = %args.listen, "the API is open to the network without tokens (--insecure-allow-anonymous)");
            }
            None
        }
    };
    let gitops = match args.no_gitops {
        true => None,
        false => Some(concord_controller::gitops::GitOpsConfig {
            cache_dir: concord_controller::state_dir::gitops_cache(
                args.gitops_cache_dir.as_deref(),
                args.state_dir.as_deref(),
            )
            .context("the GitOps mirror cache cannot be used")?,
            allow_local: args.allow_local_git,
        }),
    };
    if args.leader_lease_ttl < Duration::from_secs(2) {
        anyhow::bail!(
            "--leader-lease-ttl must be at least 2s (etcd grants leases in whole seconds)"
        );
    }
    let leader = concord_controller::leader::LeaderConfig {
        ttl: args.leader_lease_ttl,
        identity: args.id.clone().unwrap_or_else(|| {
            format!(
                "{hostname}:{}-{}",
                args.listen.port(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        }),
        api_url: args
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", args.listen)),
    };
    let config = ControllerConfig {
        etcd_access: args.etcd_access.clone(),
        leader,
        etcd_endpoints: args.etcd,
        etcd_prefix: args.prefix,
        listen: args.listen,
        reconciler,
        tokens,
        allowed_hosts: args.allowed_hosts,
        gitops,
        tls,
        allow_local_git: args.allow_local_git,
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
