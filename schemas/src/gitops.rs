//! The `GitRepository` resource: a Git branch whose topology files the controller keeps
//! applied (GitOps).
//!
//! The spec says where to look (URL, branch, path) and how to sync (interval, prune,
//! self-heal, atomic); the status says what was applied from which commit, which files
//! were rejected and why, and, per managed topology, whether it matches Git.
//!
//! ```
//! use concord_schemas::gitops::{GitRepository, GitRepositorySpec};
//!
//! let repo = GitRepository::new("prod", GitRepositorySpec {
//!     url: "https://git.example.com/streams.git".into(),
//!     path: "topologies/".into(),
//!     ..GitRepositorySpec::default()
//! });
//! repo.validate()?;
//! assert_eq!(repo.spec.branch, "main");
//! assert_eq!(repo.spec.interval_duration(), std::time::Duration::from_secs(30));
//! # Ok::<(), concord_schemas::SpecErrors>(())
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::check_dns1123_label;
use crate::{API_VERSION, ObjectMeta, SpecError, SpecErrors};

/// The resource kind.
pub const GIT_REPOSITORY_KIND: &str = "GitRepository";

/// Annotation on every topology a GitRepository applied: `<namespace>/<name>` of it.
pub const MANAGED_BY_ANNOTATION: &str = "concord.io/managed-by";
/// Annotation on every managed topology: the commit SHA it was applied from.
pub const REVISION_ANNOTATION: &str = "concord.io/git-revision";
/// Annotation on every managed topology: the file in the repository that defines it.
pub const SOURCE_PATH_ANNOTATION: &str = "concord.io/git-path";

/// Shortest accepted polling interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A Git branch whose topologies are kept applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRepository {
    /// Must be `concord.io/v1alpha1`.
    pub api_version: String,
    /// Must be `GitRepository`.
    pub kind: String,
    /// Name and namespace; the server fills in the rest.
    pub metadata: ObjectMeta,
    /// Where the topologies are and how to sync them.
    pub spec: GitRepositorySpec,
    /// Written by the controller only; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GitRepositoryStatus>,
}

impl GitRepository {
    /// A GitRepository named `name` in the default namespace.
    pub fn new(name: &str, spec: GitRepositorySpec) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: GIT_REPOSITORY_KIND.to_owned(),
            metadata: ObjectMeta {
                name: name.to_owned(),
                namespace: crate::DEFAULT_NAMESPACE.to_owned(),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    /// `<namespace>/<name>`, the value of [`MANAGED_BY_ANNOTATION`] on its topologies.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// Checks everything serde cannot: names, URL, branch, path and interval.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = Vec::new();
        if self.api_version != API_VERSION {
            errors.push(SpecError::at_path(
                "apiVersion",
                format!(
                    "{:?} is not supported; expected {API_VERSION:?}",
                    self.api_version
                ),
            ));
        }
        if self.kind != GIT_REPOSITORY_KIND {
            errors.push(SpecError::at_path(
                "kind",
                format!("{:?}: expected {GIT_REPOSITORY_KIND:?}", self.kind),
            ));
        }
        if let Err(e) = check_dns1123_label(&self.metadata.name) {
            errors.push(SpecError::at_path("metadata.name", e));
        }
        if let Err(e) = check_dns1123_label(&self.metadata.namespace) {
            errors.push(SpecError::at_path("metadata.namespace", e));
        }
        errors.extend(self.spec.problems());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(errors))
        }
    }
}

/// Where the topologies are and how to sync them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRepositorySpec {
    /// What `git fetch` accepts: `https://…`, `http://…`, `file://…` or an absolute local
    /// path on the controller's machine. Credentials belong in the controller's Git
    /// configuration (a credential helper), never in this URL.
    pub url: String,
    /// The branch whose head is applied.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Folder inside the repository holding the topology files (`.yaml`, `.yml`,
    /// `.json`, searched recursively); empty for the whole repository.
    #[serde(default)]
    pub path: String,
    /// How often the branch is fetched, e.g. `30s`, `5m`.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Delete topologies this repository applied that are no longer in it.
    #[serde(default)]
    pub prune: bool,
    /// Restore managed topologies changed by hand at the next sync.
    #[serde(default = "default_true")]
    pub self_heal: bool,
    /// Apply a commit only if every file in it is valid; otherwise hold the whole commit
    /// back. Without it, valid files are applied and invalid ones reported.
    #[serde(default)]
    pub atomic: bool,
}

impl Default for GitRepositorySpec {
    fn default() -> Self {
        Self {
            url: String::new(),
            branch: default_branch(),
            path: String::new(),
            interval: default_interval(),
            prune: false,
            self_heal: true,
            atomic: false,
        }
    }
}

