//! List-then-watch of an etcd prefix that never goes stale (DESIGN.md, lesson 10):
//! after a compaction, a lost stream or an error it re-lists at a fresh revision and
//! hands the full state over again, with back-off between failures.

use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::mpsc;

/// A key and its value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// What the informer reports.
#[derive(Debug)]
pub enum InformerEvent {
    /// The complete current state; replaces everything known before.
    Reset(Vec<Entry>),
    Put(Entry),
    Delete(String),
}

/// Runs until the receiver is dropped.
pub async fn run(client: Client, prefix: String, tx: mpsc::Sender<InformerEvent>) {
    let mut failures = 0u32;
    loop {
        match list_and_watch(client.clone(), &prefix, &tx).await {
            Ok(()) => return, // receiver gone
            Err(reason) => {
                failures += 1;
                let delay = Duration::from_millis((200u64 << failures.min(6)).min(10_000));
                tracing::warn!(%prefix, %reason, retry_in = ?delay, "etcd watch lost; re-listing");
                tokio::time::sleep(delay).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

async fn list_and_watch(
    mut client: Client,
    prefix: &str,
    tx: &mpsc::Sender<InformerEvent>,
) -> Result<(), String> {
    let list = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| format!("list failed: {e}"))?;
    let revision = list.header().map(|h| h.revision()).unwrap_or_default();
    let entries = list
        .kvs()
        .iter()
        .map(|kv| Entry {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        })
        .collect();
    if tx.send(InformerEvent::Reset(entries)).await.is_err() {
        return Ok(());
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1)
        .with_progress_notify();
    let mut stream = client
        .watch(prefix, Some(options))
        .await
        .map_err(|e| format!("watch failed: {e}"))?;
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return Err("watch stream ended".into()),
            Err(e) => return Err(format!("watch error: {e}")),
        };
        if resp.compact_revision() > 0 {
            return Err(format!("compacted at {}", resp.compact_revision()));
        }
        if resp.canceled() {
            return Err(format!("watch cancelled: {}", resp.cancel_reason()));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let ev = match event.event_type() {
                EventType::Put => InformerEvent::Put(Entry {
                    key,
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                }),
                EventType::Delete => InformerEvent::Delete(key),
            };
            if tx.send(ev).await.is_err() {
                return Ok(());
            }
        }
    }
}
