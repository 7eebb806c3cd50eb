//! The reconciler: keeps every topology's tasks on Mesos equal to its spec.
//!
//! One task owns all state (no locks): it receives spec changes (etcd informer),
//! Mesos events, executor readiness (etcd endpoints) and timers, marks the affected
//! topology keys dirty (a de-duplicating queue), and reconciles each dirty key:
//! desired vs observed -> kills now, launches when a fitting offer arrives, status
//! written through a single writer only when it changed. Level-triggered: any event
//! only says "look at this topology again".
//!
//! Before acting after a (re)start it has listed every spec and reconciled task state
//! with Mesos (explicitly for the tasks it knew, then implicitly), so running tasks are
//! adopted, never restarted (DESIGN.md, lesson 2).

pub mod backoff;
pub mod calls;
pub mod identity;
pub mod informer;
pub mod launch;
pub mod planner;
mod state;
mod status;

use std::collections::VecDeque;
use std::time::Duration;

use mesos_v1::{
    FrameworkCapability, FrameworkCapabilityType, FrameworkId, FrameworkInfo, Scheduler,
    SchedulerConfig,
};
use tokio::sync::mpsc;

pub use launch::LaunchSettings;

use crate::readiness::Readiness;
use crate::store::Store;
use state::{Outputs, Reconciler, Restored};

/// When a task counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadinessMode {
    /// Running and its executor's endpoint in etcd says `ready: true`.
    Endpoint,
    /// As soon as Mesos reports TASK_RUNNING.
    Running,
}

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub mesos_master: String,
    pub framework_name: String,
    pub role: String,
    pub principal: Option<String>,
    pub secret: Option<String>,
    /// Seconds Mesos keeps our tasks while we are disconnected.
    pub failover_timeout: f64,
    /// Full resync of every topology.
    pub resync: Duration,
    pub readiness: ReadinessMode,
    pub launch: LaunchSettings,
    pub hostname: String,
    pub webui_url: Option<String>,
}

/// Key of the stored framework ID.
fn framework_id_key(store: &Store) -> String {
    format!("{}/framework-id", store.prefix())
}

async fn load_framework_id(store: &Store) -> Option<FrameworkId> {
    let key = framework_id_key(store);
    let resp = retry_etcd("read the framework id", || {
        let mut client = store.client();
        let key = key.clone();
        async move { client.get(key, None).await.map_err(crate::StoreError::from) }
    })
    .await;
    resp.kvs()
        .first()
        .map(|kv| FrameworkId::new(String::from_utf8_lossy(kv.value()).into_owned()))
}

