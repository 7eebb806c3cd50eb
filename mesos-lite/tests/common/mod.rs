//! Shared harness for the conformance suite: a master to talk to (a spawned mesos-lite,
//! or a real Apache Mesos master when `MESOS_MASTER_URL` is set), a framework wrapper
//! over the `mesos-v1` client, and deadline-bounded waits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesos_v1::scheduler::{
    Scheduler, SchedulerConfig, SchedulerEvent, SchedulerEvents, SchedulerHandle,
};
use mesos_v1::*;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Fails the test with a message.
pub fn fail(msg: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    msg.into().into()
}

/// A master to test against.
pub struct Master {
    /// Base URL, e.g. `http://127.0.0.1:5050`.
    pub url: String,
    /// The spawned mesos-lite, if any.
    pub lite: Option<Lite>,
}

/// A spawned mesos-lite process, killed on drop.
pub struct Lite {
    pub child: Child,
    pub port: u16,
    pub work_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub args: Vec<String>,
}

impl Lite {
    /// Spawns mesos-lite on a free loopback port with `extra` flags.
    pub fn spawn(work_dir: Option<&Path>, extra: &[&str]) -> std::io::Result<Lite> {
        let (tmp, dir) = match work_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::tempdir()?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let port = free_port()?;
        Self::spawn_on(port, tmp, dir, extra)
    }

    fn spawn_on(
        port: u16,
        tmp: Option<tempfile::TempDir>,
        dir: PathBuf,
        extra: &[&str],
    ) -> std::io::Result<Lite> {
        let mut args: Vec<String> = vec![
            "--ip".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--work_dir".into(),
            dir.display().to_string(),
        ];
        let has = |f: &str| extra.iter().any(|e| e.starts_with(f));
        if !has("--resources") {
            args.push("--resources".into());
            args.push("cpus:4;mem:4096;disk:4096;ports:[31000-31099]".into());
        }
        if !has("--allocation_interval") {
            args.push("--allocation_interval".into());
            args.push("200ms".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::fs::File::create(dir.join("mesos-lite.log")).ok();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesos-lite"));
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::null());
        match log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        let child = cmd.spawn()?;
        let lite = Lite {
            child,
            port,
            work_dir: dir,
            _tmp: tmp,
            args,
        };
        lite.wait_ready()?;
        Ok(lite)
    }

    /// Stops this instance (SIGTERM, then SIGKILL) and starts a new one on the same
    /// port and work_dir.
    pub fn restart(mut self, signal: i32) -> std::io::Result<Lite> {
        self.stop(signal);
        let tmp = self._tmp.take();
        let dir = self.work_dir.clone();
        let port = self.port;
        let extra: Vec<String> = self.args.iter().skip(6).cloned().collect();
        drop(self);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Self::spawn_on(port, tmp, dir, &extra)
    }

    fn wait_ready(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other("mesos-lite did not start listening"))
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub fn stop(&mut self, signal: i32) {
        if let (Ok(pid), Ok(sig)) = (
            i32::try_from(self.child.id()),
            nix::sys::signal::Signal::try_from(signal),
        ) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(15);
        }
    }
}

/// A free loopback port.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Master {
    /// The real master from `MESOS_MASTER_URL`, else a fresh mesos-lite.
    pub fn start() -> std::io::Result<Master> {
        if let Ok(url) = std::env::var("MESOS_MASTER_URL") {
            return Ok(Master {
                url: url.trim_end_matches('/').to_string(),
                lite: None,
            });
        }
        Self::lite(&[])
    }

    /// A fresh mesos-lite with extra flags.
    pub fn lite(extra: &[&str]) -> std::io::Result<Master> {
        let lite = Lite::spawn(None, extra)?;
        Ok(Master {
            url: format!("http://127.0.0.1:{}", lite.port),
            lite: Some(lite),
        })
    }

    /// Whether the suite runs against a real Apache Mesos.
    pub fn is_real() -> bool {
        std::env::var("MESOS_MASTER_URL").is_ok()
    }

    pub fn scheduler_url(&self) -> String {
        format!("{}/api/v1/scheduler", self.url)
    }

    /// GET a JSON endpoint.
    pub async fn get_json(
        &self,
        path: &str,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let resp = reqwest::get(format!("{}{}", self.url, path)).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(format!("GET {path}: {status}")));
        }
        Ok(resp.json().await?)
    }

    /// POST an operator API call.
    pub async fn operator(
        &self,
        call: serde_json::Value,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1", self.url))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(call.to_string())
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(format!("operator call: {status}")));
        }
        Ok(resp.json().await?)
    }
}

/// A unique name for this test's framework.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id()) + &format!("-{}", rand_suffix())
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}")
}

