//! Observability end to end: live metrics aggregated by the controller, `concord graph`
//! and `concord logs` (task sandboxes through the Mesos files API), and sampled records'
//! paths (`concord trace`, through a Python operator), over real etcd, mesos-lite, the
//! controller and `concord-executor` tasks.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concord_e2e::{Controller, Etcd, MesosLite, binary, concord, relocatable, wait_for};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const API: &str = "/apis/concord.io/v1alpha1/namespaces/default/topologies";

const TOPOLOGY: &str = r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: obs}
spec:
  operators:
    - name: gen
      runtime: {builtin: {name: generator}}
      config: {rate: 200}
      resources: {cpus: 0.1, mem: 32}
    - name: count
      instances: 2
      runtime: {builtin: {name: keyed-count}}
      inputs: [{from: gen, partitioning: key}]
      resources: {cpus: 0.1, mem: 32}
    - name: sink
      runtime: {builtin: {name: sink}}
      inputs: [{from: count, partitioning: shuffle}]
      resources: {cpus: 0.1, mem: 32}
"#;

/// Fields drop in order: controller, mesos-lite (stops its tasks), etcd.
struct Stack {
    controller: Controller,
    _mesos: MesosLite,
    etcd: Etcd,
    dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Self {
        Self::start_with(&["--kill-grace", "2s"]).await
    }

