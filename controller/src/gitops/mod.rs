//! GitOps: topologies kept in step with a branch of a Git repository.
//!
//! A `GitRepository` object (stored through the API like a topology, see [`store`])
//! names a repository, branch and folder. The syncer ([`run`]) fetches each repository
//! every `interval`, or at once when asked (`POST …/gitrepositories/<name>/sync`, which a
//! Git host's webhook can call), applies the topology files of the branch head through
//! the same store as `concord apply` ([`sync`]), and between syncs reports topologies
//! changed by hand as OutOfSync. Modules: [`git`] reads repositories, [`desired`] turns
//! a commit's files into topologies, [`sync`] converges, [`api`] serves the objects.

pub mod api;
pub mod desired;
pub mod git;
pub mod store;
pub mod sync;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use concord_schemas::Topology;
use concord_schemas::gitops::{GitRepository, GitRepositorySpec, GitRepositoryStatus};

use crate::store::Store;
use store::RepoStore;

/// How often the syncer looks for due repositories, requests and drift.
const TICK: Duration = Duration::from_millis(500);

/// Settings of the syncer.
#[derive(Debug, Clone)]
pub struct GitOpsConfig {
    /// Where bare mirrors of the repositories are kept (a private directory, see
    /// [`crate::state_dir`]).
    pub cache_dir: PathBuf,
    /// Whether local repositories (`file://`, absolute paths) are synced
    /// (`--allow-local-git`).
    pub allow_local: bool,
}

/// Why a repository URL is refused by a controller that does not allow local ones;
/// `None` when it is accepted. Checked at apply (422, nothing stored) and before every
/// sync (for objects stored before the controller was restarted without the flag).
pub fn url_refusal(spec: &GitRepositorySpec, allow_local: bool) -> Option<String> {
    (spec.is_local() && !allow_local).then(|| {
        format!(
            "{:?} is a repository on the controller's own machine; file:// URLs and local paths are accepted only when the controller is started with --allow-local-git",
            spec.url.trim()
        )
    })
}

/// What the syncer remembers between ticks; rebuilt from etcd after a restart.
#[derive(Default)]
struct Memory {
    /// Per repository: Git's topologies as of the last sync (drift is measured against them).
    desired: HashMap<(String, String), BTreeMap<(String, String), Topology>>,
}

