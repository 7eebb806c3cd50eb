//! The master's state: frameworks, agents, offers and tasks, behind one lock.
//!
//! Every operation is a synchronous method on [`Master`] run under the lock; effects
//! leave as non-blocking sends (events to scheduler streams, kill requests to task
//! runners) or spawned tasks (task launches, failover timers).

mod agents;
mod allocator;
mod calls;
mod updates;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};

use crate::process::ProcessRecords;
use crate::res::Bag;
use crate::wire::*;

pub use agents::{AgentError, Removal};
pub use calls::KillRequest;

/// Completed tasks kept per framework for `/state` (Mesos: `--max_completed_tasks_per_framework`, 1000).
const MAX_COMPLETED_TASKS: usize = 1000;
/// Completed frameworks kept (Mesos: `--max_completed_frameworks`, 50).
const MAX_COMPLETED_FRAMEWORKS: usize = 50;

/// The version reported everywhere.
pub const MESOS_VERSION: &str = "1.11.0";

/// Static configuration derived from the flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Master id (a UUID, kept in work_dir across restarts).
    pub master_id: String,
    /// Advertised hostname.
    pub hostname: String,
    /// Listening address.
    pub ip: IpAddr,
    /// Listening port (shared by the agents).
    pub port: u16,
    /// HEARTBEAT interval.
    pub heartbeat_interval: Duration,
    /// Batch allocation interval.
    pub allocation_interval: Duration,
    /// Offer expiry (None = never).
    pub offer_timeout: Option<Duration>,
    /// First status update retry interval.
    pub status_update_retry_interval: Duration,
    /// Kill grace period without a kill policy.
    pub default_kill_grace_period: Duration,
    /// The work directory.
    pub work_dir: PathBuf,
    /// Start time, epoch seconds.
    pub start_time: f64,
    /// The flags as given, for `/state`.
    pub flags_json: serde_json::Value,
    /// Start count of this work_dir (offer ids of this run start at `run * 1e9`).
    pub run: u64,
}

impl Config {
    /// `ip:port`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// `master@ip:port`.
    pub fn master_pid(&self) -> String {
        format!("master@{}", self.endpoint())
    }

    /// `MasterInfo`.
    pub fn master_info(&self) -> MasterInfo {
        MasterInfo {
            id: self.master_id.clone(),
            ip: ip_as_u32(self.ip),
            port: u32::from(self.port),
            pid: Some(self.master_pid()),
            hostname: Some(self.hostname.clone()),
            version: Some(MESOS_VERSION.to_string()),
            address: Some(Address {
                hostname: Some(self.hostname.clone()),
                ip: Some(self.ip.to_string()),
                port: i32::from(self.port),
            }),
            domain: None,
            capabilities: vec![MasterCapability {
                r#type: MasterCapabilityType::AgentUpdate,
            }],
        }
    }
}

/// IPv4 network-order bytes read as a native u32, as `MasterInfo.ip` is.
fn ip_as_u32(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from_ne_bytes(v4.octets()),
        IpAddr::V6(_) => 0,
    }
}

/// Something sent down a scheduler's event stream.
#[derive(Debug)]
pub enum StreamMsg {
    /// An event to encode and send.
    Event(Box<Event>),
    /// Close the stream (after ERROR or TEARDOWN).
    Close,
}

/// The open SUBSCRIBE stream of a framework.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The `Mesos-Stream-Id`.
    pub id: String,
    tx: mpsc::UnboundedSender<StreamMsg>,
}

impl Stream {
    /// Creates a stream and the receiving end the HTTP body drains.
    pub fn new() -> (Stream, mpsc::UnboundedReceiver<StreamMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Stream {
                id: uuid::Uuid::new_v4().to_string(),
                tx,
            },
            rx,
        )
    }

    fn send(&self, event: Event) {
        let _ = self.tx.send(StreamMsg::Event(Box::new(event)));
    }

    fn close(&self) {
        let _ = self.tx.send(StreamMsg::Close);
    }
}

/// What the flags say about one agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Total resources.
    pub total: Bag,
    /// Its hostname (a label: every agent is reached at the master's address).
    pub hostname: String,
    /// Its attributes.
    pub attributes: Vec<Attribute>,
}

