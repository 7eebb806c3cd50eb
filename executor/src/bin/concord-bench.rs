//! `concord-bench`: the keyed-count benchmark (docs/benchmarks.md).
//!
//! Starts a real etcd on a free loopback port, runs `generator -> map -> keyed-count ->
//! sink` as separate `concord-executor` processes for configurations 1, 2 and 3, measures
//! throughput, latency, RSS and CPU, runs the raw loopback TCP reference in the same run,
//! and prints a markdown table.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use concord_executor::clock::monotonic_ns;
use concord_executor::metrics::read_proc;
use concord_executor::operators::benchmark;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Concord keyed-count benchmark")]
struct Args {
    /// Records per run (N).
    #[arg(long, default_value_t = 30_000_000)]
    records: u64,
    /// Runs per configuration (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Configurations to run (1, 2, 3).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    configs: Vec<u32>,
    /// Source rate for configuration 3 (default: half of configuration 1's median).
    #[arg(long)]
    rate3: Option<f64>,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// etcd binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    /// Give up on a run when the sink makes no progress for this many seconds.
    #[arg(long, default_value_t = 20)]
    stall_secs: u64,
    /// Key cardinality K (the workload fixes 100000; other values are for experiments).
    #[arg(long, default_value_t = benchmark::DEFAULT_KEYS)]
    keys: u64,
    /// Internal: run as the loopback reference receiver on this port.
    #[arg(long, hide = true)]
    loopback_receiver: Option<u16>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Proc {
    child: Child,
    name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Etcd {
    _proc: Proc,
    url: String,
    _dir: tempfile::TempDir,
}

fn start_etcd(bin: &Path) -> anyhow::Result<Etcd> {
    let dir = tempfile::tempdir()?;
    let (c, p) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{c}");
    let child = Command::new(bin)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{p}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{p}"),
        ])
        .args([
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{p}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting etcd")?;
    let etcd = Etcd {
        _proc: Proc {
            child,
            name: "etcd".into(),
        },
        url,
        _dir: dir,
    };
    wait("etcd", Duration::from_secs(20), || {
        http_get(&format!("127.0.0.1:{c}"), "/health").is_some_and(|b| b.contains("true"))
    })?;
    Ok(etcd)
}

/// Minimal HTTP GET (the benchmark avoids pulling a client into the hot processes).
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200") {
        Some(out)
    } else {
        None
    }
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out waiting for {what}")
}

struct Exec {
    proc: Proc,
    metrics: String,
}

fn start_executor(
    exe: &Path,
    etcd: &str,
    topology: &str,
    op: &str,
    instance: u32,
    spec: Value,
    dir: &Path,
) -> anyhow::Result<Exec> {
    let mport = free_port()?;
    let log = std::fs::File::create(dir.join(format!("{op}-{instance}.log")))?;
    let secret = dataplane_secret(dir)?;
    let child = Command::new(exe)
        .env("CONCORD_TOPOLOGY", topology)
        .env("CONCORD_OPERATOR", op)
        .env("CONCORD_INSTANCE", instance.to_string())
        .env("CONCORD_OPERATOR_SPEC", spec.to_string())
        .env("CONCORD_ETCD", etcd)
        .env("CONCORD_METRICS_PORT", mport.to_string())
        .env("CONCORD_LOG", "warn")
        .env(
            concord_schemas::dataplane::DATAPLANE_SECRET_FILE_ENV,
            &secret,
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let metrics = format!("127.0.0.1:{mport}");
    let e = Exec {
        proc: Proc {
            child,
            name: format!("{op}-{instance}"),
        },
        metrics,
    };
    Ok(e)
}

/// The run's data-plane secret (one per run directory, like one per topology), so the
/// benchmark measures the authenticated data plane that deployments run.
fn dataplane_secret(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("dataplane-secret");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            let key: [u8; 32] = rand::random();
            f.write_all(&key)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).context("writing the data-plane secret"),
    }
    Ok(path)
}

fn builtin(name: &str, op: &str, instances: u32, config: Value, inputs: Value) -> Value {
    json!({"name": op, "instances": instances, "runtime": {"builtin": {"name": name}},
           "config": config, "inputs": inputs})
}

#[derive(Debug, Clone, Default)]
struct RunResult {
    rate: f64,
    steady_rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    sp50: f64,
    sp99: f64,
    sp999: f64,
    received: u64,
    dropped: f64,
    peak_rss_mb: Vec<(String, f64)>,
    cpu_s_per_m: f64,
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// One benchmark run's parameters.
struct RunParams<'a> {
    exe: &'a Path,
    etcd: &'a str,
    config: u32,
    n: u64,
    keys: u64,
    rate: f64,
    run: usize,
    stall: Duration,
}

