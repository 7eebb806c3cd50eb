//! mesos-lite: a single-process Mesos-compatible master with N agents.

mod agent;
mod attribute_flag;
mod fetcher;
mod flags;
mod health;
mod http;
mod master;
mod persist;
mod process;
mod res;
mod resource_flag;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::flags::Flags;
use crate::master::{AgentSpec, Config, Shared};
use crate::res::Bag;

fn main() -> ExitCode {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mesos-lite: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "mesos-lite failed");
            eprintln!("mesos-lite: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<()> {
    let work_dir = flags.work_dir();
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("create work_dir {}", work_dir.display()))?;
    let work_dir = work_dir.canonicalize()?;
    let records = process::ProcessRecords::open(&work_dir)?;
    let leftovers = records.kill_leftovers();
    if leftovers > 0 {
        tracing::info!(
            count = leftovers,
            "killed task processes left over from an earlier run"
        );
    }
    let meta = persist::load_or_create(&work_dir)?;

    let specs = match &flags.resources {
        Some(text) => resource_flag::parse(text)?,
        None => Vec::new(),
    };
    let specs = resource_flag::with_defaults(specs, &work_dir);
    let count = flags.agents as usize;
    let hostnames = flags.agent_hostnames().map_err(anyhow::Error::msg)?;
    let attributes = attribute_flag::per_agent(
        flags.attributes.as_deref(),
        flags.agent_attributes.as_deref(),
        count,
    )?;
    let agents = hostnames
        .into_iter()
        .zip(attributes)
        .enumerate()
        .map(|(i, (hostname, attributes))| {
            resource_flag::agent_share(&specs, i, count).map(|r| AgentSpec {
                total: Bag::from_resources(&r),
                hostname,
                attributes,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let listener = tokio::net::TcpListener::bind((flags.ip, flags.port))
        .await
        .with_context(|| format!("bind {}:{}", flags.ip, flags.port))?;
    let port = listener.local_addr()?.port();
    let config = Config {
        master_id: meta.master_id.clone(),
        hostname: flags.advertised_hostname(),
        ip: flags.ip,
        port,
        heartbeat_interval: flags.heartbeat_interval,
        allocation_interval: flags.allocation_interval,
        offer_timeout: flags.offer_timeout,
        status_update_retry_interval: flags.status_update_retry_interval,
        default_kill_grace_period: flags.default_kill_grace_period,
        work_dir: work_dir.clone(),
        start_time: wire::now_secs(),
        flags_json: flags_json(&flags, &work_dir, port),
        run: meta.runs,
    };
    let shared = Shared::new(config, agents, meta.next_framework, records)?;
    tracing::info!(
        master_id = %meta.master_id,
        address = %format!("{}:{}", flags.ip, port),
        work_dir = %work_dir.display(),
        agents = count,
        "mesos-lite started"
    );

    tokio::spawn(allocation_loop(shared.clone()));
    tokio::spawn(ticker(shared.clone()));

    let app = http::router(shared.clone());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let server = axum::serve(listener, app);
    tokio::select! {
        r = server => r.context("HTTP server")?,
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown(&shared).await;
    Ok(())
}

/// Tasks die with mesos-lite: SIGTERM every task group, then SIGKILL what is left.
async fn shutdown(shared: &Arc<Shared>) {
    let pids = shared.lock().kill_all_for_shutdown();
    for pid in &pids {
        process::signal_group(*pid, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline
        && pids
            .iter()
            .any(|p| process::start_time(*p).is_some_and(|_| is_alive(*p)))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &pids {
        process::signal_group(*pid, Signal::SIGKILL);
    }
    shared.records.kill_leftovers();
}

fn is_alive(pid: u32) -> bool {
    // A zombie (reaped later by the runtime) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

async fn allocation_loop(shared: Arc<Shared>) {
    let interval = shared.config.allocation_interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shared.allocate_now.notified() => {}
        }
        shared.lock().allocate();
    }
}

/// Status update retries and offer expiry.
async fn ticker(shared: Arc<Shared>) {
    let period = (shared.config.status_update_retry_interval / 4)
        .clamp(Duration::from_millis(20), Duration::from_millis(250));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let mut m = shared.lock();
        m.retry_updates();
        m.expire_offers();
    }
}

fn flags_json(flags: &Flags, work_dir: &std::path::Path, port: u16) -> serde_json::Value {
    serde_json::json!({
        "ip": flags.ip.to_string(),
        "port": port.to_string(),
        "hostname": flags.advertised_hostname(),
        "work_dir": work_dir.display().to_string(),
        "agents": flags.agents.to_string(),
        "resources": flags.resources.clone().unwrap_or_default(),
        "hostnames": flags.hostnames.join(","),
        "attributes": flags.attributes.clone().unwrap_or_default(),
        "agent_attributes": flags.agent_attributes.clone().unwrap_or_default(),
        "heartbeat_interval": format!("{}secs", flags.heartbeat_interval.as_secs_f64()),
        "allocation_interval": format!("{}secs", flags.allocation_interval.as_secs_f64()),
    })
}
