//! Test harness: real etcd, mesos-lite and Concord processes on free loopback ports.
//!
//! Every process is started by this harness, owned by a guard that kills it by PID on
//! drop, logs to a file in a temporary directory (printed on failure), and is awaited
//! with a deadline rather than slept on.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod kafka;
pub use kafka::{Kafka, KafkaRecord};

/// A free TCP port on 127.0.0.1 (bound and released; the OS will not hand it out again soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// `target/<profile>`, where cargo puts the workspace binaries.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // Tests live in target/<profile>/deps/, binaries (like benches) in target/<profile>/.
    let dir = exe.parent().expect("executable has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary; panics with a hint when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} not found; build the workspace binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to 20 s for `url` to answer 2xx.
pub async fn wait_http_ok(url: &str, what: &str) {
    let http = reqwest::Client::new();
    wait_for(Duration::from_secs(20), what, || {
        let req = http.get(url).timeout(Duration::from_secs(1)).send();
        async move {
            req.await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
}

/// A child process killed by PID when dropped.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// SIGTERM grace on drop; `None` kills outright.
    drop_grace: Option<Duration>,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr sent to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
            drop_grace: None,
        }
    }

    /// On drop, send SIGTERM and wait up to `grace` before SIGKILL: for processes that
    /// must clean up after themselves (mesos-lite stops its tasks).
    pub fn graceful_drop(mut self, grace: Duration) -> Self {
        self.drop_grace = Some(grace);
        self
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `grace` for exit; SIGKILL after.
    pub fn terminate(&mut self, grace: Duration) {
        if self.exited() {
            return;
        }
        // Our own child, by PID.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        match self.drop_grace {
            Some(grace) => self.terminate(grace),
            None => self.kill(),
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.logs()
            );
        }
    }
}

/// A real etcd server (Debian `etcd-server`) on free loopback ports with a temporary data dir.
pub struct Etcd {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    process: Process,
    client_port: u16,
    peer_port: u16,
    dir: TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it answers `/health`.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts etcd with its client URL on `client` (for tests that start it late).
    pub async fn start_on(client: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = free_port();
        let process = spawn_etcd(dir.path(), client, peer);
        let etcd = Self {
            url: format!("http://127.0.0.1:{client}"),
            process,
            client_port: client,
            peer_port: peer,
            dir,
        };
        etcd.wait_healthy().await;
        etcd
    }

    async fn wait_healthy(&self) {
        let health = format!("{}/health", self.url);
        let http = reqwest::Client::new();
        wait_for(Duration::from_secs(20), "etcd /health", || {
            let req = http.get(&health).timeout(Duration::from_secs(1)).send();
            async move {
                let body = req.await.ok()?.text().await.ok()?;
                body.contains("true").then_some(())
            }
        })
        .await;
    }

    /// Stops etcd (SIGTERM, then SIGKILL after 10 s); its data stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(10));
    }

    /// Starts etcd again on the same ports and data, and waits until it is healthy.
    pub async fn restart(&mut self) {
        self.stop();
        self.process = spawn_etcd(self.dir.path(), self.client_port, self.peer_port);
        self.wait_healthy().await;
    }

    /// An etcd client for assertions on what is stored.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.url.as_str()], None)
            .await
            .expect("connect to etcd")
    }

    /// Every key and value under `prefix`, for "nothing changed" assertions.
    pub async fn dump(&self, prefix: &str) -> Vec<(String, String)> {
        let mut client = self.client().await;
        let resp = client
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .expect("etcd get");
        resp.kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                )
            })
            .collect()
    }

    /// The etcd process.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

fn spawn_etcd(dir: &Path, client: u16, peer: u16) -> Process {
    let bin = std::env::var("CONCORD_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new(&bin);
    cmd.arg("--name")
        .arg("test")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&url)
        .arg("--advertise-client-urls")
        .arg(&url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("test={peer_url}"))
        .arg("--logger")
        .arg("zap")
        .arg("--log-level")
        .arg("warn");
    // A new log per start, so a restart keeps the earlier one.
    let n = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("etcd"))
                .count()
        })
        .unwrap_or(0);
    Process::spawn("etcd", cmd, dir.join(format!("etcd-{n}.log")))
}

/// A `concord-controller` process.
pub struct Controller {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub process: Process,
    _dir: TempDir,
}

impl Controller {
    /// Starts the controller against `etcd_url` and waits for `/healthz`.
    pub async fn start(etcd_url: &str, mesos_url: &str, prefix: &str) -> Self {
        Self::start_with(etcd_url, mesos_url, prefix, &[]).await
    }
}

/// Runs the `concord` CLI against `api` and returns its output.
pub fn concord(api: &str, args: &[&str]) -> Output {
    concord_with_stdin(api, args, None)
}

/// A CLI config path that no test writes: the CLI run by [`concord`] sees no contexts,
/// whatever the user's ~/.concord/config holds.
pub fn no_cli_config() -> PathBuf {
    target_dir().join("e2e-no-concord-config")
}