fn run_once(p: &RunParams<'_>) -> anyhow::Result<RunResult> {
    let RunParams {
        exe,
        etcd,
        config,
        n,
        keys,
        rate,
        run,
        stall,
    } = *p;
    let dir = tempfile::tempdir()?;
    let report = dir.path().join("report.json");
    let topo = format!("bench-c{config}-r{run}");
    let width = if config == 2 { 2 } else { 1 };
    let mut execs = Vec::new();
    execs.push(start_executor(
        exe,
        etcd,
        &topo,
        "sink",
        0,
        builtin(
            "sink",
            "sink",
            1,
            json!({"mode": "benchmark", "expect": n, "reportFile": report.to_string_lossy()}),
            json!([{"from": "count", "partitioning": "shuffle"}]),
        ),
        dir.path(),
    )?);
    for i in 0..width {
        execs.push(start_executor(
            exe,
            etcd,
            &topo,
            "count",
            i,
            builtin(
                "keyed-count",
                "count",
                width,
                json!({"mode": "benchmark"}),
                json!([{"from": "map", "partitioning": "key"}]),
            ),
            dir.path(),
        )?);
    }
    for i in 0..width {
        execs.push(start_executor(
            exe,
            etcd,
            &topo,
            "map",
            i,
            builtin(
                "map",
                "map",
                width,
                json!({"mode": "benchmark"}),
                json!([{"from": "gen", "partitioning": "shuffle"}]),
            ),
            dir.path(),
        )?);
    }
    for e in &execs {
        wait(&e.proc.name, Duration::from_secs(30), || {
            http_get(&e.metrics, "/readyz").is_some()
        })?;
    }
    let mut gen_cfg = json!({"mode": "benchmark", "records": n, "keys": keys});
    if rate > 0.0 {
        gen_cfg["rate"] = json!(rate);
    }
    let gen_exec = start_executor(
        exe,
        etcd,
        &topo,
        "gen",
        0,
        builtin("generator", "gen", 1, gen_cfg, json!([])),
        dir.path(),
    )?;
    execs.push(gen_exec);
    let sink_metrics = execs[0].metrics.clone();
    let mut last = 0.0;
    let mut last_change = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&report)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && v["count"].as_u64() == Some(n)
        {
            break;
        }
        let seen = http_get(&sink_metrics, "/metrics")
            .map(|t| metric_sum(&t, "concord_records_in_total"))
            .unwrap_or(0.0);
        if seen > last {
            last = seen;
            last_change = Instant::now();
        } else if last_change.elapsed() > stall {
            eprintln!("run stalled at {seen} of {n} records");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Resources before stopping.
    let mut cpu = 0.0;
    let mut rss = Vec::new();
    let mut dropped = 0.0;
    for e in &execs {
        let u = read_proc(&e.proc.child.id().to_string());
        cpu += u.cpu_seconds.unwrap_or(0.0);
        eprintln!(
            "  {}: cpu {:.2} s, peak RSS {:.1} MB",
            e.proc.name,
            u.cpu_seconds.unwrap_or(0.0),
            u.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
        );
        rss.push((
            e.proc.name.clone(),
            u.peak_rss_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
        ));
        if let Some(t) = http_get(&e.metrics, "/metrics") {
            dropped += metric_sum(&t, "concord_dropped_records_total");
        }
    }
    for e in execs.iter_mut() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(e.proc.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let sink_pid = execs[0].proc.child.id();
    let _ = sink_pid;
    let deadline = Instant::now() + Duration::from_secs(10);
    for e in execs.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = e.proc.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
        .unwrap_or(Value::Null);
    let count = v["count"].as_u64().unwrap_or(0);
    let ms = |x: &Value| x.as_f64().unwrap_or(0.0) / 1e6;
    let first = v["minCreatedNs"].as_f64().unwrap_or(0.0);
    let t100 = v["t100Ns"].as_f64().unwrap_or(0.0);
    let t10 = v["t10Ns"].as_f64().unwrap_or(0.0);
    let t90 = v["t90Ns"].as_f64().unwrap_or(0.0);
    Ok(RunResult {
        rate: if t100 > first {
            n as f64 / ((t100 - first) / 1e9)
        } else {
            0.0
        },
        steady_rate: if t90 > t10 {
            0.8 * n as f64 / ((t90 - t10) / 1e9)
        } else {
            0.0
        },
        p50: ms(&v["overall"]["p50Ns"]),
        p99: ms(&v["overall"]["p99Ns"]),
        p999: ms(&v["overall"]["p999Ns"]),
        sp50: ms(&v["steady"]["p50Ns"]),
        sp99: ms(&v["steady"]["p99Ns"]),
        sp999: ms(&v["steady"]["p999Ns"]),
        received: count,
        dropped,
        peak_rss_mb: rss,
        cpu_s_per_m: cpu / (n as f64 / 1e6),
    })
}

/// The loopback reference receiver: counts 100-byte length-prefixed records and prints
/// the monotonic time the last one arrived.
fn loopback_receiver(port: u16) -> anyhow::Result<()> {
    let l = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening");
    std::io::stdout().flush()?;
    let (s, _) = l.accept()?;
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut hdr = [0u8; 8];
    r.read_exact(&mut hdr)?;
    let n = u64::from_be_bytes(hdr);
    let mut rec = [0u8; 4 + benchmark::RECORD_LEN];
    let mut keysum = 0u64;
    for _ in 0..n {
        r.read_exact(&mut rec)?;
        keysum = keysum.wrapping_add(u64::from(rec[4 + 14]));
    }
    println!("{} {keysum}", monotonic_ns());
    Ok(())
}

fn loopback_reference(n: u64) -> anyhow::Result<f64> {
    let port = free_port()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--loopback-receiver", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.write_all(&n.to_be_bytes())?;
    let mut rec = benchmark::template();
    let mut buf = Vec::with_capacity(64 * 1024 + 128);
    let start = monotonic_ns();
    for i in 0..n {
        benchmark::write_record(&mut rec, i, benchmark::DEFAULT_KEYS, monotonic_ns());
        buf.extend_from_slice(&(benchmark::RECORD_LEN as u32).to_be_bytes());
        buf.extend_from_slice(&rec);
        if buf.len() >= 64 * 1024 {
            s.write_all(&buf)?;
            buf.clear();
        }
    }
    s.write_all(&buf)?;
    line.clear();
    out.read_line(&mut line)?;
    let _ = child.wait();
    let end: f64 = line
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("receiver output")?;
    Ok(n as f64 / ((end - start as f64) / 1e9))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(p) = args.loopback_receiver {
        return loopback_receiver(p);
    }
    let exe = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("concord-executor");
    if !exe.exists() {
        bail!("{} not found; build it first", exe.display());
    }
    let etcd = start_etcd(&args.etcd)?;
    let stall = Duration::from_secs(args.stall_secs);
    let mut table = String::new();
    table.push_str(&format!(
        "N = {} records of 100 bytes, {} runs per configuration (median [min..max]).\n\n",
        args.records, args.runs
    ));

    let mut refs = Vec::new();
    for _ in 0..args.runs {
        refs.push(loopback_reference(args.records)?);
        eprintln!("loopback reference: {:.0} records/s", refs[refs.len() - 1]);
    }
    let ref_median = median(refs.clone());

    table.push_str("| config | records/s | steady records/s | % of loopback | p50 ms | p99 ms | p999 ms | steady p50/p99/p999 ms | peak RSS MB (max executor) | CPU s / M records | received / dropped |\n");
    table.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let (rl, rh) = range(&refs);
    table.push_str(&format!(
        "| loopback TCP reference | {:.0} [{:.0}..{:.0}] | | 100% | | | | | | | |\n",
        ref_median, rl, rh
    ));
    let mut c1_rate = 0.0;
    for &config in &args.configs {
        let rate = match config {
            3 => args.rate3.unwrap_or(c1_rate / 2.0),
            _ => 0.0,
        };
        if config == 3 && rate <= 0.0 {
            eprintln!("configuration 3 needs configuration 1 first or --rate3");
            continue;
        }
        let mut results = Vec::new();
        for run in 0..args.runs {
            let r = run_once(&RunParams {
                exe: &exe,
                etcd: &etcd.url,
                config,
                n: args.records,
                keys: args.keys,
                rate,
                run,
                stall,
            })?;
            eprintln!("config {config} run {run}: {r:?}");
            results.push(r);
        }
        let rates: Vec<f64> = results.iter().map(|r| r.rate).collect();
        let m = median(rates.clone());
        if config == 1 {
            c1_rate = m;
        }
        let pick = |f: fn(&RunResult) -> f64| median(results.iter().map(f).collect());
        let (lo, hi) = range(&rates);
        let srates: Vec<f64> = results.iter().map(|r| r.steady_rate).collect();
        let (slo, shi) = range(&srates);
        let max_rss = results
            .iter()
            .flat_map(|r| r.peak_rss_mb.iter().map(|(_, m)| *m))
            .fold(0.0, f64::max);
        let label = match config {
            1 => "1: one instance per stage, unthrottled".to_owned(),
            2 => "2: 2x map, 2x keyed-count, unthrottled".to_owned(),
            _ => format!("3: config 1 paced at {rate:.0}/s"),
        };
        let recv: u64 = results.iter().map(|r| r.received).min().unwrap_or(0);
        let dropped: f64 = results.iter().map(|r| r.dropped).sum();
        table.push_str(&format!(
            "| {label} | {m:.0} [{lo:.0}..{hi:.0}] | {:.0} [{slo:.0}..{shi:.0}] | {:.1}% | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.1} | {:.2} | {recv} (min) / {dropped:.0} |\n",
            median(srates.clone()),
            100.0 * m / ref_median,
            pick(|r| r.p50),
            pick(|r| r.p99),
            pick(|r| r.p999),
            pick(|r| r.sp50),
            pick(|r| r.sp99),
            pick(|r| r.sp999),
            max_rss,
            pick(|r| r.cpu_s_per_m),
        ));
        let per_exec: Vec<String> = results
            .last()
            .map(|r| {
                r.peak_rss_mb
                    .iter()
                    .map(|(n, m)| format!("{n} {m:.1}"))
                    .collect()
            })
            .unwrap_or_default();
        eprintln!(
            "config {config} peak RSS MB per executor (last run): {}",
            per_exec.join(", ")
        );
    }
    println!("{table}");
    if let Some(p) = args.out {
        std::fs::write(p, &table)?;
    }
    Ok(())
}
