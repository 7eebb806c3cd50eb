//! The web dashboard (`/ui/`, docs/dashboard.md): its files and the history endpoint over
//! HTTP, and the page itself in a real headless Chromium driven over WebDriver against a
//! real stack (etcd, mesos-lite, the controller, executors), changed with the CLI.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver`
//! (`scripts/lib.sh` installs them); without them it fails and says so. Screenshots go to
//! `target/dashboard-screenshots/`.

mod browser;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use browser::{Driver, browser, require_exe};
use concord_e2e::{Controller, Etcd, MesosLite, concord, free_port, target_dir, wait_for};
use fantoccini::{Client, Locator};
use futures::FutureExt;
use serde_json::{Value, json};

const NO_MESOS: &str = "http://127.0.0.1:1";
const API: &str = "/apis/concord.io/v1alpha1/namespaces/default/topologies";

fn spec_json(name: &str, count_instances: u32, rate: u32) -> Value {
    json!({
        "apiVersion": "concord.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": name},
        "spec": {"operators": [
            {"name": "source", "runtime": {"builtin": {"name": "generator"}}, "config": {"rate": rate}},
            {"name": "count", "instances": count_instances, "runtime": {"builtin": {"name": "keyed-count"}},
             "inputs": [{"from": "source", "partitioning": "key"}]}
        ]}
    })
}

async fn put(http: &reqwest::Client, c: &Controller, body: &Value) {
    let name = body["metadata"]["name"].as_str().expect("name");
    let resp = http
        .put(format!("{}{API}/{name}", c.url))
        .json(body)
        .send()
        .await
        .expect("put");
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

async fn history(http: &reqwest::Client, c: &Controller, name: &str, query: &str) -> (u16, Value) {
    let resp = http
        .get(format!("{}{API}/{name}/history{query}", c.url))
        .send()
        .await
        .expect("history");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("json"))
}

#[tokio::test]
async fn history_answers_earlier_generations_with_per_operator_changes() {
    let etcd = Etcd::start().await;
    let c = Controller::start_with(&etcd.url, NO_MESOS, "/concord", &["--no-scheduler"]).await;
    let http = reqwest::Client::new();

    put(&http, &c, &spec_json("h", 2, 100)).await;
    let (code, body) = history(&http, &c, "h", "").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "TopologyHistory");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["end"], "created");
    assert!(body["items"][0]["changes"].is_null());

    // Generation 2 scales count; a metadata-only write (labels) keeps generation 2;
    // generation 3 changes the source's config.
    put(&http, &c, &spec_json("h", 3, 100)).await;
    let mut labelled = spec_json("h", 3, 100);
    labelled["metadata"]["labels"] = json!({"team": "ads"});
    put(&http, &c, &labelled).await;
    let mut third = spec_json("h", 3, 250);
    third["metadata"]["labels"] = json!({"team": "ads"});
    put(&http, &c, &third).await;

    let (code, body) = history(&http, &c, "h", "").await;
    assert_eq!(code, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    let generations: Vec<i64> = items
        .iter()
        .filter_map(|i| i["generation"].as_i64())
        .collect();
    assert_eq!(
        generations,
        [3, 2, 1],
        "one item per generation, newest first: {body}"
    );
    assert_eq!(body["end"], "created");
    assert_eq!(items[0]["spec"]["operators"][0]["config"]["rate"], 250);
    let changes = &items[0]["changes"]["operators"];
    assert_eq!(changes[0]["name"], "source");
    assert_eq!(changes[0]["change"]["type"], "replaced", "{changes}");
    assert_eq!(changes[0]["change"]["fields"], json!(["config"]));
    assert_eq!(changes[1]["change"]["type"], "unchanged");
    let scaled = &items[1]["changes"]["operators"][1]["change"];
    assert_eq!(scaled, &json!({"type": "scaled", "from": 2, "to": 3}));
    assert!(items[2]["changes"].is_null());

    // A limit bounds the walk and says that more exist.
    let (_, body) = history(&http, &c, "h", "?limit=2").await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["end"], "limit");
    let (code, _) = history(&http, &c, "h", "?limit=0").await;
    assert_eq!(code, 400);
    let (code, _) = history(&http, &c, "h", "?limit=abc").await;
    assert_eq!(code, 400);
    let (code, body) = history(&http, &c, "nope", "").await;
    assert_eq!(code, 404, "{body}");

    // After etcd compacts the older revisions the walk stops there, without an error.
    let mut client = etcd.client().await;
    let rev = client
        .get("x", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    client.compact(rev, None).await.expect("compact");
    let (code, body) = history(&http, &c, "h", "").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["end"], "compacted", "{body}");
    assert_eq!(body["items"][0]["generation"], 3);

    // A topology deleted and created again does not inherit the old one's history.
    let resp = http
        .delete(format!("{}{API}/h", c.url))
        .send()
        .await
        .expect("delete");
    assert!(resp.status().is_success());
}

