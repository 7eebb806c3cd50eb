//! Portable conformance suite: every case here runs against mesos-lite (spawned per
//! test) or, with `MESOS_MASTER_URL` set, against a real Apache Mesos master.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use mesos_v1::scheduler::subscribe_raw;
use mesos_v1::*;

const PA: FrameworkCapabilityType = FrameworkCapabilityType::PartitionAware;
const KILLING: FrameworkCapabilityType = FrameworkCapabilityType::TaskKillingState;

fn sh(cmd: &str) -> CommandInfo {
    CommandInfo::shell(cmd)
}

#[tokio::test]
async fn subscribe_gets_subscribed_heartbeat_and_offers() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("sub"), &[], 0.0)).await?;
    assert!(!fw.framework_id.value.is_empty());
    fw.wait_event("HEARTBEAT", |e| e.r#type == EventType::Heartbeat)
        .await?;
    let offer = fw.take_offer(|_| true).await?;
    assert_eq!(offer.framework_id, fw.framework_id);
    assert!(scalar(&offer.resources, "cpus") > 0.0);
    assert!(scalar(&offer.resources, "mem") > 0.0);
    assert!(offer.url.is_some());
    assert!(!offer.hostname.is_empty());
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn raw_subscribe_response_is_a_chunked_json_recordio_stream() -> TestResult {
    let master = Master::start()?;
    // A failover timeout keeps the framework (disconnected) after its stream drops.
    let body = serde_json::json!({"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":unique("raw"),"failover_timeout":3600.0}}});
    let resp = reqwest::Client::new()
        .post(format!("{}/master/api/v1/scheduler/?_ts=1", master.url))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let stream_id = resp.headers()["mesos-stream-id"].to_str()?.to_string();
    assert!(!stream_id.is_empty() && stream_id.len() <= 128);
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await?
        .ok_or("no chunk")??;
    let text = std::str::from_utf8(&first)?;
    let (len, rest) = text.split_once('\n').ok_or("no length line")?;
    let len: usize = len.parse()?;
    assert_eq!(rest.len(), len, "one record per chunk");
    let event: serde_json::Value = serde_json::from_str(rest)?;
    assert_eq!(event["type"], "SUBSCRIBED");
    assert!(!rest.contains('\n'), "compact single-line JSON");
    let fid = event["subscribed"]["framework_id"]["value"]
        .as_str()
        .ok_or("fid")?
        .to_string();
    drop(stream);
    // Once the master has seen the stream go, the framework is disconnected, and a call
    // on the old stream is refused as Mesos refuses it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = master.get_json("/frameworks").await?;
        let connected = state["frameworks"]
            .as_array()
            .and_then(|fws| fws.iter().find(|f| f["id"] == fid.as_str()))
            .map(|f| f["connected"] == true);
        if connected == Some(false) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(fail(format!("framework {fid} still connected: {state}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = reqwest::Client::new()
        .post(master.scheduler_url())
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", stream_id)
        .body(serde_json::json!({"type":"TEARDOWN","framework_id":{"value":fid}}).to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.text().await?, "Framework is not subscribed");
    Ok(())
}

#[tokio::test]
async fn launched_task_runs_and_finishes() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("launch"), &[], 0.0)).await?;
    let offer = fw
        .take_offer(|o| scalar(&o.resources, "cpus") >= 0.5)
        .await?;
    let id = unique("echo");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("echo hello-from-task"), 0.1, 32.0)],
            None,
        )
        .await?;
    let starting = fw.wait_state(&id, TaskState::Starting, true).await?;
    assert_eq!(starting.source, Some(TaskStatusSource::Executor));
    let running = fw.wait_state(&id, TaskState::Running, true).await?;
    let pid = running
        .container_status
        .as_ref()
        .and_then(|c| c.executor_pid);
    assert!(pid.is_some_and(|p| p > 1), "executor_pid set");
    assert!(running.uuid.is_some());
    assert_eq!(running.agent_id.as_ref(), Some(&offer.agent_id));
    let done = fw.wait_state(&id, TaskState::Finished, true).await?;
    assert_eq!(
        done.message.as_deref(),
        Some("Command exited with status 0")
    );
    let out = read_sandbox_file(&master, &fw.framework_id, &id, "stdout").await?;
    assert!(out.contains("hello-from-task"), "stdout: {out}");
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn failing_task_reports_exit_status() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("fail"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("exit3");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("echo oops >&2; exit 3"), 0.1, 32.0)],
            None,
        )
        .await?;
    let failed = fw.wait_state(&id, TaskState::Failed, true).await?;
    assert_eq!(
        failed.message.as_deref(),
        Some("Command exited with status 3")
    );
    assert_eq!(failed.source, Some(TaskStatusSource::Executor));
    let err = read_sandbox_file(&master, &fw.framework_id, &id, "stderr").await?;
    assert!(err.contains("oops"));
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn task_environment_and_exec_argv() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("env"), &[], 0.0)).await?;
    let offer = fw
        .take_offer(|o| scalar(&o.resources, "cpus") >= 0.3)
        .await?;
    let shell_id = unique("envsh");
    let mut cmd = sh("env | sort");
    cmd.environment = Some(Environment::from_pairs([(
        "CONCORD_TASK_ID",
        shell_id.as_str(),
    )]));
    let exec_id = unique("argv");
    let script = "echo \"args=$0,$1\"; tr '\\0' ' ' < /proc/$$/cmdline";
    let exec = CommandInfo::exec("/bin/sh", ["my-argv0", "-c", script, "zero", "one"]);
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![
                task(&offer, &shell_id, cmd, 0.1, 32.0),
                task(&offer, &exec_id, exec, 0.1, 32.0),
            ],
            None,
        )
        .await?;
    fw.wait_state(&shell_id, TaskState::Finished, true).await?;
    fw.wait_state(&exec_id, TaskState::Finished, true).await?;
    let env = read_sandbox_file(&master, &fw.framework_id, &shell_id, "stdout").await?;
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    assert_eq!(get("CONCORD_TASK_ID").as_deref(), Some(shell_id.as_str()));
    assert_eq!(
        get("MESOS_FRAMEWORK_ID").as_deref(),
        Some(fw.framework_id.value.as_str())
    );
    assert_eq!(get("MESOS_EXECUTOR_ID").as_deref(), Some(shell_id.as_str()));
    assert_eq!(
        get("MESOS_SLAVE_ID").as_deref(),
        Some(offer.agent_id.value.as_str())
    );
    assert!(get("MESOS_SANDBOX").is_some_and(|s| s.contains(&shell_id)));
    assert_eq!(get("MESOS_SANDBOX"), get("MESOS_DIRECTORY"));
    assert!(get("MESOS_AGENT_ENDPOINT").is_some());
    assert!(get("MESOS_ALLOCATION_ROLE").is_some());
    assert_eq!(get("MESOS_TASK_ID"), None, "Mesos never sets MESOS_TASK_ID");
    let out = read_sandbox_file(&master, &fw.framework_id, &exec_id, "stdout").await?;
    assert!(out.contains("args=zero,one"), "exec argv verbatim: {out}");
    assert!(
        out.contains("my-argv0 -c"),
        "argv[0] is arguments[0]: {out}"
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn offers_shrink_after_launch_and_grow_back() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("acct"), &[KILLING], 0.0)).await?;
    let offer = fw
        .take_offer(|o| scalar(&o.resources, "cpus") >= 1.0 && scalar(&o.resources, "mem") >= 256.0)
        .await?;
    let agent = offer.agent_id.clone();
    let (cpus, mem) = (
        scalar(&offer.resources, "cpus"),
        scalar(&offer.resources, "mem"),
    );
    let id = unique("sleeper");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 1.0, 256.0)],
            Some(Filters::refuse_seconds(0.0)),
        )
        .await?;
    fw.wait_state(&id, TaskState::Running, true).await?;
    let smaller = fw.take_offer(|o| o.agent_id == agent).await?;
    assert!(
        (scalar(&smaller.resources, "cpus") - (cpus - 1.0)).abs() < 0.001,
        "cpus {cpus} -> {}",
        scalar(&smaller.resources, "cpus")
    );
    assert!((scalar(&smaller.resources, "mem") - (mem - 256.0)).abs() < 0.001);
    fw.handle
        .decline(vec![smaller.id], Some(Filters::refuse_seconds(0.0)))
        .await?;
    fw.handle
        .kill(TaskId::new(id.clone()), Some(agent.clone()), None)
        .await?;
    fw.wait_state(&id, TaskState::Killing, true).await?;
    fw.wait_state(&id, TaskState::Killed, true).await?;
    let back = fw
        .take_offer_declining(|o| {
            o.agent_id == agent && scalar(&o.resources, "cpus") >= cpus - 0.001
        })
        .await?;
    assert!((scalar(&back.resources, "mem") - mem).abs() < 0.001);
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn launch_beyond_offer_is_task_error() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("big"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let cpus = scalar(&offer.resources, "cpus");
    let id = unique("huge");
    let ok_id = unique("fine");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![
                task(&offer, &id, sh("true"), cpus + 100.0, 32.0),
                task(&offer, &ok_id, sh("true"), 0.1, 32.0),
            ],
            None,
        )
        .await?;
    let err = fw.wait_state(&id, TaskState::Error, false).await?;
    assert_eq!(err.reason, Some(TaskStatusReason::TaskInvalid));
    assert_eq!(err.source, Some(TaskStatusSource::Master));
    assert!(err.uuid.is_none(), "master-made updates carry no uuid");
    // An invalid task does not stop the others in the same ACCEPT.
    fw.wait_state(&ok_id, TaskState::Finished, true).await?;
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn used_offer_is_invalid_lost_or_dropped() -> TestResult {
    let master = Master::start()?;
    for (caps, expected) in [(vec![], TaskState::Lost), (vec![PA], TaskState::Dropped)] {
        let mut fw = Fw::subscribe(&master, framework_info(&unique("inv"), &caps, 0.0)).await?;
        let offer = fw.take_offer(|_| true).await?;
        fw.handle
            .decline(vec![offer.id.clone()], Some(Filters::refuse_seconds(0.0)))
            .await?;
        let id = unique("stale");
        fw.handle
            .launch(
                vec![offer.id.clone()],
                vec![task(&offer, &id, sh("true"), 0.1, 32.0)],
                None,
            )
            .await?;
        let st = fw.wait_state(&id, expected.clone(), false).await?;
        assert_eq!(st.reason, Some(TaskStatusReason::InvalidOffers));
        assert!(
            st.message
                .as_deref()
                .is_some_and(|m| m.contains("invalid offers"))
        );
        fw.handle.teardown().await?;
    }
    Ok(())
}

