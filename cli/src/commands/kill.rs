//! `concord kill TASK_ID`

use crate::Failure;
use crate::client::Client;

/// Kills one task. Task IDs look like `<namespace>.<topology>.<operator>.<instance>.<hash>.<suffix>`.
pub async fn run(client: &Client, task: &str) -> Result<u8, Failure> {
    let parts: Vec<&str> = task.split('.').collect();
    let [ns, topology, ..] = parts.as_slice() else {
        return Err(Failure {
            code: 2,
            message: format!(
                "{task:?} is not a Concord task ID (<namespace>.<topology>.<operator>.<instance>.<hash>.<suffix>); see `concord describe topology NAME`"
            ),
        });
    };
    if parts.len() != 6 {
        return Err(Failure {
            code: 2,
            message: format!(
                "{task:?} is not a Concord task ID; see `concord describe topology NAME`"
            ),
        });
    }
    client.kill(ns, topology, task).await?;
    println!("task/{task} killed; the controller will replace it");
    Ok(0)
}
