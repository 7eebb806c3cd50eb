//! `concord scale topology NAME --operator OP --instances N`

use crate::Failure;
use crate::client::Client;

/// Edits the stored spec: read, change one operator's `instances`, write back with the
/// revision read, so a concurrent change is refused rather than overwritten.
pub async fn run(
    client: &Client,
    ns: &str,
    name: &str,
    operator: &str,
    instances: u32,
) -> Result<u8, Failure> {
    let mut topology = client.get(ns, name).await?;
    topology.status = None;
    let Some(op) = topology
        .spec
        .operators
        .iter_mut()
        .find(|o| o.name == operator)
    else {
        let names: Vec<&str> = topology
            .spec
            .operators
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        return Err(Failure::invalid(format!(
            "topology/{name} has no operator {operator:?}; it has: {}",
            names.join(", ")
        )));
    };
    let from = op.instances;
    op.instances = instances;
    let answer = client.apply(&topology, false).await?;
    println!(
        "topology/{name} scaled ({operator}: {from} -> {instances}, {})",
        answer.outcome
    );
    Ok(0)
}
