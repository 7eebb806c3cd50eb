//! The agent side of a task: sandbox, fetch, the command executor's process handling
//! (own process group, SIGTERM → grace → SIGKILL), and the status updates it sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::fetcher::{self, FetchUri};
use crate::master::{KillRequest, Shared, status};
use crate::process::{self, ProcessSpec};
use crate::wire::*;

/// Everything a runner needs to launch one task.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Framework.
    pub framework_id: String,
    /// Task.
    pub task_id: String,
    /// Agent.
    pub agent_id: String,
    /// Executor id (the task id for command tasks).
    pub executor_id: String,
    /// Container id.
    pub container_id: String,
    /// `.../executors/<executor>/runs` (holds the `latest` symlink).
    pub runs_dir: PathBuf,
    /// The task's sandbox.
    pub sandbox: PathBuf,
    /// What to run.
    pub command: CommandInfo,
    /// `TaskInfo.container.volumes`: `SECRET` ones become files in the sandbox.
    pub volumes: Vec<Volume>,
    /// Allocation role.
    pub role: String,
    /// FrameworkInfo.checkpoint.
    pub checkpoint: bool,
    /// `ip:port` of the agent.
    pub agent_endpoint: String,
    /// The agent's IP address.
    pub agent_ip: String,
    /// TaskInfo.health_check.
    pub health_check: Option<HealthCheck>,
    /// The framework has TASK_KILLING_STATE.
    pub killing_capable: bool,
    /// TaskInfo.kill_policy's grace period, else 3 s (used by health-check kills).
    pub task_grace: Duration,
    /// TaskInfo.max_completion_time.
    pub max_completion_time: Option<Duration>,
    /// `slave(n)@ip:port`.
    pub agent_pid: String,
}

