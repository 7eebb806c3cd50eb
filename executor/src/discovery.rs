//! Endpoint registration and discovery in etcd.
//!
//! Each executor publishes its endpoint at
//! `<prefix>/endpoints/<ns>/<topology>/<operator>/<instance>/<task_id>` on a lease it
//! keeps alive, and rewrites it with `ready: true` once initialised and connected
//! downstream. It watches `<prefix>/endpoints/<ns>/<topology>/` and routes to every
//! instance whose `inputs` name this operator. When two tasks share an instance index
//! (rolling replace) the newest (by create revision; ready ones first) gets the traffic.
//!
//! Which operators consume this one comes from the topology's spec
//! (`<prefix>/topologies/<ns>/<name>`, watched too), not from the endpoints that happen
//! to exist: a consumer with no registered instance (scaled to 0, crash-looping past
//! the lease, not started yet) is an edge with no targets, so the router counts and, under
//! at-least-once, fails the markers covering what it could not route there
//! (`docs/delivery.md`). Watching the spec keeps this right when a new generation adds or
//! removes a consumer while this task runs, without restarting it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use serde::{Deserialize, Serialize};

use crate::config::{Input, Partitioning};
use crate::router::{EdgeTable, RoutingTable, Target};
use crate::runtime::RuntimeState;

/// Lease TTL of an endpoint, seconds.
pub const LEASE_TTL: i64 = 10;

/// The value stored at an endpoint key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Mesos task ID.
    pub task_id: String,
    /// Instance index.
    pub instance: u32,
    /// `host:port` of the data port.
    pub data_addr: String,
    /// `host:port` of the metrics port.
    pub metrics_addr: String,
    /// Template hash of the running spec.
    #[serde(default)]
    pub template_hash: String,
    /// Edges into this operator.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// Initialised and connected downstream.
    #[serde(default)]
    pub ready: bool,
    /// What keeps the operator from doing its work, when something does (e.g. its Kafka
    /// broker is unreachable); shown in the topology's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// etcd call failed.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// The watch was cancelled by the server (e.g. compaction).
    #[error("watch cancelled: {0}")]
    Cancelled(String),
    /// A credential file could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Credentials {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// TLS and user for etcd, from the environment the controller sets on each task
/// (paths of files installed on the agent, never the secrets themselves).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdAccess {
    /// CA certificate (PEM) of etcd's server certificate; enables TLS.
    #[arg(long = "etcd-ca-file", env = "CONCORD_ETCD_CA_FILE")]
    pub ca_file: Option<String>,
    /// Client certificate (PEM).
    #[arg(long = "etcd-cert-file", env = "CONCORD_ETCD_CERT_FILE")]
    pub cert_file: Option<String>,
    /// Key of the client certificate (PEM).
    #[arg(long = "etcd-key-file", env = "CONCORD_ETCD_KEY_FILE")]
    pub key_file: Option<String>,
    /// etcd user.
    #[arg(long = "etcd-user", env = "CONCORD_ETCD_USER")]
    pub user: Option<String>,
    /// File holding the etcd user's password.
    #[arg(long = "etcd-password-file", env = "CONCORD_ETCD_PASSWORD_FILE")]
    pub password_file: Option<String>,
}

impl EtcdAccess {
    fn options(
        &self,
        mut opts: etcd_client::ConnectOptions,
    ) -> Result<etcd_client::ConnectOptions, DiscoveryError> {
        let read = |path: &String, what: &'static str| {
            std::fs::read(path).map_err(|source| DiscoveryError::Credentials {
                what,
                path: path.clone(),
                source,
            })
        };
        if self.ca_file.is_some() || self.cert_file.is_some() {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &self.ca_file {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca, "etcd CA")?));
            }
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                tls = tls.identity(etcd_client::Identity::from_pem(
                    read(cert, "etcd client certificate")?,
                    read(key, "etcd client key")?,
                ));
            }
            opts = opts.with_tls(tls);
        }
        if let (Some(user), Some(file)) = (&self.user, &self.password_file) {
            let password = String::from_utf8_lossy(&read(file, "etcd password")?)
                .trim()
                .to_owned();
            opts = opts.with_user(user.clone(), password);
        }
        Ok(opts)
    }
}

/// Key paths of one topology.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<prefix>/endpoints/<ns>/<topology>/`.
    pub topology_dir: String,
    /// `<prefix>/topologies/<ns>/<topology>`: the topology's spec.
    pub spec_key: String,
}

