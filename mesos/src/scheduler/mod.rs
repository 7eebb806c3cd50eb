//! A Mesos v1 HTTP scheduler client.
//!
//! [`Scheduler::start`] spawns a background task that SUBSCRIBEs, follows the
//! leading master (307), keeps the `Mesos-Stream-Id`, watches heartbeats and
//! re-subscribes with the same framework id after any disconnection, with
//! exponential back-off and jitter. Events arrive on [`SchedulerEvents`]; calls go
//! through the cloneable [`SchedulerHandle`] on separate pooled connections.
//!
//! Nothing here depends on mesos-lite: it speaks the protocol of Apache Mesos 1.x.

mod backoff;
mod driver;
mod error;
mod http;

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use reqwest::Url;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use self::backoff::Backoff;
pub use self::error::SchedulerError;
pub use self::http::{
    EventStream, SCHEDULER_PATH, STREAM_ID_HEADER, default_client, resolve_redirect, scheduler_url,
    send_call, subscribe_at, subscribe_raw,
};
use crate::types::{
    AgentId, Bytes, Call, CallType, Event, ExecutorId, Filters, FrameworkId, FrameworkInfo,
    KillPolicy, OfferId, Operation, OperationStatus, ReconcileTask, TaskId, TaskInfo, TaskStatus,
};

/// HTTP Basic credentials (`--authenticate_http_frameworks`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Principal.
    pub principal: String,
    /// Secret.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Configuration of a [`Scheduler`].
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Master base URL, e.g. `http://127.0.0.1:5050` (any master; 307s lead to the leader).
    pub master: String,
    /// The framework. Set `id` to re-subscribe as an existing framework.
    pub framework_info: FrameworkInfo,
    /// HTTP Basic credentials, if the master authenticates frameworks.
    pub credentials: Option<Credentials>,
    /// First reconnection delay (doubles per failed attempt, with jitter).
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Heartbeat intervals without any event before the stream counts as dead.
    pub heartbeat_misses: u32,
    /// Timeout of a call, and of waiting for the SUBSCRIBE response head.
    pub request_timeout: Duration,
    /// Roles to subscribe with suppressed offers (the initial state; the client then
    /// tracks SUPPRESS/REVIVE and re-subscribes with the current set).
    pub suppressed_roles: Vec<String>,
    /// Capacity of the event channel; a slow consumer back-pressures the stream.
    pub event_buffer: usize,
}

impl Default for SchedulerConfig {
    /// `http://127.0.0.1:5050` and an empty FrameworkInfo (set `user` and `name`),
    /// so struct literals can use `..SchedulerConfig::default()`.
    fn default() -> Self {
        SchedulerConfig::new("http://127.0.0.1:5050", FrameworkInfo::default())
    }
}

impl SchedulerConfig {
    /// A configuration with Mesos' recommended defaults: back-off from 1 s up to
    /// 15 s, 5 missed heartbeats, 75 s call timeout.
    pub fn new(master: impl Into<String>, framework_info: FrameworkInfo) -> Self {
        SchedulerConfig {
            master: master.into(),
            framework_info,
            credentials: None,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15),
            heartbeat_misses: 5,
            request_timeout: Duration::from_secs(75),
            suppressed_roles: Vec::new(),
            event_buffer: 1024,
        }
    }

    /// Sets HTTP Basic credentials.
    pub fn with_credentials(
        mut self,
        principal: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials {
            principal: principal.into(),
            secret: secret.into(),
        });
        self
    }
}