fn default_branch() -> String {
    "main".to_owned()
}

fn default_interval() -> String {
    "30s".to_owned()
}

fn default_true() -> bool {
    true
}

impl GitRepositorySpec {
    /// The polling interval; the default when `interval` does not parse (validation
    /// rejects that before anything is stored).
    pub fn interval_duration(&self) -> Duration {
        crate::parse_duration(&self.interval)
            .unwrap_or(Duration::from_secs(30))
            .max(MIN_INTERVAL)
    }

    /// Whether `url` names a repository on the controller's own machine (`file://` or an
    /// absolute path): accepted only by a controller started with `--allow-local-git`,
    /// because it lets API users make the controller read its own files.
    pub fn is_local(&self) -> bool {
        let url = self.url.trim();
        url.starts_with('/')
            || url
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("file://"))
    }

    /// The path inside the repository without leading or trailing slashes (`""` for all).
    pub fn normalized_path(&self) -> String {
        self.path
            .trim_matches('/')
            .trim_start_matches("./")
            .to_owned()
    }

    fn problems(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        let url = self.url.trim();
        let remote = ["https://", "http://", "file://", "ssh://"]
            .iter()
            .any(|s| url.starts_with(s));
        if url.is_empty() {
            errors.push(SpecError::at_path(
                "spec.url",
                "missing: the repository's URL or absolute path",
            ));
        } else if !remote && !url.starts_with('/') {
            errors.push(SpecError::at_path(
                "spec.url",
                format!("{url:?}: expected an https://, http://, ssh:// or file:// URL or an absolute path"),
            ));
        } else if url.starts_with('-') || url.chars().any(char::is_control) {
            errors.push(SpecError::at_path(
                "spec.url",
                format!("{url:?} is not a valid URL"),
            ));
        } else if url_has_password(url) {
            errors.push(SpecError::at_path(
                "spec.url",
                "must not carry credentials (user:password@); configure a Git credential helper for the controller instead",
            ));
        }
        if let Err(e) = check_branch(&self.branch) {
            errors.push(SpecError::at_path("spec.branch", e));
        }
        let path = self.normalized_path();
        if path.split('/').any(|part| part == "..") || path.chars().any(char::is_control) {
            errors.push(SpecError::at_path(
                "spec.path",
                format!(
                    "{:?}: expected a folder inside the repository (no `..`)",
                    self.path
                ),
            ));
        }
        match crate::parse_duration(&self.interval) {
            Ok(d) if d < MIN_INTERVAL => errors.push(SpecError::at_path(
                "spec.interval",
                format!("{:?} is too short; at least 1s", self.interval),
            )),
            Ok(_) => {}
            Err(e) => errors.push(SpecError::at_path("spec.interval", e)),
        }
        errors
    }
}

fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// A branch name `git check-ref-format --branch` would accept (the common rules).
fn check_branch(branch: &str) -> Result<(), String> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.ends_with(".lock")
        || branch.ends_with('.')
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if bad {
        Err(format!("{branch:?} is not a valid branch name"))
    } else {
        Ok(())
    }
}

/// What the controller last did with the repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryStatus {
    /// The `metadata.generation` the last sync used.
    #[serde(default)]
    pub observed_generation: i64,
    /// The branch head the last sync read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<GitCommit>,
    /// The last commit whose every file was valid and applied: the revision in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<GitCommit>,
    /// When the last sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<DateTime<Utc>>,
    /// The last sync request (`POST …/sync`) this status answers: the etcd revision of
    /// the request, so a client can wait for its own.
    #[serde(default)]
    pub last_handled_request: i64,
    /// `Synced`, `Failed` (some files were rejected or could not be applied),
    /// `FetchFailed` (the repository could not be read) or `Refused` (this controller
    /// does not fetch such a URL, e.g. a local path without `--allow-local-git`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Why the repository could not be fetched or read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    /// Problems of the last sync, per file (with line and column where known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SpecError>,
    /// Every topology this repository manages, with its sync state and health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topologies: Vec<ManagedTopology>,
}

/// One commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitCommit {
    /// Full SHA.
    pub sha: String,
    /// `Name <email>`.
    pub author: String,
    /// The subject line.
    pub message: String,
    /// Commit time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

impl GitCommit {
    /// The first 12 characters of the SHA.
    pub fn short(&self) -> &str {
        self.sha.get(..12).unwrap_or(&self.sha)
    }
}

