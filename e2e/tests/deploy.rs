//! The deployment files under `manifests/deploy/` cannot rot: every `--flag` they (and
//! the README's real-cluster example) pass to `concord-controller` is one the built
//! binary's `--help` lists, and the Marathon app keeps the settings its README promises.

use std::collections::BTreeSet;
use std::process::Command;

use concord_e2e::{binary, repo_path};

/// The long flags `concord-controller --help` lists.
fn controller_flags() -> BTreeSet<String> {
    let out = Command::new(binary("concord-controller"))
        .arg("--help")
        .output()
        .expect("run concord-controller --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    // Only the option lines (`      --etcd <ETCD>`, `  -h, --help`), not flags that
    // descriptions mention.
    let options: String = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .collect::<Vec<_>>()
        .join("\n");
    let flags = long_flags(&options);
    assert!(
        flags.contains("--etcd") && flags.contains("--mesos"),
        "{help}"
    );
    flags
}

/// Every `--name` token in `text` (`--name=value` counts as `--name`).
fn long_flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | '[' | ']'))
        .filter_map(|token| token.strip_prefix("--"))
        .map(|rest| rest.split('=').next().unwrap_or_default())
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(|name| format!("--{name}"))
        .collect()
}

/// The command line of a systemd unit's `ExecStart=`, continuation lines joined.
fn exec_start(unit: &str) -> String {
    let mut joined = String::new();
    let mut in_exec = false;
    for line in unit.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ExecStart=") {
            in_exec = true;
            joined.push_str(rest);
        } else if in_exec {
            joined.push(' ');
            joined.push_str(line);
        } else {
            continue;
        }
        if let Some(stripped) = joined.strip_suffix('\\') {
            joined = stripped.to_owned();
        } else {
            in_exec = false;
        }
    }
    joined
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn assert_known(what: &str, used: &BTreeSet<String>, known: &BTreeSet<String>) {
    assert!(
        used.contains("--etcd") && used.contains("--mesos") && used.contains("--listen"),
        "{what} sets --etcd, --mesos and --listen: {used:?}"
    );
    let unknown: Vec<&String> = used.difference(known).collect();
    assert!(
        unknown.is_empty(),
        "{what} uses flags concord-controller does not have: {unknown:?} (it has {known:?})"
    );
}

#[test]
fn the_marathon_app_runs_the_controller_with_real_flags_one_instance_at_a_time() {
    let known = controller_flags();
    let text = read("manifests/deploy/marathon/concord-controller.json");
    let app: serde_json::Value = serde_json::from_str(&text).expect("the Marathon app is JSON");

    let cmd = app["cmd"].as_str().expect("cmd");
    let mut words = cmd.split_whitespace();
    assert_eq!(
        words.next(),
        Some("./concord-controller"),
        "runs the fetched binary"
    );
    assert!(
        app.get("args").is_none(),
        "Marathon takes cmd or args, not both"
    );
    assert_known("the Marathon app", &long_flags(cmd), &known);
    assert!(
        cmd.contains("--listen 0.0.0.0:$PORT0"),
        "listens on Marathon's port: {cmd}"
    );
    assert!(
        cmd.contains("--token-file"),
        "not on loopback: needs tokens"
    );
    assert!(
        cmd.contains("--tls-cert") && cmd.contains("--tls-key"),
        "tokens go over TLS: {cmd}"
    );
    assert_eq!(app["healthChecks"][0]["protocol"], "MESOS_HTTPS");
    assert_eq!(app["readinessChecks"][0]["protocol"], "HTTPS");

    let fetched: Vec<&str> = app["fetch"]
        .as_array()
        .expect("fetch")
        .iter()
        .filter_map(|f| f["uri"].as_str())
        .collect();
    assert!(
        fetched.iter().any(|u| u.ends_with("/concord-controller")),
        "{fetched:?}"
    );
    // No leader election yet: exactly one controller, the old one stopped first.
    assert_eq!(app["instances"], 1);
    assert_eq!(app["upgradeStrategy"]["minimumHealthCapacity"], 0);
    assert_eq!(app["upgradeStrategy"]["maximumOverCapacity"], 0);
    assert_eq!(app["healthChecks"][0]["path"], "/healthz");
    assert_eq!(app["readinessChecks"][0]["path"], "/readyz");
    assert_eq!(
        app["readinessChecks"][0]["portName"],
        app["portDefinitions"][0]["name"]
    );
}

#[test]
fn the_systemd_unit_and_the_readme_example_use_real_flags() {
    let known = controller_flags();
    let unit = read("manifests/deploy/systemd/concord-controller.service");
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(
            unit.lines().any(|l| l.trim() == section),
            "unit lacks {section}"
        );
    }
    let exec = exec_start(&unit);
    assert!(
        exec.starts_with("/usr/local/bin/concord-controller "),
        "ExecStart needs an absolute path: {exec:?}"
    );
    assert!(!exec.contains('\\'), "continuations joined: {exec:?}");
    assert_known("the systemd unit", &long_flags(&exec), &known);
    assert!(
        exec.contains("--token-file"),
        "not on loopback: needs tokens"
    );
    assert!(
        exec.contains("--tls-cert") && exec.contains("--tls-key"),
        "tokens go over TLS: {exec}"
    );

    let drop_in = read("manifests/deploy/systemd/concord-controller.service.d/local-etcd.conf");
    assert!(drop_in.lines().any(|l| l.trim() == "After=etcd.service"));
    assert!(
        !drop_in
            .lines()
            .any(|l| l.trim_start().starts_with("Requires=")),
        "restarting etcd must not stop the controller"
    );

    // The README's "Running the controller against a real Mesos cluster" example,
    // which these files follow.
    let readme = read("README.md");
    let section = readme
        .split("## Running the controller against a real Mesos cluster")
        .nth(1)
        .expect("the README section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its sh block");
    assert!(block.contains("concord-controller"), "{block}");
    assert_known("the README example", &long_flags(block), &known);
}

#[test]
fn flag_extraction_finds_long_flags_only() {
    let flags = long_flags("x --etcd a,b --listen=0.0.0.0:1 -h \"--log-json\" -- --Bad");
    assert_eq!(
        flags.into_iter().collect::<Vec<_>>(),
        vec!["--etcd", "--listen", "--log-json"]
    );
    assert_eq!(
        exec_start("[Service]\nExecStart=/bin/x \\\n    --a 1 \\\n    --b\nUser=u\n"),
        "/bin/x  --a 1  --b"
    );
}