/// Runs a task to completion, reporting its states to the master.
pub async fn run(
    shared: Arc<Shared>,
    spec: RunSpec,
    mut kill_rx: mpsc::UnboundedReceiver<KillRequest>,
) {
    let report = |st: TaskStatus| {
        shared
            .lock()
            .agent_update(&spec.framework_id, &spec.task_id, st);
    };
    let mk = |state: TaskState,
              source: TaskStatusSource,
              reason: Option<TaskStatusReason>,
              message: Option<String>| {
        let mut st = status(
            &spec.task_id,
            state,
            source,
            reason,
            message,
            Some(&spec.agent_id),
        );
        st.executor_id = Some(ExecutorId::new(spec.executor_id.clone()));
        st
    };

    if let Err(e) = prepare_sandbox(&spec) {
        report(mk(
            TaskState::Failed,
            TaskStatusSource::Agent,
            Some(TaskStatusReason::ContainerLaunchFailed),
            Some(format!("Failed to launch container: {e:#}")),
        ));
        return;
    }
    if let Err(e) = write_secret_volumes(&spec.sandbox, &spec.volumes) {
        tracing::warn!(task_id = %spec.task_id, error = %e, "secret volume refused");
        report(mk(
            TaskState::Failed,
            TaskStatusSource::Agent,
            Some(TaskStatusReason::ContainerLaunchFailed),
            Some(format!("Failed to launch container: {e}")),
        ));
        shared.lock().task_exited(&spec.framework_id, &spec.task_id);
        return;
    }
    let uris: Vec<FetchUri> = spec
        .command
        .uris
        .iter()
        .map(|u| FetchUri {
            value: u.value.clone(),
            executable: u.executable.unwrap_or(false),
            extract: u.extract,
            output_file: u.output_file.clone(),
        })
        .collect();
    tokio::select! {
        result = fetcher::fetch_all(&shared.http, &uris, &spec.sandbox) => {
            if let Err(e) = result {
                tracing::warn!(task_id = %spec.task_id, error = %format!("{e:#}"), "fetch failed");
                report(mk(
                    TaskState::Failed,
                    TaskStatusSource::Agent,
                    Some(TaskStatusReason::ContainerLaunchFailed),
                    Some(format!("Failed to launch container: {e:#}")),
                ));
                shared.lock().task_exited(&spec.framework_id, &spec.task_id);
                return;
            }
        }
        Some(_) = kill_rx.recv() => {
            report(mk(
                TaskState::Killed,
                TaskStatusSource::Agent,
                Some(TaskStatusReason::TaskKilledDuringLaunch),
                Some("Task killed before it was launched".into()),
            ));
            shared.lock().task_exited(&spec.framework_id, &spec.task_id);
            return;
        }
    }

    let pspec = ProcessSpec {
        shell: spec.command.shell,
        value: spec.command.value.clone().unwrap_or_default(),
        arguments: spec.command.arguments.clone(),
        env: environment(&spec),
        cwd: spec.sandbox.clone(),
    };
    process::log_line(
        &spec.sandbox,
        "stderr",
        &format!("Starting task {}", spec.task_id),
    );
    let mut child = match process::spawn(&pspec) {
        Ok(c) => c,
        Err(e) => {
            report(mk(
                TaskState::Failed,
                TaskStatusSource::Executor,
                None,
                Some(format!("Failed to launch task subprocess: {e:#}")),
            ));
            shared.lock().task_exited(&spec.framework_id, &spec.task_id);
            return;
        }
    };
    let pid = child.id().unwrap_or(0);
    process::log_line(&spec.sandbox, "stderr", &format!("Forked command at {pid}"));
    shared.records.add(&spec.container_id, pid);
    shared
        .lock()
        .task_started(&spec.framework_id, &spec.task_id, pid);
    let container_status = ContainerStatus {
        container_id: Some(ContainerId::new(spec.container_id.clone())),
        executor_pid: Some(pid),
        // Without network isolation a task shares the agent's address.
        network_infos: vec![NetworkInfo {
            ip_addresses: vec![IpAddress {
                ip_address: Some(spec.agent_ip.clone()),
                ..IpAddress::default()
            }],
            ..NetworkInfo::default()
        }],
        ..ContainerStatus::default()
    };
    let with_container = |mut st: TaskStatus| {
        st.container_status = Some(container_status.clone());
        st
    };
    report(with_container(mk(
        TaskState::Starting,
        TaskStatusSource::Executor,
        None,
        None,
    )));
    report(with_container(mk(
        TaskState::Running,
        TaskStatusSource::Executor,
        None,
        None,
    )));

    let mut health_rx = match &spec.health_check {
        Some(check) => crate::health::start(check.clone(), spec.sandbox.clone(), pspec.env.clone()),
        None => mpsc::unbounded_channel().1,
    };
    let mut killed_by_health = false;
    let mut killed_by_timer = false;
    let completion_deadline = spec.max_completion_time.map(|d| Instant::now() + d);
    let mut killed = false;
    let mut kill_started = Instant::now();
    let mut sigkill_at: Option<Instant> = None;
    let exit = loop {
        let deadline = sigkill_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86400));
        tokio::select! {
            status = child.wait() => break status,
            Some(req) = kill_rx.recv() => {
                if killed {
                    // A later kill may only shorten the grace period, never extend it.
                    let wanted = kill_started + req.grace;
                    if sigkill_at.is_some_and(|at| wanted < at) {
                        sigkill_at = Some(wanted.max(Instant::now()));
                    }
                    continue;
                }
                killed = true;
                kill_started = Instant::now();
                if req.send_killing {
                    report(with_container(mk(TaskState::Killing, TaskStatusSource::Executor, None, None)));
                }
                tracing::info!(task_id = %spec.task_id, pid, grace = ?req.grace, "sending SIGTERM to task process group");
                process::log_line(&spec.sandbox, "stderr", &format!("Sending SIGTERM to process tree at pid {pid}"));
                process::signal_group(pid, Signal::SIGTERM);
                sigkill_at = Some(kill_started + req.grace);
            }
            Some(event) = health_rx.recv(), if !killed => match event {
                crate::health::HealthEvent::Healthy(healthy) => {
                    let mut st = with_container(mk(
                        TaskState::Running,
                        TaskStatusSource::Executor,
                        Some(TaskStatusReason::TaskHealthCheckStatusUpdated),
                        None,
                    ));
                    st.healthy = Some(healthy);
                    report(st);
                }
                crate::health::HealthEvent::Kill => {
                    tracing::info!(task_id = %spec.task_id, "health check failed too often, killing task");
                    killed = true;
                    killed_by_health = true;
                    kill_started = Instant::now();
                    if spec.killing_capable {
                        report(with_container(mk(TaskState::Killing, TaskStatusSource::Executor, None, None)));
                    }
                    process::signal_group(pid, Signal::SIGTERM);
                    sigkill_at = Some(kill_started + spec.task_grace);
                }
            },
            () = tokio::time::sleep_until(completion_deadline.unwrap_or(deadline)), if completion_deadline.is_some() && !killed => {
                tracing::info!(task_id = %spec.task_id, pid, "task exceeded its max_completion_time, killing it");
                killed = true;
                killed_by_timer = true;
                kill_started = Instant::now();
                process::signal_group(pid, Signal::SIGTERM);
                sigkill_at = Some(kill_started);
            }
            () = tokio::time::sleep_until(deadline), if sigkill_at.is_some() => {
                tracing::info!(task_id = %spec.task_id, pid, "grace period over, sending SIGKILL");
                process::log_line(&spec.sandbox, "stderr", &format!("Process {pid} did not terminate, sending SIGKILL to process tree at {pid}"));
                process::signal_group(pid, Signal::SIGKILL);
                sigkill_at = None;
            }
        }
    };
    // The container is destroyed with its executor: nothing of the task outlives it.
    process::signal_group(pid, Signal::SIGKILL);
    shared.records.remove(&spec.container_id);
    let message = match &exit {
        Ok(st) => describe_exit(st),
        Err(e) => format!("Failed to wait for the task: {e}"),
    };
    process::log_line(&spec.sandbox, "stderr", &format!("{message} (pid: {pid})"));
    // As the command executor decides: exit 0 is FINISHED even after a kill.
    let success = exit.as_ref().is_ok_and(|s| s.success());
    // As the (1.x) command and default executors decide.
    let (state, reason) = if killed_by_timer {
        (
            TaskState::Failed,
            Some(TaskStatusReason::MaxCompletionTimeReached),
        )
    } else if killed {
        (TaskState::Killed, None)
    } else if success {
        (TaskState::Finished, None)
    } else {
        (TaskState::Failed, None)
    };
    shared.lock().task_exited(&spec.framework_id, &spec.task_id);
    let mut last = with_container(mk(state, TaskStatusSource::Executor, reason, Some(message)));
    if killed_by_health {
        last.healthy = Some(false);
    }
    drop(health_rx);
    report(last);
}

