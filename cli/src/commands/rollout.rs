//! `concord rollout status NAME [--timeout D]` and `concord rollout undo NAME`

use std::time::{Duration, Instant};

use concord_schemas::api::WatchEventType;
use concord_schemas::{ConditionStatus, Topology, condition_type};
use futures::StreamExt;

use crate::Failure;
use crate::client::Client;

/// Waits until the latest generation is observed and Ready, printing progress.
/// Exit 0 when it is; 1 when the topology is Degraded, deleted, or the timeout passes.
///
/// One watch stays open and its events are taken in order; after a disconnect it
/// resumes from the last event's revision (status changes do not move the spec's
/// resourceVersion, so that would replay stale events).
pub async fn status(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<u8, Failure> {
    let deadline = Instant::now() + timeout;
    let mut last_line = String::new();
    // Fail fast with a clear message when the topology does not exist.
    client.get(ns, name).await?;
    let mut after: Option<String> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::invalid(format!(
                "topology/{name}: not rolled out after {timeout:?}: {last_line}"
            )));
        }
        let events = match client.watch(Some(ns), Some(name), after.as_deref()).await {
            Ok(events) => events,
            Err(e @ crate::client::ClientError::Unreachable { .. }) => {
                eprintln!("warning: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1).min(left)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        futures::pin_mut!(events);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = match tokio::time::timeout(left, events.next()).await {
                Err(_) => {
                    return Err(Failure::invalid(format!(
                        "topology/{name}: not rolled out after {timeout:?}: {last_line}"
                    )));
                }
                Ok(next) => next,
            };
            let Some(Ok(event)) = next else { break };
            if event.kind == WatchEventType::Error {
                // 410: too old, start from the current state; otherwise resume.
                after = if event.code == Some(410) {
                    None
                } else {
                    Some(event.revision)
                };
                break;
            }
            after = Some(event.revision.clone());
            if event.kind == WatchEventType::Deleted {
                return Err(Failure::invalid(format!("topology/{name} was deleted")));
            }
            let Some(current) = event.object else {
                continue;
            };
            match verdict(&current) {
                Verdict::Done => {
                    println!(
                        "topology/{name} successfully rolled out (generation {})",
                        current.metadata.generation.unwrap_or(0)
                    );
                    return Ok(0);
                }
                Verdict::Failed(why) => {
                    return Err(Failure::invalid(format!("topology/{name}: {why}")));
                }
                Verdict::Waiting(line) if line != last_line => {
                    println!("{line}");
                    last_line = line;
                }
                Verdict::Waiting(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

enum Verdict {
    Done,
    Waiting(String),
    Failed(String),
}

fn verdict(t: &Topology) -> Verdict {
    let generation = t.metadata.generation.unwrap_or(0);
    let Some(status) = &t.status else {
        return Verdict::Waiting("Waiting for the controller to observe the topology...".into());
    };
    if status.observed_generation < generation {
        return Verdict::Waiting(format!(
            "Waiting for the controller to observe generation {generation}..."
        ));
    }
    // A problem a running task reports (its broker is down, its topic missing) is
    // shown by `describe` but is not a failed rollout: the tasks are running.
    if let Some(c) = status.condition(condition_type::DEGRADED).filter(|c| {
        c.status == ConditionStatus::True
            && c.reason != concord_schemas::condition_reason::OPERATOR_PROBLEM
    }) {
        return Verdict::Failed(format!("degraded ({}): {}", c.reason, c.message));
    }
    if status
        .condition(condition_type::READY)
        .is_some_and(|c| c.status == ConditionStatus::True)
    {
        return Verdict::Done;
    }
    let parts: Vec<String> = status
        .operators
        .iter()
        .filter(|o| o.ready != o.desired || o.updated != o.desired || o.running != o.desired)
        .map(|o| {
            format!(
                "{} {}/{} updated, {} ready",
                o.name, o.updated, o.desired, o.ready
            )
        })
        .collect();
    if parts.is_empty() {
        // Counts match: what is left is old tasks going away, or Ready being confirmed.
        let extra: usize = status
            .operators
            .iter()
            .map(|o| o.tasks.len().saturating_sub(o.desired as usize))
            .sum();
        return Verdict::Waiting(if extra > 0 {
            format!("Waiting for rollout to finish: {extra} old task(s) terminating")
        } else {
            "Waiting for rollout to finish: confirming readiness".into()
        });
    }
    Verdict::Waiting(format!(
        "Waiting for rollout to finish: {}",
        parts.join("; ")
    ))
}

/// Re-applies the spec of the last generation that became Ready.
pub async fn undo(client: &Client, ns: &str, name: &str) -> Result<u8, Failure> {
    let answer = client.rollback(ns, name).await?;
    println!(
        "topology/{name} rolled back ({}, now generation {})",
        answer.outcome,
        answer.object.metadata.generation.unwrap_or(0)
    );
    for line in answer.plan.to_string().lines() {
        println!("  {line}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_schemas::{OperatorStatus, TaskSummary, TopologyStatus};

    fn topology(tasks: usize, desired: u32, ready: u32) -> Topology {
        let yaml = b"apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  operators:\n    - name: gen\n      runtime: {builtin: {name: generator}}\n";
        let mut t = concord_schemas::parse_yaml(yaml, "t.yaml")
            .expect("valid")
            .remove(0);
        t.metadata.generation = Some(2);
        t.status = Some(TopologyStatus {
            observed_generation: 2,
            operators: vec![OperatorStatus {
                name: "gen".into(),
                desired,
                running: desired,
                updated: desired,
                ready,
                tasks: vec![TaskSummary::default(); tasks],
                ..OperatorStatus::default()
            }],
            ..TopologyStatus::default()
        });
        t
    }

    fn waiting(t: &Topology) -> String {
        match verdict(t) {
            Verdict::Waiting(s) => s,
            _ => panic!("expected to wait"),
        }
    }

    #[test]
    fn a_running_task_s_problem_does_not_fail_the_rollout_but_a_crash_loop_does() {
        let degraded = |reason: &str| {
            let mut t = topology(3, 3, 3);
            let status = t.status.as_mut().expect("status");
            for (type_, st, r) in [
                (
                    condition_type::READY,
                    ConditionStatus::True,
                    "AllInstancesReady",
                ),
                (condition_type::DEGRADED, ConditionStatus::True, reason),
            ] {
                status.conditions.push(concord_schemas::Condition {
                    type_: type_.into(),
                    status: st,
                    reason: r.into(),
                    message: "gen[0]: kafka: 1/1 brokers are down".into(),
                    last_transition_time: None,
                });
            }
            t
        };
        assert!(matches!(
            verdict(&degraded("OperatorProblem")),
            Verdict::Done
        ));
        assert!(matches!(
            verdict(&degraded("CrashLoopBackOff")),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn waiting_always_says_for_what() {
        assert_eq!(
            waiting(&topology(3, 3, 2)),
            "Waiting for rollout to finish: gen 3/3 updated, 2 ready"
        );
        assert_eq!(
            waiting(&topology(4, 3, 3)),
            "Waiting for rollout to finish: 1 old task(s) terminating"
        );
        assert_eq!(
            waiting(&topology(3, 3, 3)),
            "Waiting for rollout to finish: confirming readiness"
        );
    }
}
