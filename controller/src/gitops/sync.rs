//! One sync of one GitRepository: fetch the branch head, read its topology files, and
//! make the stored topologies match them (apply, heal drift, prune), recording the
//! outcome in the repository's status.
//!
//! Rules, in order of precedence:
//! - A topology managed by another GitRepository is never touched (reported Failed).
//! - An invalid file applies nothing and prunes nothing of its own; the topologies it
//!   defined keep their previous spec (reported Failed with the file's error).
//! - With `atomic`, any invalid file holds the whole commit back.
//! - A topology that differs from Git is applied when the commit (or the repository's
//!   spec) is new, or when self-heal is on; otherwise it is reported OutOfSync.
//! - A topology that left the repository is deleted with `prune`, otherwise kept and
//!   reported OutOfSync. Only topologies in this repository's inventory (its status) and
//!   still carrying its managed-by annotation are ever deleted.

use std::collections::BTreeMap;

use chrono::Utc;
use concord_schemas::gitops::{
    GitCommit, GitRepository, GitRepositoryStatus, MANAGED_BY_ANNOTATION, ManagedTopology,
    SyncState,
};
use concord_schemas::{ConditionStatus, SpecError, Topology, condition_type};

use super::desired::{self, Desired, SourceFile};
use super::git::{MAX_FILE_BYTES, Mirror};
use crate::store::{Store, StoreError};

/// The result of one sync.
#[derive(Debug)]
pub struct Synced {
    pub status: GitRepositoryStatus,
    /// The topologies as Git has them, for drift checks until the next sync.
    pub desired: BTreeMap<(String, String), Topology>,
}

/// Syncs `repo` (whose previous status is `repo.status`); `request` is the sync request
/// this answers (0 for a periodic sync).
pub async fn sync_once(
    store: &Store,
    mirror: &Mirror,
    repo: &GitRepository,
    request: i64,
) -> Synced {
    let mut desired_topologies = BTreeMap::new();
    let status = sync_status(store, mirror, repo, request, &mut desired_topologies).await;
    Synced {
        status,
        desired: desired_topologies,
    }
}

async fn sync_status(
    store: &Store,
    mirror: &Mirror,
    repo: &GitRepository,
    request: i64,
    desired_out: &mut BTreeMap<(String, String), Topology>,
) -> GitRepositoryStatus {
    let previous = repo.status.clone().unwrap_or_default();
    let mut status = GitRepositoryStatus {
        observed_generation: repo.metadata.generation.unwrap_or_default(),
        last_handled_request: request.max(previous.last_handled_request),
        last_sync_time: Some(Utc::now()),
        ..previous.clone()
    };
    let head = match mirror.fetch(&repo.spec.branch).await {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(repository = %repo.key(), error = %e, "cannot fetch");
            status.phase = "FetchFailed".into();
            status.fetch_error = Some(e.to_string());
            refresh_health(store, &mut status.topologies).await;
            return status;
        }
    };
    status.fetch_error = None;
    // Git keeps no empty folders: once the last file of the path is removed, the path
    // is gone. That means "no topologies" when what this repository manages came from
    // that path; otherwise (nothing managed yet, or the path was changed) it is more
    // likely a mistyped path, reported rather than taken as "prune everything".
    let path = repo.spec.normalized_path();
    let missing_is_empty = !previous.topologies.is_empty()
        && previous
            .topologies
            .iter()
            .all(|t| path.is_empty() || t.file.starts_with(&format!("{path}/")));
    let files = match read_files(mirror, &head, &path, missing_is_empty).await {
        Ok(files) => files,
        Err(message) => {
            status.phase = "FetchFailed".into();
            status.fetch_error = Some(message);
            status.revision = Some(head);
            refresh_health(store, &mut status.topologies).await;
            return status;
        }
    };
    let desired = desired::from_files(&files, &repo.key(), &head.sha);
    let new_desire = previous.revision.as_ref().map(|c| &c.sha) != Some(&head.sha)
        || previous.observed_generation != status.observed_generation;
    let held_back = repo.spec.atomic && !desired.errors.is_empty();
    let outcome = if held_back {
        hold_back(store, &previous.topologies, &desired).await
    } else {
        converge(store, repo, &previous.topologies, &desired, new_desire).await
    };
    if !held_back {
        desired_out.extend(
            desired
                .topologies
                .iter()
                .map(|(id, (_, t))| (id.clone(), t.clone())),
        );
    }
    let clean = desired.errors.is_empty() && outcome.failures == 0;
    if clean {
        status.last_applied_revision = Some(head.clone());
    }
    tracing::info!(
        repository = %repo.key(),
        revision = %head.short(),
        topologies = outcome.topologies.len(),
        errors = desired.errors.len() + outcome.failures,
        "synced"
    );
    status.phase = if clean { "Synced" } else { "Failed" }.into();
    status.errors = desired.errors;
    status.errors.extend(outcome.errors);
    status.topologies = outcome.topologies;
    status.revision = Some(head);
    status
}

