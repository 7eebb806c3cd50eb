//! The agent's status update manager: a per-task ordered queue whose head is in flight
//! (resent with doubling intervals) until the scheduler acknowledges it.

use std::time::{Duration, Instant};

use super::Master;
use crate::wire::*;

/// Mesos caps the retry interval at 10 minutes.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(600);

impl Master {
    /// An update from a task's executor or agent (it carries a uuid and is retried).
    pub fn agent_update(&mut self, framework_id: &str, task_id: &str, mut update: TaskStatus) {
        let initial = self.config.status_update_retry_interval;
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            tracing::debug!(
                framework_id,
                task_id,
                "dropping update for removed framework"
            );
            return;
        };
        let connected = fw.connected();
        let stream = fw.stream.clone();
        let Some(task) = fw.tasks.get_mut(task_id) else {
            tracing::debug!(framework_id, task_id, "dropping update for unknown task");
            return;
        };
        if task.state.is_terminal() {
            // Nothing follows a terminal update.
            return;
        }
        if update.uuid.is_none() {
            update.uuid = Some(Bytes::new(uuid::Uuid::new_v4().as_bytes().to_vec()));
        }
        tracing::info!(
            framework_id,
            task_id,
            state = update.state.as_str(),
            message = update.message.as_deref().unwrap_or(""),
            "status update"
        );
        task.state = update.state.clone();
        task.statuses.push(update.clone());
        if update.state.is_terminal() && !task.released {
            task.released = true;
        }
        task.pending.push_back(update.clone());
        let terminal = update.state.is_terminal();
        let failed_or_killed = matches!(update.state, TaskState::Failed | TaskState::Killed);
        if task.pending.len() == 1 {
            task.retry_interval = initial;
            task.next_retry = Some(Instant::now() + initial);
            if connected && let Some(s) = &stream {
                s.send(Event::update(update));
            }
        }
        if terminal {
            if failed_or_killed {
                self.kill_task_group_of(framework_id, task_id);
            }
            self.reap_group_executors();
        }
    }

    /// A task of a group ended FAILED or KILLED: the default executor kills the rest of
    /// its group.
    fn kill_task_group_of(&mut self, framework_id: &str, task_id: &str) {
        let default_grace = self.config.default_kill_grace_period;
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let send_killing = fw
            .info
            .has_capability(&FrameworkCapabilityType::TaskKillingState);
        let Some(group) = fw.tasks.get(task_id).map(|t| t.group.clone()) else {
            return;
        };
        for sibling in group.iter().filter(|id| id.as_str() != task_id) {
            let Some(t) = fw.tasks.get(sibling) else {
                continue;
            };
            if t.state.is_terminal() {
                continue;
            }
            let grace = t
                .info
                .kill_policy
                .as_ref()
                .and_then(|k| k.grace_period)
                .map_or(default_grace, |g| g.to_duration());
            if let Some(tx) = &t.kill_tx {
                tracing::info!(framework_id, task_id = %sibling, "killing the rest of a task group");
                let _ = tx.send(super::KillRequest {
                    grace,
                    send_killing,
                });
            }
        }
    }

    /// ACKNOWLEDGE: pops the head if the uuid matches, then sends the next one.
    pub fn acknowledge(&mut self, framework_id: &str, task_id: &str, uuid: &Bytes) {
        let initial = self.config.status_update_retry_interval;
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let stream = fw.stream.clone();
        let Some(task) = fw.tasks.get_mut(task_id) else {
            tracing::warn!(framework_id, task_id, "acknowledgement for unknown task");
            return;
        };
        match task.pending.front() {
            Some(head) if head.uuid.as_ref() == Some(uuid) => {
                task.pending.pop_front();
            }
            _ => {
                tracing::warn!(
                    framework_id,
                    task_id,
                    "acknowledgement does not match the pending update"
                );
                return;
            }
        }
        task.retry_interval = initial;
        if let Some(next) = task.pending.front() {
            task.next_retry = Some(Instant::now() + initial);
            if let Some(s) = &stream {
                s.send(Event::update(next.clone()));
            }
        } else {
            task.next_retry = None;
            if task.state.is_terminal() {
                Master::complete_task(fw, task_id);
            }
        }
    }

    /// Resends every due head (called by a ticker).
    pub fn retry_updates(&mut self) {
        let now = Instant::now();
        for fw in self.frameworks.values_mut() {
            let Some(stream) = fw.stream.clone() else {
                continue;
            };
            for task in fw.tasks.values_mut() {
                let (Some(at), Some(head)) = (task.next_retry, task.pending.front()) else {
                    continue;
                };
                if at > now {
                    continue;
                }
                task.retry_interval = (task.retry_interval * 2).min(MAX_RETRY_INTERVAL);
                task.next_retry = Some(now + task.retry_interval);
                tracing::debug!(framework_id = %fw.id, task_id = %head.task_id, "resending unacknowledged update");
                stream.send(Event::update(head.clone()));
            }
        }
    }

    /// On (re)subscription every head is resent at once.
    pub(super) fn resend_heads(&mut self, framework_id: &str) {
        let initial = self.config.status_update_retry_interval;
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some(stream) = fw.stream.clone() else {
            return;
        };
        for task in fw.tasks.values_mut() {
            if let Some(head) = task.pending.front() {
                task.retry_interval = initial;
                task.next_retry = Some(Instant::now() + initial);
                stream.send(Event::update(head.clone()));
            }
        }
    }
}
