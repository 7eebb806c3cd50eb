//! The etcd-backed store of topologies and their status.
//!
//! Layout (DESIGN.md): `<prefix>/topologies/<ns>/<name>` holds the spec as JSON and
//! `<prefix>/status/<ns>/<name>` the status, in a key of its own so that status writes
//! never look like spec changes. The controller keeps each operator's task list in
//! `<prefix>/taskstatus/<ns>/<name>/<operator>` (docs/design-notes.md, note 13): a
//! topology of 10,000 tasks would not fit etcd's request limit as one document, and a
//! change of one operator rewrites only that operator's list. Readers merge them back. Every write is an etcd transaction that compares the
//! revision it read, so concurrent writers get [`StoreError::Conflict`] instead of
//! silently overwriting each other.

use chrono::Utc;
use concord_schemas::{TaskSummary, Topology, TopologyStatus};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp,
    TxnOpResponse,
};
use std::time::Duration;
use thiserror::Error;

/// Errors from the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error(
        "conflict on {key}: the object was modified (expected resourceVersion {expected}, found {found}); read it again and retry"
    )]
    Conflict {
        key: String,
        expected: String,
        found: String,
    },
    #[error("topology {0} not found")]
    NotFound(String),
    #[error("topology {0} is being deleted")]
    Terminating(String),
    #[error("stored value at {key} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("cannot encode {key}: {source}")]
    Encode {
        key: String,
        source: serde_json::Error,
    },
    #[error("invalid resourceVersion {0:?}: expected a decimal etcd revision")]
    BadResourceVersion(String),
    #[error("write to {key} refused: this controller is no longer the leader")]
    Fenced { key: String },
    #[error("cannot read the {what} {}: {source}", path.display())]
    Credentials {
        what: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The leader key at the revision this controller created it: a fenced [`Store`] adds
/// "the leader key still has this create revision" to every transaction, so a leader
/// that lost its lease can never write again, even if it does not know yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub revision: i64,
}

pub use concord_schemas::api::ApplyOutcome;

/// A topology as stored, with the etcd revisions that locate it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Spec and metadata; `metadata.resourceVersion` is the spec key's mod revision.
    pub topology: Topology,
    pub mod_revision: i64,
}

/// A topology's recent generations (see [`Store::history`]).
#[derive(Debug, Clone)]
pub struct History {
    /// Newest first; the first is the current spec.
    pub items: Vec<Stored>,
    /// Why the walk stopped.
    pub end: HistoryEnd,
}

/// Why [`Store::history`] stopped walking back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEnd {
    /// It reached the first version of the key: there is nothing older.
    Created,
    /// It read as many generations (or revisions) as asked.
    Limit,
    /// etcd compacted the revisions before this point.
    Compacted,
}

