//! The API refuses what a web page can make a browser send to it
//! (`controller/src/request_guard.rs`): a real headless Chromium loads a page from another
//! origin, which tries a no-cors POST (no preflight, no Content-Type) of a topology that
//! would run a command, a GitRepository, a task kill, a rollback, a form POST and a
//! credentialed fetch. Each is refused, and etcd holds nothing afterwards. The controller
//! runs without tokens, the worst case: the guard alone must stop them.
//!
//! Without a browser, the same rules over plain HTTP: the request the issue reproduced
//! (no Content-Type, `Origin` and `Sec-Fetch-Site` of another site), a write without a
//! body type, and a DNS-rebound `Host`.

mod browser;

use std::time::Duration;

use browser::{Driver, browser, require_exe};
use concord_e2e::{Controller, Etcd, wait_for};
use fantoccini::Locator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NO_MESOS: &str = "http://127.0.0.1:1";
const PREFIX: &str = "/concord";
const TOPOLOGIES: &str = "/apis/concord.io/v1alpha1/namespaces/default/topologies";
const REPOS: &str = "/apis/concord.io/v1alpha1/namespaces/default/gitrepositories";

/// A controller that only serves the API (no election, so it writes nothing to etcd by
/// itself): every key under the prefix comes from a request.
async fn api_only(etcd: &Etcd) -> Controller {
    Controller::start_with(
        &etcd.url,
        NO_MESOS,
        PREFIX,
        &["--no-scheduler", "--no-gitops"],
    )
    .await
}

async fn stored_keys(etcd: &Etcd) -> Vec<String> {
    let mut client = etcd.client().await;
    let resp = client
        .get(
            PREFIX,
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await
        .expect("etcd get");
    resp.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

/// `concord_http_requests_total` summed over the lines whose labels contain all `labels`.
async fn requests_counted(c: &Controller, labels: &[&str]) -> u64 {
    let text = reqwest::get(format!("{}/metrics", c.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with("concord_http_requests_total{"))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A valid topology whose process operator would run a command on the agents.
fn topology_json() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "concord.io/v1alpha1", "kind": "Topology", "metadata": {"name": "pwned"},
        "spec": {"operators": [{"name": "x", "runtime": {"process": {
            "command": "sh", "args": ["-c", "touch /tmp/concord-pwned"]}}}]}
    })
}

/// A valid GitRepository.
fn repo_json() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "concord.io/v1alpha1", "kind": "GitRepository", "metadata": {"name": "pwned"},
        "spec": {"url": "https://example.invalid/r.git"}
    })
}

/// The attacker's page: every attempt it makes, then `#done` with what the browser saw.
fn attacker_page(api: &str) -> String {
    let topology = topology_json();
    let repo = repo_json();
    format!(
        r#"<!doctype html><html><body><pre id="log"></pre><script>
const api = "{api}";
const topology = JSON.stringify({topology});
const repo = JSON.stringify({repo});
const results = {{}};
async function attempt(name, make) {{
  try {{ const r = await make(); results[name] = "answered " + r.type + " " + r.status; }}
  catch (e) {{ results[name] = "failed " + e; }}
}}
(async () => {{
  await attempt("no-cors topology", () => fetch(api + "{TOPOLOGIES}",
    {{method: "POST", mode: "no-cors", body: new Blob([topology])}}));
  await attempt("no-cors text/plain topology", () => fetch(api + "{TOPOLOGIES}",
    {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: topology}}));
  await attempt("no-cors gitrepository", () => fetch(api + "{REPOS}",
    {{method: "POST", mode: "no-cors", body: new Blob([repo])}}));
  await attempt("no-cors kill", () => fetch(api + "{TOPOLOGIES}/x/tasks/t/kill",
    {{method: "POST", mode: "no-cors"}}));
  await attempt("no-cors rollback", () => fetch(api + "{TOPOLOGIES}/x/rollback",
    {{method: "POST", mode: "no-cors"}}));
  await attempt("credentialed json", () => fetch(api + "{TOPOLOGIES}",
    {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}}, body: topology}}));
  // A form whose text/plain body is the topology's JSON, posted into a frame.
  const frame = document.createElement("iframe");
  frame.name = "sink";
  document.body.appendChild(frame);
  const form = document.createElement("form");
  form.method = "POST"; form.enctype = "text/plain"; form.target = "sink";
  form.action = api + "{TOPOLOGIES}";
  const input = document.createElement("input");
  input.name = topology.slice(0, -1) + ', "pad": "'; input.value = '"}}';
  form.appendChild(input);
  document.body.appendChild(form);
  await new Promise((done) => {{ frame.onload = done; form.submit(); }});
  results["form post"] = "submitted";
  const out = document.createElement("div");
  out.id = "done";
  out.textContent = JSON.stringify(results);
  document.body.appendChild(out);
}})();
</script></body></html>"#
    )
}