#[tokio::test]
async fn decline_filter_is_cleared_by_revive_and_suppress_stops_offers() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("filt"), &[], 0.0)).await?;
    let first = fw.take_offer(|_| true).await?;
    fw.offers.push(first);
    // Decline everything for an hour; REVIVE must bring offers back right away.
    fw.decline_all(3600.0).await?;
    fw.handle.revive(vec![]).await?;
    let again = fw.take_offer(|_| true).await?;
    // SUPPRESS, decline what is outstanding: nothing more may come until REVIVE.
    fw.handle.suppress(vec![]).await?;
    fw.offers.push(again);
    fw.decline_all(0.0).await?;
    let quiet = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet {
        let left = quiet.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, fw.events.recv()).await {
            Ok(Some(mesos_v1::scheduler::SchedulerEvent::Event(e))) => {
                assert_ne!(e.r#type, EventType::Offers, "offers while suppressed");
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    fw.handle.revive(vec![]).await?;
    fw.take_offer(|_| true).await?;
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn declined_resources_come_back_after_the_filter_expires() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("expiry"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let agent = offer.agent_id.clone();
    let declined = Instant::now();
    fw.handle
        .decline(vec![offer.id], Some(Filters::refuse_seconds(2.0)))
        .await?;
    let again = fw.take_offer(|o| o.agent_id == agent).await?;
    let waited = declined.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "re-offered after {waited:?}, before the 2 s filter expired"
    );
    fw.handle.decline(vec![again.id], None).await?;
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn kill_policy_grace_then_sigkill() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("kill"), &[KILLING], 0.0)).await?;
    let offer = fw
        .take_offer(|o| scalar(&o.resources, "cpus") >= 0.2)
        .await?;
    // Ignores SIGTERM: only SIGKILL after the grace period ends it.
    let stubborn = unique("stubborn");
    let polite = unique("polite");
    let mut t1 = task(
        &offer,
        &stubborn,
        sh("trap '' TERM; while true; do sleep 0.1; done"),
        0.1,
        32.0,
    );
    t1.kill_policy = Some(KillPolicy::grace(Duration::from_secs(30)));
    let t2 = task(&offer, &polite, sh("exec sleep 300"), 0.1, 32.0);
    fw.handle
        .launch(vec![offer.id.clone()], vec![t1, t2], None)
        .await?;
    fw.wait_state(&stubborn, TaskState::Running, true).await?;
    fw.wait_state(&polite, TaskState::Running, true).await?;
    // The KILL's policy (1 s) overrides the task's (30 s).
    let start = Instant::now();
    fw.handle
        .kill(
            TaskId::new(stubborn.clone()),
            None,
            Some(KillPolicy::grace(Duration::from_secs(1))),
        )
        .await?;
    fw.wait_state(&stubborn, TaskState::Killing, true).await?;
    // Awaited with a deadline well short of the task's 30 s policy: reaching KILLED
    // within it means the KILL's 1 s grace was used.
    let killed = tokio::time::timeout(
        Duration::from_secs(20),
        fw.wait_state(&stubborn, TaskState::Killed, true),
    )
    .await
    .map_err(|_| "not KILLED within 20 s: the task's 30 s policy was used, not the KILL's 1 s")??;
    let took = start.elapsed();
    // A lower bound only: a slow machine makes it longer, never shorter.
    assert!(
        took >= Duration::from_millis(900),
        "SIGKILL came after the grace period ({took:?})"
    );
    assert!(
        killed
            .message
            .as_deref()
            .is_some_and(|m| m.contains("signal")),
        "{:?}",
        killed.message
    );
    // A task that honours SIGTERM dies of it, without waiting for a SIGKILL.
    fw.handle
        .kill(TaskId::new(polite.clone()), None, None)
        .await?;
    let killed = fw.wait_state(&polite, TaskState::Killed, true).await?;
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Terminated")
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn reconcile_implicit_and_explicit() -> TestResult {
    let master = Master::start()?;
    for pa in [true, false] {
        let caps = if pa { vec![PA] } else { vec![] };
        let mut fw = Fw::subscribe(&master, framework_info(&unique("rec"), &caps, 0.0)).await?;
        let offer = fw.take_offer(|_| true).await?;
        let id = unique("live");
        fw.handle
            .launch(
                vec![offer.id.clone()],
                vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
                None,
            )
            .await?;
        fw.wait_state(&id, TaskState::Running, true).await?;
        fw.updates.clear();
        fw.handle.reconcile(vec![]).await?;
        let st = fw.wait_state(&id, TaskState::Running, false).await?;
        assert_eq!(st.reason, Some(TaskStatusReason::Reconciliation));
        assert_eq!(st.source, Some(TaskStatusSource::Master));
        assert!(st.uuid.is_none());
        // Explicit: unknown task on a known agent, and with no agent at all.
        let ghost = unique("ghost");
        let nowhere = unique("nowhere");
        fw.handle
            .reconcile(vec![
                ReconcileTask {
                    task_id: TaskId::new(ghost.clone()),
                    agent_id: Some(offer.agent_id.clone()),
                },
                ReconcileTask {
                    task_id: TaskId::new(nowhere.clone()),
                    agent_id: None,
                },
            ])
            .await?;
        let (gone, unknown) = if pa {
            (TaskState::Gone, TaskState::Unknown)
        } else {
            (TaskState::Lost, TaskState::Lost)
        };
        let g = fw.wait_state(&ghost, gone, false).await?;
        assert_eq!(g.reason, Some(TaskStatusReason::Reconciliation));
        fw.wait_state(&nowhere, unknown, false).await?;
        fw.handle.teardown().await?;
    }
    Ok(())
}

#[tokio::test]
async fn kill_of_unknown_task_reconciles_it() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("kunk"), &[PA], 0.0)).await?;
    let ghost = unique("ghost");
    fw.handle
        .kill(TaskId::new(ghost.clone()), None, None)
        .await?;
    let st = fw.wait_state(&ghost, TaskState::Unknown, false).await?;
    assert_eq!(st.reason, Some(TaskStatusReason::Reconciliation));
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn failover_keeps_tasks_and_resubscribe_adopts_them() -> TestResult {
    let master = Master::start()?;
    let name = unique("failover");
    let mut fw = Fw::subscribe(&master, framework_info(&name, &[PA], 300.0)).await?;
    let fid = fw.framework_id.clone();
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("survivor");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    let running = fw.wait_state(&id, TaskState::Running, true).await?;
    // Scheduler goes away without TEARDOWN.
    fw.handle.shutdown();
    drop(fw);
    let state = eventually("framework disconnected", || async {
        let s = master.get_json("/state").await.ok()?;
        let f = s["frameworks"]
            .as_array()?
            .iter()
            .find(|f| f["id"] == fid.value.as_str())?
            .clone();
        (f["connected"] == false).then_some(f)
    })
    .await?;
    let task_state = state["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == id.as_str()))
        .map(|t| t["state"].clone());
    assert_eq!(task_state, Some(serde_json::json!("TASK_RUNNING")));
    // Re-subscribe with the same id: same framework, task still running (same pid).
    let mut info = framework_info(&name, &[PA], 300.0);
    info.id = Some(fid.clone());
    let mut fw = Fw::subscribe(&master, info).await?;
    assert_eq!(fw.framework_id, fid);
    fw.handle
        .reconcile(vec![ReconcileTask {
            task_id: TaskId::new(id.clone()),
            agent_id: Some(offer.agent_id.clone()),
        }])
        .await?;
    let st = fw.wait_state(&id, TaskState::Running, false).await?;
    assert_eq!(st.reason, Some(TaskStatusReason::Reconciliation));
    assert_eq!(
        st.container_status.and_then(|c| c.executor_pid),
        running.container_status.and_then(|c| c.executor_pid)
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn failover_timeout_kills_tasks_and_removes_framework() -> TestResult {
    let master = Master::start()?;
    let name = unique("expire");
    let mut fw = Fw::subscribe(&master, framework_info(&name, &[], 1.0)).await?;
    let fid = fw.framework_id.clone();
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("doomed");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Running, true).await?;
    fw.handle.shutdown();
    drop(fw);
    eventually("framework removed with its task killed", || async {
        let s = master.get_json("/state").await.ok()?;
        let f = s["completed_frameworks"]
            .as_array()?
            .iter()
            .find(|f| f["id"] == fid.value.as_str())?
            .clone();
        let t = f["completed_tasks"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == id.as_str())?
            .clone();
        (t["state"] == "TASK_KILLED").then_some(())
    })
    .await?;
    // A later SUBSCRIBE with that id is refused.
    let mut info = framework_info(&name, &[], 1.0);
    info.id = Some(fid.clone());
    let call = Call {
        framework_id: Some(fid.clone()),
        ..Call::subscribe(info)
    };
    let (_, events) =
        subscribe_raw(&reqwest::Client::new(), &master.scheduler_url(), &call).await?;
    let mut events = Box::pin(events);
    let first = tokio::time::timeout(WAIT, events.next())
        .await?
        .ok_or("stream ended")??;
    assert_eq!(first.r#type, EventType::Error);
    assert_eq!(
        first.error.map(|e| e.message).as_deref(),
        Some("Framework has been removed")
    );
    Ok(())
}

#[tokio::test]
async fn second_subscribe_fails_over_the_old_stream() -> TestResult {
    let master = Master::start()?;
    let client = reqwest::Client::new();
    let info = framework_info(&unique("dup"), &[], 60.0);
    let (sid1, events1) = subscribe_raw(
        &client,
        &master.scheduler_url(),
        &Call::subscribe(info.clone()),
    )
    .await?;
    let mut events1 = Box::pin(events1);
    let first = tokio::time::timeout(WAIT, events1.next())
        .await?
        .ok_or("ended")??;
    let fid = first.subscribed.ok_or("no SUBSCRIBED")?.framework_id;
    let mut info2 = info;
    info2.id = Some(fid.clone());
    let call = Call {
        framework_id: Some(fid.clone()),
        ..Call::subscribe(info2)
    };
    let (sid2, events2) = subscribe_raw(&client, &master.scheduler_url(), &call).await?;
    assert_ne!(sid1, sid2);
    let mut events2 = Box::pin(events2);
    let sub2 = tokio::time::timeout(WAIT, events2.next())
        .await?
        .ok_or("ended")??;
    assert_eq!(sub2.subscribed.map(|s| s.framework_id), Some(fid.clone()));
    // The old stream gets ERROR "Framework failed over", then ends.
    let deadline = Instant::now() + WAIT;
    let mut got_error = false;
    while Instant::now() < deadline {
        match tokio::time::timeout(WAIT, events1.next()).await? {
            Some(Ok(e)) if e.r#type == EventType::Error => {
                assert_eq!(
                    e.error.map(|x| x.message).as_deref(),
                    Some("Framework failed over")
                );
                got_error = true;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    assert!(got_error);
    // The old stream id is now stale.
    let resp = client
        .post(master.scheduler_url())
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", sid1)
        .body(serde_json::to_string(&Call::revive(fid.clone(), vec![]))?)
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    let resp = client
        .post(master.scheduler_url())
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", sid2)
        .body(serde_json::to_string(&Call::teardown(fid))?)
        .send()
        .await?;
    assert_eq!(resp.status(), 202);
    // TEARDOWN closes the stream.
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = events2.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "stream closed after TEARDOWN");
    Ok(())
}

#[tokio::test]
async fn teardown_kills_tasks() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("td"), &[], 3600.0)).await?;
    let fid = fw.framework_id.clone();
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("victim");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Running, true).await?;
    fw.handle.teardown().await?;
    eventually("task killed by teardown", || async {
        let s = master.get_json("/state").await.ok()?;
        let f = s["completed_frameworks"]
            .as_array()?
            .iter()
            .find(|f| f["id"] == fid.value.as_str())?
            .clone();
        let t = f["completed_tasks"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == id.as_str())?
            .clone();
        (t["state"] == "TASK_KILLED").then_some(())
    })
    .await?;
    Ok(())
}