/// Retries a start-up read until etcd answers (with back-off up to 10 s): the
/// controller waits for etcd rather than exiting, and serves the API meanwhile.
async fn retry_etcd<T, F, Fut>(what: &str, mut read: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::StoreError>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match read().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot {what} from etcd; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Requests from the API to the reconciler.
#[derive(Debug)]
pub enum Command {
    /// Kill one task now; the reconciler replaces it.
    Kill {
        task_id: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

/// Runs the reconciler until the process ends.
pub async fn run(
    store: Store,
    config: ReconcilerConfig,
    readiness: Readiness,
    mut commands: mpsc::Receiver<Command>,
    metrics: crate::metrics::Metrics,
) {
    readiness.set("mesos", Err("not subscribed yet".into()));
    let framework_id = load_framework_id(&store).await;
    let mut info = FrameworkInfo::new("root", config.framework_name.clone());
    info.id = framework_id.clone();
    info.roles = vec![config.role.clone()];
    info.failover_timeout = config.failover_timeout;
    info.checkpoint = true;
    info.hostname = Some(config.hostname.clone());
    info.webui_url = config.webui_url.clone();
    info.principal = config.principal.clone();
    info.capabilities = [
        FrameworkCapabilityType::MultiRole,
        FrameworkCapabilityType::PartitionAware,
        FrameworkCapabilityType::TaskKillingState,
    ]
    .into_iter()
    .map(|t| FrameworkCapability { r#type: t })
    .collect();
    let mut sched_config = SchedulerConfig::new(config.mesos_master.clone(), info);
    if let (Some(p), Some(s)) = (&config.principal, &config.secret) {
        sched_config = sched_config.with_credentials(p.clone(), s.clone());
    }
    let (handle, mut events) = Scheduler::start(sched_config);
    tracing::info!(master = %config.mesos_master, framework_id = ?framework_id.as_ref().map(|f| f.as_str().to_owned()), "subscribing to Mesos");

    let (spec_tx, mut spec_rx) = mpsc::channel(1024);
    tokio::spawn(informer::run(
        store.client(),
        store.spec_prefix(None),
        spec_tx,
    ));
    let (ep_tx, mut ep_rx) = mpsc::channel(1024);
    tokio::spawn(informer::run(
        store.client(),
        format!("{}/endpoints/", store.prefix()),
        ep_tx,
    ));
    let (feedback_tx, mut feedback_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_statuses(
        store.clone(),
        status_rx,
        feedback_tx.clone(),
    ));
    let (calls_tx, calls_rx) = mpsc::unbounded_channel();
    tokio::spawn(calls::dispatch(
        handle,
        store.clone(),
        calls_rx,
        feedback_tx,
    ));

    let mut r = Reconciler::new(
        config.clone(),
        Outputs {
            calls_tx,
            status_tx,
            metrics,
        },
        readiness,
        stored_state(&store).await,
    );
    let mut resync = tokio::time::interval(config.resync);
    resync.tick().await;
    let mut implicit = tokio::time::interval(Duration::from_secs(15 * 60));
    implicit.tick().await;
    loop {
        let next_timer = r.next_timer();
        tokio::select! {
            Some(ev) = spec_rx.recv() => r.on_spec(ev),
            Some(ev) = ep_rx.recv() => r.on_endpoint(ev),
            ev = events.recv() => match ev {
                Some(ev) => r.on_mesos(ev),
                None => {
                    tracing::error!("Mesos scheduler client stopped");
                    return;
                }
            },
            Some(fb) = feedback_rx.recv() => r.on_feedback(fb),
            Some(cmd) = commands.recv() => r.on_command(cmd),
            _ = sleep_until(next_timer) => r.fire_timers(),
            _ = resync.tick() => r.resync(),
            _ = implicit.tick() => r.implicit_reconcile(),
        }
        r.process_dirty();
    }
}

async fn sleep_until(when: Option<tokio::time::Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Tasks recorded in stored status (reconciled explicitly with Mesos after a restart)
/// and each topology's event log, so a restart loses neither.
async fn stored_state(store: &Store) -> Restored {
    let (items, _) = retry_etcd("list topologies", || store.list(None)).await;
    let mut restored = Restored::default();
    for t in items {
        let key = t.key();
        let Some(status) = t.status else { continue };
        restored.instances.insert(
            key.clone(),
            status
                .operators
                .iter()
                .map(|o| (o.name.clone(), o.desired))
                .collect(),
        );
        restored.events.insert(key, status.events);
        restored.tasks.extend(
            status
                .operators
                .into_iter()
                .flat_map(|o| o.tasks)
                .filter(|t| !t.task_id.is_empty())
                .map(|t| (t.task_id, t.agent_id)),
        );
    }
    restored
}

/// The single status writer: writes happen in the order they were asked for.
///
/// A topology's status and its removal are tried once and the outcome reported back
/// ([`state::Feedback`]): the reconciler decides what to write again, after a back-off,
/// from its state at that time. The framework id and the last stable spec are retried
/// here until they are written, a newer write of the same key replacing an older one,
/// without holding up the writes behind them.
async fn write_statuses(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<state::StatusWrite>,
    feedback: mpsc::UnboundedSender<state::Feedback>,
) {
    let mut retry: VecDeque<state::StatusWrite> = VecDeque::new();
    let mut task_lists = TaskLists::default();
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut delay = Duration::from_millis(200);
    loop {
        let write = tokio::select! {
            w = rx.recv() => match w {
                Some(w) => w,
                None => return,
            },
            _ = sleep_until(retry_at), if !retry.is_empty() => {
                // Retry everything queued, oldest first; what fails again is queued again.
                let queued: Vec<_> = retry.drain(..).collect();
                let mut failed = false;
                for w in queued {
                    if let Err((w, e)) = write_other(&store, w).await {
                        tracing::warn!(error = %e, "store write failed again; retrying");
                        supersede(&mut retry, w);
                        failed = true;
                    }
                }
                if failed {
                    delay = (delay * 2).min(Duration::from_secs(10));
                    retry_at = Some(tokio::time::Instant::now() + delay);
                } else {
                    delay = Duration::from_millis(200);
                    retry_at = None;
                }
                continue;
            }
        };
        match write {
            state::StatusWrite::Put { ns, name, status } => {
                let key = format!("{ns}/{name}");
                match task_lists.write(&store, &ns, &name, &status).await {
                    Ok(()) => {
                        let _ = feedback.send(state::Feedback::StatusWritten { key, status });
                    }
                    Err(e) => {
                        let _ = feedback.send(state::Feedback::StatusWriteFailed {
                            key,
                            status,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            state::StatusWrite::Finalize {
                ns,
                name,
                mod_revision,
            } => match store.finalize_delete(&ns, &name, mod_revision).await {
                // The task lists went with it.
                // Done, or the spec changed meanwhile: the watch brings the news either way.
                Ok(()) | Err(crate::StoreError::Conflict { .. }) => {
                    task_lists.forget(&format!("{ns}/{name}"));
                }
                Err(e) => {
                    let _ = feedback.send(state::Feedback::FinalizeFailed {
                        key: format!("{ns}/{name}"),
                        reason: e.to_string(),
                    });
                }
            },
            other => {
                if let Err((w, e)) = write_other(&store, other).await {
                    tracing::warn!(error = %e, "store write failed; retrying");
                    supersede(&mut retry, w);
                    retry_at.get_or_insert_with(|| tokio::time::Instant::now() + delay);
                }
            }
        }
    }
}

/// The operators' task lists the writer stored, per topology, so a status change
/// rewrites only the lists that changed (docs/design-notes.md, note 13). Empty after a
/// restart: the first write of each topology then stores every list once.
#[derive(Default)]
struct TaskLists {
    stored: std::collections::HashMap<
        String,
        std::collections::HashMap<String, std::sync::Arc<concord_schemas::OperatorStatus>>,
    >,
}

impl TaskLists {
    /// Writes the changed task lists, removes those of operators gone, and the document
    /// itself (without tasks; only if it changed), together (`Store::put_status_and_tasks`).
    async fn write(
        &mut self,
        store: &Store,
        ns: &str,
        name: &str,
        status: &status::StatusDoc,
    ) -> Result<(), crate::StoreError> {
        let stored = self.stored.entry(format!("{ns}/{name}")).or_default();
        let changed: Vec<&std::sync::Arc<concord_schemas::OperatorStatus>> = status
            .operators
            .iter()
            .filter(|op| {
                !stored
                    .get(&op.name)
                    .is_some_and(|s| std::sync::Arc::ptr_eq(s, op) || s.tasks == op.tasks)
            })
            .collect();
        let gone: Vec<String> = stored
            .keys()
            .filter(|k| !status.operators.iter().any(|o| &o.name == *k))
            .cloned()
            .collect();
        let lists: Vec<(&str, &[concord_schemas::TaskSummary])> = changed
            .iter()
            .map(|op| (op.name.as_str(), op.tasks.as_slice()))
            .collect();
        store
            .put_status_and_tasks(ns, name, &status.without_tasks(), &lists, &gone)
            .await?;
        for op in changed {
            stored.insert(op.name.clone(), op.clone());
        }
        for op in gone {
            stored.remove(&op);
        }
        Ok(())
    }

    fn forget(&mut self, key: &str) {
        self.stored.remove(key);
    }
}

/// Queues `w` for a retry in place of an older write of the same key.
fn supersede(retry: &mut VecDeque<state::StatusWrite>, w: state::StatusWrite) {
    use state::StatusWrite as W;
    retry.retain(|old| match (old, &w) {
        (W::FrameworkId(_) | W::ClearFrameworkId, W::FrameworkId(_) | W::ClearFrameworkId) => false,
        (
            W::StableSpec { ns, name, .. },
            W::StableSpec {
                ns: ns2,
                name: name2,
                ..
            },
        ) => !(ns == ns2 && name == name2),
        _ => true,
    });
    retry.push_back(w);
}

/// Writes the framework id or a stable spec; gives the write back on failure.
async fn write_other(
    store: &Store,
    write: state::StatusWrite,
) -> Result<(), (state::StatusWrite, crate::StoreError)> {
    // Fenced writes: a leader that lost its term writes nothing more.
    let result = match &write {
        state::StatusWrite::FrameworkId(id) => {
            store
                .put_raw(&framework_id_key(store), id.clone().into_bytes())
                .await
        }
        state::StatusWrite::ClearFrameworkId => store.delete_raw(&framework_id_key(store)).await,
        state::StatusWrite::StableSpec { ns, name, spec } => {
            match serde_json::to_vec(spec.as_ref()) {
                Ok(value) => store.put_raw(&store.stable_key(ns, name), value).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode the last stable spec");
                    return Ok(());
                }
            }
        }
        // Reported to the reconciler instead, never retried here.
        state::StatusWrite::Put { .. } | state::StatusWrite::Finalize { .. } => Ok(()),
    };
    match result {
        Err(e @ crate::StoreError::Fenced { .. }) => {
            // This term is over; the next leader writes what it finds.
            tracing::warn!(error = %e, "write fenced off");
            Ok(())
        }
        other => other.map_err(|e| (write, e)),
    }
}

/// Settings of a reconciler that talks to nothing (benchmarks and tests).
fn detached_config() -> ReconcilerConfig {
    let nowhere = "http://127.0.0.1:9".to_owned();
    ReconcilerConfig {
        mesos_master: nowhere.clone(),
        framework_name: "detached".into(),
        role: "detached".into(),
        principal: None,
        secret: None,
        failover_timeout: 60.0,
        resync: Duration::from_secs(600),
        readiness: ReadinessMode::Running,
        launch: LaunchSettings {
            executor_path: "concord-executor".into(),
            executor_uri: None,
            etcd_endpoints: vec![nowhere],
            etcd_prefix: "/detached".into(),
            etcd_env: Vec::new(),
            kill_grace: Duration::from_secs(5),
            trace_sample_rate: None,
        },
        hostname: "detached".into(),
        webui_url: None,
    }
}

/// Benchmark support: the real reconciler over injected state, detached from Mesos
/// and etcd (the calls and writes it asks for are dropped).
#[doc(hidden)]
pub mod bench {
    use super::*;

    /// A reconciler detached from Mesos and etcd.
    pub struct Detached {
        inner: Reconciler,
    }

    impl Detached {
        /// Kept async for callers that build it inside a runtime.
        pub async fn new() -> Self {
            // Receivers dropped at once: what the reconciler asks for goes nowhere.
            let (calls_tx, _) = mpsc::unbounded_channel();
            let (status_tx, _) = mpsc::unbounded_channel();
            let inner = Reconciler::new(
                detached_config(),
                Outputs {
                    calls_tx,
                    status_tx,
                    metrics: crate::metrics::Metrics::new(),
                },
                Readiness::default(),
                Restored::default(),
            );
            Self { inner }
        }

        /// Adds a topology whose tasks all run and are ready.
        pub fn insert(&mut self, t: concord_schemas::Topology, revision: i64) {
            self.inner.bench_insert(t, revision);
        }

        /// A spec change, as the etcd watch would deliver it.
        pub fn update(&mut self, t: concord_schemas::Topology, revision: i64) {
            self.inner.bench_update(t, revision);
        }

        /// Reconciles everything dirty; returns how long it took.
        pub fn reconcile(&mut self) -> Duration {
            let started = std::time::Instant::now();
            self.inner.process_dirty();
            started.elapsed()
        }

        /// Tasks tracked.
        pub fn tasks(&self) -> usize {
            self.inner.bench_tasks()
        }

        /// Operators planned and task summaries built by all passes so far.
        pub fn work(&self) -> (u64, u64) {
            let s = self.inner.bench_stats();
            (s.operators_planned, s.tasks_summarised)
        }

        /// What the status writer encodes when the status last assembled for topology
        /// `key` (`ns/name`) changed in one operator, `operator`: that operator's task
        /// list, and the document without tasks (which `Store::put_status` also
        /// decodes from etcd to compare). Returns the time taken and the bytes written;
        /// with `operator` `None`, the whole document as one value instead (as stored
        /// before the task lists had keys of their own).
        pub fn status_write_work(
            &self,
            key: &str,
            operator: Option<&str>,
        ) -> Option<(Duration, usize)> {
            let doc = self.inner.bench_status(key)?;
            let started = std::time::Instant::now();
            let bytes = match operator {
                Some(op) => {
                    let part = doc.operators.iter().find(|o| o.name == op)?;
                    let tasks = serde_json::to_vec(&part.tasks).ok()?;
                    let stored = serde_json::to_vec(&doc.without_tasks()).ok()?;
                    let _: concord_schemas::TopologyStatus =
                        serde_json::from_slice(&stored).ok()?;
                    tasks.len() + stored.len()
                }
                None => {
                    let whole = serde_json::to_vec(&doc.to_status()).ok()?;
                    let _: concord_schemas::TopologyStatus = serde_json::from_slice(&whole).ok()?;
                    whole.len()
                }
            };
            Some((started.elapsed(), bytes))
        }
    }
}
