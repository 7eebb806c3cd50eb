//! `GET .../topologies/{name}/tasks/{task}/logs?stream=stdout|stderr&offset=N&length=M`:
//! a task's sandbox `stdout`/`stderr`, read through the Mesos files API.
//!
//! Only documented Mesos behaviour is used (wire reference §10), so this works against
//! Apache Mesos as against mesos-lite:
//! 1. the master's `GET /state` names the task's agent (`slave_id`, in `frameworks[]` or
//!    `completed_frameworks[]`, among `tasks`, `completed_tasks`, `unreachable_tasks`),
//!    and the agent's libprocess `pid` (`slave(1)@ip:port`) says where it listens;
//! 2. the agent's `GET /<agent-process>/state` gives the executor's sandbox `directory`;
//! 3. the agent's `GET /files/read?path=<directory>/<stream>&offset=N&length=M` reads it.
//!
//! Steps 1-2 are cached per task (a follower polls every ~500 ms; the master's `/state`
//! is large on a real cluster). A cached sandbox that has vanished is looked up again once.
//!
//! Answer: `{"taskId":…, "stream":"stdout", "data":"<text>", "offset":N, "nextOffset":M}`
//! where `nextOffset` is where the next read continues; an empty `data` means no new
//! output yet. 404 (`NotFound`) when Mesos no longer knows the task or its sandbox was
//! garbage-collected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesos_v1::legacy::{AgentState, LegacyFramework, LegacyTask, MasterState};
use mesos_v1::operator::{OperatorClient, OperatorError};
use mesos_v1::scheduler::Credentials;
use serde::{Deserialize, Serialize};

use super::ObserveError;

/// How long a located sandbox is reused without asking the master again.
const SANDBOX_TTL: Duration = Duration::from_secs(300);
/// Sandboxes remembered at most.
const SANDBOX_CACHE_MAX: usize = 1024;
/// Timeout of each Mesos request.
const MESOS_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes returned by one read (the Mesos files API caps reads at 16 pages); a
/// larger `length` is lowered to it, and an agent answering more is cut to it.
pub const MAX_LENGTH: u64 = 64 * 1024;

/// Which sandbox file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The task's standard output.
    #[default]
    Stdout,
    /// The task's standard error.
    Stderr,
}

impl LogStream {
    fn file(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Query of the logs endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// `stdout` (default) or `stderr`.
    #[serde(default)]
    pub stream: Option<String>,
    /// Byte offset to read from (default 0); `-1` answers only the file size as `offset`.
    #[serde(default)]
    pub offset: Option<i64>,
    /// Bytes to read (default and maximum 65536).
    #[serde(default)]
    pub length: Option<u64>,
}

/// The answer of the logs endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogChunk {
    /// The task.
    pub task_id: String,
    /// Which file.
    pub stream: LogStream,
    /// Text read (invalid UTF-8 replaced).
    pub data: String,
    /// Offset `data` starts at (for `offset=-1`: the file size).
    pub offset: u64,
    /// Offset to ask for next.
    pub next_offset: u64,
}

/// Where a task's sandbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// `http://ip:port` of the agent.
    pub agent: String,
    /// Sandbox directory on the agent.
    pub directory: String,
}

/// Access to Mesos for the logs endpoint.
#[derive(Debug, Clone)]
pub struct MesosAccess {
    /// Master URL, e.g. `http://127.0.0.1:5050`.
    pub master: String,
    /// HTTP Basic credentials, if the cluster requires them.
    pub credentials: Option<Credentials>,
}

/// Finds sandboxes and reads their files, caching locations.
#[derive(Debug, Clone)]
pub struct LogReader {
    mesos: Option<MesosAccess>,
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, (Instant, Sandbox)>>>,
}

fn mesos_error(what: &str, e: OperatorError) -> ObserveError {
    match e {
        OperatorError::Status { status, .. } if status == http::StatusCode::NOT_FOUND => {
            ObserveError::NotFound(format!("{what}: not found"))
        }
        OperatorError::Http(e) => ObserveError::Unavailable(format!(
            "{what}: Mesos did not answer: {}",
            super::error_chain(&e)
        )),
        other => ObserveError::BadGateway(format!("{what}: {other}")),
    }
}

impl LogReader {
    /// A reader; `mesos` is `None` when the controller does not use Mesos.
    pub fn new(mesos: Option<MesosAccess>, http: reqwest::Client) -> Self {
        Self {
            mesos,
            http,
            cache: Arc::default(),
        }
    }

