//! Bounds on what the controller reads and answers, over real HTTP with a real etcd:
//! pages of at most 500 objects (`?limit=N&continue=TOKEN`), one consistent snapshot
//! across pages, and the CLI following the tokens so users still see everything; a
//! bounded number of executors per metrics or traces request; and a private GitOps cache.

use std::collections::BTreeSet;

use concord_e2e::{Controller, Etcd, Process, binary, concord, free_port, wait_http_ok};
use concord_schemas::api::TopologyList;
use concord_schemas::gitops::GitRepositoryList;
use futures::StreamExt;

const NO_MESOS: &str = "http://127.0.0.1:1";
const API: &str = "/apis/concord.io/v1alpha1";

fn topology(ns: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "concord.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"operators": [{"name": "source", "runtime": {"builtin": {"name": "generator"}}}]}
    })
}

async fn put(http: &reqwest::Client, base: &str, ns: &str, name: &str) {
    let url = format!("{base}{API}/namespaces/{ns}/topologies/{name}");
    let resp = http
        .put(url)
        .json(&topology(ns, name))
        .send()
        .await
        .expect("put");
    assert!(resp.status().is_success(), "{name}: {}", resp.status());
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> T {
    let resp = http.get(url).send().await.expect("get");
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.expect("json")
}

async fn status_of(http: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = http.get(url).send().await.expect("get");
    let code = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        code,
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged_consistent_and_followed_by_the_cli() {
    let etcd = Etcd::start().await;
    // Nothing here is synced or scheduled: only the API and etcd.
    let c = Controller::start_with(
        &etcd.url,
        NO_MESOS,
        "/concord",
        &["--no-scheduler", "--no-gitops"],
    )
    .await;
    let http = reqwest::Client::new();
    let mut names: Vec<(String, String)> = (0..503)
        .map(|i| ("default".to_owned(), format!("t{i:03}")))
        .collect();
    names.push(("other".into(), "a".into()));
    names.push(("other".into(), "b".into()));
    futures::stream::iter(names.clone())
        .for_each_concurrent(16, |(ns, name)| {
            let http = http.clone();
            let base = c.url.clone();
            async move { put(&http, &base, &ns, &name).await }
        })
        .await;

    // Without a limit: the default page of 500, and a token for the rest.
    let all = format!("{}{API}/topologies", c.url);
    let first: TopologyList = get_json(&http, &all).await;
    assert_eq!(first.items.len(), 500);
    assert!(first.metadata.continue_token.is_some());
    // A larger limit is lowered to the maximum.
    let big: TopologyList = get_json(&http, &format!("{all}?limit=100000")).await;
    assert_eq!(big.items.len(), 500);

    // Pages of 200 cover everything once, in key order, at one revision, even while a
    // topology is added between pages.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut revision = None;
    let mut pages = 0;
    loop {
        let url = match &token {
            None => format!("{all}?limit=200"),
            Some(t) => format!("{all}?limit=200&continue={t}"),
        };
        let page: TopologyList = get_json(&http, &url).await;
        pages += 1;
        assert!(page.items.len() <= 200);
        revision.get_or_insert(page.resource_version.clone());
        assert_eq!(Some(&page.resource_version), revision.as_ref());
        seen.extend(
            page.items
                .iter()
                .map(|t| (t.metadata.namespace.clone(), t.metadata.name.clone())),
        );
        if pages == 1 {
            // Sorts into the last page's range: a list read now would show it there.
            put(&http, &c.url, "default", "zlate").await;
        }
        match page.metadata.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every topology once, in order; not the one added after the first page"
    );

    // A namespace's list pages the same way; its token is refused elsewhere.
    let default = format!("{}{API}/namespaces/default/topologies", c.url);
    let page: TopologyList = get_json(&http, &format!("{default}?limit=502")).await;
    assert_eq!(page.items.len(), 500);
    let token = page.metadata.continue_token.expect("more in default");
    put(&http, &c.url, "default", "zz").await;
    let rest: TopologyList = get_json(&http, &format!("{default}?continue={token}")).await;
    assert_eq!(
        rest.items
            .iter()
            .map(|t| t.metadata.name.as_str())
            .collect::<Vec<_>>(),
        ["t500", "t501", "t502", "zlate"],
        "the snapshot of the first page: `zz` came after it"
    );
    let other = format!(
        "{}{API}/namespaces/other/topologies?continue={token}",
        c.url
    );
    let (code, message) = status_of(&http, &other).await;
    assert_eq!(code, 400, "{message}");
    let (revision, key) = token.split_once('.').expect("<revision>.<key>");
    let future = format!(
        "{}.{key}",
        revision.parse::<i64>().expect("revision") + 1_000_000
    );
    let (code, message) = status_of(&http, &format!("{default}?continue={future}")).await;
    assert_eq!(code, 400, "{message}");
    for bad in ["limit=0", "limit=lots", "continue=forged"] {
        let (code, message) = status_of(&http, &format!("{all}?{bad}")).await;
        assert_eq!(code, 400, "{bad}: {message}");
    }

    // The CLI follows the tokens: every topology, the late one included.
    let out = concord(&c.url, &["get", "topologies", "-A", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed: BTreeSet<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| format!("{}/{}", t["metadata"]["namespace"], t["metadata"]["name"]))
        .collect();
    assert_eq!(listed.len(), 507);
    assert!(listed.contains("\"default\"/\"zz\""));

    // A token whose revision etcd compacted meanwhile: 410, list again.
    let mut client = etcd.client().await;
    let now = client
        .get("/concord/", None)
        .await
        .expect("get")
        .header()
        .map(|h| h.revision())
        .expect("revision");
    client.compact(now, None).await.expect("compact");
    let (code, message) = status_of(&http, &format!("{all}?continue={token}")).await;
    assert_eq!(code, 410, "{message}");
    assert!(message.contains("list again"), "{message}");

    // GitRepositories page the same way (nothing syncs them here: --no-gitops).
    let repos = format!("{}{API}/namespaces/default/gitrepositories", c.url);
    for name in ["r1", "r2", "r3"] {
        let resp = http
            .post(&repos)
            .json(&serde_json::json!({
                "apiVersion": "concord.io/v1alpha1", "kind": "GitRepository",
                "metadata": {"name": name},
                "spec": {"url": format!("https://git.example.com/{name}.git")}
            }))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 201);
    }
    let page: GitRepositoryList = get_json(&http, &format!("{repos}?limit=2")).await;
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_token.expect("one more");
    let rest: GitRepositoryList = get_json(&http, &format!("{repos}?continue={token}")).await;
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].metadata.name, "r3");
    assert!(rest.metadata.continue_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_traces_read_a_bounded_number_of_executors() {
    let etcd = Etcd::start().await;
    let c = Controller::start_with(
        &etcd.url,
        NO_MESOS,
        "/concord",
        &["--no-scheduler", "--no-gitops"],
    )
    .await;
    let http = reqwest::Client::new();
    put(&http, &c.url, "default", "wide").await;
    // More endpoint keys than one request reads (executors write these; nothing stops a
    // misbehaving one from writing many). No address: each is an instant error.
    let mut client = etcd.client().await;
    let max = 2000;
    for i in 0..max + 5 {
        let key = format!("/concord/endpoints/default/wide/source/{i}/task-{i:05}");
        client
            .put(key, r#"{"metricsAddr":"","ready":false}"#, None)
            .await
            .expect("put");
    }
    let base = format!("{}{API}/namespaces/default/topologies/wide", c.url);
    let metrics: serde_json::Value = get_json(&http, &format!("{base}/metrics")).await;
    assert_eq!(metrics["truncated"], true);
    let tasks: usize = metrics["operators"]
        .as_array()
        .expect("operators")
        .iter()
        .map(|o| o["tasks"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(tasks, max);
    let traces: serde_json::Value = get_json(&http, &format!("{base}/traces")).await;
    assert_eq!(traces["truncated"], true);
    assert_eq!(traces["tasks"].as_array().map(Vec::len), Some(max));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitops_cache_is_private_and_a_shared_one_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let controller = |extra: &[&str], port: u16| {
        let mut cmd = std::process::Command::new(binary("concord-controller"));
        cmd.args(["--etcd", "http://127.0.0.1:1", "--no-scheduler"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env_remove("STATE_DIRECTORY")
            .env_remove("CONCORD_STATE_DIR")
            .env_remove("CONCORD_GITOPS_CACHE")
            .env("XDG_STATE_HOME", tmp.path().join("xdg"))
            .env("HOME", tmp.path().join("home"));
        cmd
    };

    // A cache directory others can write to: a clear error at start, nothing served.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let out = controller(
        &["--gitops-cache-dir", &shared.display().to_string()],
        free_port(),
    )
    .output()
    .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the GitOps mirror cache cannot be used")
            && err.contains("writable by its group or by everyone")
            && err.contains(&shared.display().to_string()),
        "{err}"
    );

    // By default: `concord/gitops` under $XDG_STATE_HOME, both created 0700.
    let port = free_port();
    let log = tmp.path().join("controller.log");
    let _running = Process::spawn("concord-controller", controller(&[], port), log);
    wait_http_ok(
        &format!("http://127.0.0.1:{port}/healthz"),
        "controller /healthz",
    )
    .await;
    let state = tmp.path().join("xdg/concord");
    for dir in [state.clone(), state.join("gitops")] {
        let mode = std::fs::metadata(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
}
