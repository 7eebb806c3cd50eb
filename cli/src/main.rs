//! `concord`: the command-line interface to a Concord controller.
//!
//! Exit codes: 0 success; 1 invalid input or rejected by the controller; 2 usage error;
//! 3 controller unreachable (or its TLS certificate not trusted). `concord diff` follows `kubectl diff`: 0 no differences,
//! 1 differences, 2 invalid input or rejected, 3 unreachable.

mod client;
mod commands;
mod config;
mod input;
mod output;

use concord_schemas::parse_duration;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::{Client, ClientError};

/// Run stream-processing topologies on Mesos.
#[derive(Debug, Parser)]
#[command(name = "concord", version, about, propagate_version = true)]
struct Cli {
    /// Controller API address (default: the current context's server, else
    /// http://127.0.0.1:7070).
    #[arg(long, global = true, env = "CONCORD_API")]
    api: Option<String>,
    /// Bearer token for a controller that requires one (`--token-file` on the controller;
    /// default: the current context's).
    #[arg(long, global = true, env = "CONCORD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of the CA that signed the controller's certificate, trusted instead of
    /// the system's roots (default: the current context's certificateAuthority).
    #[arg(long, global = true, env = "CONCORD_CA", value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Namespace for commands that name a topology.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update topologies from YAML files, directories or stdin (`-f -`).
    Apply(ApplyArgs),
    /// Show, per operator, what applying the files would change. Exit 1 if anything would.
    Diff(FileArgs),
    /// List topologies or show one.
    Get(GetArgs),
    /// Show a topology in detail: conditions, operators, tasks, events.
    Describe {
        #[arg(value_parser = ["topology", "topologies", "topo"])]
        kind: String,
        name: String,
    },
    /// Delete a topology: its tasks are stopped, then it is removed.
    Delete(DeleteArgs),
    /// Draw a topology's DAG with instance counts and live records/s.
    Graph(commands::graph::GraphArgs),
    /// Print an operator instance's stdout or stderr (`-f` to follow).
    Logs(commands::logs::LogsArgs),
    /// Show recently sampled records' paths through a topology with per-hop latency.
    Trace(commands::trace::TraceArgs),
    /// Run a local stack (etcd, mesos-lite, controller) on loopback.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Keep topologies in step with a Git branch.
    #[command(subcommand)]
    Gitops(GitopsCommand),
    /// Watch or undo a rollout.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Show or change the CLI's contexts ($CONCORD_CONFIG or ~/.concord/config).
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Kill one task (the controller replaces it), e.g. to test recovery.
    Kill {
        /// Task ID as shown by `concord describe topology NAME`.
        task_id: String,
    },
    /// Change one operator's number of instances.
    Scale {
        #[arg(value_parser = ["topology", "topo"])]
        kind: String,
        name: String,
        #[arg(long)]
        operator: String,
        #[arg(long)]
        instances: u32,
    },
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Start etcd, mesos-lite and the controller; wait until healthy; print endpoints.
    Up(commands::dev::UpArgs),
    /// Stop exactly what `dev up` started.
    Down {
        #[command(flatten)]
        state: commands::dev::StateArgs,
        /// Also delete the state directory (etcd data, sandboxes, logs).
        #[arg(long)]
        purge: bool,
    },
    /// Show which components are running (exit 1 unless all are).
    Status(commands::dev::StateArgs),
}

