//! Agents leaving the cluster, as the Mesos master handles it (`src/master/master.cpp`,
//! `__removeSlave` and `markGone`): an agent marked unreachable (health checks timed out;
//! mesos-lite simulates it on request) or marked gone by the operator (`MARK_AGENT_GONE`).
//!
//! Its tasks get master-made updates (no uuid, never retried) — PARTITION_AWARE
//! frameworks TASK_UNREACHABLE (`REASON_AGENT_REMOVED`, `unreachable_time`) or
//! TASK_GONE_BY_OPERATOR (`REASON_AGENT_REMOVED_BY_OPERATOR`), others TASK_LOST
//! (`REASON_AGENT_REMOVED`) — its offers are rescinded, and every connected framework
//! gets FAILURE with the agent's id. A removed agent never comes back: mesos-lite's
//! agents live in its process, so "unreachable" means the simulated machine died and the
//! agent's task processes are killed.

use std::time::Duration;

use super::{KillRequest, Master, Task, status};
use crate::wire::*;

/// Unreachable tasks kept per framework for `/state` and GET_TASKS.
const MAX_UNREACHABLE_TASKS: usize = 1000;

/// Why an agent is no longer registered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Removal {
    /// Marked unreachable at this time (epoch seconds).
    Unreachable(f64),
    /// Marked gone by the operator at this time (epoch seconds).
    Gone(f64),
}

/// Why an agent could not be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// No agent has this id.
    NotFound(String),
    /// The agent is already unreachable or gone.
    AlreadyRemoved(String),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::NotFound(id) => write!(f, "Agent '{id}' not found"),
            AgentError::AlreadyRemoved(id) => {
                write!(f, "Agent '{id}' is already unreachable or gone")
            }
        }
    }
}

/// The master's message for tasks of an agent that failed its health checks.
const UNREACHABLE_MESSAGE: &str = "health check timed out";
/// The master's message for tasks of an agent marked gone.
const GONE_MESSAGE: &str = "Agent has been marked gone";

fn time_info(secs: f64) -> TimeInfo {
    TimeInfo {
        nanoseconds: (secs * 1e9) as i64,
    }
}

impl Master {
    /// Whether agent `index` is registered (neither unreachable nor gone).
    pub fn agent_registered(&self, index: usize) -> bool {
        self.agents.get(index).is_some_and(|a| a.removed.is_none())
    }

    /// Marks a registered agent unreachable, as the master does when its health checks
    /// time out (mesos-lite only: there is no real agent to lose).
    pub fn lose_agent(&mut self, agent_id: &str) -> Result<(), AgentError> {
        let index = self
            .agent_index(agent_id)
            .ok_or_else(|| AgentError::NotFound(agent_id.to_owned()))?;
        if !self.agent_registered(index) {
            return Err(AgentError::AlreadyRemoved(agent_id.to_owned()));
        }
        tracing::warn!(agent_id, "marking agent unreachable: {UNREACHABLE_MESSAGE}");
        self.remove_agent(index, Removal::Unreachable(now_secs()));
        Ok(())
    }

    /// MARK_AGENT_GONE: a registered agent is removed with its tasks; the tasks of an
    /// unreachable one become gone; marking a gone agent again is a no-op.
    pub fn mark_agent_gone(&mut self, agent_id: &str) -> Result<(), AgentError> {
        let index = self
            .agent_index(agent_id)
            .ok_or_else(|| AgentError::NotFound(agent_id.to_owned()))?;
        let now = now_secs();
        match self.agents[index].removed {
            None => {
                tracing::warn!(agent_id, "marking agent gone");
                self.remove_agent(index, Removal::Gone(now));
            }
            Some(Removal::Unreachable(_)) => {
                tracing::warn!(agent_id, "marking unreachable agent gone");
                self.agents[index].removed = Some(Removal::Gone(now));
                self.unreachable_tasks_gone(index);
            }
            Some(Removal::Gone(_)) => {}
        }
        Ok(())
    }