    fn access(&self) -> Result<&MesosAccess, ObserveError> {
        self.mesos.as_ref().ok_or_else(|| {
            ObserveError::Unavailable(
                "this controller is not connected to Mesos (started with --no-scheduler)".into(),
            )
        })
    }

    fn client(&self, base: &str) -> Result<OperatorClient, ObserveError> {
        let access = self.access()?;
        let client = OperatorClient::new(base, MESOS_TIMEOUT)
            .map_err(|e| ObserveError::Unavailable(format!("Mesos URL {base:?}: {e}")))?;
        Ok(match &access.credentials {
            Some(c) => client.with_credentials(c.clone()),
            None => client,
        })
    }

    /// Reads part of a task's stdout or stderr.
    pub async fn read(&self, task_id: &str, query: &LogQuery) -> Result<LogChunk, ObserveError> {
        let stream = match query.stream.as_deref() {
            None | Some("" | "stdout") => LogStream::Stdout,
            Some("stderr") => LogStream::Stderr,
            Some(other) => {
                return Err(ObserveError::BadRequest(format!(
                    "stream must be stdout or stderr, not {other:?}"
                )));
            }
        };
        let offset = query.offset.unwrap_or(0);
        if offset < -1 {
            return Err(ObserveError::BadRequest(format!(
                "offset must be >= 0 (or -1 for the size), not {offset}"
            )));
        }
        let length = query.length.unwrap_or(MAX_LENGTH).min(MAX_LENGTH);
        let cached = self.cached(task_id);
        let sandbox = match &cached {
            Some(s) => s.clone(),
            None => self.locate(task_id).await?,
        };
        let result = self.read_at(&sandbox, stream, offset, length).await;
        let read = match result {
            Err(ObserveError::NotFound(_)) if cached.is_some() => {
                // The cached location may be stale (agent restarted, task moved): look again.
                self.forget(task_id);
                let sandbox = self.locate(task_id).await?;
                self.read_at(&sandbox, stream, offset, length).await
            }
            other => other,
        };
        let read = read.map_err(|e| match e {
            ObserveError::NotFound(_) => {
                self.forget(task_id);
                ObserveError::NotFound(format!(
                    "the {} of task {task_id} is gone (its sandbox was removed by Mesos)",
                    stream.file()
                ))
            }
            other => other,
        })?;
        Ok(chunk_of(task_id, stream, offset, length, read))
    }

    async fn read_at(
        &self,
        sandbox: &Sandbox,
        stream: LogStream,
        offset: i64,
        length: u64,
    ) -> Result<mesos_v1::FileRead, ObserveError> {
        let path = format!(
            "{}/{}",
            sandbox.directory.trim_end_matches('/'),
            stream.file()
        );
        self.client(&sandbox.agent)?
            .read_file(&path, offset, Some(length as i64))
            .await
            .map_err(|e| mesos_error(&format!("reading {path} on {}", sandbox.agent), e))
    }

    fn cached(&self, task_id: &str) -> Option<Sandbox> {
        let map = self.cache.lock().ok()?;
        map.get(task_id)
            .filter(|(at, _)| at.elapsed() < SANDBOX_TTL)
            .map(|(_, s)| s.clone())
    }

    fn forget(&self, task_id: &str) {
        if let Ok(mut map) = self.cache.lock() {
            map.remove(task_id);
        }
    }

