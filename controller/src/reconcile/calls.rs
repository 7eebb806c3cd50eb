//! The reconciler's way out to Mesos: it only *describes* calls ([`MesosCall`]) on a
//! channel; [`dispatch`] makes them with the scheduler client and reports the results
//! the state must react to as [`Feedback`]. The state itself does no I/O, so tests can
//! drive it with offers and updates and assert on the calls it asks for.

use mesos_v1::{
    AgentId, Filters, OfferId, ReconcileTask, SchedulerHandle, TaskId, TaskInfo, TaskStatus,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::identity::TaskName;
use super::launch::attach_dataplane_secret;
use super::state::Feedback;
use crate::store::{Store, StoreError};

/// A call to the Mesos master, as the reconciler wants it made.
#[derive(Debug, Clone, PartialEq)]
pub enum MesosCall {
    /// ACCEPT one offer with a LAUNCH of `tasks`; unused resources refused for `refuse_seconds`.
    Launch {
        offer_id: OfferId,
        tasks: Vec<TaskInfo>,
        refuse_seconds: f64,
    },
    /// DECLINE one offer, refusing its resources for `refuse_seconds`.
    Decline {
        offer_id: OfferId,
        refuse_seconds: f64,
    },
    /// KILL a task.
    Kill {
        task_id: String,
        agent_id: Option<String>,
    },
    /// ACKNOWLEDGE a status update (it carries a uuid).
    Acknowledge(Box<TaskStatus>),
    /// RECONCILE: first explicitly for `explicit` (if any), then implicitly if `implicit`.
    Reconcile {
        explicit: Vec<ReconcileTask>,
        implicit: bool,
    },
    /// SUPPRESS offers for every role.
    Suppress,
    /// REVIVE offers for every role (also clears refuse filters).
    Revive,
    /// Forget the framework id: the next subscription registers a new framework.
    ForgetFrameworkId,
}

/// Makes the reconciler's calls until its sender is dropped. Calls run concurrently,
/// except SUPPRESS and REVIVE, which are made one after the other in the order asked,
/// so the master ends in the state the reconciler asked for last. Launched tasks get
/// their topology's data-plane secret from `store` here (created on the first launch).
pub async fn dispatch(
    handle: SchedulerHandle,
    store: Store,
    mut calls: mpsc::UnboundedReceiver<MesosCall>,
    feedback: mpsc::UnboundedSender<Feedback>,
) {
    let known = KnownSecrets::default();
    let (mode_tx, mut mode_rx) = mpsc::unbounded_channel::<bool>();
    {
        let handle = handle.clone();
        let feedback = feedback.clone();
        tokio::spawn(async move {
            while let Some(revive) = mode_rx.recv().await {
                let result = if revive {
                    handle.revive(Vec::new()).await
                } else {
                    handle.suppress(Vec::new()).await
                };
                let _ = feedback.send(Feedback::OfferMode {
                    revive,
                    error: result.err().map(|e| e.to_string()),
                });
            }
        });
    }
    while let Some(call) = calls.recv().await {
        match call {
            MesosCall::Suppress => {
                let _ = mode_tx.send(false);
            }
            MesosCall::Revive => {
                let _ = mode_tx.send(true);
            }
            MesosCall::ForgetFrameworkId => handle.set_framework_id(None),
            call => {
                let handle = handle.clone();
                let feedback = feedback.clone();
                let store = store.clone();
                let known = known.clone();
                tokio::spawn(async move { make(&handle, &store, &known, call, &feedback).await });
            }
        }
    }
}

/// The data-plane secrets this controller has read or created, by (namespace, topology).
/// A topology's secret does not change while it exists, so when etcd cannot be read
/// (an outage) a task replaced meanwhile still gets the one its peers hold, instead of
/// failing to launch over and over until etcd is back.
#[derive(Clone, Default)]
struct KnownSecrets(Arc<Mutex<HashMap<TopologyKey, Vec<u8>>>>);

/// (namespace, name).
type TopologyKey = (String, String);

impl KnownSecrets {
    fn get(&self, topology: &TopologyKey) -> Option<Vec<u8>> {
        self.0.lock().ok()?.get(topology).cloned()
    }

    fn remember(&self, topology: &TopologyKey, secret: &[u8]) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(topology.clone(), secret.to_vec());
        }
    }
}

