//! Test support: a real etcd server and real `concord-executor` processes on loopback.
//!
//! Everything is started on free 127.0.0.1 ports with temporary directories and killed by
//! PID when dropped. Conditions are awaited with deadlines, never with fixed sleeps.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use concord_schemas::dataplane::DATAPLANE_SECRET_FILE_ENV;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A real etcd server (`/usr/bin/etcd`) on free loopback ports.
pub struct Etcd {
    child: Child,
    /// Client URL.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it serves `/health`.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts etcd with its client URL on `client` (127.0.0.1).
    pub fn start_on(client: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = free_port();
        let url = format!("http://127.0.0.1:{client}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let child =
            Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()))
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .arg("--listen-client-urls")
                .arg(&url)
                .arg("--advertise-client-urls")
                .arg(&url)
                .arg("--listen-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-cluster")
                .arg(format!("default=http://127.0.0.1:{peer}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd");
        let etcd = Self {
            child,
            url,
            _dir: dir,
        };
        let health = format!("{}/health", etcd.url);
        wait_for("etcd health", Duration::from_secs(20), || {
            reqwest::blocking::get(&health)
                .ok()
                .and_then(|r| r.text().ok())
                .is_some_and(|t| t.contains("true"))
        });
        etcd
    }

    /// Keys (and values) under a prefix, via the v3 JSON gateway.
    pub fn get_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        let encode = |b: &[u8]| STANDARD.encode(b);
        let decode = |s: &str| STANDARD.decode(s).unwrap_or_default();
        let end = {
            let mut b = prefix.as_bytes().to_vec();
            if let Some(last) = b.last_mut() {
                *last += 1;
            }
            b
        };
        let body = serde_json::json!({"key": encode(prefix.as_bytes()), "range_end": encode(&end)});
        let resp: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{}/v3/kv/range", self.url))
            .json(&body)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for kv in resp
            .get("kvs")
            .and_then(|k| k.as_array())
            .into_iter()
            .flatten()
        {
            let k = kv
                .get("key")
                .and_then(|v| v.as_str())
                .map(decode)
                .unwrap_or_default();
            let v = kv
                .get("value")
                .and_then(|v| v.as_str())
                .map(decode)
                .unwrap_or_default();
            out.insert(
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            );
        }
        out
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data-plane secret file shared by every executor started with `dir` (one test's
/// executors share their directory, as a topology's tasks share its secret); created on
/// first use, mode 0600.
pub fn dataplane_secret(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("dataplane-secret");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        let key: [u8; 32] = rand::random();
        f.write_all(&key).expect("write secret");
    }
    path
}

/// A running `concord-executor` process.
pub struct Executor {
    child: Option<Child>,
    /// Operator name.
    pub operator: String,
    /// Instance index.
    pub instance: u32,
    /// Metrics address.
    pub metrics: String,
    /// Data port.
    pub data_port: u16,
    /// stderr log file.
    pub log: PathBuf,
    /// Task ID.
    pub task_id: String,
}

/// How to start an executor.
pub struct ExecutorSpec<'a> {
    /// etcd URL.
    pub etcd: &'a str,
    /// Topology name.
    pub topology: &'a str,
    /// Operator name.
    pub operator: &'a str,
    /// Instance index.
    pub instance: u32,
    /// The OperatorSpec JSON.
    pub spec: serde_json::Value,
    /// Fixed data port (0 = pick a free one).
    pub data_port: u16,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Directory for logs.
    pub dir: &'a Path,
}

impl Executor {
    /// Starts an executor; returns once its process is running.
    pub fn start(s: ExecutorSpec<'_>) -> Self {
        let data_port = if s.data_port == 0 {
            free_port()
        } else {
            s.data_port
        };
        let metrics_port = free_port();
        let task_id = format!(
            "{}-{}-{}-{}",
            s.topology,
            s.operator,
            s.instance,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() % 1_000_000_000)
                .unwrap_or(0)
        );
        let log = s
            .dir
            .join(format!("{}-{}-{}.log", s.operator, s.instance, &task_id));
        let err = std::fs::File::create(&log).expect("log file");
        let secret = dataplane_secret(s.dir);
        let child = Command::new(env!("CARGO_BIN_EXE_concord-executor"))
            .env("CONCORD_NAMESPACE", "default")
            .env("CONCORD_TOPOLOGY", s.topology)
            .env("CONCORD_OPERATOR", s.operator)
            .env("CONCORD_INSTANCE", s.instance.to_string())
            .env("CONCORD_TASK_ID", &task_id)
            .env("CONCORD_OPERATOR_SPEC", s.spec.to_string())
            .env("CONCORD_ETCD", s.etcd)
            .env("CONCORD_DATA_PORT", data_port.to_string())
            .env("CONCORD_METRICS_PORT", metrics_port.to_string())
            .env("CONCORD_LOG", "info")
            .env(DATAPLANE_SECRET_FILE_ENV, &secret)
            .envs(s.env)
            .current_dir(s.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start concord-executor");
        Self {
            child: Some(child),
            operator: s.operator.to_owned(),
            instance: s.instance,
            metrics: format!("127.0.0.1:{metrics_port}"),
            data_port,
            log,
            task_id,
        }
    }

    /// PID of the process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// True when `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        reqwest::blocking::get(format!("http://{}/readyz", self.metrics))
            .is_ok_and(|r| r.status().is_success())
    }

    /// Waits for readiness.
    pub fn wait_ready(&self) {
        wait_for(
            &format!("{} {} ready", self.operator, self.instance),
            Duration::from_secs(30),
            || self.is_ready(),
        );
    }

    /// `/metrics` text ("" when unreachable).
    pub fn metrics_text(&self) -> String {
        reqwest::blocking::get(format!("http://{}/metrics", self.metrics))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// Sum of all samples of a metric family (e.g. `concord_records_in_total`).
    pub fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.metrics_text(), name)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for exit (up to 20 s).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sum of the samples of a metric family in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Whether a TCP port accepts connections.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Builds an OperatorSpec JSON for a built-in.
pub fn builtin(
    name: &str,
    op: &str,
    config: serde_json::Value,
    inputs: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "name": op,
        "runtime": {"builtin": {"name": name}},
        "config": config,
        "inputs": inputs,
    })
}
