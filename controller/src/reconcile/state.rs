//! The reconciler's state and its reactions to events. Owned by one task.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use concord_schemas::{
    Event, OperatorSpec, OperatorStatus, TaskSummary, Topology, TopologySpec, template_hash,
};
use mesos_v1::{AgentId, Offer, ReconcileTask, SchedulerEvent, TaskId, TaskState, TaskStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backoff::{BackoffTable, InstanceKey, Retries};
use super::calls::MesosCall;
use super::identity::TaskName;
use super::informer::{Entry, InformerEvent};
use super::launch::{LaunchRequest, OfferSpace, attributes_match, describe_needs, task_info};
use super::planner::{Desired, LiveTask, Phase, plan_operator};
use super::status::{OperatorView, StatusDoc, build_conditions};
use super::{ReadinessMode, ReconcilerConfig};
use crate::readiness::Readiness;
use crate::store::split_ns_name;

/// Most events kept per topology.
const MAX_EVENTS: usize = 50;
/// A launch waiting this long for a fitting offer is reported as InsufficientResources.
const UNFIT_AFTER: Duration = Duration::from_secs(10);
/// A kill not answered by a terminal update within this is sent again.
const KILL_RESEND: Duration = Duration::from_secs(30);
/// After SUBSCRIBED, the longest wait for explicit reconciliation answers.
const RECONCILE_WAIT: Duration = Duration::from_secs(5);
/// After explicit reconciliation, time for the implicit one's answers to arrive.
const IMPLICIT_GRACE: Duration = Duration::from_secs(1);
/// First and longest delay before a failed kill, status write or SUPPRESS/REVIVE is
/// tried again (doubling in between).
const RETRY_INITIAL: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Refuse filter of an offer declined because nothing is wanted (SUPPRESS follows).
const REFUSE_UNWANTED: f64 = 30.0;
/// Refuse filter of an offer declined while waiting for a better fit or still syncing,
/// and of the unused part of an accepted offer.
const REFUSE_BRIEFLY: f64 = 1.0;
/// Timer key that only wakes the loop (for a SUPPRESS/REVIVE retry).
const WAKE: &str = "__wake";
/// Timer key of the post-subscribe reconciliation.
const SYNC: &str = "__sync";

/// The wall clock (times in status, back-off deadlines) and the monotonic one (timers,
/// retries). Tests replace both with one manual clock, so timers and back-off
/// deadlines move together, and only when a test says so.
#[cfg(not(test))]
fn utc_now() -> DateTime<Utc> {
    Utc::now()
}

#[cfg(not(test))]
fn mono_now() -> Instant {
    Instant::now()
}

#[cfg(test)]
use tests::{mono_now, utc_now};

/// A write for the single status writer.
#[derive(Debug)]
pub enum StatusWrite {
    Put {
        ns: String,
        name: String,
        status: StatusDoc,
    },
    Finalize {
        ns: String,
        name: String,
        mod_revision: i64,
    },
    FrameworkId(String),
    ClearFrameworkId,
    /// The spec of the last generation that became Ready (for `rollout undo`).
    StableSpec {
        ns: String,
        name: String,
        spec: Arc<Topology>,
    },
}

/// Results of Mesos calls and etcd writes that the state must know about.
#[derive(Debug)]
pub enum Feedback {
    /// An ACCEPT failed: these launches never happened.
    LaunchFailed {
        task_ids: Vec<String>,
        reason: String,
    },
    /// A KILL was not accepted by the master; it is sent again after a back-off.
    KillFailed { task_id: String, reason: String },
    /// The answer to a SUPPRESS (`revive: false`) or REVIVE; `error` if it failed.
    OfferMode { revive: bool, error: Option<String> },
    /// This status is stored for the topology `key` (`ns/name`).
    StatusWritten { key: String, status: StatusDoc },
    /// Writing this status failed; the key is reconciled again after a back-off.
    StatusWriteFailed {
        key: String,
        status: StatusDoc,
        reason: String,
    },
    /// Removing a deleted topology whose tasks are all gone failed (not a conflict).
    FinalizeFailed { key: String, reason: String },
}

/// Where the reconciler's calls and writes go.
pub struct Outputs {
    pub calls_tx: mpsc::UnboundedSender<MesosCall>,
    pub status_tx: mpsc::UnboundedSender<StatusWrite>,
    pub metrics: crate::metrics::Metrics,
}

/// What a restarted controller recovers from stored status.
#[derive(Default)]
pub struct Restored {
    /// Task IDs (with their agents) the previous controller knew.
    pub tasks: Vec<(String, Option<String>)>,
    /// Each topology's event log.
    pub events: HashMap<String, Vec<Event>>,
    /// Each topology's desired instances per operator as last recorded in status.
    pub instances: HashMap<String, BTreeMap<String, u32>>,
}

/// A task as last observed.
#[derive(Debug, Clone)]
struct TaskRecord {
    name: TaskName,
    agent_id: Option<String>,
    state: TaskState,
    since: DateTime<Utc>,
    /// When the last KILL was sent: the task is going away.
    kill_sent: Option<Instant>,
    /// The last KILL failed: send it again at this time.
    kill_retry_at: Option<Instant>,
    /// Known only from stored status, not yet confirmed by Mesos.
    unconfirmed: bool,
}

impl TaskRecord {
    /// Whether a KILL may be sent now: none sent yet, a failed one's back-off is over,
    /// or the last one has gone unanswered for [`KILL_RESEND`].
    fn kill_due(&self, now: Instant) -> bool {
        match (self.kill_retry_at, self.kill_sent) {
            (Some(retry_at), _) => retry_at <= now,
            (None, None) => true,
            (None, Some(sent)) => now.duration_since(sent) >= KILL_RESEND,
        }
    }
}

#[derive(Debug, Clone)]
struct SpecEntry {
    topology: Arc<Topology>,
    mod_revision: i64,
}

/// Progress of one operator's rollout, for the deadline.
#[derive(Debug, Clone)]
struct Progress {
    fingerprint: String,
    since: DateTime<Utc>,
}

/// What of a topology the next pass must look at again.
#[derive(Debug)]
enum Dirty {
    /// Every operator: a new or deleted topology, a resync, a (re)subscription, a
    /// re-listed spec.
    All,
    /// Only these operators; none: only the topology-level status (a write to retry,
    /// a new generation that changed no operator).
    Operators(BTreeSet<String>),
}

/// One operator as it was last planned: its part of the status and the launches it
/// waits for. Kept until the operator changes, so a pass plans only what changed.
#[derive(Debug)]
struct OperatorPlan {
    view: OperatorView,
    requests: Vec<LaunchRequest>,
}

/// Counts of the work passes did (tests and the benchmark read them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    /// Operators planned (tasks diffed, status part rebuilt).
    pub operators_planned: u64,
    /// Task summaries built for status.
    pub tasks_summarised: u64,
}

/// Where the post-subscribe reconciliation stands.
#[derive(Debug)]
enum Sync {
    /// Not subscribed (or specs not listed) yet: act on nothing.
    Waiting,
    /// Explicit reconciliation sent; waiting for these task IDs until the deadline.
    Reconciling {
        awaiting: HashSet<String>,
        deadline: Instant,
    },
    /// Waiting for the implicit reconciliation's answers.
    Settling { until: Instant },
    /// Acting.
    Ready,
}

/// What the master was last asked about offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferMode {
    /// Not known (after a (re)subscription, or a SUPPRESS/REVIVE that failed).
    Unknown,
    /// REVIVE sent: offers wanted.
    Wanted,
    /// SUPPRESS sent: no offers wanted.
    Suppressed,
}

