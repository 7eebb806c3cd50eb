//! The reconciler end to end: real etcd, mesos-lite, the controller binary, real
//! `concord-executor` tasks, driven through the CLI and the API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use concord_e2e::{Controller, Etcd, MesosLite, concord, pipeline, wait_for};
use concord_schemas::{ConditionStatus, Topology, condition_type};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Fields drop in order: the controller first, then mesos-lite (which stops its
/// tasks), then etcd.
struct Stack {
    controller: Controller,
    mesos: MesosLite,
    etcd: Etcd,
    dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Self {
        let etcd = Etcd::start().await;
        let mesos = MesosLite::start(2, 4.0, 4096).await;
        let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;
        Self {
            etcd,
            mesos,
            controller,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    fn apply(&self, yaml: &str) -> String {
        let path = self.dir.path().join("topology.yaml");
        std::fs::write(&path, yaml).expect("write");
        let out = concord(
            &self.controller.url,
            &["apply", "-f", path.to_str().expect("utf-8")],
        );
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Running task IDs of one operator, from the controller's status.
fn operator_tasks(t: &Topology, op: &str) -> BTreeSet<String> {
    concord_e2e::running_task_ids(t, op)
}

/// Task ID -> PID for every running task of `op`, from Mesos.
async fn pids_of(mesos: &MesosLite, op: &str) -> BTreeMap<String, Option<u64>> {
    mesos
        .running_tasks()
        .await
        .into_iter()
        .filter(|(id, _)| id.split('.').nth(2) == Some(op))
        .collect()
}

#[tokio::test]
async fn apply_then_scale_never_touches_other_operators() {
    let s = Stack::start().await;
    assert_eq!(
        s.apply(&pipeline("wc", 2, "a", 1, 0)),
        "topology/wc created\n"
    );
    let t = s.controller.wait_ready("wc", READY_TIMEOUT).await;
    let status = t.status.as_ref().expect("status");
    for op in &status.operators {
        assert_eq!(op.ready, op.desired, "{op:?}");
        assert!(op.tasks.iter().all(|t| t.state == "TASK_RUNNING"));
    }
    let gen_before = pids_of(&s.mesos, "gen").await;
    let sink_before = pids_of(&s.mesos, "sink").await;
    let count_before = operator_tasks(&t, "count");
    assert_eq!(gen_before.len(), 1);
    assert!(
        gen_before.values().all(Option::is_some),
        "Mesos reports PIDs: {gen_before:?}"
    );

    for instances in [5u32, 1] {
        assert_eq!(
            s.apply(&pipeline("wc", instances, "a", 1, 0)),
            "topology/wc configured\n"
        );
        let t = s.controller.wait_ready("wc", READY_TIMEOUT).await;
        let count_now = operator_tasks(&t, "count");
        assert_eq!(count_now.len() as u32, instances);
        assert_eq!(
            pids_of(&s.mesos, "gen").await,
            gen_before,
            "gen untouched by scaling count to {instances}"
        );
        assert_eq!(
            pids_of(&s.mesos, "sink").await,
            sink_before,
            "sink untouched by scaling count to {instances}"
        );
        // Scaling adds or removes the highest indices; it never replaces the others.
        let kept: BTreeSet<_> = count_before.intersection(&count_now).collect();
        assert!(!kept.is_empty(), "instance 0 of count must survive scaling");
    }
    let out = concord(
        &s.controller.url,
        &[
            "diff",
            "-f",
            s.dir.path().join("topology.yaml").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "diff after apply is empty");
}

#[tokio::test]
async fn config_change_replaces_only_that_operator_rolling_within_bounds() {
    let s = Stack::start().await;
    s.apply(&pipeline("roll", 3, "v1", 1, 0));
    let t = s.controller.wait_ready("roll", READY_TIMEOUT).await;
    let old_count = operator_tasks(&t, "count");
    let gen_before = pids_of(&s.mesos, "gen").await;
    let sink_before = pids_of(&s.mesos, "sink").await;

    s.apply(&pipeline("roll", 3, "v2", 1, 0));
    let generation = 2;
    // Sample the rollout: never fewer than instances - maxUnavailable (3) running, never
    // more than instances + maxSurge (4) tasks of count alive.
    let samples = std::sync::atomic::AtomicU32::new(0);
    let done = wait_for(READY_TIMEOUT, "rolling update to finish", || async {
        let running = pids_of(&s.mesos, "count").await;
        assert!(
            running.len() <= 4,
            "more than instances + maxSurge tasks: {running:?}"
        );
        assert!(
            running.len() >= 3,
            "fewer than instances - maxUnavailable running: {running:?}"
        );
        samples.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = s.controller.topology("roll").await?;
        let st = t.status.as_ref()?;
        let ready = st
            .condition(condition_type::READY)
            .is_some_and(|c| c.status == ConditionStatus::True);
        (ready && st.observed_generation == generation).then_some(t)
    })
    .await;
    assert!(
        samples.into_inner() > 1,
        "the rollout was observed while in progress"
    );
    let new_count = operator_tasks(&done, "count");
    assert_eq!(new_count.len(), 3);
    assert!(
        new_count.is_disjoint(&old_count),
        "every count task was replaced"
    );
    assert_eq!(pids_of(&s.mesos, "gen").await, gen_before, "gen untouched");
    assert_eq!(
        pids_of(&s.mesos, "sink").await,
        sink_before,
        "sink untouched"
    );
    let events = &done.status.as_ref().expect("status").events;
    assert!(
        events.iter().any(|e| e.reason == "RollingUpdate"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_task_killed_behind_mesos_back_is_relaunched_with_back_off_in_status() {
    let s = Stack::start().await;
    s.apply(&pipeline("crash", 2, "a", 1, 0));
    s.controller.wait_ready("crash", READY_TIMEOUT).await;
    let count = pids_of(&s.mesos, "count").await;
    let (victim, pid) = count
        .iter()
        .next()
        .map(|(id, pid)| (id.clone(), pid.expect("pid")))
        .expect("a count task");
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());

    let t = wait_for(READY_TIMEOUT, "the failure to show in status", || async {
        let t = s.controller.topology("crash").await?;
        let op = t
            .status
            .as_ref()?
            .operators
            .iter()
            .find(|o| o.name == "count")?
            .clone();
        op.tasks
            .iter()
            .any(|t| {
                t.restarts >= 1
                    && t.last_exit_reason
                        .as_deref()
                        .is_some_and(|r| r.contains("TASK_FAILED"))
            })
            .then_some(t)
    })
    .await;
    let events = &t.status.as_ref().expect("status").events;
    assert!(events.iter().any(|e| e.reason == "BackOff"), "{events:?}");
    let t = s.controller.wait_ready("crash", READY_TIMEOUT).await;
    let now = operator_tasks(&t, "count");
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&victim), "the killed task was replaced");
}

#[tokio::test]
async fn a_controller_restart_mid_rollout_restarts_no_task_and_the_rollout_completes() {
    let mut s = Stack::start().await;
    s.apply(&pipeline("ha", 3, "v1", 1, 0));
    s.controller.wait_ready("ha", READY_TIMEOUT).await;
    let gen_before = pids_of(&s.mesos, "gen").await;
    let sink_before = pids_of(&s.mesos, "sink").await;

    s.apply(&pipeline("ha", 3, "v2", 1, 0));
    // Wait for the rollout to be under way, then kill the controller hard.
    wait_for(READY_TIMEOUT, "the rollout to start", || async {
        let t = s.controller.topology("ha").await?;
        (t.status?.observed_generation == 2).then_some(())
    })
    .await;
    s.controller.process.kill();
    let running_at_restart = s.mesos.running_tasks().await;

    let controller = Controller::start_scheduling(&s.etcd.url, &s.mesos.url).await;
    let done = controller.wait_ready("ha", READY_TIMEOUT).await;
    assert_eq!(
        pids_of(&s.mesos, "gen").await,
        gen_before,
        "gen untouched across the restart"
    );
    assert_eq!(
        pids_of(&s.mesos, "sink").await,
        sink_before,
        "sink untouched across the restart"
    );
    // Every count task of the new template that ran at the restart still runs: adopted.
    let hash = &done
        .status
        .as_ref()
        .expect("status")
        .operators
        .iter()
        .find(|o| o.name == "count")
        .expect("count")
        .template_hash;
    let after = s.mesos.running_tasks().await;
    for (id, pid) in running_at_restart
        .iter()
        .filter(|(id, _)| id.contains(".count.") && id.contains(hash.as_str()))
    {
        assert_eq!(
            after.get(id),
            Some(pid),
            "task {id} was restarted by the controller restart"
        );
    }
    s.controller = controller;
}

#[tokio::test]
async fn delete_stops_every_task_then_removes_the_topology() {
    let s = Stack::start().await;
    s.apply(&pipeline("gone", 2, "a", 1, 0));
    s.controller.wait_ready("gone", READY_TIMEOUT).await;
    assert_eq!(s.mesos.running_tasks().await.len(), 4);
    // Every task got the topology's one data-plane secret as a private file in its
    // sandbox (and Ready means they exchanged records with it).
    let secret = s
        .etcd
        .dump("/concord/secrets/")
        .await
        .into_iter()
        .find(|(k, _)| k == "/concord/secrets/default/gone")
        .map(|(_, v)| v)
        .expect("the topology's secret in etcd");
    let secret: serde_json::Value = serde_json::from_str(&secret).expect("secret JSON");
    let hex = secret["hmacSha256"].as_str().expect("hex");
    let secret: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(secret.len(), 32);
    let files = secret_files(&s.mesos.work_dir());
    assert_eq!(files.len(), 4, "one per task: {files:?}");
    for f in &files {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(f).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{}", f.display());
        assert_eq!(std::fs::read(f).expect("read"), secret);
    }

    let out = concord(
        &s.controller.url,
        &["delete", "topology", "gone", "--timeout", "60s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "topology/gone deleted\n"
    );
    assert!(
        s.mesos.running_tasks().await.is_empty(),
        "no task survives the deletion"
    );
    let keys: Vec<String> = s
        .etcd
        .dump("/concord/")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        !keys.iter().any(|k| k.contains("/topologies/")
            || k.contains("/status/")
            || k.contains("/taskstatus/")
            || k.contains("/secrets/")),
        "{keys:?}"
    );
}

/// Data-plane secret files in every sandbox under `dir`.
fn secret_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let kind = e.file_type().expect("file type");
            if kind.is_dir() {
                todo.push(p);
            } else if p.ends_with(concord_schemas::dataplane::DATAPLANE_SECRET_PATH) {
                found.push(p);
            }
        }
    }
    found
}

#[tokio::test]
async fn a_topology_that_cannot_fit_reports_insufficient_resources_and_leaves_others_alone() {
    let s = Stack::start().await;
    s.apply(&pipeline("fits", 1, "a", 1, 0));
    s.controller.wait_ready("fits", READY_TIMEOUT).await;
    let before = s.mesos.running_tasks().await;

    let huge = pipeline("huge", 1, "a", 1, 0).replacen("cpus: 0.1", "cpus: 64", 1);
    s.apply(&huge);
    let t = wait_for(
        Duration::from_secs(40),
        "InsufficientResources on huge",
        || async {
            let t = s.controller.topology("huge").await?;
            let c = t
                .status
                .as_ref()?
                .condition(condition_type::PROGRESSING)?
                .clone();
            (c.reason == "InsufficientResources").then_some(t)
        },
    )
    .await;
    let progressing = t
        .status
        .as_ref()
        .and_then(|s| s.condition(condition_type::PROGRESSING))
        .expect("condition");
    assert_eq!(progressing.status, ConditionStatus::True);
    assert!(
        progressing.message.contains("cpus=64"),
        "{}",
        progressing.message
    );
    let fits = s.controller.topology("fits").await.expect("fits");
    assert!(
        fits.status
            .as_ref()
            .and_then(|s| s.condition(condition_type::READY))
            .is_some_and(|c| c.status == ConditionStatus::True)
    );
    let after = s.mesos.running_tasks().await;
    for (id, pid) in &before {
        assert_eq!(
            after.get(id),
            Some(pid),
            "{id} of the other topology was touched"
        );
    }
}

#[tokio::test]
async fn cli_scale_kill_rollout_status_and_undo() {
    let s = Stack::start().await;
    s.apply(&pipeline("ops", 2, "good", 1, 0));
    let out = concord(
        &s.controller.url,
        &["rollout", "status", "ops", "--timeout", "60s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("successfully rolled out (generation 1)")
    );

    // scale edits the stored spec; only count changes.
    let out = concord(
        &s.controller.url,
        &[
            "scale",
            "topology",
            "ops",
            "--operator",
            "count",
            "--instances",
            "3",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("count: 2 -> 3"));
    let t = s.controller.wait_ready("ops", READY_TIMEOUT).await;
    assert_eq!(operator_tasks(&t, "count").len(), 3);
    let out = concord(
        &s.controller.url,
        &[
            "scale",
            "topology",
            "ops",
            "--operator",
            "nope",
            "--instances",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    // kill replaces exactly that task.
    let victim = operator_tasks(&t, "count")
        .into_iter()
        .next()
        .expect("task");
    let out = concord(&s.controller.url, &["kill", &victim]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_for(READY_TIMEOUT, "the killed task to be replaced", || async {
        let t = s.controller.topology("ops").await?;
        let tasks = operator_tasks(&t, "count");
        (tasks.len() == 3 && !tasks.contains(&victim)).then_some(t)
    })
    .await;
    assert!(operator_tasks(&t, "gen").len() == 1);
    let good_hash = t
        .status
        .as_ref()
        .and_then(|st| st.operators.iter().find(|o| o.name == "count"))
        .and_then(|o| o.tasks.first())
        .map(|t| t.template_hash.clone())
        .expect("count's template hash");
    assert_eq!(
        concord(&s.controller.url, &["kill", "not-a-task"])
            .status
            .code(),
        Some(2)
    );

    // A broken template crash-loops: rollout status fails, the old tasks keep serving
    // (maxUnavailable 0), and undo brings back the last Ready spec.
    let broken = pipeline("ops", 3, "good", 1, 0).replace(
        "runtime: {builtin: {name: keyed-count}}",
        "runtime: {process: {command: /bin/false}}",
    );
    s.apply(&broken);
    let out = concord(
        &s.controller.url,
        &["rollout", "status", "ops", "--timeout", "60s"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CrashLoopBackOff"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        pids_of(&s.mesos, "count").await.len() >= 3,
        "old tasks keep running during a failed rollout"
    );
    // The failing replacement waits out its back-off (1 s, 2 s, 4 s, ...) instead of
    // being relaunched at once. Checked on the controller's own record, its `Launched`
    // events: consecutive launches of one instance of the broken template are at least
    // the back-off apart, and the wait grows. (Load only widens the gaps.)
    let broken_hash = wait_for(
        READY_TIMEOUT,
        "three launches of one broken instance",
        || async {
            let t = s.controller.topology("ops").await?;
            let mut launches: std::collections::BTreeMap<(String, String), Vec<_>> =
                Default::default();
            for e in &t.status.as_ref()?.events {
                let Some(id) = e
                    .message
                    .strip_prefix("task ")
                    .and_then(|m| m.split(' ').next())
                else {
                    continue;
                };
                let parts: Vec<&str> = id.split('.').collect();
                if e.reason == "Launched"
                    && parts.len() == 6
                    && parts[2] == "count"
                    && parts[4] != good_hash
                {
                    launches
                        .entry((parts[3].to_owned(), parts[4].to_owned()))
                        .or_default()
                        .push(e.time);
                }
            }
            launches.into_values().find(|times| times.len() >= 3)
        },
    )
    .await;
    let mut times = broken_hash;
    times.sort();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds() as f64 / 1000.0)
        .collect();
    eprintln!("launches of one broken instance, gaps: {gaps:?} s");
    assert!(
        gaps.iter().all(|g| *g >= 0.9),
        "relaunched before its back-off ended: gaps {gaps:?} s"
    );
    assert!(
        gaps.windows(2).all(|w| w[1] >= w[0] * 1.5),
        "the back-off does not grow: gaps {gaps:?} s"
    );
    let out = concord(&s.controller.url, &["rollout", "undo", "ops"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = concord(
        &s.controller.url,
        &["rollout", "status", "ops", "--timeout", "60s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = s.controller.topology("ops").await.expect("ops");
    let count = t.operator("count").expect("count");
    assert!(
        matches!(count.runtime, concord_schemas::Runtime::Builtin(_)),
        "undo restored the builtin runtime"
    );
}

#[tokio::test]
async fn a_rollout_without_progress_reports_progress_deadline_exceeded() {
    let s = Stack::start().await;
    let yaml = pipeline("stuck", 1, "a", 1, 0)
        .replace(
            "runtime: {builtin: {name: keyed-count}}",
            "runtime: {process: {command: /bin/false}}",
        )
        .replace(
            "      updateStrategy:",
            "      progressDeadlineSeconds: 3\n      updateStrategy:",
        );
    assert!(yaml.contains("progressDeadlineSeconds: 3"));
    s.apply(&yaml);
    // The crashing operator relaunches (and briefly runs) again and again; that is not
    // progress, so the deadline passes.
    let t = wait_for(
        Duration::from_secs(60),
        "ProgressDeadlineExceeded",
        || async {
            let t = s.controller.topology("stuck").await?;
            let c = t
                .status
                .as_ref()?
                .condition(condition_type::PROGRESSING)?
                .clone();
            (c.reason == "ProgressDeadlineExceeded").then_some(t)
        },
    )
    .await;
    let status = t.status.as_ref().expect("status");
    let progressing = status
        .condition(condition_type::PROGRESSING)
        .expect("progressing");
    assert_eq!(progressing.status, ConditionStatus::False);
    assert!(
        progressing.message.contains("count"),
        "{}",
        progressing.message
    );
    let degraded = status
        .condition(condition_type::DEGRADED)
        .expect("degraded");
    assert_eq!(degraded.status, ConditionStatus::True);
}

#[tokio::test]
async fn status_changed_during_an_etcd_outage_is_written_once_etcd_is_back() {
    let mut s = Stack::start().await;
    s.apply(&pipeline("outage", 1, "a", 1, 0));
    s.controller.wait_ready("outage", READY_TIMEOUT).await;
    let (victim, pid) = pids_of(&s.mesos, "count")
        .await
        .into_iter()
        .next()
        .map(|(id, pid)| (id, pid.expect("pid")))
        .expect("a count task");

    // etcd goes away; then a task fails and is replaced, so the status changes while
    // no status can be written.
    s.etcd.stop();
    let killed = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let replacement = wait_for(READY_TIMEOUT, "a replacement task to run", || async {
        pids_of(&s.mesos, "count")
            .await
            .into_keys()
            .find(|id| *id != victim)
    })
    .await;
    // The controller keeps retrying with back-off (and does not give up, as it once
    // did after 8 attempts while remembering the status as written).
    wait_for(
        READY_TIMEOUT,
        "failed status writes to be retried",
        || async {
            let failures = s
                .controller
                .process
                .logs()
                .matches("status write failed; retrying")
                .count();
            (failures >= 4).then_some(())
        },
    )
    .await;

    s.etcd.restart().await;
    let t = wait_for(READY_TIMEOUT, "the stored status to catch up", || async {
        let t = s.controller.topology("outage").await?;
        let count = t
            .status
            .as_ref()?
            .operators
            .iter()
            .find(|o| o.name == "count")?
            .clone();
        count
            .tasks
            .iter()
            .any(|task| task.task_id == replacement && task.restarts >= 1)
            .then_some(t)
    })
    .await;
    let events = &t.status.as_ref().expect("status").events;
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Failed" && e.message.contains(&victim)),
        "{events:?}"
    );
    // Stored in etcd itself, not only served from the controller's memory: the status
    // document, and the operator's task list in a key of its own.
    let stored = s.etcd.dump("/concord/status/default/outage").await;
    assert_eq!(stored.len(), 1);
    let tasks = s
        .etcd
        .dump("/concord/taskstatus/default/outage/count")
        .await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(tasks[0].1.contains(&replacement), "{}", tasks[0].1);
    s.controller.wait_ready("outage", READY_TIMEOUT).await;
}

#[tokio::test]
async fn tasks_of_a_lost_agent_are_replaced_on_another() {
    let s = Stack::start().await;
    s.apply(&pipeline("lost", 1, "a", 1, 0));
    s.controller.wait_ready("lost", READY_TIMEOUT).await;
    let state: serde_json::Value = reqwest::get(format!("{}/state", s.mesos.url))
        .await
        .expect("GET /state")
        .json()
        .await
        .expect("state JSON");
    let (victim, agent) = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
        .find(|t| {
            t["id"]
                .as_str()
                .is_some_and(|id| id.split('.').nth(2) == Some("count"))
        })
        .map(|t| {
            (
                t["id"].as_str().unwrap_or_default().to_owned(),
                t["slave_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .expect("the count task in /state");

    // mesos-lite's test hook: the agent is lost as if its health checks timed out.
    let resp = reqwest::Client::new()
        .post(format!("{}/lite/agents/{agent}/lose", s.mesos.url))
        .send()
        .await
        .expect("lose the agent");
    assert!(resp.status().is_success(), "{}", resp.status());

    let t = wait_for(READY_TIMEOUT, "the lost task to be replaced", || async {
        let t = s.controller.wait_ready("lost", READY_TIMEOUT).await;
        let count = operator_tasks(&t, "count");
        (count.len() == 1 && !count.contains(&victim)).then_some(t)
    })
    .await;
    let status = t.status.as_ref().expect("status");
    let count = status
        .operators
        .iter()
        .find(|o| o.name == "count")
        .expect("count");
    assert!(
        count
            .tasks
            .iter()
            .all(|task| task.agent_id.as_deref() != Some(agent.as_str())),
        "nothing runs on the lost agent: {count:?}"
    );
    assert!(
        status
            .events
            .iter()
            .any(|e| e.reason == "Failed" && e.message.contains("TASK_UNREACHABLE")),
        "{:?}",
        status.events
    );
}