/// The topology files of `head` under `path`, each read or with the reason it was not.
async fn read_files(
    mirror: &Mirror,
    head: &GitCommit,
    path: &str,
    missing_is_empty: bool,
) -> Result<Vec<SourceFile>, String> {
    if !mirror
        .has_folder(&head.sha, path)
        .await
        .map_err(|e| e.to_string())?
    {
        if missing_is_empty {
            return Ok(Vec::new());
        }
        return Err(format!(
            "path {path:?} is not a folder at commit {}",
            head.short()
        ));
    }
    let mut files = Vec::new();
    for f in mirror
        .list_files(&head.sha, path)
        .await
        .map_err(|e| e.to_string())?
    {
        let content = if f.size > MAX_FILE_BYTES {
            Err(format!(
                "file is {} bytes; a topology file may be at most {MAX_FILE_BYTES} bytes (1 MiB)",
                f.size
            ))
        } else {
            mirror.read_blob(&f.blob).await.map_err(|e| e.to_string())
        };
        files.push(SourceFile {
            path: f.path,
            content,
        });
    }
    Ok(files)
}

/// What a sync did to the topologies.
#[derive(Debug, Default)]
struct Outcome {
    topologies: Vec<ManagedTopology>,
    errors: Vec<SpecError>,
    failures: usize,
}

impl Outcome {
    fn push(&mut self, entry: ManagedTopology) {
        if entry.sync == SyncState::Failed {
            self.failures += 1;
        }
        self.topologies.push(entry);
    }
}

/// `atomic` with an invalid file: nothing changes; the inventory stays as it was.
async fn hold_back(store: &Store, inventory: &[ManagedTopology], desired: &Desired) -> Outcome {
    let mut out = Outcome::default();
    for entry in inventory {
        out.push(ManagedTopology {
            sync: SyncState::Failed,
            message: format!(
                "commit held back (atomic): {} invalid file(s)",
                desired.failed_files.len()
            ),
            ..entry.clone()
        });
    }
    refresh_health(store, &mut out.topologies).await;
    out
}

async fn converge(
    store: &Store,
    repo: &GitRepository,
    inventory: &[ManagedTopology],
    desired: &Desired,
    new_desire: bool,
) -> Outcome {
    let me = repo.key();
    let mut out = Outcome::default();
    for ((ns, name), (file, topology)) in &desired.topologies {
        let entry = |sync: SyncState, message: String| ManagedTopology {
            namespace: ns.clone(),
            name: name.clone(),
            file: file.clone(),
            sync,
            health: String::new(),
            message,
        };
        let stored = match store.get(ns, name).await {
            Ok(s) => s.map(|s| s.topology),
            Err(e) => {
                out.push(entry(SyncState::Failed, format!("cannot read it: {e}")));
                continue;
            }
        };
        if let Some(owner) = stored
            .as_ref()
            .and_then(|t| t.metadata.annotations.get(MANAGED_BY_ANNOTATION))
            .filter(|owner| **owner != me)
        {
            out.push(entry(
                SyncState::Failed,
                format!("managed by gitrepository {owner}; not touched"),
            ));
            continue;
        }
        if stored
            .as_ref()
            .is_some_and(|t| t.metadata.deletion_timestamp.is_some())
        {
            out.push(entry(
                SyncState::Failed,
                "being deleted; it is created again once it is gone".into(),
            ));
            continue;
        }
        let same = stored.as_ref().is_some_and(|s| {
            crate::store::apply_outcome(Some(s), topology) == crate::store::ApplyOutcome::Unchanged
        });
        if same {
            out.push(entry(SyncState::Synced, String::new()));
            continue;
        }
        if stored.is_some() && !new_desire && !repo.spec.self_heal {
            out.push(entry(
                SyncState::OutOfSync,
                "changed outside Git; self-heal is off, so it stays as it is until the next commit"
                    .into(),
            ));
            continue;
        }
        let healing = stored.is_some() && !new_desire;
        match store.apply(topology.clone()).await {
            Ok((outcome, applied)) => {
                tracing::info!(
                    repository = %me, namespace = %ns, name = %name, %outcome,
                    generation = ?applied.metadata.generation, healing,
                    "applied from Git"
                );
                let note = if healing {
                    "restored from Git: it had been changed outside Git".to_owned()
                } else {
                    String::new()
                };
                out.push(entry(SyncState::Synced, note));
            }
            Err(e) => {
                let message = match &e {
                    StoreError::Conflict { .. } => {
                        "changed while being applied; retried at the next sync".to_owned()
                    }
                    _ => format!("apply failed: {e}"),
                };
                out.push(entry(SyncState::Failed, message));
            }
        }
    }

    // What left the repository, or sits in a file that is invalid now.
    for old in inventory {
        let id = (old.namespace.clone(), old.name.clone());
        if desired.topologies.contains_key(&id) {
            continue;
        }
        let stored = match store.get(&old.namespace, &old.name).await {
            Ok(s) => s.map(|s| s.topology),
            Err(e) => {
                out.push(ManagedTopology {
                    sync: SyncState::Failed,
                    message: format!("cannot read it: {e}"),
                    ..old.clone()
                });
                continue;
            }
        };
        let Some(stored) = stored else {
            continue; // gone already (pruned earlier, or deleted by hand)
        };
        if stored.metadata.annotations.get(MANAGED_BY_ANNOTATION) != Some(&me) {
            continue; // taken over by hand or by another repository: no longer ours
        }
        if desired.failed_files.contains(&old.file) {
            out.push(ManagedTopology {
                sync: SyncState::Failed,
                message: format!("{} is invalid; the previous spec stays", old.file),
                ..old.clone()
            });
            continue;
        }
        if !repo.spec.prune {
            out.push(ManagedTopology {
                sync: SyncState::OutOfSync,
                message: "no longer in the repository; kept because prune is off".into(),
                ..old.clone()
            });
            continue;
        }
        if stored.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match store.mark_deleted(&old.namespace, &old.name, None).await {
            Ok(_) => {
                tracing::info!(repository = %me, namespace = %old.namespace, name = %old.name, "pruned: no longer in Git");
            }
            Err(e) => out.push(ManagedTopology {
                sync: SyncState::Failed,
                message: format!("prune failed: {e}"),
                ..old.clone()
            }),
        }
    }
    refresh_health(store, &mut out.topologies).await;
    out
}

