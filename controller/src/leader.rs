//! Leader election on an etcd lease, and the terms it hands out.
//!
//! Every replica serves the API; only the leader acts (talks to Mesos, writes status,
//! syncs Git). A replica becomes leader by creating `<prefix>/leader` on a lease of its
//! own (TTL `--leader-lease-ttl`, default 10 s) and keeps it by renewing the lease every
//! third of the TTL. Each term starts the acting components with a [`Store`] fenced on
//! the leader key's create revision, so every write of the term fails once another
//! replica holds the key.
//!
//! A leader steps down (aborts its term, which drops the Mesos subscription and all
//! in-memory state) when a renewal was not confirmed within two thirds of the TTL,
//! measured from when the last confirmed one was sent: before etcd can let the lease
//! expire and hand the key to someone else. On SIGTERM it revokes its lease so a
//! standby takes over at once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{Fence, Store, StoreError};

/// How a standby looks for a vacant leader key.
const STANDBY_POLL: Duration = Duration::from_millis(500);

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Lease TTL; a dead leader is replaced within about this long.
    pub ttl: Duration,
    /// This replica's identity (unique per process).
    pub identity: String,
    /// Where this replica's API is reached (shown to users of standbys).
    pub api_url: String,
}

/// What the leader key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderInfo {
    pub identity: String,
    pub api_url: String,
    pub since: DateTime<Utc>,
}

/// This replica's role, as the API and `/readyz` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Electing (at start, or etcd unreachable).
    Unknown,
    /// Another replica leads (or nobody, for a moment).
    Standby { leader: Option<LeaderInfo> },
    /// This replica leads.
    Leader { since: DateTime<Utc> },
}

/// Read side of the election. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<Role>,
}

impl Leadership {
    /// The current role.
    pub fn role(&self) -> Role {
        self.rx.borrow().clone()
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        matches!(*self.rx.borrow(), Role::Leader { .. })
    }

    /// Changes of the role.
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.rx.clone()
    }

    /// One line for `/readyz` and error messages.
    pub fn describe(&self) -> Result<String, String> {
        match self.role() {
            Role::Leader { since } => Ok(format!("this replica leads since {since}")),
            Role::Standby {
                leader: Some(leader),
            } => Err(format!(
                "standby; the leader is {} ({})",
                leader.identity, leader.api_url
            )),
            Role::Standby { leader: None } => Err("standby; no leader at the moment".into()),
            Role::Unknown => Err("electing (etcd unreachable?)".into()),
        }
    }
}

/// Starts what a leader runs for one term, given the fenced store.
pub type StartTerm = Box<dyn Fn(Store) -> Vec<JoinHandle<()>> + Send + Sync>;

/// Creates the election's shared state.
pub fn channel() -> (watch::Sender<Role>, Leadership) {
    let (tx, rx) = watch::channel(Role::Unknown);
    (tx, Leadership { rx })
}

