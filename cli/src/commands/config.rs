//! `concord config view|get-contexts|current-context|use-context|set-context|delete-context`:
//! the contexts of the CLI's config file (see `crate::config`).

use std::path::{Path, PathBuf};

use crate::Failure;
use crate::config::{Config, ConfigError, ConfigFile, Context, check_server};

/// `concord config ...`
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the config file (tokens redacted).
    View,
    /// List the contexts; `*` marks the current one.
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
    /// Make NAME the current context.
    UseContext { name: String },
    /// Create or change the context NAME (a new one needs --server).
    SetContext(SetContextArgs),
    /// Delete the context NAME.
    DeleteContext { name: String },
}

/// Options of `config set-context`.
#[derive(Debug, clap::Args)]
pub struct SetContextArgs {
    pub name: String,
    /// The API's URL, e.g. https://concord.example.com:7070.
    #[arg(long)]
    pub server: Option<String>,
    /// File holding the token (its first word); replaces an inline token.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The token itself, stored in the config; replaces a token file.
    #[arg(long)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the controller's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::invalid(e.to_string())
    }
}

/// Runs one `config` subcommand.
pub fn run(command: ConfigCommand) -> Result<u8, Failure> {
    let mut file = ConfigFile::load_default()?;
    match command {
        ConfigCommand::View => {
            let text = serde_yaml_ng::to_string(&file.config.redacted())
                .map_err(|e| Failure::invalid(e.to_string()))?;
            print!("{text}");
        }
        ConfigCommand::GetContexts => print!("{}", contexts_table(&file.config)),
        ConfigCommand::CurrentContext => match &file.config.current_context {
            Some(name) => println!("{name}"),
            None => {
                return Err(Failure::invalid(format!(
                    "no current context is set in {}; choose one with `concord config use-context NAME`",
                    file.path.display()
                )));
            }
        },
        ConfigCommand::UseContext { name } => {
            if file.config.context(&name).is_none() {
                return Err(no_such_context(&name, &file));
            }
            file.config.current_context = Some(name.clone());
            file.save()?;
            println!("Switched to context {name:?}.");
        }
        ConfigCommand::SetContext(args) => {
            let created = set_context(&mut file.config, args, &cwd()?)
                .map_err(|m| Failure::invalid(format!("{}: {m}", file.path.display())))?;
            file.save()?;
            println!("{created}");
        }
        ConfigCommand::DeleteContext { name } => {
            let was_current = file.config.current_context.as_deref() == Some(name.as_str());
            if !file.config.remove(&name) {
                return Err(no_such_context(&name, &file));
            }
            file.save()?;
            println!("Deleted context {name:?} from {}.", file.path.display());
            if was_current {
                eprintln!(
                    "warning: that was the current context; choose another with `concord config use-context NAME`"
                );
            }
        }
    }
    Ok(0)
}

fn cwd() -> Result<PathBuf, Failure> {
    std::env::current_dir()
        .map_err(|e| Failure::invalid(format!("cannot tell the current directory: {e}")))
}

fn no_such_context(name: &str, file: &ConfigFile) -> Failure {
    Failure::invalid(format!(
        "no context named {name:?} in {} (see `concord config get-contexts`)",
        file.path.display()
    ))
}

/// Applies `set-context` to `config`; paths given relative are made absolute against
/// `cwd`, so the context works from any directory. Returns what to print.
fn set_context(config: &mut Config, args: SetContextArgs, cwd: &Path) -> Result<String, String> {
    let absolute = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
    if args.name.trim().is_empty() {
        return Err("a context needs a name".into());
    }
    let existing = config.context(&args.name).cloned();
    let created = existing.is_none();
    let mut context = match existing {
        Some(c) => c,
        None => {
            let Some(server) = args.server.clone() else {
                return Err(format!(
                    "context {:?} does not exist; give --server URL to create it",
                    args.name
                ));
            };
            Context {
                name: args.name.clone(),
                server,
                token: None,
                token_file: None,
                certificate_authority: None,
            }
        }
    };
    if let Some(server) = args.server {
        check_server(&server)?;
        context.server = server;
    }
    if let Some(token) = args.token {
        context.token = Some(token);
        context.token_file = None;
    }
    if let Some(file) = args.token_file {
        context.token_file = Some(absolute(file));
        context.token = None;
    }
    if let Some(ca) = args.ca {
        context.certificate_authority = Some(absolute(ca));
    }
    let name = context.name.clone();
    config.upsert(context);
    Ok(if created {
        format!("Context {name:?} created.")
    } else {
        format!("Context {name:?} modified.")
    })
}