#[derive(Debug, Subcommand)]
enum GitopsCommand {
    /// Create (or update) a GitRepository: its branch's topologies are applied and kept.
    Add(commands::gitops::AddArgs),
    /// Last synced revision, errors and per-topology sync and health.
    Status {
        name: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: commands::gitops::StatusFormat,
    },
    /// Sync now and wait for the result (exit 1 if it reports errors).
    Sync {
        name: String,
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Delete a GitRepository; the topologies it applied keep running.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Wait until the latest generation is observed and Ready (exit 1 on Degraded or timeout).
    Status {
        name: String,
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Re-apply the spec of the last generation that became Ready.
    Undo { name: String },
}

#[derive(Debug, Args)]
struct FileArgs {
    /// File, directory (searched recursively for .yaml/.yml/.json) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    files: FileArgs,
    /// Validate and show the plan; store nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// `topologies` (all in the namespace) or `topology` with a NAME.
    #[arg(value_parser = ["topologies", "topology", "topo"])]
    kind: String,
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: OutputFormat,
    /// After listing, keep printing changes as they happen.
    #[arg(short = 'w', long)]
    watch: bool,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    #[arg(value_parser = ["topology", "topologies", "topo"])]
    kind: String,
    name: String,
    /// Wait until the topology and its tasks are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wait: bool,
    /// How long `--wait` waits, e.g. `60s`, `2m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Invalid input or a rejection (exit 1).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match e {
            ClientError::Unreachable { .. }
            | ClientError::Untrusted { .. }
            | ClientError::BadCertificate { .. } => 3,
            _ => 1,
        };
        let mut message = e.to_string();
        if let ClientError::Rejected(status) = &e
            && !status.errors.is_empty()
        {
            message = status
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n");
        }
        Self { code, message }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        // These read or write the config themselves and talk to no controller.
        Command::Config(command) => commands::config::run(command),
        Command::Dev(command) => runtime.block_on(dev(command)),
        command => match connect(cli.api, cli.token, cli.ca) {
            Ok(client) => runtime.block_on(run(&client, &cli.namespace, command)),
            Err(f) => Err(f),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            for line in f.message.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(f.code)
        }
    }
}

/// A client for the server, token and CA the flags, environment and config select.
fn connect(
    api: Option<String>,
    token: Option<String>,
    ca: Option<std::path::PathBuf>,
) -> Result<Client, Failure> {
    let file = config::ConfigFile::load_default()?;
    let target = config::resolve(&config::Overrides { api, token, ca }, &file)?;
    Client::new(&target.server, target.token, target.ca.as_deref())
        .map_err(|e| Failure::invalid(e.to_string()))
}

async fn dev(command: DevCommand) -> Result<u8, Failure> {
    match command {
        DevCommand::Up(args) => commands::dev::up(args).await,
        DevCommand::Down { state, purge } => commands::dev::down(state, purge).await,
        DevCommand::Status(state) => commands::dev::status(state).await,
    }
}

async fn run(client: &Client, namespace: &str, command: Command) -> Result<u8, Failure> {
    match command {
        Command::Apply(args) => commands::apply::run(client, &args.files.files, args.dry_run).await,
        Command::Diff(args) => commands::diff::run(client, &args.files).await,
        Command::Get(args) => {
            let ns = (!args.all_namespaces).then_some(namespace);
            let single = matches!(args.kind.as_str(), "topology" | "topo");
            if single && args.name.is_none() {
                return Err(Failure {
                    code: 2,
                    message: "`get topology` needs a NAME (or use `get topologies`)".into(),
                });
            }
            commands::get::run(client, ns, args.name.as_deref(), args.output, args.watch).await
        }
        Command::Describe { name, .. } => commands::describe::run(client, namespace, &name).await,
        Command::Rollout(RolloutCommand::Status { name, timeout }) => {
            commands::rollout::status(client, namespace, &name, timeout).await
        }
        Command::Rollout(RolloutCommand::Undo { name }) => {
            commands::rollout::undo(client, namespace, &name).await
        }
        Command::Dev(command) => dev(command).await,
        Command::Config(command) => commands::config::run(command),
        Command::Gitops(GitopsCommand::Add(args)) => {
            commands::gitops::add(client, namespace, &args).await
        }
        Command::Gitops(GitopsCommand::Status { name, output }) => {
            commands::gitops::status(client, namespace, name.as_deref(), output).await
        }
        Command::Gitops(GitopsCommand::Sync { name, timeout }) => {
            commands::gitops::sync(client, namespace, &name, timeout).await
        }
        Command::Gitops(GitopsCommand::Delete { name }) => {
            commands::gitops::delete(client, namespace, &name).await
        }
        Command::Graph(args) => commands::graph::run(client, namespace, &args).await,
        Command::Logs(args) => commands::logs::run(client, namespace, &args).await,
        Command::Trace(args) => commands::trace::run(client, namespace, &args).await,
        Command::Kill { task_id } => commands::kill::run(client, &task_id).await,
        Command::Scale {
            name,
            operator,
            instances,
            ..
        } => commands::scale::run(client, namespace, &name, &operator, instances).await,
        Command::Delete(args) => {
            commands::delete::run(
                client,
                namespace,
                &args.name,
                args.wait.then_some(args.timeout),
            )
            .await
        }
    }
}