/// Serves `page` to every request on a free loopback port until dropped.
struct PageServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    async fn start(page: String) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind page server");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let page = page.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    // One request per connection; the request itself does not matter.
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_write_through_the_users_browser() {
    require_exe("chromium");
    require_exe("chromedriver");
    let etcd = Etcd::start().await;
    let c = api_only(&etcd).await;
    assert!(stored_keys(&etcd).await.is_empty());
    let pages = PageServer::start(attacker_page(&c.url)).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = browser(&driver, profile.path()).await;

    // `localhost` is another site than `127.0.0.1` (Sec-Fetch-Site: cross-site); another
    // port on the same address is the same site but another origin (same-site).
    let mut seen = Vec::new();
    for origin in [
        format!("http://localhost:{}", pages.port),
        format!("http://127.0.0.1:{}", pages.port),
    ] {
        client.goto(&format!("{origin}/")).await.expect("open page");
        let done = wait_for(Duration::from_secs(30), "the page's attempts", || async {
            client
                .find(Locator::Id("done"))
                .await
                .ok()?
                .text()
                .await
                .ok()
        })
        .await;
        seen.push(format!("{origin}: {done}"));
        // A CORS request is stopped at its preflight, which the API never grants.
        assert!(done.contains("\"credentialed json\":\"failed"), "{done}");
    }
    let _ = client.close().await;

    assert_eq!(
        stored_keys(&etcd).await,
        Vec::<String>::new(),
        "nothing may be stored; the page saw {seen:#?}"
    );
    // The writes reached the controller and it refused them (rather than the browser
    // never sending them): five POSTs from each origin, plus the form's.
    let refused = requests_counted(&c, &["method=\"POST\"", "code=\"403\""]).await;
    assert!(
        refused >= 12,
        "expected the page's 12 POSTs to be refused with 403, counted {refused}; {seen:#?}"
    );
    let accepted = requests_counted(&c, &["method=\"POST\"", "code=\"2"]).await;
    assert_eq!(accepted, 0, "no POST may succeed");

    // The same bodies, sent as a program sends them, are valid and stored: the page
    // failed because of where it came from, not because of what it sent.
    let http = reqwest::Client::new();
    for (path, body) in [(TOPOLOGIES, topology_json()), (REPOS, repo_json())] {
        let resp = http
            .post(format!("{}{path}", c.url))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn writes_a_browser_could_send_unasked_are_refused_over_http() {
    let etcd = Etcd::start().await;
    let c = api_only(&etcd).await;
    let http = reqwest::Client::new();
    let topology = topology_json().to_string();
    let collection = format!("{}{TOPOLOGIES}", c.url);

    // The request the issue reproduced: it answered 201 and the command ran.
    let resp = http
        .post(&collection)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(topology.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 403);
    let status: serde_json::Value = resp.json().await.expect("a Status");
    assert_eq!(status["reason"], "Forbidden", "{status}");

    // From a program, without a body type: 415 naming what is expected.
    let resp = http
        .post(&collection)
        .body(topology.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 415);
    let status: serde_json::Value = resp.json().await.expect("a Status");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("application/json"), "{message}");

    // A DNS-rebound name reaches the loopback listener with its own Host.
    let port = c.url.rsplit(':').next().unwrap_or("0");
    let rebound = reqwest::Client::builder()
        .resolve(
            "rebind.evil.example",
            format!("127.0.0.1:{port}").parse().expect("addr"),
        )
        .build()
        .expect("client");
    let resp = rebound
        .get(format!("http://rebind.evil.example:{port}{TOPOLOGIES}"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 403);

    assert!(stored_keys(&etcd).await.is_empty(), "nothing stored");

    // What programs and the dashboard send still works: a typed write, and a link to
    // the dashboard followed from another site.
    let resp = http
        .post(&collection)
        .header("content-type", "application/json")
        .body(topology)
        .send()
        .await
        .expect("post");
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let resp = http
        .get(format!("{}/ui/", c.url))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .expect("get ui");
    assert_eq!(resp.status(), 200);
}
