//! Reading a branch of a Git repository through the `git` binary.
//!
//! Each repository gets a bare mirror under the controller's cache directory. A fetch
//! force-updates the one branch asked for (so a force-push simply moves it), and files
//! are read straight from the commit's tree (`git ls-tree`, `git cat-file`): there is no
//! work tree to get out of step. The git binary is used rather than a library because it
//! speaks every transport and credential helper users already have configured.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use concord_schemas::gitops::GitCommit;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::process::Command;

/// How long one git command may take (a fetch of a large repository included).
const GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest file read from a commit; bigger ones are reported, not read.
pub const MAX_FILE_BYTES: u64 = concord_schemas::MAX_DOCUMENT_BYTES as u64;

/// Errors of Git operations; the messages carry git's own words.
#[derive(Debug, Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {command} timed out after {}s", GIT_TIMEOUT.as_secs())]
    Timeout { command: String },
    #[error("git {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("branch {branch:?} not found in {url}")]
    NoBranch { url: String, branch: String },
    #[error("unexpected output of git {command}: {output:?}")]
    Output { command: String, output: String },
    #[error("cannot create the cache directory {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file of a commit, by path in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    pub blob: String,
    pub size: u64,
}

/// A bare mirror of one repository's branch.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
    url: String,
    /// Whether git may use its `file` transport (local paths, `file://`).
    allow_local: bool,
}

impl Mirror {
    /// The mirror of `url` under `cache` (created on the first fetch). The directory name
    /// is a hash of the URL, so two GitRepositories of one URL share a mirror.
    pub fn new(cache: &Path, url: &str) -> Self {
        let digest = Sha256::digest(url.as_bytes());
        Self {
            dir: cache.join(hex::encode(&digest[..12])),
            url: url.to_owned(),
            allow_local: false,
        }
    }

    /// Lets git fetch from local paths and `file://` URLs (`--allow-local-git`); without
    /// it git itself refuses its `file` transport, whatever the URL turns into.
    pub fn allowing_local(mut self, allow: bool) -> Self {
        self.allow_local = allow;
        self
    }

    /// Fetches `branch` and returns its head commit.
    pub async fn fetch(&self, branch: &str) -> Result<GitCommit, GitError> {
        if !self.dir.join("HEAD").exists() {
            std::fs::create_dir_all(&self.dir).map_err(|source| GitError::Cache {
                path: self.dir.clone(),
                source,
            })?;
            self.git(&["init", "--quiet", "--bare"]).await?;
        }
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        match self
            .git(&[
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "--",
                &self.url,
                &refspec,
            ])
            .await
        {
            Ok(_) => {}
            Err(GitError::Failed { stderr, .. })
                if stderr.contains("couldn't find remote ref")
                    || stderr.contains("could not find remote ref") =>
            {
                return Err(GitError::NoBranch {
                    url: self.url.clone(),
                    branch: branch.to_owned(),
                });
            }
            Err(e) => return Err(e),
        }
        let sha = self
            .git(&[
                "rev-parse",
                "--verify",
                &format!("refs/heads/{branch}^{{commit}}"),
            ])
            .await?;
        self.commit(sha.trim()).await
    }

    /// SHA, author, subject and time of a commit.
    pub async fn commit(&self, sha: &str) -> Result<GitCommit, GitError> {
        let out = self
            .git(&["show", "-s", "--format=%H%n%an <%ae>%n%cI%n%s", sha, "--"])
            .await?;
        let mut lines = out.lines();
        let (Some(sha), Some(author), Some(time)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(GitError::Output {
                command: "show".into(),
                output: out,
            });
        };
        Ok(GitCommit {
            sha: sha.to_owned(),
            author: author.to_owned(),
            message: lines.next().unwrap_or("").to_owned(),
            time: DateTime::parse_from_rfc3339(time)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        })
    }