impl Paths {
    /// Paths under `prefix` for a topology.
    pub fn new(prefix: &str, namespace: &str, topology: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Self {
            topology_dir: format!("{prefix}/endpoints/{namespace}/{topology}/"),
            spec_key: concord_schemas::dataplane::topology_spec_key(prefix, namespace, topology),
        }
    }

    /// The key of one task's endpoint.
    pub fn endpoint_key(&self, operator: &str, instance: u32, task_id: &str) -> String {
        format!("{}{operator}/{instance}/{task_id}", self.topology_dir)
    }
}

/// Connects to etcd (comma-separated URLs) over plain HTTP.
pub async fn connect(urls: &str) -> Result<Client, DiscoveryError> {
    connect_with(urls, &EtcdAccess::default()).await
}

/// Connects to etcd with TLS and a user, as configured.
pub async fn connect_with(urls: &str, access: &EtcdAccess) -> Result<Client, DiscoveryError> {
    let eps: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(5));
    let opts = access.options(opts)?;
    Ok(Client::connect(eps, Some(opts)).await?)
}

/// Keeps this task's endpoint registered until `stop` turns true, then revokes the lease.
pub async fn run_registration(
    mut client: Client,
    key: String,
    mut endpoint: Endpoint,
    state: Arc<RuntimeState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut lease: Option<i64> = None;
    let mut keeper = None;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut since_keepalive = Duration::ZERO;
    let mut published: Option<(bool, Option<String>)> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() { break; }
            }
            _ = tick.tick() => {}
        }
        since_keepalive += Duration::from_millis(50);
        if lease.is_none() {
            match client.lease_grant(LEASE_TTL, None).await {
                Ok(g) => {
                    lease = Some(g.id());
                    published = None;
                    keeper = client.lease_keep_alive(g.id()).await.ok();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot grant etcd lease");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(id) = lease else { continue };
        let ready = state.ready.load(Ordering::Relaxed);
        let problem = state.problem();
        if published.as_ref() != Some(&(ready, problem.clone())) {
            endpoint.ready = ready;
            endpoint.problem = problem.clone();
            let value = serde_json::to_string(&endpoint).unwrap_or_default();
            match client
                .put(key.as_str(), value, Some(PutOptions::new().with_lease(id)))
                .await
            {
                Ok(_) => {
                    tracing::info!(%key, ready, problem = problem.as_deref().unwrap_or(""), "endpoint published");
                    published = Some((ready, problem));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot publish endpoint");
                    lease = None;
                    continue;
                }
            }
        }
        if since_keepalive >= Duration::from_secs(2) {
            since_keepalive = Duration::ZERO;
            let alive = match keeper.as_mut() {
                Some((k, s)) => match k.keep_alive().await {
                    Ok(()) => matches!(s.message().await, Ok(Some(r)) if r.ttl() > 0),
                    Err(_) => false,
                },
                None => false,
            };
            if !alive {
                tracing::warn!("endpoint lease lost; registering again");
                lease = None;
                keeper = None;
            }
        }
    }
    if let Some(id) = lease {
        match client.lease_revoke(id).await {
            Ok(_) => tracing::info!(%key, "endpoint deregistered"),
            Err(e) => tracing::warn!(error = %e, "lease revoke failed"),
        }
    }
}

/// Watches the topology's endpoints and sends a new routing table whenever the
/// downstream instances of `operator` change. The first table is sent after the initial
/// listing, even when empty.
pub async fn run_watch(
    mut client: Client,
    paths: Paths,
    operator: String,
    tx: std::sync::mpsc::Sender<RoutingTable>,
) {
    let mut last: Option<RoutingTable> = None;
    loop {
        match list_and_watch(&mut client, &paths, &operator, &tx, &mut last).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "endpoint watch failed; listing again");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

type Entries = BTreeMap<String, (i64, Endpoint)>;

/// The operators that consume `operator` according to the spec, with the partitioning
/// each declares; `None` while no spec is stored (then only endpoints make edges).
pub type Consumers = Option<BTreeMap<String, Partitioning>>;

/// The part of a stored `Topology` that discovery reads.
#[derive(Deserialize)]
struct StoredTopology {
    spec: StoredSpec,
}

#[derive(Deserialize)]
struct StoredSpec {
    operators: Vec<StoredOperator>,
}

#[derive(Deserialize)]
struct StoredOperator {
    name: String,
    #[serde(default)]
    inputs: Vec<Input>,
}

/// The consumers of `operator` in a stored topology spec (JSON); `None` when it cannot be
/// read (logged: edges then come from endpoints only, as without a spec).
pub fn consumers_in_spec(value: &[u8], operator: &str) -> Consumers {
    match serde_json::from_slice::<StoredTopology>(value) {
        Ok(t) => Some(
            t.spec
                .operators
                .into_iter()
                .filter_map(|op| {
                    let p = op.inputs.iter().find(|i| i.from == operator)?.partitioning;
                    Some((op.name, p))
                })
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the topology spec; routing from endpoints only");
            None
        }
    }
}

async fn list_and_watch(
    client: &mut Client,
    paths: &Paths,
    operator: &str,
    tx: &std::sync::mpsc::Sender<RoutingTable>,
    last: &mut Option<RoutingTable>,
) -> Result<(), DiscoveryError> {
    let dir = paths.topology_dir.as_str();
    let resp = client
        .get(dir, Some(GetOptions::new().with_prefix()))
        .await?;
    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    let mut entries = Entries::new();
    for kv in resp.kvs() {
        if let (Ok(k), Ok(ep)) = (kv.key_str(), serde_json::from_slice::<Endpoint>(kv.value())) {
            entries.insert(k.to_owned(), (kv.create_revision(), ep));
        }
    }
    // The spec as of the same revision, so both watches start from one consistent view.
    let spec = client
        .get(
            paths.spec_key.as_str(),
            Some(GetOptions::new().with_revision(rev)),
        )
        .await?;
    let mut consumers: Consumers = spec
        .kvs()
        .first()
        .and_then(|kv| consumers_in_spec(kv.value(), operator));
    if !publish(&entries, &consumers, dir, operator, tx, last) {
        return Ok(());
    }
    let mut stream = client
        .watch(
            dir,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev + 1),
            ),
        )
        .await?;
    let mut spec_stream = client
        .watch(
            paths.spec_key.as_str(),
            Some(WatchOptions::new().with_start_revision(rev + 1)),
        )
        .await?;
    loop {
        let resp = tokio::select! {
            r = stream.message() => r?,
            r = spec_stream.message() => {
                let Some(resp) = r? else { break };
                if resp.canceled() {
                    return Err(DiscoveryError::Cancelled(resp.cancel_reason().to_owned()));
                }
                for ev in resp.events() {
                    consumers = match (ev.event_type(), ev.kv()) {
                        (EventType::Put, Some(kv)) => consumers_in_spec(kv.value(), operator),
                        _ => None,
                    };
                }
                if !publish(&entries, &consumers, dir, operator, tx, last) {
                    return Ok(());
                }
                continue;
            }
        };
        let Some(resp) = resp else { break };
        if resp.canceled() {
            return Err(DiscoveryError::Cancelled(resp.cancel_reason().to_owned()));
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let Ok(k) = kv.key_str() else { continue };
            match ev.event_type() {
                EventType::Put => {
                    if let Ok(ep) = serde_json::from_slice::<Endpoint>(kv.value()) {
                        entries.insert(k.to_owned(), (kv.create_revision(), ep));
                    }
                }
                EventType::Delete => {
                    entries.remove(k);
                }
            }
        }
        if !publish(&entries, &consumers, dir, operator, tx, last) {
            return Ok(());
        }
    }
    Err(DiscoveryError::Cancelled("watch stream ended".into()))
}