/// Runs the election until `stop` fires; then ends the term and revokes the lease.
pub async fn run(
    store: Store,
    config: LeaderConfig,
    role: watch::Sender<Role>,
    start_term: StartTerm,
    mut stop: watch::Receiver<bool>,
) {
    let key = store.leader_key();
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        match campaign(&store, &key, &config).await {
            Ok(Some((lease, fence, since))) => {
                backoff = Duration::from_millis(200);
                tracing::info!(identity = %config.identity, revision = fence.revision, "became the leader");
                let _ = role.send(Role::Leader { since });
                let term = start_term(store.fenced(fence.clone()));
                let ended = hold(&store, lease, &fence, &config, &mut stop).await;
                for task in &term {
                    task.abort();
                }
                for task in term {
                    let _ = task.await;
                }
                let _ = role.send(Role::Standby { leader: None });
                let mut client = store.client();
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), client.lease_revoke(lease)).await;
                match ended {
                    TermEnd::Stopped => {
                        tracing::info!("stepped down for shutdown; lease revoked");
                        return;
                    }
                    TermEnd::Lost(reason) => {
                        tracing::warn!(%reason, "stepped down");
                    }
                }
            }
            Ok(None) => {
                backoff = Duration::from_millis(200);
                let leader = current_leader(&store, &key).await.ok().flatten();
                let _ = role.send(Role::Standby { leader });
                wait_or_stop(STANDBY_POLL, &mut stop).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election: etcd unreachable; retrying");
                let _ = role.send(Role::Unknown);
                wait_or_stop(backoff, &mut stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn wait_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

async fn current_leader(store: &Store, key: &str) -> Result<Option<LeaderInfo>, StoreError> {
    let resp = store.client().get(key, None).await?;
    Ok(resp
        .kvs()
        .first()
        .and_then(|kv| serde_json::from_slice(kv.value()).ok()))
}

/// Tries once to take the vacant key. `Some((lease, fence, since))` when this replica
/// now leads.
async fn campaign(
    store: &Store,
    key: &str,
    config: &LeaderConfig,
) -> Result<Option<(i64, Fence, DateTime<Utc>)>, StoreError> {
    let mut client = store.client();
    // Cheap check first, so standbys do not grant a lease every poll.
    if !client.get(key, None).await?.kvs().is_empty() {
        return Ok(None);
    }
    let ttl = i64::try_from(config.ttl.as_secs().max(2)).unwrap_or(10);
    let lease = client.lease_grant(ttl, None).await?.id();
    let since = Utc::now();
    let info = LeaderInfo {
        identity: config.identity.clone(),
        api_url: config.api_url.clone(),
        since,
    };
    let value = serde_json::to_vec(&info).map_err(|source| StoreError::Encode {
        key: key.to_owned(),
        source,
    })?;
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let resp = client.txn(txn).await?;
    if !resp.succeeded() {
        let _ = client.lease_revoke(lease).await;
        return Ok(None);
    }
    let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
    Ok(Some((
        lease,
        Fence {
            key: key.to_owned(),
            revision,
        },
        since,
    )))
}

enum TermEnd {
    Stopped,
    Lost(String),
}

/// Renews the lease until it cannot be renewed in time, the key is no longer ours, or
/// `stop` fires.
async fn hold(
    store: &Store,
    lease: i64,
    fence: &Fence,
    config: &LeaderConfig,
    stop: &mut watch::Receiver<bool>,
) -> TermEnd {
    let every = config.ttl / 3;
    let must_renew_within = config.ttl * 2 / 3;
    let mut client = store.client();
    let mut last_confirmed_send = Instant::now();
    let (mut keeper, mut responses) = match client.lease_keep_alive(lease).await {
        Ok(pair) => pair,
        Err(e) => return TermEnd::Lost(format!("cannot renew the lease: {e}")),
    };
    loop {
        if *stop.borrow() {
            return TermEnd::Stopped;
        }
        let sent = Instant::now();
        let renewed = tokio::time::timeout(
            must_renew_within.saturating_sub(sent - last_confirmed_send),
            async {
                keeper.keep_alive().await?;
                responses.message().await
            },
        )
        .await;
        match renewed {
            Ok(Ok(Some(r))) if r.ttl() > 0 => last_confirmed_send = sent,
            Ok(Ok(Some(_))) => return TermEnd::Lost("the lease expired".into()),
            Ok(Ok(None)) => return TermEnd::Lost("the lease renewal stream ended".into()),
            Ok(Err(e)) => {
                // Retried (on a new renewal stream) until the deadline below.
                tracing::warn!(error = %e, "lease renewal failed");
                if let Ok(Ok(pair)) =
                    tokio::time::timeout(every, client.lease_keep_alive(lease)).await
                {
                    (keeper, responses) = pair;
                }
            }
            Err(_) => {}
        }
        if last_confirmed_send.elapsed() >= must_renew_within {
            return TermEnd::Lost(format!(
                "no lease renewal confirmed for {:?} (TTL {:?})",
                last_confirmed_send.elapsed(),
                config.ttl
            ));
        }
        // The key must still be ours (deleted by hand, or the lease lost).
        // (An unanswered read is judged by the renewal deadline above.)
        if let Ok(Ok(resp)) =
            tokio::time::timeout(every, store.client().get(fence.key.as_str(), None)).await
        {
            let ours = resp
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == fence.revision);
            if !ours {
                return TermEnd::Lost("the leader key is no longer ours".into());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}