    /// Topology files (`.yaml`, `.yml`, `.json`) under `path` (recursively) in `sha`.
    pub async fn list_files(&self, sha: &str, path: &str) -> Result<Vec<TreeFile>, GitError> {
        let mut args = vec!["ls-tree", "-r", "-z", "--long", "--full-tree", sha];
        if !path.is_empty() {
            args.extend(["--", path]);
        }
        let out = self.git(&args).await?;
        let mut files = Vec::new();
        // `<mode> SP <type> SP <object> SP+ <size> TAB <path>` NUL
        for entry in out.split('\0').filter(|e| !e.is_empty()) {
            let Some((meta, file)) = entry.split_once('\t') else {
                continue;
            };
            let fields: Vec<&str> = meta.split_whitespace().collect();
            let [_, kind, blob, size] = fields.as_slice() else {
                continue;
            };
            let is_topology = [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| file.ends_with(ext));
            let under = path.is_empty() || file == path || file.starts_with(&format!("{path}/"));
            if *kind == "blob" && is_topology && under {
                files.push(TreeFile {
                    path: file.to_owned(),
                    blob: (*blob).to_owned(),
                    size: size.parse().unwrap_or(u64::MAX),
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Whether `path` names a tree (folder) in `sha`; an empty path is the root.
    pub async fn has_folder(&self, sha: &str, path: &str) -> Result<bool, GitError> {
        if path.is_empty() {
            return Ok(true);
        }
        match self
            .git(&["cat-file", "-t", &format!("{sha}:{path}")])
            .await
        {
            Ok(kind) => Ok(kind.trim() == "tree"),
            Err(GitError::Failed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The bytes of a blob.
    pub async fn read_blob(&self, blob: &str) -> Result<Vec<u8>, GitError> {
        self.git_bytes(&["cat-file", "blob", blob]).await
    }

    async fn git(&self, args: &[&str]) -> Result<String, GitError> {
        let bytes = self.git_bytes(args).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn git_bytes(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let command = args.first().copied().unwrap_or("").to_owned();
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(&self.dir)
            .args(args)
            // Never wait for a password on a terminal, and ignore the user's pager.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LC_ALL", "C")
            // Only the transports the controller means to use (no ext::, no file unless allowed).
            .env(
                "GIT_ALLOW_PROTOCOL",
                if self.allow_local {
                    "http:https:ssh:file"
                } else {
                    "http:https:ssh"
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(GitError::Spawn)?;
        let output = tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| GitError::Timeout {
                command: command.clone(),
            })?
            .map_err(GitError::Spawn)?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(GitError::Failed {
                command,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn commit_file(dir: &Path, file: &str, text: &str, message: &str) -> String {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        run(dir, &["add", "-A"]);
        run(dir, &["commit", "-q", "-m", message]);
        run(dir, &["rev-parse", "HEAD"])
    }

    #[tokio::test]
    async fn fetches_lists_reads_and_follows_force_pushes() {
        let work = tempfile::tempdir().expect("tmp");
        let cache = tempfile::tempdir().expect("tmp");
        let repo = work.path();
        run(repo, &["init", "-q", "-b", "main"]);
        let first = commit_file(repo, "topologies/a.yaml", "a: 1\n", "add a");
        commit_file(repo, "README.md", "not a topology\n", "readme");
        let third = commit_file(repo, "topologies/sub/b.yml", "b: 2\n", "add b");

        let url = repo.display().to_string();
        let mirror = Mirror::new(cache.path(), &url).allowing_local(true);
        let head = mirror.fetch("main").await.expect("fetch");
        assert_eq!(head.sha, third);
        assert_eq!(head.author, "Ada <ada@example.com>");
        assert_eq!(head.message, "add b");
        assert!(head.time.is_some());

        let files = mirror
            .list_files(&head.sha, "topologies")
            .await
            .expect("ls");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["topologies/a.yaml", "topologies/sub/b.yml"]);
        assert_eq!(
            mirror.read_blob(&files[0].blob).await.expect("blob"),
            b"a: 1\n"
        );
        assert_eq!(files[0].size, 5);
        let all = mirror.list_files(&head.sha, "").await.expect("ls root");
        assert_eq!(all.len(), 2, "README.md is not a topology file");
        assert!(
            mirror
                .has_folder(&head.sha, "topologies")
                .await
                .expect("tree")
        );
        assert!(!mirror.has_folder(&head.sha, "nope").await.expect("tree"));

        // Force-push the branch back to the first commit: the next fetch follows it.
        run(repo, &["reset", "-q", "--hard", &first]);
        let head = mirror.fetch("main").await.expect("fetch after rewrite");
        assert_eq!(head.sha, first);
        let files = mirror
            .list_files(&head.sha, "topologies")
            .await
            .expect("ls");
        assert_eq!(files.len(), 1);
    }

    #[tokio::test]
    async fn a_missing_branch_or_repository_is_a_clear_error() {
        let work = tempfile::tempdir().expect("tmp");
        let cache = tempfile::tempdir().expect("tmp");
        run(work.path(), &["init", "-q", "-b", "main"]);
        commit_file(work.path(), "a.yaml", "a: 1\n", "a");
        let mirror =
            Mirror::new(cache.path(), &work.path().display().to_string()).allowing_local(true);
        let err = mirror.fetch("release").await.expect_err("no such branch");
        assert!(matches!(err, GitError::NoBranch { .. }), "{err}");
        assert!(
            err.to_string().contains("branch \"release\" not found"),
            "{err}"
        );

        let gone = Mirror::new(cache.path(), "/nonexistent/repository").allowing_local(true);
        let err = gone.fetch("main").await.expect_err("no repository");
        assert!(err.to_string().starts_with("git fetch failed: "), "{err}");
    }

    #[tokio::test]
    async fn git_itself_refuses_local_transports_unless_allowed() {
        let work = tempfile::tempdir().expect("tmp");
        let cache = tempfile::tempdir().expect("tmp");
        run(work.path(), &["init", "-q", "-b", "main"]);
        commit_file(work.path(), "a.yaml", "a: 1\n", "a");
        for url in [
            work.path().display().to_string(),
            format!("file://{}", work.path().display()),
        ] {
            let err = Mirror::new(cache.path(), &url)
                .fetch("main")
                .await
                .expect_err("the file transport is not allowed");
            assert!(
                err.to_string().contains("transport 'file' not allowed"),
                "{err}"
            );
        }
    }
}