/// Sends the table if it changed; false when the receiver is gone.
fn publish(
    entries: &Entries,
    consumers: &Consumers,
    dir: &str,
    operator: &str,
    tx: &std::sync::mpsc::Sender<RoutingTable>,
    last: &mut Option<RoutingTable>,
) -> bool {
    let table = routing_table(entries, consumers, dir, operator);
    if last.as_ref() == Some(&table) {
        return true;
    }
    *last = Some(table.clone());
    tx.send(table).is_ok()
}

/// Per consuming operator: its partitioning and, per instance, the best candidate task
/// (ready, create revision, target).
type EdgeCandidates = (
    crate::config::Partitioning,
    BTreeMap<u32, (bool, i64, Target)>,
);

/// Computes the downstream instances of `operator` from all endpoints of the topology:
/// one edge per consumer in the spec (`consumers`), with no targets while it has no
/// registered instance, plus any consumer that only endpoints name (an instance of a
/// generation the spec no longer has, still draining).
pub fn routing_table(
    entries: &Entries,
    consumers: &Consumers,
    dir: &str,
    operator: &str,
) -> RoutingTable {
    // operator -> (partitioning, instance -> (ready, create_rev, target))
    let mut by_op: BTreeMap<String, EdgeCandidates> = BTreeMap::new();
    for (key, (create_rev, ep)) in entries {
        let Some(rest) = key.strip_prefix(dir) else {
            continue;
        };
        let Some(consumer) = rest.split('/').next() else {
            continue;
        };
        let Some(input) = ep.inputs.iter().find(|i| i.from == operator) else {
            continue;
        };
        let entry = by_op
            .entry(consumer.to_owned())
            .or_insert_with(|| (input.partitioning, BTreeMap::new()));
        let cand = (
            ep.ready,
            *create_rev,
            Target {
                instance: ep.instance,
                task_id: ep.task_id.clone(),
                addr: ep.data_addr.clone(),
            },
        );
        match entry.1.get(&ep.instance) {
            Some((r, c, _)) if (*r, *c) >= (cand.0, cand.1) => {}
            _ => {
                entry.1.insert(ep.instance, cand);
            }
        }
    }
    for (consumer, partitioning) in consumers.iter().flatten() {
        by_op
            .entry(consumer.clone())
            .or_insert_with(|| (*partitioning, BTreeMap::new()));
    }
    RoutingTable {
        edges: by_op
            .into_iter()
            .map(|(op, (partitioning, inst))| EdgeTable {
                operator: op,
                partitioning,
                targets: inst.into_values().map(|(_, _, t)| t).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(task: &str, instance: u32, from: &str, ready: bool) -> Endpoint {
        Endpoint {
            task_id: task.into(),
            instance,
            data_addr: format!("127.0.0.1:{}", 1000 + instance),
            metrics_addr: String::new(),
            template_hash: String::new(),
            inputs: vec![Input {
                from: from.into(),
                partitioning: Partitioning::Key,
            }],
            ready,
            problem: None,
        }
    }

    #[test]
    fn newest_task_per_instance_wins() {
        let dir = "/c/endpoints/ns/t/";
        let mut e = Entries::new();
        e.insert(format!("{dir}count/0/a"), (5, ep("a", 0, "map", true)));
        e.insert(format!("{dir}count/0/b"), (9, ep("b", 0, "map", true)));
        e.insert(format!("{dir}count/1/c"), (6, ep("c", 1, "map", true)));
        e.insert(format!("{dir}other/0/d"), (6, ep("d", 0, "gen", true)));
        let t = routing_table(&e, &None, dir, "map");
        assert_eq!(t.edges.len(), 1);
        assert_eq!(t.edges[0].operator, "count");
        let ids: Vec<&str> = t.edges[0]
            .targets
            .iter()
            .map(|t| t.task_id.as_str())
            .collect();
        assert_eq!(ids, vec!["b", "c"]);
        // A newer task that is not ready yet does not take over from a ready one.
        e.insert(format!("{dir}count/1/z"), (20, ep("z", 1, "map", false)));
        let t = routing_table(&e, &None, dir, "map");
        assert_eq!(t.edges[0].targets[1].task_id, "c");
    }

    #[test]
    fn a_consumer_in_the_spec_without_endpoints_is_an_edge_with_no_targets() {
        let dir = "/c/endpoints/ns/t/";
        let spec = serde_json::json!({"spec": {"operators": [
            {"name": "gen"},
            {"name": "count", "inputs": [{"from": "gen", "partitioning": "key"}]},
            {"name": "sink", "inputs": [{"from": "count"}]},
        ]}});
        let consumers = consumers_in_spec(spec.to_string().as_bytes(), "gen");
        let mut e = Entries::new();
        let t = routing_table(&e, &consumers, dir, "gen");
        assert_eq!(
            t.edges,
            vec![EdgeTable {
                operator: "count".into(),
                partitioning: Partitioning::Key,
                targets: vec![],
            }]
        );
        e.insert(format!("{dir}count/0/a"), (5, ep("a", 0, "gen", true)));
        let t = routing_table(&e, &consumers, dir, "gen");
        assert_eq!(t.edges.len(), 1);
        assert_eq!(t.edges[0].targets[0].task_id, "a");
        // Without a spec, only endpoints make edges (as before).
        assert!(
            routing_table(&Entries::new(), &None, dir, "gen")
                .edges
                .is_empty()
        );
    }
}
