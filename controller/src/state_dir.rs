//! The controller's private state directory (`--state-dir`) and the checks every
//! directory it keeps private data in must pass.
//!
//! Default, in order: `$STATE_DIRECTORY` (set by systemd for a unit with
//! `StateDirectory=`), `$XDG_STATE_HOME/concord`, `$HOME/.local/state/concord`. The
//! directory is created with mode 0700. Data in a predictable place anyone can write to
//! (such as a folder in `/tmp`) could be read, replaced or pointed elsewhere by another
//! user, so a directory that is group- or world-writable, or owned by another user, is
//! refused with an error naming it rather than used.

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The GitOps mirror cache under the state directory.
pub const GITOPS_SUBDIR: &str = "gitops";

/// Why a private directory cannot be used.
#[derive(Debug, Error)]
pub enum StateDirError {
    /// Neither `--state-dir` nor any of the environment variables says where.
    #[error(
        "cannot tell where the controller's state directory is: neither STATE_DIRECTORY, XDG_STATE_HOME nor HOME is set; pass --state-dir"
    )]
    Unknown,
    /// Creating it failed.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Reading its metadata failed.
    #[error("cannot inspect {}: {source}", path.display())]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// It exists and is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// It belongs to another user, who could change what the controller reads there.
    #[error(
        "{} is owned by uid {owner}, not by the controller's user (uid {me}); use a directory of the controller's own",
        path.display()
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    /// Others can write to it.
    #[error(
        "{} is writable by its group or by everyone (mode {mode:o}); make it private (chmod 700) or choose another directory",
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
}

/// The default state directory from the environment (`var` reads one variable; empty
/// or relative values are ignored, as the XDG specification asks).
pub fn default_dir(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, StateDirError> {
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dirs) = var("STATE_DIRECTORY") {
        // systemd joins several StateDirectory= entries with ':'; the first is ours.
        let first = dirs.to_string_lossy().split(':').next().map(PathBuf::from);
        if let Some(dir) = first.filter(|p| p.is_absolute()) {
            return Ok(dir);
        }
    }
    if let Some(xdg) = absolute("XDG_STATE_HOME") {
        return Ok(xdg.join("concord"));
    }
    if let Some(home) = absolute("HOME") {
        return Ok(home.join(".local/state/concord"));
    }
    Err(StateDirError::Unknown)
}

/// `explicit` (`--state-dir`), else the default from this process' environment.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf, StateDirError> {
    match explicit {
        Some(dir) => Ok(dir.to_path_buf()),
        None => default_dir(|name| std::env::var_os(name)),
    }
}

/// Creates `path` (and missing parents) with mode 0700 if needed, then checks that it is
/// a directory of this user that nobody else can write to.
pub fn ensure_private_dir(path: &Path) -> Result<(), StateDirError> {
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| StateDirError::Create {
                path: path.to_path_buf(),
                source,
            })?;
    }
    check_private(path, nix::unistd::geteuid().as_raw())
}

/// Checks that `path` is a directory owned by `me` and not writable by group or others.
pub fn check_private(path: &Path, me: u32) -> Result<(), StateDirError> {
    // Not following a symlink would refuse the common `/var/lib/x -> /data/x` setups;
    // the directory it leads to is what gets checked.
    let meta = std::fs::metadata(path).map_err(|source| StateDirError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(StateDirError::NotADirectory {
            path: path.to_path_buf(),
        });
    }
    if meta.uid() != me {
        return Err(StateDirError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The GitOps mirror cache: `explicit` (`--gitops-cache-dir`), else `gitops` under the
/// state directory; created 0700 and checked either way.
pub fn gitops_cache(
    explicit: Option<&Path>,
    state_dir: Option<&Path>,
) -> Result<PathBuf, StateDirError> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => {
            let state = resolve(state_dir)?;
            ensure_private_dir(&state)?;
            state.join(GITOPS_SUBDIR)
        }
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn default_follows_systemd_then_xdg_then_home() {
        let all = [
            ("STATE_DIRECTORY", "/var/lib/concord:/var/lib/other"),
            ("XDG_STATE_HOME", "/home/ada/.state"),
            ("HOME", "/home/ada"),
        ];
        assert_eq!(default_dir(env(&all)).ok(), Some("/var/lib/concord".into()));
        assert_eq!(
            default_dir(env(&all[1..])).ok(),
            Some("/home/ada/.state/concord".into())
        );
        assert_eq!(
            default_dir(env(&all[2..])).ok(),
            Some("/home/ada/.local/state/concord".into())
        );
        // Relative or empty values are not used.
        let odd = [("XDG_STATE_HOME", "state"), ("HOME", "/home/ada")];
        assert_eq!(
            default_dir(env(&odd)).ok(),
            Some("/home/ada/.local/state/concord".into())
        );
        let err = default_dir(env(&[("HOME", "")])).expect_err("nothing usable");
        assert!(err.to_string().contains("pass --state-dir"), "{err}");
    }

    #[test]
    fn creates_missing_directories_private() {
        let tmp = tempfile::tempdir().expect("tmp");
        let state = tmp.path().join("a/state");
        let cache = gitops_cache(None, Some(&state)).expect("cache");
        assert_eq!(cache, state.join("gitops"));
        for dir in [&state, &cache] {
            let mode = std::fs::metadata(dir).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        // An explicit cache directory is created and checked the same way.
        let explicit = tmp.path().join("mirrors");
        assert_eq!(
            gitops_cache(Some(&explicit), None).expect("explicit"),
            explicit
        );
        let mode = std::fs::metadata(&explicit)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn refuses_shared_or_foreign_directories() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).expect("mkdir");
        for mode in [0o777, 0o770, 0o1777, 0o702] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let err = gitops_cache(Some(&dir), None).expect_err("writable by others");
            assert!(matches!(err, StateDirError::Writable { .. }), "{err}");
            assert!(err.to_string().contains("chmod 700"), "{err}");
        }
        // Readable by others is not a reason to refuse (the operator chose it).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        gitops_cache(Some(&dir), None).expect("0755 is private enough to write");

        let me = nix::unistd::geteuid().as_raw();
        let err = check_private(&dir, me + 1).expect_err("another user's");
        assert!(matches!(err, StateDirError::Owner { .. }), "{err}");

        let file = tmp.path().join("file");
        std::fs::write(&file, "x").expect("write");
        let err = gitops_cache(Some(&file), None).expect_err("a file");
        assert!(matches!(err, StateDirError::NotADirectory { .. }), "{err}");
    }
}
