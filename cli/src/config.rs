//! The CLI's config file with contexts, as `kubectl` users know it: `$CONCORD_CONFIG`, else
//! `~/.concord/config` (YAML).
//!
//! ```yaml
//! currentContext: dev
//! contexts:
//!   - name: dev
//!     server: http://127.0.0.1:7070
//!     tokenFile: /home/me/src/concord/.concord/dev/token
//!   - name: prod
//!     server: https://concord.example.com:7070
//!     token: 3f9c...
//!     certificateAuthority: /etc/concord/ca.pem
//! ```
//!
//! `--api`/`CONCORD_API`, `--token`/`CONCORD_TOKEN` and `--ca`/`CONCORD_CA` win over the
//! current context. When the URL comes from a flag or the environment, the context's
//! token and CA are used only if its `server` is that same URL, so
//! `export CONCORD_API=http://127.0.0.1:7070` keeps working with `concord dev up`'s token
//! and never sends a token to another server. Relative paths in the file are relative to
//! its directory. The file is written with mode 0600, atomically (temp file + rename).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "CONCORD_CONFIG";

/// The API URL when neither a flag, the environment nor a context names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// What `config view` shows instead of a token.
pub const REDACTED: &str = "REDACTED";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The context used when no flag or variable names the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// One controller and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
    pub name: String,
    /// The API's base URL, e.g. `https://concord.example.com:7070`.
    pub server: String,
    /// Bearer token (prefer `tokenFile`: the token then stays out of this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// File whose first word is the token (the controller's token-file format works).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the controller's certificate (instead of the
    /// system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
}

/// Why the config could not be read, written or used; each names the file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot tell where the CLI config is: set {CONFIG_ENV} or HOME")]
    NoLocation,
    #[error("cannot read the CLI config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot write the CLI config {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read the token file {path} of context {context:?} ({config}): {source}")]
    TokenFile {
        context: String,
        path: String,
        config: String,
        source: std::io::Error,
    },
    #[error("the token file {path} of context {context:?} ({config}) holds no token")]
    EmptyTokenFile {
        context: String,
        path: String,
        config: String,
    },
}

/// A config and the file it belongs to.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub config: Config,
}

/// `$CONCORD_CONFIG`, else `$HOME/.concord/config`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".concord").join("config"))
        .ok_or(ConfigError::NoLocation)
}

impl ConfigFile {
    /// Reads the file at [`default_path`].
    pub fn load_default() -> Result<Self, ConfigError> {
        Self::load(&default_path()?)
    }

    /// Reads and checks `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown,
                    source,
                });
            }
        };
        let config = Config::parse(&text, &shown)?;
        Ok(Self {
            path: path.to_path_buf(),
            config,
        })
    }

    /// Writes the config: mode 0600, via a temporary file renamed over the old one, so
    /// a crash never leaves half a file. The directory is created (0700) if missing.
    pub fn save(&self) -> Result<(), ConfigError> {
        let shown = self.path.display().to_string();
        let text = serde_yaml_ng::to_string(&self.config).map_err(|e| ConfigError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        write_private(&self.path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: shown,
            source,
        })
    }

    /// A path from the file, relative ones taken relative to the file's directory.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match self.path.parent() {
            Some(dir) => dir.join(p),
            None => p.to_path_buf(),
        }
    }
}

/// Writes `bytes` to `path` readable by the owner only, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    // A leftover of a crashed run with our PID.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

