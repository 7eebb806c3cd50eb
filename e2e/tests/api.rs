//! The controller's HTTP API over real HTTP, with a real etcd behind it.

use std::time::Duration;

use concord_controller::Store;
use concord_e2e::{Controller, Etcd, invalid_corpus, wait_for};
use concord_schemas::api::{ApiStatus, ApplyResponse, WatchEvent, WatchEventType};
use concord_schemas::{Topology, TopologyStatus};
use futures::StreamExt;

const PREFIX: &str = "/concord";
const NO_MESOS: &str = "http://127.0.0.1:1";

fn spec_json(name: &str, instances: u32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "concord.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": name},
        "spec": {"operators": [
            {"name": "source", "runtime": {"builtin": {"name": "generator"}}},
            {"name": "count", "instances": instances, "runtime": {"builtin": {"name": "keyed-count"}},
             "inputs": [{"from": "source", "partitioning": "key"}]}
        ]}
    })
}

fn item_url(c: &Controller, name: &str) -> String {
    format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/{name}",
        c.url
    )
}

async fn stack() -> (Etcd, Controller) {
    let etcd = Etcd::start().await;
    let controller = Controller::start(&etcd.url, NO_MESOS, PREFIX).await;
    (etcd, controller)
}

#[tokio::test]
async fn apply_get_and_list_over_http() {
    let (etcd, c) = stack().await;
    let http = reqwest::Client::new();
    let resp = http
        .put(item_url(&c, "wc"))
        .json(&spec_json("wc", 2))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 201);
    let created: ApplyResponse = resp.json().await.expect("json");
    assert_eq!(created.outcome.to_string(), "created");
    assert_eq!(created.object.metadata.generation, Some(1));

    let resp = http
        .put(item_url(&c, "wc"))
        .json(&spec_json("wc", 2))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<ApplyResponse>()
            .await
            .expect("json")
            .outcome
            .to_string(),
        "unchanged"
    );

    // YAML bodies are accepted too.
    let yaml = serde_yaml_ng::to_string(&spec_json("wc", 3)).expect("yaml");
    let resp = http
        .put(item_url(&c, "wc"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    let updated: ApplyResponse = resp.json().await.expect("json");
    assert_eq!(updated.outcome.to_string(), "configured");
    assert_eq!(updated.object.metadata.generation, Some(2));

    let got: Topology = http
        .get(item_url(&c, "wc"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got.spec.operators[1].instances, 3);
    let list: serde_json::Value = http
        .get(format!("{}/apis/concord.io/v1alpha1/topologies", c.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert!(list["resourceVersion"].as_str().is_some());

    let missing = http.get(item_url(&c, "nope")).send().await.expect("get");
    assert_eq!(missing.status(), 404);
    drop(etcd);
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let (etcd, c) = stack().await;
    let http = reqwest::Client::new();
    http.put(item_url(&c, "wc"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("seed");
    let before = etcd.dump(PREFIX).await;

    // Invalid spec: 422 with field paths.
    let mut bad = spec_json("wc", 1);
    bad["spec"]["operators"][1]["inputs"][0]["from"] = "nowhere".into();
    let resp = http
        .put(item_url(&c, "wc"))
        .json(&bad)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 422);
    let status: ApiStatus = resp.json().await.expect("status body");
    assert_eq!(status.reason, "Invalid");
    assert!(
        status
            .errors
            .iter()
            .any(|e| e.path.as_deref() == Some("spec.operators[1].inputs[0].from")),
        "errors: {:?}",
        status.errors
    );

    // Syntax error in JSON: line and column.
    let resp = http
        .put(item_url(&c, "wc"))
        .header("content-type", "application/json")
        .body("{\"apiVersion\": \"concord.io/v1alpha1\",\n \"kind\": ")
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 422);
    let status: ApiStatus = resp.json().await.expect("status body");
    assert!(status.errors[0].line.is_some(), "{status:?}");

    // Too large: 413 with the limit named.
    // (Its own client: the server answers before reading the body and closes the
    // connection, which must not poison the pooled connections used below.)
    let big = vec![b' '; 2 * 1024 * 1024];
    let resp = reqwest::Client::new()
        .put(item_url(&c, "wc"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.expect("body").contains("1 MiB"));

    // Unsupported media type.
    let resp = http
        .put(item_url(&c, "wc"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 415);

    // Name in the URL and the body disagree.
    let resp = http
        .put(item_url(&c, "other"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 400);

    // Stale resourceVersion: 409.
    let resp = http
        .put(format!("{}?resourceVersion=1", item_url(&c, "wc")))
        .json(&spec_json("wc", 4))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<ApiStatus>().await.expect("json").reason,
        "Conflict"
    );

    // Dry run validates and plans but stores nothing.
    let resp = http
        .put(format!("{}?dryRun=true", item_url(&c, "wc")))
        .json(&spec_json("wc", 9))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    let plan: ApplyResponse = resp.json().await.expect("json");
    assert!(plan.dry_run);
    assert!(!plan.plan.is_empty());

    assert_eq!(
        etcd.dump(PREFIX).await,
        before,
        "no rejected request may change etcd"
    );
}

fn collection_url(c: &Controller) -> String {
    format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/topologies",
        c.url
    )
}

/// Reads a rejection: a 4xx whose body is a `Status` object agreeing with the HTTP code.
async fn rejection(resp: reqwest::Response, what: &str) -> ApiStatus {
    let code = resp.status();
    let body = resp.text().await.expect("body");
    assert!(code.is_client_error(), "{what}: answered {code}: {body}");
    let status: ApiStatus = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: body is not a Status ({e}): {body}"));
    assert_eq!(status.kind, "Status", "{what}");
    assert_eq!(status.status, "Failure", "{what}");
    assert_eq!(status.code, code.as_u16(), "{what}");
    assert!(!status.reason.is_empty(), "{what}: {status:?}");
    status
}

/// The CLI rejects the corpus before sending anything (`cli.rs`); here every file goes
/// straight to the API as `application/yaml`, both as a create (POST to the collection)
/// and as an update of an existing topology (PUT to its URL).
#[tokio::test]
async fn the_invalid_corpus_sent_straight_to_the_api_is_rejected_and_stores_nothing() {
    let (etcd, c) = stack().await;
    let http = reqwest::Client::new();
    let seeded = http
        .put(item_url(&c, "wc"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("seed");
    assert!(seeded.status().is_success(), "{}", seeded.status());
    let before = etcd.dump(PREFIX).await;
    assert!(!before.is_empty());

    let corpus = invalid_corpus();
    assert!(
        corpus.len() >= 15,
        "the corpus has only {} files",
        corpus.len()
    );
    for (path, expect) in &corpus {
        let body = std::fs::read(path).expect("read case");
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        for (method, url) in [
            (reqwest::Method::POST, collection_url(&c)),
            (reqwest::Method::PUT, item_url(&c, "wc")),
        ] {
            let what = format!("{method} {name}");
            let resp = http
                .request(method, &url)
                .header("content-type", "application/yaml")
                .body(body.clone())
                .send()
                .await
                .expect("send");
            let status = rejection(resp, &what).await;
            assert!(
                status.message.contains(expect.as_str()),
                "{what}: expected {expect:?} in {:?}",
                status.message
            );
            if status.code == 422 {
                assert!(!status.errors.is_empty(), "{what}: 422 without errors");
            }
        }
    }

    // The generated oversized case, over the API's 1 MiB body limit. 2 MiB rather than
    // the CLI test's 10 MB: the server answers 413 and closes the connection without
    // reading the body, and a body much larger than the socket buffers would fail to
    // send before the answer could be read. Its own client, so the closed connection
    // does not meet the pooled ones.
    let mut huge =
        String::from("apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: huge}\n# ");
    huge.push_str(&"x".repeat(2 * 1024 * 1024));
    let resp = reqwest::Client::new()
        .post(collection_url(&c))
        .header("content-type", "application/yaml")
        .body(huge)
        .send()
        .await
        .expect("post");
    let status = rejection(resp, "POST 2 MiB").await;
    assert_eq!(status.code, 413);
    assert!(status.message.contains("1 MiB"), "{status:?}");

    assert_eq!(
        etcd.dump(PREFIX).await,
        before,
        "etcd must hold exactly what it held before"
    );
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut Vec<u8>,
) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                return serde_json::from_slice::<WatchEvent>(&line).expect("watch line is JSON");
            }
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            buf.extend_from_slice(&chunk);
        }
    })
    .await
    .expect("watch event within 10s")
}

#[tokio::test]
async fn watch_streams_spec_and_status_changes_and_resumes() {
    let (etcd, c) = stack().await;
    let http = reqwest::Client::new();
    http.put(item_url(&c, "wc"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("seed");

    let collection = format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/topologies",
        c.url
    );
    let resp = http
        .get(format!("{collection}?watch=true"))
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();

    let first = next_event(&mut stream, &mut buf).await;
    assert_eq!(
        first.kind,
        WatchEventType::Added,
        "the current state is replayed first"
    );

    http.put(item_url(&c, "wc"))
        .json(&spec_json("wc", 2))
        .send()
        .await
        .expect("update");
    let modified = next_event(&mut stream, &mut buf).await;
    assert_eq!(modified.kind, WatchEventType::Modified);
    let object = modified.object.expect("object");
    assert_eq!(object.metadata.generation, Some(2));
    let after_spec = modified.revision.clone();

    // A status write shows up as a modification carrying the status.
    let store = Store::connect(std::slice::from_ref(&etcd.url), PREFIX)
        .await
        .expect("store");
    let status = TopologyStatus {
        observed_generation: 2,
        ..Default::default()
    };
    store
        .put_status("default", "wc", &status)
        .await
        .expect("status");
    let with_status = next_event(&mut stream, &mut buf).await;
    assert_eq!(with_status.object.and_then(|o| o.status), Some(status));

    // Resuming after the spec change replays exactly the later status change.
    let resp = http
        .get(format!(
            "{collection}?watch=true&resourceVersion={after_spec}"
        ))
        .send()
        .await
        .expect("watch");
    let mut resumed = resp.bytes_stream();
    let mut buf2 = Vec::new();
    let replay = next_event(&mut resumed, &mut buf2).await;
    assert_eq!(replay.kind, WatchEventType::Modified);
    assert_eq!(
        replay
            .object
            .and_then(|o| o.status)
            .map(|s| s.observed_generation),
        Some(2)
    );

    // Deletion: mark, finalize, DELETED.
    let stored = store
        .get("default", "wc")
        .await
        .expect("get")
        .expect("exists");
    store
        .finalize_delete("default", "wc", stored.mod_revision)
        .await
        .expect("finalize");
    let deleted = next_event(&mut stream, &mut buf).await;
    assert_eq!(deleted.kind, WatchEventType::Deleted);
}

#[tokio::test]
async fn watch_from_a_compacted_revision_says_gone() {
    let (etcd, c) = stack().await;
    let http = reqwest::Client::new();
    for i in 1..5 {
        http.put(item_url(&c, "wc"))
            .json(&spec_json("wc", i))
            .send()
            .await
            .expect("put");
    }
    let mut client = etcd.client().await;
    let rev = client
        .get("x", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    client.compact(rev, None).await.expect("compact");

    let resp = http
        .get(format!(
            "{}?watch=true&resourceVersion=2",
            item_url(&c, "wc")
        ))
        .send()
        .await
        .expect("watch");
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let event = next_event(&mut stream, &mut buf).await;
    assert_eq!(event.kind, WatchEventType::Error);
    assert_eq!(event.code, Some(410), "{event:?}");
}

#[tokio::test]
async fn health_readiness_metrics_and_schema() {
    let (mut etcd, c) = stack().await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{}/healthz", c.url))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{}/readyz", c.url))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    http.put(item_url(&c, "wc"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("put");

    let metrics = http
        .get(format!("{}/metrics", c.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("concord_http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("concord_applies_total{outcome=\"created\"} 1"),
        "{metrics}"
    );

    let schema: serde_json::Value = http
        .get(format!("{}/schemas/topology.schema.json", c.url))
        .send()
        .await
        .expect("schema")
        .json()
        .await
        .expect("json");
    assert_eq!(schema["$id"], concord_schemas::TOPOLOGY_SCHEMA_ID);

    // etcd gone: readiness fails, liveness and the process stay up.
    etcd.process().kill();
    let url = format!("{}/readyz", c.url);
    wait_for(
        Duration::from_secs(15),
        "readyz to report etcd down",
        || {
            let req = http.get(&url).send();
            async move { (req.await.ok()?.status() == 503).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        http.get(format!("{}/healthz", c.url))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
}

#[tokio::test]
async fn a_controller_started_before_etcd_serves_health_and_becomes_ready_when_etcd_appears() {
    let port = concord_e2e::free_port();
    let etcd_url = format!("http://127.0.0.1:{port}");
    let c = Controller::start(&etcd_url, NO_MESOS, PREFIX).await;
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/readyz", c.url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.expect("body").contains("etcd"));
    let resp = http
        .put(item_url(&c, "wc"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 503, "writes fail clearly while etcd is away");

    let _etcd = Etcd::start_on(port).await;
    let url = format!("{}/readyz", c.url);
    wait_for(Duration::from_secs(30), "readyz once etcd is up", || {
        let req = http.get(&url).send();
        async move { (req.await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let resp = http
        .put(item_url(&c, "wc"))
        .json(&spec_json("wc", 1))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 201);
}
