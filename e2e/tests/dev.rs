//! `concord dev up` and `dev status` when the stack cannot start: a missing etcd gives a
//! clear message and starts nothing; a component that dies names its log in the state
//! directory actually used. (A full `dev up` / `status` / `down` cycle runs in
//! `quickstart.rs`, which starts the stack once for both.) `dev up --with-kafka` runs a
//! whole stack with the Kafka broker here: it takes a produce, its etcd refuses HTTP
//! writes a web page could send, and `dev down` stops it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use concord_e2e::{binary, free_port};

/// The CLI config `dev up` writes its context into: next to the state directory, never
/// the user's ~/.concord.
fn config_of(state: &Path) -> std::path::PathBuf {
    state
        .parent()
        .expect("the state dir is in a temporary dir")
        .join("concord-config")
}

/// `concord dev up --detach` on free ports with `state` as the state directory.
fn dev_up(state: &Path, env: &[(&str, &std::ffi::OsStr)], remove: &[&str]) -> Output {
    dev_up_with(state, &[], env, remove)
}

/// [`dev_up`] with more flags.
fn dev_up_with(
    state: &Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    remove: &[&str],
) -> Output {
    let mut cmd = Command::new(binary("concord"));
    cmd.args(["dev", "up", "--detach", "--state-dir"])
        .arg(state)
        .args(["--etcd-port", &free_port().to_string()])
        .args(["--etcd-peer-port", &free_port().to_string()])
        .args(["--mesos-port", &free_port().to_string()])
        .args(["--api-port", &free_port().to_string()])
        .args(extra)
        .env("CONCORD_CONFIG", config_of(state));
    for name in remove {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("run concord dev up")
}

fn dev_status(state: &Path) -> Output {
    Command::new(binary("concord"))
        .args(["dev", "status", "--state-dir"])
        .arg(state)
        .output()
        .expect("run concord dev status")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dev_up_with_concord_etcd_bin_pointing_nowhere_says_so_and_starts_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let missing = tmp.path().join("no-such-etcd");
    let out = dev_up(&state, &[("CONCORD_ETCD_BIN", missing.as_os_str())], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("etcd not found"), "{stderr}");
    assert!(
        stderr.contains(&format!("CONCORD_ETCD_BIN is {}", missing.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install etcd-server"),
        "install advice: {stderr}"
    );
    assert!(
        !text(&out.stdout).contains("started "),
        "nothing may start: {}",
        text(&out.stdout)
    );
    assert!(
        !state.exists(),
        "no state directory for a stack that never started"
    );
}

#[test]
fn dev_up_without_etcd_on_path_says_how_to_install_it_and_starts_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    // A PATH holding nothing at all; concord finds mesos-lite and the controller next to
    // itself, so only etcd is missing.
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = dev_up(
        &state,
        &[("PATH", empty.as_os_str())],
        &["CONCORD_ETCD_BIN"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("etcd not found on PATH"), "{stderr}");
    assert!(stderr.contains("apt-get install etcd-server"), "{stderr}");
    assert!(stderr.contains("CONCORD_ETCD_BIN"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("started "),
        "{}",
        text(&out.stdout)
    );
    assert!(!state.exists());
}

#[test]
fn a_component_that_exits_at_start_up_is_reported_with_its_log_in_the_state_dir_used() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("custom-state");
    // An "etcd" that fails at once, like one whose data directory is unusable.
    let fake = tmp.path().join("fake-etcd");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'fake etcd: cannot start' >&2\nexit 1\n",
    )
    .expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = dev_up(&state, &[("CONCORD_ETCD_BIN", fake.as_os_str())], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let log = state.join("etcd.log");
    assert!(
        stderr.contains(&format!(
            "etcd exited during start-up; see its log {}",
            log.display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(".concord/dev"),
        "the default dir was not used: {stderr}"
    );
    let logged = std::fs::read_to_string(&log).expect("etcd.log");
    assert!(logged.contains("fake etcd: cannot start"), "{logged}");
    assert!(
        !text(&out.stdout).contains("started mesos-lite"),
        "nothing after etcd starts: {}",
        text(&out.stdout)
    );

    // Nothing is left running: status says so with exit 1.
    let out = dev_status(&state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    for name in ["etcd", "mesos-lite", "concord-controller"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.trim_end().ends_with("stopped")),
            "{name} stopped in:\n{stdout}"
        );
    }
}

fn dev_down(state: &Path) -> Output {
    Command::new(binary("concord"))
        .args(["dev", "down", "--state-dir"])
        .arg(state)
        .output()
        .expect("run concord dev down")
}

/// Runs `dev down` for the state directory when dropped, so a failed test leaves nothing.
struct DevDown<'a>(&'a Path);

impl Drop for DevDown<'_> {
    fn drop(&mut self) {
        let _ = dev_down(self.0);
    }
}

fn pid_of(state: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(state.join(format!("{name}.pid")))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            != Some("Z")
    })
}

