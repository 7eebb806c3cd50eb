//! Task health checks (COMMAND, HTTP, TCP), run by the command executor as Mesos'
//! health checker does: first check after `delay_seconds`, then every
//! `interval_seconds`; failures during `grace_period_seconds` (before the first
//! success) are ignored; every other failure reports unhealthy, and
//! `consecutive_failures` of them kill the task; the first success, and the first after
//! failures, reports healthy.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::wire::{HealthCheck, HealthCheckType};

/// What the checker tells the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEvent {
    /// Health changed (or another failure): send TASK_RUNNING with `healthy`.
    Healthy(bool),
    /// Too many consecutive failures: kill the task.
    Kill,
}

/// Starts the checker; it stops when the receiver is dropped.
pub fn start(
    check: HealthCheck,
    sandbox: PathBuf,
    env: Vec<(String, String)>,
) -> mpsc::UnboundedReceiver<HealthEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(check, sandbox, env, tx));
    rx
}

fn secs(v: f64) -> Duration {
    if v.is_finite() && v > 0.0 {
        Duration::from_secs_f64(v)
    } else {
        Duration::ZERO
    }
}

async fn run(
    check: HealthCheck,
    sandbox: PathBuf,
    env: Vec<(String, String)>,
    tx: mpsc::UnboundedSender<HealthEvent>,
) {
    let start = Instant::now();
    let grace = secs(check.grace_period_seconds);
    let interval = secs(check.interval_seconds).max(Duration::from_millis(10));
    // Zero means no timeout.
    let timeout = match secs(check.timeout_seconds) {
        Duration::ZERO => Duration::from_secs(86400 * 365),
        t => t,
    };
    let mut initializing = true;
    let mut failures = 0u32;
    tokio::time::sleep(secs(check.delay_seconds)).await;
    loop {
        let ok = tokio::time::timeout(timeout, probe(&check, &sandbox, &env))
            .await
            .unwrap_or(false);
        if ok {
            if (initializing || failures > 0) && tx.send(HealthEvent::Healthy(true)).is_err() {
                return;
            }
            initializing = false;
            failures = 0;
        } else if !(initializing && !grace.is_zero() && start.elapsed() <= grace) {
            failures += 1;
            if tx.send(HealthEvent::Healthy(false)).is_err() {
                return;
            }
            if failures >= check.consecutive_failures.max(1) && tx.send(HealthEvent::Kill).is_err()
            {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

async fn probe(check: &HealthCheck, sandbox: &std::path::Path, env: &[(String, String)]) -> bool {
    let kind = check.r#type.clone().unwrap_or_else(|| {
        if check.http.is_some() {
            HealthCheckType::Http
        } else if check.tcp.is_some() {
            HealthCheckType::Tcp
        } else {
            HealthCheckType::Command
        }
    });
    match kind {
        HealthCheckType::Http => {
            let Some(http) = &check.http else {
                return false;
            };
            let scheme = http.scheme.clone().unwrap_or_else(|| "http".into());
            let path = http.path.clone().unwrap_or_default();
            let path = if path.starts_with('/') || path.is_empty() {
                path
            } else {
                format!("/{path}")
            };
            let url = format!("{scheme}://127.0.0.1:{}{path}", http.port);
            let client = reqwest::Client::new();
            match client.get(url).send().await {
                Ok(r) => {
                    let code = r.status().as_u16();
                    if http.statuses.is_empty() {
                        (200..400).contains(&code)
                    } else {
                        http.statuses.contains(&u32::from(code))
                    }
                }
                Err(_) => false,
            }
        }
        HealthCheckType::Tcp => {
            let Some(tcp) = &check.tcp else { return false };
            let Ok(port) = u16::try_from(tcp.port) else {
                return false;
            };
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        }
        _ => {
            let Some(cmd) = &check.command else {
                return false;
            };
            let mut c = if cmd.shell {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(cmd.value.clone().unwrap_or_default());
                c
            } else {
                let mut c = tokio::process::Command::new(cmd.value.clone().unwrap_or_default());
                if let Some((argv0, rest)) = cmd.arguments.split_first() {
                    c.arg0(argv0);
                    c.args(rest);
                }
                c
            };
            c.current_dir(sandbox)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            for (k, v) in env {
                c.env(k, v);
            }
            if let Some(e) = &cmd.environment {
                for v in &e.variables {
                    if let Some(value) = &v.value {
                        c.env(&v.name, value);
                    }
                }
            }
            matches!(c.status().await, Ok(s) if s.success())
        }
    }
}