pub struct Reconciler {
    config: ReconcilerConfig,
    calls_tx: mpsc::UnboundedSender<MesosCall>,
    status_tx: mpsc::UnboundedSender<StatusWrite>,
    readiness: Readiness,
    metrics: crate::metrics::Metrics,

    specs: HashMap<String, SpecEntry>,
    specs_listed: bool,
    tasks: HashMap<String, TaskRecord>,
    /// Task IDs by topology and operator.
    by_topology: HashMap<String, BTreeMap<String, BTreeSet<String>>>,
    ready_tasks: HashSet<String>,
    /// Problems tasks publish with their endpoints (task ID -> message).
    task_problems: HashMap<String, String>,
    hosts: HashMap<String, String>,
    backoff: BackoffTable,
    pending: BTreeMap<String, Vec<LaunchRequest>>,
    /// Since when each (operator, instance) of a topology waits for an offer.
    pending_since: HashMap<String, HashMap<(String, u32), Instant>>,
    unfit: HashMap<String, String>,
    events: HashMap<String, VecDeque<Event>>,
    progress: HashMap<(String, String), Progress>,
    /// The status last computed per topology (conditions keep their transition times).
    last_status: HashMap<String, StatusDoc>,
    /// The status etcd is known to hold per topology (confirmed by the writer).
    written: HashMap<String, StatusDoc>,
    /// The status last handed to the writer and not yet confirmed or failed.
    writing: HashMap<String, StatusDoc>,
    /// Each topology's operators as last planned.
    plans: HashMap<String, HashMap<String, OperatorPlan>>,
    /// Operators whose status part is stale for a reason that does not call for a pass
    /// of its own (an agent's host name changed); planned on the topology's next pass.
    deferred: HashMap<String, BTreeSet<String>>,
    pub(super) stats: PassStats,
    last_stable: HashMap<String, i64>,
    /// Desired instances per operator as last reconciled, to see a scale-up.
    instances: HashMap<String, BTreeMap<String, u32>>,
    /// Back-off of failed kills, status writes and SUPPRESS/REVIVE.
    retries: Retries,
    /// When to look at a topology (or one of its operators) again.
    timers: BinaryHeap<Reverse<(Instant, String, Option<String>)>>,
    dirty: BTreeMap<String, Dirty>,
    subscribed: bool,
    offer_mode: OfferMode,
    /// SUPPRESS/REVIVE failed: not asked again before this.
    offer_mode_retry_at: Option<Instant>,
    sync: Sync,
}

impl Reconciler {
    pub fn new(
        config: ReconcilerConfig,
        outputs: Outputs,
        readiness: Readiness,
        restored: Restored,
    ) -> Self {
        let Outputs {
            calls_tx,
            status_tx,
            metrics,
        } = outputs;
        let Restored {
            tasks: known,
            events,
            instances,
        } = restored;
        let mut r = Self {
            config,
            calls_tx,
            status_tx,
            readiness,
            metrics,
            specs: HashMap::new(),
            specs_listed: false,
            tasks: HashMap::new(),
            by_topology: HashMap::new(),
            ready_tasks: HashSet::new(),
            task_problems: HashMap::new(),
            hosts: HashMap::new(),
            backoff: BackoffTable::default(),
            pending: BTreeMap::new(),
            pending_since: HashMap::new(),
            unfit: HashMap::new(),
            events: events
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            progress: HashMap::new(),
            last_status: HashMap::new(),
            written: HashMap::new(),
            writing: HashMap::new(),
            plans: HashMap::new(),
            deferred: HashMap::new(),
            stats: PassStats::default(),
            last_stable: HashMap::new(),
            instances,
            retries: Retries::new(RETRY_INITIAL, RETRY_MAX),
            timers: BinaryHeap::new(),
            dirty: BTreeMap::new(),
            subscribed: false,
            offer_mode: OfferMode::Unknown,
            offer_mode_retry_at: None,
            sync: Sync::Waiting,
        };
        // Tasks from stored status are placeholders until Mesos confirms them.
        for (id, agent_id) in known {
            if let Some(name) = TaskName::parse(&id) {
                r.insert_task(
                    id,
                    TaskRecord {
                        name,
                        agent_id,
                        state: TaskState::Staging,
                        since: utc_now(),
                        kill_sent: None,
                        kill_retry_at: None,
                        unconfirmed: true,
                    },
                );
            }
        }
        r
    }

    // ----- events in -----

    pub fn on_spec(&mut self, ev: InformerEvent) {
        match ev {
            InformerEvent::Reset(entries) => {
                let old: Vec<String> = self.specs.keys().cloned().collect();
                self.specs.clear();
                for e in entries {
                    self.put_spec(e);
                }
                self.specs_listed = true;
                // What happened while the watch was gone is not known: look at everything.
                for key in old
                    .into_iter()
                    .chain(self.specs.keys().cloned().collect::<Vec<_>>())
                {
                    self.mark_all(key);
                }
            }
            InformerEvent::Put(e) => self.put_spec(e),
            InformerEvent::Delete(key) => {
                if let Ok((ns, name)) = split_ns_name(key.as_bytes()) {
                    let key = format!("{ns}/{name}");
                    self.specs.remove(&key);
                    self.mark_all(key);
                }
            }
        }
    }

    fn put_spec(&mut self, e: Entry) {
        match serde_json::from_slice::<Topology>(&e.value) {
            Ok(mut t) => {
                t.metadata.resource_version = Some(e.mod_revision.to_string());
                self.set_spec(t, e.mod_revision);
            }
            Err(err) => {
                tracing::error!(key = %e.key, error = %err, "stored topology is not valid; ignoring it")
            }
        }
    }