fn prepare_sandbox(spec: &RunSpec) -> anyhow::Result<()> {
    std::fs::create_dir_all(&spec.sandbox)?;
    let latest = spec.runs_dir.join("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(&spec.container_id, &latest)?;
    for f in ["stdout", "stderr"] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.sandbox.join(f))?;
    }
    Ok(())
}

/// Writes each `SECRET` volume's value to its file in the sandbox, as Mesos' `volume/secret`
/// isolator does (mesos-lite has no mounts: the file is written in place). The file is
/// mode 0400 for `RO` volumes and 0600 for `RW`; its directories 0700. Only `VALUE`
/// secrets (no secret resolver) at sandbox-relative paths are supported.
pub fn write_secret_volumes(sandbox: &Path, volumes: &[Volume]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    for v in volumes {
        let Some(source) = &v.source else { continue };
        if source.r#type != Some(VolumeSourceType::Secret) {
            continue;
        }
        let secret = source
            .secret
            .as_ref()
            .ok_or("volume.source.secret is not specified")?;
        let data = match (&secret.r#type, &secret.value, &secret.reference) {
            (Some(SecretType::Value), Some(value), None) => value.data.as_slice(),
            (Some(SecretType::Reference), _, _) => {
                return Err(
                    "secret of type REFERENCE needs a secret resolver, which mesos-lite lacks"
                        .into(),
                );
            }
            _ => return Err("invalid secret: type VALUE needs `value` and no `reference`".into()),
        };
        let rel = Path::new(&v.container_path);
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if v.container_path.is_empty() || !plain {
            return Err(format!(
                "secret volume path {:?} must be relative to the sandbox, without `..` \
                 (mesos-lite does not mount into other paths)",
                v.container_path
            ));
        }
        let path = sandbox.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("creating secret file {}: {e}", path.display()))?;
        f.write_all(data)
            .map_err(|e| format!("writing secret file {}: {e}", path.display()))?;
        if v.mode == VolumeMode::Ro {
            f.set_permissions(std::fs::Permissions::from_mode(0o400))
                .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The command executor's environment, then `command.environment`, then the role.
fn environment(spec: &RunSpec) -> Vec<(String, String)> {
    let sandbox = spec.sandbox.display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("MESOS_FRAMEWORK_ID".into(), spec.framework_id.clone()),
        ("MESOS_EXECUTOR_ID".into(), spec.executor_id.clone()),
        ("MESOS_SLAVE_ID".into(), spec.agent_id.clone()),
        ("MESOS_AGENT_ENDPOINT".into(), spec.agent_endpoint.clone()),
        ("MESOS_SLAVE_PID".into(), spec.agent_pid.clone()),
        ("MESOS_DIRECTORY".into(), sandbox.clone()),
        ("MESOS_SANDBOX".into(), sandbox),
        (
            "MESOS_CHECKPOINT".into(),
            if spec.checkpoint { "1" } else { "0" }.into(),
        ),
        ("MESOS_HTTP_COMMAND_EXECUTOR".into(), "0".into()),
        (
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".into(),
            "5secs".into(),
        ),
        ("LIBPROCESS_PORT".into(), "0".into()),
    ];
    if spec.checkpoint {
        env.push(("MESOS_RECOVERY_TIMEOUT".into(), "15mins".into()));
        env.push(("MESOS_SUBSCRIPTION_BACKOFF_MAX".into(), "2secs".into()));
    }
    if let Some(e) = &spec.command.environment {
        for v in &e.variables {
            if let Some(value) = &v.value {
                env.push((v.name.clone(), value.clone()));
            }
        }
    }
    env.push(("MESOS_ALLOCATION_ROLE".into(), spec.role.clone()));
    env
}