/// Runs the `concord` CLI with `stdin` piped in.
pub fn concord_with_stdin(api: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(binary("concord"));
    cmd.args(args)
        .env("CONCORD_API", api)
        .env("CONCORD_CONFIG", no_cli_config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("run concord");
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        let _ = pipe.write_all(input);
    }
    wait_with_deadline(child, CLI_DEADLINE, &format!("concord {}", args.join(" ")))
}

/// The longest any `concord` run of a test may take: longer than every `--timeout` the
/// tests pass, so reaching it means the CLI hangs, and the test says so instead of
/// holding CI until its own limit.
pub const CLI_DEADLINE: Duration = Duration::from_secs(300);

/// Collects `child`'s output like [`Child::wait_with_output`], but kills it (by its
/// PID, through the handle) and panics with what it printed once `deadline` passed.
pub fn wait_with_deadline(mut child: Child, deadline: Duration, what: &str) -> Output {
    use std::io::Read;
    fn reader(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    }
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            let out = stdout.join().unwrap_or_default();
            let err = stderr.join().unwrap_or_default();
            panic!(
                "{what} did not end within {deadline:?}; stdout (last 2 KiB): {}; stderr: {}",
                tail_text(&out, 2048),
                tail_text(&err, 2048)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn tail_text(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]).into_owned()
}

/// Path of a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The invalid-topology corpus (`manifests/testdata/invalid/`, see its README): every
/// `*.yaml` case, sorted, with the substring its rejection message must contain (the
/// first line's `# expect: ...`, or the sidecar `<name>.yaml.expect`).
pub fn invalid_corpus() -> Vec<(PathBuf, String)> {
    let dir = repo_path("manifests/testdata/invalid");
    let mut cases: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .map(|path| {
            let sidecar = path.with_extension("yaml.expect");
            let expect = if sidecar.exists() {
                std::fs::read_to_string(&sidecar)
                    .expect("sidecar")
                    .trim()
                    .to_owned()
            } else {
                let text =
                    String::from_utf8_lossy(&std::fs::read(&path).expect("read case")).into_owned();
                text.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("# expect:"))
                    .unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display()))
                    .trim()
                    .to_owned()
            };
            (path, expect)
        })
        .collect();
    cases.sort();
    cases
}

/// A `mesos-lite` master with agents, on a free port, with its own port range for tasks.
pub struct MesosLite {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub process: Process,
    dir: TempDir,
    port: u16,
    resources: String,
    agents: u32,
}

impl MesosLite {
    /// Starts mesos-lite with `agents` agents, each with `cpus` and `mem_mb`.
    pub async fn start(agents: u32, cpus: f64, mem_mb: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        // A task port range of our own, below the ephemeral range, so tests running in
        // parallel do not hand out the same ports: the tests of one binary (threads of
        // one process) take distinct ranges in turn; the process ID spreads binaries.
        // A range with a port in use (another binary's stack drew it) is skipped.
        static NEXT_RANGE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut base = 0;
        for _ in 0..100 {
            let turn = NEXT_RANGE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            base = 10_000 + ((std::process::id() * 37 + turn) % 100) * 200;
            let free = (base..base + 200).all(|p| {
                u16::try_from(p).is_ok_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
            });
            if free {
                break;
            }
        }
        let resources = format!(
            "cpus:{cpus};mem:{mem_mb};disk:2000;ports:[{base}-{}]",
            base + 199
        );
        let process = spawn_mesos_lite(dir.path(), port, agents, &resources);
        let m = Self {
            url: format!("http://127.0.0.1:{port}"),
            process,
            dir,
            port,
            resources,
            agents,
        };
        m.wait_healthy().await;
        m
    }

    async fn wait_healthy(&self) {
        wait_http_ok(&format!("{}/health", self.url), "mesos-lite /health").await;
    }

    /// Stops mesos-lite (its tasks die with it) and starts it again on the same work dir.
    pub async fn restart(&mut self) {
        self.process.terminate(Duration::from_secs(10));
        self.process = spawn_mesos_lite(self.dir.path(), self.port, self.agents, &self.resources);
        self.wait_healthy().await;
    }

