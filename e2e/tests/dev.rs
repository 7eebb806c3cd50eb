//! `concord dev up` and `dev status` when the stack cannot start: a missing etcd gives a
//! clear message and starts nothing; a component that dies names its log in the state
//! directory actually used. (A full `dev up` / `status` / `down` cycle runs in
//! `quickstart.rs`, which starts the stack once for both.)

use std::path::Path;
use std::process::{Command, Output};

use concord_e2e::{binary, free_port};

/// `concord dev up --detach` on free ports with `state` as the state directory.
fn dev_up(state: &Path, env: &[(&str, &std::ffi::OsStr)], remove: &[&str]) -> Output {
    let mut cmd = Command::new(binary("concord"));
    cmd.args(["dev", "up", "--detach", "--state-dir"])
        .arg(state)
        .args(["--etcd-port", &free_port().to_string()])
        .args(["--etcd-peer-port", &free_port().to_string()])
        .args(["--mesos-port", &free_port().to_string()])
        .args(["--api-port", &free_port().to_string()]);
    for name in remove {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("run concord dev up")
}

fn dev_status(state: &Path) -> Output {
    Command::new(binary("concord"))
        .args(["dev", "status", "--state-dir"])
        .arg(state)
        .output()
        .expect("run concord dev status")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dev_up_with_concord_etcd_bin_pointing_nowhere_says_so_and_starts_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let missing = tmp.path().join("no-such-etcd");
    let out = dev_up(&state, &[("CONCORD_ETCD_BIN", missing.as_os_str())], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("etcd not found"), "{stderr}");
    assert!(
        stderr.contains(&format!("CONCORD_ETCD_BIN is {}", missing.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install etcd-server"),
        "install advice: {stderr}"
    );
    assert!(
        !text(&out.stdout).contains("started "),
        "nothing may start: {}",
        text(&out.stdout)
    );
    assert!(
        !state.exists(),
        "no state directory for a stack that never started"
    );
}

#[test]
fn dev_up_without_etcd_on_path_says_how_to_install_it_and_starts_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    // A PATH holding nothing at all; concord finds mesos-lite and the controller next to
    // itself, so only etcd is missing.
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = dev_up(
        &state,
        &[("PATH", empty.as_os_str())],
        &["CONCORD_ETCD_BIN"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("etcd not found on PATH"), "{stderr}");
    assert!(stderr.contains("apt-get install etcd-server"), "{stderr}");
    assert!(stderr.contains("CONCORD_ETCD_BIN"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("started "),
        "{}",
        text(&out.stdout)
    );
    assert!(!state.exists());
}

#[test]
fn a_component_that_exits_at_start_up_is_reported_with_its_log_in_the_state_dir_used() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("custom-state");
    // An "etcd" that fails at once, like one whose data directory is unusable.
    let fake = tmp.path().join("fake-etcd");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'fake etcd: cannot start' >&2\nexit 1\n",
    )
    .expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = dev_up(&state, &[("CONCORD_ETCD_BIN", fake.as_os_str())], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let log = state.join("etcd.log");
    assert!(
        stderr.contains(&format!(
            "etcd exited during start-up; see its log {}",
            log.display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(".concord/dev"),
        "the default dir was not used: {stderr}"
    );
    let logged = std::fs::read_to_string(&log).expect("etcd.log");
    assert!(logged.contains("fake etcd: cannot start"), "{logged}");
    assert!(
        !text(&out.stdout).contains("started mesos-lite"),
        "nothing after etcd starts: {}",
        text(&out.stdout)
    );

    // Nothing is left running: status says so with exit 1.
    let out = dev_status(&state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    for name in ["etcd", "mesos-lite", "concord-controller"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.trim_end().ends_with("stopped")),
            "{name} stopped in:\n{stdout}"
        );
    }
}
