//! Scheduler calls: SUBSCRIBE and failover, ACCEPT/DECLINE, REVIVE/SUPPRESS, KILL,
//! SHUTDOWN, RECONCILE, MESSAGE, TEARDOWN, UPDATE_FRAMEWORK.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Framework, Master, Stream, Task, status};
use crate::agent::{self, RunSpec};
use crate::res::Bag;
use crate::wire::*;

/// A kill request to a task runner.
#[derive(Debug, Clone)]
pub struct KillRequest {
    /// SIGTERM → SIGKILL grace period.
    pub grace: Duration,
    /// Send TASK_KILLING first (TASK_KILLING_STATE capability).
    pub send_killing: bool,
}

/// A call refused with an HTTP status and a plain-text body.
#[derive(Debug, Clone)]
pub struct CallError {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub message: String,
}

impl CallError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        CallError {
            status,
            message: message.into(),
        }
    }
}

impl Master {
    /// SUBSCRIBE: registers, re-registers or fails over a framework onto `stream`.
    pub fn subscribe(&mut self, stream: Stream, subscribe: Subscribe) {
        let mut info = subscribe.framework_info;
        let now = crate::wire::now_secs();
        if let Some(error) = validate_framework_info(&info) {
            stream.send(Event::error(error));
            stream.close();
            return;
        }
        let given = info
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .filter(|v| !v.is_empty());
        let had_id = given.is_some();
        let id = match given {
            Some(id) => id,
            None => {
                let id = format!("{}-{:04}", self.config.master_id, self.next_framework);
                self.next_framework += 1;
                self.persist_meta();
                id
            }
        };
        // A re-registering framework from an earlier run of this master: never hand
        // out its id again.
        if let Some(n) = id
            .strip_prefix(&format!("{}-", self.config.master_id))
            .and_then(|n| n.parse::<u64>().ok())
            && n >= self.next_framework
        {
            self.next_framework = n + 1;
            self.persist_meta();
        }
        if self.removed_ids.contains(&id) {
            stream.send(Event::error("Framework has been removed"));
            stream.close();
            return;
        }
        info.id = Some(FrameworkId::new(id.clone()));
        let roles: BTreeSet<String> = info.effective_roles().into_iter().collect();
        let suppressed: BTreeSet<String> = subscribe
            .suppressed_roles
            .into_iter()
            .filter(|r| roles.contains(r) || (roles.is_empty() && r == "*"))
            .collect();
        match self.frameworks.get_mut(&id) {
            Some(fw) => {
                if let Some(old) = fw.stream.take() {
                    old.send(Event::error("Framework failed over"));
                    old.close();
                }
                tracing::info!(framework_id = %id, stream_id = %stream.id, "framework re-subscribed");
                fw.info = info;
                fw.stream = Some(stream);
                fw.reregistered_time = Some(now);
                fw.unregistered_time = None;
                fw.suppressed = suppressed;
                fw.epoch += 1;
            }
            None => {
                tracing::info!(framework_id = %id, stream_id = %stream.id, name = %info.name, reregistration = had_id, "framework subscribed");
                self.frameworks.insert(
                    id.clone(),
                    Framework {
                        id: id.clone(),
                        info,
                        stream: Some(stream),
                        registered_time: now,
                        reregistered_time: None,
                        unregistered_time: None,
                        suppressed,
                        epoch: 0,
                        tasks: Default::default(),
                        completed_tasks: Default::default(),
                        unreachable_tasks: Default::default(),
                    },
                );
            }
        }
        self.drop_offers_of(&id);
        if let Some(fw) = self.frameworks.get(&id) {
            let secs = self.config.heartbeat_interval.as_secs_f64();
            fw.send(Event::subscribed(
                FrameworkId::new(id.clone()),
                secs,
                Some(self.config.master_info()),
            ));
            fw.send(Event::heartbeat());
        }
        self.resend_heads(&id);
        self.wake_allocator();
    }