    /// Stores a spec and marks what it changed: the operators whose spec differs from
    /// the one known (added and removed ones too), or everything for a new topology, a
    /// deletion or a change outside the operators.
    fn set_spec(&mut self, t: Topology, mod_revision: i64) {
        let key = t.key();
        let changed = self.specs.get(&key).and_then(|old| {
            let old = &old.topology;
            let same_outside = old.metadata.deletion_timestamp.is_none()
                && t.metadata.deletion_timestamp.is_none()
                && same_outside_operators(&old.spec, &t.spec);
            same_outside.then(|| {
                changed_operators(&old.spec.operators, &t.spec.operators)
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
        });
        match changed {
            // Even with no operator changed, the generation in status may be new.
            Some(ops) => {
                for op in ops {
                    self.mark_operator(&key, &op);
                }
                self.mark_status(key.clone());
            }
            None => self.mark_all(key.clone()),
        }
        self.specs.insert(
            key,
            SpecEntry {
                topology: Arc::new(t),
                mod_revision,
            },
        );
    }

    pub fn on_endpoint(&mut self, ev: InformerEvent) {
        let parse = |value: &[u8]| -> Option<(String, bool, Option<String>)> {
            let v: serde_json::Value = serde_json::from_slice(value).ok()?;
            Some((
                v.get("taskId")?.as_str()?.to_owned(),
                v.get("ready").and_then(|r| r.as_bool()).unwrap_or(false),
                v.get("problem")
                    .and_then(|p| p.as_str())
                    .map(|p| p.chars().take(512).collect()),
            ))
        };
        let task_of_key = |key: &str| key.rsplit('/').next().map(str::to_owned);
        match ev {
            InformerEvent::Reset(entries) => {
                let before = std::mem::take(&mut self.ready_tasks);
                let problems_before = std::mem::take(&mut self.task_problems);
                for e in entries {
                    if let Some((id, ready, problem)) = parse(&e.value) {
                        if let Some(p) = problem {
                            self.task_problems.insert(id.clone(), p);
                        }
                        if ready {
                            self.ready_tasks.insert(id);
                        }
                    }
                }
                let mut changed: Vec<String> = before
                    .symmetric_difference(&self.ready_tasks)
                    .cloned()
                    .collect();
                for id in problems_before.keys().chain(self.task_problems.keys()) {
                    if problems_before.get(id) != self.task_problems.get(id) {
                        changed.push(id.clone());
                    }
                }
                changed.sort();
                changed.dedup();
                for id in changed {
                    self.mark_task_dirty(&id);
                }
            }
            InformerEvent::Put(e) => {
                if let Some((id, ready, problem)) = parse(&e.value) {
                    let mut changed = if ready {
                        self.ready_tasks.insert(id.clone())
                    } else {
                        self.ready_tasks.remove(&id)
                    };
                    let old = match &problem {
                        Some(p) => self.task_problems.insert(id.clone(), p.clone()),
                        None => self.task_problems.remove(&id),
                    };
                    changed |= old != problem;
                    if changed {
                        self.mark_task_dirty(&id);
                    }
                }
            }
            InformerEvent::Delete(key) => {
                if let Some(id) = task_of_key(&key) {
                    let was_ready = self.ready_tasks.remove(&id);
                    let had_problem = self.task_problems.remove(&id).is_some();
                    if was_ready || had_problem {
                        self.mark_task_dirty(&id);
                    }
                }
            }
        }
    }

    pub fn on_mesos(&mut self, ev: SchedulerEvent) {
        match ev {
            SchedulerEvent::Subscribed { framework_id, .. } => {
                tracing::info!(framework_id = framework_id.as_str(), "subscribed to Mesos");
                self.subscribed = true;
                // The client re-subscribes with the roles it last suppressed; ask again
                // for what is wanted now rather than trust either side's memory.
                self.offer_mode = OfferMode::Unknown;
                self.offer_mode_retry_at = None;
                self.retries.succeeded("offers");
                self.readiness.set("mesos", Ok(()));
                let _ = self
                    .status_tx
                    .send(StatusWrite::FrameworkId(framework_id.as_str().to_owned()));
                self.start_reconciliation();
            }
            SchedulerEvent::Disconnected { reason } => {
                tracing::warn!(%reason, "disconnected from Mesos");
                self.subscribed = false;
                self.readiness
                    .set("mesos", Err(format!("disconnected: {reason}")));
                if reason.contains("removed") {
                    // Our framework was torn down: start over with a new framework id.
                    self.call(MesosCall::ForgetFrameworkId);
                    let _ = self.status_tx.send(StatusWrite::ClearFrameworkId);
                }
                self.sync = Sync::Waiting;
            }
            SchedulerEvent::Event(event) => {
                if let Some(status) = event.task_status() {
                    self.on_status(status.clone());
                } else if !event.offer_list().is_empty() {
                    self.on_offers(event.offer_list().to_vec());
                } else if let Some(err) = &event.error {
                    tracing::error!(message = %err.message, "Mesos reported an error");
                    if err.message.contains("removed") {
                        self.call(MesosCall::ForgetFrameworkId);
                        let _ = self.status_tx.send(StatusWrite::ClearFrameworkId);
                    }
                } else if let Some(failure) = &event.failure {
                    // The agent's tasks arrive as TASK_LOST/GONE/UNREACHABLE updates.
                    tracing::warn!(
                        agent = failure.agent_id.as_ref().map_or("-", |a| a.as_str()),
                        executor = failure.executor_id.as_ref().map_or("-", |e| e.as_str()),
                        status = ?failure.status,
                        "Mesos reported a lost agent or executor"
                    );
                    if let Some(agent) = &failure.agent_id
                        && failure.executor_id.is_none()
                        && self.hosts.remove(agent.as_str()).is_some()
                    {
                        self.defer_agent(agent.as_str());
                    }
                }
            }
        }
    }

    pub fn on_feedback(&mut self, fb: Feedback) {
        match fb {
            Feedback::LaunchFailed { task_ids, reason } => {
                for id in task_ids {
                    tracing::warn!(task = %id, %reason, "launch failed");
                    if let Some(rec) = self.remove_task(&id) {
                        self.mark_operator(&rec.name.topology_key(), &rec.name.operator);
                    }
                }
            }
            Feedback::KillFailed { task_id, reason } => {
                let Some(rec) = self.tasks.get_mut(&task_id) else {
                    return; // gone meanwhile
                };
                let delay = self.retries.failed(&format!("kill:{task_id}"));
                tracing::warn!(task = %task_id, %reason, retry_in = ?delay, "kill failed; retrying");
                let at = mono_now() + delay;
                rec.kill_retry_at = Some(at);
                let (key, op) = (rec.name.topology_key(), rec.name.operator.clone());
                self.timers.push(Reverse((at, key, Some(op))));
            }
            Feedback::OfferMode { revive, error } => {
                let asked = if revive {
                    OfferMode::Wanted
                } else {
                    OfferMode::Suppressed
                };
                match error {
                    None => {
                        if self.offer_mode == asked {
                            self.retries.succeeded("offers");
                        }
                    }
                    // Only the answer to what was asked last matters.
                    Some(reason) if self.offer_mode == asked => {
                        let delay = self.retries.failed("offers");
                        let call = if revive { "REVIVE" } else { "SUPPRESS" };
                        tracing::warn!(%reason, retry_in = ?delay, "{call} failed; retrying");
                        self.offer_mode = OfferMode::Unknown;
                        let at = mono_now() + delay;
                        self.offer_mode_retry_at = Some(at);
                        self.timers.push(Reverse((at, WAKE.to_owned(), None)));
                    }
                    Some(_) => {}
                }
            }
            Feedback::StatusWritten { key, status } => {
                if self.writing.get(&key) == Some(&status) {
                    self.writing.remove(&key);
                }
                self.retries.succeeded(&format!("status:{key}"));
                // Only a topology still known keeps its memory of what etcd holds.
                if self.specs.contains_key(&key) {
                    self.written.insert(key, status);
                }
            }
            Feedback::StatusWriteFailed {
                key,
                status,
                reason,
            } => {
                if self.writing.get(&key) == Some(&status) {
                    self.writing.remove(&key);
                }
                let delay = self.retries.failed(&format!("status:{key}"));
                tracing::warn!(topology = %key, %reason, retry_in = ?delay, "status write failed; retrying");
                self.timers.push(Reverse((mono_now() + delay, key, None)));
            }
            Feedback::FinalizeFailed { key, reason } => {
                let delay = self.retries.failed(&format!("finalize:{key}"));
                tracing::warn!(topology = %key, %reason, retry_in = ?delay, "removing the topology failed; retrying");
                self.timers.push(Reverse((mono_now() + delay, key, None)));
            }
        }
    }

    pub fn on_command(&mut self, cmd: super::Command) {
        match cmd {
            super::Command::Kill { task_id, reply } => {
                let result = match self.tasks.get(&task_id) {
                    None => Err(format!(
                        "task {task_id} is not running under this controller"
                    )),
                    Some(rec) => {
                        let key = rec.name.topology_key();
                        let op = rec.name.operator.clone();
                        self.kill(&task_id);
                        self.event(
                            &key,
                            Some(&op),
                            "Killed",
                            format!("task {task_id} killed on request; it will be replaced"),
                        );
                        self.mark_operator(&key, &op);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Operators (or topologies) whose timers are due become dirty.
    pub fn fire_timers(&mut self) {
        let now = mono_now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, key, op))) = self.timers.pop() {
                if key == SYNC {
                    self.advance_sync();
                } else if key != WAKE {
                    match op {
                        Some(op) => self.mark_operator(&key, &op),
                        None => self.mark_status(key),
                    }
                }
            }
        }
    }

    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Every known topology is planned again in full.
    fn mark_everything(&mut self) {
        let keys: BTreeSet<String> = self
            .specs
            .keys()
            .chain(self.by_topology.keys())
            .cloned()
            .collect();
        for key in keys {
            self.mark_all(key);
        }
    }

    /// Periodic full resync: every topology is looked at again.
    pub fn resync(&mut self) {
        self.mark_everything();
        // Launches Mesos never answered are asked about explicitly.
        let stale: Vec<ReconcileTask> = self
            .tasks
            .iter()
            .filter(|(_, r)| r.state == TaskState::Staging)
            .map(|(id, r)| reconcile_task(id, r.agent_id.as_deref()))
            .collect();
        if !stale.is_empty() && self.subscribed {
            self.call(MesosCall::Reconcile {
                explicit: stale,
                implicit: false,
            });
        }
    }

    /// Asks Mesos for the state of every task it has for us.
    pub fn implicit_reconcile(&self) {
        if self.subscribed {
            self.call(MesosCall::Reconcile {
                explicit: Vec::new(),
                implicit: true,
            });
        }
    }

    // ----- Mesos task state -----

    fn start_reconciliation(&mut self) {
        let tasks: Vec<ReconcileTask> = self
            .tasks
            .iter()
            .map(|(id, r)| reconcile_task(id, r.agent_id.as_deref()))
            .collect();
        let awaiting: HashSet<String> = self.tasks.keys().cloned().collect();
        self.call(MesosCall::Reconcile {
            explicit: tasks,
            implicit: true,
        });
        let deadline = mono_now() + RECONCILE_WAIT;
        self.sync = Sync::Reconciling { awaiting, deadline };
        self.timers.push(Reverse((deadline, SYNC.into(), None)));
        self.advance_sync();
    }

    fn advance_sync(&mut self) {
        let now = mono_now();
        match &self.sync {
            Sync::Reconciling { awaiting, deadline } if awaiting.is_empty() || *deadline <= now => {
                if !awaiting.is_empty() {
                    tracing::warn!(
                        unanswered = awaiting.len(),
                        "explicit reconciliation timed out; tasks not reported are treated as gone"
                    );
                    let gone: Vec<String> = awaiting.iter().cloned().collect();
                    for id in gone {
                        if self.tasks.get(&id).is_some_and(|r| r.unconfirmed) {
                            self.task_gone(
                                &id,
                                TaskState::Unknown,
                                "not reported by Mesos after a controller restart".into(),
                            );
                        }
                    }
                }
                let until = now + IMPLICIT_GRACE;
                self.sync = Sync::Settling { until };
                self.timers.push(Reverse((until, SYNC.into(), None)));
            }
            Sync::Settling { until } if *until <= now => {
                // Anything still unconfirmed was not reported by the implicit reconciliation either.
                let gone: Vec<String> = self
                    .tasks
                    .iter()
                    .filter(|(_, r)| r.unconfirmed)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    self.task_gone(
                        &id,
                        TaskState::Unknown,
                        "not reported by Mesos after a controller restart".into(),
                    );
                }
                tracing::info!(
                    tasks = self.tasks.len(),
                    "task state reconciled with Mesos; acting"
                );
                self.sync = Sync::Ready;
                self.mark_everything();
            }
            _ => {}
        }
    }

    fn on_status(&mut self, status: TaskStatus) {
        if status.uuid.is_some() {
            self.call(MesosCall::Acknowledge(Box::new(status.clone())));
        }
        let id = status.task_id.as_str().to_owned();
        let Some(name) = TaskName::parse(&id) else {
            tracing::debug!(task = %id, "ignoring a task Concord did not launch");
            return;
        };
        if let Sync::Reconciling { awaiting, .. } = &mut self.sync {
            awaiting.remove(&id);
            if awaiting.is_empty() {
                self.advance_sync();
            }
        }
        let key = name.topology_key();
        let reason = describe_status(&status);
        // An unreachable task counts as gone (DESIGN.md, lesson 1): its instance is
        // replaced; should its agent come back, the duplicate is killed.
        if status.state.is_terminal()
            || matches!(status.state, TaskState::Unknown | TaskState::Unreachable)
        {
            if self.tasks.contains_key(&id) {
                self.task_gone(&id, status.state.clone(), reason);
            }
            self.mark_operator(&key, &name.operator);
            return;
        }
        let now = utc_now();
        let agent_id = status.agent_id.as_ref().map(|a| a.as_str().to_owned());
        let mut started = false;
        match self.tasks.get_mut(&id) {
            Some(rec) => {
                if rec.state != status.state {
                    // A task we saw launch (or start) now runs; a task only known from
                    // stored status that reconciliation reports running was adopted.
                    started = status.state == TaskState::Running && !rec.unconfirmed;
                    rec.since = now;
                    rec.state = status.state.clone();
                }
                rec.unconfirmed = false;
                if agent_id.is_some() {
                    rec.agent_id = agent_id;
                }
            }
            None => {
                tracing::info!(task = %id, state = status.state.as_str(), "adopting a running task");
                self.insert_task(
                    id.clone(),
                    TaskRecord {
                        name: name.clone(),
                        agent_id,
                        state: status.state.clone(),
                        since: now,
                        kill_sent: None,
                        kill_retry_at: None,
                        unconfirmed: false,
                    },
                );
            }
        }
        if status.state == TaskState::Running {
            let ik = InstanceKey {
                topology: key.clone(),
                operator: name.operator.clone(),
                instance: name.instance,
            };
            self.backoff.record_running(ik, &name.template_hash, now);
        }
        if started {
            let host = self
                .tasks
                .get(&id)
                .and_then(|r| r.agent_id.as_ref())
                .and_then(|a| self.hosts.get(a))
                .map_or(String::new(), |h| format!(" on {h}"));
            self.event(
                &key,
                Some(&name.operator),
                "Running",
                format!("task {id} is running{host}"),
            );
        }
        self.mark_operator(&key, &name.operator);
    }

    /// A task ended (or was never there): forget it; an unexpected end starts back-off.
    fn task_gone(&mut self, id: &str, state: TaskState, reason: String) {
        let Some(rec) = self.remove_task(id) else {
            return;
        };
        let key = rec.name.topology_key();
        let expected = rec.kill_sent.is_some();
        let now = utc_now();
        if expected {
            self.event(
                &key,
                Some(&rec.name.operator),
                "Killed",
                format!("task {id} {}", state.as_str()),
            );
        } else {
            let policy = self
                .specs
                .get(&key)
                .and_then(|s| {
                    s.topology
                        .operator(&rec.name.operator)
                        .map(|o| o.restart_backoff)
                })
                .unwrap_or_default();
            let ik = InstanceKey {
                topology: key.clone(),
                operator: rec.name.operator.clone(),
                instance: rec.name.instance,
            };
            let history = self.backoff.record_failure(
                ik,
                &rec.name.template_hash,
                &policy,
                reason.clone(),
                now,
            );
            let until = history.until;
            let restarts = history.restarts;
            self.event(
                &key,
                Some(&rec.name.operator),
                "Failed",
                format!("task {id} {}: {reason}", state.as_str()),
            );
            if let Some(until) = until {
                let wait = (until - now).to_std().unwrap_or_default();
                self.event(
                    &key,
                    Some(&rec.name.operator),
                    "BackOff",
                    format!(
                        "instance {} restarts in {:.1}s (restart {restarts})",
                        rec.name.instance,
                        wait.as_secs_f64()
                    ),
                );
                self.timers.push(Reverse((
                    mono_now() + wait + Duration::from_millis(10),
                    key.clone(),
                    Some(rec.name.operator.clone()),
                )));
            }
        }
        self.mark_operator(&key, &rec.name.operator);
    }

    // ----- offers -----

    fn on_offers(&mut self, offers: Vec<Offer>) {
        for offer in &offers {
            let agent = offer.agent_id.as_str();
            if self.hosts.get(agent) != Some(&offer.hostname) {
                self.hosts.insert(agent.to_owned(), offer.hostname.clone());
                self.defer_agent(agent);
            }
        }
        let acting = matches!(self.sync, Sync::Ready);
        let mut queue: Vec<LaunchRequest> = if acting {
            self.pending.values().flatten().cloned().collect()
        } else {
            Vec::new()
        };
        let mut placed_keys = BTreeSet::new();
        for offer in offers {
            let mut space = OfferSpace::of(&offer);
            let mut infos = Vec::new();
            let mut i = 0;
            while i < queue.len() {
                let req = &queue[i];
                let fits = space.fits(req)
                    && attributes_match(&req.operator, &offer)
                    && (!req.operator.placement.one_instance_per_host
                        || !self.operator_on_host(req, &offer));
                if !fits {
                    i += 1;
                    continue;
                }
                let req = queue.remove(i);
                let (name, info) = task_info(&req, &offer, &mut space, &self.config.launch);
                let id = name.to_string();
                let key = name.topology_key();
                self.insert_task(
                    id.clone(),
                    TaskRecord {
                        name,
                        agent_id: Some(offer.agent_id.as_str().to_owned()),
                        state: TaskState::Staging,
                        since: utc_now(),
                        kill_sent: None,
                        kill_retry_at: None,
                        unconfirmed: false,
                    },
                );
                if let Some(since) = self.pending_since.get_mut(&key) {
                    since.remove(&(req.operator.name.clone(), req.instance));
                }
                self.event(
                    &key,
                    Some(&req.operator.name),
                    "Launched",
                    format!("task {id} on {}", offer.hostname),
                );
                placed_keys.insert(key);
                infos.push(info);
            }
            if infos.is_empty() {
                // Nothing wanted: decline for long (SUPPRESS follows; REVIVE clears the
                // filter). Still syncing or waiting for a fit: decline briefly.
                let refuse_seconds = if acting && queue.is_empty() {
                    REFUSE_UNWANTED
                } else {
                    REFUSE_BRIEFLY
                };
                self.call(MesosCall::Decline {
                    offer_id: offer.id,
                    refuse_seconds,
                });
            } else {
                self.call(MesosCall::Launch {
                    offer_id: offer.id,
                    tasks: infos,
                    refuse_seconds: REFUSE_BRIEFLY,
                });
            }
        }
        // What could not be placed stays pending; the next reconcile of the operators
        // that waited recomputes it.
        for key in &placed_keys {
            if let Some(requests) = self.pending.remove(key) {
                let ops: BTreeSet<String> =
                    requests.iter().map(|r| r.operator.name.clone()).collect();
                for op in ops {
                    self.mark_operator(key, &op);
                }
            }
            self.unfit.remove(key);
        }
        for req in &queue {
            let key = format!("{}/{}", req.namespace, req.topology);
            self.unfit.entry(key.clone()).or_insert_with(|| {
                format!(
                    "operator {} needs {} per instance and no offer fits",
                    req.operator.name,
                    describe_needs(&req.operator)
                )
            });
        }
    }

    /// Whether a task of `req`'s operator already runs on the offer's host: on the same
    /// agent, or on another agent with the same hostname (several agents on one machine
    /// are one host).
    fn operator_on_host(&self, req: &LaunchRequest, offer: &Offer) -> bool {
        let key = format!("{}/{}", req.namespace, req.topology);
        let agent = offer.agent_id.as_str();
        self.operator_tasks(&key, &req.operator.name)
            .is_some_and(|ids| {
                ids.iter()
                    .filter_map(|id| self.tasks.get(id))
                    .filter(|r| r.name.operator == req.operator.name)
                    .filter_map(|r| r.agent_id.as_deref())
                    .any(|a| {
                        a == agent
                            || self
                                .hosts
                                .get(a)
                                .is_some_and(|h| h.eq_ignore_ascii_case(&offer.hostname))
                    })
            })
    }

    // ----- reconcile -----

    /// Reconciles every dirty key, if the state is trustworthy enough to act.
    pub fn process_dirty(&mut self) {
        self.metrics.queue_depth.set(self.dirty.len() as i64);
        if !self.specs_listed || !matches!(self.sync, Sync::Ready) {
            return;
        }
        let keys = std::mem::take(&mut self.dirty);
        for (key, dirty) in keys {
            let started = std::time::Instant::now();
            self.reconcile(&key, dirty);
            self.metrics
                .reconcile_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        self.metrics.queue_depth.set(0);
        self.metrics.tasks.set(self.tasks.len() as i64);
        self.metrics.topologies.set(self.specs.len() as i64);
        self.update_offer_mode();
    }

    /// REVIVE when launches wait for offers, SUPPRESS when none do; each only when the
    /// master was not already asked for it (and not before a failed one's back-off).
    fn update_offer_mode(&mut self) {
        if !self.subscribed || self.offer_mode_retry_at.is_some_and(|at| at > mono_now()) {
            return;
        }
        self.offer_mode_retry_at = None;
        let want_offers = !self.pending.is_empty();
        if want_offers && self.offer_mode != OfferMode::Wanted {
            self.offer_mode = OfferMode::Wanted;
            self.call(MesosCall::Revive);
        } else if !want_offers && self.offer_mode != OfferMode::Suppressed {
            self.offer_mode = OfferMode::Suppressed;
            self.call(MesosCall::Suppress);
        }
    }

    /// One pass over a topology: plans the operators in `dirty` (all of them on a full
    /// pass), keeps the others' last plans, then assembles the status from the
    /// per-operator parts and hands it to the writer if etcd does not hold it yet.
    fn reconcile(&mut self, key: &str, dirty: Dirty) {
        let now = utc_now();
        let Some(spec) = self.specs.get(key).cloned() else {
            // Topology gone from etcd: nothing of it may keep running.
            for id in self.topology_task_ids(key) {
                self.kill(&id);
            }
            self.pending.remove(key);
            self.pending_since.remove(key);
            self.unfit.remove(key);
            self.backoff.forget(key, None);
            self.events.remove(key);
            self.last_status.remove(key);
            self.written.remove(key);
            self.writing.remove(key);
            self.plans.remove(key);
            self.deferred.remove(key);
            self.retries.succeeded(&format!("status:{key}"));
            self.retries.succeeded(&format!("finalize:{key}"));
            self.last_stable.remove(key);
            self.instances.remove(key);
            self.progress.retain(|(k, _), _| k != key);
            return;
        };
        let t = spec.topology.clone();
        let deleting = t.metadata.deletion_timestamp.is_some();
        let generation = t.metadata.generation.unwrap_or(0);
        let mut plans = self.plans.remove(key).unwrap_or_default();
        let deferred = self.deferred.remove(key).unwrap_or_default();

        // What to plan: everything on a full pass; otherwise the operators marked, those
        // riding along (deferred, or with a back-off reset due), and spec operators
        // never planned.
        let full = deleting || matches!(dirty, Dirty::All) || plans.is_empty();
        let with_tasks: Vec<String> = self
            .by_topology
            .get(key)
            .map(|ops| ops.keys().cloned().collect())
            .unwrap_or_default();
        let marked: BTreeSet<String> = match dirty {
            _ if full => t
                .spec
                .operators
                .iter()
                .map(|o| o.name.clone())
                .chain(with_tasks.iter().cloned())
                .collect(),
            Dirty::All => BTreeSet::new(),
            Dirty::Operators(mut ops) => {
                ops.extend(deferred);
                ops.extend(
                    self.backoff
                        .due_resets(key, now, |op| t.operator(op).map(|o| &o.restart_backoff)),
                );
                ops.extend(
                    t.spec
                        .operators
                        .iter()
                        .filter(|o| !plans.contains_key(&o.name))
                        .map(|o| o.name.clone()),
                );
                ops
            }
        };

        // Kills not answered (or failed) are sent again; tasks of operators no longer
        // in the spec (every task, when deleting) are killed.
        let ids: Vec<String> = marked
            .iter()
            .filter_map(|op| self.operator_tasks(key, op))
            .flatten()
            .cloned()
            .collect();
        self.resend_due_kills(&ids);
        for id in &ids {
            if let Some(rec) = self.tasks.get(id)
                && (deleting || t.operator(&rec.name.operator).is_none())
            {
                let op = rec.name.operator.clone();
                if self.kill(id) && !deleting {
                    self.event(
                        key,
                        Some(&op),
                        "Killed",
                        format!("task {id}: operator removed from the spec"),
                    );
                }
            }
        }

        let previous_instances = self.instances.remove(key);
        let mut current_instances = if full {
            BTreeMap::new()
        } else {
            previous_instances.clone().unwrap_or_default()
        };
        let mut requests_changed = full;
        for op in t.spec.operators.iter().filter(|o| marked.contains(&o.name)) {
            let before = previous_instances
                .as_ref()
                .and_then(|p| p.get(&op.name))
                .copied();
            let mut plan = self.plan_operator(key, &t, op, deleting, before, now);
            if !deleting {
                current_instances.insert(op.name.clone(), plan.view.status.desired);
            }
            match plans.get(&op.name) {
                Some(old) => {
                    requests_changed |= !same_requests(&old.requests, &plan.requests);
                    // Unchanged: keep the part etcd's copy shares, so comparing the
                    // assembled document stays a pointer comparison for it.
                    if old.view.status == plan.view.status {
                        plan.view.status = old.view.status.clone();
                    }
                }
                None => requests_changed = true,
            }
            plans.insert(op.name.clone(), plan);
        }
        // Operators gone from the spec leave the status.
        let before = plans.len();
        plans.retain(|name, _| t.operator(name).is_some());
        requests_changed |= plans.len() != before;
        current_instances.retain(|name, _| t.operator(name).is_some());

        if !deleting {
            self.instances.insert(key.to_owned(), current_instances);
        }
        let waiting = plans.values().any(|p| !p.requests.is_empty());
        if !waiting {
            self.pending.remove(key);
            self.unfit.remove(key);
            self.pending_since.remove(key);
        } else if requests_changed || !self.pending.contains_key(key) {
            // In spec order, as offers are matched in this order.
            let requests = t
                .spec
                .operators
                .iter()
                .filter_map(|o| plans.get(&o.name))
                .flat_map(|p| p.requests.iter().cloned())
                .collect();
            self.pending.insert(key.to_owned(), requests);
        }

        if deleting {
            let remaining = self
                .by_topology
                .get(key)
                .map_or(0, |ops| ops.values().map(BTreeSet::len).sum());
            if remaining == 0 {
                tracing::info!(topology = %key, "all tasks gone; removing the topology");
                let _ = self.status_tx.send(StatusWrite::Finalize {
                    ns: t.metadata.namespace.clone(),
                    name: t.metadata.name.clone(),
                    mod_revision: spec.mod_revision,
                });
            }
            return;
        }

        let views: Vec<&OperatorView> = t
            .spec
            .operators
            .iter()
            .filter_map(|o| plans.get(&o.name).map(|p| &p.view))
            .collect();
        let (previous_conditions, previous_stable) = self
            .last_status
            .get(key)
            .map(|s| (s.conditions.clone(), s.last_stable_generation))
            .unwrap_or_default();
        let unfit = self.unfit.get(key).cloned();
        let conditions = build_conditions(&views, unfit.as_deref(), &previous_conditions, now);
        let all_ready = views.iter().all(|v| v.complete);
        let operators: Vec<Arc<OperatorStatus>> = views.iter().map(|v| v.status.clone()).collect();
        self.plans.insert(key.to_owned(), plans);
        if let Some(msg) = &unfit
            && !previous_conditions
                .iter()
                .any(|c| c.reason == "InsufficientResources")
        {
            self.event(key, None, "InsufficientResources", msg.clone());
        }
        let mut last_stable = self.last_stable.get(key).copied().or(previous_stable);
        if all_ready && last_stable != Some(generation) {
            last_stable = Some(generation);
            self.last_stable.insert(key.to_owned(), generation);
            self.event(
                key,
                None,
                "Ready",
                format!("generation {generation} is ready"),
            );
            let _ = self.status_tx.send(StatusWrite::StableSpec {
                ns: t.metadata.namespace.clone(),
                name: t.metadata.name.clone(),
                spec: t.clone(),
            });
        }
        let status = StatusDoc {
            observed_generation: generation,
            conditions,
            operators,
            last_stable_generation: last_stable,
            events: self
                .events
                .get(key)
                .map(|e| e.iter().cloned().collect())
                .unwrap_or_default(),
        };
        self.last_status.insert(key.to_owned(), status.clone());
        // Written only when etcd does not hold it yet and it is not on its way there; a
        // failed write leaves `written` as it was, so the retry sends it again.
        if self.written.get(key) != Some(&status) && self.writing.get(key) != Some(&status) {
            self.writing.insert(key.to_owned(), status.clone());
            let _ = self.status_tx.send(StatusWrite::Put {
                ns: t.metadata.namespace.clone(),
                name: t.metadata.name.clone(),
                status,
            });
        }
    }

    /// Plans one operator: sends its kills, returns the launches it waits for and its
    /// part of the status, and sets the timers that bring it back (deadline, back-off,
    /// a launch that finds no offer). Costs O(this operator's tasks).
    fn plan_operator(
        &mut self,
        key: &str,
        t: &Topology,
        op: &OperatorSpec,
        deleting: bool,
        before: Option<u32>,
        now: DateTime<Utc>,
    ) -> OperatorPlan {
        self.stats.operators_planned += 1;
        let hash = template_hash(op);
        let instances = if deleting { 0 } else { op.instances };
        if !deleting
            && let Some(before) = before
            && instances > before
        {
            self.event(
                key,
                Some(&op.name),
                "ScaledUp",
                format!("scaling from {before} to {instances} instances"),
            );
        }
        let desired = Desired {
            instances,
            template_hash: hash.clone(),
            max_surge: op.update_strategy.max_surge,
            max_unavailable: op.update_strategy.max_unavailable,
        };
        let live: Vec<LiveTask> = self
            .operator_tasks(key, &op.name)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id).map(|r| (id, r)))
            .map(|(id, r)| LiveTask {
                task_id: id.clone(),
                instance: r.name.instance,
                template_hash: r.name.template_hash.clone(),
                phase: if r.kill_sent.is_some() || r.state == TaskState::Killing {
                    Phase::Terminating
                } else if r.state == TaskState::Running {
                    Phase::Running
                } else {
                    Phase::Starting
                },
                ready: r.state == TaskState::Running && self.is_ready(id),
            })
            .collect();
        self.backoff
            .maintain_operator(key, &op.name, instances, &hash, &op.restart_backoff, now);
        let actions = plan_operator(&desired, &live, |i| {
            self.backoff
                .history(key, &op.name, i)
                .and_then(|h| h.until)
                .is_some_and(|u| u > now)
        });

        let has_old = live
            .iter()
            .any(|l| l.template_hash != hash && l.phase != Phase::Terminating);
        for id in &actions.kill {
            let surplus = live
                .iter()
                .any(|l| &l.task_id == id && l.instance >= instances);
            if self.kill(id) && !deleting {
                let (reason, why) = if surplus {
                    ("ScaledDown", "scaled down")
                } else if has_old {
                    ("RollingUpdate", "replaced by the new template")
                } else {
                    ("Killed", "duplicate of another task")
                };
                self.event(
                    key,
                    Some(&op.name),
                    reason,
                    format!("killing task {id}: {why}"),
                );
            }
        }
        let op_arc = Arc::new(op.clone());
        let mut requests = Vec::new();
        for &i in &actions.launch {
            let since = *self
                .pending_since
                .entry(key.to_owned())
                .or_default()
                .entry((op.name.clone(), i))
                .or_insert_with(mono_now);
            if mono_now().duration_since(since) >= UNFIT_AFTER {
                self.unfit.entry(key.to_owned()).or_insert_with(|| {
                    format!(
                        "operator {} needs {} per instance; no offer has fit for {}s",
                        op.name,
                        describe_needs(op),
                        UNFIT_AFTER.as_secs()
                    )
                });
            }
            requests.push(LaunchRequest {
                namespace: t.metadata.namespace.clone(),
                topology: t.metadata.name.clone(),
                operator: op_arc.clone(),
                instance: i,
                template_hash: hash.clone(),
                delivery: t.spec.delivery,
            });
        }
        let mut next_check: Option<DateTime<Utc>> = None;
        for &i in &actions.backing_off {
            if let Some(until) = self.backoff.history(key, &op.name, i).and_then(|h| h.until) {
                next_check = Some(next_check.map_or(until, |c| c.min(until)));
            }
        }

        // Status of this operator.
        let running = live.iter().filter(|l| l.phase == Phase::Running).count() as u32;
        let updated = live
            .iter()
            .filter(|l| l.phase == Phase::Running && l.template_hash == hash)
            .count() as u32;
        let ready = live
            .iter()
            .filter(|l| l.ready && l.template_hash == hash && l.instance < instances)
            .count() as u32;
        let complete = ready == instances
            && live.len() as u32 == instances
            && live.iter().all(|l| l.template_hash == hash);
        // Progress is more ready instances of the current template (as Kubernetes counts
        // it): a task that starts and crashes again is not progress.
        let fingerprint = format!("{hash}/{instances}/{ready}");
        let progress = self
            .progress
            .entry((key.to_owned(), op.name.clone()))
            .or_insert(Progress {
                fingerprint: fingerprint.clone(),
                since: now,
            });
        if progress.fingerprint != fingerprint {
            *progress = Progress {
                fingerprint,
                since: now,
            };
        }
        let deadline =
            progress.since + chrono::Duration::seconds(i64::from(op.progress_deadline_seconds));
        let deadline_exceeded = !complete && now >= deadline;
        if !complete && !deadline_exceeded {
            next_check = Some(next_check.map_or(deadline, |c| c.min(deadline)));
        }
        let histories = self.backoff.operator(key, &op.name);
        let history = |i: u32| histories.and_then(|h| h.get(&i));
        let crash_looping: Vec<u32> = match histories {
            // Only instances with a history can be in a crash loop.
            Some(h) => h
                .iter()
                .filter(|(i, h)| **i < instances && h.crash_looping(now))
                .map(|(i, _)| *i)
                .collect(),
            None => Vec::new(),
        };
        let mut tasks: Vec<TaskSummary> = live
            .iter()
            .filter_map(|l| self.tasks.get(&l.task_id).map(|r| (l, r)))
            .map(|(l, r)| {
                let history = history(l.instance);
                TaskSummary {
                    task_id: l.task_id.clone(),
                    instance: l.instance,
                    template_hash: l.template_hash.clone(),
                    state: r.state.as_str().to_owned(),
                    agent_id: r.agent_id.clone(),
                    host: r.agent_id.as_ref().and_then(|a| self.hosts.get(a).cloned()),
                    since: Some(r.since),
                    restarts: history.map_or(0, |h| h.restarts),
                    last_exit_reason: history.and_then(|h| h.last_exit_reason.clone()),
                    backoff_until: None,
                    problem: self.task_problems.get(&l.task_id).cloned(),
                }
            })
            .collect();
        // Instances waiting in back-off have no task; show them too.
        for &i in &actions.backing_off {
            if let Some(h) = history(i) {
                tasks.push(TaskSummary {
                    task_id: String::new(),
                    instance: i,
                    template_hash: hash.clone(),
                    state: "BackOff".into(),
                    restarts: h.restarts,
                    last_exit_reason: h.last_exit_reason.clone(),
                    backoff_until: h.until,
                    ..Default::default()
                });
            }
        }
        tasks.sort_by(|a, b| (a.instance, &a.task_id).cmp(&(b.instance, &b.task_id)));
        self.stats.tasks_summarised += tasks.len() as u64;

        if !requests.is_empty() {
            self.timers.push(Reverse((
                mono_now() + UNFIT_AFTER,
                key.to_owned(),
                Some(op.name.clone()),
            )));
        }
        if !deleting && let Some(at) = next_check {
            let wait = (at - now).to_std().unwrap_or_default() + Duration::from_millis(20);
            self.timers.push(Reverse((
                mono_now() + wait,
                key.to_owned(),
                Some(op.name.clone()),
            )));
        }
        let problems = tasks
            .iter()
            .filter_map(|t| {
                t.problem
                    .as_ref()
                    .map(|p| format!("{}[{}]: {p}", op.name, t.instance))
            })
            .collect();
        OperatorPlan {
            view: OperatorView {
                status: Arc::new(OperatorStatus {
                    name: op.name.clone(),
                    desired: instances,
                    running,
                    updated,
                    ready,
                    template_hash: hash,
                    tasks,
                }),
                complete,
                deadline_exceeded,
                crash_looping,
                rolling: has_old,
                backing_off: !actions.backing_off.is_empty(),
                problems,
            },
            requests,
        }
    }

    fn is_ready(&self, id: &str) -> bool {
        match self.config.readiness {
            ReadinessMode::Running => true,
            ReadinessMode::Endpoint => self.ready_tasks.contains(id),
        }
    }

    /// Sends a kill unless one is in flight. Returns whether this is the task's first.
    fn kill(&mut self, id: &str) -> bool {
        if !self.tasks.get(id).is_some_and(|r| r.kill_due(mono_now())) {
            return false;
        }
        self.send_kill(id)
    }

    /// Sends a KILL now; returns whether it is the task's first. A kill the master does
    /// not answer with a terminal update within [`KILL_RESEND`] is sent again, and a
    /// failed one after a back-off ([`Feedback::KillFailed`]).
    fn send_kill(&mut self, id: &str) -> bool {
        let Some(rec) = self.tasks.get_mut(id) else {
            return false;
        };
        let now = mono_now();
        let first = rec.kill_sent.is_none();
        rec.kill_sent = Some(now);
        rec.kill_retry_at = None;
        let agent_id = rec.agent_id.clone();
        let key = rec.name.topology_key();
        let op = rec.name.operator.clone();
        self.timers
            .push(Reverse((now + KILL_RESEND, key, Some(op))));
        self.call(MesosCall::Kill {
            task_id: id.to_owned(),
            agent_id,
        });
        first
    }

    /// Sends again the kills that failed (once their back-off ended) or that Mesos has
    /// not answered for [`KILL_RESEND`].
    fn resend_due_kills(&mut self, ids: &[String]) {
        let now = mono_now();
        let due: Vec<String> = ids
            .iter()
            .filter(|id| {
                self.tasks
                    .get(id.as_str())
                    .is_some_and(|r| r.kill_sent.is_some() && r.kill_due(now))
            })
            .cloned()
            .collect();
        for id in due {
            tracing::info!(task = %id, "sending the kill again");
            self.send_kill(&id);
        }
    }

    fn call(&self, call: MesosCall) {
        let _ = self.calls_tx.send(call);
    }

    fn event(&mut self, key: &str, operator: Option<&str>, reason: &str, message: String) {
        tracing::info!(topology = %key, operator = operator.unwrap_or("-"), %reason, %message, "event");
        let events = self.events.entry(key.to_owned()).or_default();
        events.push_back(Event {
            time: utc_now(),
            reason: reason.to_owned(),
            operator: operator.map(str::to_owned),
            message,
        });
        while events.len() > MAX_EVENTS {
            events.pop_front();
        }
    }

    /// The topology of task `id` is looked at again, for that task's operator.
    fn mark_task_dirty(&mut self, id: &str) {
        if let Some(name) = TaskName::parse(id) {
            self.mark_operator(&name.topology_key(), &name.operator);
        }
    }

    /// `key` is planned in full on its next pass.
    fn mark_all(&mut self, key: String) {
        self.dirty.insert(key, Dirty::All);
    }

    /// Operator `op` of `key` is planned on the topology's next pass.
    fn mark_operator(&mut self, key: &str, op: &str) {
        match self.dirty.get_mut(key) {
            Some(Dirty::All) => {}
            Some(Dirty::Operators(ops)) => {
                if !ops.contains(op) {
                    ops.insert(op.to_owned());
                }
            }
            None => {
                self.dirty.insert(
                    key.to_owned(),
                    Dirty::Operators(BTreeSet::from([op.to_owned()])),
                );
            }
        }
    }

    /// `key` gets a pass, planning nothing unless something else is marked.
    fn mark_status(&mut self, key: String) {
        self.dirty
            .entry(key)
            .or_insert_with(|| Dirty::Operators(BTreeSet::new()));
    }

    /// The host name of `agent` changed: the operators with tasks there show it from
    /// their topology's next pass on, as a full pass would (no pass of its own).
    /// O(tasks), but only when an agent appears, is renamed or is lost.
    fn defer_agent(&mut self, agent: &str) {
        for rec in self.tasks.values() {
            if rec.agent_id.as_deref() == Some(agent) {
                self.deferred
                    .entry(rec.name.topology_key())
                    .or_default()
                    .insert(rec.name.operator.clone());
            }
        }
    }

    /// Task IDs of one operator of topology `key`.
    fn operator_tasks(&self, key: &str, op: &str) -> Option<&BTreeSet<String>> {
        self.by_topology.get(key)?.get(op)
    }

    /// Every task ID of topology `key`.
    fn topology_task_ids(&self, key: &str) -> Vec<String> {
        self.by_topology
            .get(key)
            .into_iter()
            .flat_map(|ops| ops.values().flatten().cloned())
            .collect()
    }

    fn insert_task(&mut self, id: String, rec: TaskRecord) {
        self.by_topology
            .entry(rec.name.topology_key())
            .or_default()
            .entry(rec.name.operator.clone())
            .or_default()
            .insert(id.clone());
        self.tasks.insert(id, rec);
    }

    fn remove_task(&mut self, id: &str) -> Option<TaskRecord> {
        let rec = self.tasks.remove(id)?;
        if rec.kill_sent.is_some() {
            self.retries.succeeded(&format!("kill:{id}"));
        }
        let key = rec.name.topology_key();
        if let Some(ops) = self.by_topology.get_mut(&key) {
            if let Some(set) = ops.get_mut(&rec.name.operator) {
                set.remove(id);
                if set.is_empty() {
                    ops.remove(&rec.name.operator);
                }
            }
            if ops.is_empty() {
                self.by_topology.remove(&key);
            }
        }
        Some(rec)
    }
}

/// Whether two specs agree on everything but their operators (listed field by field,
/// so a new topology-wide field cannot be missed here).
fn same_outside_operators(a: &TopologySpec, b: &TopologySpec) -> bool {
    let TopologySpec {
        operators: _,
        delivery,
    } = a;
    *delivery == b.delivery
}

/// Names of the operators whose spec differs between `old` and `new`, added and removed
/// ones included. Every field counts: whatever is not in the template hash (instances,
/// rollout, back-off, deadline) still shapes the plan or the status.
fn changed_operators<'a>(old: &'a [OperatorSpec], new: &'a [OperatorSpec]) -> BTreeSet<&'a str> {
    let before: HashMap<&str, &OperatorSpec> = old.iter().map(|o| (o.name.as_str(), o)).collect();
    let after: HashMap<&str, &OperatorSpec> = new.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut changed: BTreeSet<&str> = new
        .iter()
        .filter(|o| before.get(o.name.as_str()) != Some(o))
        .map(|o| o.name.as_str())
        .collect();
    changed.extend(
        old.iter()
            .map(|o| o.name.as_str())
            .filter(|n| !after.contains_key(n)),
    );
    changed
}

/// Whether two operators' launch requests are the same launches.
fn same_requests(a: &[LaunchRequest], b: &[LaunchRequest]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.instance == y.instance && x.template_hash == y.template_hash)
}

