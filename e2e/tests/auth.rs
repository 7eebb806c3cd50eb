//! API bearer tokens: unauthenticated and read-only clients are refused writes.

use concord_e2e::{Controller, Etcd, concord, repo_path};

const ADMIN: &str = "admin-0123456789abcdef";
const READER: &str = "reader-0123456789abcdef";

fn spec(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "concord.io/v1alpha1", "kind": "Topology", "metadata": {"name": name},
        "spec": {"operators": [{"name": "gen", "runtime": {"builtin": {"name": "generator"}}}]}
    })
}

#[tokio::test]
async fn tokens_gate_reads_and_writes_by_role() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!("# role per token\n{ADMIN} admin ops\n{READER} readonly dashboard\n"),
    )
    .expect("write");
    let c = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:1",
        "/concord",
        &[
            "--no-scheduler",
            "--token-file",
            file.to_str().expect("utf-8"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let item = format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/t",
        c.url
    );
    let list = format!("{}/apis/concord.io/v1alpha1/topologies", c.url);

    // Probes stay open; everything else needs a token.
    assert_eq!(
        http.get(format!("{}/readyz", c.url))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    let resp = http.get(&list).send().await.expect("list");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_eq!(
        http.get(&list)
            .bearer_auth("wrong-token-0123456789")
            .send()
            .await
            .expect("list")
            .status(),
        401
    );
    assert_eq!(
        http.get(format!("{}/metrics", c.url))
            .send()
            .await
            .expect("metrics")
            .status(),
        401
    );

    // Read-only: reads yes, writes no; nothing stored.
    assert_eq!(
        http.get(&list)
            .bearer_auth(READER)
            .send()
            .await
            .expect("list")
            .status(),
        200
    );
    let resp = http
        .put(&item)
        .bearer_auth(READER)
        .json(&spec("t"))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.expect("body").contains("read-only"));
    assert_eq!(
        http.put(&item)
            .json(&spec("t"))
            .send()
            .await
            .expect("put")
            .status(),
        401
    );
    assert!(
        etcd.dump("/concord/topologies/").await.is_empty(),
        "refused writes stored nothing"
    );

    // Admin writes.
    assert_eq!(
        http.put(&item)
            .bearer_auth(ADMIN)
            .json(&spec("t"))
            .send()
            .await
            .expect("put")
            .status(),
        201
    );
    assert_eq!(
        http.delete(&item)
            .bearer_auth(READER)
            .send()
            .await
            .expect("delete")
            .status(),
        403
    );

    // The CLI sends CONCORD_TOKEN; without it the message says what to set.
    let example = repo_path("manifests/examples/wordcount.yaml");
    let out = concord(&c.url, &["get", "topologies"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONCORD_TOKEN"));
    let out = concord(
        &c.url,
        &[
            "--token",
            READER,
            "apply",
            "-f",
            example.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = concord(
        &c.url,
        &[
            "--token",
            ADMIN,
            "apply",
            "-f",
            example.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = concord(&c.url, &["--token", READER, "get", "topologies"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("wordcount"));
    // The token never appears in the controller's log.
    let log = c.process.logs();
    assert!(
        !log.contains(ADMIN) && !log.contains(READER),
        "a token was logged"
    );
}

#[test]
fn a_bad_token_file_stops_the_controller_with_the_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tokens");
    std::fs::write(&file, "short admin\n").expect("write");
    let out = std::process::Command::new(concord_e2e::binary("concord-controller"))
        .args(["--no-scheduler", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens:1") && err.contains("shorter than 16"),
        "{err}"
    );
}
