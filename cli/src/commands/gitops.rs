//! `concord gitops add|status|sync|delete`: topologies synced from a Git branch.

use std::time::{Duration, Instant};

use concord_schemas::gitops::{GitRepository, GitRepositorySpec, SyncState};

use crate::Failure;
use crate::client::Client;
use crate::output::{Table, age};

/// Options of `concord gitops add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// Name of the GitRepository object.
    pub name: String,
    /// Repository URL (https://, http://, ssh://, file://) or a local path.
    #[arg(long)]
    pub repo: String,
    /// Branch whose head is applied.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Folder in the repository with the topology files (default: the whole repository).
    #[arg(long, default_value = "")]
    pub path: String,
    /// How often the branch is fetched.
    #[arg(long, default_value = "30s")]
    pub interval: String,
    /// Delete topologies it applied once they are no longer in the repository.
    #[arg(long)]
    pub prune: bool,
    /// Leave topologies changed by hand as they are (reported OutOfSync).
    #[arg(long)]
    pub no_self_heal: bool,
    /// Apply a commit only if every file in it is valid.
    #[arg(long)]
    pub atomic: bool,
}

/// `concord gitops add`: create or update a GitRepository.
pub async fn add(client: &Client, ns: &str, args: &AddArgs) -> Result<u8, Failure> {
    let url = resolve_repo(&args.repo)?;
    let mut repo = GitRepository::new(
        &args.name,
        GitRepositorySpec {
            url,
            branch: args.branch.clone(),
            path: args.path.clone(),
            interval: args.interval.clone(),
            prune: args.prune,
            self_heal: !args.no_self_heal,
            atomic: args.atomic,
        },
    );
    repo.metadata.namespace = ns.to_owned();
    // Same checks as the server, before sending anything.
    repo.validate().map_err(|e| {
        Failure::invalid(
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let (outcome, object) = client.apply_repo(&repo).await?;
    println!("gitrepository/{} {outcome}", object.metadata.name);
    Ok(0)
}

/// A local path becomes absolute (the controller runs elsewhere in its own directory).
fn resolve_repo(repo: &str) -> Result<String, Failure> {
    if repo.contains("://") {
        return Ok(repo.to_owned());
    }
    std::fs::canonicalize(repo)
        .map(|p| p.display().to_string())
        .map_err(|e| {
            Failure::invalid(format!(
                "--repo {repo}: {e}; give a URL (https://, ssh://, file://) or an existing local path"
            ))
        })
}

/// Output of `gitops status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
    Yaml,
}

/// `concord gitops status [NAME]`.
pub async fn status(
    client: &Client,
    ns: &str,
    name: Option<&str>,
    format: StatusFormat,
) -> Result<u8, Failure> {
    match name {
        Some(name) => {
            let repo = client.get_repo(ns, name).await?;
            match format {
                StatusFormat::Table => print!("{}", describe(&repo)),
                StatusFormat::Json => println!("{}", to_json(&repo)?),
                StatusFormat::Yaml => print!("{}", to_yaml(&repo)?),
            }
        }
        None => {
            let list = client.list_repos(Some(ns)).await?;
            match format {
                StatusFormat::Table => {
                    if list.items.is_empty() {
                        println!("No GitRepositories in namespace {ns}.");
                    } else {
                        print!("{}", table(&list.items));
                    }
                }
                StatusFormat::Json => println!("{}", to_json(&list)?),
                StatusFormat::Yaml => print!("{}", to_yaml(&list)?),
            }
        }
    }
    Ok(0)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(v).map_err(|e| Failure::invalid(format!("cannot render: {e}")))
}

fn to_yaml<T: serde::Serialize>(v: &T) -> Result<String, Failure> {
    serde_yaml_ng::to_string(v).map_err(|e| Failure::invalid(format!("cannot render: {e}")))
}

fn table(items: &[GitRepository]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "URL",
        "BRANCH",
        "REVISION",
        "PHASE",
        "SYNCED",
        "TOPOLOGIES",
    ]);
    for repo in items {
        let status = repo.status.clone().unwrap_or_default();
        let synced = status
            .topologies
            .iter()
            .filter(|m| m.sync == SyncState::Synced)
            .count();
        t.row(vec![
            repo.metadata.name.clone(),
            repo.spec.url.clone(),
            repo.spec.branch.clone(),
            status
                .revision
                .as_ref()
                .map_or("-".into(), |c| c.short().to_owned()),
            if status.phase.is_empty() {
                "Pending".into()
            } else {
                status.phase.clone()
            },
            status
                .last_sync_time
                .map_or("never".into(), |t| format!("{} ago", age(Some(t)))),
            format!("{synced}/{} synced", status.topologies.len()),
        ]);
    }
    t.render()
}

