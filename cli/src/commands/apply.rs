//! `concord apply -f FILE|DIR|- [--dry-run]`

use crate::client::Client;
use crate::{Failure, input};

/// Validates every document first; applies them in order only if all are valid.
pub async fn run(client: &Client, files: &[String], dry_run: bool) -> Result<u8, Failure> {
    let docs = input::load(files)?;
    for (label, topology) in docs {
        let answer = client.apply(&topology, dry_run).await.map_err(|e| {
            let mut f = Failure::from(e);
            f.message = format!(
                "{label}: topology/{}: {}",
                topology.metadata.name, f.message
            );
            f
        })?;
        if dry_run {
            println!(
                "topology/{} {} (dry run)",
                topology.metadata.name, answer.outcome
            );
            for line in answer.plan.to_string().lines() {
                println!("  {line}");
            }
        } else {
            println!("topology/{} {}", topology.metadata.name, answer.outcome);
        }
    }
    Ok(0)
}
