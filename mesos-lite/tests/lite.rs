//! mesos-lite-only cases: they need its flags (short retry intervals, agent count,
//! offer timeout), restarts with the same work_dir, or local files on the agent.
//! Skipped when `MESOS_MASTER_URL` points the suite at a real master.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use mesos_v1::*;

const PA: FrameworkCapabilityType = FrameworkCapabilityType::PartitionAware;

macro_rules! lite_only {
    () => {
        if Master::is_real() {
            eprintln!("skipped: needs mesos-lite");
            return Ok(());
        }
    };
}

fn sh(cmd: &str) -> CommandInfo {
    CommandInfo::shell(cmd)
}

#[tokio::test]
async fn unacknowledged_update_is_resent_acknowledged_is_not() -> TestResult {
    lite_only!();
    let master = Master::lite(&["--status_update_retry_interval", "200ms"])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("retry"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("t");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    // STARTING is the head; without an ACK it comes again with the same uuid, and
    // RUNNING is held back behind it.
    let first = fw.wait_state(&id, TaskState::Starting, false).await?;
    let uuid = first.uuid.clone().ok_or("uuid")?;
    fw.updates.clear();
    let again = fw.wait_state(&id, TaskState::Starting, false).await?;
    assert_eq!(again.uuid.as_ref(), Some(&uuid));
    assert!(
        fw.updates.iter().all(|s| s.state == TaskState::Starting),
        "RUNNING waits for the ACK"
    );
    fw.ack(&first).await?;
    let running = fw.wait_state(&id, TaskState::Running, false).await?;
    fw.ack(&running).await?;
    // Acknowledged: no more resends within several retry intervals.
    fw.updates.clear();
    let quiet = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < quiet {
        let left = quiet.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, fw.events.recv()).await.is_err() {
            break;
        }
    }
    let resent: Vec<_> = fw
        .updates
        .iter()
        .filter(|s| s.task_id.value == id)
        .collect();
    assert!(
        resent.is_empty(),
        "acknowledged updates are not resent: {resent:?}"
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn each_agent_offers_its_own_share() -> TestResult {
    lite_only!();
    let master = Master::lite(&[
        "--agents",
        "3",
        "--resources",
        "cpus:2;mem:1024;disk:100;ports:[31000-31029]",
    ])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("agents"), &[], 0.0)).await?;
    let mut offers = Vec::new();
    while offers.len() < 3 {
        offers.push(fw.take_offer(|_| true).await?);
    }
    let mut agents: Vec<String> = offers.iter().map(|o| o.agent_id.value.clone()).collect();
    agents.sort();
    agents.dedup();
    assert_eq!(agents.len(), 3, "one offer per agent");
    assert!(agents.iter().all(|a| a.contains("-S")));
    let mut ports: Vec<(u64, u64)> = Vec::new();
    for o in &offers {
        assert_eq!(scalar(&o.resources, "cpus"), 2.0);
        for r in mesos_v1::resources::ranges_total(&o.resources, "ports") {
            assert!(
                ports.iter().all(|&(b, e)| r.end < b || r.begin > e),
                "disjoint port ranges"
            );
            ports.push((r.begin, r.end));
        }
    }
    let total: u64 = ports.iter().map(|(b, e)| e - b + 1).sum();
    assert_eq!(total, 30);
    let state = master.get_json("/state").await?;
    assert_eq!(state["slaves"].as_array().map(Vec::len), Some(3));
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn agents_have_their_own_hostnames_and_attributes() -> TestResult {
    lite_only!();
    let master = Master::lite(&[
        "--agents",
        "3",
        "--resources",
        "cpus:2;mem:1024;disk:100;ports:[31000-31029]",
        "--hostnames",
        "h1,h1,h2",
        "--attributes",
        "dc:x",
        "--agent_attributes",
        "rack:r1;zone:2|rack:r1;zone:3|rack:r2;slots:[1-2,3-4]",
    ])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("attrs"), &[], 0.0)).await?;
    let mut offers = Vec::new();
    while offers.len() < 3 {
        offers.push(fw.take_offer(|_| true).await?);
    }
    offers.sort_by(|a, b| a.agent_id.value.cmp(&b.agent_id.value));
    let slots = Attribute {
        name: "slots".into(),
        r#type: ValueType::Ranges,
        ranges: Some(Ranges {
            range: vec![Range { begin: 1, end: 4 }],
        }),
        ..Attribute::default()
    };
    let want = [
        (
            "h1",
            vec![
                Attribute::text("dc", "x"),
                Attribute::text("rack", "r1"),
                Attribute::scalar("zone", 2.0),
            ],
        ),
        (
            "h1",
            vec![
                Attribute::text("dc", "x"),
                Attribute::text("rack", "r1"),
                Attribute::scalar("zone", 3.0),
            ],
        ),
        (
            "h2",
            vec![
                Attribute::text("dc", "x"),
                Attribute::text("rack", "r2"),
                slots,
            ],
        ),
    ];
    let port = master.lite.as_ref().map(|l| l.port).ok_or("lite")?;
    for (offer, (host, attributes)) in offers.iter().zip(&want) {
        assert_eq!(offer.hostname, *host);
        assert_eq!(&offer.attributes, attributes, "offer of {}", offer.hostname);
        // A hostname is a label: the agent is reached at the master's IP and port.
        let url = offer.url.as_ref().ok_or("offer url")?;
        assert_eq!(url.address.hostname.as_deref(), Some(*host));
        assert_eq!(url.address.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(url.address.port, i32::from(port));
    }

    // As Mesos writes them: v1 JSON in the operator API, the legacy object in /state.
    let agents = master
        .operator(serde_json::json!({"type": "GET_AGENTS"}))
        .await?;
    let list = agents["get_agents"]["agents"].as_array().ok_or("agents")?;
    assert_eq!(list.len(), 3);
    let by_id = |id: &str| {
        list.iter()
            .find(|a| a["agent_info"]["id"]["value"] == id)
            .cloned()
            .unwrap_or_default()
    };
    let third = by_id(&offers[2].agent_id.value);
    assert_eq!(third["agent_info"]["hostname"], "h2");
    assert_eq!(
        third["agent_info"]["attributes"],
        serde_json::json!([
            {"name": "dc", "type": "TEXT", "text": {"value": "x"}},
            {"name": "rack", "type": "TEXT", "text": {"value": "r2"}},
            {"name": "slots", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 4}]}}
        ])
    );
    assert_eq!(
        by_id(&offers[0].agent_id.value)["agent_info"]["attributes"][2],
        serde_json::json!({"name": "zone", "type": "SCALAR", "scalar": {"value": 2.0}})
    );
    for path in ["/state", "/slaves"] {
        let state = master.get_json(path).await?;
        let slaves = state["slaves"].as_array().ok_or("slaves")?;
        let slave = |id: &str| {
            slaves
                .iter()
                .find(|s| s["id"] == id)
                .cloned()
                .unwrap_or_default()
        };
        let first = slave(&offers[0].agent_id.value);
        assert_eq!(first["hostname"], "h1", "{path}");
        assert_eq!(
            first["attributes"],
            serde_json::json!({"dc": "x", "rack": "r1", "zone": 2.0}),
            "{path}"
        );
        let third = slave(&offers[2].agent_id.value);
        assert_eq!(third["hostname"], "h2");
        assert_eq!(
            third["attributes"],
            serde_json::json!({"dc": "x", "rack": "r2", "slots": "[1-4]"})
        );
        assert_eq!(third["pid"], format!("slave(3)@127.0.0.1:{port}"));
    }
    let agent = master.get_json("/slave(3)/state").await?;
    assert_eq!(agent["hostname"], "h2");
    assert_eq!(agent["attributes"]["rack"], "r2");
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn several_agents_get_distinct_hostnames_by_default() -> TestResult {
    lite_only!();
    let master = Master::lite(&["--agents", "2", "--hostname", "box"])?;
    let state = master.get_json("/state").await?;
    let mut names: Vec<String> = state["slaves"]
        .as_array()
        .ok_or("slaves")?
        .iter()
        .filter_map(|s| s["hostname"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, ["box-agent-0", "box-agent-1"]);
    assert_eq!(state["hostname"], "box", "the master keeps its name");
    Ok(())
}

#[tokio::test]
async fn bad_agent_flags_are_refused() -> TestResult {
    lite_only!();
    for extra in [
        &["--agents", "2", "--hostnames", "h1"][..],
        &["--agents", "2", "--agent_attributes", "rack:r1"][..],
        &["--attributes", "rack"][..],
        &["--attributes", "s:{a,b}"][..],
    ] {
        let dir = tempfile::tempdir()?;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-lite"))
            .args(["--ip", "127.0.0.1", "--port", "0", "--work_dir"])
            .arg(dir.path())
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "{extra:?} was accepted: mesos-lite kept running"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!status.success(), "{extra:?} should be refused");
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut err)?;
        }
        assert!(
            err.contains("hostnames") || err.contains("attribute"),
            "{extra:?}: {err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn heartbeats_follow_the_flag() -> TestResult {
    lite_only!();
    let master = Master::lite(&["--heartbeat_interval", "100ms"])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("hb"), &[], 0.0)).await?;
    for _ in 0..3 {
        fw.wait_event("HEARTBEAT", |e| e.r#type == EventType::Heartbeat)
            .await?;
    }
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn offer_timeout_rescinds() -> TestResult {
    lite_only!();
    let master = Master::lite(&["--offer_timeout", "300ms"])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("rescind"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let ev = fw
        .wait_event("RESCIND", |e| e.r#type == EventType::Rescind)
        .await?;
    assert_eq!(ev.rescind.map(|r| r.offer_id), Some(offer.id.clone()));
    // The rescinded offer is no longer usable.
    let id = unique("late");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("true"), 0.1, 32.0)],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Lost, false).await?;
    fw.handle.teardown().await?;
    Ok(())
}