/// Handle to the etcd store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: Client,
    prefix: String,
    fence: Option<Fence>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects lazily-tolerant: the connection is established on first use, so a
    /// controller started before etcd still comes up and reports not-ready.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(
            endpoints,
            prefix,
            &crate::etcd_access::EtcdAccess::default(),
        )
        .await
    }

    /// [`Store::connect`] with TLS and etcd authentication.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        access: &crate::etcd_access::EtcdAccess,
    ) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let options = access.apply(options)?;
        let client = Client::connect(endpoints, Some(options)).await?;
        Ok(Self::with_client(client, prefix))
    }

    /// Wraps an existing client.
    pub fn with_client(client: Client, prefix: &str) -> Self {
        Self {
            client,
            prefix: prefix.trim_end_matches('/').to_owned(),
            fence: None,
        }
    }

    /// This store with every write fenced on `fence` (see [`Fence`]).
    pub fn fenced(&self, fence: Fence) -> Self {
        Self {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// `<prefix>/leader`
    pub fn leader_key(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// `compares` plus the fence, when this store is fenced.
    pub(crate) fn guard(&self, mut compares: Vec<Compare>) -> Vec<Compare> {
        if let Some(f) = &self.fence {
            compares.push(Compare::create_revision(
                f.key.as_str(),
                CompareOp::Equal,
                f.revision,
            ));
        }
        compares
    }

    /// After a failed transaction: `Fenced` if the fence no longer holds (so the
    /// failure was not a plain conflict).
    pub(crate) async fn check_fence(&self, key: &str) -> Result<(), StoreError> {
        let Some(f) = &self.fence else {
            return Ok(());
        };
        let resp = self.client.clone().get(f.key.as_str(), None).await?;
        let holds = resp
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == f.revision);
        if holds {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                key: key.to_owned(),
            })
        }
    }

    /// Puts `value` at `key` (fenced, when this store is).
    pub async fn put_raw(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.fenced_op(key, TxnOp::put(key, value, None)).await
    }

    /// Deletes `key` (fenced, when this store is).
    pub async fn delete_raw(&self, key: &str) -> Result<(), StoreError> {
        self.fenced_op(key, TxnOp::delete(key, None)).await
    }

    /// Runs `op` on `key` under the fence alone: the only way it fails is being fenced.
    async fn fenced_op(&self, key: &str, op: TxnOp) -> Result<(), StoreError> {
        let txn = Txn::new().when(self.guard(Vec::new())).and_then([op]);
        let resp = self.client.clone().txn(txn).await?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                key: key.to_owned(),
            })
        }
    }

    /// The underlying etcd client (for watches and leases elsewhere in the controller).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The key prefix, without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/topologies/<ns>/<name>`
    pub fn spec_key(&self, ns: &str, name: &str) -> String {
        concord_schemas::dataplane::topology_spec_key(&self.prefix, ns, name)
    }

    /// `<prefix>/status/<ns>/<name>`
    pub fn status_key(&self, ns: &str, name: &str) -> String {
        format!("{}/status/{ns}/{name}", self.prefix)
    }

    /// `<prefix>/taskstatus/<ns>/<name>/`: prefix of the topology's per-operator task lists.
    pub fn task_status_prefix(&self, ns: &str, name: &str) -> String {
        format!("{}/taskstatus/{ns}/{name}/", self.prefix)
    }

    /// Prefix of every per-operator task list in a namespace, or in all namespaces.
    pub fn task_status_root(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) => format!("{}/taskstatus/{ns}/", self.prefix),
            None => format!("{}/taskstatus/", self.prefix),
        }
    }

    /// Prefix of every spec key in a namespace, or in all namespaces.
    pub fn spec_prefix(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) => format!("{}/topologies/{ns}/", self.prefix),
            None => format!("{}/topologies/", self.prefix),
        }
    }

    /// Prefix of every status key in a namespace, or in all namespaces.
    pub fn status_prefix(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) => format!("{}/status/{ns}/", self.prefix),
            None => format!("{}/status/", self.prefix),
        }
    }

    /// `<prefix>/stable/<ns>/<name>`: the spec of the last generation that became Ready.
    pub fn stable_key(&self, ns: &str, name: &str) -> String {
        format!("{}/stable/{ns}/{name}", self.prefix)
    }

    /// The last stable spec, recorded by the reconciler.
    pub async fn get_stable(&self, ns: &str, name: &str) -> Result<Option<Topology>, StoreError> {
        let key = self.stable_key(ns, name);
        let mut client = self.client.clone();
        let resp = client.get(key.as_str(), None).await?;
        resp.kvs()
            .first()
            .map(|kv| decode_spec(kv).map(|s| s.topology))
            .transpose()
    }

    /// Checks that etcd answers.
    pub async fn ping(&self) -> Result<i64, StoreError> {
        let mut client = self.client.clone();
        let status = client.status().await?;
        Ok(status.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// Reads one topology (without status).
    pub async fn get(&self, ns: &str, name: &str) -> Result<Option<Stored>, StoreError> {
        let key = self.spec_key(ns, name);
        let mut client = self.client.clone();
        let resp = client.get(key.as_str(), None).await?;
        resp.kvs().first().map(decode_spec).transpose()
    }

    /// Reads one topology's status, its operators' task lists merged in.
    pub async fn get_status(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<TopologyStatus>, StoreError> {
        let key = self.status_key(ns, name);
        let mut client = self.client.clone();
        let resp = client.get(key.as_str(), None).await?;
        let Some(mut status) = resp.kvs().first().map(decode_status).transpose()? else {
            return Ok(None);
        };
        // The task lists at the same revision, so the document is one snapshot.
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        let tasks = client
            .get(
                self.task_status_prefix(ns, name),
                Some(GetOptions::new().with_prefix().with_revision(revision)),
            )
            .await?;
        let mut parts = std::collections::HashMap::new();
        for kv in tasks.kvs() {
            let (_, _, op) = split_task_status_key(kv.key())?;
            parts.insert(op, decode_task_status(kv)?);
        }
        merge_task_status(&mut status, parts);
        Ok(Some(status))
    }

    /// Reads a topology with its status merged in, as the API returns it.
    pub async fn get_with_status(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Topology>, StoreError> {
        let Some(stored) = self.get(ns, name).await? else {
            return Ok(None);
        };
        let mut topology = stored.topology;
        topology.status = self.get_status(ns, name).await?;
        Ok(Some(topology))
    }

    /// The topology's earlier generations, newest first, read from earlier etcd revisions
    /// of its spec key (the API has no other copy of them): from the current value, each
    /// step reads the key at the revision just before the value's `mod_revision`, which
    /// answers the previous value. Values of one generation (metadata-only writes such as
    /// a deletion mark) count once, as their newest value. Stops after `max_generations`
    /// generations, `max_reads` etcd reads, at the key's creation, or where etcd has
    /// compacted the history ([`HistoryEnd::Compacted`]).
    pub async fn history(
        &self,
        ns: &str,
        name: &str,
        max_generations: usize,
        max_reads: usize,
    ) -> Result<Option<History>, StoreError> {
        let key = self.spec_key(ns, name);
        let mut client = self.client.clone();
        let resp = client.get(key.as_str(), None).await?;
        let Some(current) = resp.kvs().first() else {
            return Ok(None);
        };
        let create_revision = current.create_revision();
        let mut next_before = current.mod_revision();
        let mut items = vec![decode_spec(current)?];
        let mut end = HistoryEnd::Created;
        let mut reads = 0;
        loop {
            if items.len() > max_generations {
                items.truncate(max_generations);
                end = HistoryEnd::Limit;
                break;
            }
            if reads >= max_reads {
                end = HistoryEnd::Limit;
                break;
            }
            if next_before <= create_revision {
                break;
            }
            reads += 1;
            let options = GetOptions::new().with_revision(next_before - 1);
            let resp = match client.get(key.as_str(), Some(options)).await {
                Ok(resp) => resp,
                Err(e) if e.to_string().contains("compacted") => {
                    end = HistoryEnd::Compacted;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(kv) = resp.kvs().first() else { break };
            if kv.create_revision() != create_revision {
                // An earlier topology of the same name, deleted since.
                break;
            }
            next_before = kv.mod_revision();
            let older = decode_spec(kv)?;
            let same_generation = items.last().is_some_and(|newer| {
                newer.topology.metadata.generation == older.topology.metadata.generation
            });
            if !same_generation {
                items.push(older);
            }
        }
        Ok(Some(History { items, end }))
    }

    /// Lists topologies with their status, and the etcd revision the list is consistent at.
    pub async fn list(&self, ns: Option<&str>) -> Result<(Vec<Topology>, i64), StoreError> {
        let mut client = self.client.clone();
        let specs = client
            .get(self.spec_prefix(ns), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = specs.header().map(|h| h.revision()).unwrap_or_default();
        // Read statuses at the same revision so the list is one consistent snapshot.
        let statuses = client
            .get(
                self.status_prefix(ns),
                Some(GetOptions::new().with_prefix().with_revision(revision)),
            )
            .await?;
        let tasks = client
            .get(
                self.task_status_root(ns),
                Some(GetOptions::new().with_prefix().with_revision(revision)),
            )
            .await?;
        let items = join_statuses(specs.kvs(), statuses.kvs(), tasks.kvs())?;
        Ok((items, revision))
    }

    /// One page of [`Store::list`]: at most `page.limit` topologies (with status) in key
    /// order after `page.after`, read at `page.revision` (now, for a first page). The
    /// statuses and task lists read are those of the page's topologies only.
    pub async fn list_page(
        &self,
        ns: Option<&str>,
        page: &crate::paging::Page,
    ) -> Result<ListPage<Topology>, StoreError> {
        let mut client = self.client.clone();
        let root = format!("{}/topologies", self.prefix);
        let (specs, revision) =
            crate::paging::read_keys(&mut client, &root, &self.spec_prefix(ns), page).await?;
        let ids = specs
            .kvs()
            .iter()
            .map(|kv| split_ns_name(kv.key()))
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(ListPage {
                items: Vec::new(),
                revision,
                next: None,
            });
        };
        // Status keys sort like spec keys: the page's are exactly this range.
        let statuses = client
            .get(
                self.status_key(&first.0, &first.1),
                Some(
                    GetOptions::new()
                        .with_range(format!("{}\0", self.status_key(&last.0, &last.1)))
                        .with_revision(revision),
                ),
            )
            .await?;
        // Task-list keys have a `/<operator>` tail, which can sort them differently
        // (`ns/b-c/…` before `ns/b/…`): read from the smallest to the largest of the
        // page's prefixes; keys of other topologies in between are ignored.
        let task_prefixes: Vec<String> = ids
            .iter()
            .map(|(ns, name)| self.task_status_prefix(ns, name))
            .collect();
        let lowest = task_prefixes.iter().min().cloned().unwrap_or_default();
        let highest = task_prefixes.iter().max().cloned().unwrap_or_default();
        let tasks = client
            .get(
                lowest,
                Some(
                    GetOptions::new()
                        .with_range(crate::paging::prefix_end(highest.as_bytes()))
                        .with_revision(revision),
                ),
            )
            .await?;
        let next = specs.more().then(|| format!("{}/{}", last.0, last.1));
        let items = join_statuses(specs.kvs(), statuses.kvs(), tasks.kvs())?;
        Ok(ListPage {
            items,
            revision,
            next,
        })
    }

    /// Creates or updates a topology from a validated, normalised spec.
    ///
    /// * Identical spec, labels and annotations: nothing is written (`Unchanged`).
    /// * `metadata.generation` increases only when `spec` changes.
    /// * When the input carries `metadata.resourceVersion`, the write happens only if the
    ///   stored object still has that revision; otherwise against the revision just read.
    pub async fn apply(&self, mut input: Topology) -> Result<(ApplyOutcome, Topology), StoreError> {
        input.status = None;
        let ns = input.metadata.namespace.clone();
        let name = input.metadata.name.clone();
        let key = self.spec_key(&ns, &name);
        let precondition = input
            .metadata
            .resource_version
            .as_deref()
            .map(parse_resource_version)
            .transpose()?;
        let current = self.get(&ns, &name).await?;
        let mut client = self.client.clone();
        match current {
            None => {
                if let Some(expected) = precondition {
                    return Err(StoreError::Conflict {
                        key,
                        expected: expected.to_string(),
                        found: "none (the topology does not exist)".into(),
                    });
                }
                let meta = &mut input.metadata;
                meta.uid = Some(uuid::Uuid::new_v4().to_string());
                meta.generation = Some(1);
                meta.creation_timestamp = Some(Utc::now());
                meta.deletion_timestamp = None;
                meta.resource_version = None;
                let value = encode(&key, &input)?;
                let txn = Txn::new()
                    .when(self.guard(vec![Compare::create_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        0,
                    )]))
                    .and_then([TxnOp::put(key.as_str(), value, None)]);
                let resp = client.txn(txn).await?;
                if !resp.succeeded() {
                    self.check_fence(&key).await?;
                    return Err(StoreError::Conflict {
                        key,
                        expected: "none".into(),
                        found: "an object created concurrently".into(),
                    });
                }
                input.metadata.resource_version = Some(txn_revision(&resp).to_string());
                Ok((ApplyOutcome::Created, input))
            }
            Some(stored) => {
                if let Some(expected) = precondition
                    && expected != stored.mod_revision
                {
                    return Err(StoreError::Conflict {
                        key,
                        expected: expected.to_string(),
                        found: stored.mod_revision.to_string(),
                    });
                }
                let old = stored.topology;
                if old.metadata.deletion_timestamp.is_some() {
                    return Err(StoreError::Terminating(format!("{ns}/{name}")));
                }
                if apply_outcome(Some(&old), &input) == ApplyOutcome::Unchanged {
                    return Ok((ApplyOutcome::Unchanged, old));
                }
                let spec_changed = old.spec != input.spec;
                let mut next = old.clone();
                next.spec = input.spec;
                next.metadata.labels = input.metadata.labels;
                next.metadata.annotations = input.metadata.annotations;
                if spec_changed {
                    next.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
                }
                next.metadata.resource_version = None;
                let revision = self
                    .put_if_unmodified(&key, &next, stored.mod_revision)
                    .await?;
                next.metadata.resource_version = Some(revision.to_string());
                Ok((ApplyOutcome::Configured, next))
            }
        }
    }

    /// Writes `value` at `key` only if the key's mod revision is still `expected`.
    async fn put_if_unmodified(
        &self,
        key: &str,
        value: &Topology,
        expected: i64,
    ) -> Result<i64, StoreError> {
        let bytes = encode(key, value)?;
        let txn = Txn::new()
            .when(self.guard(vec![Compare::mod_revision(key, CompareOp::Equal, expected)]))
            .and_then([TxnOp::put(key, bytes, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client.clone();
        let resp = client.txn(txn).await?;
        if resp.succeeded() {
            return Ok(txn_revision(&resp));
        }
        self.check_fence(key).await?;
        Err(StoreError::Conflict {
            key: key.to_owned(),
            expected: expected.to_string(),
            found: found_revision(&resp),
        })
    }

    /// Marks a topology for deletion: its tasks are stopped by the reconciler, which then
    /// calls [`Store::finalize_delete`]. Marking twice is a no-op.
    pub async fn mark_deleted(
        &self,
        ns: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Topology, StoreError> {
        let key = self.spec_key(ns, name);
        let stored = self
            .get(ns, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{ns}/{name}")))?;
        if let Some(expected) = resource_version.map(parse_resource_version).transpose()?
            && expected != stored.mod_revision
        {
            return Err(StoreError::Conflict {
                key,
                expected: expected.to_string(),
                found: stored.mod_revision.to_string(),
            });
        }
        let mut topology = stored.topology;
        if topology.metadata.deletion_timestamp.is_some() {
            return Ok(topology);
        }
        topology.metadata.deletion_timestamp = Some(Utc::now());
        topology.metadata.resource_version = None;
        let revision = self
            .put_if_unmodified(&key, &topology, stored.mod_revision)
            .await?;
        topology.metadata.resource_version = Some(revision.to_string());
        Ok(topology)
    }

    /// Removes a topology's spec, status, task lists and data-plane secret, if the spec
    /// is still at `mod_revision`.
    pub async fn finalize_delete(
        &self,
        ns: &str,
        name: &str,
        mod_revision: i64,
    ) -> Result<(), StoreError> {
        let key = self.spec_key(ns, name);
        let status_key = self.status_key(ns, name);
        let txn = Txn::new()
            .when(self.guard(vec![Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                mod_revision,
            )]))
            .and_then([
                TxnOp::delete(key.as_str(), None),
                TxnOp::delete(status_key, None),
                TxnOp::delete(
                    self.task_status_prefix(ns, name),
                    Some(DeleteOptions::new().with_prefix()),
                ),
                // Its tasks are all gone: the data-plane secret goes with it.
                TxnOp::delete(self.dataplane_secret_key(ns, name), None),
            ])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let mut client = self.client.clone();
        let resp = client.txn(txn).await?;
        if resp.succeeded() {
            Ok(())
        } else {
            self.check_fence(&key).await?;
            Err(StoreError::Conflict {
                key,
                expected: mod_revision.to_string(),
                found: found_revision(&resp),
            })
        }
    }

    /// Writes a topology's status if it differs from what is stored. Returns whether
    /// anything was written. Compares the status key's revision, so a concurrent status
    /// writer is detected rather than overwritten.
    pub async fn put_status(
        &self,
        ns: &str,
        name: &str,
        status: &TopologyStatus,
    ) -> Result<bool, StoreError> {
        self.put_status_and_tasks(ns, name, status, &[], &[]).await
    }
}

/// Largest status write done as one transaction (etcd refuses requests over 1.5 MiB by
/// default, and more than 128 operations per transaction).
const ATOMIC_STATUS_BYTES: usize = 1 << 20;
const ATOMIC_STATUS_OPS: usize = 100;

impl Store {
    /// Writes a topology's status: the changed operators' task lists (`lists`), the
    /// removal of those of operators gone (`gone`), and the document without tasks if it
    /// differs from the stored one, in one transaction, so that no reader sees tasks and
    /// counts or events of different passes. Only when that would exceed etcd's request
    /// limits (a first write of a very large topology) are the lists written one by one
    /// before the document. Returns whether anything was written.
    pub async fn put_status_and_tasks(
        &self,
        ns: &str,
        name: &str,
        status: &TopologyStatus,
        lists: &[(&str, &[TaskSummary])],
        gone: &[String],
    ) -> Result<bool, StoreError> {
        let key = self.status_key(ns, name);
        let mut client = self.client.clone();
        let resp = client.get(key.as_str(), None).await?;
        let (current, revision) = match resp.kvs().first() {
            Some(kv) => (Some(decode_status(kv)?), kv.mod_revision()),
            None => (None, 0),
        };
        let doc_changed = current.as_ref() != Some(status);
        if !doc_changed && lists.is_empty() && gone.is_empty() {
            return Ok(false);
        }
        let prefix = self.task_status_prefix(ns, name);
        let mut ops = Vec::with_capacity(lists.len() + gone.len() + 1);
        let mut bytes_total = 0;
        for (op, tasks) in lists {
            let list_key = format!("{prefix}{op}");
            let bytes = serde_json::to_vec(&TaskStatusRef { tasks }).map_err(|source| {
                StoreError::Encode {
                    key: list_key.clone(),
                    source,
                }
            })?;
            bytes_total += bytes.len() + list_key.len();
            ops.push(TxnOp::put(list_key.as_str(), bytes, None));
        }
        for op in gone {
            ops.push(TxnOp::delete(format!("{prefix}{op}").as_str(), None));
        }
        if doc_changed {
            let bytes = serde_json::to_vec(status).map_err(|source| StoreError::Encode {
                key: key.clone(),
                source,
            })?;
            bytes_total += bytes.len();
            ops.push(TxnOp::put(key.as_str(), bytes, None));
        }
        if bytes_total > ATOMIC_STATUS_BYTES || ops.len() > ATOMIC_STATUS_OPS {
            // Too large for one request: the lists first, then the document alone.
            for (op, tasks) in lists {
                self.put_task_status(ns, name, op, tasks).await?;
            }
            for op in gone {
                self.delete_task_status(ns, name, op).await?;
            }
            ops.drain(..lists.len() + gone.len());
            if ops.is_empty() {
                return Ok(true);
            }
        }
        let txn = Txn::new()
            .when(self.guard(vec![Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                revision,
            )]))
            .and_then(ops)
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = client.txn(txn).await?;
        if resp.succeeded() {
            Ok(true)
        } else {
            self.check_fence(&key).await?;
            Err(StoreError::Conflict {
                key,
                expected: revision.to_string(),
                found: found_revision(&resp),
            })
        }
    }

    /// Writes one operator's task list (`<prefix>/taskstatus/<ns>/<name>/<operator>`).
    /// Only the status writer writes these keys, and it knows what it wrote last, so
    /// there is no read to compare with first; the write is fenced like every other.
    pub async fn put_task_status(
        &self,
        ns: &str,
        name: &str,
        operator: &str,
        tasks: &[TaskSummary],
    ) -> Result<(), StoreError> {
        let key = format!("{}{operator}", self.task_status_prefix(ns, name));
        let bytes =
            serde_json::to_vec(&TaskStatusRef { tasks }).map_err(|source| StoreError::Encode {
                key: key.clone(),
                source,
            })?;
        self.txn_fenced(&key, TxnOp::put(key.as_str(), bytes, None))
            .await
    }

    /// Removes the task list of an operator gone from the topology.
    pub async fn delete_task_status(
        &self,
        ns: &str,
        name: &str,
        operator: &str,
    ) -> Result<(), StoreError> {
        let key = format!("{}{operator}", self.task_status_prefix(ns, name));
        self.txn_fenced(&key, TxnOp::delete(key.as_str(), None))
            .await
    }

    /// Runs `op` in a transaction that holds only while this term's fence does.
    async fn txn_fenced(&self, key: &str, op: TxnOp) -> Result<(), StoreError> {
        let txn = Txn::new().when(self.guard(Vec::new())).and_then([op]);
        let resp = self.client.clone().txn(txn).await?;
        if resp.succeeded() {
            return Ok(());
        }
        self.check_fence(key).await?;
        // The fence held when checked: it was lost and taken again in between.
        Err(StoreError::Fenced {
            key: key.to_owned(),
        })
    }
}

/// The value of a task-list key (borrowed for writing).
#[derive(serde::Serialize)]
struct TaskStatusRef<'a> {
    tasks: &'a [TaskSummary],
}

/// The value of a task-list key.
#[derive(serde::Deserialize)]
struct TaskStatusValue {
    #[serde(default)]
    tasks: Vec<TaskSummary>,
}

/// Decodes a task-list key-value.
fn decode_task_status(kv: &KeyValue) -> Result<Vec<TaskSummary>, StoreError> {
    serde_json::from_slice::<TaskStatusValue>(kv.value())
        .map(|v| v.tasks)
        .map_err(|source| StoreError::Corrupt {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            source,
        })
}

/// One page of a list (see [`crate::paging`]).
#[derive(Debug, Clone)]
pub struct ListPage<T> {
    /// The objects, in key order.
    pub items: Vec<T>,
    /// The etcd revision every page of this list is read at.
    pub revision: i64,
    /// `<namespace>/<name>` of the last item when more follow.
    pub next: Option<String>,
}

/// Topologies from spec key-values, each with its status (and task lists) when found
/// among `statuses` and `tasks`.
fn join_statuses(
    specs: &[KeyValue],
    statuses: &[KeyValue],
    tasks: &[KeyValue],
) -> Result<Vec<Topology>, StoreError> {
    let mut parts: std::collections::HashMap<(String, String), std::collections::HashMap<_, _>> =
        std::collections::HashMap::new();
    for kv in tasks {
        let (ns, name, op) = split_task_status_key(kv.key())?;
        parts
            .entry((ns, name))
            .or_default()
            .insert(op, decode_task_status(kv)?);
    }
    let mut by_key = std::collections::HashMap::new();
    for kv in statuses {
        let (ns, name) = split_ns_name(kv.key())?;
        let mut status = decode_status(kv)?;
        if let Some(parts) = parts.remove(&(ns.clone(), name.clone())) {
            merge_task_status(&mut status, parts);
        }
        by_key.insert((ns, name), status);
    }
    let mut items = Vec::with_capacity(specs.len());
    for kv in specs {
        let mut topology = decode_spec(kv)?.topology;
        let id = (
            topology.metadata.namespace.clone(),
            topology.metadata.name.clone(),
        );
        topology.status = by_key.remove(&id);
        items.push(topology);
    }
    Ok(items)
}

/// Fills each operator's `tasks` from its own key. A document that still carries its
/// tasks inline (written before the lists had keys of their own) keeps them.
pub fn merge_task_status(
    status: &mut TopologyStatus,
    mut parts: std::collections::HashMap<String, Vec<TaskSummary>>,
) {
    for op in &mut status.operators {
        if op.tasks.is_empty()
            && let Some(tasks) = parts.remove(&op.name)
        {
            op.tasks = tasks;
        }
    }
}

/// The `<ns>`, `<name>` and `<operator>` at the end of a task-list key.
pub fn split_task_status_key(key: &[u8]) -> Result<(String, String, String), StoreError> {
    let text = String::from_utf8_lossy(key);
    let mut parts = text.rsplitn(4, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(op), Some(name), Some(ns))
            if !op.is_empty() && !name.is_empty() && !ns.is_empty() =>
        {
            Ok((ns.to_owned(), name.to_owned(), op.to_owned()))
        }
        _ => Err(StoreError::Corrupt {
            key: text.clone().into_owned(),
            source: serde::de::Error::custom("key does not end in <namespace>/<name>/<operator>"),
        }),
    }
}

/// Decodes a task-list key-value for watchers: the operator and its tasks.
pub fn decode_task_status_kv(kv: &KeyValue) -> Result<(String, Vec<TaskSummary>), StoreError> {
    let (_, _, op) = split_task_status_key(kv.key())?;
    Ok((op, decode_task_status(kv)?))
}

/// What applying `input` over `stored` does: only `spec`, labels and annotations are
/// the user's to change, so anything else (server-set metadata, status) is ignored.
pub fn apply_outcome(stored: Option<&Topology>, input: &Topology) -> ApplyOutcome {
    match stored {
        None => ApplyOutcome::Created,
        Some(old)
            if old.spec == input.spec
                && old.metadata.labels == input.metadata.labels
                && old.metadata.annotations == input.metadata.annotations =>
        {
            ApplyOutcome::Unchanged
        }
        Some(_) => ApplyOutcome::Configured,
    }
}

/// Parses a `resourceVersion` string into an etcd revision.
pub fn parse_resource_version(s: &str) -> Result<i64, StoreError> {
    s.parse::<i64>()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| StoreError::BadResourceVersion(s.into()))
}

fn encode(key: &str, topology: &Topology) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(topology).map_err(|source| StoreError::Encode {
        key: key.to_owned(),
        source,
    })
}

/// Decodes a spec key-value, filling `resourceVersion` from the key's mod revision.
pub fn decode_spec(kv: &KeyValue) -> Result<Stored, StoreError> {
    let mut topology: Topology =
        serde_json::from_slice(kv.value()).map_err(|source| StoreError::Corrupt {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            source,
        })?;
    topology.metadata.resource_version = Some(kv.mod_revision().to_string());
    Ok(Stored {
        topology,
        mod_revision: kv.mod_revision(),
    })
}

/// Decodes a status key-value.
pub fn decode_status(kv: &KeyValue) -> Result<TopologyStatus, StoreError> {
    serde_json::from_slice(kv.value()).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        source,
    })
}

/// The `<ns>/<name>` at the end of a spec or status key.
pub fn split_ns_name(key: &[u8]) -> Result<(String, String), StoreError> {
    let key = String::from_utf8_lossy(key);
    let mut parts = key.rsplitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(name), Some(ns)) if !name.is_empty() && !ns.is_empty() => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(StoreError::Corrupt {
            key: key.clone().into_owned(),
            source: serde::de::Error::custom("key does not end in <namespace>/<name>"),
        }),
    }
}