/// Gives every task its topology's data-plane secret (one etcd read per topology; the
/// one known from before when etcd cannot be reached). Returns the tasks that have it and
/// the IDs of those that could not get it, with why.
async fn with_secrets(
    store: &Store,
    known: &KnownSecrets,
    tasks: Vec<TaskInfo>,
) -> (Vec<TaskInfo>, Vec<String>, Option<String>) {
    let mut secrets: std::collections::HashMap<(String, String), Result<Vec<u8>, String>> =
        std::collections::HashMap::new();
    let (mut ready, mut failed, mut reason) = (Vec::new(), Vec::new(), None);
    for mut task in tasks {
        let id = task.task_id.as_str().to_owned();
        let Some(name) = TaskName::parse(&id) else {
            failed.push(id);
            reason = Some("task ID names no topology".to_owned());
            continue;
        };
        let topology = (name.namespace, name.topology);
        if !secrets.contains_key(&topology) {
            let got = match store
                .ensure_dataplane_secret(&topology.0, &topology.1)
                .await
            {
                Ok(secret) => {
                    known.remember(&topology, &secret);
                    Ok(secret)
                }
                // Only an unreachable etcd falls back: a topology that is gone, or a
                // fenced (deposed) controller, must not launch.
                Err(e @ StoreError::Etcd(_)) => known
                    .get(&topology)
                    .ok_or_else(|| format!("data-plane secret: {e}")),
                Err(e) => Err(format!("data-plane secret: {e}")),
            };
            secrets.insert(topology.clone(), got);
        }
        match secrets.get(&topology) {
            Some(Ok(secret)) => {
                attach_dataplane_secret(&mut task, secret);
                ready.push(task);
            }
            Some(Err(e)) => {
                failed.push(id);
                reason = Some(e.clone());
            }
            None => failed.push(id),
        }
    }
    (ready, failed, reason)
}

async fn make(
    handle: &SchedulerHandle,
    store: &Store,
    known: &KnownSecrets,
    call: MesosCall,
    feedback: &mpsc::UnboundedSender<Feedback>,
) {
    match call {
        MesosCall::Launch {
            offer_id,
            tasks,
            refuse_seconds,
        } => {
            let (tasks, failed, reason) = with_secrets(store, known, tasks).await;
            if !failed.is_empty() {
                let reason = reason.unwrap_or_default();
                tracing::warn!(tasks = ?failed, %reason, "not launched: no data-plane secret");
                let _ = feedback.send(Feedback::LaunchFailed {
                    task_ids: failed,
                    reason,
                });
            }
            if tasks.is_empty() {
                // Nothing left to launch: give the offer back, briefly.
                if let Err(e) = handle
                    .decline(
                        vec![offer_id],
                        Some(Filters::refuse_seconds(refuse_seconds)),
                    )
                    .await
                {
                    tracing::debug!(error = %e, "decline failed");
                }
                return;
            }
            let task_ids: Vec<String> = tasks
                .iter()
                .map(|t| t.task_id.as_str().to_owned())
                .collect();
            if let Err(e) = handle
                .launch(
                    vec![offer_id],
                    tasks,
                    Some(Filters::refuse_seconds(refuse_seconds)),
                )
                .await
            {
                let _ = feedback.send(Feedback::LaunchFailed {
                    task_ids,
                    reason: e.to_string(),
                });
            }
        }
        MesosCall::Decline {
            offer_id,
            refuse_seconds,
        } => {
            if let Err(e) = handle
                .decline(
                    vec![offer_id],
                    Some(Filters::refuse_seconds(refuse_seconds)),
                )
                .await
            {
                // The offer is void after a disconnection anyway; a live master re-offers
                // what it still holds for us after a re-subscription.
                tracing::debug!(error = %e, "decline failed");
            }
        }
        MesosCall::Kill { task_id, agent_id } => {
            if let Err(e) = handle
                .kill(
                    TaskId::new(task_id.clone()),
                    agent_id.map(AgentId::new),
                    None,
                )
                .await
            {
                let _ = feedback.send(Feedback::KillFailed {
                    task_id,
                    reason: e.to_string(),
                });
            }
        }
        MesosCall::Acknowledge(status) => {
            if let Err(e) = handle.acknowledge_status(&status).await {
                tracing::debug!(error = %e, "acknowledge failed; Mesos will resend");
            }
        }
        MesosCall::Reconcile { explicit, implicit } => {
            if !explicit.is_empty()
                && let Err(e) = handle.reconcile(explicit).await
            {
                tracing::warn!(error = %e, "explicit reconciliation failed");
            }
            if implicit && let Err(e) = handle.reconcile(Vec::new()).await {
                tracing::warn!(error = %e, "implicit reconciliation failed");
            }
        }
        // Handled by `dispatch` itself.
        MesosCall::Suppress | MesosCall::Revive | MesosCall::ForgetFrameworkId => {}
    }
}
