//! The README's quickstart, run verbatim: the docs cannot rot.

use std::process::Command;
use std::time::Duration;

use concord_e2e::{binary, free_port, repo_path};

/// The commands of the first ```sh block under `## Quickstart`, comments stripped.
fn quickstart_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("README.md");
    let section = readme
        .split("## Quickstart")
        .nth(1)
        .expect("a Quickstart section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn the_readme_gives_exactly_two_commands_and_ci_runs_the_test_one() {
    let commands = quickstart_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let ci = std::fs::read_to_string(repo_path(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run must call `{}`",
        commands[1]
    );
}

#[test]
fn the_quickstart_runs_the_click_fraud_job_with_alerts_and_dev_down_leaves_nothing() {
    let run = quickstart_commands().remove(0);
    let state = tempfile::tempdir().expect("tmp");
    let (etcd, peer, mesos, api) = (free_port(), free_port(), free_port(), free_port());
    // Ports and state of our own, so this never meets a developer's running stack;
    // the binaries were built by the test command already.
    let flags = format!(
        "--etcd-port {etcd} --etcd-peer-port {peer} --mesos-port {mesos} --api-port {api} --state-dir {}",
        state.path().display()
    );
    let guard = DevDown(state.path().to_path_buf());
    // `dev up` writes the CLI's context here, never into ~/.concord.
    let home = tempfile::tempdir().expect("tmp");
    let config = home.path().join("concord-config");
    let out = Command::new("timeout")
        .args(["600", "bash", "-c", &run])
        .current_dir(repo_path(""))
        .env("CONCORD_DEV_FLAGS", &flags)
        .env("CONCORD_SKIP_BUILD", "1")
        .env("CONCORD_CONFIG", &config)
        .env_remove("CONCORD_TOKEN")
        .env_remove("CONCORD_CA")
        .output()
        .expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("topology/clickfraud created"), "{stdout}");
    assert!(stdout.contains("successfully rolled out"), "{stdout}");
    assert!(
        stdout.contains("\"alert\":true"),
        "the quickstart shows alerts:\n{stdout}"
    );
    // The alerts sink logs `key<TAB>value`: counts per publisher carry the
    // publisher as their key.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("pub-") && l.contains("\"key\":\"pub-")),
        "the quickstart shows per-publisher alerts:\n{stdout}"
    );
    // Messages name the state directory in use, not the default one.
    assert!(
        stdout.contains(&format!(
            "Stop it with `concord dev down --state-dir {}`",
            state.path().display()
        )),
        "{stdout}"
    );

    // `dev up` names the dashboard, and the controller serves it there.
    let dashboard = format!("http://127.0.0.1:{api}/ui/");
    assert!(
        stdout.contains(&format!("dashboard   {dashboard}")),
        "{stdout}"
    );
    let page = Command::new("curl")
        .args(["-sf", "--max-time", "5", &dashboard])
        .output()
        .expect("run curl");
    assert!(
        String::from_utf8_lossy(&page.stdout).contains("<title>Concord dashboard</title>"),
        "GET {dashboard}: {}",
        String::from_utf8_lossy(&page.stderr)
    );

    // `dev up` made a token (0600, the controller's token-file format) and a current
    // context `dev` naming it: the CLI works with no flags and no CONCORD_API, and a
    // request without the token is refused.
    check_generated_token_and_context(state.path(), &config, api);

    let pids: Vec<String> = ["etcd", "mesos-lite", "concord-controller"]
        .iter()
        .filter_map(|n| std::fs::read_to_string(state.path().join(format!("{n}.pid"))).ok())
        .filter_map(|s| s.split_whitespace().next().map(str::to_owned))
        .collect();
    assert_eq!(pids.len(), 3);

    // `dev status`: exit 0 and every component running, with the PIDs `up` recorded.
    let status = dev_status(state.path());
    let status_out = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(0), "{status_out}");
    for (name, pid) in ["etcd", "mesos-lite", "concord-controller"]
        .iter()
        .zip(&pids)
    {
        assert!(
            status_out
                .lines()
                .any(|l| l.starts_with(name) && l.contains(&format!("running (pid {pid})"))),
            "{name} running in:\n{status_out}"
        );
    }

    drop(guard);
    // (`dev down` keeps the token and the context for the next `up`; `--purge` below
    // removes both.) It has waited for each process; give init a moment to reap them.
    for pid in &pids {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "pid {pid} survived dev down");
    }
    // ... and exit 1 once stopped.
    let status = dev_status(state.path());
    let status_out = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(1), "{status_out}");
    assert_eq!(
        status_out
            .lines()
            .filter(|l| l.trim_end().ends_with("stopped"))
            .count(),
        3,
        "{status_out}"
    );
    // No task process of this stack survives either (their sandboxes are in the state dir).
    for entry in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
    {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && alive(&pid)
        {
            assert!(
                !cwd.starts_with(state.path()),
                "a task survived dev down: {}",
                entry.path().display()
            );
        }
    }

    // `dev down --purge` removes the state directory with its token, and the context
    // that named it.
    let out = Command::new(binary("concord"))
        .args(["dev", "down", "--purge", "--state-dir"])
        .arg(state.path())
        .env("CONCORD_CONFIG", &config)
        .output()
        .expect("run concord dev down --purge");
    let down_out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{down_out}");
    assert!(!state.path().exists(), "{down_out}");
    assert!(down_out.contains("removed context \"dev\""), "{down_out}");
    let left = std::fs::read_to_string(&config).expect("config");
    assert!(!left.contains("dev"), "{left}");
}

