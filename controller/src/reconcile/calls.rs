//! The reconciler's way out to Mesos: it only *describes* calls ([`MesosCall`]) on a
//! channel; [`dispatch`] makes them with the scheduler client and reports the results
//! the state must react to as [`Feedback`]. The state itself does no I/O, so tests can
//! drive it with offers and updates and assert on the calls it asks for.

use mesos_v1::{
    AgentId, Filters, OfferId, ReconcileTask, SchedulerHandle, TaskId, TaskInfo, TaskStatus,
};
use tokio::sync::mpsc;

use super::state::Feedback;

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
/// so the master ends in the state the reconciler asked for last.
pub async fn dispatch(
    handle: SchedulerHandle,
    mut calls: mpsc::UnboundedReceiver<MesosCall>,
    feedback: mpsc::UnboundedSender<Feedback>,
) {
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
                tokio::spawn(async move { make(&handle, call, &feedback).await });
            }
        }
    }
}

async fn make(
    handle: &SchedulerHandle,
    call: MesosCall,
    feedback: &mpsc::UnboundedSender<Feedback>,
) {
    match call {
        MesosCall::Launch {
            offer_id,
            tasks,
            refuse_seconds,
        } => {
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