#[tokio::test]
async fn ui_files_are_served_without_a_token_and_the_api_still_needs_one() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tokens");
    std::fs::write(&file, "reader-token-0123456789 readonly ui\n").expect("write");
    let c = Controller::start_with(
        &etcd.url,
        NO_MESOS,
        "/concord",
        &[
            "--no-scheduler",
            "--token-file",
            file.to_str().expect("utf-8"),
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let resp = http.get(format!("{}/ui", c.url)).send().await.expect("get");
    assert_eq!(resp.status().as_u16(), 308);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("ui/"),
        "a relative redirect keeps a proxy's path prefix"
    );
    for (path, mime, needle) in [
        ("/ui/", "text/html", "<script src=\"app.js\"></script>"),
        (
            "/ui/app.js",
            "text/javascript",
            "../apis/concord.io/v1alpha1",
        ),
        ("/ui/app.css", "text/css", "svg.dag"),
    ] {
        let resp = http
            .get(format!("{}{path}", c.url))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(ct.starts_with(mime), "{path}: {ct}");
        assert!(resp.text().await.expect("text").contains(needle), "{path}");
    }
    let resp = http
        .get(format!("{}/ui/nope.js", c.url))
        .send()
        .await
        .expect("get");
    assert_eq!(
        resp.status().as_u16(),
        401,
        "unknown paths under /ui/ are not open"
    );
    let list = format!("{}/apis/concord.io/v1alpha1/topologies", c.url);
    let resp = http.get(&list).send().await.expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .get(&list)
        .bearer_auth("reader-token-0123456789")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
}

// ------------------------------------------------------------------------ the browser