/// What the background task reports.
#[derive(Debug, Clone, PartialEq)]
// `Event` is large, but each value is moved once through the channel; keeping it
// unboxed keeps the public contract (`SchedulerEvent::Event(Event)`) simple.
#[allow(clippy::large_enum_variant)]
pub enum SchedulerEvent {
    /// A SUBSCRIBED arrived: the framework id (new or re-used) and the heartbeat
    /// interval. The SUBSCRIBED event itself follows as [`SchedulerEvent::Event`].
    Subscribed {
        /// The framework id; persist it to re-subscribe after a restart.
        framework_id: FrameworkId,
        /// Heartbeat interval announced by the master (15 s on Apache Mesos).
        heartbeat_interval: Duration,
    },
    /// An event from the master, exactly as received (SUBSCRIBED, OFFERS, UPDATE,
    /// HEARTBEAT, ERROR, …).
    Event(Event),
    /// The subscription ended or could not be (re-)established; the client keeps
    /// retrying. Reported once per outage. Outstanding offers are void.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// The stream of [`SchedulerEvent`]s. Ends when the scheduler is shut down.
#[derive(Debug)]
pub struct SchedulerEvents {
    rx: mpsc::Receiver<SchedulerEvent>,
}

impl SchedulerEvents {
    /// The next event; `None` once the scheduler has stopped.
    pub async fn recv(&mut self) -> Option<SchedulerEvent> {
        self.rx.recv().await
    }
}

impl Stream for SchedulerEvents {
    type Item = SchedulerEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SchedulerEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// State shared between the handle and the background task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SchedulerConfig,
    pub(crate) client: reqwest::Client,
    pub(crate) session: Mutex<Session>,
    pub(crate) cancel: CancellationToken,
    /// Set while TEARDOWN is in flight: the master closing the stream is then
    /// expected and must not trigger a reconnection.
    pub(crate) tearing_down: AtomicBool,
}

/// What changes with each subscription.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Framework id (from the config, then from SUBSCRIBED).
    pub(crate) framework_id: Option<FrameworkId>,
    /// Stream id of the live subscription.
    pub(crate) stream_id: Option<String>,
    /// Scheduler endpoint of the master that accepted the subscription.
    pub(crate) url: Url,
    /// FrameworkInfo for the next SUBSCRIBE (updated by UPDATE_FRAMEWORK).
    pub(crate) framework_info: FrameworkInfo,
    /// Roles currently suppressed, re-sent on SUBSCRIBE so a reconnection does not
    /// silently revive offers.
    pub(crate) suppressed_roles: BTreeSet<String>,
}

impl Shared {
    fn new(config: SchedulerConfig, client: reqwest::Client, url: Url) -> Self {
        Shared {
            session: Mutex::new(Session {
                framework_id: config.framework_info.id.clone(),
                stream_id: None,
                url,
                framework_info: config.framework_info.clone(),
                suppressed_roles: config.suppressed_roles.iter().cloned().collect(),
            }),
            config,
            client,
            cancel: CancellationToken::new(),
            tearing_down: AtomicBool::new(false),
        }
    }

    pub(crate) fn session(&self) -> MutexGuard<'_, Session> {
        // A poisoned lock only means a panic elsewhere; the data is still usable.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Entry point.
#[derive(Debug)]
pub struct Scheduler;

impl Scheduler {
    /// Starts the background task (must be called inside a tokio runtime).
    ///
    /// Fails only on an unusable configuration (bad URL, HTTP client setup).
    pub fn try_start(
        config: SchedulerConfig,
    ) -> Result<(SchedulerHandle, SchedulerEvents), SchedulerError> {
        let url = scheduler_url(&config.master)?;
        let client = default_client(config.request_timeout)?;
        let (tx, rx) = mpsc::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared::new(config, client, url));
        tokio::spawn(driver::run(shared.clone(), tx));
        Ok((SchedulerHandle { shared }, SchedulerEvents { rx }))
    }

    /// Starts the background task (must be called inside a tokio runtime).
    ///
    /// An unusable configuration (e.g. an unparsable master URL) does not panic: the
    /// events stream reports `Disconnected` with the reason and then ends.
    pub fn start(config: SchedulerConfig) -> (SchedulerHandle, SchedulerEvents) {
        match Scheduler::try_start(config.clone()) {
            Ok(pair) => pair,
            Err(e) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(SchedulerEvent::Disconnected {
                    reason: e.to_string(),
                });
                #[allow(clippy::expect_used)]
                let url = Url::parse("http://invalid.invalid/").expect("constant URL parses");
                let shared = Arc::new(Shared::new(config, reqwest::Client::new(), url));
                shared.cancel.cancel();
                (SchedulerHandle { shared }, SchedulerEvents { rx })
            }
        }
    }
}

/// Sends calls on behalf of the subscribed framework. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
}