/// Runs the syncer until the task is dropped. Errors (etcd unreachable) are logged and
/// retried at the next tick; nothing here ever exits the controller.
pub async fn run(store: Store, config: GitOpsConfig) {
    let repos = RepoStore::new(store.clone());
    let mut memory = Memory::default();
    tracing::info!(cache = %config.cache_dir.display(), "GitOps syncer started");
    loop {
        if let Err(e) = tick(&store, &repos, &config, &mut memory).await {
            tracing::debug!(error = %e, "GitOps tick failed; retrying");
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn tick(
    store: &Store,
    repos: &RepoStore,
    config: &GitOpsConfig,
    memory: &mut Memory,
) -> Result<(), crate::store::StoreError> {
    let all = repos.list(None).await?;
    let requests = repos.sync_requests().await?;
    let live: std::collections::HashSet<_> = all.iter().map(id_of).collect();
    memory.desired.retain(|k, _| live.contains(k));
    let mut stored_topologies: Option<BTreeMap<(String, String), Topology>> = None;
    for repo in all {
        let id = id_of(&repo);
        let request = requests.get(&id).copied().unwrap_or_default();
        if let Some(reason) = url_refusal(&repo.spec, config.allow_local) {
            memory.desired.remove(&id);
            if let Some(status) = refused_status(&repo, request, reason) {
                tracing::warn!(repository = %repo.key(), url = %repo.spec.url, "not synced: local repositories need --allow-local-git");
                repos.put_status(&id.0, &id.1, &status).await?;
            }
            continue;
        }
        if is_due(&repo, request, memory.desired.contains_key(&id)) {
            let mirror = git::Mirror::new(&config.cache_dir, &repo.spec.url)
                .allowing_local(config.allow_local);
            let synced = sync::sync_once(store, &mirror, &repo, request).await;
            repos.put_status(&id.0, &id.1, &synced.status).await?;
            memory.desired.insert(id, synced.desired);
            stored_topologies = None; // they may have changed
            continue;
        }
        // Not due: only follow drift and health.
        let (Some(mut status), Some(desired)) = (repo.status.clone(), memory.desired.get(&id))
        else {
            continue;
        };
        if stored_topologies.is_none() {
            let (items, _) = store.list(None).await?;
            stored_topologies = Some(
                items
                    .into_iter()
                    .map(|t| ((t.metadata.namespace.clone(), t.metadata.name.clone()), t))
                    .collect(),
            );
        }
        let stored = stored_topologies.as_ref().map_or(&EMPTY, |m| m);
        let drifted = sync::mark_drift(&mut status, desired, stored, repo.spec.self_heal);
        if drifted {
            tracing::info!(repository = %repo.key(), "a managed topology was changed outside Git");
        }
        if sync::follow_health(&mut status, stored) || drifted {
            repos.put_status(&id.0, &id.1, &status).await?;
        }
    }
    Ok(())
}

static EMPTY: BTreeMap<(String, String), Topology> = BTreeMap::new();

fn id_of(repo: &GitRepository) -> (String, String) {
    (repo.metadata.namespace.clone(), repo.metadata.name.clone())
}

/// The status of a repository that is not synced because its URL is refused, or `None`
/// when its status already says so (nothing to write). Everything it managed stays as it
/// is; sync requests are answered so `concord gitops sync` returns.
fn refused_status(
    repo: &GitRepository,
    request: i64,
    reason: String,
) -> Option<GitRepositoryStatus> {
    let previous = repo.status.clone().unwrap_or_default();
    let generation = repo.metadata.generation.unwrap_or_default();
    let handled = request.max(previous.last_handled_request);
    if previous.phase == "Refused"
        && previous.fetch_error.as_deref() == Some(reason.as_str())
        && previous.observed_generation == generation
        && previous.last_handled_request == handled
    {
        return None;
    }
    Some(GitRepositoryStatus {
        observed_generation: generation,
        last_handled_request: handled,
        phase: "Refused".into(),
        fetch_error: Some(reason),
        ..previous
    })
}

/// A repository is synced when it never was (by this process, or at all), when its spec
/// changed, when a sync was requested, or when its interval has passed.
fn is_due(repo: &GitRepository, request: i64, synced_here: bool) -> bool {
    let Some(status) = &repo.status else {
        return true;
    };
    if !synced_here
        || status.observed_generation != repo.metadata.generation.unwrap_or_default()
        || request > status.last_handled_request
    {
        return true;
    }
    let interval = repo.spec.interval_duration();
    status.last_sync_time.is_none_or(|at| {
        let elapsed = chrono::Utc::now().signed_duration_since(at);
        elapsed.to_std().unwrap_or_default() >= interval
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(status: Option<GitRepositoryStatus>) -> GitRepository {
        let mut repo = GitRepository::new(
            "r",
            GitRepositorySpec {
                url: "/x".into(),
                interval: "30s".into(),
                ..GitRepositorySpec::default()
            },
        );
        repo.metadata.generation = Some(2);
        repo.status = status;
        repo
    }

    #[test]
    fn local_repositories_are_refused_unless_allowed_and_say_so_once() {
        let repo = repo_with(None);
        assert_eq!(url_refusal(&repo.spec, true), None);
        let reason = url_refusal(&repo.spec, false).expect("refused");
        assert!(reason.contains("--allow-local-git"), "{reason}");
        let remote = GitRepositorySpec {
            url: "https://git.example.com/x.git".into(),
            ..GitRepositorySpec::default()
        };
        assert_eq!(url_refusal(&remote, false), None);

        let status = refused_status(&repo, 5, reason.clone()).expect("first time");
        assert_eq!(status.phase, "Refused");
        assert_eq!(status.fetch_error.as_deref(), Some(reason.as_str()));
        assert_eq!(status.last_handled_request, 5);
        assert_eq!(status.observed_generation, 2);
        let again = repo_with(Some(status));
        assert!(
            refused_status(&again, 5, reason.clone()).is_none(),
            "unchanged"
        );
        assert!(
            refused_status(&again, 6, reason).is_some(),
            "a new sync request"
        );
    }

    #[test]
    fn due_when_new_changed_requested_or_interval_passed() {
        let fresh = GitRepositoryStatus {
            observed_generation: 2,
            last_sync_time: Some(chrono::Utc::now()),
            last_handled_request: 7,
            ..GitRepositoryStatus::default()
        };
        assert!(is_due(&repo_with(None), 0, false), "never synced");
        assert!(
            is_due(&repo_with(Some(fresh.clone())), 0, false),
            "not by this process"
        );
        assert!(
            !is_due(&repo_with(Some(fresh.clone())), 7, true),
            "fresh, request handled"
        );
        assert!(
            is_due(&repo_with(Some(fresh.clone())), 8, true),
            "new request"
        );
        let older_spec = GitRepositoryStatus {
            observed_generation: 1,
            ..fresh.clone()
        };
        assert!(
            is_due(&repo_with(Some(older_spec)), 0, true),
            "spec changed"
        );
        let stale = GitRepositoryStatus {
            last_sync_time: Some(chrono::Utc::now() - chrono::Duration::seconds(31)),
            ..fresh
        };
        assert!(is_due(&repo_with(Some(stale)), 0, true), "interval passed");
    }
}
