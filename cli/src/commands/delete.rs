//! `concord delete topology NAME [--wait] [--timeout D]`

use std::time::{Duration, Instant};

use crate::Failure;
use crate::client::{Client, ClientError};

/// Requests deletion, then (by default) waits until the topology is gone.
pub async fn run(
    client: &Client,
    ns: &str,
    name: &str,
    wait: Option<Duration>,
) -> Result<u8, Failure> {
    client.delete(ns, name).await?;
    let Some(timeout) = wait else {
        println!("topology/{name} deletion requested");
        return Ok(0);
    };
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(ns, name).await {
            Err(ClientError::Rejected(s)) if s.code == 404 => break,
            Err(e) => return Err(e.into()),
            Ok(_) if Instant::now() >= deadline => {
                return Err(Failure::invalid(format!(
                    "topology/{name} is still being deleted after {timeout:?} (its tasks are stopping); check `concord describe topology {name}`"
                )));
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    println!("topology/{name} deleted");
    Ok(0)
}