/// Whether a managed topology matches Git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    /// The stored spec is what Git says.
    Synced,
    /// It differs: changed by hand (and self-heal is off), or gone from Git with prune off.
    OutOfSync,
    /// Its file is invalid or the apply was refused; the previous spec stays.
    Failed,
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Synced => "Synced",
            Self::OutOfSync => "OutOfSync",
            Self::Failed => "Failed",
        })
    }
}

/// A topology a GitRepository applied (its inventory: what prune may delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedTopology {
    pub namespace: String,
    pub name: String,
    /// The file that defines it (or last defined it).
    pub file: String,
    pub sync: SyncState,
    /// `Healthy` (Ready), `Progressing`, `Degraded`, `Missing` or `Unknown`.
    pub health: String,
    /// Why it is not Synced, when it is not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `GET …/gitrepositories`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryList {
    pub api_version: String,
    pub kind: String,
    /// Paging: `continue` when more objects follow.
    #[serde(default)]
    pub metadata: crate::api::ListMeta,
    pub items: Vec<GitRepository>,
}

/// The answer to `POST …/gitrepositories/<name>/sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequested {
    /// Wait until `status.lastHandledRequest` is at least this.
    pub request: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(spec: GitRepositorySpec) -> GitRepository {
        GitRepository::new("prod", spec)
    }

    fn messages(r: &GitRepository) -> Vec<String> {
        r.validate()
            .err()
            .map(|e| e.0.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_apply_when_fields_are_absent() {
        let r: GitRepository = serde_json::from_str(
            r#"{"apiVersion":"concord.io/v1alpha1","kind":"GitRepository",
                "metadata":{"name":"prod"},"spec":{"url":"/srv/git/streams"}}"#,
        )
        .expect("parse");
        assert_eq!(
            r.spec,
            GitRepositorySpec {
                url: "/srv/git/streams".into(),
                ..GitRepositorySpec::default()
            }
        );
        assert!(r.spec.self_heal && !r.spec.prune && !r.spec.atomic);
        assert_eq!(r.metadata.namespace, "default");
        r.validate().expect("valid");
    }

    #[test]
    fn unknown_spec_fields_are_rejected() {
        let err = serde_json::from_str::<GitRepository>(
            r#"{"apiVersion":"concord.io/v1alpha1","kind":"GitRepository",
                "metadata":{"name":"prod"},"spec":{"url":"/x","purne":true}}"#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `purne`"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        let r = repo(GitRepositorySpec {
            url: "relative/dir".into(),
            branch: "bad..branch".into(),
            path: "../outside".into(),
            interval: "soon".into(),
            ..GitRepositorySpec::default()
        });
        let m = messages(&r);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(
            m[0].starts_with("spec.url: \"relative/dir\": expected an https://"),
            "{m:?}"
        );
        assert_eq!(
            m[1],
            "spec.branch: \"bad..branch\" is not a valid branch name"
        );
        assert!(m[2].starts_with("spec.path: \"../outside\""), "{m:?}");
        assert!(m[3].starts_with("spec.interval: "), "{m:?}");
    }

    #[test]
    fn local_urls_are_told_apart_from_remote_ones() {
        let local = |url: &str| {
            GitRepositorySpec {
                url: url.into(),
                ..GitRepositorySpec::default()
            }
            .is_local()
        };
        assert!(local("/srv/git/streams"));
        assert!(local(" file:///srv/git/streams"));
        assert!(local("FILE:///srv/git/streams"));
        assert!(!local("https://git.example.com/x.git"));
        assert!(!local("ssh://git@git.example.com/x.git"));
    }

    #[test]
    fn credentials_in_urls_and_short_intervals_are_refused() {
        let r = repo(GitRepositorySpec {
            url: "https://bob:hunter2@git.example.com/x.git".into(),
            interval: "100ms".into(),
            ..GitRepositorySpec::default()
        });
        let m = messages(&r);
        assert!(m[0].contains("must not carry credentials"), "{m:?}");
        assert_eq!(m[1], "spec.interval: \"100ms\" is too short; at least 1s");
        // A user name alone (ssh-style) is not a secret.
        let ok = repo(GitRepositorySpec {
            url: "ssh://git@git.example.com/x.git".into(),
            ..GitRepositorySpec::default()
        });
        ok.validate().expect("user without password is fine");
    }

    #[test]
    fn paths_are_normalised() {
        for (given, want) in [
            ("topologies/", "topologies"),
            ("/a/b/", "a/b"),
            ("./x", "x"),
            ("", ""),
        ] {
            let spec = GitRepositorySpec {
                path: given.into(),
                ..GitRepositorySpec::default()
            };
            assert_eq!(spec.normalized_path(), want, "{given:?}");
        }
    }
}