    /// Finds the sandbox of a task through the master and its agent.
    pub async fn locate(&self, task_id: &str) -> Result<Sandbox, ObserveError> {
        let master_url = self.access()?.master.clone();
        let master = self.client(&master_url)?;
        let state = master
            .legacy_state()
            .await
            .map_err(|e| mesos_error("reading the Mesos master's /state", e))?;
        let (framework_id, task) = find_task(&state, task_id).ok_or_else(|| {
            ObserveError::NotFound(format!(
                "Mesos does not know task {task_id} (it never ran, or finished long ago)"
            ))
        })?;
        let slave = state
            .slaves
            .iter()
            .find(|s| s.id == task.slave_id)
            .ok_or_else(|| {
                ObserveError::NotFound(format!(
                    "the agent {} of task {task_id} is no longer registered with the master",
                    task.slave_id
                ))
            })?;
        let (process, agent) =
            agent_address(&slave.pid, &slave.hostname, slave.port).ok_or_else(|| {
                ObserveError::BadGateway(format!(
                    "cannot tell where agent {} listens (pid {:?})",
                    slave.id, slave.pid
                ))
            })?;
        let agent_state = self.agent_state(&agent, &process).await?;
        let executor_id = if task.executor_id.is_empty() {
            task_id.to_owned()
        } else {
            task.executor_id.clone()
        };
        let directory = find_directory(&agent_state, &framework_id, &executor_id, task_id)
            .ok_or_else(|| {
                ObserveError::NotFound(format!(
                    "agent {} no longer has the sandbox of task {task_id}",
                    slave.id
                ))
            })?;
        let sandbox = Sandbox { agent, directory };
        if let Ok(mut map) = self.cache.lock() {
            if map.len() >= SANDBOX_CACHE_MAX {
                map.retain(|_, (at, _)| at.elapsed() < SANDBOX_TTL);
                if map.len() >= SANDBOX_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(task_id.to_owned(), (Instant::now(), sandbox.clone()));
        }
        Ok(sandbox)
    }

    async fn agent_state(&self, agent: &str, process: &str) -> Result<AgentState, ObserveError> {
        let url = format!("{agent}/{process}/state");
        let mut req = self.http.get(&url).timeout(MESOS_TIMEOUT);
        if let Some(c) = &self.access()?.credentials {
            req = req.basic_auth(&c.principal, Some(&c.secret));
        }
        let resp = req.send().await.map_err(|e| {
            ObserveError::Unavailable(format!(
                "agent {agent} did not answer: {}",
                super::error_chain(&e)
            ))
        })?;
        if !resp.status().is_success() {
            return Err(ObserveError::BadGateway(format!(
                "GET {url} answered {}",
                resp.status()
            )));
        }
        let body = super::read_capped(resp, mesos_v1::operator::MAX_STATE_BYTES)
            .await
            .map_err(|e| match e {
                super::BodyError::TooLarge { .. } => {
                    ObserveError::BadGateway(format!("GET {url}: {e}"))
                }
                super::BodyError::Read(_) => {
                    ObserveError::Unavailable(format!("reading GET {url}: {e}"))
                }
            })?;
        serde_json::from_slice(&body)
            .map_err(|e| ObserveError::BadGateway(format!("GET {url}: not agent state JSON: {e}")))
    }
}

/// The answer for an agent's read: what the agent says is not trusted to be what was
/// asked, so data beyond `length` is cut (at a character boundary) and the next offset
/// cannot overflow.
fn chunk_of(
    task_id: &str,
    stream: LogStream,
    offset: i64,
    length: u64,
    read: mesos_v1::FileRead,
) -> LogChunk {
    if offset < 0 {
        return LogChunk {
            task_id: task_id.to_owned(),
            stream,
            data: String::new(),
            offset: read.offset,
            next_offset: read.offset,
        };
    }
    let mut data = read.data;
    let mut keep = usize::try_from(length)
        .unwrap_or(usize::MAX)
        .min(data.len());
    while !data.is_char_boundary(keep) {
        keep -= 1;
    }
    data.truncate(keep);
    let next_offset = read.offset.saturating_add(data.len() as u64);
    LogChunk {
        task_id: task_id.to_owned(),
        stream,
        data,
        offset: read.offset,
        next_offset,
    }
}

/// The task (and its framework ID) in the master's state, active or completed.
fn find_task<'a>(state: &'a MasterState, task_id: &str) -> Option<(String, &'a LegacyTask)> {
    let in_framework = |fw: &'a LegacyFramework| {
        fw.tasks
            .iter()
            .chain(&fw.unreachable_tasks)
            .chain(&fw.completed_tasks)
            .find(|t| t.id == task_id)
            .map(|t| (fw.id.clone(), t))
    };
    state
        .frameworks
        .iter()
        .chain(&state.completed_frameworks)
        .find_map(in_framework)
        .or_else(|| {
            state
                .orphan_tasks
                .iter()
                .find(|t| t.id == task_id)
                .map(|t| (t.framework_id.clone(), t))
        })
}

/// From an agent's libprocess pid `slave(1)@10.0.0.5:5051`: the process name and
/// `http://10.0.0.5:5051`. Falls back to `hostname:port` with process `slave(1)`.
pub fn agent_address(pid: &str, hostname: &str, port: u32) -> Option<(String, String)> {
    if let Some((process, addr)) = pid.split_once('@')
        && !process.is_empty()
        && !addr.is_empty()
    {
        return Some((process.to_owned(), format!("http://{addr}")));
    }
    (!hostname.is_empty() && port > 0)
        .then(|| ("slave(1)".to_owned(), format!("http://{hostname}:{port}")))
}