    /// The stream with this id closed: the framework is disconnected and its failover
    /// timeout starts.
    pub fn stream_closed(&mut self, stream_id: &str) {
        let Some(fw) = self
            .frameworks
            .values_mut()
            .find(|f| f.stream.as_ref().is_some_and(|s| s.id == stream_id))
        else {
            return;
        };
        fw.stream = None;
        fw.unregistered_time = Some(crate::wire::now_secs());
        fw.epoch += 1;
        let id = fw.id.clone();
        let epoch = fw.epoch;
        let timeout = fw.info.failover_timeout;
        tracing::info!(framework_id = %id, failover_timeout = timeout, "framework disconnected");
        self.drop_offers_of(&id);
        let timeout = if timeout.is_finite() && timeout > 0.0 {
            Duration::from_secs_f64(timeout.min(1e9))
        } else {
            Duration::ZERO
        };
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let mut m = shared.lock();
            let expired = m
                .frameworks
                .get(&id)
                .is_some_and(|f| f.epoch == epoch && !f.connected());
            if expired {
                tracing::info!(framework_id = %id, "framework failover timeout expired");
                m.remove_framework(&id);
            }
        });
    }

    /// TEARDOWN / failover expiry: kills every task and forgets the framework.
    pub fn remove_framework(&mut self, framework_id: &str) {
        let Some(mut fw) = self.frameworks.remove(framework_id) else {
            return;
        };
        tracing::info!(framework_id, "removing framework");
        if let Some(s) = fw.stream.take() {
            s.close();
        }
        self.drop_offers_of(framework_id);
        self.clear_filters(framework_id);
        let grace = self.config.default_kill_grace_period;
        let ids: Vec<String> = fw.tasks.keys().cloned().collect();
        for id in ids {
            if let Some(t) = fw.tasks.get_mut(&id) {
                if !t.state.is_terminal() {
                    // Executor shutdown: the command executor kills its task with
                    // the shutdown grace period, whatever the task's kill policy.
                    if let Some(tx) = &t.kill_tx {
                        let _ = tx.send(KillRequest {
                            grace,
                            send_killing: false,
                        });
                    }
                    let st = status(
                        &id,
                        TaskState::Killed,
                        TaskStatusSource::Master,
                        Some(TaskStatusReason::FrameworkRemoved),
                        Some("Framework ".to_string() + framework_id + " removed"),
                        Some(&self.agents[t.agent].id),
                    );
                    t.state = TaskState::Killed;
                    t.statuses.push(st);
                }
                t.released = true;
                t.pending.clear();
                t.next_retry = None;
            }
            Master::complete_task(&mut fw, &id);
        }
        fw.unregistered_time = Some(crate::wire::now_secs());
        self.complete_framework(fw);
        self.reap_group_executors();
    }

    /// ACCEPT.
    pub fn accept(&mut self, framework_id: &str, accept: Accept) {
        let pa = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.partition_aware());
        let tasks_of = |ops: &[Operation]| -> Vec<TaskInfo> {
            ops.iter()
                .flat_map(|op| {
                    let mut v: Vec<TaskInfo> = Vec::new();
                    if let Some(l) = &op.launch {
                        v.extend(l.task_infos.iter().cloned());
                    }
                    if let Some(g) = &op.launch_group {
                        v.extend(g.task_group.tasks.iter().cloned());
                    }
                    v
                })
                .collect()
        };
        if let Err(error) = self.validate_offers(framework_id, &accept.offer_ids) {
            tracing::warn!(framework_id, %error, "ACCEPT with invalid offers");
            for id in &accept.offer_ids {
                if self
                    .offers
                    .get(&id.value)
                    .is_some_and(|o| o.framework_id == framework_id)
                {
                    self.offers.remove(&id.value);
                }
            }
            for task in tasks_of(&accept.operations) {
                let st = status(
                    &task.task_id.value,
                    if pa {
                        TaskState::Dropped
                    } else {
                        TaskState::Lost
                    },
                    TaskStatusSource::Master,
                    Some(TaskStatusReason::InvalidOffers),
                    Some(format!("Task launched with invalid offers: {error}")),
                    Some(&task.agent_id.value),
                );
                self.send_master_update(framework_id, st);
            }
            return;
        }
        let mut pool = Bag::default();
        let mut agent = 0;
        let mut role = String::from("*");
        for id in &accept.offer_ids {
            if let Some(o) = self.offers.remove(&id.value) {
                pool = pool.plus(&o.bag);
                agent = o.agent;
                role = o.role;
            }
        }
        for op in accept.operations {
            match op.r#type {
                OperationType::Launch => {
                    for task in op.launch.map(|l| l.task_infos).unwrap_or_default() {
                        pool = self.launch_one(framework_id, agent, &role, task, pool, None);
                    }
                }
                OperationType::LaunchGroup => {
                    if let Some(group) = op.launch_group {
                        pool = self.launch_group(framework_id, agent, &role, group, pool);
                    }
                }
                other => {
                    tracing::warn!(
                        framework_id,
                        operation = other.as_str(),
                        "operation not supported by mesos-lite; ignored"
                    );
                }
            }
        }
        self.add_filter(framework_id, agent, pool, accept.filters.as_ref());
    }

    /// DECLINE.
    pub fn decline(&mut self, framework_id: &str, decline: Decline) {
        for id in decline.offer_ids {
            let ours = self
                .offers
                .get(&id.value)
                .is_some_and(|o| o.framework_id == framework_id);
            if !ours {
                tracing::debug!(framework_id, offer_id = %id.value, "declining unknown offer ignored");
                continue;
            }
            if let Some(o) = self.offers.remove(&id.value) {
                self.add_filter(framework_id, o.agent, o.bag, decline.filters.as_ref());
            }
        }
    }

    fn validate_offers(&self, framework_id: &str, ids: &[OfferId]) -> Result<(), String> {
        if ids.is_empty() {
            return Err("No offers specified".into());
        }
        let mut seen = BTreeSet::new();
        for id in ids {
            if !seen.insert(id.value.as_str()) {
                return Err(format!("Duplicate offer {} in offer list", id.value));
            }
        }
        let mut first: Option<(&str, usize, &str)> = None;
        for id in ids {
            let Some(o) = self.offers.get(&id.value) else {
                return Err(format!("Offer {} is no longer valid", id.value));
            };
            if o.framework_id != framework_id {
                return Err(format!(
                    "Offer {} has invalid framework {} while framework {} is expected",
                    id.value, o.framework_id, framework_id
                ));
            }
            match first {
                None => first = Some((&id.value, o.agent, &o.role)),
                Some((fid, agent, role)) => {
                    if agent != o.agent {
                        return Err(format!(
                            "Aggregated offers must belong to one single agent. Offer {} uses agent {} and offer {} uses agent {}",
                            id.value, self.agents[o.agent].id, fid, self.agents[agent].id
                        ));
                    }
                    if role != o.role {
                        return Err(format!(
                            "Aggregated offers must be allocated to the same role. Offer {} uses role {} and offer {} uses role {}",
                            id.value, o.role, fid, role
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Validates and launches one task; returns what is left of the pool.
    fn launch_one(
        &mut self,
        framework_id: &str,
        agent: usize,
        role: &str,
        mut task: TaskInfo,
        pool: Bag,
        group_executor: Option<&ExecutorInfo>,
    ) -> Bag {
        let needed = Bag::from_resources(&task.resources);
        let check = self
            .validate_task(
                framework_id,
                agent,
                &task,
                &pool,
                &needed,
                group_executor.is_some(),
            )
            .and_then(|()| {
                if group_executor.is_none() && task.executor.is_some() {
                    // A custom executor needs the executor HTTP API, which mesos-lite lacks.
                    Err("custom executors are not supported by mesos-lite".into())
                } else {
                    Ok(())
                }
            });
        if let Err(error) = check {
            let agent_id = task.agent_id.value.clone();
            let unsupported = error.contains("mesos-lite");
            let (state, source, reason, message) = if unsupported {
                (
                    TaskState::Failed,
                    TaskStatusSource::Agent,
                    TaskStatusReason::ContainerLaunchFailed,
                    format!("Failed to launch container: {error}"),
                )
            } else {
                (
                    TaskState::Error,
                    TaskStatusSource::Master,
                    TaskStatusReason::TaskInvalid,
                    error,
                )
            };
            tracing::warn!(framework_id, task_id = %task.task_id.value, %message, "task refused");
            let st = status(
                &task.task_id.value,
                state,
                source,
                Some(reason),
                Some(message),
                Some(&agent_id),
            );
            self.send_master_update(framework_id, st);
            return pool;
        }
        let multi_role = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.multi_role());
        if multi_role {
            for r in &mut task.resources {
                if r.allocation_info.is_none() {
                    r.allocation_info = Some(AllocationInfo {
                        role: Some(role.to_string()),
                    });
                }
            }
        }
        self.start_task(
            framework_id,
            agent,
            role,
            task,
            needed.clone(),
            group_executor,
        );
        pool.minus(&needed)
    }

    fn validate_task(
        &self,
        framework_id: &str,
        agent: usize,
        task: &TaskInfo,
        pool: &Bag,
        needed: &Bag,
        in_group: bool,
    ) -> Result<(), String> {
        validate_id(&task.task_id.value)
            .map_err(|e| format!("Task ID '{}' is invalid: {e}", task.task_id.value))?;
        let fw = self
            .frameworks
            .get(framework_id)
            .ok_or("Unknown framework")?;
        if fw.tasks.contains_key(&task.task_id.value) {
            return Err(format!("Task has duplicate ID: {}", task.task_id.value));
        }
        if task.agent_id.value != self.agents[agent].id {
            return Err(format!("Task uses invalid agent: {}", task.agent_id.value));
        }
        if let Some(kp) = &task.kill_policy
            && kp.grace_period.is_some_and(|g| g.nanoseconds < 0)
        {
            return Err("Task's 'kill_policy.grace_period' must be non-negative".into());
        }
        if task.resources.is_empty() || needed.is_empty() {
            return Err("Task uses no resources".into());
        }
        if !in_group && task.command.is_some() == task.executor.is_some() {
            return Err(
                "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present".into(),
            );
        }
        if !pool.contains(needed) {
            return Err(format!(
                "Total resources {needed} required by task and its executor is more than available {pool}"
            ));
        }
        Ok(())
    }

    fn launch_group(
        &mut self,
        framework_id: &str,
        agent: usize,
        role: &str,
        group: LaunchGroup,
        pool: Bag,
    ) -> Bag {
        let executor = group.executor;
        let exec_bag = Bag::from_resources(&executor.resources);
        let running_executor = self.frameworks.get(framework_id).is_some_and(|f| {
            f.tasks.values().any(|t| {
                !t.command_executor
                    && t.executor_id == executor.executor_id.value
                    && !t.state.is_terminal()
            })
        });
        let mut total = group
            .task_group
            .tasks
            .iter()
            .fold(Bag::default(), |acc, t| {
                acc.plus(&Bag::from_resources(&t.resources))
            });
        if !running_executor {
            total = total.plus(&exec_bag);
        }
        let error = if executor.r#type != Some(ExecutorType::Default) {
            Some("'ExecutorInfo.type' must be 'DEFAULT'".to_string())
        } else if let Err(e) = validate_id(&executor.executor_id.value) {
            Some(format!(
                "Executor ID '{}' is invalid: {e}",
                executor.executor_id.value
            ))
        } else if !pool.contains(&total) {
            Some(format!(
                "Total resources {total} required by task group and its executor are more than available {pool}"
            ))
        } else {
            None
        };
        if let Some(error) = error {
            for t in &group.task_group.tasks {
                let st = status(
                    &t.task_id.value,
                    TaskState::Error,
                    TaskStatusSource::Master,
                    Some(TaskStatusReason::TaskGroupInvalid),
                    Some(error.clone()),
                    Some(&t.agent_id.value),
                );
                self.send_master_update(framework_id, st);
            }
            return pool;
        }
        let mut pool = pool;
        if !running_executor {
            pool = pool.minus(&exec_bag);
            self.group_executors.insert(
                (framework_id.to_string(), executor.executor_id.value.clone()),
                (agent, exec_bag),
            );
        }
        let ids: Vec<String> = group
            .task_group
            .tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        let before: BTreeSet<String> = self
            .frameworks
            .get(framework_id)
            .map(|f| f.tasks.keys().cloned().collect())
            .unwrap_or_default();
        for mut t in group.task_group.tasks {
            t.executor = Some(executor.clone());
            pool = self.launch_one(framework_id, agent, role, t, pool, Some(&executor));
        }
        // The default executor treats the group as a unit: remember the siblings of
        // the tasks launched now.
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            for id in ids.iter().filter(|id| !before.contains(*id)) {
                if let Some(t) = fw.tasks.get_mut(id) {
                    t.group = ids.clone();
                }
            }
        }
        pool
    }

    fn start_task(
        &mut self,
        framework_id: &str,
        agent: usize,
        role: &str,
        task: TaskInfo,
        resources: Bag,
        group_executor: Option<&ExecutorInfo>,
    ) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let task_id = task.task_id.value.clone();
        let agent_id = self.agents[agent].id.clone();
        let container_id = uuid::Uuid::new_v4().to_string();
        let executor_id =
            group_executor.map_or_else(|| task_id.clone(), |e| e.executor_id.value.clone());
        let executor_dir = self
            .config
            .work_dir
            .join("slaves")
            .join(&agent_id)
            .join("frameworks")
            .join(framework_id)
            .join("executors")
            .join(&executor_id)
            .join("runs");
        let sandbox = match group_executor {
            None => executor_dir.join(&container_id),
            // Default executor: one executor sandbox, each task nested under tasks/<id>.
            Some(_) => executor_dir
                .join(&container_id)
                .join("tasks")
                .join(&task_id),
        };
        // Command tasks and task-group tasks alike run their TaskInfo.command.
        let command = task.command.clone().unwrap_or_default();
        let (kill_tx, kill_rx) = mpsc::unbounded_channel();
        let spec = RunSpec {
            framework_id: framework_id.to_string(),
            task_id: task_id.clone(),
            agent_id: agent_id.clone(),
            executor_id: executor_id.clone(),
            container_id: container_id.clone(),
            runs_dir: executor_dir,
            sandbox: sandbox.clone(),
            command,
            volumes: task
                .container
                .as_ref()
                .map(|c| c.volumes.clone())
                .unwrap_or_default(),
            role: role.to_string(),
            checkpoint: fw.info.checkpoint,
            agent_endpoint: self.config.endpoint(),
            agent_ip: self.config.ip.to_string(),
            health_check: task.health_check.clone(),
            killing_capable: fw
                .info
                .has_capability(&FrameworkCapabilityType::TaskKillingState),
            max_completion_time: task
                .max_completion_time
                .filter(|d| d.nanoseconds > 0)
                .map(|d| d.to_duration()),
            task_grace: task
                .kill_policy
                .as_ref()
                .and_then(|k| k.grace_period)
                .map_or(self.config.default_kill_grace_period, |g| g.to_duration()),
            agent_pid: format!("{}@{}", self.agents[agent].process, self.config.endpoint()),
        };
        tracing::info!(framework_id, task_id = %task_id, agent_id = %agent_id, sandbox = %sandbox.display(), "launching task");
        let record = Task {
            info: task,
            framework_id: framework_id.to_string(),
            agent,
            role: role.to_string(),
            executor_id,
            command_executor: group_executor.is_none(),
            container_id,
            sandbox,
            state: TaskState::Staging,
            statuses: Vec::new(),
            pending: Default::default(),
            next_retry: None,
            retry_interval: self.config.status_update_retry_interval,
            resources,
            released: false,
            pid: None,
            kill_tx: Some(kill_tx),
            group: Vec::new(),
        };
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.tasks.insert(task_id, record);
        }
        tokio::spawn(agent::run(shared, spec, kill_rx));
    }

    /// Records the pid of a started task.
    pub fn task_started(&mut self, framework_id: &str, task_id: &str, pid: u32) {
        if let Some(t) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|f| f.tasks.get_mut(task_id))
        {
            t.pid = Some(pid);
        }
    }

    /// Clears the pid of an exited task.
    pub fn task_exited(&mut self, framework_id: &str, task_id: &str) {
        if let Some(t) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|f| f.tasks.get_mut(task_id))
        {
            t.pid = None;
            t.kill_tx = None;
        }
    }

    /// REVIVE: un-suppresses the roles (all when empty) and clears refuse filters.
    pub fn revive(&mut self, framework_id: &str, roles: Vec<String>) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            if roles.is_empty() {
                fw.suppressed.clear();
            } else {
                for r in &roles {
                    fw.suppressed.remove(r);
                }
            }
        }
        self.clear_filters(framework_id);
        self.wake_allocator();
    }

    /// SUPPRESS: stops offers for the roles (all when empty).
    pub fn suppress(&mut self, framework_id: &str, roles: Vec<String>) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            let roles = if roles.is_empty() { fw.roles() } else { roles };
            fw.suppressed.extend(roles);
        }
    }

    /// KILL.
    pub fn kill(&mut self, framework_id: &str, kill: Kill) {
        let grace_default = self.config.default_kill_grace_period;
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let killing_cap = fw
            .info
            .has_capability(&FrameworkCapabilityType::TaskKillingState);
        match fw.tasks.get(&kill.task_id.value) {
            Some(task) => {
                if kill
                    .agent_id
                    .as_ref()
                    .is_some_and(|a| a.value != self.agents[task.agent].id)
                {
                    tracing::warn!(framework_id, task_id = %kill.task_id.value, "KILL with mismatched agent id ignored");
                    return;
                }
                if task.state.is_terminal() {
                    return;
                }
                let grace = kill
                    .kill_policy
                    .as_ref()
                    .and_then(|k| k.grace_period)
                    .or_else(|| task.info.kill_policy.as_ref().and_then(|k| k.grace_period))
                    .map_or(grace_default, |g| g.to_duration());
                tracing::info!(framework_id, task_id = %kill.task_id.value, ?grace, "killing task");
                if let Some(tx) = &task.kill_tx {
                    let _ = tx.send(KillRequest {
                        grace,
                        send_killing: killing_cap,
                    });
                }
            }
            None => {
                // An unknown task gets an explicit reconciliation.
                self.reconcile(
                    framework_id,
                    vec![ReconcileTask {
                        task_id: kill.task_id,
                        agent_id: kill.agent_id,
                    }],
                );
            }
        }
    }

    /// SHUTDOWN of an executor: for command tasks (executor id = task id) kills the task;
    /// for a task group kills all its tasks.
    pub fn shutdown(&mut self, framework_id: &str, executor_id: &str) {
        let grace = self.config.default_kill_grace_period;
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let send_killing = fw
            .info
            .has_capability(&FrameworkCapabilityType::TaskKillingState);
        for t in fw.tasks.values() {
            if t.executor_id == executor_id
                && !t.state.is_terminal()
                && let Some(tx) = &t.kill_tx
            {
                let _ = tx.send(KillRequest {
                    grace,
                    send_killing,
                });
            }
        }
    }

    /// RECONCILE, explicit or (with no tasks) implicit.
    pub fn reconcile(&mut self, framework_id: &str, tasks: Vec<ReconcileTask>) {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let pa = fw.partition_aware();
        let mut out = Vec::new();
        let known = |t: &Task, agents: &[super::Agent]| {
            let latest = t.statuses.last();
            let mut st = status(
                &t.info.task_id.value,
                t.state.clone(),
                TaskStatusSource::Master,
                Some(TaskStatusReason::Reconciliation),
                Some("Reconciliation: Latest task state".into()),
                Some(&agents[t.agent].id),
            );
            st.executor_id = latest.and_then(|l| l.executor_id.clone());
            st.healthy = latest.and_then(|l| l.healthy);
            st.container_status = latest.and_then(|l| l.container_status.clone());
            st
        };
        if tasks.is_empty() {
            for t in fw.tasks.values() {
                out.push(known(t, &self.agents));
            }
        } else {
            for rt in tasks {
                if let Some(t) = fw.tasks.get(&rt.task_id.value) {
                    out.push(known(t, &self.agents));
                    continue;
                }
                let agent = rt
                    .agent_id
                    .as_ref()
                    .and_then(|a| self.agent_index(&a.value))
                    .map(|i| self.agents[i].removed);
                let (state, message, unreachable_time) = match agent {
                    Some(None) => (
                        TaskState::Gone,
                        "Reconciliation: Task is unknown to the agent",
                        None,
                    ),
                    Some(Some(super::Removal::Unreachable(at))) => (
                        TaskState::Unreachable,
                        "Reconciliation: Task is unreachable",
                        Some(TimeInfo {
                            nanoseconds: (at * 1e9) as i64,
                        }),
                    ),
                    Some(Some(super::Removal::Gone(_))) => (
                        TaskState::GoneByOperator,
                        "Reconciliation: Task is gone",
                        None,
                    ),
                    None => (TaskState::Unknown, "Reconciliation: Task is unknown", None),
                };
                // Frameworks that are not PARTITION_AWARE get TASK_LOST instead.
                let state = if pa { state } else { TaskState::Lost };
                let mut st = status(
                    &rt.task_id.value,
                    state,
                    TaskStatusSource::Master,
                    Some(TaskStatusReason::Reconciliation),
                    Some(message.into()),
                    rt.agent_id.as_ref().map(|a| a.value.as_str()),
                );
                st.unreachable_time = unreachable_time;
                out.push(st);
            }
        }
        for st in out {
            fw.send(Event::update(st));
        }
    }

    /// MESSAGE to an executor: the command executor ignores framework messages.
    pub fn message(&mut self, framework_id: &str, message: &Message) {
        tracing::info!(
            framework_id,
            executor_id = %message.executor_id.value,
            bytes = message.data.len(),
            "framework message delivered to executor (ignored by the command executor)"
        );
    }

    /// UPDATE_FRAMEWORK: replaces the mutable parts of FrameworkInfo.
    pub fn update_framework(
        &mut self,
        framework_id: &str,
        update: UpdateFramework,
    ) -> Result<(), CallError> {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return Err(CallError::new(409, "Framework has been removed"));
        };
        let info = update.framework_info;
        if info.user != fw.info.user
            || info.checkpoint != fw.info.checkpoint
            || info.principal != fw.info.principal
        {
            return Err(CallError::new(
                400,
                "Updating 'FrameworkInfo.user', 'FrameworkInfo.checkpoint' or 'FrameworkInfo.principal' is not supported",
            ));
        }
        if let Some(e) = validate_framework_info(&info) {
            return Err(CallError::new(400, e));
        }
        let mut info = info;
        info.id = Some(FrameworkId::new(framework_id));
        fw.info = info;
        let roles: BTreeSet<String> = fw.roles().into_iter().collect();
        fw.suppressed = update
            .suppressed_roles
            .into_iter()
            .filter(|r| roles.contains(r))
            .collect();
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.framework_id == framework_id && !roles.contains(&o.role))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.offers.remove(&id);
            if let Some(fw) = self.frameworks.get(framework_id) {
                fw.send(Event::rescind(OfferId::new(id)));
            }
        }
        self.wake_allocator();
        Ok(())
    }

    /// Checks a non-SUBSCRIBE call's framework and stream, in Mesos' order.
    pub fn check_caller(
        &self,
        framework_id: &str,
        stream_id: Option<&str>,
    ) -> Result<(), CallError> {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return Err(CallError::new(400, "Framework cannot be found"));
        };
        let Some(stream) = &fw.stream else {
            return Err(CallError::new(403, "Framework is not subscribed"));
        };
        let Some(given) = stream_id else {
            return Err(CallError::new(
                400,
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
            ));
        };
        if given != stream.id {
            return Err(CallError::new(
                400,
                format!(
                    "The stream ID '{given}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
                ),
            ));
        }
        Ok(())
    }
}