async fn raw_call(
    master: &Master,
    path: &str,
    method: reqwest::Method,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error + Send + Sync>> {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{}", master.url, path))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

#[tokio::test]
async fn bad_calls_get_mesos_status_codes() -> TestResult {
    let master = Master::start()?;
    let path = "/api/v1/scheduler";
    let json_ct = [("Content-Type", "application/json")];
    let (s, _) = raw_call(&master, path, reqwest::Method::GET, &[], "").await?;
    assert_eq!(s, 405);
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &[], "{}").await?;
    assert_eq!(
        (s, b.as_str()),
        (400, "Expecting 'Content-Type' to be present")
    );
    let (s, _) = raw_call(
        &master,
        path,
        reqwest::Method::POST,
        &[("Content-Type", "text/plain")],
        "{}",
    )
    .await?;
    assert_eq!(s, 415);
    let (s, _) = raw_call(
        &master,
        path,
        reqwest::Method::POST,
        &[("Content-Type", "application/json; charset=utf-8")],
        "{}",
    )
    .await?;
    assert_eq!(s, 415);
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &json_ct, "{not json").await?;
    assert_eq!(s, 400);
    assert!(b.starts_with("Failed to parse body into JSON"), "{b}");
    // A required field (FrameworkInfo.name) missing: refused before anything else.
    let nameless =
        serde_json::json!({"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root"}}})
            .to_string();
    let (s, _) = raw_call(&master, path, reqwest::Method::POST, &json_ct, &nameless).await?;
    assert_eq!(s, 400);

    let fw = Fw::subscribe(&master, framework_info(&unique("bad"), &[], 60.0)).await?;
    let fid = fw.framework_id.value.clone();
    let sid = fw.handle.stream_id().ok_or("no stream id")?;
    let revive = serde_json::json!({"type":"REVIVE","framework_id":{"value":fid}}).to_string();
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &json_ct, &revive).await?;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "All non-subscribe calls should include the 'Mesos-Stream-Id' header"
        )
    );
    let (s, b) = raw_call(
        &master,
        path,
        reqwest::Method::POST,
        &[json_ct[0], ("Mesos-Stream-Id", "stale")],
        &revive,
    )
    .await?;
    assert_eq!(s, 400);
    assert!(b.contains("didn't match the stream ID"), "{b}");
    let with_sid = [json_ct[0], ("Mesos-Stream-Id", sid.as_str())];
    let (s, _) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &revive).await?;
    assert_eq!(s, 202);
    let other = serde_json::json!({"type":"REVIVE","framework_id":{"value":"no-such-framework"}})
        .to_string();
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &other).await?;
    assert_eq!((s, b.as_str()), (400, "Framework cannot be found"));
    let no_fid = serde_json::json!({"type":"REVIVE"}).to_string();
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &no_fid).await?;
    assert_eq!(s, 400);
    assert!(b.contains("Expecting 'framework_id' to be present"), "{b}");
    let no_body = serde_json::json!({"type":"ACCEPT","framework_id":{"value":fid}}).to_string();
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &no_body).await?;
    assert_eq!(s, 400);
    assert!(b.contains("Expecting 'accept' to be present"), "{b}");
    let bad_uuid = serde_json::json!({"type":"ACKNOWLEDGE","framework_id":{"value":fid},
        "acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAAA"}})
    .to_string();
    let (s, _) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &bad_uuid).await?;
    assert_eq!(s, 400);
    let unknown = serde_json::json!({"type":"UNKNOWN","framework_id":{"value":fid}}).to_string();
    let (s, _) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &unknown).await?;
    assert_eq!(s, 501);
    let message = serde_json::json!({"type":"MESSAGE","framework_id":{"value":fid},
        "message":{"agent_id":{"value":"a"},"executor_id":{"value":"e"},"data":"aGk="}})
    .to_string();
    let (s, _) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &message).await?;
    assert_eq!(s, 202);
    let sub = serde_json::json!({"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x"}}}).to_string();
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &sub).await?;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "Subscribe calls should not include the 'Mesos-Stream-Id' header"
        )
    );
    let mismatch = serde_json::json!({"type":"SUBSCRIBE","framework_id":{"value":"x"},
        "subscribe":{"framework_info":{"user":"root","name":"x","id":{"value":"y"}}}})
    .to_string();
    let (s, b) = raw_call(&master, path, reqwest::Method::POST, &json_ct, &mismatch).await?;
    assert_eq!(s, 400);
    assert!(
        b.contains("'framework_id' differs from 'subscribe.framework_info.id'"),
        "{b}"
    );

    // Disconnected (but not removed) framework: 403.
    fw.handle.shutdown();
    drop(fw);
    eventually("403 once disconnected", || async {
        let (s, b) = raw_call(&master, path, reqwest::Method::POST, &with_sid, &revive)
            .await
            .ok()?;
        (s == 403 && b == "Framework is not subscribed").then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn state_endpoints_and_operator_api_list_a_task() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("state"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("listed");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Running, true).await?;
    let fid = fw.framework_id.value.clone();

    let state = master.get_json("/master/state/?_ts=1").await?;
    let f = state["frameworks"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["id"] == fid.as_str()))
        .ok_or("framework in /state")?;
    let t = f["tasks"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == id.as_str()))
        .ok_or("task in /state")?;
    assert_eq!(t["state"], "TASK_RUNNING");
    assert_eq!(t["slave_id"], offer.agent_id.value.as_str());
    assert_eq!(t["resources"]["cpus"], 0.1);
    assert!(
        state["slaves"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["id"] == offer.agent_id.value.as_str()))
    );

    let tasks = master.get_json("/tasks?order=asc&limit=-1").await?;
    assert!(
        tasks["tasks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == id.as_str()))
    );
    let frameworks = master.get_json("/master/frameworks/").await?;
    assert!(
        frameworks["frameworks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["id"] == fid.as_str()))
    );
    let slaves = master.get_json("/slaves").await?;
    assert!(slaves["slaves"].as_array().is_some_and(|a| !a.is_empty()));
    let version = master.get_json("/version").await?;
    assert!(
        version["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('1'))
    );
    let metrics = master.get_json("/metrics/snapshot").await?;
    assert!(
        metrics["master/tasks_running"]
            .as_f64()
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        reqwest::get(format!("{}/health", master.url))
            .await?
            .status(),
        200
    );

    let get_state = master
        .operator(serde_json::json!({"type":"GET_STATE"}))
        .await?;
    assert_eq!(get_state["type"], "GET_STATE");
    let listed = get_state["get_state"]["get_tasks"]["tasks"]
        .as_array()
        .is_some_and(|a| {
            a.iter()
                .any(|t| t["task_id"]["value"] == id.as_str() && t["state"] == "TASK_RUNNING")
        });
    assert!(listed, "GET_STATE lists the task");
    let get_tasks = master
        .operator(serde_json::json!({"type":"GET_TASKS"}))
        .await?;
    assert!(
        get_tasks["get_tasks"]["tasks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["task_id"]["value"] == id.as_str()))
    );
    let get_agents = master
        .operator(serde_json::json!({"type":"GET_AGENTS"}))
        .await?;
    assert!(
        get_agents["get_agents"]["agents"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let get_fw = master
        .operator(serde_json::json!({"type":"GET_FRAMEWORKS"}))
        .await?;
    assert!(
        get_fw["get_frameworks"]["frameworks"]
            .as_array()
            .is_some_and(|a| a
                .iter()
                .any(|f| f["framework_info"]["id"]["value"] == fid.as_str()))
    );
    let health = master
        .operator(serde_json::json!({"type":"GET_HEALTH"}))
        .await?;
    assert_eq!(health["get_health"]["healthy"], true);
    let version = master
        .operator(serde_json::json!({"type":"GET_VERSION"}))
        .await?;
    assert!(version["get_version"]["version_info"]["version"].is_string());
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn files_api_reads_and_browses_sandbox() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("files"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("writer");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(
                &offer,
                &id,
                sh("printf 'line1\\nline2\\n'"),
                0.1,
                32.0,
            )],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Finished, true).await?;
    let base = agent_base(&master);
    let path = format!(
        "/frameworks/{}/executors/{}/runs/latest/stdout",
        fw.framework_id.value, id
    );
    let client = reqwest::Client::new();
    let size: serde_json::Value = client
        .get(format!("{base}/files/read"))
        .query(&[("path", path.as_str()), ("offset", "-1")])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(size["data"], "");
    let total = size["offset"].as_u64().ok_or("size")?;
    assert!(total > 0);
    let all = read_sandbox_file(&master, &fw.framework_id, &id, "stdout").await?;
    let pos = all.find("line1").ok_or("line1 in stdout")? as u64;
    let part: serde_json::Value = client
        .get(format!("{base}/files/read"))
        .query(&[
            ("path", path.as_str()),
            ("offset", &(pos + 6).to_string()),
            ("length", "5"),
        ])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(part["data"], "line2");
    assert_eq!(part["offset"].as_u64(), Some(pos + 6));
    let past: serde_json::Value = client
        .get(format!("{base}/files/read"))
        .query(&[
            ("path", path.as_str()),
            ("offset", &(total + 10).to_string()),
        ])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(past["data"], "");
    assert_eq!(past["offset"].as_u64(), Some(total), "clamped to the size");
    let download = client
        .get(format!("{base}/files/download"))
        .query(&[("path", path.as_str())])
        .send()
        .await?;
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().await?, all, "streamed whole");
    let missing = client
        .get(format!("{base}/files/read"))
        .query(&[
            ("path", "/frameworks/nope/executors/x/runs/latest/stdout"),
            ("offset", "0"),
        ])
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let dir = format!(
        "/frameworks/{}/executors/{}/runs/latest",
        fw.framework_id.value, id
    );
    let no_path = client.get(format!("{base}/files/read")).send().await?;
    assert_eq!(no_path.status(), 400);
    let is_dir = client
        .get(format!("{base}/files/read"))
        .query(&[("path", dir.as_str()), ("offset", "0")])
        .send()
        .await?;
    assert_eq!(is_dir.status(), 400);
    let listing: serde_json::Value = client
        .get(format!("{base}/files/browse"))
        .query(&[("path", dir.as_str())])
        .send()
        .await?
        .json()
        .await?;
    let names: Vec<String> = listing
        .as_array()
        .ok_or("array")?
        .iter()
        .filter_map(|e| e["path"].as_str().map(String::from))
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("/stdout"))
            && names.iter().any(|n| n.ends_with("/stderr")),
        "{names:?}"
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn multi_role_offers_carry_allocation_info() -> TestResult {
    let master = Master::start()?;
    let mut info = framework_info(&unique("multi"), &[FrameworkCapabilityType::MultiRole], 0.0);
    info.roles = vec!["concord".into()];
    let mut fw = Fw::subscribe(&master, info).await?;
    let offer = fw.take_offer(|_| true).await?;
    assert_eq!(
        offer
            .allocation_info
            .as_ref()
            .and_then(|a| a.role.as_deref()),
        Some("concord")
    );
    assert!(
        offer
            .resources
            .iter()
            .all(|r| r.allocation_info.as_ref().and_then(|a| a.role.as_deref()) == Some("concord"))
    );
    // Resources copied from the offer (allocation info included) launch fine.
    let id = unique("role");
    let mut t = task(
        &offer,
        &id,
        sh("echo role=$MESOS_ALLOCATION_ROLE"),
        0.1,
        32.0,
    );
    t.resources = mesos_v1::resources::allocate_to(&t.resources, "concord");
    fw.handle
        .launch(vec![offer.id.clone()], vec![t], None)
        .await?;
    fw.wait_state(&id, TaskState::Finished, true).await?;
    let out = read_sandbox_file(&master, &fw.framework_id, &id, "stdout").await?;
    assert!(out.contains("role=concord"), "{out}");
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn update_framework_is_accepted() -> TestResult {
    let master = Master::start()?;
    let name = unique("upd");
    let mut fw = Fw::subscribe(&master, framework_info(&name, &[], 60.0)).await?;
    let mut info = framework_info(&name, &[FrameworkCapabilityType::TaskKillingState], 120.0);
    info.id = Some(fw.framework_id.clone());
    fw.handle.update_framework(info, vec![]).await?;
    let state = master.get_json("/frameworks").await?;
    let f = state["frameworks"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["id"] == fw.framework_id.value.as_str())
                .cloned()
        })
        .ok_or("framework listed")?;
    assert_eq!(f["failover_timeout"], 120.0);
    fw.take_offer(|_| true).await?;
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_of_a_command_executor_kills_its_task() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("shut"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("shutme");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("exec sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Running, true).await?;
    // The command executor's id is the task id.
    fw.handle
        .shutdown_executor(ExecutorId::new(id.clone()), offer.agent_id.clone())
        .await?;
    fw.wait_state(&id, TaskState::Killed, true).await?;
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn command_health_check_reports_health_and_kills_after_failures() -> TestResult {
    let master = Master::start()?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("health"), &[KILLING], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("checked");
    let mut t = task(
        &offer,
        &id,
        sh("touch ok; sleep 2; rm ok; exec sleep 300"),
        0.1,
        32.0,
    );
    t.health_check = Some(HealthCheck {
        r#type: Some(HealthCheckType::Command),
        command: Some(sh("test -f \"$MESOS_SANDBOX/ok\"")),
        delay_seconds: 0.0,
        interval_seconds: 0.3,
        timeout_seconds: 5.0,
        consecutive_failures: 2,
        grace_period_seconds: 0.0,
        ..HealthCheck::default()
    });
    fw.handle
        .launch(vec![offer.id.clone()], vec![t], None)
        .await?;
    let healthy = fw
        .wait_update(&id, "healthy", |s| {
            s.state == TaskState::Running && s.healthy == Some(true)
        })
        .await?;
    assert_eq!(
        healthy.reason,
        Some(TaskStatusReason::TaskHealthCheckStatusUpdated)
    );
    fw.wait_update(&id, "unhealthy", |s| {
        s.state == TaskState::Running && s.healthy == Some(false)
    })
    .await?;
    let killed = fw
        .wait_update(&id, "killed", |s| s.state == TaskState::Killed)
        .await?;
    assert_eq!(killed.healthy, Some(false));
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn max_completion_time_fails_the_task() -> TestResult {
    let master = Master::start()?;
    let mut fw =
        Fw::subscribe(&master, framework_info(&unique("maxtime"), &[KILLING], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("slow");
    let mut t = task(&offer, &id, sh("exec sleep 300"), 0.1, 32.0);
    t.max_completion_time = Some(DurationInfo::from_duration(Duration::from_millis(500)));
    fw.handle
        .launch(vec![offer.id.clone()], vec![t], None)
        .await?;
    let failed = fw.wait_state(&id, TaskState::Failed, true).await?;
    assert_eq!(
        failed.reason,
        Some(TaskStatusReason::MaxCompletionTimeReached)
    );
    assert!(
        !fw.updates
            .iter()
            .any(|s| s.task_id.value == id && s.state == TaskState::Killing),
        "no TASK_KILLING for a max_completion_time kill"
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn invalid_framework_info_gets_an_error_event() -> TestResult {
    let master = Master::start()?;
    let mut info = framework_info(&unique("badroles"), &[], 0.0);
    info.roles = vec!["concord".into()];
    let (_, events) = subscribe_raw(
        &reqwest::Client::new(),
        &master.scheduler_url(),
        &Call::subscribe(info),
    )
    .await?;
    let mut events = Box::pin(events);
    let first = tokio::time::timeout(WAIT, events.next())
        .await?
        .ok_or("stream ended")??;
    assert_eq!(first.r#type, EventType::Error);
    assert!(
        first
            .error
            .is_some_and(|e| e.message.contains("MULTI_ROLE"))
    );
    let end = tokio::time::timeout(WAIT, events.next()).await?;
    assert!(
        end.is_none() || end.is_some_and(|e| e.is_err()),
        "stream closes after ERROR"
    );
    Ok(())
}
