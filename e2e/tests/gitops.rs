//! GitOps end to end: real Git repositories (a bare "origin" pushed to from a clone),
//! real etcd, mesos-lite, the controller binary and the CLI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use concord_e2e::{Controller, Etcd, MesosLite, concord, running_task_ids, wait_for};
use concord_schemas::Topology;
use concord_schemas::gitops::{GitRepository, SyncState};

const READY: Duration = Duration::from_secs(90);
const SYNC: Duration = Duration::from_secs(30);

/// A bare origin and a clone of it that commits and pushes, as a user would.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = Self { dir };
        git(
            repo.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        git(repo.dir.path(), &["clone", "-q", "origin.git", "work"]);
        git(&repo.work(), &["checkout", "-q", "-b", "main"]);
        repo
    }

    fn origin(&self) -> String {
        self.dir.path().join("origin.git").display().to_string()
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.work().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn remove(&self, file: &str) {
        git(&self.work(), &["rm", "-q", file]);
    }

    /// Commits everything and pushes; returns the new head.
    fn commit(&self, message: &str) -> String {
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "-q", "-m", message]);
        git(&self.work(), &["push", "-q", "origin", "main"]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }

    /// Rewrites history: the branch goes back to `sha`, force-pushed.
    fn force_push_to(&self, sha: &str) {
        git(&self.work(), &["reset", "-q", "--hard", sha]);
        git(&self.work(), &["push", "-q", "--force", "origin", "main"]);
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Grace",
            "-c",
            "user.email=grace@example.com",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// gen -> count -> sink (maxSurge 1) with `count` instances and a label in count's config.
fn pipeline(name: &str, count: u32, label: &str) -> String {
    concord_e2e::pipeline(name, count, label, 1, 0)
}

fn run_ok(api: &str, args: &[&str]) -> String {
    let out = concord(api, args);
    assert!(
        out.status.success(),
        "concord {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn get_repo(api: &str, name: &str) -> Option<GitRepository> {
    let url = format!("{api}/apis/concord.io/v1alpha1/namespaces/default/gitrepositories/{name}");
    let resp = reqwest::get(url).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Waits until the repository's status has synced `sha` and `check` holds.
async fn wait_synced(
    api: &str,
    name: &str,
    sha: &str,
    what: &str,
    check: impl Fn(&GitRepository) -> bool,
) -> GitRepository {
    wait_for(SYNC, what, || async {
        let repo = get_repo(api, name).await?;
        let status = repo.status.as_ref()?;
        (status.revision.as_ref()?.sha == sha && check(&repo)).then_some(repo)
    })
    .await
}

fn sync_of(repo: &GitRepository, topology: &str) -> Option<SyncState> {
    repo.status
        .as_ref()?
        .topologies
        .iter()
        .find(|t| t.name == topology)
        .map(|t| t.sync)
}

fn message_of(repo: &GitRepository, topology: &str) -> String {
    repo.status
        .as_ref()
        .and_then(|s| s.topologies.iter().find(|t| t.name == topology))
        .map(|t| t.message.clone())
        .unwrap_or_default()
}

async fn topology(api: &str, name: &str) -> Option<Topology> {
    let url = format!("{api}/apis/concord.io/v1alpha1/namespaces/default/topologies/{name}");
    let resp = reqwest::get(url).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

fn count_instances(t: &Topology) -> u32 {
    t.spec
        .operators
        .iter()
        .find(|o| o.name == "count")
        .map_or(0, |o| o.instances)
}

/// Waits for `generation` to be Ready and returns the topology.
async fn ready_at(controller: &Controller, name: &str, generation: i64) -> Topology {
    wait_for(
        READY,
        &format!("{name} generation {generation} Ready"),
        || async {
            let t = controller.wait_ready(name, READY).await;
            (t.metadata.generation == Some(generation)).then_some(t)
        },
    )
    .await
}

fn tasks(t: &Topology, op: &str) -> BTreeSet<String> {
    running_task_ids(t, op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_change_only_the_operators_they_touch_and_history_rewrites_converge() {
    let etcd = Etcd::start().await;
    let mesos = MesosLite::start(2, 4.0, 4096).await;
    // The repositories of these tests are local paths: allowed only with the flag.
    let controller = Controller::start_with(
        &etcd.url,
        &mesos.url,
        "/concord",
        &["--kill-grace", "2s", "--allow-local-git"],
    )
    .await;
    let api = controller.url.clone();
    let repo = Repo::new();

    // A commit adding a topology -> running.
    repo.write("topologies/shop.yaml", &pipeline("shop", 2, "v1"));
    repo.write("README.md", "not a topology\n");
    let c1 = repo.commit("add shop");
    // A long interval: every later step is driven by `gitops sync` (the webhook's path).
    let added = run_ok(
        &api,
        &[
            "gitops",
            "add",
            "prod",
            "--repo",
            &repo.origin(),
            "--path",
            "topologies/",
            "--interval",
            "1h",
        ],
    );
    assert_eq!(added.trim(), "gitrepository/prod created");
    let status = wait_synced(&api, "prod", &c1, "first sync", |r| {
        sync_of(r, "shop") == Some(SyncState::Synced)
    })
    .await;
    let s = status.status.as_ref().expect("status");
    assert_eq!(s.phase, "Synced");
    assert_eq!(
        s.last_applied_revision.as_ref().map(|c| c.sha.as_str()),
        Some(c1.as_str())
    );
    assert_eq!(
        s.revision.as_ref().map(|c| c.message.as_str()),
        Some("add shop")
    );
    assert_eq!(
        s.revision.as_ref().map(|c| c.author.as_str()),
        Some("Grace <grace@example.com>")
    );
    let t1 = ready_at(&controller, "shop", 1).await;
    assert_eq!(
        t1.metadata.annotations["concord.io/managed-by"],
        "default/prod"
    );
    assert_eq!(t1.metadata.annotations["concord.io/git-revision"], c1);
    assert_eq!(
        t1.metadata.annotations["concord.io/git-path"],
        "topologies/shop.yaml"
    );
    // Health follows the rollout between syncs (the interval is an hour).
    wait_for(SYNC, "health Healthy", || async {
        let r = get_repo(&api, "prod").await?;
        let s = r.status?;
        (s.topologies.first()?.health == "Healthy").then_some(())
    })
    .await;
    let (gen1, count1, sink1) = (tasks(&t1, "gen"), tasks(&t1, "count"), tasks(&t1, "sink"));
    assert_eq!(count1.len(), 2);

    // A commit changing one operator's instances -> only that operator's tasks change.
    repo.write("topologies/shop.yaml", &pipeline("shop", 3, "v1"));
    let c2 = repo.commit("scale count to 3");
    let out = run_ok(&api, &["gitops", "sync", "prod"]);
    assert!(out.contains("Phase:       Synced"), "{out}");
    assert!(out.contains(&c2[..12]), "{out}");
    let t2 = ready_at(&controller, "shop", 2).await;
    assert_eq!(tasks(&t2, "gen"), gen1, "gen untouched by a scale of count");
    assert_eq!(
        tasks(&t2, "sink"),
        sink1,
        "sink untouched by a scale of count"
    );
    let count2 = tasks(&t2, "count");
    assert_eq!(count2.len(), 3);
    assert!(
        count1.is_subset(&count2),
        "scaling up keeps the running instances"
    );

    // A commit changing one operator's config -> rolling replace of only that operator.
    repo.write("topologies/shop.yaml", &pipeline("shop", 3, "v2"));
    let c3 = repo.commit("count: label v2");
    run_ok(&api, &["gitops", "sync", "prod"]);
    let t3 = ready_at(&controller, "shop", 3).await;
    assert_eq!(tasks(&t3, "gen"), gen1);
    assert_eq!(tasks(&t3, "sink"), sink1);
    let count3 = tasks(&t3, "count");
    assert_eq!(count3.len(), 3);
    assert!(count3.is_disjoint(&count2), "every count task was replaced");
    assert_eq!(t3.metadata.annotations["concord.io/git-revision"], c3);

    // A hand edit -> OutOfSync (seen between syncs), then healed by the next sync.
    let edited = repo.dir.path().join("by-hand.yaml");
    std::fs::write(&edited, pipeline("shop", 1, "v2")).expect("write");
    run_ok(&api, &["apply", "-f", edited.to_str().expect("utf-8")]);
    let drifted = wait_for(SYNC, "drift reported", || async {
        let r = get_repo(&api, "prod").await?;
        (sync_of(&r, "shop") == Some(SyncState::OutOfSync)).then_some(r)
    })
    .await;
    assert!(
        message_of(&drifted, "shop").contains("changed outside Git"),
        "{drifted:?}"
    );
    let out = run_ok(&api, &["gitops", "status", "prod"]);
    assert!(out.contains("OutOfSync"), "{out}");
    run_ok(&api, &["gitops", "sync", "prod"]);
    let healed = topology(&api, "shop").await.expect("shop");
    assert_eq!(count_instances(&healed), 3, "self-heal restored Git's spec");
    assert_eq!(
        healed.metadata.annotations["concord.io/managed-by"],
        "default/prod"
    );
    let r = get_repo(&api, "prod").await.expect("prod");
    assert_eq!(sync_of(&r, "shop"), Some(SyncState::Synced));
    assert!(
        message_of(&r, "shop").contains("restored from Git"),
        "{r:?}"
    );
    let gen_after_heal = healed.metadata.generation.expect("generation");
    ready_at(&controller, "shop", gen_after_heal).await;

    // Force-push back to c2 (count label v1, 3 instances): converges to it.
    repo.force_push_to(&c2);
    run_ok(&api, &["gitops", "sync", "prod"]);
    let r = wait_synced(&api, "prod", &c2, "sync to the rewritten head", |_| true).await;
    assert_eq!(sync_of(&r, "shop"), Some(SyncState::Synced));
    let back = topology(&api, "shop").await.expect("shop");
    assert_eq!(
        back.spec.operators[1].config.get("label"),
        Some(&serde_json::json!("v1")),
        "config back to c2's"
    );
    let t4 = ready_at(&controller, "shop", back.metadata.generation.expect("gen")).await;
    assert_eq!(
        tasks(&t4, "gen"),
        gen1,
        "gen never restarted through all of it"
    );
    assert_eq!(
        tasks(&t4, "sink"),
        sink1,
        "sink never restarted through all of it"
    );

    // Removing the file without prune: kept and reported.
    repo.remove("topologies/shop.yaml");
    let c5 = repo.commit("remove shop");
    run_ok(&api, &["gitops", "sync", "prod"]);
    let r = wait_synced(&api, "prod", &c5, "sync of the removal", |_| true).await;
    assert_eq!(sync_of(&r, "shop"), Some(SyncState::OutOfSync));
    assert!(message_of(&r, "shop").contains("prune is off"), "{r:?}");
    assert!(topology(&api, "shop").await.is_some(), "kept without prune");

    // ... with prune: deleted (tasks stopped, then the key goes).
    let out = run_ok(
        &api,
        &[
            "gitops",
            "add",
            "prod",
            "--repo",
            &repo.origin(),
            "--path",
            "topologies/",
            "--interval",
            "1h",
            "--prune",
        ],
    );
    assert_eq!(out.trim(), "gitrepository/prod configured");
    wait_for(READY, "shop pruned", || async {
        topology(&api, "shop").await.is_none().then_some(())
    })
    .await;
    let r = get_repo(&api, "prod").await.expect("prod");
    assert!(
        sync_of(&r, "shop").is_none(),
        "pruned topologies leave the inventory"
    );
    wait_for(READY, "every task gone", || async {
        mesos.running_tasks().await.is_empty().then_some(())
    })
    .await;
    drop(controller);
    drop(mesos);
    drop(etcd);
}

/// A second topology for the no-scheduler test.
fn simple(name: &str, instances: u32) -> String {
    format!(
        "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {{name: {name}}}\nspec:\n  operators:\n    - name: gen\n      instances: {instances}\n      runtime: {{builtin: {{name: generator}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commits_are_reported_per_file_and_nothing_of_theirs_is_applied() {
    let etcd = Etcd::start().await;
    // GitOps needs no Mesos: this controller only stores what the syncer applies.
    let controller = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:9",
        "/concord",
        &["--no-scheduler", "--allow-local-git"],
    )
    .await;
    let api = controller.url.clone();
    let repo = Repo::new();

    // Bad input to `gitops add` is refused with the field named, and nothing is stored.
    let out = concord(
        &api,
        &[
            "gitops",
            "add",
            "bad",
            "--repo",
            &repo.origin(),
            "--interval",
            "soon",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.interval: invalid duration \"soon\""),
        "{err}"
    );
    let out = concord(&api, &["gitops", "add", "bad", "--repo", "/no/such/repo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repo /no/such/repo"));
    assert!(etcd.dump("/concord/gitrepositories/").await.is_empty());
    // The API itself (not only the CLI) refuses bad objects with the field named.
    let collection = format!("{api}/apis/concord.io/v1alpha1/namespaces/default/gitrepositories");
    let http = reqwest::Client::new();
    for (content_type, body, expected) in [
        (
            "application/json",
            r#"{"apiVersion":"concord.io/v1alpha1","kind":"GitRepository","metadata":{"name":"x"},"spec":{"url":"/r","purne":true}}"#,
            "request body: spec.purne: unknown field `purne`, expected one of `url`",
        ),
        (
            "application/yaml",
            "apiVersion: concord.io/v1alpha1\nkind: GitRepository\nmetadata: {name: x}\nspec: {url: relative/dir}\n",
            "spec.url: \"relative/dir\": expected an https://",
        ),
        (
            "application/yaml",
            "apiVersion: concord.io/v1alpha1\nkind: GitRepository\nmetadata: {name: x}\nspec: {url: /r, prune: maybe}\n",
            "request body: spec.prune: invalid type: string \"maybe\", expected a boolean",
        ),
    ] {
        let resp = http
            .post(&collection)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 422, "{body}");
        let status: serde_json::Value = resp.json().await.expect("a Status object");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    assert!(
        etcd.dump("/concord/gitrepositories/").await.is_empty(),
        "refused objects stored nothing"
    );

    // Polling (1 s) picks up every commit without being asked.
    repo.write("a.yaml", &simple("alpha", 1));
    repo.write("b.yaml", &simple("beta", 1));
    let c1 = repo.commit("alpha and beta");
    run_ok(
        &api,
        &[
            "gitops",
            "add",
            "main",
            "--repo",
            &repo.origin(),
            "--interval",
            "1s",
        ],
    );
    wait_synced(&api, "main", &c1, "first sync", |r| {
        r.status.as_ref().is_some_and(|s| s.phase == "Synced")
    })
    .await;

    // A path that is not in the repository is reported, not taken as "no topologies".
    run_ok(
        &api,
        &[
            "gitops",
            "add",
            "typo",
            "--repo",
            &repo.origin(),
            "--path",
            "topolgies",
        ],
    );
    let r = wait_synced(&api, "typo", &c1, "sync of a mistyped path", |_| true).await;
    let s = r.status.as_ref().expect("status");
    assert_eq!(s.phase, "FetchFailed");
    assert_eq!(
        s.fetch_error.as_deref(),
        Some(format!("path \"topolgies\" is not a folder at commit {}", &c1[..12]).as_str())
    );
    run_ok(&api, &["gitops", "delete", "typo"]);

    // A bad file: reported with file:line:column; the good file proceeds; the bad one's
    // topology keeps its previous spec; the last good revision stays in force.
    repo.write("a.yaml", &simple("alpha", 2));
    repo.write(
        "b.yaml",
        &simple("beta", 1).replace("instances: 1", "instances: lots"),
    );
    let c2 = repo.commit("scale alpha, break beta");
    let r = wait_synced(&api, "main", &c2, "sync of the bad commit", |_| true).await;
    let s = r.status.as_ref().expect("status");
    assert_eq!(s.phase, "Failed");
    assert_eq!(
        s.last_applied_revision.as_ref().map(|c| c.sha.as_str()),
        Some(c1.as_str())
    );
    let errors: Vec<String> = s.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("b.yaml:7:"), "{errors:?}");
    assert!(
        errors[0].contains("spec.operators[0].instances"),
        "{errors:?}"
    );
    assert_eq!(sync_of(&r, "alpha"), Some(SyncState::Synced));
    assert_eq!(sync_of(&r, "beta"), Some(SyncState::Failed));
    let alpha = topology(&api, "alpha").await.expect("alpha");
    assert_eq!(alpha.spec.operators[0].instances, 2);
    let beta = topology(&api, "beta").await.expect("beta");
    assert_eq!(beta.spec.operators[0].instances, 1);
    assert_eq!(
        beta.metadata.annotations["concord.io/git-revision"], c1,
        "beta untouched"
    );
    let out = run_ok(&api, &["gitops", "status", "main"]);
    assert!(
        out.contains("b.yaml:7:"),
        "the CLI shows the location:\n{out}"
    );
    let out = concord(&api, &["gitops", "sync", "main"]);
    assert_eq!(out.status.code(), Some(1), "a sync with errors exits 1");

    // Atomic: the whole commit is held back while any file is invalid.
    run_ok(
        &api,
        &[
            "gitops",
            "add",
            "main",
            "--repo",
            &repo.origin(),
            "--interval",
            "1s",
            "--atomic",
        ],
    );
    repo.write("a.yaml", &simple("alpha", 3));
    let c3 = repo.commit("scale alpha again, beta still broken");
    let r = wait_synced(&api, "main", &c3, "atomic sync", |r| {
        sync_of(r, "alpha") == Some(SyncState::Failed)
    })
    .await;
    assert!(message_of(&r, "alpha").contains("held back"), "{r:?}");
    assert_eq!(
        topology(&api, "alpha").await.expect("alpha").spec.operators[0].instances,
        2,
        "held back"
    );
    // Fixing the file releases it.
    repo.write("b.yaml", &simple("beta", 2));
    let c4 = repo.commit("fix beta");
    let r = wait_synced(&api, "main", &c4, "sync of the fix", |r| {
        r.status.as_ref().is_some_and(|s| s.phase == "Synced")
    })
    .await;
    assert_eq!(
        r.status
            .and_then(|s| s.last_applied_revision)
            .map(|c| c.sha),
        Some(c4.clone())
    );
    assert_eq!(
        topology(&api, "alpha").await.expect("alpha").spec.operators[0].instances,
        3
    );
    assert_eq!(
        topology(&api, "beta").await.expect("beta").spec.operators[0].instances,
        2
    );

    // Another repository never takes over a topology that this one manages, and with
    // self-heal off a hand edit is reported and left alone.
    let other = Repo::new();
    other.write("alpha.yaml", &simple("alpha", 9));
    other.write("gamma.yaml", &simple("gamma", 1));
    let o1 = other.commit("alpha (clash) and gamma");
    run_ok(
        &api,
        &[
            "gitops",
            "add",
            "other",
            "--repo",
            &other.origin(),
            "--interval",
            "1h",
            "--no-self-heal",
        ],
    );
    let r = wait_synced(&api, "other", &o1, "other's first sync", |_| true).await;
    assert_eq!(sync_of(&r, "alpha"), Some(SyncState::Failed));
    assert!(
        message_of(&r, "alpha").contains("managed by gitrepository default/main"),
        "{r:?}"
    );
    assert_eq!(sync_of(&r, "gamma"), Some(SyncState::Synced));
    assert_eq!(
        topology(&api, "alpha").await.expect("alpha").spec.operators[0].instances,
        3
    );

    let edited = repo.dir.path().join("gamma-by-hand.yaml");
    std::fs::write(&edited, simple("gamma", 4)).expect("write");
    run_ok(&api, &["apply", "-f", edited.to_str().expect("utf-8")]);
    wait_for(SYNC, "gamma OutOfSync", || async {
        let r = get_repo(&api, "other").await?;
        (sync_of(&r, "gamma") == Some(SyncState::OutOfSync)).then_some(())
    })
    .await;
    let out = concord(&api, &["gitops", "sync", "other"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "alpha's clash keeps the sync Failed"
    );
    let r = get_repo(&api, "other").await.expect("other");
    assert_eq!(sync_of(&r, "gamma"), Some(SyncState::OutOfSync));
    assert!(
        message_of(&r, "gamma").contains("self-heal is off"),
        "{r:?}"
    );
    assert_eq!(
        topology(&api, "gamma").await.expect("gamma").spec.operators[0].instances,
        4,
        "left as edited"
    );

    // Deleting a GitRepository leaves its topologies in place.
    let out = run_ok(&api, &["gitops", "delete", "main"]);
    assert!(out.contains("gitrepository/main deleted"), "{out}");
    assert!(get_repo(&api, "main").await.is_none());
    assert!(topology(&api, "alpha").await.is_some());
    let out = run_ok(&api, &["gitops", "status"]);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["NAME", "other"], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_repositories_are_refused_without_allow_local_git() {
    let etcd = Etcd::start().await;
    let repo = Repo::new();
    repo.write("a.yaml", &simple("alpha", 1));
    let c1 = repo.commit("alpha");

    // A controller without the flag refuses local paths and file:// URLs at apply, with
    // the field named, and stores nothing.
    let strict = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:9",
        "/concord",
        &["--no-scheduler"],
    )
    .await;
    let file_url = format!("file://{}", repo.origin());
    for url in [repo.origin(), file_url.clone()] {
        let out = concord(&strict.url, &["gitops", "add", "local", "--repo", &url]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("spec.url: ") && err.contains("--allow-local-git"),
            "{err}"
        );
    }
    let collection = format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/gitrepositories",
        strict.url
    );
    let resp = reqwest::Client::new()
        .post(&collection)
        .header("content-type", "application/yaml")
        .body(format!(
            "apiVersion: concord.io/v1alpha1\nkind: GitRepository\nmetadata: {{name: local}}\nspec: {{url: {file_url}}}\n"
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 422);
    let status: serde_json::Value = resp.json().await.expect("a Status object");
    assert_eq!(status["errors"][0]["path"], "spec.url", "{status}");
    assert!(
        etcd.dump("/concord/")
            .await
            .iter()
            .all(|(k, _)| !k.contains("/git")),
        "nothing stored"
    );
    drop(strict);

    // One stored by a controller that allowed it...
    let mut allowing = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:9",
        "/concord",
        &["--no-scheduler", "--allow-local-git"],
    )
    .await;
    run_ok(
        &allowing.url,
        &[
            "gitops",
            "add",
            "local",
            "--repo",
            &repo.origin(),
            "--interval",
            "1s",
        ],
    );
    wait_synced(&allowing.url, "local", &c1, "sync with the flag", |r| {
        r.status.as_ref().is_some_and(|s| s.phase == "Synced")
    })
    .await;
    allowing.process.terminate(Duration::from_secs(10));

    // ...is not synced by one without it, and its status says why.
    let strict = Controller::start_with(
        &etcd.url,
        "http://127.0.0.1:9",
        "/concord",
        &["--no-scheduler"],
    )
    .await;
    repo.write("a.yaml", &simple("alpha", 3));
    let c2 = repo.commit("alpha x3");
    let refused = wait_for(SYNC, "the Refused status", || async {
        let r = get_repo(&strict.url, "local").await?;
        let s = r.status?;
        (s.phase == "Refused").then_some(s)
    })
    .await;
    let reason = refused.fetch_error.unwrap_or_default();
    assert!(reason.contains("--allow-local-git"), "{reason}");
    assert_eq!(
        refused.revision.map(|c| c.sha),
        Some(c1.clone()),
        "the last revision read stays; {c2} was never fetched"
    );
    let status = run_ok(&strict.url, &["gitops", "status", "local"]);
    assert!(status.contains("Phase:       Refused"), "{status}");
    // `gitops sync` is answered (not left waiting) and fails with the reason.
    let out = concord(
        &strict.url,
        &["gitops", "sync", "local", "--timeout", "20s"],
    );
    assert_eq!(out.status.code(), Some(1));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Fetch error: ") && shown.contains("--allow-local-git"),
        "{shown}"
    );
    let alpha = topology(&strict.url, "alpha").await.expect("alpha stays");
    assert_eq!(
        alpha.spec.operators[0].instances, 1,
        "the new commit was not applied"
    );
}