fn targz(path: &std::path::Path, name: &str, content: &[u8]) -> std::io::Result<()> {
    let gz =
        flate2::write::GzEncoder::new(std::fs::File::create(path)?, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, content)?;
    tar.into_inner()?.finish()?;
    Ok(())
}

fn zipfile(
    path: &std::path::Path,
    name: &str,
    content: &[u8],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    zip.start_file(name, zip::write::SimpleFileOptions::default())?;
    zip.write_all(content)?;
    zip.finish()?;
    Ok(())
}

/// Serves `body` for any GET on a loopback port, for `count` requests.
async fn serve_once(body: &'static str, count: usize) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        for _ in 0..count {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    Ok(port)
}

#[tokio::test]
async fn fetcher_brings_uris_into_the_sandbox() -> TestResult {
    lite_only!();
    let master = Master::lite(&[])?;
    let files = tempfile::tempdir()?;
    let tool = files.path().join("tool.sh");
    std::fs::write(&tool, "#!/bin/sh\necho tool-ran\n")?;
    let conf = files.path().join("conf.json");
    std::fs::write(&conf, "{\"k\":1}")?;
    let archive = files.path().join("bundle.tar.gz");
    targz(&archive, "inside.txt", b"from-tar")?;
    let zipped = files.path().join("pack.zip");
    zipfile(&zipped, "zipped.txt", b"from-zip")?;
    let port = serve_once("from-http", 1).await?;

    let mut fw = Fw::subscribe(&master, framework_info(&unique("fetch"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let mut cmd =
        sh("./tool.sh && cat conf/app.json inside.txt zipped.txt web.txt && test -f bundle.tar.gz");
    let uri = |v: String| Uri::new(v);
    cmd.uris = vec![
        Uri {
            executable: Some(true),
            ..uri(tool.display().to_string())
        },
        Uri {
            output_file: Some("conf/app.json".into()),
            ..uri(format!("file://{}", conf.display()))
        },
        uri(archive.display().to_string()),
        uri(zipped.display().to_string()),
        Uri {
            output_file: Some("web.txt".into()),
            ..uri(format!("http://127.0.0.1:{port}/some/path"))
        },
    ];
    let id = unique("fetched");
    let bad_id = unique("badfetch");
    let mut bad = sh("true");
    bad.uris = vec![uri("/nonexistent/file.tar.gz".into())];
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![
                task(&offer, &id, cmd, 0.1, 32.0),
                task(&offer, &bad_id, bad, 0.1, 32.0),
            ],
            None,
        )
        .await?;
    let failed = fw.wait_state(&bad_id, TaskState::Failed, true).await?;
    assert_eq!(failed.reason, Some(TaskStatusReason::ContainerLaunchFailed));
    assert_eq!(failed.source, Some(TaskStatusSource::Agent));
    let done = fw.wait_state(&id, TaskState::Finished, true).await;
    let out = read_sandbox_file(&master, &fw.framework_id, &id, "stdout").await?;
    done.map_err(|e| fail(format!("{e}; stdout: {out}")))?;
    for expected in ["tool-ran", "{\"k\":1}", "from-tar", "from-zip", "from-http"] {
        assert!(out.contains(expected), "{expected} in {out}");
    }
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn secret_volumes_become_private_files_in_the_sandbox() -> TestResult {
    lite_only!();
    let master = Master::lite(&[])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("secret"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let with_volumes = |mut t: TaskInfo, volumes: Vec<Volume>| {
        t.container = Some(ContainerInfo {
            r#type: ContainerType::Mesos,
            volumes,
            ..ContainerInfo::default()
        });
        t
    };
    let id = unique("withsecret");
    let good = with_volumes(
        task(
            &offer,
            &id,
            sh("stat -c '%a' .private/key && cat .private/key && echo && env"),
            0.1,
            32.0,
        ),
        vec![Volume::secret_file(
            ".private/key",
            Secret::value(b"s3cret-bytes".to_vec()),
        )],
    );
    let reference_id = unique("refsecret");
    let reference = with_volumes(
        task(&offer, &reference_id, sh("true"), 0.1, 32.0),
        vec![Volume::secret_file(
            "key",
            Secret {
                r#type: Some(SecretType::Reference),
                reference: Some(SecretReference {
                    name: "/my/secret".into(),
                    key: None,
                }),
                value: None,
            },
        )],
    );
    let escape_id = unique("escape");
    let escape = with_volumes(
        task(&offer, &escape_id, sh("true"), 0.1, 32.0),
        vec![Volume::secret_file(
            "../outside",
            Secret::value(b"x".to_vec()),
        )],
    );
    // The JSON is Mesos': a SECRET source with a VALUE secret, data in base64.
    let json = serde_json::to_value(&good.container)?;
    assert_eq!(
        json["volumes"][0],
        serde_json::json!({
            "mode": "RO",
            "container_path": ".private/key",
            "source": {"type": "SECRET", "secret": {"type": "VALUE", "value": {"data": "czNjcmV0LWJ5dGVz"}}}
        })
    );
    fw.handle
        .launch(vec![offer.id.clone()], vec![good, reference, escape], None)
        .await?;
    for bad in [&reference_id, &escape_id] {
        let failed = fw.wait_state(bad, TaskState::Failed, true).await?;
        assert_eq!(failed.reason, Some(TaskStatusReason::ContainerLaunchFailed));
    }
    let done = fw.wait_state(&id, TaskState::Finished, true).await;
    let out = read_sandbox_file(&master, &fw.framework_id, &id, "stdout").await?;
    done.map_err(|e| fail(format!("{e}; stdout: {out}")))?;
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("400"),
        "read-only secret file mode: {out}"
    );
    assert_eq!(lines.next(), Some("s3cret-bytes"), "{out}");
    assert!(
        !out.contains("czNjcmV0") && out.matches("s3cret").count() == 1,
        "not in the environment: {out}"
    );
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn launch_group_runs_every_task() -> TestResult {
    lite_only!();
    let master = Master::lite(&[])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("group"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let executor = ExecutorInfo {
        r#type: Some(ExecutorType::Default),
        executor_id: ExecutorId::new(unique("exec")),
        framework_id: Some(fw.framework_id.clone()),
        resources: vec![
            Resource::scalar("cpus", 0.1),
            Resource::scalar("mem", 32.0),
            Resource::scalar("disk", 10.0),
        ],
        ..ExecutorInfo::default()
    };
    let a = unique("ga");
    let b = unique("gb");
    let ta = task(&offer, &a, sh("echo a"), 0.1, 32.0);
    let tb = task(&offer, &b, sh("exec sleep 300"), 0.1, 32.0);
    let full = scalar(&offer.resources, "cpus");
    fw.handle
        .accept(
            vec![offer.id.clone()],
            vec![Operation::launch_group(executor, vec![ta, tb])],
            Some(Filters::refuse_seconds(0.0)),
        )
        .await?;
    fw.wait_state(&a, TaskState::Finished, true).await?;
    fw.wait_state(&b, TaskState::Running, true).await?;
    // Task b and the group's executor are still charged once a is done.
    let partial = fw
        .take_offer_declining(|o| (scalar(&o.resources, "cpus") - (full - 0.2)).abs() < 0.001)
        .await?;
    fw.handle
        .decline(vec![partial.id], Some(Filters::refuse_seconds(0.0)))
        .await?;
    fw.handle.kill(TaskId::new(b.clone()), None, None).await?;
    fw.wait_state(&b, TaskState::Killed, true).await?;
    // All of it comes back when the last task of the group is gone.
    fw.take_offer_declining(|o| (scalar(&o.resources, "cpus") - full).abs() < 0.001)
        .await?;
    fw.handle.teardown().await?;
    Ok(())
}

async fn launch_sleeper(
    fw: &mut Fw,
) -> Result<(Offer, String, u32), Box<dyn std::error::Error + Send + Sync>> {
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("sleeper");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(&offer, &id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    let running = fw.wait_state(&id, TaskState::Running, true).await?;
    let pid = running
        .container_status
        .and_then(|c| c.executor_pid)
        .ok_or("executor_pid")?;
    assert!(pid_alive(pid));
    Ok((offer, id, pid))
}

#[tokio::test]
async fn restart_with_same_work_dir_never_reports_dead_tasks_alive() -> TestResult {
    lite_only!();
    for signal in [15, 9] {
        let lite = Lite::spawn(None, &[])?;
        let master = Master {
            url: format!("http://127.0.0.1:{}", lite.port),
            lite: None,
        };
        let name = unique("restart");
        let mut fw = Fw::subscribe(&master, framework_info(&name, &[PA], 3600.0)).await?;
        let fid = fw.framework_id.clone();
        let (offer, id, pid) = launch_sleeper(&mut fw).await?;
        fw.handle.shutdown();
        drop(fw);
        let master_id = master.get_json("/state").await?["id"].clone();

        // SIGTERM: tasks die with mesos-lite. SIGKILL: the restarted instance kills
        // the leftovers it recorded (after checking they are still its processes).
        let lite = lite.restart(signal)?;
        eventually("old task process gone", || async {
            (!pid_alive(pid)).then_some(())
        })
        .await?;
        let master = Master {
            url: format!("http://127.0.0.1:{}", lite.port),
            lite: Some(lite),
        };
        let state = master.get_json("/state").await?;
        assert_eq!(state["id"], master_id, "master id kept in work_dir");
        let listed_running = state["frameworks"].as_array().is_some_and(|fs| {
            fs.iter()
                .any(|f| f["tasks"].as_array().is_some_and(|t| !t.is_empty()))
        });
        assert!(!listed_running, "no task listed after restart");
        // An offer id held over the restart names no new offer.
        let mut probe = Fw::subscribe(&master, framework_info(&unique("probe"), &[], 0.0)).await?;
        let fresh = probe.take_offer(|_| true).await?;
        assert_ne!(
            fresh.id, offer.id,
            "offer ids are not reused across restarts"
        );
        probe.handle.teardown().await?;

        // The scheduler re-subscribes with its id (master failover semantics) and
        // reconciles: the task is reported gone, not running.
        let mut info = framework_info(&name, &[PA], 3600.0);
        info.id = Some(fid.clone());
        let mut fw = Fw::subscribe(&master, info).await?;
        assert_eq!(fw.framework_id, fid);
        fw.handle
            .reconcile(vec![ReconcileTask {
                task_id: TaskId::new(id.clone()),
                agent_id: Some(offer.agent_id.clone()),
            }])
            .await?;
        let st = fw.wait_state(&id, TaskState::Gone, false).await?;
        assert_eq!(st.reason, Some(TaskStatusReason::Reconciliation));
        fw.handle.reconcile(vec![]).await?;
        // A new framework gets an id that does not collide with the old one.
        let other = Fw::subscribe(&master, framework_info(&unique("new"), &[], 0.0)).await?;
        assert_ne!(other.framework_id, fid);
        other.handle.teardown().await?;
        fw.handle.teardown().await?;
    }
    Ok(())
}

#[tokio::test]
async fn kill_and_exit_reach_the_whole_process_tree() -> TestResult {
    lite_only!();
    let master = Master::lite(&[])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("tree"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let killed = unique("killed");
    let exited = unique("exited");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![
                task(
                    &offer,
                    &killed,
                    sh("sleep 300 & echo $! > child.pid; wait"),
                    0.1,
                    32.0,
                ),
                task(
                    &offer,
                    &exited,
                    sh("sleep 300 & echo $! > child.pid; echo started"),
                    0.1,
                    32.0,
                ),
            ],
            None,
        )
        .await?;
    fw.wait_state(&killed, TaskState::Running, true).await?;
    fw.wait_state(&exited, TaskState::Finished, true).await?;
    let child_of = |id: String| {
        let master = &master;
        let fid = fw.framework_id.clone();
        async move {
            eventually("child.pid written", || {
                let id = id.clone();
                let fid = fid.clone();
                async move {
                    let text = read_sandbox_file(master, &fid, &id, "child.pid")
                        .await
                        .ok()?;
                    text.trim().parse::<u32>().ok()
                }
            })
            .await
        }
    };
    let orphan = child_of(exited.clone()).await?;
    eventually("background child of a finished task is gone", || async {
        (!pid_alive(orphan)).then_some(())
    })
    .await?;
    let child = child_of(killed.clone()).await?;
    assert!(pid_alive(child));
    fw.handle
        .kill(TaskId::new(killed.clone()), None, None)
        .await?;
    fw.wait_state(&killed, TaskState::Killed, true).await?;
    eventually("child of a killed task is gone", || async {
        (!pid_alive(child)).then_some(())
    })
    .await?;
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn agent_state_names_sandbox_directories_the_files_api_serves() -> TestResult {
    lite_only!();
    let master = Master::lite(&["--agents", "2"])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("agentstate"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let id = unique("logged");
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(
                &offer,
                &id,
                sh("echo in-sandbox; sleep 300"),
                0.1,
                32.0,
            )],
            None,
        )
        .await?;
    fw.wait_state(&id, TaskState::Running, true).await?;
    let n: usize = offer
        .agent_id
        .value
        .rsplit("-S")
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or("agent index")?;
    let path = offer
        .url
        .as_ref()
        .and_then(|u| u.path.clone())
        .ok_or("offer url path")?;
    assert_eq!(path, format!("/slave({})", n + 1));
    let state = master.get_json(&format!("{path}/state")).await?;
    assert_eq!(state["id"], offer.agent_id.value.as_str());
    let executor = state["frameworks"]
        .as_array()
        .and_then(|fs| {
            fs.iter()
                .find(|f| f["id"] == fw.framework_id.value.as_str())
        })
        .and_then(|f| f["executors"].as_array())
        .and_then(|es| es.iter().find(|e| e["id"] == id.as_str()).cloned())
        .ok_or("executor in agent state")?;
    let dir = executor["directory"]
        .as_str()
        .ok_or("directory")?
        .to_string();
    let out = eventually("stdout via the real sandbox path", || {
        let url = format!("{}{path}/files/read", master.url);
        let file = format!("{dir}/stdout");
        async move {
            let v: serde_json::Value = reqwest::Client::new()
                .get(url)
                .query(&[("path", file.as_str()), ("offset", "0")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let data = v["data"].as_str()?.to_string();
            data.contains("in-sandbox").then_some(data)
        }
    })
    .await?;
    assert!(out.contains("in-sandbox"));
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn many_tasks_in_one_accept_all_finish_and_resources_return() -> TestResult {
    lite_only!();
    let master = Master::lite(&[
        "--resources",
        "cpus:8;mem:8192;disk:100;ports:[31000-31010]",
    ])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("many"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let ids: Vec<String> = (0..40).map(|i| format!("{}-{i}", unique("many"))).collect();
    let tasks = ids
        .iter()
        .map(|id| task(&offer, id, sh("echo $MESOS_EXECUTOR_ID"), 0.1, 64.0))
        .collect();
    fw.handle
        .launch(
            vec![offer.id.clone()],
            tasks,
            Some(Filters::refuse_seconds(0.0)),
        )
        .await?;
    for id in &ids {
        fw.wait_state(id, TaskState::Finished, true).await?;
    }
    // Partial offers made while tasks were finishing are declined until the agent's
    // whole capacity comes back in one offer.
    fw.take_offer_declining(|o| {
        scalar(&o.resources, "cpus") == 8.0 && scalar(&o.resources, "mem") == 8192.0
    })
    .await?;
    let state = master.get_json("/state").await?;
    let completed = state["frameworks"][0]["completed_tasks"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(completed, 40);
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_task_kills_the_rest_of_its_group() -> TestResult {
    lite_only!();
    let master = Master::lite(&[])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("groupfail"), &[], 0.0)).await?;
    let offer = fw.take_offer(|_| true).await?;
    let executor = ExecutorInfo {
        r#type: Some(ExecutorType::Default),
        executor_id: ExecutorId::new(unique("exec")),
        framework_id: Some(fw.framework_id.clone()),
        resources: vec![
            Resource::scalar("cpus", 0.1),
            Resource::scalar("mem", 32.0),
            Resource::scalar("disk", 10.0),
        ],
        ..ExecutorInfo::default()
    };
    let bad = unique("bad");
    let good = unique("good");
    fw.handle
        .accept(
            vec![offer.id.clone()],
            vec![Operation::launch_group(
                executor,
                vec![
                    task(&offer, &bad, sh("sleep 0.5; exit 1"), 0.1, 32.0),
                    task(&offer, &good, sh("exec sleep 300"), 0.1, 32.0),
                ],
            )],
            None,
        )
        .await?;
    fw.wait_state(&bad, TaskState::Failed, true).await?;
    fw.wait_state(&good, TaskState::Killed, true).await?;
    fw.handle.teardown().await?;
    Ok(())
}

/// Launches `sleep 300` as `id` on `offer` and waits for it to run; returns its pid.
async fn run_sleeper(
    fw: &mut Fw,
    offer: &Offer,
    id: &str,
) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    fw.handle
        .launch(
            vec![offer.id.clone()],
            vec![task(offer, id, sh("sleep 300"), 0.1, 32.0)],
            None,
        )
        .await?;
    let running = fw.wait_state(id, TaskState::Running, true).await?;
    let pid = running
        .container_status
        .and_then(|c| c.executor_pid)
        .ok_or("executor_pid")?;
    Ok(pid)
}

/// POSTs `path` (no body); returns the status and the body text.
async fn post(
    master: &Master,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, String), Box<dyn std::error::Error + Send + Sync>> {
    let mut req = reqwest::Client::new().post(format!("{}{path}", master.url));
    if let Some(body) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Waits for the FAILURE event of `agent`; the updates seen before it are in `fw.updates`.
async fn wait_failure(fw: &mut Fw, agent: &AgentId) -> TestResult {
    let ev = fw
        .wait_event("FAILURE", |e| e.r#type == EventType::Failure)
        .await?;
    let failure = ev.failure.ok_or("failure body")?;
    assert_eq!(failure.agent_id.as_ref(), Some(agent));
    assert_eq!(failure.executor_id, None, "an agent, not an executor");
    assert_eq!(failure.status, None);
    Ok(())
}

#[tokio::test]
async fn a_lost_agent_reports_its_tasks_unreachable_then_failure() -> TestResult {
    lite_only!();
    let master = Master::lite(&[
        "--agents",
        "2",
        "--resources",
        "cpus:2;mem:1024;disk:100;ports:[31000-31029]",
    ])?;
    let mut fw = Fw::subscribe(&master, framework_info(&unique("lose"), &[PA], 0.0)).await?;
    let on_a = fw.take_offer(|_| true).await?;
    let a = on_a.agent_id.clone();
    let on_b = fw.take_offer(|o| o.agent_id != a).await?;
    let (t1, t2) = (unique("t1"), unique("t2"));
    let pid1 = run_sleeper(&mut fw, &on_a, &t1).await?;
    let pid2 = run_sleeper(&mut fw, &on_b, &t2).await?;
    fw.updates.clear();

    assert_eq!(
        post(&master, &format!("/lite/agents/{}/lose", a.value), None)
            .await?
            .0,
        200
    );
    wait_failure(&mut fw, &a).await?;
    let lost: Vec<&TaskStatus> = fw
        .updates
        .iter()
        .filter(|s| s.task_id.value == t1)
        .collect();
    assert_eq!(lost.len(), 1, "one update before FAILURE: {lost:?}");
    let st = lost[0];
    assert_eq!(st.state, TaskState::Unreachable);
    assert_eq!(st.reason, Some(TaskStatusReason::AgentRemoved));
    assert_eq!(st.source, Some(TaskStatusSource::Master));
    assert_eq!(st.message.as_deref(), Some("health check timed out"));
    assert_eq!(st.agent_id.as_ref(), Some(&a));
    assert!(st.uuid.is_none(), "master-made: never retried");
    assert!(st.unreachable_time.is_some_and(|t| t.nanoseconds > 0));
    assert!(
        fw.updates.iter().all(|s| s.task_id.value != t2),
        "the other agent's task is untouched"
    );
    eventually("the lost agent's task process to be gone", || async {
        (!pid_alive(pid1)).then_some(())
    })
    .await?;
    assert!(pid_alive(pid2));

    // The agent has left every listing; its task is unreachable.
    let state = master.get_json("/state").await?;
    let slaves = state["slaves"].as_array().ok_or("slaves")?;
    assert_eq!(slaves.len(), 1);
    assert_ne!(slaves[0]["id"], a.value.as_str());
    assert_eq!(state["unreachable_slaves"], 1.0);
    assert_eq!(state["activated_slaves"], 1.0);
    let framework = &state["frameworks"][0];
    assert_eq!(framework["unreachable_tasks"][0]["id"], t1.as_str());
    assert_eq!(
        framework["unreachable_tasks"][0]["state"],
        "TASK_UNREACHABLE"
    );
    assert_eq!(framework["tasks"][0]["id"], t2.as_str());
    assert!(
        framework["offers"]
            .as_array()
            .is_none_or(|o| o.iter().all(|o| o["slave_id"] != a.value.as_str())),
        "no offers from a lost agent"
    );
    let agents = master
        .operator(serde_json::json!({"type": "GET_AGENTS"}))
        .await?;
    assert_eq!(
        agents["get_agents"]["agents"].as_array().map(Vec::len),
        Some(1)
    );
    let tasks = master
        .operator(serde_json::json!({"type": "GET_TASKS"}))
        .await?;
    assert_eq!(
        tasks["get_tasks"]["unreachable_tasks"][0]["task_id"]["value"],
        t1.as_str()
    );

    // Reconciliation answers as the master does for an unreachable agent.
    fw.updates.clear();
    fw.handle
        .reconcile(vec![ReconcileTask {
            task_id: TaskId::new(t1.clone()),
            agent_id: Some(a.clone()),
        }])
        .await?;
    let st = fw.wait_state(&t1, TaskState::Unreachable, false).await?;
    assert_eq!(st.reason, Some(TaskStatusReason::Reconciliation));
    assert_eq!(
        st.message.as_deref(),
        Some("Reconciliation: Task is unreachable")
    );
    assert!(st.unreachable_time.is_some());

    // Losing it twice, unknown agents and other methods are refused.
    let again = post(&master, &format!("/lite/agents/{}/lose", a.value), None).await?;
    assert_eq!(again.0, 409, "{}", again.1);
    let unknown = post(&master, "/lite/agents/nope/lose", None).await?;
    assert_eq!(unknown, (404, "Agent 'nope' not found".to_owned()));
    let get = reqwest::get(format!("{}/lite/agents/{}/lose", master.url, a.value)).await?;
    assert_eq!(get.status().as_u16(), 405);

    // Marking the unreachable agent gone turns its task gone for good.
    fw.updates.clear();
    let gone = post(
        &master,
        "/api/v1",
        Some(serde_json::json!({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": a.value}}})),
    )
    .await?;
    assert_eq!(gone.0, 200, "{}", gone.1);
    let st = fw.wait_state(&t1, TaskState::GoneByOperator, false).await?;
    assert_eq!(st.reason, Some(TaskStatusReason::AgentRemovedByOperator));
    assert_eq!(st.message.as_deref(), Some("Agent has been marked gone"));
    fw.handle.teardown().await?;
    Ok(())
}

#[tokio::test]
async fn mark_agent_gone_reports_tasks_gone_or_lost_then_failure() -> TestResult {
    lite_only!();
    let master = Master::lite(&[])?;
    // A PARTITION_AWARE framework and one that is not, each with a task on the agent.
    let mut aware = Fw::subscribe(&master, framework_info(&unique("pa"), &[PA], 0.0)).await?;
    let offer = aware.take_offer(|_| true).await?;
    let agent = offer.agent_id.clone();
    let t1 = unique("t1");
    let pid1 = run_sleeper(&mut aware, &offer, &t1).await?;
    let mut legacy = Fw::subscribe(&master, framework_info(&unique("legacy"), &[], 0.0)).await?;
    let offer = legacy.take_offer(|o| o.agent_id == agent).await?;
    let t2 = unique("t2");
    let pid2 = run_sleeper(&mut legacy, &offer, &t2).await?;
    aware.updates.clear();
    legacy.updates.clear();

    let missing = post(
        &master,
        "/api/v1",
        Some(serde_json::json!({"type": "MARK_AGENT_GONE"})),
    )
    .await?;
    assert_eq!(missing.0, 400, "{}", missing.1);
    let unknown = post(
        &master,
        "/api/v1",
        Some(serde_json::json!({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "nope"}}})),
    )
    .await?;
    assert_eq!(unknown, (404, "Agent 'nope' not found".to_owned()));
    let call = serde_json::json!({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent.value}}});
    let (status, body) = post(&master, "/api/v1", Some(call.clone())).await?;
    assert_eq!((status, body.as_str()), (200, ""));

    wait_failure(&mut aware, &agent).await?;
    wait_failure(&mut legacy, &agent).await?;
    let gone = aware
        .updates
        .iter()
        .find(|s| s.task_id.value == t1)
        .cloned()
        .ok_or("update before FAILURE")?;
    assert_eq!(gone.state, TaskState::GoneByOperator);
    assert_eq!(gone.reason, Some(TaskStatusReason::AgentRemovedByOperator));
    assert_eq!(gone.message.as_deref(), Some("Agent has been marked gone"));
    assert_eq!(gone.source, Some(TaskStatusSource::Master));
    assert!(gone.uuid.is_none() && gone.unreachable_time.is_none());
    let lost = legacy
        .updates
        .iter()
        .find(|s| s.task_id.value == t2)
        .cloned()
        .ok_or("update before FAILURE")?;
    assert_eq!(
        lost.state,
        TaskState::Lost,
        "not PARTITION_AWARE: TASK_LOST"
    );
    assert_eq!(lost.reason, Some(TaskStatusReason::AgentRemoved));
    for pid in [pid1, pid2] {
        eventually("the gone agent's task processes to end", || async move {
            (!pid_alive(pid)).then_some(())
        })
        .await?;
    }
    let state = master.get_json("/state").await?;
    assert_eq!(state["slaves"].as_array().map(Vec::len), Some(0));
    assert_eq!(state["unreachable_slaves"], 0.0);
    let completed: Vec<String> = state["frameworks"]
        .as_array()
        .ok_or("frameworks")?
        .iter()
        .flat_map(|f| f["completed_tasks"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            format!(
                "{} {}",
                t["id"].as_str().unwrap_or(""),
                t["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        completed.contains(&format!("{t1} TASK_GONE_BY_OPERATOR")),
        "{completed:?}"
    );
    assert!(
        completed.contains(&format!("{t2} TASK_LOST")),
        "{completed:?}"
    );

    // Reconciliation: gone by operator (PA) or lost.
    aware.updates.clear();
    aware
        .handle
        .reconcile(vec![ReconcileTask {
            task_id: TaskId::new(t1.clone()),
            agent_id: Some(agent.clone()),
        }])
        .await?;
    let st = aware
        .wait_state(&t1, TaskState::GoneByOperator, false)
        .await?;
    assert_eq!(st.message.as_deref(), Some("Reconciliation: Task is gone"));
    legacy.updates.clear();
    legacy
        .handle
        .reconcile(vec![ReconcileTask {
            task_id: TaskId::new(t2.clone()),
            agent_id: Some(agent.clone()),
        }])
        .await?;
    legacy.wait_state(&t2, TaskState::Lost, false).await?;
    // Marking it gone again is a no-op.
    assert_eq!(post(&master, "/api/v1", Some(call)).await?.0, 200);
    aware.handle.teardown().await?;
    legacy.handle.teardown().await?;
    Ok(())
}