/// FrameworkInfo for tests.
pub fn framework_info(
    name: &str,
    capabilities: &[FrameworkCapabilityType],
    failover_timeout: f64,
) -> FrameworkInfo {
    let mut info = FrameworkInfo::new("root", name);
    info.failover_timeout = failover_timeout;
    info.capabilities = capabilities
        .iter()
        .map(|c| FrameworkCapability { r#type: c.clone() })
        .collect();
    info
}

/// A subscribed test framework: the client plus its event stream.
pub struct Fw {
    pub handle: SchedulerHandle,
    pub events: SchedulerEvents,
    pub framework_id: FrameworkId,
    /// Offers seen and not yet taken by a test.
    pub offers: Vec<Offer>,
    /// Every update seen, in order.
    pub updates: Vec<TaskStatus>,
    /// uuids already acknowledged.
    pub acked: std::collections::HashSet<Vec<u8>>,
}

impl Fw {
    /// Subscribes and waits for SUBSCRIBED.
    pub async fn subscribe(
        master: &Master,
        info: FrameworkInfo,
    ) -> Result<Fw, Box<dyn std::error::Error + Send + Sync>> {
        let mut config = SchedulerConfig::new(master.url.clone(), info);
        config.backoff_initial = Duration::from_millis(100);
        config.backoff_max = Duration::from_millis(500);
        let (handle, events) = Scheduler::start(config);
        let mut fw = Fw {
            handle,
            events,
            framework_id: FrameworkId::default(),
            offers: Vec::new(),
            updates: Vec::new(),
            acked: Default::default(),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let event = fw
                .next_event(deadline)
                .await
                .map_err(|e| fail(format!("waiting for SUBSCRIBED: {e}")))?;
            match event {
                SchedulerEvent::Subscribed { framework_id, .. } => {
                    fw.framework_id = framework_id;
                    return Ok(fw);
                }
                SchedulerEvent::Event(e) if e.r#type == EventType::Error => {
                    return Err(fail(format!("subscription refused: {:?}", e.error)));
                }
                _ => {}
            }
        }
    }

    async fn next_event(
        &mut self,
        deadline: Instant,
    ) -> Result<SchedulerEvent, Box<dyn std::error::Error + Send + Sync>> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.events.recv()).await {
            Ok(Some(e)) => {
                if let SchedulerEvent::Event(ev) = &e {
                    self.offers.extend(ev.offer_list().iter().cloned());
                    if let Some(r) = &ev.rescind {
                        self.offers.retain(|o| o.id != r.offer_id);
                    }
                    if let Some(st) = ev.task_status() {
                        self.updates.push(st.clone());
                    }
                }
                Ok(e)
            }
            Ok(None) => Err(fail("scheduler event stream ended")),
            Err(_) => Err(fail("timed out waiting for an event")),
        }
    }

    /// Waits for an event matching `pred` (other events are recorded).
    pub async fn wait_event<F>(
        &mut self,
        what: &str,
        mut pred: F,
    ) -> Result<Event, Box<dyn std::error::Error + Send + Sync>>
    where
        F: FnMut(&Event) -> bool,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next_event(deadline).await {
                Ok(SchedulerEvent::Event(e)) if pred(&e) => return Ok(e),
                Ok(_) => {}
                Err(e) => return Err(fail(format!("{what}: {e}"))),
            }
        }
    }

    /// Takes an offer (waiting for one if none is outstanding), optionally for an agent
    /// and satisfying `pred`.
    pub async fn take_offer<F>(
        &mut self,
        mut pred: F,
    ) -> Result<Offer, Box<dyn std::error::Error + Send + Sync>>
    where
        F: FnMut(&Offer) -> bool,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.offers.iter().position(&mut pred) {
                return Ok(self.offers.remove(i));
            }
            match self.next_event(deadline).await {
                Ok(_) => {}
                Err(e) => return Err(fail(format!("waiting for an offer: {e}"))),
            }
        }
    }

    /// Takes the first offer matching `pred`, declining (without a filter) every other
    /// offer on the way, so resources held in partial offers come back merged.
    pub async fn take_offer_declining<F>(
        &mut self,
        mut pred: F,
    ) -> Result<Offer, Box<dyn std::error::Error + Send + Sync>>
    where
        F: FnMut(&Offer) -> bool,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.offers.iter().position(&mut pred) {
                return Ok(self.offers.remove(i));
            }
            let others: Vec<OfferId> = self.offers.drain(..).map(|o| o.id).collect();
            if !others.is_empty() {
                self.handle
                    .decline(others, Some(Filters::refuse_seconds(0.0)))
                    .await?;
            }
            if let Err(e) = self.next_event(deadline).await {
                return Err(fail(format!("waiting for a matching offer: {e}")));
            }
        }
    }

    /// Declines every outstanding offer with a long filter, so others tests' offers
    /// are not confused with ours.
    pub async fn decline_all(&mut self, refuse_seconds: f64) -> TestResult {
        let ids: Vec<OfferId> = self.offers.drain(..).map(|o| o.id).collect();
        if !ids.is_empty() {
            self.handle
                .decline(ids, Some(Filters::refuse_seconds(refuse_seconds)))
                .await?;
        }
        Ok(())
    }

    /// Waits for an update of `task` in `state`, acknowledging every update with a
    /// uuid on the way when `ack` is set.
    pub async fn wait_state(
        &mut self,
        task: &str,
        state: TaskState,
        ack: bool,
    ) -> Result<TaskStatus, Box<dyn std::error::Error + Send + Sync>> {
        if ack {
            let pending: Vec<TaskStatus> = self
                .updates
                .iter()
                .filter(|s| {
                    s.task_id.value == task
                        && s.uuid
                            .as_ref()
                            .is_some_and(|u| !self.acked.contains(u.as_slice()))
                })
                .cloned()
                .collect();
            for st in pending {
                self.ack(&st).await?;
            }
        }
        // Already seen?
        if let Some(st) = self
            .updates
            .iter()
            .find(|s| s.task_id.value == task && s.state == state)
            .cloned()
        {
            return Ok(st);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let e = match self.next_event(deadline).await {
                Ok(e) => e,
                Err(e) => {
                    let seen: Vec<String> = self
                        .updates
                        .iter()
                        .filter(|s| s.task_id.value == task)
                        .map(|s| {
                            format!(
                                "{}({})",
                                s.state.as_str(),
                                s.message.clone().unwrap_or_default()
                            )
                        })
                        .collect();
                    return Err(fail(format!(
                        "waiting for {task} {}: {e}; seen {seen:?}",
                        state.as_str()
                    )));
                }
            };
            if let SchedulerEvent::Event(ev) = e
                && let Some(st) = ev.task_status()
                && st.task_id.value == task
            {
                if ack {
                    let st = st.clone();
                    self.ack(&st).await?;
                }
                if st.state == state {
                    return Ok(st.clone());
                }
            }
        }
    }
}