impl Config {
    /// Parses and checks the file's text; `path` is for messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        // An empty file, or one of comments only, is an empty config.
        let config: Config = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                let mut message = e.to_string();
                // The location is in front already.
                if let Some(cut) = message.find(" at line ") {
                    message.truncate(cut);
                }
                ConfigError::Syntax {
                    path: path.to_owned(),
                    line,
                    column,
                    message,
                }
            })?
        };
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Rules the YAML shape cannot say.
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.contexts {
            if c.name.trim().is_empty() {
                return Err("a context has an empty name".into());
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!("context {:?} appears twice", c.name));
            }
            check_server(&c.server).map_err(|m| format!("context {:?}: {m}", c.name))?;
            if c.token.is_some() && c.token_file.is_some() {
                return Err(format!(
                    "context {:?} has both token and tokenFile; keep one",
                    c.name
                ));
            }
        }
        Ok(())
    }

    /// The context called `name`.
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// Adds `context`, or replaces the one with its name; true when it was new.
    pub fn upsert(&mut self, context: Context) -> bool {
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(old) => {
                *old = context;
                false
            }
            None => {
                self.contexts.push(context);
                true
            }
        }
    }

    /// Removes the context `name` (and unsets it as current); false when there was none.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.contexts.len();
        self.contexts.retain(|c| c.name != name);
        if self.current_context.as_deref() == Some(name) {
            self.current_context = None;
        }
        self.contexts.len() != before
    }

    /// The config with every inline token replaced by [`REDACTED`].
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        for c in &mut shown.contexts {
            if c.token.is_some() {
                c.token = Some(REDACTED.to_owned());
            }
        }
        shown
    }
}

/// A server URL must be http(s) with a host.
pub fn check_server(server: &str) -> Result<(), String> {
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(format!(
            "server {server:?} is not an http:// or https:// URL with a host"
        )),
    }
}

/// Two API URLs name the same server (a trailing `/` and letter case aside).
fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// What flags and environment variables gave (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub api: Option<String>,
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
}

/// Where the CLI connects and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
    /// The context that supplied the server, token or CA, if any did.
    pub context: Option<String>,
}