    /// `__removeSlave`: updates for the agent's tasks, its offers rescinded, FAILURE.
    fn remove_agent(&mut self, index: usize, removal: Removal) {
        self.agents[index].removed = Some(removal);
        let agent_id = self.agents[index].id.clone();
        for fw in self.frameworks.values_mut() {
            let pa = fw.partition_aware();
            let (state, reason, message) = match (removal, pa) {
                (Removal::Unreachable(_), true) => (
                    TaskState::Unreachable,
                    TaskStatusReason::AgentRemoved,
                    UNREACHABLE_MESSAGE,
                ),
                (Removal::Unreachable(_), false) => (
                    TaskState::Lost,
                    TaskStatusReason::AgentRemoved,
                    UNREACHABLE_MESSAGE,
                ),
                (Removal::Gone(_), true) => (
                    TaskState::GoneByOperator,
                    TaskStatusReason::AgentRemovedByOperator,
                    GONE_MESSAGE,
                ),
                (Removal::Gone(_), false) => (
                    TaskState::Lost,
                    TaskStatusReason::AgentRemoved,
                    GONE_MESSAGE,
                ),
            };
            let ids: Vec<String> = fw
                .tasks
                .iter()
                .filter(|(_, t)| t.agent == index)
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                let Some(mut task) = fw.tasks.remove(&id) else {
                    continue;
                };
                let mut st = status(
                    &id,
                    state.clone(),
                    TaskStatusSource::Master,
                    Some(reason.clone()),
                    Some(message.to_owned()),
                    Some(&agent_id),
                );
                st.executor_id = task_executor(&task);
                if let Removal::Unreachable(at) = removal {
                    st.unreachable_time = Some(time_info(at));
                }
                retire(&mut task, &st);
                fw.send(Event::update(st));
                match removal {
                    Removal::Unreachable(_) => {
                        fw.unreachable_tasks.push_back(task);
                        while fw.unreachable_tasks.len() > MAX_UNREACHABLE_TASKS {
                            fw.unreachable_tasks.pop_front();
                        }
                    }
                    Removal::Gone(_) => {
                        fw.tasks.insert(id.clone(), task);
                        Master::complete_task(fw, &id);
                    }
                }
            }
        }
        self.reap_group_executors();
        self.group_executors.retain(|_, (agent, _)| *agent != index);
        self.filters.retain(|f| f.agent != index);
        let rescinded: Vec<(String, String)> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent == index)
            .map(|(id, o)| (id.clone(), o.framework_id.clone()))
            .collect();
        for (offer_id, framework_id) in rescinded {
            self.offers.remove(&offer_id);
            if let Some(fw) = self.frameworks.get(&framework_id) {
                fw.send(Event::rescind(OfferId::new(offer_id)));
            }
        }
        // `sendSlaveLost`: every connected framework learns the agent is lost.
        for fw in self.frameworks.values() {
            fw.send(Event::failure(
                Some(AgentId::new(agent_id.clone())),
                None,
                None,
            ));
        }
    }

    /// `markGone` of an unreachable agent: its unreachable tasks are gone for good.
    fn unreachable_tasks_gone(&mut self, index: usize) {
        let agent_id = self.agents[index].id.clone();
        for fw in self.frameworks.values_mut() {
            let (state, reason) = if fw.partition_aware() {
                (
                    TaskState::GoneByOperator,
                    TaskStatusReason::AgentRemovedByOperator,
                )
            } else {
                (TaskState::Lost, TaskStatusReason::AgentRemoved)
            };
            let (mine, others): (Vec<Task>, Vec<Task>) = fw
                .unreachable_tasks
                .drain(..)
                .partition(|t| t.agent == index);
            fw.unreachable_tasks = others.into();
            for mut task in mine {
                let mut st = status(
                    &task.info.task_id.value,
                    state.clone(),
                    TaskStatusSource::Master,
                    Some(reason.clone()),
                    Some(GONE_MESSAGE.to_owned()),
                    Some(&agent_id),
                );
                st.executor_id = task_executor(&task);
                task.state = state.clone();
                task.statuses.push(st.clone());
                fw.send(Event::update(st));
                fw.completed_tasks.push_back(task);
            }
            while fw.completed_tasks.len() > super::MAX_COMPLETED_TASKS {
                fw.completed_tasks.pop_front();
            }
        }
    }
}

/// The executor id Mesos puts in a task's updates: none for command tasks.
fn task_executor(task: &Task) -> Option<ExecutorId> {
    (!task.command_executor).then(|| ExecutorId::new(task.executor_id.clone()))
}

/// The task leaves its (dead) agent: its state becomes the update's unless it already
/// ended, nothing more is retried, and its processes are killed at once.
fn retire(task: &mut Task, update: &TaskStatus) {
    if !task.state.is_terminal() {
        task.state = update.state.clone();
    }
    task.statuses.push(update.clone());
    task.released = true;
    task.pending.clear();
    task.next_retry = None;
    if let Some(tx) = task.kill_tx.take() {
        let _ = tx.send(KillRequest {
            grace: Duration::ZERO,
            send_killing: false,
        });
    }
}
