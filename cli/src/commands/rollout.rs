//! `concord rollout status NAME [--timeout D]` and `concord rollout undo NAME`

use std::time::{Duration, Instant};

use concord_schemas::{ConditionStatus, Topology, condition_type};
use futures::StreamExt;

use crate::Failure;
use crate::client::Client;

/// Waits until the latest generation is observed and Ready, printing progress.
/// Exit 0 when it is; 1 when the topology is Degraded or the timeout passes.
pub async fn status(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<u8, Failure> {
    let deadline = Instant::now() + timeout;
    let mut last_line = String::new();
    let mut current = client.get(ns, name).await?;
    loop {
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::invalid(format!(
                "topology/{name}: not rolled out after {timeout:?}: {last_line}"
            )));
        }
        // Wait for the next change (or re-read after a short while if the watch ends).
        let next = async {
            let events = client
                .watch(
                    Some(ns),
                    Some(name),
                    current.metadata.resource_version.as_deref(),
                )
                .await
                .ok()?;
            futures::pin_mut!(events);
            while let Some(ev) = events.next().await {
                if let Ok(ev) = ev
                    && let Some(obj) = ev.object
                {
                    return Some(obj);
                }
            }
            None
        };
        match tokio::time::timeout(left.min(Duration::from_secs(5)), next).await {
            Ok(Some(obj)) => current = obj,
            _ => current = client.get(ns, name).await?,
        }
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
    if let Some(c) = status
        .condition(condition_type::DEGRADED)
        .filter(|c| c.status == ConditionStatus::True)
    {
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
