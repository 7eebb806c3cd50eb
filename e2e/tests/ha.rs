//! High availability and fault injection: several controller replicas on one etcd,
//! kill -9 of the leader mid-rollout, an etcd outage, fenced writes and a soak of
//! concurrent applies. Every loop is bounded in count and time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use concord_controller::store::{Fence, Store, StoreError};
use concord_e2e::{Controller, Etcd, MesosLite, concord, running_task_ids, wait_for};
use concord_schemas::{Topology, TopologyStatus};

const READY: Duration = Duration::from_secs(90);

/// The pipeline `ha` (maxSurge 1, maxUnavailable 0).
fn pipeline(instances: u32, label: &str) -> String {
    concord_e2e::pipeline("ha", instances, label, 1, 0)
}

fn apply(api: &str, dir: &std::path::Path, yaml: &str) {
    let path = dir.join("ha.yaml");
    std::fs::write(&path, yaml).expect("write");
    let out = concord(api, &["apply", "-f", path.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn readyz(url: &str) -> String {
    match reqwest::get(format!("{url}/readyz")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn is_leader(url: &str) -> bool {
    readyz(url).await.contains("[+] leader ok")
}

/// Index of the replica that leads, once exactly one does.
async fn the_leader(urls: &[String]) -> usize {
    wait_for(Duration::from_secs(30), "exactly one leader", || async {
        let mut leaders = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            if is_leader(url).await {
                leaders.push(i);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

/// Frameworks connected to mesos-lite (subscribed and not disconnected).
async fn connected_frameworks(mesos: &MesosLite) -> usize {
    let state: serde_json::Value = reqwest::get(format!("{}/state", mesos.url))
        .await
        .expect("GET /state")
        .json()
        .await
        .expect("state JSON");
    state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["connected"] == true)
        .count()
}

/// The most tasks of operator `op` that were TASK_RUNNING at one moment, over the whole
/// history Mesos keeps (running and completed tasks with their status timestamps), so no
/// short overlap escapes between two samples.
async fn most_running_at_once(mesos: &MesosLite, op: &str) -> usize {
    let state: serde_json::Value = reqwest::get(format!("{}/state", mesos.url))
        .await
        .expect("GET /state")
        .json()
        .await
        .expect("state JSON");
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        let tasks = fw["tasks"].as_array().into_iter().flatten();
        let completed = fw["completed_tasks"].as_array().into_iter().flatten();
        for task in tasks.chain(completed) {
            if task["id"].as_str().and_then(|id| id.split('.').nth(2)) != Some(op) {
                continue;
            }
            let statuses: Vec<(&str, f64)> = task["statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s["state"].as_str()?, s["timestamp"].as_f64()?)))
                .collect();
            let Some(start) = statuses
                .iter()
                .find(|(state, _)| *state == "TASK_RUNNING")
                .map(|(_, t)| *t)
            else {
                continue;
            };
            let end = statuses
                .iter()
                .find(|(state, _)| {
                    matches!(
                        *state,
                        "TASK_KILLED"
                            | "TASK_FAILED"
                            | "TASK_FINISHED"
                            | "TASK_LOST"
                            | "TASK_ERROR"
                            | "TASK_DROPPED"
                            | "TASK_GONE"
                    )
                })
                .map_or(f64::INFINITY, |(_, t)| *t);
            edges.push((start, 1));
            edges.push((end, -1));
        }
    }
    // At one instant, ends before starts: a task replaced at the same moment is not an
    // overlap.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_mid_rollout_hands_over_and_the_update_completes_within_bounds() {
    let etcd = Etcd::start().await;
    let mesos = Arc::new(MesosLite::start(2, 4.0, 4096).await);
    let mut replicas = vec![
        Controller::start_scheduling(&etcd.url, &mesos.url).await,
        Controller::start_scheduling(&etcd.url, &mesos.url).await,
    ];
    let urls: Vec<String> = replicas.iter().map(|c| c.url.clone()).collect();
    let dir = tempfile::tempdir().expect("tmp");
    let leader = the_leader(&urls).await;
    let standby = 1 - leader;
    // Only the leader talks to Mesos; the standby serves the API all the same.
    wait_for(
        Duration::from_secs(20),
        "one framework connected",
        || async { (connected_frameworks(&mesos).await == 1).then_some(()) },
    )
    .await;
    assert!(
        readyz(&urls[standby])
            .await
            .contains("[-] leader: standby; the leader is")
    );

    apply(&urls[standby], dir.path(), &pipeline(3, "v1"));
    let t1 = replicas[leader].wait_ready("ha", READY).await;
    let (gen1, sink1) = (running_task_ids(&t1, "gen"), running_task_ids(&t1, "sink"));
    assert_eq!(running_task_ids(&t1, "count").len(), 3);

    // A rolling update, and kill -9 of the leader as soon as it is under way.
    apply(&urls[standby], dir.path(), &pipeline(3, "v2"));
    wait_for(
        Duration::from_secs(30),
        "the rolling update to start",
        || async {
            let t = replicas[standby].topology("ha").await?;
            let op = t
                .status?
                .operators
                .into_iter()
                .find(|o| o.name == "count")?;
            (op.updated >= 1).then_some(())
        },
    )
    .await;
    replicas[leader].process.kill();

    // The standby takes over (within the 3 s lease), re-subscribes with the same
    // framework and completes the update.
    wait_for(Duration::from_secs(30), "the standby to lead", || async {
        is_leader(&urls[standby]).await.then_some(())
    })
    .await;
    let t2 = wait_for(READY, "generation 2 Ready", || async {
        let t = replicas[standby].wait_ready("ha", READY).await;
        (t.metadata.generation == Some(2)).then_some(t)
    })
    .await;
    let count2 = running_task_ids(&t2, "count");
    assert_eq!(count2.len(), 3);
    assert!(count2.is_disjoint(&running_task_ids(&t1, "count")));
    assert_eq!(
        running_task_ids(&t2, "gen"),
        gen1,
        "gen not restarted by the failover"
    );
    assert_eq!(
        running_task_ids(&t2, "sink"),
        sink1,
        "sink not restarted by the failover"
    );
    // Never more than instances + maxSurge count tasks, over the whole history.
    let most = most_running_at_once(&mesos, "count").await;
    assert!(
        most <= 4,
        "at most instances + maxSurge count tasks ran at once: {most}"
    );
    assert!(most >= 3, "the history holds the running tasks: {most}");
    let running = mesos.running_tasks().await;
    assert_eq!(running.len(), 5, "no task left over: {running:?}");
    assert_eq!(connected_frameworks(&mesos).await, 1);
    drop(replicas.remove(leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_kills_no_task_and_the_controller_resumes_by_itself() {
    let mut etcd = Etcd::start().await;
    let mesos = MesosLite::start(2, 4.0, 4096).await;
    let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;
    let dir = tempfile::tempdir().expect("tmp");
    apply(&controller.url, dir.path(), &pipeline(2, "v1"));
    controller.wait_ready("ha", READY).await;
    let before: BTreeSet<String> = mesos.running_tasks().await.into_keys().collect();
    assert_eq!(before.len(), 4);

    etcd.stop();
    // The API says so, the controller steps down, Mesos keeps every task running.
    wait_for(
        Duration::from_secs(30),
        "readyz to report etcd down",
        || async {
            let text = readyz(&controller.url).await;
            (text.contains("[-] etcd") && !text.contains("[+] leader ok")).then_some(())
        },
    )
    .await;
    let during: BTreeSet<String> = mesos.running_tasks().await.into_keys().collect();
    assert_eq!(during, before, "no task killed while etcd is away");

    etcd.restart().await;
    wait_for(
        Duration::from_secs(60),
        "the controller to lead again",
        || async { is_leader(&controller.url).await.then_some(()) },
    )
    .await;
    let t = controller.wait_ready("ha", READY).await;
    let after: BTreeSet<String> = mesos.running_tasks().await.into_keys().collect();
    assert_eq!(after, before, "the same tasks, adopted");
    assert_eq!(t.metadata.generation, Some(1));
    // And it acts again: a scale goes through.
    apply(&controller.url, dir.path(), &pipeline(3, "v1"));
    wait_for(READY, "scaled after the outage", || async {
        let t = controller.wait_ready("ha", READY).await;
        (running_task_ids(&t, "count").len() == 3).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_fenced_store_refuses_every_write_once_the_leader_key_is_not_its_own() {
    let etcd = Etcd::start().await;
    let store = Store::connect(std::slice::from_ref(&etcd.url), "/fence")
        .await
        .expect("store");
    let mut client = etcd.client().await;
    let put = client
        .put(store.leader_key(), "me", None)
        .await
        .expect("leader key");
    let mine = Fence {
        key: store.leader_key(),
        revision: put.header().expect("header").revision(),
    };
    let fenced = store.fenced(mine.clone());
    let status = TopologyStatus::default();
    assert!(
        fenced
            .put_status("default", "t", &status)
            .await
            .expect("put")
    );
    fenced
        .put_raw("/fence/framework-id", b"fw".to_vec())
        .await
        .expect("raw put while leading");

    // Another replica takes the key (a new create revision): every write is refused.
    client
        .delete(store.leader_key(), None)
        .await
        .expect("delete");
    client
        .put(store.leader_key(), "someone else", None)
        .await
        .expect("take over");
    let changed = TopologyStatus {
        observed_generation: 5,
        ..TopologyStatus::default()
    };
    let err = fenced
        .put_status("default", "t", &changed)
        .await
        .expect_err("fenced");
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    let err = fenced
        .put_raw("/fence/framework-id", b"other".to_vec())
        .await
        .expect_err("fenced");
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    let stored = store.get_status("default", "t").await.expect("get");
    assert_eq!(
        stored,
        Some(status),
        "the deposed leader's write did not land"
    );
    // The same store without the fence (the API's) still writes.
    assert!(
        store
            .put_status("default", "t", &changed)
            .await
            .expect("put")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_from_many_clients_either_succeed_or_conflict_and_lose_nothing() {
    let etcd = Etcd::start().await;
    // Two API replicas, as in production; writes go to both.
    let a = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:9",
        "/concord",
        &["--no-scheduler", "--no-gitops"],
    )
    .await;
    let b = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:9",
        "/concord",
        &["--no-scheduler", "--no-gitops"],
    )
    .await;
    let item =
        |base: &str| format!("{base}/apis/concord.io/v1alpha1/namespaces/default/topologies/soak");
    let http = reqwest::Client::new();
    let first: Topology = concord_schemas::parse_yaml(pipeline(1, "start").as_bytes(), "soak")
        .expect("parse")
        .remove(0);
    let mut first = first;
    first.metadata.name = "soak".into();
    let resp = http
        .put(item(&a.url))
        .json(&first)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 201);

    // 4 clients x 15 read-modify-write applies, each with the resourceVersion it read.
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<(i64, String)>::new()));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (http, accepted) = (http.clone(), accepted.clone());
        let url = item(if c % 2 == 0 { &a.url } else { &b.url });
        clients.push(tokio::spawn(async move {
            let (mut ok, mut conflicts) = (0, 0);
            for i in 0..15 {
                let mut t: Topology = http
                    .get(&url)
                    .send()
                    .await
                    .expect("get")
                    .json()
                    .await
                    .expect("json");
                let label = format!("client{c}-{i}");
                t.spec.operators[1]
                    .config
                    .insert("label".into(), serde_json::json!(label));
                t.status = None;
                let resp = http.put(&url).json(&t).send().await.expect("put");
                match resp.status().as_u16() {
                    200 => {
                        let body: serde_json::Value = resp.json().await.expect("json");
                        let rv: i64 = body["object"]["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .expect("resourceVersion");
                        accepted.lock().expect("lock").push((rv, label));
                        ok += 1;
                    }
                    409 => conflicts += 1,
                    other => panic!(
                        "apply answered {other}: {}",
                        resp.text().await.unwrap_or_default()
                    ),
                }
            }
            (ok, conflicts)
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for c in clients {
        let (o, x) = c.await.expect("client");
        ok += o;
        conflicts += x;
    }
    assert_eq!(ok + conflicts, 60);
    assert!(ok > 0, "some applies succeed");
    let mut accepted = accepted.lock().expect("lock").clone();
    accepted.sort();
    let revisions: BTreeSet<i64> = accepted.iter().map(|(rv, _)| *rv).collect();
    assert_eq!(
        revisions.len(),
        accepted.len(),
        "no two accepted writes share a revision"
    );
    let (_, last) = accepted.last().expect("one accepted");
    let stored: Topology = http
        .get(item(&b.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        stored.spec.operators[1].config.get("label"),
        Some(&serde_json::json!(last)),
        "the stored spec is the last accepted one"
    );
    assert_eq!(
        stored.metadata.generation,
        Some(1 + ok as i64),
        "every accepted apply is one generation: nothing was overwritten unseen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_loop_killing_tasks_converges_back_to_the_spec() {
    let etcd = Etcd::start().await;
    let mesos = MesosLite::start(2, 4.0, 4096).await;
    let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;
    let dir = tempfile::tempdir().expect("tmp");
    apply(&controller.url, dir.path(), &pipeline(3, "v1"));
    controller.wait_ready("ha", READY).await;

    // For at most 6 s, kill a task (chosen by a fixed pseudo-random sequence) every 300 ms.
    let mut killed = 0;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20 {
        let tasks: Vec<String> = mesos.running_tasks().await.into_keys().collect();
        if !tasks.is_empty() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let victim = &tasks[(seed % tasks.len() as u64) as usize];
            if concord(&controller.url, &["kill", victim]).status.success() {
                killed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(killed >= 5, "the loop killed tasks: {killed}");
    // Back-off may delay relaunches (1 s, 2 s, ...), but everything comes back.
    let t = wait_for(
        Duration::from_secs(120),
        "convergence after the chaos",
        || async {
            let t = controller.wait_ready("ha", READY).await;
            let ops = ["gen", "count", "sink"].map(|op| running_task_ids(&t, op).len());
            (ops == [1, 3, 1]).then_some(t)
        },
    )
    .await;
    let events: Vec<&str> = t
        .status
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| e.reason.as_str())
        .collect();
    assert!(
        events.contains(&"Killed") || events.contains(&"Failed"),
        "{events:?}"
    );
    assert_eq!(mesos.running_tasks().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesos_master_restart_is_ridden_out_and_lost_tasks_come_back() {
    let etcd = Etcd::start().await;
    let mut mesos = MesosLite::start(2, 4.0, 4096).await;
    let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;
    let dir = tempfile::tempdir().expect("tmp");
    apply(&controller.url, dir.path(), &pipeline(2, "v1"));
    let before = controller.wait_ready("ha", READY).await;
    let old: BTreeSet<String> = ["gen", "count", "sink"]
        .iter()
        .flat_map(|op| running_task_ids(&before, op))
        .collect();

    // mesos-lite's tasks die with it; on the same work dir it reports them gone.
    mesos.restart().await;

    let after = wait_for(
        Duration::from_secs(120),
        "re-subscribed and converged",
        || async {
            let t = controller.wait_ready("ha", READY).await;
            let now: BTreeSet<String> = ["gen", "count", "sink"]
                .iter()
                .flat_map(|op| running_task_ids(&t, op))
                .collect();
            (now.len() == 4 && now.is_disjoint(&old)).then_some(now)
        },
    )
    .await;
    let running: BTreeSet<String> = mesos.running_tasks().await.into_keys().collect();
    assert_eq!(running, after, "Mesos runs exactly what status says");
    assert!(readyz(&controller.url).await.contains("[+] mesos ok"));
}