/// One agent.
#[derive(Debug)]
pub struct Agent {
    /// `<master>-S<n>`.
    pub id: String,
    /// `slave(<n+1>)`, the libprocess id.
    pub process: String,
    /// Hostname, as offers and `/state` show it.
    pub hostname: String,
    /// Attributes, as offers and `/state` show them.
    pub attributes: Vec<Attribute>,
    /// Set once the agent is unreachable or gone (it never comes back).
    pub removed: Option<Removal>,
    /// Total resources.
    pub total: Bag,
    /// Registration time, epoch seconds.
    pub registered_time: f64,
}

/// A framework.
#[derive(Debug)]
pub struct Framework {
    /// The id.
    pub id: String,
    /// The FrameworkInfo (id filled in).
    pub info: FrameworkInfo,
    /// The open event stream, if connected.
    pub stream: Option<Stream>,
    /// First registration with this master, epoch seconds.
    pub registered_time: f64,
    /// Last re-registration, epoch seconds.
    pub reregistered_time: Option<f64>,
    /// When the stream last dropped, epoch seconds.
    pub unregistered_time: Option<f64>,
    /// Roles whose offers are suppressed.
    pub suppressed: BTreeSet<String>,
    /// Bumped on every (re)subscription and disconnection; failover timers check it.
    pub epoch: u64,
    /// Active tasks (including terminal ones whose last update is not yet acknowledged).
    pub tasks: BTreeMap<String, Task>,
    /// Tasks whose terminal update was acknowledged.
    pub completed_tasks: VecDeque<Task>,
    /// Tasks of agents marked unreachable.
    pub unreachable_tasks: VecDeque<Task>,
}

impl Framework {
    fn roles(&self) -> Vec<String> {
        let roles = self.info.effective_roles();
        if roles.is_empty() {
            vec!["*".to_string()]
        } else {
            roles
        }
    }

    fn multi_role(&self) -> bool {
        self.info
            .has_capability(&FrameworkCapabilityType::MultiRole)
    }

    fn partition_aware(&self) -> bool {
        self.info
            .has_capability(&FrameworkCapabilityType::PartitionAware)
    }

    /// Whether the framework is subscribed right now.
    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }

    fn send(&self, event: Event) {
        if let Some(s) = &self.stream {
            s.send(event);
        }
    }
}

/// A task, as the master and its agent know it.
#[derive(Debug)]
pub struct Task {
    /// The TaskInfo as launched (allocation info filled in).
    pub info: TaskInfo,
    /// Owning framework.
    pub framework_id: String,
    /// Agent index.
    pub agent: usize,
    /// Allocation role.
    pub role: String,
    /// Executor id (task id for command tasks, the group's executor otherwise).
    pub executor_id: String,
    /// Whether this task runs under the command executor (vs a LAUNCH_GROUP default executor).
    pub command_executor: bool,
    /// Container id.
    pub container_id: String,
    /// Sandbox directory.
    pub sandbox: PathBuf,
    /// Latest state reported by the agent (or set by the master).
    pub state: TaskState,
    /// Every status forwarded for this task, oldest first (for `/state` and GET_TASKS).
    pub statuses: Vec<TaskStatus>,
    /// Agent status update queue; the head is in flight until acknowledged.
    pub pending: VecDeque<TaskStatus>,
    /// When the head is resent next.
    pub next_retry: Option<Instant>,
    /// Current retry interval of the head.
    pub retry_interval: Duration,
    /// Resources charged to the agent while the task is alive.
    pub resources: Bag,
    /// Whether the resources went back to the agent.
    pub released: bool,
    /// The task's process id once started.
    pub pid: Option<u32>,
    /// Sends kill requests to the task's runner.
    pub kill_tx: Option<mpsc::UnboundedSender<KillRequest>>,
    /// Task ids of its LAUNCH_GROUP (empty for command tasks).
    pub group: Vec<String>,
}

/// An outstanding offer.
#[derive(Debug, Clone)]
pub struct OutstandingOffer {
    /// The wire offer as sent.
    pub offer: Offer,
    /// The framework it was made to.
    pub framework_id: String,
    /// The agent index.
    pub agent: usize,
    /// Its resources.
    pub bag: Bag,
    /// The allocation role.
    pub role: String,
    /// When it was made.
    pub created: Instant,
}

