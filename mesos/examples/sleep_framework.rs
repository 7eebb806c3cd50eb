//! A minimal Mesos framework: launches one `sleep 30` command task on the first
//! offer that fits, prints (and acknowledges) every status update, and exits after
//! TASK_FINISHED. Ctrl-C tears the framework down.
//!
//! ```text
//! cargo run -p mesos-v1 --example sleep_framework -- --master http://127.0.0.1:5050
//! ```
//!
//! Works against Apache Mesos 1.x and mesos-lite alike: it relies only on the v1
//! scheduler API.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use mesos_v1::*;

#[derive(Parser, Debug)]
#[command(about = "Launch one command task on Mesos and watch it")]
struct Args {
    /// Master base URL (any master; redirects lead to the leader).
    #[arg(long, default_value = "http://127.0.0.1:5050")]
    master: String,
    /// Shell command to run.
    #[arg(long, default_value = "sleep 30")]
    command: String,
    /// CPUs for the task.
    #[arg(long, default_value_t = 0.1)]
    cpus: f64,
    /// Memory for the task (MB).
    #[arg(long, default_value_t = 32.0)]
    mem: f64,
    /// Role to subscribe with.
    #[arg(long, default_value = "*")]
    role: String,
    /// Unix user the task runs as (default: $USER, else root).
    #[arg(long)]
    user: Option<String>,
    /// Principal for HTTP Basic authentication.
    #[arg(long)]
    principal: Option<String>,
    /// Secret for HTTP Basic authentication.
    #[arg(long, env = "MESOS_SECRET")]
    secret: Option<String>,
}

/// Takes `amount` of scalar `name` from the offer, copying the offered resource's
/// role, reservations and allocation info so the master accepts it as-is.
fn take_scalar(offer: &Offer, name: &str, amount: f64) -> Option<Resource> {
    offer
        .resources
        .iter()
        .find(|r| r.name == name && r.r#type == ValueType::Scalar && r.scalar_value() >= amount)
        .map(|r| Resource {
            scalar: Some(Scalar {
                value: resources::round_scalar(amount),
            }),
            ..r.clone()
        })
}

fn task_for(offer: &Offer, args: &Args, task_id: &TaskId) -> Option<TaskInfo> {
    let cpus = take_scalar(offer, "cpus", args.cpus)?;
    let mem = take_scalar(offer, "mem", args.mem)?;
    Some(TaskInfo {
        name: "sleep".into(),
        task_id: task_id.clone(),
        agent_id: offer.agent_id.clone(),
        resources: vec![cpus, mem],
        command: Some(CommandInfo::shell(args.command.clone())),
        kill_policy: Some(KillPolicy::grace(Duration::from_secs(5))),
        ..TaskInfo::default()
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let user = args
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());

    let mut info = FrameworkInfo::new(user, "sleep-framework");
    info.roles = vec![args.role.clone()];
    info.capabilities = vec![FrameworkCapabilityType::MultiRole.into()];
    info.failover_timeout = 60.0;
    info.principal = args.principal.clone();
    info.hostname = std::env::var("HOSTNAME").ok();
    let mut config = SchedulerConfig::new(args.master.clone(), info);
    if let (Some(p), Some(s)) = (&args.principal, &args.secret) {
        config = config.with_credentials(p.clone(), s.clone());
    }

    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let task_id = TaskId::new(format!("sleep-{suffix}"));
    let (handle, mut events) = Scheduler::start(config);
    let mut launched = false;
    println!("connecting to {} ...", args.master);

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            _ = &mut ctrl_c => {
                println!("interrupted: tearing the framework down");
                if let Err(e) = handle.teardown().await {
                    eprintln!("teardown failed: {e}");
                }
                return ExitCode::from(130);
            }
            e = events.recv() => match e {
                Some(e) => e,
                None => {
                    eprintln!("scheduler stopped");
                    return ExitCode::FAILURE;
                }
            },
        };
        match event {
            SchedulerEvent::Subscribed {
                framework_id,
                heartbeat_interval,
            } => {
                println!(
                    "subscribed as framework {framework_id} (heartbeat {heartbeat_interval:?})"
                );
                if launched {
                    // After a reconnection, ask for the task's current state.
                    let tasks = vec![ReconcileTask {
                        task_id: task_id.clone(),
                        agent_id: None,
                    }];
                    if let Err(e) = handle.reconcile(tasks).await {
                        eprintln!("reconcile failed: {e}");
                    }
                }
            }
            SchedulerEvent::Disconnected { reason } => {
                println!("disconnected: {reason} (retrying)")
            }
            SchedulerEvent::Event(ev) => match ev.r#type {
                EventType::Offers => {
                    let mut decline = Vec::new();
                    for offer in ev.offer_list() {
                        let task = (!launched)
                            .then(|| task_for(offer, &args, &task_id))
                            .flatten();
                        match task {
                            Some(task) => {
                                println!(
                                    "launching {} on {} ({})",
                                    task_id, offer.hostname, offer.agent_id
                                );
                                match handle
                                    .launch(vec![offer.id.clone()], vec![task], None)
                                    .await
                                {
                                    Ok(()) => launched = true,
                                    Err(e) => eprintln!("launch failed: {e}"),
                                }
                            }
                            None => decline.push(offer.id.clone()),
                        }
                    }
                    if !decline.is_empty() {
                        // Once launched we need nothing more: refuse these for a while.
                        let refuse = if launched { 120.0 } else { 5.0 };
                        if let Err(e) = handle
                            .decline(decline, Some(Filters::refuse_seconds(refuse)))
                            .await
                        {
                            eprintln!("decline failed: {e}");
                        }
                    }
                }
                EventType::Update => {
                    let Some(status) = ev.task_status() else {
                        continue;
                    };
                    println!(
                        "task {} {}{}{}",
                        status.task_id,
                        status.state,
                        status
                            .reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        status
                            .message
                            .as_ref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default(),
                    );
                    if let Err(e) = handle.acknowledge_status(status).await {
                        eprintln!("acknowledge failed: {e}");
                    }
                    if status.task_id == task_id && status.state.is_terminal() {
                        let ok = status.state == TaskState::Finished;
                        if let Err(e) = handle.teardown().await {
                            eprintln!("teardown failed: {e}");
                        }
                        return if ok {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::FAILURE
                        };
                    }
                }
                EventType::Error => {
                    let msg = ev.error.map(|e| e.message).unwrap_or_default();
                    eprintln!("master error: {msg}");
                }
                EventType::Failure => println!("failure: {:?}", ev.failure),
                _ => {}
            },
        }
    }
}