#[test]
fn dev_up_with_kafka_runs_a_broker_that_takes_a_produce_and_dev_down_stops_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let port = free_port();
    let _guard = DevDown(&state);
    let tansu = concord_e2e::kafka::tansu_binary();
    let out = dev_up_with(
        &state,
        &["--with-kafka", "--kafka-port", &port.to_string()],
        &[("CONCORD_TANSU", tansu.as_os_str())],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("kafka       127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(stdout.contains("Kafka broker ready after"), "{stdout}");
    let pid = pid_of(&state, "kafka").expect("kafka.pid");
    assert!(alive(pid));
    assert!(state.join("kafka.log").exists());

    // `dev status` lists the broker with the rest.
    let status = dev_status(&state);
    let status_out = text(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{status_out}");
    assert!(
        status_out
            .lines()
            .any(|l| l.starts_with("kafka") && l.contains(&format!("running (pid {pid})"))),
        "{status_out}"
    );

    // A real produce, acknowledged by the broker (acks=all, idempotent).
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{port}"))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .expect("producer");
        let delivered = producer
            .send(
                FutureRecord::to("dev-smoke").key("k").payload("hello"),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e.to_string())
            .expect("the dev broker takes a produce");
        assert_eq!(delivered.offset, 0, "{delivered:?}");

        // etcd's JSON gateway is off: it took a POST of any Content-Type, so a web page
        // could have written a spec straight into etcd (`fetch(..., {mode: "no-cors"})`).
        let etcd = stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("etcd"))
            .map(str::trim)
            .find(|rest| rest.starts_with("http://"))
            .expect("dev up prints etcd's URL");
        let http = reqwest::Client::new();
        let put = http
            .post(format!("{etcd}/v3/kv/put"))
            .header("content-type", "text/plain")
            .body(r#"{"key":"L2NvbmNvcmQvcHduZWQ=","value":"eA=="}"#)
            .send()
            .await
            .expect("post to etcd");
        assert_eq!(
            put.status().as_u16(),
            404,
            "etcd's gateway answered a write"
        );
        let health = http
            .get(format!("{etcd}/health"))
            .send()
            .await
            .expect("etcd health");
        assert!(health.status().is_success());
    });

    let down = dev_down(&state);
    let down_out = text(&down.stdout);
    assert!(
        down_out.contains(&format!("stopped kafka (pid {pid})")),
        "{down_out}"
    );
    assert!(!alive(pid), "kafka (pid {pid}) survived dev down");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open after dev down"
    );
    let status = dev_status(&state);
    let status_out = text(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{status_out}");
    assert!(
        status_out
            .lines()
            .any(|l| l.starts_with("kafka") && l.trim_end().ends_with("stopped")),
        "{status_out}"
    );
}

