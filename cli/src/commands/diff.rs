//! `concord diff -f FILE`: per-operator plan against what is stored.
//!
//! The plan is computed by the controller from normalised specs (defaults applied), so
//! `diff` right after `apply` of the same file is always empty.

use concord_schemas::api::ApplyOutcome;

use crate::client::Client;
use crate::{Failure, input};

/// Exit 0 when nothing would change, 1 when something would, 2 on bad input, 3 unreachable.
pub async fn run(client: &Client, files: &[String]) -> Result<u8, Failure> {
    let docs = input::load(files).map_err(|mut f| {
        f.code = 2;
        f
    })?;
    let mut differs = false;
    for (label, topology) in docs {
        let answer = client.apply(&topology, true).await.map_err(|e| {
            let mut f = Failure::from(e);
            if f.code == 1 {
                f.code = 2;
            }
            f.message = format!(
                "{label}: topology/{}: {}",
                topology.metadata.name, f.message
            );
            f
        })?;
        let name = &topology.metadata.name;
        match answer.outcome {
            ApplyOutcome::Unchanged if answer.plan.is_empty() => {}
            ApplyOutcome::Created => {
                differs = true;
                println!("topology/{name}: would be created");
                for line in answer.plan.to_string().lines() {
                    println!("  {line}");
                }
            }
            _ => {
                differs = true;
                println!("topology/{name}:");
                if answer.plan.is_empty() {
                    println!("  metadata (labels or annotations) changed; no operator changes");
                }
                for line in answer.plan.to_string().lines() {
                    println!("  {line}");
                }
            }
        }
    }
    Ok(u8::from(differs))
}