fn check_generated_token_and_context(state: &std::path::Path, config: &std::path::Path, api: u16) {
    use std::os::unix::fs::PermissionsExt;
    let token_file = std::fs::canonicalize(state).expect("state").join("token");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&token_file), 0o600, "{}", token_file.display());
    assert_eq!(mode(config), 0o600, "{}", config.display());
    let line = std::fs::read_to_string(&token_file).expect("token file");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{line:?}");
    assert!(
        words[0].len() == 64 && words[0].chars().all(|c| c.is_ascii_hexdigit()),
        "32 random bytes in hex: {line:?}"
    );
    assert_eq!(&words[1..], ["admin", "dev"]);
    let server = format!("http://127.0.0.1:{api}");
    let context = std::fs::read_to_string(config).expect("config");
    assert!(context.contains("currentContext: dev"), "{context}");
    assert!(context.contains(&format!("server: {server}")), "{context}");
    assert!(
        context.contains(&format!("tokenFile: {}", token_file.display())),
        "{context}"
    );

    let bare = |args: &[&str]| {
        Command::new(binary("concord"))
            .args(args)
            .env("CONCORD_CONFIG", config)
            .env_remove("CONCORD_API")
            .env_remove("CONCORD_TOKEN")
            .env_remove("CONCORD_CA")
            .output()
            .expect("run concord")
    };
    let out = bare(&["get", "topologies"]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && listed.contains("clickfraud"),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let current = bare(&["config", "current-context"]);
    assert_eq!(String::from_utf8_lossy(&current.stdout).trim(), "dev");
    let view = String::from_utf8_lossy(&bare(&["config", "view"]).stdout).into_owned();
    assert!(
        !view.contains(words[0]),
        "the token file's path only: {view}"
    );

    for (token, expect) in [(None, "401"), (Some(words[0]), "200")] {
        let mut curl = Command::new("curl");
        curl.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ]);
        if let Some(token) = token {
            curl.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = curl
            .arg(format!("{server}/apis/concord.io/v1alpha1/topologies"))
            .output()
            .expect("run curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expect,
            "GET the topologies with token {}",
            token.is_some()
        );
    }
}

/// Whether a process runs (a zombie waiting to be reaped by its new parent does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

fn dev_status(state: &std::path::Path) -> std::process::Output {
    Command::new(binary("concord"))
        .args(["dev", "status", "--state-dir"])
        .arg(state)
        .output()
        .expect("run concord dev status")
}

/// Stops the stack even when an assertion fails.
struct DevDown(std::path::PathBuf);

impl Drop for DevDown {
    fn drop(&mut self) {
        let _ = Command::new(binary("concord"))
            .args(["dev", "down", "--state-dir"])
            .arg(&self.0)
            .output();
    }
}