impl SchedulerHandle {
    /// The framework id, once known (from the config or the first SUBSCRIBED).
    pub fn framework_id(&self) -> Option<FrameworkId> {
        self.shared.session().framework_id.clone()
    }

    /// Replaces the framework id used for the next (re-)subscription, e.g. `None`
    /// after the master answered `Framework has been removed`.
    pub fn set_framework_id(&self, id: Option<FrameworkId>) {
        self.shared.session().framework_id = id;
    }

    /// The stream id of the live subscription.
    pub fn stream_id(&self) -> Option<String> {
        self.shared.session().stream_id.clone()
    }

    /// Whether a subscription is live.
    pub fn is_subscribed(&self) -> bool {
        self.shared.session().stream_id.is_some()
    }

    /// The scheduler endpoint of the master currently used (the leader after 307s).
    pub fn master_url(&self) -> String {
        self.shared.session().url.to_string()
    }

    /// Sends any call. Fills in the framework id if missing. Needs a live
    /// subscription ([`SchedulerError::NotSubscribed`] otherwise); non-2xx answers
    /// become [`SchedulerError::Status`].
    pub async fn call(&self, mut call: Call) -> Result<(), SchedulerError> {
        if self.shared.cancel.is_cancelled() {
            return Err(SchedulerError::Closed);
        }
        if call.r#type == CallType::Subscribe {
            return Err(SchedulerError::InvalidArgument(
                "SUBSCRIBE is managed by the scheduler's background task".into(),
            ));
        }
        let (url, stream_id, framework_id) = {
            let s = self.shared.session();
            (s.url.clone(), s.stream_id.clone(), s.framework_id.clone())
        };
        let (Some(stream_id), Some(framework_id)) = (stream_id, framework_id) else {
            return Err(SchedulerError::NotSubscribed);
        };
        if call.framework_id.is_none() {
            call.framework_id = Some(framework_id);
        }
        debug!(call = %call.r#type, "sending call");
        send_call(
            &self.shared.client,
            &url,
            &call,
            &stream_id,
            self.shared.config.credentials.as_ref(),
            self.shared.config.request_timeout,
        )
        .await
    }

    fn fid(&self) -> Result<FrameworkId, SchedulerError> {
        self.framework_id().ok_or(SchedulerError::NotSubscribed)
    }

    /// ACCEPT offers with operations; unused resources are declined with `filters`.
    pub async fn accept(
        &self,
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        filters: Option<Filters>,
    ) -> Result<(), SchedulerError> {
        self.call(Call::accept(self.fid()?, offer_ids, operations, filters))
            .await
    }

    /// ACCEPT with a single LAUNCH of `task_infos`.
    pub async fn launch(
        &self,
        offer_ids: Vec<OfferId>,
        task_infos: Vec<TaskInfo>,
        filters: Option<Filters>,
    ) -> Result<(), SchedulerError> {
        self.accept(offer_ids, vec![Operation::launch(task_infos)], filters)
            .await
    }

    /// DECLINE offers.
    pub async fn decline(
        &self,
        offer_ids: Vec<OfferId>,
        filters: Option<Filters>,
    ) -> Result<(), SchedulerError> {
        self.call(Call::decline(self.fid()?, offer_ids, filters))
            .await
    }

    /// REVIVE offers for `roles` (empty = all) and clear filters.
    pub async fn revive(&self, roles: Vec<String>) -> Result<(), SchedulerError> {
        self.call(Call::revive(self.fid()?, roles.clone())).await?;
        let mut s = self.shared.session();
        if roles.is_empty() {
            s.suppressed_roles.clear();
        } else {
            for r in &roles {
                s.suppressed_roles.remove(r);
            }
        }
        Ok(())
    }

    /// SUPPRESS offers for `roles` (empty = all). Remembered across reconnections
    /// (sent as `suppressed_roles` on re-SUBSCRIBE) until revived.
    pub async fn suppress(&self, roles: Vec<String>) -> Result<(), SchedulerError> {
        self.call(Call::suppress(self.fid()?, roles.clone()))
            .await?;
        let mut s = self.shared.session();
        let roles = if roles.is_empty() {
            s.framework_info.effective_roles()
        } else {
            roles
        };
        s.suppressed_roles.extend(roles);
        Ok(())
    }