/// Task/executor id rules: non-empty, at most 255 bytes, no `/`, `\` or control
/// characters, not `.` or `..`.
fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".into());
    }
    if id.len() > 255 {
        return Err("ID must not be greater than 255 characters".into());
    }
    if id == "." || id == ".." {
        return Err("'.' and '..' are disallowed".into());
    }
    if id.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err("'/' is disallowed".into());
    }
    Ok(())
}

/// FrameworkInfo validation done after the 200 (refusals become an ERROR event).
fn validate_framework_info(info: &FrameworkInfo) -> Option<String> {
    let multi = info.has_capability(&FrameworkCapabilityType::MultiRole);
    if multi && info.role.is_some() {
        return Some(
            "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable".into(),
        );
    }
    if !multi && !info.roles.is_empty() {
        return Some(
            "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
                .into(),
        );
    }
    if multi {
        let mut seen = BTreeSet::new();
        let duplicates: BTreeSet<&String> =
            info.roles.iter().filter(|r| !seen.insert(*r)).collect();
        if !duplicates.is_empty() {
            let list: Vec<&str> = duplicates.iter().map(|r| r.as_str()).collect();
            return Some(format!(
                "'FrameworkInfo.roles' contains duplicate items: {{ {} }}",
                list.join(", ")
            ));
        }
    }
    let (field, roles) = if multi {
        (
            "'FrameworkInfo.roles' contains invalid role",
            info.roles.clone(),
        )
    } else {
        (
            "'FrameworkInfo.role' is not a valid role",
            vec![info.role.clone().unwrap_or_else(|| "*".into())],
        )
    };
    for r in roles {
        if let Err(e) = validate_role(&r) {
            return Some(format!("{field}: {e}"));
        }
    }
    None
}

/// Mesos role names: not empty, not `.`/`..`, no leading `-`, no whitespace, `/` only
/// between path components (`*` is the default role).
fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err("Empty role name is invalid".into());
    }
    if role.starts_with('/') || role.ends_with('/') {
        return Err(format!("Role '{role}' cannot start or end with a slash"));
    }
    for part in role.split('/') {
        if part.is_empty() || part == "." || part == ".." || part == "*" {
            return Err(format!("Role '{role}' has an invalid component '{part}'"));
        }
        if part.starts_with('-') {
            return Err(format!("Role '{role}' cannot start with '-'"));
        }
        if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("Role '{role}' cannot contain whitespace"));
        }
    }
    Ok(())
}