impl Fw {
    /// Waits for an update of `task` matching `pred`, acknowledging every update of
    /// that task on the way.
    pub async fn wait_update<F>(
        &mut self,
        task: &str,
        what: &str,
        mut pred: F,
    ) -> Result<TaskStatus, Box<dyn std::error::Error + Send + Sync>>
    where
        F: FnMut(&TaskStatus) -> bool,
    {
        let deadline = Instant::now() + WAIT;
        let mut checked = 0;
        loop {
            while checked < self.updates.len() {
                let st = self.updates[checked].clone();
                checked += 1;
                if st.task_id.value == task {
                    self.ack(&st).await?;
                    if pred(&st) {
                        return Ok(st);
                    }
                }
            }
            if let Err(e) = self.next_event(deadline).await {
                return Err(fail(format!("{what}: {e}")));
            }
        }
    }

    /// Acknowledges an update (once).
    pub async fn ack(&mut self, st: &TaskStatus) -> TestResult {
        if let Some(u) = &st.uuid
            && self.acked.insert(u.as_slice().to_vec())
        {
            self.handle.acknowledge_status(st).await?;
        }
        Ok(())
    }
}

/// Scalar quantity of an offer.
pub fn scalar(resources: &[Resource], name: &str) -> f64 {
    mesos_v1::resources::scalar_total(resources, name)
}

/// A command task using `cpus`/`mem` from `offer`.
pub fn task(offer: &Offer, id: &str, command: CommandInfo, cpus: f64, mem: f64) -> TaskInfo {
    TaskInfo {
        name: id.to_string(),
        task_id: TaskId::new(id),
        agent_id: offer.agent_id.clone(),
        resources: vec![Resource::scalar("cpus", cpus), Resource::scalar("mem", mem)],
        command: Some(command),
        ..TaskInfo::default()
    }
}

/// Reads a sandbox file through the files API (virtual `/frameworks/...` path).
pub async fn read_sandbox_file(
    master: &Master,
    fw: &FrameworkId,
    task: &str,
    file: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let path = format!(
        "/frameworks/{}/executors/{}/runs/latest/{}",
        fw.value, task, file
    );
    let url = format!("{}/files/read", agent_base(master));
    let resp = reqwest::Client::new()
        .get(url)
        .query(&[("path", path.as_str()), ("offset", "0")])
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(fail(format!("files/read {path}: {}", resp.status())));
    }
    let v: serde_json::Value = resp.json().await?;
    Ok(v["data"].as_str().unwrap_or_default().to_string())
}

/// Where agent endpoints live: mesos-lite serves them on the master port. Against a
/// real cluster set `MESOS_AGENT_URL`.
pub fn agent_base(master: &Master) -> String {
    std::env::var("MESOS_AGENT_URL").unwrap_or_else(|_| master.url.clone())
}

/// Polls `f` until it returns Some, bounded by `WAIT`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    mut f: F,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(fail(format!("timed out: {what}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a pid is alive (not gone, not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| !s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
