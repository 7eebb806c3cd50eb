//! The `mesos-v1` example framework (`mesos/examples/sleep_framework.rs`) as a real
//! client: it runs against a master (a mesos-lite on a free port, or `MESOS_MASTER_URL`),
//! sees its `sleep 30` task RUNNING, and the master's `/state` lists the task. The
//! example is then interrupted by PID (it tears its framework down) and the master
//! stopped by PID.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `target/<profile>`, from this test's own path (`target/<profile>/deps/<test>`).
fn profile_dir() -> Result<PathBuf, Box<dyn std::error::Error + Send + Sync>> {
    let exe = std::env::current_exe()?;
    let deps = exe.parent().ok_or("test executable has no directory")?;
    Ok(deps.parent().ok_or("deps has no parent")?.to_path_buf())
}

/// The example's binary; built with cargo when this test runs without it (`cargo test
/// --workspace` builds examples, `cargo test -p mesos-lite` does not).
fn example_binary() -> Result<PathBuf, Box<dyn std::error::Error + Send + Sync>> {
    let profile = profile_dir()?;
    let path = profile.join("examples").join("sleep_framework");
    if path.exists() {
        return Ok(path);
    }
    let target = profile.parent().ok_or("profile dir has no parent")?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "mesos-v1",
        "--example",
        "sleep_framework",
    ])
    .arg("--target-dir")
    .arg(target)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status()?;
    if !status.success() || !path.exists() {
        return Err(fail(format!("building the example failed: {status}")));
    }
    Ok(path)
}

/// The example process, interrupted (then killed) by PID when dropped.
struct Example {
    child: Child,
    log: PathBuf,
}

impl Example {
    fn output(&self) -> String {
        let mut out = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut out);
        }
        out
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// Waits (bounded) for the exit status.
    async fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- sleep_framework output -----\n{}", self.output());
        }
    }
}

#[tokio::test]
async fn the_example_framework_runs_its_task_and_state_lists_it() -> TestResult {
    let binary = example_binary()?;
    let master = Master::start()?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("sleep_framework.out");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(binary)
        .args(["--master", &master.url, "--command", "sleep 30"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let mut example = Example { child, log };

    // The example prints `launching <task> on <host> (<agent>)`, then every update.
    let task_id = eventually("the example to see its task TASK_RUNNING", || {
        let out = example.output();
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("launching "))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        async move {
            let id = id?;
            out.contains(&format!("task {id} TASK_RUNNING"))
                .then_some(id)
        }
    })
    .await?;
    assert!(task_id.starts_with("sleep-"), "{task_id}");

    let state = eventually("GET /state to list the task running", || async {
        let state = master.get_json("/state").await.ok()?;
        let listed = state["frameworks"]
            .as_array()?
            .iter()
            .filter(|f| f["name"] == "sleep-framework")
            .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
            .any(|t| t["id"] == task_id.as_str() && t["state"] == "TASK_RUNNING");
        listed.then_some(state)
    })
    .await?;
    let framework = state["frameworks"]
        .as_array()
        .and_then(|fws| {
            fws.iter().find(|f| {
                f["tasks"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| t["id"] == task_id.as_str()))
            })
        })
        .cloned()
        .ok_or("framework of the task")?;
    assert_eq!(framework["active"], true);
    let framework_id = framework["id"].as_str().ok_or("framework id")?.to_owned();

    // Ctrl-C: the example tears its framework down and exits 130; the task is killed.
    example.signal(nix::sys::signal::Signal::SIGINT);
    let status = example
        .wait_exit()
        .await
        .ok_or("the example did not exit")?;
    assert_eq!(status.code(), Some(130), "{}", example.output());
    eventually("the torn-down framework to leave /state", || async {
        let state = master.get_json("/state").await.ok()?;
        let active = state["frameworks"]
            .as_array()?
            .iter()
            .any(|f| f["id"] == framework_id.as_str());
        let completed = state["completed_frameworks"]
            .as_array()?
            .iter()
            .any(|f| f["id"] == framework_id.as_str());
        (!active && completed).then_some(())
    })
    .await?;
    Ok(())
}