/// The sandbox directory of an executor on an agent (running or completed).
fn find_directory(
    state: &AgentState,
    framework_id: &str,
    executor_id: &str,
    task_id: &str,
) -> Option<String> {
    let frameworks = state
        .frameworks
        .iter()
        .chain(&state.completed_frameworks)
        .filter(|f| framework_id.is_empty() || f.id == framework_id);
    // The most recent run comes first in `executors`, completed runs after.
    for fw in frameworks {
        for ex in fw.executors.iter().chain(&fw.completed_executors) {
            let has_task = ex
                .tasks
                .iter()
                .chain(&ex.queued_tasks)
                .chain(&ex.completed_tasks)
                .any(|t| t.id == task_id);
            if (ex.id == executor_id || has_task) && !ex.directory.is_empty() {
                return Some(ex.directory.clone());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_answering_more_than_asked_is_cut_to_the_length() {
        let read = |data: &str, offset: u64| mesos_v1::FileRead {
            data: data.to_owned(),
            offset,
        };
        let big = "x".repeat(MAX_LENGTH as usize * 4);
        let c = chunk_of("t", LogStream::Stdout, 0, MAX_LENGTH, read(&big, 0));
        assert_eq!(c.data.len() as u64, MAX_LENGTH);
        assert_eq!(c.next_offset, MAX_LENGTH);
        // Never inside a character; never an overflowing offset.
        let c = chunk_of("t", LogStream::Stdout, 5, 2, read("aé", u64::MAX - 1));
        assert_eq!(c.data, "a");
        assert_eq!(c.next_offset, u64::MAX);
        // offset=-1 answers the size only, whatever data came with it.
        let c = chunk_of("t", LogStream::Stderr, -1, 10, read("junk", 42));
        assert_eq!((c.data.as_str(), c.offset, c.next_offset), ("", 42, 42));
    }

    #[test]
    fn agent_address_from_pid_or_hostname() {
        assert_eq!(
            agent_address("slave(2)@127.0.0.1:5050", "h", 1),
            Some(("slave(2)".into(), "http://127.0.0.1:5050".into()))
        );
        assert_eq!(
            agent_address("", "agent.example", 5051),
            Some(("slave(1)".into(), "http://agent.example:5051".into()))
        );
        assert_eq!(agent_address("", "", 0), None);
    }

    #[test]
    fn finds_tasks_in_master_state_active_or_completed() {
        let state: MasterState = serde_json::from_value(serde_json::json!({
            "slaves": [{"id": "a1", "hostname": "h", "port": 5051, "pid": "slave(1)@10.0.0.1:5051"}],
            "frameworks": [{"id": "fw", "tasks": [
                {"id": "run", "slave_id": "a1", "framework_id": "fw", "executor_id": "", "state": "TASK_RUNNING"}
            ], "completed_tasks": [
                {"id": "done", "slave_id": "a1", "framework_id": "fw", "state": "TASK_KILLED"}
            ]}],
            "completed_frameworks": [{"id": "old", "completed_tasks": [
                {"id": "ancient", "slave_id": "a0", "framework_id": "old", "state": "TASK_FINISHED"}
            ]}]
        }))
        .expect("master state");
        let (fw, t) = find_task(&state, "run").expect("running");
        assert_eq!((fw.as_str(), t.slave_id.as_str()), ("fw", "a1"));
        assert_eq!(
            find_task(&state, "done").map(|(fw, _)| fw),
            Some("fw".into())
        );
        assert_eq!(
            find_task(&state, "ancient").map(|(fw, _)| fw),
            Some("old".into())
        );
        assert!(find_task(&state, "never").is_none());
    }

    #[test]
    fn finds_running_and_completed_sandboxes() {
        let state: AgentState = serde_json::from_value(serde_json::json!({
            "id": "a1", "pid": "slave(1)@127.0.0.1:5051", "hostname": "h",
            "frameworks": [{"id": "fw", "executors": [
                {"id": "t1", "directory": "/w/t1", "tasks": [{"id": "t1"}]}
            ], "completed_executors": [
                {"id": "t0", "directory": "/w/t0", "completed_tasks": [{"id": "t0"}]}
            ]}]
        }))
        .expect("agent state");
        assert_eq!(
            find_directory(&state, "fw", "t1", "t1"),
            Some("/w/t1".into())
        );
        assert_eq!(
            find_directory(&state, "fw", "t0", "t0"),
            Some("/w/t0".into())
        );
        assert_eq!(find_directory(&state, "other", "t1", "t1"), None);
        assert_eq!(find_directory(&state, "fw", "t9", "t9"), None);
    }
}