#[test]
fn dev_up_with_kafka_names_a_missing_broker_or_a_taken_port_and_starts_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let missing = tmp.path().join("no-such-tansu");
    let out = dev_up_with(
        &state,
        &[
            "--with-kafka",
            "--tansu",
            missing.to_str().expect("utf-8 path"),
        ],
        &[],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tansu (the Kafka broker of --with-kafka) not found"),
        "{stderr}"
    );
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("ensure_tansu"), "install advice: {stderr}");
    assert!(
        !text(&out.stdout).contains("started "),
        "{}",
        text(&out.stdout)
    );
    assert!(!state.exists());

    // A taken Kafka port is reported like the others, before anything starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let tansu = concord_e2e::kafka::tansu_binary();
    let out = dev_up_with(
        &state,
        &["--with-kafka", "--kafka-port", &port.to_string()],
        &[("CONCORD_TANSU", tansu.as_os_str())],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "port {port} for the Kafka broker is in use on 127.0.0.1; free it or choose another with --kafka-port"
        )),
        "{stderr}"
    );
    assert!(
        !text(&out.stdout).contains("started "),
        "{}",
        text(&out.stdout)
    );
}

/// The README's Kafka section: `dev up --with-kafka`, then the click-fraud job from
/// Kafka to Kafka and its feed (on this test's free ports, with windows of seconds
/// instead of a minute), until alerts are in the `alerts` topic.
#[test]
fn dev_up_with_kafka_runs_the_click_fraud_job_from_kafka_to_kafka() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (kafka_port, api_port) = (free_port(), free_port());
    let _guard = DevDown(&state);
    let tansu = concord_e2e::kafka::tansu_binary();
    let out = Command::new(binary("concord"))
        .args(["dev", "up", "--detach", "--with-kafka", "--state-dir"])
        .arg(&state)
        .args(["--etcd-port", &free_port().to_string()])
        .args(["--etcd-peer-port", &free_port().to_string()])
        .args(["--mesos-port", &free_port().to_string()])
        .args(["--api-port", &api_port.to_string()])
        .args(["--kafka-port", &kafka_port.to_string()])
        .env("CONCORD_TANSU", &tansu)
        .env("CONCORD_CONFIG", config_of(&state))
        .output()
        .expect("dev up");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bootstrap = format!("127.0.0.1:{kafka_port}");
    let api = format!("http://127.0.0.1:{api_port}");
    let examples = concord_e2e::repo_path("manifests/examples");
    let fraud = concord_e2e::relocatable(
        &std::fs::read_to_string(examples.join("clickfraud-kafka.yaml")).expect("example"),
    )
    .replace("127.0.0.1:19092", &bootstrap)
    .replace(
        "sizeMs: 60000, slideMs: 10000",
        "sizeMs: 4000, slideMs: 1000",
    )
    .replace("{field: count, min: 10000}", "{field: count, min: 200}");
    let feed = std::fs::read_to_string(examples.join("clicks-feed.yaml"))
        .expect("example")
        .replace("127.0.0.1:19092", &bootstrap);
    let fraud_path = tmp.path().join("clickfraud-kafka.yaml");
    let feed_path = tmp.path().join("clicks-feed.yaml");
    std::fs::write(&fraud_path, fraud).expect("write");
    std::fs::write(&feed_path, feed).expect("write");
    let concord = |args: &[&str]| {
        let out = Command::new(binary("concord"))
            .args(args)
            // The URL of the context `dev up` wrote: its token applies.
            .env("CONCORD_API", &api)
            .env("CONCORD_CONFIG", config_of(&state))
            .env_remove("CONCORD_TOKEN")
            .output()
            .expect("concord");
        assert!(
            out.status.success(),
            "concord {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let applied = concord(&["apply", "-f", fraud_path.to_str().expect("utf-8")]);
    assert!(
        applied.contains("topology/clickfraud-kafka created"),
        "{applied}"
    );
    concord(&["apply", "-f", feed_path.to_str().expect("utf-8")]);
    concord(&["rollout", "status", "clickfraud-kafka", "--timeout", "2m"]);

    // Alerts arrive in Kafka.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "dev-check")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "3000")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        use rdkafka::consumer::Consumer;
        consumer.subscribe(&["alerts"]).expect("subscribe");
        let got = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < deadline {
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(500)) {
                    return true;
                }
            }
            false
        })
        .await
        .expect("poll");
        assert!(got, "no alert reached the `alerts` topic in 2 minutes");
    });
    let describe = concord(&["describe", "topology", "clickfraud-kafka"]);
    assert!(describe.contains("Kafka"), "{describe}");
}