fn screenshots_dir() -> PathBuf {
    // target/<profile>/ -> target/dashboard-screenshots/
    let dir = target_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(target_dir)
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("create screenshot dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let path = screenshots_dir().join(name);
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Text of the first element matching `css`, or `None` when there is none yet.
async fn text_of(client: &Client, css: &str) -> Option<String> {
    let v = client
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .ok()?;
    v.as_str().map(str::to_owned)
}

/// Waits until the element matching `css` has text for which `ok` holds.
async fn wait_text(
    client: &Client,
    css: &str,
    timeout: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = text_of(client, css).await;
        if let Some(t) = &text
            && ok(t)
        {
            return t.clone();
        }
        if Instant::now() > deadline {
            screenshot(client, "failure.png").await;
            panic!("timed out after {timeout:?} waiting for {css}; last text: {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finds the element matching `css` and runs `act` on it, again when the page replaced
/// the element in between (it re-renders on every watch event and metrics poll).
async fn with_element<F, Fut>(client: &Client, css: &str, what: &str, act: F)
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: Future<Output = Result<(), fantoccini::error::CmdError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let err = match client.find(Locator::Css(css)).await {
            Ok(el) => match act(el).await {
                Ok(()) => return,
                Err(e) => e,
            },
            Err(e) => e,
        };
        let text = err.to_string();
        let retry = text.contains("stale element") || text.contains("no such element");
        assert!(retry && Instant::now() < deadline, "{what} ({css}): {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(client: &Client, css: &str) {
    with_element(client, css, "click", |el| async move { el.click().await }).await;
}

/// Focuses the element and presses Enter on it, as a keyboard user would.
async fn press_enter(client: &Client, css: &str) {
    with_element(client, css, "press Enter", |el| {
        let client = client.clone();
        async move {
            let arg = serde_json::to_value(&el)
                .map_err(|e| fantoccini::error::CmdError::NotJson(e.to_string()))?;
            client
                .execute("arguments[0].focus(); return null;", vec![arg])
                .await?;
            el.send_keys("\u{E007}").await
        }
    })
    .await;
}

fn cli_ok(api: &str, args: &[&str]) -> String {
    let out = concord(api, args);
    assert!(
        out.status.success(),
        "concord {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const TOPOLOGY: &str = r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: dash}
spec:
  operators:
    - name: clicks
      runtime: {builtin: {name: generator}}
      config: {rate: 200}
      resources: {cpus: 0.1, mem: 32}
    - name: per-key-counts
      instances: 2
      runtime: {builtin: {name: keyed-count}}
      inputs: [{from: clicks, partitioning: key}]
      resources: {cpus: 0.1, mem: 32}
    - name: alerts
      runtime: {builtin: {name: sink}}
      inputs: [{from: per-key-counts, partitioning: shuffle}]
      resources: {cpus: 0.1, mem: 32}
"#;

/// Every control on the page has an accessible name and can take keyboard focus.
const UNLABELLED_CONTROLS: &str = r#"
const bad = [];
for (const el of document.querySelectorAll('a, button, input, select, textarea, [role="button"], [role="tab"]')) {
  const label = el.getAttribute('aria-label') || (el.id && document.querySelector(`label[for="${el.id}"]`)) ||
    el.closest('label') || (el.textContent || '').trim();
  const focusable = el.tabIndex >= 0 && !el.disabled;
  if (!label || !focusable) bad.push(el.outerHTML.slice(0, 120));
}
return bad;
"#;

async fn assert_controls_labelled(client: &Client, page: &str) {
    let bad = client
        .execute(UNLABELLED_CONTROLS, vec![])
        .await
        .expect("execute");
    assert_eq!(
        bad,
        json!([]),
        "{page}: controls without a label or keyboard focus"
    );
}

async fn in_browser<F, Fut>(client: Client, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let result = std::panic::AssertUnwindSafe(body(client.clone()))
        .catch_unwind()
        .await;
    // Always end the browser session: chromedriver then stops its Chromium.
    let _ = client.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium_follows_a_live_topology() {
    // Fail (not skip) without the browser, before starting anything.
    require_exe("chromium");
    require_exe("chromedriver");
    let etcd = Etcd::start().await;
    let mesos = MesosLite::start(2, 4.0, 4096).await;
    let c =
        Controller::start_with(&etcd.url, &mesos.url, "/concord", &["--kill-grace", "2s"]).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("tmp");
    let manifest_dir = tempfile::tempdir().expect("tmp");
    let manifest = manifest_dir.path().join("dash.yaml");
    std::fs::write(&manifest, TOPOLOGY).expect("write manifest");
    let api = c.url.clone();
    let client = browser(&driver, profile.path()).await;

    in_browser(client, |client| async move {
        let long = Duration::from_secs(60);
        client
            .goto(&format!("{api}/ui/"))
            .await
            .expect("open dashboard");
        wait_text(&client, "#empty", long, |t| t.contains("No topologies yet")).await;
        assert_controls_labelled(&client, "empty list").await;
        // Marks this page load: a reload would lose it.
        client
            .execute("window.__sameLoad = true; return null;", vec![])
            .await
            .expect("mark");

        let out = cli_ok(&api, &["apply", "-f", manifest.to_str().expect("utf-8")]);
        assert!(out.contains("topology/dash created"), "{out}");
        let row = r#"tr[data-topology="default/dash"]"#;
        wait_text(&client, &format!("{row} td"), long, |t| t == "dash").await;
        wait_text(
            &client,
            &format!(r#"{row} [data-cond="Ready"]"#),
            long,
            |t| t.starts_with("Ready: True"),
        )
        .await;
        wait_text(
            &client,
            &format!(r#"{row} [data-field="instances"]"#),
            long,
            |t| t == "4/4",
        )
        .await;
        wait_text(
            &client,
            &format!(r#"{row} [data-field="generation"]"#),
            long,
            |t| t == "1 / 1",
        )
        .await;
        let same = client
            .execute("return window.__sameLoad === true;", vec![])
            .await
            .expect("check");
        assert_eq!(same, json!(true), "the list updated without a reload");
        screenshot(&client, "01-topologies.png").await;

        // The topology page: the graph with live counts and metrics.
        click(&client, r##"a[href="#/topology/default/dash"]"##).await;
        let node = |op: &str, part: &str| format!(r#"g[data-op="{op}"] text.{part}"#);
        wait_text(&client, &node("per-key-counts", "counts"), long, |t| {
            t.starts_with("2/2 running")
        })
        .await;
        wait_text(
            &client,
            r#"text[data-edge="clicks->per-key-counts"]"#,
            long,
            |t| t == "key",
        )
        .await;
        wait_text(&client, &node("clicks", "rates"), long, |t| {
            !t.contains("out -/s")
        })
        .await;
        wait_text(&client, &node("alerts", "rates"), long, |t| {
            !t.contains("in -/s")
        })
        .await;
        wait_text(&client, &node("per-key-counts", "latency"), long, |t| {
            !t.starts_with("p99 -")
        })
        .await;
        assert_controls_labelled(&client, "topology page").await;

        // Scale one operator with the CLI: its node's count changes, without a reload.
        cli_ok(
            &api,
            &[
                "scale",
                "topology",
                "dash",
                "--operator",
                "per-key-counts",
                "--instances",
                "3",
            ],
        );
        wait_text(&client, &node("per-key-counts", "counts"), long, |t| {
            t.starts_with("3/3 running")
        })
        .await;
        wait_text(&client, &node("per-key-counts", "state"), long, |t| {
            t == "ready"
        })
        .await;
        wait_text(&client, &node("clicks", "counts"), long, |t| {
            t.starts_with("1/1 running")
        })
        .await;
        wait_text(&client, "#events", long, |t| t.contains("ScaledUp")).await;

        // Select the sink with the keyboard, then open one task's stdout.
        press_enter(&client, r#"g[data-op="alerts"]"#).await;
        wait_text(&client, "#tasks h2", long, |t| {
            t.starts_with("Tasks of alerts")
        })
        .await;
        let task = wait_text(&client, "#tasks tbody tr td", long, |t| {
            t.starts_with("default.dash.alerts.0.")
        })
        .await;
        click(
            &client,
            &format!(r#"button[aria-label="stdout of task {task}"]"#),
        )
        .await;
        wait_text(&client, "#log-text", long, |t| {
            t.trim().len() > 20 && t != "(empty)"
        })
        .await;
        assert_controls_labelled(&client, "topology page with a log").await;
        screenshot(&client, "02-topology.png").await;

        // The spec and what the scale changed.
        click(&client, "#tab-spec").await;
        wait_text(&client, "#spec-yaml", long, |t| {
            t.contains("name: per-key-counts")
        })
        .await;
        wait_text(&client, r#"[data-change="per-key-counts"]"#, long, |t| {
            t.contains("scaled 2 → 3")
        })
        .await;
        wait_text(&client, r#"[data-change="clicks"]"#, long, |t| {
            t.contains("unchanged")
        })
        .await;
        screenshot(&client, "03-spec.png").await;

        // Deleted while open.
        cli_ok(&api, &["delete", "topology", "dash", "--timeout", "60s"]);
        wait_text(&client, "#deleted", long, |t| t.contains("was deleted")).await;
        screenshot(&client, "04-deleted.png").await;
        let same = client
            .execute("return window.__sameLoad === true;", vec![])
            .await
            .expect("check");
        assert_eq!(same, json!(true), "no reload during the whole test");
    })
    .await;
    drop(driver);
    drop(c);
    drop(mesos);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_asks_for_a_token_and_shows_refusals_and_lost_etcd() {
    require_exe("chromium");
    require_exe("chromedriver");
    let mut etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        "reader-token-0123456789 readonly ui\nadmin-token-0123456789 admin ops\n",
    )
    .expect("write");
    let port = free_port();
    let flags = [
        "--no-scheduler",
        "--token-file",
        file.to_str().expect("utf-8"),
    ];
    let mut c = Controller::start_on(port, &etcd.url, NO_MESOS, "/concord", &flags).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("tmp");
    let client = browser(&driver, profile.path()).await;
    let api = c.url.clone();
    let resp = reqwest::Client::new()
        .put(format!("{api}{API}/guarded"))
        .bearer_auth("admin-token-0123456789")
        .json(&spec_json("guarded", 1, 10))
        .send()
        .await
        .expect("put");
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );

    // 2,000 tasks on one operator (status written as the leader would; this controller
    // does not schedule, so nothing overwrites it).
    let tasks: Vec<Value> = (0..2000)
        .map(|i| {
            json!({"taskId": format!("default.guarded.count.{i}.abc.{i:08x}"), "instance": i,
                   "templateHash": "abc", "state": "TASK_RUNNING", "host": format!("agent-{}", i % 7),
                   "since": "2026-12-01T10:00:00Z", "restarts": i % 3})
        })
        .collect();
    let status = json!({"observedGeneration": 1, "operators": [
        {"name": "source", "desired": 1, "running": 1, "updated": 1, "ready": 1, "templateHash": "abc"},
        {"name": "count", "desired": 2000, "running": 2000, "updated": 2000, "ready": 2000,
         "templateHash": "abc", "tasks": tasks}]});
    etcd.client()
        .await
        .put("/concord/status/default/guarded", status.to_string(), None)
        .await
        .expect("put status");

    let etcd_ref = &mut etcd;
    let c_ref = &mut c;
    in_browser(client, |client| async move {
        let long = Duration::from_secs(30);
        client.goto(&format!("{api}/ui/")).await.expect("open");
        wait_text(&client, r#"[data-banner="auth"]"#, long, |t| {
            t.contains("401") && t.contains("Enter an API token")
        })
        .await;
        screenshot(&client, "05-token-required.png").await;

        let input = client
            .find(Locator::Id("token-input"))
            .await
            .expect("token input");
        input
            .send_keys("wrong-token-0123456789")
            .await
            .expect("type");
        client
            .find(Locator::Id("token-save"))
            .await
            .expect("save")
            .click()
            .await
            .expect("click");
        wait_text(&client, r#"[data-banner="auth"]"#, long, |t| {
            t.contains("401")
        })
        .await;

        input.clear().await.expect("clear");
        input
            .send_keys("reader-token-0123456789")
            .await
            .expect("type");
        client
            .find(Locator::Id("token-save"))
            .await
            .expect("save")
            .click()
            .await
            .expect("click");
        wait_text(
            &client,
            r#"tr[data-topology="default/guarded"] td"#,
            long,
            |t| t == "guarded",
        )
        .await;
        let banners = text_of(&client, "#banners").await.unwrap_or_default();
        assert!(!banners.contains("refused"), "{banners}");
        let stored = client
            .execute("return sessionStorage.getItem('concord.token');", vec![])
            .await
            .expect("session storage");
        assert_eq!(stored, json!("reader-token-0123456789"));

        // etcd goes away: a banner, the last known state stays on the page.
        etcd_ref.stop();
        wait_text(&client, "#banners", Duration::from_secs(60), |t| {
            t.contains("etcd is unreachable")
        })
        .await;
        assert_eq!(
            text_of(&client, r#"tr[data-topology="default/guarded"] td"#)
                .await
                .as_deref(),
            Some("guarded")
        );
        screenshot(&client, "06-etcd-unreachable.png").await;

        // etcd comes back: the banner goes and live updates resume.
        etcd_ref.restart().await;
        wait_for(Duration::from_secs(60), "banner to clear", || {
            let client = client.clone();
            async move {
                let t = text_of(&client, "#banners").await.unwrap_or_default();
                (!t.contains("unreachable")).then_some(())
            }
        })
        .await;

        // The controller restarts on the same port: the page reconnects by itself and
        // resumes the watch (a topology created meanwhile appears, no reload).
        client
            .execute("window.__sameLoad = true; return null;", vec![])
            .await
            .expect("mark");
        c_ref.process.terminate(Duration::from_secs(10));
        wait_text(&client, "#banners", long, |t| {
            t.contains("controller is unreachable")
        })
        .await;
        *c_ref = Controller::start_on(port, &etcd_ref.url, NO_MESOS, "/concord", &flags).await;
        let resp = reqwest::Client::new()
            .put(format!("{api}{API}/after-restart"))
            .bearer_auth("admin-token-0123456789")
            .json(&spec_json("after-restart", 1, 10))
            .send()
            .await
            .expect("put");
        assert!(resp.status().is_success());
        wait_text(
            &client,
            r#"tr[data-topology="default/after-restart"] td"#,
            Duration::from_secs(60),
            |t| t == "after-restart",
        )
        .await;
        let same = client
            .execute("return window.__sameLoad === true;", vec![])
            .await
            .expect("check");
        assert_eq!(same, json!(true), "reconnected without a reload");

        // 2,000 tasks: 200 rows at a time, quickly.
        client
            .goto(&format!("{api}/ui/#/topology/default/guarded"))
            .await
            .expect("open");
        click(
            &client,
            r#"button[aria-label="Show tasks of operator count"]"#,
        )
        .await;
        wait_text(&client, "#tasks h2", long, |t| t.contains("(2000)")).await;
        let rows = client
            .execute(
                "return document.querySelectorAll('#tasks tbody tr').length;",
                vec![],
            )
            .await
            .expect("rows");
        assert_eq!(rows, json!(200));
        let started = Instant::now();
        for shown in [400, 600] {
            click(&client, "#show-more").await;
            wait_text(&client, "#show-more", long, |t| {
                t.contains(&format!("({shown} of 2000 shown)"))
            })
            .await;
        }
        // A measurement, not a limit: the machines are small and shared.
        eprintln!("show more, twice, on 2000 tasks: {:?}", started.elapsed());
        screenshot(&client, "07-2000-tasks.png").await;
    })
    .await;
    drop(driver);
}