/// `Command exited with status N` / `Command terminated with signal Terminated`.
fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("Command exited with status {code}");
    }
    match status.signal() {
        Some(sig) => format!("Command terminated with signal {}", signal_name(sig)),
        None => "Command terminated".into(),
    }
}

fn signal_name(sig: i32) -> String {
    let name = match Signal::try_from(sig) {
        Ok(Signal::SIGHUP) => "Hangup",
        Ok(Signal::SIGINT) => "Interrupt",
        Ok(Signal::SIGQUIT) => "Quit",
        Ok(Signal::SIGILL) => "Illegal instruction",
        Ok(Signal::SIGABRT) => "Aborted",
        Ok(Signal::SIGBUS) => "Bus error",
        Ok(Signal::SIGFPE) => "Floating point exception",
        Ok(Signal::SIGKILL) => "Killed",
        Ok(Signal::SIGSEGV) => "Segmentation fault",
        Ok(Signal::SIGPIPE) => "Broken pipe",
        Ok(Signal::SIGALRM) => "Alarm clock",
        Ok(Signal::SIGTERM) => "Terminated",
        Ok(Signal::SIGUSR1) => "User defined signal 1",
        Ok(Signal::SIGUSR2) => "User defined signal 2",
        _ => return format!("Unknown signal {sig}"),
    };
    name.to_string()
}
