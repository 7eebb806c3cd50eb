//! GitRepository objects in etcd, beside the topologies and with the same rules.
//!
//! - `<prefix>/gitrepositories/<ns>/<name>`: the object (spec and metadata), written
//!   through the API with compare-on-revision transactions; `generation` grows only
//!   when `spec` changes.
//! - `<prefix>/gitstatus/<ns>/<name>`: its status, written by the syncer only.
//! - `<prefix>/gitsync/<ns>/<name>`: the last "sync now" request (webhook or CLI); its
//!   mod revision identifies the request, and the status echoes the last one handled.

use chrono::Utc;
use concord_schemas::gitops::{GitRepository, GitRepositoryStatus};
use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp};

use crate::store::{ApplyOutcome, Store, StoreError, parse_resource_version};

/// A GitRepository as stored.
#[derive(Debug, Clone)]
pub struct StoredRepo {
    pub repo: GitRepository,
    pub mod_revision: i64,
}

/// GitRepository persistence on top of the topology [`Store`]'s etcd client.
#[derive(Debug, Clone)]
pub struct RepoStore {
    store: Store,
}

impl RepoStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn key(&self, kind: &str, ns: &str, name: &str) -> String {
        format!("{}/{kind}/{ns}/{name}", self.store.prefix())
    }

    fn prefix_of(&self, kind: &str, ns: Option<&str>) -> String {
        match ns {
            Some(ns) => format!("{}/{kind}/{ns}/", self.store.prefix()),
            None => format!("{}/{kind}/", self.store.prefix()),
        }
    }

    /// One GitRepository without status.
    pub async fn get(&self, ns: &str, name: &str) -> Result<Option<StoredRepo>, StoreError> {
        let key = self.key("gitrepositories", ns, name);
        let resp = self.store.client().get(key.as_str(), None).await?;
        resp.kvs().first().map(decode_repo).transpose()
    }

    /// One GitRepository with its status.
    pub async fn get_with_status(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<GitRepository>, StoreError> {
        let Some(mut stored) = self.get(ns, name).await? else {
            return Ok(None);
        };
        stored.repo.status = self.get_status(ns, name).await?;
        Ok(Some(stored.repo))
    }

    /// The syncer's last status.
    pub async fn get_status(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<GitRepositoryStatus>, StoreError> {
        let key = self.key("gitstatus", ns, name);
        let resp = self.store.client().get(key.as_str(), None).await?;
        resp.kvs().first().map(decode).transpose()
    }

    /// Every GitRepository (in `ns`, or everywhere) with its status.
    pub async fn list(&self, ns: Option<&str>) -> Result<Vec<GitRepository>, StoreError> {
        let mut client = self.store.client();
        let repos = client
            .get(
                self.prefix_of("gitrepositories", ns),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let revision = repos.header().map(|h| h.revision()).unwrap_or_default();
        let statuses = client
            .get(
                self.prefix_of("gitstatus", ns),
                Some(GetOptions::new().with_prefix().with_revision(revision)),
            )
            .await?;
        let mut by_key = std::collections::HashMap::new();
        for kv in statuses.kvs() {
            let id = crate::store::split_ns_name(kv.key())?;
            by_key.insert(id, decode::<GitRepositoryStatus>(kv)?);
        }
        let mut items = Vec::new();
        for kv in repos.kvs() {
            let mut repo = decode_repo(kv)?.repo;
            let id = (repo.metadata.namespace.clone(), repo.metadata.name.clone());
            repo.status = by_key.remove(&id);
            items.push(repo);
        }
        Ok(items)
    }

    /// One page of [`RepoStore::list`] (see [`crate::paging`]), with statuses read at the
    /// same revision.
    pub async fn list_page(
        &self,
        ns: Option<&str>,
        page: &crate::paging::Page,
    ) -> Result<crate::store::ListPage<GitRepository>, StoreError> {
        let mut client = self.store.client();
        let root = format!("{}/gitrepositories", self.store.prefix());
        let prefix = self.prefix_of("gitrepositories", ns);
        let (repos, revision) = crate::paging::read_keys(&mut client, &root, &prefix, page).await?;
        let mut items = Vec::with_capacity(repos.kvs().len());
        for kv in repos.kvs() {
            items.push(decode_repo(kv)?.repo);
        }
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Ok(crate::store::ListPage {
                items,
                revision,
                next: None,
            });
        };
        // Status keys sort like object keys: the page's statuses are exactly this range.
        let (first_ns, first_name) = (&first.metadata.namespace, &first.metadata.name);
        let (last_ns, last_name) = (&last.metadata.namespace, &last.metadata.name);
        let statuses = client
            .get(
                self.key("gitstatus", first_ns, first_name),
                Some(
                    GetOptions::new()
                        .with_range(format!("{}\0", self.key("gitstatus", last_ns, last_name)))
                        .with_revision(revision),
                ),
            )
            .await?;
        let next = repos.more().then(|| format!("{last_ns}/{last_name}"));
        let mut by_key = std::collections::HashMap::new();
        for kv in statuses.kvs() {
            let id = crate::store::split_ns_name(kv.key())?;
            by_key.insert(id, decode::<GitRepositoryStatus>(kv)?);
        }
        for repo in &mut items {
            let id = (repo.metadata.namespace.clone(), repo.metadata.name.clone());
            repo.status = by_key.remove(&id);
        }
        Ok(crate::store::ListPage {
            items,
            revision,
            next,
        })
    }

    /// Creates or updates a validated GitRepository; like topologies, an identical spec
    /// writes nothing and `resourceVersion`, when given, must match.
    pub async fn apply(
        &self,
        mut input: GitRepository,
    ) -> Result<(ApplyOutcome, GitRepository), StoreError> {
        input.status = None;
        let ns = input.metadata.namespace.clone();
        let name = input.metadata.name.clone();
        let key = self.key("gitrepositories", &ns, &name);
        let precondition = input
            .metadata
            .resource_version
            .as_deref()
            .map(parse_resource_version)
            .transpose()?;
        let current = self.get(&ns, &name).await?;
        let (outcome, mut next, expected) = match current {
            None => {
                if let Some(expected) = precondition {
                    return Err(StoreError::Conflict {
                        key,
                        expected: expected.to_string(),
                        found: "none (the object does not exist)".into(),
                    });
                }
                let meta = &mut input.metadata;
                meta.uid = Some(uuid::Uuid::new_v4().to_string());
                meta.generation = Some(1);
                meta.creation_timestamp = Some(Utc::now());
                (ApplyOutcome::Created, input, 0)
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
                let old = stored.repo;
                if old.spec == input.spec
                    && old.metadata.labels == input.metadata.labels
                    && old.metadata.annotations == input.metadata.annotations
                {
                    return Ok((ApplyOutcome::Unchanged, old));
                }
                let mut next = old.clone();
                if old.spec != input.spec {
                    next.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
                }
                next.spec = input.spec;
                next.metadata.labels = input.metadata.labels;
                next.metadata.annotations = input.metadata.annotations;
                (ApplyOutcome::Configured, next, stored.mod_revision)
            }
        };
        next.metadata.resource_version = None;
        let revision = self.put_if(&key, &next, expected).await?;
        next.metadata.resource_version = Some(revision.to_string());
        Ok((outcome, next))
    }

    /// Deletes a GitRepository, its status and its sync request. The topologies it
    /// applied stay (they keep running; nothing manages them any more).
    pub async fn delete(&self, ns: &str, name: &str) -> Result<GitRepository, StoreError> {
        let stored = self
            .get(ns, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("gitrepository {ns}/{name}")))?;
        let key = self.key("gitrepositories", ns, name);
        let txn = Txn::new()
            .when(self.store.guard(vec![Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                stored.mod_revision,
            )]))
            .and_then([
                TxnOp::delete(key.as_str(), None),
                TxnOp::delete(self.key("gitstatus", ns, name), None),
                TxnOp::delete(self.key("gitsync", ns, name), None),
            ]);
        let resp = self.store.client().txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::Conflict {
                key,
                expected: stored.mod_revision.to_string(),
                found: "a newer revision".into(),
            });
        }
        Ok(stored.repo)
    }

    /// Records a "sync now" request; returns its revision (the id to wait for).
    pub async fn request_sync(&self, ns: &str, name: &str) -> Result<i64, StoreError> {
        let repo_key = self.key("gitrepositories", ns, name);
        let key = self.key("gitsync", ns, name);
        // Only for an existing repository, in one transaction.
        let txn = Txn::new()
            .when([Compare::create_revision(
                repo_key.as_str(),
                CompareOp::Greater,
                0,
            )])
            .and_then([TxnOp::put(key.as_str(), Utc::now().to_rfc3339(), None)]);
        let resp = self.store.client().txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::NotFound(format!("gitrepository {ns}/{name}")));
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// Pending sync requests: `(ns, name) -> request revision`.
    pub async fn sync_requests(
        &self,
    ) -> Result<std::collections::HashMap<(String, String), i64>, StoreError> {
        let resp = self
            .store
            .client()
            .get(
                self.prefix_of("gitsync", None),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let mut out = std::collections::HashMap::new();
        for kv in resp.kvs() {
            out.insert(crate::store::split_ns_name(kv.key())?, kv.mod_revision());
        }
        Ok(out)
    }

    /// Writes the status, unless the repository was deleted meanwhile.
    pub async fn put_status(
        &self,
        ns: &str,
        name: &str,
        status: &GitRepositoryStatus,
    ) -> Result<(), StoreError> {
        let repo_key = self.key("gitrepositories", ns, name);
        let key = self.key("gitstatus", ns, name);
        let bytes = serde_json::to_vec(status).map_err(|source| StoreError::Encode {
            key: key.clone(),
            source,
        })?;
        let txn = Txn::new()
            .when(self.store.guard(vec![Compare::create_revision(
                repo_key.as_str(),
                CompareOp::Greater,
                0,
            )]))
            .and_then([TxnOp::put(key.as_str(), bytes, None)]);
        let resp = self.store.client().txn(txn).await?;
        if !resp.succeeded() {
            // Deleted meanwhile (nothing to record), unless we were fenced.
            self.store.check_fence(&key).await?;
        }
        Ok(())
    }

    async fn put_if(
        &self,
        key: &str,
        value: &GitRepository,
        expected: i64,
    ) -> Result<i64, StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            key: key.to_owned(),
            source,
        })?;
        let compare = if expected == 0 {
            Compare::create_revision(key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected)
        };
        let txn = Txn::new()
            .when(self.store.guard(vec![compare]))
            .and_then([TxnOp::put(key, bytes, None)]);
        let resp = self.store.client().txn(txn).await?;
        if !resp.succeeded() {
            self.store.check_fence(key).await?;
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: expected.to_string(),
                found: "a newer revision".into(),
            });
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, StoreError> {
    serde_json::from_slice(kv.value()).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        source,
    })
}

fn decode_repo(kv: &KeyValue) -> Result<StoredRepo, StoreError> {
    let mut repo: GitRepository = decode(kv)?;
    repo.metadata.resource_version = Some(kv.mod_revision().to_string());
    Ok(StoredRepo {
        repo,
        mod_revision: kv.mod_revision(),
    })
}
