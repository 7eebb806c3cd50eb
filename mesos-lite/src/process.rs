//! Task processes: spawning in their own process group, signalling the whole group, and
//! the on-disk records that let a restarted mesos-lite kill what an earlier run left.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// PATH given to tasks when the environment has none (as the Mesos containerizer does).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run and how.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// `shell: true` runs `sh -c value`.
    pub shell: bool,
    /// The command (shell) or program (exec).
    pub value: String,
    /// argv for exec, verbatim (argv[0] included).
    pub arguments: Vec<String>,
    /// Variables set over the inherited environment, in order.
    pub env: Vec<(String, String)>,
    /// Working directory (the sandbox).
    pub cwd: PathBuf,
}

/// Spawns the task in a new process group with stdout/stderr appended to the sandbox's
/// `stdout`/`stderr` files.
pub fn spawn(spec: &ProcessSpec) -> Result<Child> {
    let stdout = open_append(&spec.cwd.join("stdout"))?;
    let stderr = open_append(&spec.cwd.join("stderr"))?;
    let mut cmd = if spec.shell {
        let mut c = Command::new("sh");
        c.arg("-c").arg(&spec.value);
        c
    } else {
        let program = resolve_program(&spec.value, &spec.cwd);
        let mut c = Command::new(&program);
        if let Some((argv0, rest)) = spec.arguments.split_first() {
            c.arg0(argv0);
            c.args(rest);
        }
        c
    };
    cmd.current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    if std::env::var_os("PATH").is_none() && !spec.env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", DEFAULT_PATH);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("Failed to execute '{}'", spec.value))
}

/// An exec `value` is looked up in the sandbox first, then on PATH.
fn resolve_program(value: &str, sandbox: &Path) -> PathBuf {
    if value.contains('/') {
        let p = Path::new(value);
        return if p.is_absolute() {
            p.to_path_buf()
        } else {
            sandbox.join(p)
        };
    }
    let in_sandbox = sandbox.join(value);
    if in_sandbox.is_file() {
        return in_sandbox;
    }
    PathBuf::from(value)
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// Appends a line to a sandbox log file (the command executor's own messages).
pub fn log_line(sandbox: &Path, file: &str, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = open_append(&sandbox.join(file)) {
        let _ = writeln!(f, "{line}");
    }
}

/// Sends `signal` to the process group led by `pid`; a vanished group is not an error.
pub fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(raw), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, ?signal, error = %e, "signalling task process group failed");
    }
}

/// The kernel's start time of `pid` (field 22 of `/proc/<pid>/stat`), to tell our
/// process from a later one that reused its pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records of live task process groups under `<work_dir>/meta/processes/`.
#[derive(Debug, Clone)]
pub struct ProcessRecords {
    dir: PathBuf,
}

impl ProcessRecords {
    /// Opens (creating) the record directory.
    pub fn open(work_dir: &Path) -> Result<Self> {
        let dir = work_dir.join("meta").join("processes");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(ProcessRecords { dir })
    }

    /// Records a started task process.
    pub fn add(&self, container_id: &str, pid: u32) {
        let Some(start) = start_time(pid) else { return };
        let path = self.dir.join(container_id);
        if let Err(e) = std::fs::write(&path, format!("{pid} {start}\n")) {
            tracing::warn!(path = %path.display(), error = %e, "cannot record task process");
        }
    }

    /// Forgets a task process.
    pub fn remove(&self, container_id: &str) {
        let _ = std::fs::remove_file(self.dir.join(container_id));
    }

    /// Kills the process groups recorded by an earlier run, when the pid still belongs to
    /// the very process we started (same start time), and clears the records.
    pub fn kill_leftovers(&self) -> usize {
        let mut killed = 0;
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(text) = std::fs::read_to_string(&path) {
                let mut parts = text.split_whitespace();
                let pid = parts.next().and_then(|p| p.parse::<u32>().ok());
                let start = parts.next().and_then(|p| p.parse::<u64>().ok());
                if let (Some(pid), Some(start)) = (pid, start)
                    && start_time(pid) == Some(start)
                {
                    tracing::info!(pid, record = %path.display(), "killing task left over from an earlier run");
                    signal_group(pid, Signal::SIGKILL);
                    killed += 1;
                }
            }
            let _ = std::fs::remove_file(&path);
        }
        killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
        assert!(start_time(u32::MAX).is_none());
    }
}