/// Applies the precedence rules (see the module docs).
pub fn resolve(overrides: &Overrides, file: &ConfigFile) -> Result<Target, ConfigError> {
    let shown = file.path.display().to_string();
    let current = match file.config.current_context.as_deref() {
        Some(name) => Some(file.config.context(name).ok_or_else(|| ConfigError::Invalid {
            path: shown.clone(),
            message: format!(
                "the current context {name:?} does not exist; choose one with `concord config use-context NAME` (see `concord config get-contexts`)"
            ),
        })?),
        None => None,
    };
    let api = overrides.api.as_deref().filter(|a| !a.is_empty());
    // The context applies unless the URL was given and names another server.
    let context = current.filter(|c| api.is_none_or(|a| same_server(a, &c.server)));
    let server = api
        .map(str::to_owned)
        .or_else(|| context.map(|c| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let token = match overrides.token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(t.to_owned()),
        None => match context {
            Some(c) => context_token(c, file)?,
            None => None,
        },
    };
    let ca = overrides.ca.clone().or_else(|| {
        context
            .and_then(|c| c.certificate_authority.as_deref())
            .map(|p| file.resolve_path(p))
    });
    Ok(Target {
        server,
        token,
        ca,
        context: context.map(|c| c.name.clone()),
    })
}

/// The context's inline token, or the first word of its token file's first line that
/// is not blank or a `#` comment.
fn context_token(c: &Context, file: &ConfigFile) -> Result<Option<String>, ConfigError> {
    if let Some(t) = c.token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_owned()));
    }
    let Some(rel) = &c.token_file else {
        return Ok(None);
    };
    let path = file.resolve_path(rel);
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::TokenFile {
        context: c.name.clone(),
        path: path.display().to_string(),
        config: file.path.display().to_string(),
        source,
    })?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .and_then(|l| l.split_whitespace().next())
        .map(|t| Some(t.to_owned()))
        .ok_or_else(|| ConfigError::EmptyTokenFile {
            context: c.name.clone(),
            path: path.display().to_string(),
            config: file.path.display().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ctx(name: &str, server: &str) -> Context {
        Context {
            name: name.into(),
            server: server.into(),
            token: None,
            token_file: None,
            certificate_authority: None,
        }
    }

    fn file_with(dir: &Path, config: Config) -> ConfigFile {
        ConfigFile {
            path: dir.join("config"),
            config,
        }
    }

    #[test]
    fn flags_and_environment_win_over_the_current_context() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut prod = ctx("prod", "https://prod.example:7070");
        prod.token = Some("context-token-0123456789".into());
        prod.certificate_authority = Some("ca.pem".into());
        let file = file_with(
            dir.path(),
            Config {
                current_context: Some("prod".into()),
                contexts: vec![prod],
            },
        );

        // Nothing given: the context decides, its CA relative to the config's directory.
        let t = resolve(&Overrides::default(), &file).expect("resolve");
        assert_eq!(t.server, "https://prod.example:7070");
        assert_eq!(t.token.as_deref(), Some("context-token-0123456789"));
        assert_eq!(t.ca, Some(dir.path().join("ca.pem")));
        assert_eq!(t.context.as_deref(), Some("prod"));

        // A token and CA given explicitly win.
        let t = resolve(
            &Overrides {
                api: None,
                token: Some("flag-token".into()),
                ca: Some("/flag/ca.pem".into()),
            },
            &file,
        )
        .expect("resolve");
        assert_eq!(t.server, "https://prod.example:7070");
        assert_eq!(t.token.as_deref(), Some("flag-token"));
        assert_eq!(t.ca, Some(PathBuf::from("/flag/ca.pem")));

        // The same URL given (trailing slash aside): still the context's token and CA.
        let t = resolve(
            &Overrides {
                api: Some("https://prod.example:7070/".into()),
                ..Overrides::default()
            },
            &file,
        )
        .expect("resolve");
        assert_eq!(t.token.as_deref(), Some("context-token-0123456789"));
        assert_eq!(t.ca, Some(dir.path().join("ca.pem")));

        // Another URL: the context's token never goes there.
        let t = resolve(
            &Overrides {
                api: Some("http://127.0.0.1:9999".into()),
                ..Overrides::default()
            },
            &file,
        )
        .expect("resolve");
        assert_eq!(t.server, "http://127.0.0.1:9999");
        assert_eq!(t.token, None);
        assert_eq!(t.ca, None);
        assert_eq!(t.context, None);
    }

    #[test]
    fn without_any_context_the_default_server_is_used_without_a_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = file_with(
            dir.path(),
            Config {
                current_context: None,
                contexts: vec![ctx("other", "http://10.0.0.1:7070")],
            },
        );
        let t = resolve(&Overrides::default(), &file).expect("resolve");
        assert_eq!(t.server, DEFAULT_SERVER);
        assert_eq!((t.token, t.ca, t.context), (None, None, None));
    }

    #[test]
    fn a_token_file_gives_its_first_word_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("token"),
            "# dev stack\n\nabcdef0123456789abcdef admin dev\n",
        )
        .expect("write");
        let mut dev = ctx("dev", "http://127.0.0.1:7070");
        dev.token_file = Some("token".into());
        let mut file = file_with(
            dir.path(),
            Config {
                current_context: Some("dev".into()),
                contexts: vec![dev],
            },
        );
        let t = resolve(&Overrides::default(), &file).expect("resolve");
        assert_eq!(t.token.as_deref(), Some("abcdef0123456789abcdef"));

        file.config.contexts[0].token_file = Some(dir.path().join("gone"));
        let err = resolve(&Overrides::default(), &file).expect_err("missing token file");
        assert!(err.to_string().contains("gone"), "{err}");
        assert!(err.to_string().contains("\"dev\""), "{err}");

        // A token given explicitly does not need the file.
        let t = resolve(
            &Overrides {
                token: Some("given".into()),
                ..Overrides::default()
            },
            &file,
        )
        .expect("resolve");
        assert_eq!(t.token.as_deref(), Some("given"));
    }

    #[test]
    fn a_current_context_that_does_not_exist_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = file_with(
            dir.path(),
            Config {
                current_context: Some("gone".into()),
                contexts: vec![],
            },
        );
        let err = resolve(&Overrides::default(), &file).expect_err("dangling");
        assert!(err.to_string().contains("\"gone\""), "{err}");
        assert!(err.to_string().contains("use-context"), "{err}");
    }

    #[test]
    fn view_redacts_inline_tokens_and_keeps_token_file_paths() {
        let mut a = ctx("a", "http://a:1");
        a.token = Some("secret-secret-secret".into());
        let mut b = ctx("b", "http://b:1");
        b.token_file = Some("/etc/concord/token".into());
        let config = Config {
            current_context: Some("a".into()),
            contexts: vec![a, b],
        };
        let shown = serde_yaml_ng::to_string(&config.redacted()).expect("yaml");
        assert!(!shown.contains("secret-secret"), "{shown}");
        assert!(shown.contains(&format!("token: {REDACTED}")), "{shown}");
        assert!(shown.contains("tokenFile: /etc/concord/token"), "{shown}");
        assert!(shown.contains("currentContext: a"), "{shown}");
    }

    #[test]
    fn bad_files_are_reported_with_file_line_and_column() {
        let text = "currentContext: dev\ncontexts:\n  - name: dev\n    server: [\n";
        let err = Config::parse(text, "/home/me/.concord/config").expect_err("bad yaml");
        let ConfigError::Syntax {
            path, line, column, ..
        } = &err
        else {
            panic!("a syntax error: {err}");
        };
        assert_eq!(path, "/home/me/.concord/config");
        assert!(*line >= 4 && *column > 0, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("/home/me/.concord/config:{line}:{column}: ")),
            "{err}"
        );

        // A misspelt field is named with its place, not silently ignored.
        let text = "contexts:\n  - name: dev\n    server: http://x:1\n    tokenfile: /t\n";
        let err = Config::parse(text, "cfg").expect_err("unknown field");
        assert!(err.to_string().starts_with("cfg:4:"), "{err}");
        assert!(err.to_string().contains("tokenfile"), "{err}");

        for (text, expect) in [
            (
                "contexts:\n  - {name: a, server: http://x:1}\n  - {name: a, server: http://y:1}\n",
                "context \"a\" appears twice",
            ),
            (
                "contexts:\n  - {name: a, server: 'x:1'}\n",
                "is not an http:// or https:// URL",
            ),
            (
                "contexts:\n  - {name: a, server: 'http://x:1', token: t, tokenFile: f}\n",
                "both token and tokenFile",
            ),
        ] {
            let err = Config::parse(text, "cfg").expect_err(expect);
            assert!(err.to_string().contains(expect), "{err}");
            assert!(err.to_string().starts_with("cfg: "), "{err}");
        }

        // Empty and comment-only files are empty configs.
        assert_eq!(Config::parse("", "cfg").expect("empty"), Config::default());
        assert_eq!(
            Config::parse("# nothing yet\n", "cfg").expect("comments"),
            Config::default()
        );
    }

    #[test]
    fn save_writes_mode_0600_atomically_and_load_reads_it_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub").join("config");
        // A missing file is an empty config.
        let mut file = ConfigFile::load(&path).expect("missing is empty");
        assert_eq!(file.config, Config::default());

        let mut dev = ctx("dev", "http://127.0.0.1:7070");
        dev.token = Some("t0123456789abcdef".into());
        assert!(file.config.upsert(dev.clone()));
        file.config.current_context = Some("dev".into());
        file.save().expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700, "{dir_mode:o}");

        // An existing file with looser permissions is replaced by a private one.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut again = ConfigFile::load(&path).expect("load");
        assert_eq!(again.config, file.config);
        dev.server = "http://127.0.0.1:7071".into();
        assert!(!again.config.upsert(dev), "replaced, not added");
        again.save().expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != "config")
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        let back = ConfigFile::load(&path).expect("load");
        assert_eq!(back.config.contexts[0].server, "http://127.0.0.1:7071");

        // Removing the current context unsets it.
        let mut c = back.config;
        assert!(c.remove("dev"));
        assert_eq!(c.current_context, None);
        assert!(!c.remove("dev"));
    }
}