/// A refuse filter from DECLINE / unused ACCEPT resources.
#[derive(Debug, Clone)]
struct Filter {
    framework_id: String,
    agent: usize,
    bag: Bag,
    until: Instant,
}

/// A framework removed by TEARDOWN or failover timeout.
#[derive(Debug)]
pub struct CompletedFramework {
    /// The framework as it was.
    pub framework: Framework,
}

/// The master.
#[derive(Debug)]
pub struct Master {
    /// Configuration.
    pub config: Config,
    /// Agents, by index.
    pub agents: Vec<Agent>,
    /// Frameworks by id.
    pub frameworks: BTreeMap<String, Framework>,
    /// Removed frameworks (most recent last).
    pub completed_frameworks: VecDeque<CompletedFramework>,
    removed_ids: HashSet<String>,
    /// Outstanding offers by id.
    pub offers: HashMap<String, OutstandingOffer>,
    filters: Vec<Filter>,
    /// Default executors of task groups: (framework, executor) → (agent, resources),
    /// charged while any of their tasks is alive.
    group_executors: BTreeMap<(String, String), (usize, Bag)>,
    next_offer: u64,
    next_framework: u64,
    /// The shared handle, for spawning runners and timers.
    shared: std::sync::Weak<Shared>,
}

/// What every async piece holds: the locked master plus notifiers.
#[derive(Debug)]
pub struct Shared {
    master: Mutex<Master>,
    /// Wakes the allocator for an event-driven round.
    pub allocate_now: Notify,
    /// HTTP client for the fetcher.
    pub http: reqwest::Client,
    /// Records of live task processes.
    pub records: ProcessRecords,
    /// Static configuration (also in the master, copied for lock-free reads).
    pub config: Config,
}