    async fn start_with(controller_flags: &[&str]) -> Self {
        let etcd = Etcd::start().await;
        let mesos = MesosLite::start(2, 4.0, 4096).await;
        let controller =
            Controller::start_with(&etcd.url, &mesos.url, "/concord", controller_flags).await;
        Self {
            controller,
            _mesos: mesos,
            etcd,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = concord(&self.controller.url, args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}{API}/{path}", self.controller.url))
            .await
            .expect("GET");
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A `concord` process killed by PID when dropped.
struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn running_task(t: &concord_schemas::Topology, op: &str) -> String {
    t.status
        .as_ref()
        .and_then(|s| s.operators.iter().find(|o| o.name == op))
        .and_then(|o| o.tasks.iter().find(|t| t.state == "TASK_RUNNING"))
        .map(|t| t.task_id.clone())
        .expect("a running task")
}

#[tokio::test]
async fn metrics_graph_and_logs_through_the_controller() {
    let s = Stack::start().await;
    let path = s.dir.path().join("obs.yaml");
    std::fs::write(&path, TOPOLOGY).expect("write");
    let (code, _, err) = s.cli(&["apply", "-f", path.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{err}");
    let t = s.controller.wait_ready("obs", READY_TIMEOUT).await;
    let gen_task = running_task(&t, "gen");

    // --- metrics: every operator reports, the generator produces. ---
    let metrics = wait_for(
        Duration::from_secs(30),
        "live metrics of every operator",
        || async {
            let (code, m) = s.get("obs/metrics").await;
            assert_eq!(code, 200, "{m}");
            let ops = m["operators"].as_array()?;
            let all_report = ops.len() == 3
                && ops.iter().all(|o| {
                    o["instancesReporting"].as_u64() == o["desired"].as_u64()
                        && o["instancesUnreachable"] == 0
                });
            let gen_out =
                ops.iter().find(|o| o["name"] == "gen")?["recordsOutPerSecond"].as_f64()?;
            let sink_in =
                ops.iter().find(|o| o["name"] == "sink")?["recordsInPerSecond"].as_f64()?;
            (all_report && gen_out > 0.0 && sink_in > 0.0).then_some(m)
        },
    )
    .await;
    assert_eq!(metrics["kind"], "TopologyMetrics");
    assert_eq!(metrics["metadata"]["name"], "obs");
    let ops = metrics["operators"].as_array().expect("operators");
    assert_eq!(
        ops.iter()
            .map(|o| o["name"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["gen", "count", "sink"],
        "spec order"
    );
    let count = &ops[1];
    assert_eq!(count["desired"], 2);
    assert_eq!(count["tasks"].as_array().map(Vec::len), Some(2));
    for task in count["tasks"].as_array().into_iter().flatten() {
        assert_eq!(task["scrape"], "ok", "{task}");
        assert!(
            task["metricsAddr"]
                .as_str()
                .is_some_and(|a| a.contains(':'))
        );
        assert!(task["recordsInTotal"].as_u64().is_some(), "{task}");
        assert!(
            task["windowSeconds"].as_f64().is_some_and(|w| w >= 1.0),
            "{task}"
        );
        for key in [
            "p99LatencySeconds",
            "droppedTotal",
            "cpuPercent",
            "residentMemoryBytes",
        ] {
            assert!(task.get(key).is_some(), "{key} missing in {task}");
        }
    }
    let gen_total = ops[0]["recordsOutTotal"].as_u64().expect("total");
    assert!(gen_total > 0);
    // Unknown topology: a clear 404.
    let (code, body) = s.get("nope/metrics").await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found"))
    );

    // --- an executor that does not answer is reported, not an error of the call. ---
    // A listener that accepts connections but never answers: the scrape must time out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr").to_string();
    let key = "/concord/endpoints/default/obs/count/9/default.obs.count.9.0000.silent";
    let value = serde_json::json!({
        "taskId": "default.obs.count.9.0000.silent", "instance": 9,
        "dataAddr": "127.0.0.1:1", "metricsAddr": silent_addr, "ready": true,
    });
    let mut etcd = s.etcd.client().await;
    etcd.put(key, value.to_string(), None).await.expect("put");
    // The silent listener never answers: the call returns only because the controller
    // bounds each scrape. The deadline is generous; the time taken is printed.
    let started = Instant::now();
    let (code, m) = tokio::time::timeout(Duration::from_secs(30), s.get("obs/metrics"))
        .await
        .expect("one silent executor must not hold the metrics call");
    eprintln!(
        "metrics with one silent executor answered in {:?}",
        started.elapsed()
    );
    assert_eq!(code, 200, "{m}");
    let count = m["operators"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["name"] == "count"))
        .expect("count");
    assert_eq!(count["instancesUnreachable"], 1, "{count}");
    assert_eq!(count["instancesReporting"], 2, "{count}");
    let silent_task = count["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["instance"] == 9))
        .expect("the silent task");
    assert_eq!(silent_task["scrape"], "unreachable", "{silent_task}");
    assert!(silent_task["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(silent_task["recordsInPerSecond"].is_null());
    etcd.delete(key, None).await.expect("delete");
    drop(silent);

    // --- graph, text: every operator, instance counts, partitioning, live rates. ---
    let (code, out, err) = s.cli(&["graph", "obs"]);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("concord graph obs:\n{out}");
    for needle in [
        "gen",
        "count",
        "sink",
        "1/1",
        "2/2",
        "(key)",
        "(shuffle)",
        "/s",
        "layer 3",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    let layer_of = |name: &str| {
        let mut layer = 0;
        for line in out.lines() {
            if line.starts_with("── layer") {
                layer += 1;
            } else if line.split_whitespace().next() == Some(name) {
                return layer;
            }
        }
        panic!("{name} not found in:\n{out}");
    };
    assert!(layer_of("gen") < layer_of("count") && layer_of("count") < layer_of("sink"));

    // --- graph, dot. ---
    let (code, dot, err) = s.cli(&["graph", "obs", "--format", "dot"]);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("concord graph obs --format dot:\n{dot}");
    assert!(dot.starts_with("digraph "), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    assert!(dot.contains(r#""gen" -> "count" [label="key"];"#), "{dot}");
    assert!(
        dot.contains(r#""count" -> "sink" [label="shuffle"];"#),
        "{dot}"
    );
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");

    // --- logs: stderr has the executor's (and the command executor's) lines; the
    // sink writes the records it receives to stdout. ---
    let (code, out, err) = s.cli(&["logs", "obs", "gen", "--stderr"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("starting executor"), "{out}");
    assert!(out.contains(&gen_task), "{out}");
    let (code, _, err) = s.cli(&["logs", "obs", "gen"]);
    assert_eq!(code, Some(0), "stdout of gen (maybe empty): {err}");
    let sink_out = wait_for(
        Duration::from_secs(20),
        "records on the sink's stdout",
        || {
            let (code, out, err) = s.cli(&["logs", "obs", "sink"]);
            assert_eq!(code, Some(0), "{err}");
            async move { (out.lines().count() > 1).then_some(out) }
        },
    )
    .await;
    assert!(
        !sink_out.contains("starting executor"),
        "stdout, not stderr: {sink_out}"
    );
    let (code, out, err) = s.cli(&["logs", "obs", "sink", "--tail", "3"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, out, err) = s.cli(&["logs", "obs", "gen", "--stderr", "--tail", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, out, err) = s.cli(&["logs", "obs", "count", "--instance", "1", "--stderr"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("instance=1"), "{out}");

    // Unknown operator, missing instance, unknown task: exit 1 with a clear message.
    let (code, _, err) = s.cli(&["logs", "obs", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(r#"no operator "nope""#) && err.contains("gen, count, sink"),
        "{err}"
    );
    let (code, _, err) = s.cli(&["logs", "obs", "gen", "--instance", "7"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no task for instance 7"), "{err}");
    let ghost = "default.obs.gen.0.0000.deadbeef";
    let (code, _, err) = s.cli(&["logs", "obs", "gen", "--task", ghost]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Mesos does not know task"), "{err}");

    // The API behind it: 404 for unknown tasks and foreign tasks, 400 for a bad stream.
    let (code, body) = s.get(&format!("obs/tasks/{ghost}/logs")).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["reason"], "NotFound");
    let (code, body) = s.get(&format!("other/tasks/{gen_task}/logs")).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = s
        .get(&format!("obs/tasks/{gen_task}/logs?stream=stdin"))
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = s
        .get(&format!(
            "obs/tasks/{gen_task}/logs?stream=stderr&offset=0&length=10"
        ))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["offset"], 0);
    assert_eq!(body["nextOffset"], 10);
    assert_eq!(body["data"].as_str().map(str::len), Some(10));

    // --- logs -f: follows, and ends by itself when the task ends. ---
    let log = s.dir.path().join("follow.out");
    let file = std::fs::File::create(&log).expect("create");
    let child = Command::new(binary("concord"))
        .args(["logs", "obs", "gen", "-f", "--stderr"])
        .env("CONCORD_API", &s.controller.url)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn concord logs -f");
    let mut follower = Follower(child);
    wait_for(
        Duration::from_secs(20),
        "the follower to print the log",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move { text.contains("starting executor").then_some(()) }
        },
    )
    .await;
    let (code, _, err) = s.cli(&["kill", &gen_task]);
    assert_eq!(code, Some(0), "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = follower.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "concord logs -f did not end with its task"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // The kill itself is logged by the command executor after the follower started.
    assert!(
        text.contains("Sending SIGTERM") || text.contains("Command terminated"),
        "{text}"
    );
}

/// Clicks through the Python example operator into a sink; artifact paths are made
/// absolute by [`relocatable`].
const TRACED: &str = r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: traced}
spec:
  operators:
    - name: clicks
      runtime: {builtin: {name: generator}}
      config: {mode: clicks, rate: 100, keys: 50}
      resources: {cpus: 0.1, mem: 32}
    - name: enrich
      runtime:
        process:
          command: python3
          args: [enrich.py]
          artifacts:
            - {uri: ../../sdk/python/examples/enrich.py, extract: false}
            - {uri: ../../sdk/python/concord_sdk.py, extract: false}
      inputs: [{from: clicks, partitioning: shuffle}]
      resources: {cpus: 0.1, mem: 64}
    - name: alerts
      runtime: {builtin: {name: sink}}
      config: {target: discard}
      inputs: [{from: enrich, partitioning: key}]
      resources: {cpus: 0.1, mem: 32}
"#;

fn hop_names(trace: &Value) -> Vec<(String, u64)> {
    trace["hops"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["operator"].as_str().unwrap_or_default().to_owned(),
                h["depth"].as_u64().unwrap_or(99),
            )
        })
        .collect()
}

fn full_path(trace: &Value) -> bool {
    trace["complete"] == true
        && hop_names(trace)
            == [
                ("clicks".to_owned(), 0),
                ("enrich".to_owned(), 1),
                ("alerts".to_owned(), 2),
            ]
}

#[tokio::test]
async fn traces_list_a_records_path_through_a_python_operator() {
    // Executors sample 20% of source records (100 clicks/s): traces every few ms.
    let s = Stack::start_with(&["--kill-grace", "2s", "--trace-sample-rate", "0.2"]).await;
    let path = s.dir.path().join("traced.yaml");
    std::fs::write(&path, relocatable(TRACED)).expect("write");
    let (code, _, err) = s.cli(&["apply", "-f", path.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{err}");
    s.controller.wait_ready("traced", READY_TIMEOUT).await;

    // --- the API: recent traces, each the path clicks -> enrich.py -> alerts. ---
    let answer = wait_for(
        Duration::from_secs(30),
        "complete traces through the Python operator",
        || async {
            let (code, v) = s.get("traced/traces?limit=50").await;
            assert_eq!(code, 200, "{v}");
            v["traces"].as_array()?.iter().any(full_path).then_some(v)
        },
    )
    .await;
    assert_eq!(answer["kind"], "TopologyTraces");
    assert_eq!(answer["metadata"]["name"], "traced");
    let tasks = answer["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(tasks.iter().all(|t| t["scrape"] == "ok"), "{tasks:?}");
    let traces = answer["traces"].as_array().expect("traces");
    assert!(traces.len() <= 50);
    let starts: Vec<u64> = traces
        .iter()
        .map(|t| t["startNs"].as_u64().expect("startNs"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "most recent first");
    let trace = traces.iter().find(|t| full_path(t)).expect("a full path");
    let hops = trace["hops"].as_array().expect("hops");
    for pair in hops.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        assert_eq!(child["parentId"], parent["spanId"], "{trace}");
        // Same host, one clock: the child's batch arrived after the parent sent it.
        let sent = parent["sendNs"].as_u64().expect("sendNs");
        let arrived = child["enqueueNs"].as_u64().expect("enqueueNs");
        assert!(sent <= arrived, "{trace}");
        assert!(child["networkSeconds"].as_f64().is_some_and(|n| n >= 0.0));
    }
    for h in hops {
        for key in [
            "queueSeconds",
            "processSeconds",
            "outputSeconds",
            "sinceStartSeconds",
        ] {
            assert!(h[key].as_f64().is_some_and(|v| v >= 0.0), "{key} in {h}");
        }
        let task = h["taskId"].as_str().expect("taskId");
        assert!(
            task.starts_with(&format!(
                "default.traced.{}.",
                h["operator"].as_str().unwrap_or_default()
            )),
            "{h}"
        );
    }
    assert!(trace["durationSeconds"].as_f64().is_some_and(|d| d > 0.0));
    let id = trace["traceId"].as_str().expect("traceId").to_owned();

    // One trace by id; bad and unknown ids; unknown topology.
    let (code, one) = s.get(&format!("traced/traces?traceId={id}")).await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["traces"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["traces"][0]["traceId"], id.as_str());
    let (code, body) = s.get("traced/traces?traceId=not-hex").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.get("traced/traces?traceId=0000000000000001").await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{body}"
    );
    let (code, body) = s.get("nope/traces").await;
    assert_eq!(code, 404, "{body}");

    // --- the CLI: paths with per-hop latency, indented by depth. ---
    let (code, out, err) = s.cli(&["trace", "traced", "--limit", "20"]);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("concord trace traced:\n{out}");
    assert!(
        out.contains("OPERATOR") && out.contains("NETWORK") && out.contains("PROCESS"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("trace ") && l.contains("3 hops") && l.contains("complete")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("  clicks ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("    enrich ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("      alerts ")), "{out}");
    let (code, out, err) = s.cli(&["trace", "traced", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("trace ")).count(),
        1,
        "{out}"
    );
    assert!(out.starts_with(&format!("trace {id}  3 hops")), "{out}");
    let (code, out, err) = s.cli(&["trace", "traced", &id, "-o", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["traces"][0]["traceId"], id.as_str());
    let (code, _, err) = s.cli(&["trace", "traced", "0000000000000001"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = s.cli(&["trace", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
}