/// Fills in each entry's health from its topology's status.
async fn refresh_health(store: &Store, entries: &mut [ManagedTopology]) {
    for entry in entries {
        entry.health = match store.get_with_status(&entry.namespace, &entry.name).await {
            Ok(Some(t)) => health(&t).into(),
            Ok(None) => "Missing".into(),
            Err(_) => "Unknown".into(),
        };
    }
}

/// `Healthy`, `Progressing`, `Degraded` or `Deleting`, from the topology's status.
pub fn health(t: &Topology) -> &'static str {
    if t.metadata.deletion_timestamp.is_some() {
        return "Deleting";
    }
    let Some(status) = &t.status else {
        return "Progressing";
    };
    let holds = |kind: &str| {
        status
            .condition(kind)
            .is_some_and(|c| c.status == ConditionStatus::True)
    };
    if holds(condition_type::DEGRADED) {
        "Degraded"
    } else if holds(condition_type::READY)
        && Some(status.observed_generation) == t.metadata.generation
    {
        "Healthy"
    } else {
        "Progressing"
    }
}

/// Marks Synced topologies that no longer match Git as OutOfSync, between syncs, so a
/// change made by hand shows at once (self-heal, if on, restores it at the next sync).
/// Returns whether anything changed.
pub fn mark_drift(
    status: &mut GitRepositoryStatus,
    desired: &BTreeMap<(String, String), Topology>,
    stored: &BTreeMap<(String, String), Topology>,
    self_heal: bool,
) -> bool {
    let mut changed = false;
    for entry in &mut status.topologies {
        if entry.sync != SyncState::Synced {
            continue;
        }
        let id = (entry.namespace.clone(), entry.name.clone());
        let Some(want) = desired.get(&id) else {
            continue;
        };
        let drifted = match stored.get(&id) {
            Some(have) => {
                crate::store::apply_outcome(Some(have), want)
                    != crate::store::ApplyOutcome::Unchanged
            }
            None => true,
        };
        if drifted {
            entry.sync = SyncState::OutOfSync;
            entry.message = if self_heal {
                "changed outside Git; restored at the next sync".into()
            } else {
                "changed outside Git; self-heal is off, so it stays as it is until the next commit"
                    .into()
            };
            changed = true;
        }
    }
    changed
}

/// Updates each entry's health from `stored` (topologies with status); returns whether
/// any changed. Lets the status follow rollouts between syncs.
pub fn follow_health(
    status: &mut GitRepositoryStatus,
    stored: &BTreeMap<(String, String), Topology>,
) -> bool {
    let mut changed = false;
    for entry in &mut status.topologies {
        let now = stored
            .get(&(entry.namespace.clone(), entry.name.clone()))
            .map_or("Missing", health);
        if entry.health != now {
            entry.health = now.to_owned();
            changed = true;
        }
    }
    changed
}