/// `CURRENT  NAME  SERVER  AUTH` rows.
fn contexts_table(config: &Config) -> String {
    let mut rows = vec![[
        "CURRENT".to_owned(),
        "NAME".to_owned(),
        "SERVER".to_owned(),
        "AUTH".to_owned(),
    ]];
    for c in &config.contexts {
        let current = config.current_context.as_deref() == Some(c.name.as_str());
        let auth = match (&c.token, &c.token_file) {
            (Some(_), _) => "token".to_owned(),
            (None, Some(f)) => format!("tokenFile {}", f.display()),
            (None, None) => "none".to_owned(),
        };
        rows.push([
            if current { "*" } else { "" }.to_owned(),
            c.name.clone(),
            c.server.clone(),
            auth,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> SetContextArgs {
        SetContextArgs {
            name: name.into(),
            server: None,
            token_file: None,
            token: None,
            ca: None,
        }
    }

    #[test]
    fn set_context_creates_with_a_server_and_then_changes_only_what_is_given() {
        let mut config = Config::default();
        let cwd = Path::new("/work");
        let err = set_context(&mut config, args("prod"), cwd).expect_err("no server");
        assert!(err.contains("--server"), "{err}");
        let err = set_context(
            &mut config,
            SetContextArgs {
                server: Some("prod:7070".into()),
                ..args("prod")
            },
            cwd,
        )
        .expect_err("not a URL");
        assert!(err.contains("not an http"), "{err}");
        assert!(config.contexts.is_empty(), "nothing stored on bad input");

        let said = set_context(
            &mut config,
            SetContextArgs {
                server: Some("https://prod:7070".into()),
                token_file: Some("secrets/token".into()),
                ca: Some("ca.pem".into()),
                ..args("prod")
            },
            cwd,
        )
        .expect("create");
        assert_eq!(said, "Context \"prod\" created.");
        let c = config.context("prod").expect("prod");
        assert_eq!(c.token_file, Some(PathBuf::from("/work/secrets/token")));
        assert_eq!(c.certificate_authority, Some(PathBuf::from("/work/ca.pem")));

        // An inline token replaces the token file; the server and CA stay.
        let said = set_context(
            &mut config,
            SetContextArgs {
                token: Some("inline-token".into()),
                ..args("prod")
            },
            cwd,
        )
        .expect("modify");
        assert_eq!(said, "Context \"prod\" modified.");
        let c = config.context("prod").expect("prod");
        assert_eq!(c.token.as_deref(), Some("inline-token"));
        assert_eq!(c.token_file, None);
        assert_eq!(c.server, "https://prod:7070");
        assert_eq!(c.certificate_authority, Some(PathBuf::from("/work/ca.pem")));
        assert_eq!(config.current_context, None, "set-context does not switch");
    }

    #[test]
    fn the_contexts_table_marks_the_current_one_and_never_shows_a_token() {
        let mut config = Config::default();
        let cwd = Path::new("/");
        for (name, server) in [("dev", "http://127.0.0.1:7070"), ("prod", "https://p:1")] {
            set_context(
                &mut config,
                SetContextArgs {
                    server: Some(server.into()),
                    token: Some(format!("{name}-secret-token")),
                    ..args(name)
                },
                cwd,
            )
            .expect("set");
        }
        config.current_context = Some("prod".into());
        let table = contexts_table(&config);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("CURRENT"), "{table}");
        assert!(
            lines[1].starts_with(' ') && lines[1].contains("dev"),
            "{table}"
        );
        assert!(
            lines[2].starts_with('*') && lines[2].contains("prod"),
            "{table}"
        );
        assert!(!table.contains("secret"), "{table}");
    }
}