fn reconcile_task(id: &str, agent: Option<&str>) -> ReconcileTask {
    ReconcileTask {
        task_id: TaskId::new(id.to_owned()),
        agent_id: agent.map(AgentId::new),
    }
}

/// `TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): Command exited with status 1`
fn describe_status(s: &TaskStatus) -> String {
    let mut out = s.state.as_str().to_owned();
    if let Some(reason) = &s.reason {
        out.push_str(&format!(" ({})", reason.as_str()));
    }
    if let Some(msg) = s.message.as_deref().filter(|m| !m.is_empty()) {
        out.push_str(&format!(": {msg}"));
    }
    out
}

/// Benchmark support: state injected as if etcd had listed it and Mesos had reported
/// every task RUNNING and ready, so the real reconcile code can be timed at sizes no
/// test machine can run as processes.
#[doc(hidden)]
impl Reconciler {
    pub fn bench_insert(&mut self, t: Topology, mod_revision: i64) {
        let key = t.key();
        let now = utc_now();
        for op in &t.spec.operators {
            let hash = template_hash(op);
            for i in 0..op.instances {
                let name =
                    TaskName::new(&t.metadata.namespace, &t.metadata.name, &op.name, i, &hash);
                let id = name.to_string();
                self.ready_tasks.insert(id.clone());
                self.insert_task(
                    id,
                    TaskRecord {
                        name,
                        agent_id: Some("S0".into()),
                        state: TaskState::Running,
                        since: now,
                        kill_sent: None,
                        kill_retry_at: None,
                        unconfirmed: false,
                    },
                );
            }
        }
        self.specs.insert(
            key.clone(),
            SpecEntry {
                topology: Arc::new(t),
                mod_revision,
            },
        );
        self.specs_listed = true;
        self.sync = Sync::Ready;
        self.mark_all(key);
    }

    /// Replaces a spec as a watch event would, marking what changed.
    pub fn bench_update(&mut self, t: Topology, mod_revision: i64) {
        self.set_spec(t, mod_revision);
    }

    /// Work done by passes so far.
    pub fn bench_stats(&self) -> PassStats {
        self.stats
    }

    /// The status last assembled for `key`.
    pub fn bench_status(&self, key: &str) -> Option<&StatusDoc> {
        self.last_status.get(key)
    }

    /// Number of tasks tracked.
    pub fn bench_tasks(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