impl Shared {
    /// Builds the master with its agents.
    pub fn new(
        config: Config,
        agents: Vec<AgentSpec>,
        next_framework: u64,
        records: ProcessRecords,
    ) -> anyhow::Result<Arc<Shared>> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()?;
        let now = crate::wire::now_secs();
        let agent_list = agents
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Agent {
                id: format!("{}-S{i}", config.master_id),
                process: format!("slave({})", i + 1),
                hostname: spec.hostname,
                attributes: spec.attributes,
                removed: None,
                total: spec.total,
                registered_time: now,
            })
            .collect();
        Ok(Arc::new_cyclic(|weak| Shared {
            master: Mutex::new(Master {
                config: config.clone(),
                agents: agent_list,
                frameworks: BTreeMap::new(),
                completed_frameworks: VecDeque::new(),
                removed_ids: HashSet::new(),
                offers: HashMap::new(),
                filters: Vec::new(),
                group_executors: BTreeMap::new(),
                next_offer: config.run.saturating_mul(1_000_000_000),
                next_framework,
                shared: weak.clone(),
            }),
            allocate_now: Notify::new(),
            http,
            records,
            config,
        }))
    }

    /// Locks the master (a poisoned lock is recovered: state stays usable).
    pub fn lock(&self) -> MutexGuard<'_, Master> {
        self.master.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Master {
    /// Persists the master id and framework counter (so ids stay unique across restarts).
    fn persist_meta(&self) {
        let meta = crate::persist::MasterMeta {
            master_id: self.config.master_id.clone(),
            next_framework: self.next_framework,
            runs: self.config.run,
        };
        if let Err(e) = crate::persist::save(&self.config.work_dir, &meta) {
            tracing::warn!(error = %e, "cannot persist master metadata");
        }
    }

    /// Finds an agent index by id.
    pub fn agent_index(&self, id: &str) -> Option<usize> {
        self.agents.iter().position(|a| a.id == id)
    }

    /// `AgentInfo` of an agent.
    pub fn agent_info(&self, index: usize) -> AgentInfo {
        let a = &self.agents[index];
        AgentInfo {
            hostname: a.hostname.clone(),
            port: i32::from(self.config.port),
            resources: a.total.to_resources(None),
            attributes: a.attributes.clone(),
            id: Some(AgentId::new(a.id.clone())),
            domain: None,
            capabilities: agent_capabilities(),
        }
    }

    /// Resources used by live tasks (and their default executors) on an agent.
    pub fn used_on(&self, agent: usize) -> Bag {
        let mut used = Bag::default();
        for fw in self.frameworks.values() {
            for t in fw.tasks.values() {
                if t.agent == agent && !t.released {
                    used = used.plus(&t.resources);
                }
            }
        }
        for ((fw, _), (a, bag)) in &self.group_executors {
            if *a == agent && self.frameworks.contains_key(fw) {
                used = used.plus(bag);
            }
        }
        used
    }

    /// Forgets default executors none of whose tasks is alive any more.
    pub(crate) fn reap_group_executors(&mut self) {
        let frameworks = &self.frameworks;
        self.group_executors.retain(|(fw, exec), _| {
            frameworks.get(fw).is_some_and(|f| {
                f.tasks
                    .values()
                    .any(|t| !t.command_executor && t.executor_id == *exec && !t.released)
            })
        });
    }

    /// Resources offered (outstanding) on an agent.
    pub fn offered_on(&self, agent: usize) -> Bag {
        self.offers
            .values()
            .filter(|o| o.agent == agent)
            .fold(Bag::default(), |acc, o| acc.plus(&o.bag))
    }

    /// Resources used by a framework's live tasks.
    pub fn used_by(&self, framework_id: &str) -> Bag {
        self.frameworks
            .get(framework_id)
            .map_or_else(Bag::default, |fw| {
                fw.tasks
                    .values()
                    .filter(|t| !t.released)
                    .fold(Bag::default(), |acc, t| acc.plus(&t.resources))
            })
    }

    /// Resources offered to a framework.
    pub fn offered_to(&self, framework_id: &str) -> Bag {
        self.offers
            .values()
            .filter(|o| o.framework_id == framework_id)
            .fold(Bag::default(), |acc, o| acc.plus(&o.bag))
    }

    fn wake_allocator(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.allocate_now.notify_one();
        }
    }

    /// Removes a framework's outstanding offers (no RESCIND: used on disconnect/failover).
    fn drop_offers_of(&mut self, framework_id: &str) {
        self.offers.retain(|_, o| o.framework_id != framework_id);
    }

    /// Sends a master-generated status update (no uuid, never retried) if connected.
    fn send_master_update(&self, framework_id: &str, status: TaskStatus) {
        if let Some(fw) = self.frameworks.get(framework_id) {
            fw.send(Event::update(status));
        }
    }

    fn complete_framework(&mut self, fw: Framework) {
        self.removed_ids.insert(fw.id.clone());
        self.completed_frameworks
            .push_back(CompletedFramework { framework: fw });
        while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
    }

    /// Moves a task to the framework's completed list.
    fn complete_task(fw: &mut Framework, task_id: &str) {
        if let Some(t) = fw.tasks.remove(task_id) {
            fw.completed_tasks.push_back(t);
            while fw.completed_tasks.len() > MAX_COMPLETED_TASKS {
                fw.completed_tasks.pop_front();
            }
        }
    }

    /// Kills every live task process group right away (shutdown path).
    pub fn kill_all_for_shutdown(&mut self) -> Vec<u32> {
        let mut pids = Vec::new();
        for fw in self.frameworks.values_mut() {
            for t in fw.tasks.values_mut() {
                if let Some(pid) = t.pid {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

/// The capabilities a 1.11 agent advertises.
pub fn agent_capabilities() -> Vec<AgentCapability> {
    [
        AgentCapabilityType::MultiRole,
        AgentCapabilityType::HierarchicalRole,
        AgentCapabilityType::ReservationRefinement,
        AgentCapabilityType::AgentOperationFeedback,
        AgentCapabilityType::AgentDraining,
        AgentCapabilityType::TaskResourceLimits,
    ]
    .into_iter()
    .map(|t| AgentCapability { r#type: t })
    .collect()
}

/// A status for a task in Mesos' TaskStatus shape.
pub fn status(
    task_id: &str,
    state: TaskState,
    source: TaskStatusSource,
    reason: Option<TaskStatusReason>,
    message: Option<String>,
    agent_id: Option<&str>,
) -> TaskStatus {
    TaskStatus {
        task_id: TaskId::new(task_id),
        state,
        message,
        source: Some(source),
        reason,
        agent_id: agent_id.map(AgentId::new),
        timestamp: Some(crate::wire::now_secs()),
        ..TaskStatus::default()
    }
}