fn txn_revision(resp: &etcd_client::TxnResponse) -> i64 {
    resp.header().map(|h| h.revision()).unwrap_or_default()
}

fn found_revision(resp: &etcd_client::TxnResponse) -> String {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return match get.kvs().first() {
                Some(kv) => kv.mod_revision().to_string(),
                None => "none (deleted)".into(),
            };
        }
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_schemas::OperatorStatus;

    #[test]
    fn task_list_keys_name_namespace_topology_and_operator() {
        assert_eq!(
            split_task_status_key(b"/concord/taskstatus/default/wc/count").ok(),
            Some(("default".into(), "wc".into(), "count".into()))
        );
        assert!(split_task_status_key(b"/concord/taskstatus/default/wc/").is_err());
        assert!(split_task_status_key(b"count").is_err());
    }

    #[test]
    fn task_lists_fill_operators_without_tasks_and_inline_ones_are_kept() {
        let task = |id: &str| TaskSummary {
            task_id: id.into(),
            ..Default::default()
        };
        let mut status = TopologyStatus {
            operators: vec![
                OperatorStatus {
                    name: "a".into(),
                    ..Default::default()
                },
                OperatorStatus {
                    name: "b".into(),
                    tasks: vec![task("inline")],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let parts = std::collections::HashMap::from([
            ("a".to_owned(), vec![task("a-0")]),
            ("b".to_owned(), vec![task("b-0")]),
            ("gone".to_owned(), vec![task("x")]),
        ]);
        merge_task_status(&mut status, parts);
        assert_eq!(status.operators[0].tasks, vec![task("a-0")]);
        assert_eq!(status.operators[1].tasks, vec![task("inline")]);
        assert_eq!(
            status.operators.len(),
            2,
            "lists of unknown operators are ignored"
        );
    }
}