    /// The agents' work directory (sandboxes are under `slaves/`).
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Running tasks by ID, with the PID Mesos reports for each.
    pub async fn running_tasks(&self) -> std::collections::BTreeMap<String, Option<u64>> {
        let state: serde_json::Value = reqwest::get(format!("{}/state", self.url))
            .await
            .expect("GET /state")
            .json()
            .await
            .expect("state JSON");
        let mut out = std::collections::BTreeMap::new();
        for fw in state["frameworks"].as_array().into_iter().flatten() {
            for task in fw["tasks"].as_array().into_iter().flatten() {
                if task["state"] != "TASK_RUNNING" {
                    continue;
                }
                let pid = task["statuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["container_status"]["executor_pid"].as_u64())
                    .next_back();
                if let Some(id) = task["id"].as_str() {
                    out.insert(id.to_owned(), pid);
                }
            }
        }
        out
    }
}

fn spawn_mesos_lite(dir: &Path, port: u16, agents: u32, resources: &str) -> Process {
    let mut cmd = Command::new(binary("mesos-lite"));
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--work_dir")
        .arg(dir.join("work"))
        .arg("--agents")
        .arg(agents.to_string())
        .arg("--resources")
        .arg(resources)
        .arg("--status_update_retry_interval")
        .arg("1secs")
        .env("RUST_LOG", "info");
    // A new log per start, so a restart keeps the earlier one for post-mortems.
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    Process::spawn("mesos-lite", cmd, dir.join(format!("mesos-lite-{n}.log")))
        .graceful_drop(Duration::from_secs(10))
}

impl Controller {
    /// Starts a controller that schedules on `mesos_url`.
    pub async fn start_scheduling(etcd_url: &str, mesos_url: &str) -> Self {
        Self::start_with(etcd_url, mesos_url, "/concord", &["--kill-grace", "2s"]).await
    }

    /// Starts the controller with extra flags.
    pub async fn start_with(etcd_url: &str, mesos_url: &str, prefix: &str, extra: &[&str]) -> Self {
        Self::start_on(free_port(), etcd_url, mesos_url, prefix, extra).await
    }

    /// [`Controller::start_with`] on a given port (e.g. to restart one where it was).
    pub async fn start_on(
        port: u16,
        etcd_url: &str,
        mesos_url: &str,
        prefix: &str,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(binary("concord-controller"));
        cmd.arg("--etcd")
            .arg(etcd_url)
            .arg("--mesos")
            .arg(mesos_url)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--prefix")
            .arg(prefix)
            .arg("--gitops-cache-dir")
            .arg(dir.path().join("gitops"))
            // A killed leader's lease holds the key this long: keep restarts quick.
            .arg("--leader-lease-ttl")
            .arg("3s")
            .args(extra)
            .env("RUST_LOG", "info");
        let process = Process::spawn("concord-controller", cmd, dir.path().join("controller.log"));
        let controller = Self {
            url,
            process,
            _dir: dir,
        };
        let health = format!("{}/healthz", controller.url);
        wait_http_ok(&health, "controller /healthz").await;
        controller
    }

    /// The topology with its status.
    pub async fn topology(&self, name: &str) -> Option<concord_schemas::Topology> {
        let url = format!(
            "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/{name}",
            self.url
        );
        let resp = reqwest::get(url).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// Waits until the topology has observed its latest generation and is Ready.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> concord_schemas::Topology {
        wait_for(timeout, &format!("topology {name} to be Ready"), || async {
            let t = self.topology(name).await?;
            let status = t.status.as_ref()?;
            let ready = status
                .condition(concord_schemas::condition_type::READY)
                .is_some_and(|c| c.status == concord_schemas::ConditionStatus::True);
            (ready && Some(status.observed_generation) == t.metadata.generation).then_some(t)
        })
        .await
    }
}

/// An example manifest's text that can be written anywhere: its artifact paths relative
/// to `manifests/examples/` become the `file://` URIs `concord apply` resolves them to.
pub fn relocatable(source: &str) -> String {
    let examples = std::fs::canonicalize(repo_path("manifests/examples")).expect("examples dir");
    let sdk = std::fs::canonicalize(repo_path("sdk")).expect("sdk dir");
    source
        .replace(
            "uri: ./wordcount/",
            &format!("uri: file://{}/wordcount/", examples.display()),
        )
        .replace(
            "uri: ../../sdk/",
            &format!("uri: file://{}/", sdk.display()),
        )
}

/// IDs of the running tasks of operator `op`, from the topology's status.
pub fn running_task_ids(
    t: &concord_schemas::Topology,
    op: &str,
) -> std::collections::BTreeSet<String> {
    t.status
        .as_ref()
        .and_then(|s| s.operators.iter().find(|o| o.name == op))
        .map(|o| {
            o.tasks
                .iter()
                .filter(|t| t.state == "TASK_RUNNING")
                .map(|t| t.task_id.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `gen -> count (key) -> sink` named `name`, with `count` instances of `count`, a
/// `label` in its config (change it to force a rolling replace) and its update strategy.
pub fn pipeline(name: &str, count: u32, label: &str, surge: u32, unavailable: u32) -> String {
    format!(
        r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  operators:
    - name: gen
      runtime: {{builtin: {{name: generator}}}}
      config: {{rate: 100}}
      resources: {{cpus: 0.1, mem: 32}}
    - name: count
      instances: {count}
      runtime: {{builtin: {{name: keyed-count}}}}
      config: {{label: "{label}"}}
      inputs: [{{from: gen, partitioning: key}}]
      resources: {{cpus: 0.1, mem: 32}}
      updateStrategy: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
    - name: sink
      runtime: {{builtin: {{name: sink}}}}
      inputs: [{{from: count}}]
      resources: {{cpus: 0.1, mem: 32}}
"#
    )
}