/// The detailed view of one GitRepository.
pub fn describe(repo: &GitRepository) -> String {
    let spec = &repo.spec;
    let status = repo.status.clone().unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!("Name:        {}\n", repo.metadata.name));
    out.push_str(&format!("Namespace:   {}\n", repo.metadata.namespace));
    out.push_str(&format!(
        "Repository:  {} (branch {}, path {})\n",
        spec.url,
        spec.branch,
        if spec.path.is_empty() {
            "/"
        } else {
            &spec.path
        }
    ));
    out.push_str(&format!(
        "Sync:        every {}, prune {}, self-heal {}, atomic {}\n",
        spec.interval,
        on_off(spec.prune),
        on_off(spec.self_heal),
        on_off(spec.atomic)
    ));
    out.push_str(&format!(
        "Phase:       {}\n",
        if status.phase.is_empty() {
            "Pending (not synced yet)"
        } else {
            &status.phase
        }
    ));
    let commit = |c: &concord_schemas::gitops::GitCommit| {
        format!("{} {:?} by {}", c.short(), c.message, c.author)
    };
    if let Some(c) = &status.revision {
        out.push_str(&format!("Revision:    {}\n", commit(c)));
    }
    match &status.last_applied_revision {
        Some(c) => out.push_str(&format!("In force:    {}\n", commit(c))),
        None if status.revision.is_some() => {
            out.push_str("In force:    none (no commit applied cleanly yet)\n");
        }
        None => {}
    }
    if let Some(t) = status.last_sync_time {
        out.push_str(&format!("Last sync:   {} ago ({t})\n", age(Some(t))));
    }
    if let Some(e) = &status.fetch_error {
        out.push_str(&format!("Fetch error: {e}\n"));
    }
    if !status.errors.is_empty() {
        out.push_str("Errors:\n");
        for e in &status.errors {
            out.push_str(&format!("  {e}\n"));
        }
    }
    if status.topologies.is_empty() {
        out.push_str("Topologies:  none\n");
    } else {
        out.push_str("Topologies:\n");
        let mut t = Table::new(&["  NAMESPACE", "NAME", "FILE", "SYNC", "HEALTH", "MESSAGE"]);
        for m in &status.topologies {
            t.row(vec![
                format!("  {}", m.namespace),
                m.name.clone(),
                m.file.clone(),
                m.sync.to_string(),
                m.health.clone(),
                m.message.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// `concord gitops sync NAME`: sync now and wait for the outcome. Exit 1 when the sync
/// reports errors or the timeout passes.
pub async fn sync(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<u8, Failure> {
    let request = client.sync_repo(ns, name).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let repo = client.get_repo(ns, name).await?;
        if let Some(status) = repo
            .status
            .as_ref()
            .filter(|s| s.last_handled_request >= request)
        {
            print!("{}", describe(&repo));
            return Ok(u8::from(status.phase != "Synced"));
        }
        if Instant::now() >= deadline {
            return Err(Failure::invalid(format!(
                "gitrepository/{name}: no sync finished within {timeout:?}; is a controller with GitOps running?"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `concord gitops delete NAME`: the topologies it applied keep running.
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<u8, Failure> {
    client.delete_repo(ns, name).await?;
    println!("gitrepository/{name} deleted (the topologies it applied keep running)");
    Ok(0)
}