    /// Roles currently suppressed by this client.
    pub fn suppressed_roles(&self) -> Vec<String> {
        self.shared
            .session()
            .suppressed_roles
            .iter()
            .cloned()
            .collect()
    }

    /// KILL a task, optionally overriding its kill policy.
    pub async fn kill(
        &self,
        task_id: TaskId,
        agent_id: Option<AgentId>,
        kill_policy: Option<KillPolicy>,
    ) -> Result<(), SchedulerError> {
        self.call(Call::kill(self.fid()?, task_id, agent_id, kill_policy))
            .await
    }

    /// SHUTDOWN a custom executor.
    pub async fn shutdown_executor(
        &self,
        executor_id: ExecutorId,
        agent_id: AgentId,
    ) -> Result<(), SchedulerError> {
        self.call(Call::shutdown(self.fid()?, executor_id, agent_id))
            .await
    }

    /// ACKNOWLEDGE a status update by its uuid.
    pub async fn acknowledge(
        &self,
        agent_id: AgentId,
        task_id: TaskId,
        uuid: Bytes,
    ) -> Result<(), SchedulerError> {
        self.call(Call::acknowledge(self.fid()?, agent_id, task_id, uuid))
            .await
    }

    /// ACKNOWLEDGE `status` if it carries a uuid (no-op otherwise: master-generated
    /// updates are never acknowledged).
    pub async fn acknowledge_status(&self, status: &TaskStatus) -> Result<(), SchedulerError> {
        let Some(uuid) = status.uuid.clone() else {
            return Ok(());
        };
        let agent_id = status.agent_id.clone().ok_or_else(|| {
            SchedulerError::InvalidArgument(format!(
                "status of task {} has a uuid but no agent_id",
                status.task_id
            ))
        })?;
        self.acknowledge(agent_id, status.task_id.clone(), uuid)
            .await
    }

    /// ACKNOWLEDGE_OPERATION_STATUS for an operation status carrying a uuid (no-op
    /// otherwise).
    pub async fn acknowledge_operation_status(
        &self,
        status: &OperationStatus,
    ) -> Result<(), SchedulerError> {
        let (Some(uuid), Some(operation_id)) = (status.uuid.clone(), status.operation_id.clone())
        else {
            return Ok(());
        };
        self.call(Call::acknowledge_operation_status(
            self.fid()?,
            status.agent_id.clone(),
            status.resource_provider_id.clone(),
            uuid.value,
            operation_id,
        ))
        .await
    }

    /// RECONCILE: explicit for the given tasks, implicit (all tasks) when empty.
    pub async fn reconcile(&self, tasks: Vec<ReconcileTask>) -> Result<(), SchedulerError> {
        self.call(Call::reconcile(self.fid()?, tasks)).await
    }

    /// MESSAGE to an executor.
    pub async fn message(
        &self,
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Bytes,
    ) -> Result<(), SchedulerError> {
        self.call(Call::message(self.fid()?, agent_id, executor_id, data))
            .await
    }

    /// UPDATE_FRAMEWORK (user, principal and checkpoint are immutable). The new info
    /// is also used for later re-subscriptions.
    pub async fn update_framework(
        &self,
        mut framework_info: FrameworkInfo,
        suppressed_roles: Vec<String>,
    ) -> Result<(), SchedulerError> {
        let fid = self.fid()?;
        framework_info.id = Some(fid.clone());
        self.call(Call::update_framework(
            fid,
            framework_info,
            suppressed_roles,
        ))
        .await
    }

    /// TEARDOWN: the master kills every task and removes the framework. On success
    /// the background task stops and the events stream ends.
    pub async fn teardown(&self) -> Result<(), SchedulerError> {
        let fid = self.fid()?;
        self.shared.tearing_down.store(true, Ordering::SeqCst);
        match self.call(Call::teardown(fid)).await {
            Ok(()) => {
                self.shutdown();
                Ok(())
            }
            Err(e) => {
                self.shared.tearing_down.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Stops the background task and closes the stream *without* tearing the
    /// framework down: its tasks keep running for `failover_timeout`.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }

    /// Whether [`shutdown`](Self::shutdown) (or teardown) has happened.
    pub fn is_shut_down(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }
}
