//! The `concord` binary against a real controller and etcd, as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use concord_e2e::{
    Controller, Etcd, binary, concord, concord_with_stdin, invalid_corpus, relocatable, repo_path,
};

const PREFIX: &str = "/concord";
const NO_MESOS: &str = "http://127.0.0.1:1";

async fn stack() -> (Etcd, Controller) {
    let etcd = Etcd::start().await;
    let controller = Controller::start(&etcd.url, NO_MESOS, PREFIX).await;
    (etcd, controller)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn generation(api: &str, name: &str) -> i64 {
    let out = concord(api, &["get", "topology", name, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["metadata"]["generation"].as_i64().expect("generation")
}

#[tokio::test]
async fn apply_prints_created_unchanged_configured_with_generations() {
    let (_etcd, c) = stack().await;
    let example = repo_path("manifests/examples/wordcount.yaml");
    let example = example.to_str().expect("utf-8 path");

    let out = concord(&c.url, &["apply", "-f", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "topology/wordcount created\n");
    assert_eq!(generation(&c.url, "wordcount"), 1);

    let out = concord(&c.url, &["apply", "-f", example]);
    assert_eq!(text(&out.stdout), "topology/wordcount unchanged\n");
    assert_eq!(generation(&c.url, "wordcount"), 1);

    // `diff` right after `apply` is empty and exits 0.
    let out = concord(&c.url, &["diff", "-f", example]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");

    // Edit one operator: diff shows it and exits 1; dry-run stores nothing; apply configures.
    let source = relocatable(&std::fs::read_to_string(example).expect("read"));
    let edited = scale_operator(&source, "count", 5);
    let dir = tempfile::tempdir().expect("tmp");
    let edited_path = dir.path().join("wordcount.yaml");
    std::fs::write(&edited_path, edited).expect("write");
    let edited_path = edited_path.to_str().expect("utf-8");

    let out = concord(&c.url, &["diff", "-f", edited_path]);
    assert_eq!(out.status.code(), Some(1));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("count: scale") && plan.contains("-> 5"),
        "{plan}"
    );
    assert!(plan.contains("lines: unchanged"), "{plan}");

    let out = concord(&c.url, &["apply", "--dry-run", "-f", edited_path]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("configured (dry run)"));
    assert_eq!(generation(&c.url, "wordcount"), 1, "dry run stores nothing");

    let out = concord(&c.url, &["apply", "-f", edited_path]);
    assert_eq!(text(&out.stdout), "topology/wordcount configured\n");
    assert_eq!(generation(&c.url, "wordcount"), 2);

    // stdin works and a whole directory applies every example.
    let out = concord_with_stdin(&c.url, &["apply", "-f", "-"], Some(source.as_bytes()));
    assert_eq!(text(&out.stdout), "topology/wordcount configured\n");
    let examples = repo_path("manifests/examples");
    let out = concord(&c.url, &["apply", "-f", examples.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("topology/clickfraud created"));

    let out = concord(&c.url, &["get", "topologies"]);
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("clickfraud") && table.contains("wordcount"),
        "{table}"
    );

    let out = concord(&c.url, &["get", "topology", "wordcount", "-o", "yaml"]);
    let parsed =
        concord_schemas::parse_yaml(&out.stdout, "get-output.yaml").expect("get -o yaml re-parses");
    assert_eq!(parsed[0].metadata.name, "wordcount");

    let out = concord(&c.url, &["describe", "topology", "wordcount"]);
    let described = text(&out.stdout);
    for needle in ["Name:         wordcount", "Operators:", "count", "Events:"] {
        assert!(
            described.contains(needle),
            "missing {needle:?} in\n{described}"
        );
    }
}

/// Sets `instances:` of operator `op` in a manifest, keeping the rest of the text.
fn scale_operator(source: &str, op: &str, instances: u32) -> String {
    let mut out = Vec::new();
    let mut in_op = false;
    for line in source.lines() {
        if line.trim_start().starts_with("- name:") {
            in_op = line.trim_end().ends_with(&format!("name: {op}"));
        }
        if in_op && line.trim_start().starts_with("instances:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push(format!("{indent}instances: {instances}"));
            continue;
        }
        out.push(line.to_owned());
    }
    out.join("\n") + "\n"
}

#[tokio::test]
async fn every_invalid_file_is_rejected_with_a_located_message_and_nothing_stored() {
    let (etcd, c) = stack().await;
    let example = repo_path("manifests/examples/wordcount.yaml");
    concord(&c.url, &["apply", "-f", example.to_str().expect("utf-8")]);
    let before = etcd.dump(PREFIX).await;
    assert!(!before.is_empty());

    let dir = repo_path("manifests/testdata/invalid");
    let mut checked = 0;
    for (path, expect) in invalid_corpus() {
        let out = concord(&c.url, &["apply", "-f", path.to_str().expect("utf-8")]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&expect),
            "{}: expected {expect:?} in {stderr:?}",
            path.display()
        );
        assert!(
            stderr.contains(path.file_name().and_then(|n| n.to_str()).expect("name")),
            "{stderr} names no file"
        );
        checked += 1;
    }
    assert!(checked >= 15, "the corpus has only {checked} files");

    // A 10 MB document.
    let tmp = tempfile::tempdir().expect("tmp");
    let huge = tmp.path().join("huge.yaml");
    let mut body =
        String::from("apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: huge}\n# ");
    body.push_str(&"x".repeat(10 * 1024 * 1024));
    std::fs::write(&huge, body).expect("write");
    let out = concord(&c.url, &["apply", "-f", huge.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("at most"),
        "{}",
        text(&out.stderr)
    );

    // A valid file next to an invalid one: nothing is applied at all.
    let mixed = tmp.path().join("mixed");
    std::fs::create_dir(&mixed).expect("mkdir");
    let valid = "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: mixed}\nspec:\n  operators:\n    - {name: gen, runtime: {builtin: {name: generator}}}\n";
    assert!(concord_schemas::parse_yaml(valid.as_bytes(), "a.yaml").is_ok());
    std::fs::write(mixed.join("a.yaml"), valid).expect("write");
    std::fs::copy(dir.join("cycle.yaml"), mixed.join("b.yaml")).expect("copy");
    let out = concord(&c.url, &["apply", "-f", mixed.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));

    // diff reports bad input with exit 2.
    let out = concord(
        &c.url,
        &[
            "diff",
            "-f",
            dir.join("cycle.yaml").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));

    assert_eq!(
        etcd.dump(PREFIX).await,
        before,
        "etcd must hold exactly what it held before"
    );
}

#[test]
fn unreachable_controller_and_usage_errors_have_their_exit_codes() {
    let out = concord("http://127.0.0.1:9", &["get", "topologies"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("CONCORD_API"),
        "{}",
        text(&out.stderr)
    );

    let out = concord("http://127.0.0.1:9", &["get", "widgets"]);
    assert_eq!(out.status.code(), Some(2));
    let out = concord("http://127.0.0.1:9", &["apply"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn get_watch_shows_each_change_as_it_happens() {
    let (_etcd, c) = stack().await;
    let example = repo_path("manifests/examples/wordcount.yaml");
    let example = example.to_str().expect("utf-8");
    concord(&c.url, &["apply", "-f", example]);

    let mut child = Command::new(binary("concord"))
        .args(["get", "topology", "wordcount", "-w"])
        .env("CONCORD_API", &c.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn watch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a watch line within 10s")
    };
    assert!(next_line().starts_with("NAME"));
    let initial = next_line();
    assert!(initial.starts_with("wordcount"), "{initial}");

    let source = relocatable(&std::fs::read_to_string(example).expect("read"));
    let dir = tempfile::tempdir().expect("tmp");
    let edited = dir.path().join("wc.yaml");
    for (i, instances) in [3u32, 4].into_iter().enumerate() {
        std::fs::write(&edited, scale_operator(&source, "count", instances)).expect("write");
        let out = concord(&c.url, &["apply", "-f", edited.to_str().expect("utf-8")]);
        assert!(out.status.success());
        let line = next_line();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], "wordcount", "{line}");
        assert_eq!(
            cols[3],
            (i + 2).to_string(),
            "generation column in {line:?}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn relative_artifacts_resolve_against_the_manifest_and_the_api_refuses_unresolved_ones() {
    let (_etcd, c) = stack().await;
    let example = repo_path("manifests/examples/clickfraud.yaml");
    let out = concord(&c.url, &["apply", "-f", example.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = concord(&c.url, &["get", "topology", "clickfraud", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let enrich = v["spec"]["operators"]
        .as_array()
        .expect("ops")
        .iter()
        .find(|o| o["name"] == "enrich")
        .expect("enrich")
        .clone();
    let uris: Vec<String> = enrich["runtime"]["process"]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["uri"].as_str().expect("uri").to_owned())
        .collect();
    for uri in &uris {
        let path = uri
            .strip_prefix("file://")
            .unwrap_or_else(|| panic!("{uri} is not a file:// URI"));
        assert!(std::path::Path::new(path).is_file(), "{path} exists");
    }

    // A missing relative file names the file and the field.
    let dir = tempfile::tempdir().expect("tmp");
    let source = std::fs::read_to_string(&example).expect("read");
    std::fs::write(dir.path().join("cf.yaml"), &source).expect("write");
    let out = concord(
        &c.url,
        &[
            "apply",
            "-f",
            dir.path().join("cf.yaml").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cf.yaml")
            && err.contains("artifacts[0].uri")
            && err.contains("relative to the manifest"),
        "{err}"
    );

    // The API itself refuses relative paths.
    let body = concord_schemas::parse_yaml(source.as_bytes(), "cf.yaml")
        .expect("valid")
        .remove(0);
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/clickfraud",
            c.url
        ))
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 422);
}
