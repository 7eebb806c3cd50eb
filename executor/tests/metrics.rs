//! An executor's `/metrics` after real traffic: latency histograms, queue depths under
//! back-pressure, CPU and resident memory from `/proc`, compared with what the test
//! itself can observe (record counts, how long it held the pipeline, `/proc/<pid>`).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Etcd, Executor, ExecutorSpec, builtin, metric_sum, wait_for};

const RECORDS: u64 = 200_000;

/// A Python sink that holds its first record until `release` exists, so that everything
/// upstream of it fills up.
const GATE: &str = r#"
import os, sys, time
sys.path.insert(0, sys.argv[1])
import concord_sdk

class Gate(concord_sdk.Operator):
    def __init__(self):
        self.open = False

    def metadata(self):
        return concord_sdk.Metadata("gate", inputs=["in"], outputs=[])

    def process_record(self, ctx, record):
        while not self.open:
            self.open = os.path.exists(sys.argv[2])
            if not self.open:
                time.sleep(0.005)

concord_sdk.run(Gate())
"#;

/// Samples of one metric family by their label set (rendered as text).
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                let (labels, value) = r.split_once("} ")?;
                (labels.to_owned(), value)
            } else {
                (String::new(), rest.strip_prefix(' ')?)
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// Histogram buckets `(le, cumulative count)` in order.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = samples(text, &format!("{name}_bucket"))
        .into_iter()
        .filter_map(|(labels, n)| {
            let le = labels.split(',').find_map(|l| l.strip_prefix("le=\""))?;
            let le = le.trim_end_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, n))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// user + system CPU seconds and resident bytes of a process, read by the test.
fn proc_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .expect("stat fields");
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    (ticks / 100.0, rss_kb * 1024.0)
}

/// Checks the CPU and memory gauges against `/proc/<pid>` read around the scrape.
fn check_process_gauges(e: &Executor) -> String {
    let (cpu_before, rss_before) = proc_usage(e.pid());
    let text = e.metrics_text();
    let (cpu_after, rss_after) = proc_usage(e.pid());
    // The executor reads the kernel's ns process CPU clock; /proc shows it in 10 ms ticks,
    // scaled from tick samples, which can trail it by a few ticks.
    let cpu = metric_sum(&text, "concord_process_cpu_seconds");
    assert!(
        cpu > 0.0 && cpu >= cpu_before - 0.05 && cpu <= cpu_after + 0.05,
        "cpu seconds {cpu} outside [{cpu_before}, {cpu_after}] ± 0.05"
    );
    let rss = metric_sum(&text, "concord_process_resident_memory_bytes");
    let (lo, hi) = (rss_before.min(rss_after), rss_before.max(rss_after));
    assert!(
        rss > 1e6 && rss >= lo * 0.5 && rss <= hi * 2.0,
        "resident memory {rss} vs VmRSS {lo}..{hi}"
    );
    let pct = metric_sum(&text, "concord_process_cpu_percent");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    assert!(
        (0.0..=100.0 * cores + 1.0).contains(&pct),
        "cpu percent {pct}"
    );
    text
}

#[test]
fn metrics_report_latency_queues_cpu_and_memory() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let gate_py = d.join("gate.py");
    std::fs::write(&gate_py, GATE).expect("gate.py");
    let release = d.join("release");
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/python");
    let start = |op: &str, spec: serde_json::Value, env: &[(&str, &str)]| {
        Executor::start(ExecutorSpec {
            etcd: &etcd.url,
            topology: "metrics",
            operator: op,
            instance: 0,
            spec,
            data_port: 0,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir: d,
        })
    };
    let gate = start(
        "gate",
        json!({
            "name": "gate",
            "runtime": {"process": {"command": "python3", "args": [
                gate_py.to_string_lossy(), sdk.to_string_lossy(), release.to_string_lossy()
            ]}},
            "inputs": [{"from": "gen"}],
        }),
        &[("CONCORD_INPUT_QUEUE_BATCHES", "2")],
    );
    gate.wait_ready();
    let generator = start(
        "gen",
        builtin(
            "generator",
            "gen",
            json!({"mode": "random", "records": RECORDS, "rate": 0, "keys": 1000}),
            json!([]),
        ),
        &[("CONCORD_QUEUE_BATCHES", "2")],
    );

    // The gate holds its first batch: its input queue fills, then the generator's output
    // queue (each gauge counts the batch blocked on the full queue too).
    wait_for(
        "full queues behind the gate",
        Duration::from_secs(60),
        || {
            gate.metric("concord_input_queue_batches") >= 2.0
                && generator.metric("concord_output_queue_batches") >= 2.0
        },
    );
    let full_at = Instant::now();
    let input_queue = gate.metric("concord_input_queue_batches");
    assert!(
        input_queue <= 3.0,
        "capacity 2 + one blocked sender: {input_queue}"
    );
    let output_queue = generator.metric("concord_output_queue_batches");
    assert!(
        output_queue <= 3.0,
        "capacity 2 + one blocked flush: {output_queue}"
    );
    assert_eq!(generator.metric("concord_downstream_instances"), 1.0);
    let gen_before = check_process_gauges(&generator);
    let held = full_at.elapsed();
    std::fs::write(&release, b"").expect("release");

    wait_for("every record at the gate", Duration::from_secs(120), || {
        gate.metric("concord_records_in_total") == RECORDS as f64
    });
    // The generator's CPU use since the scrape before the release: it produced the rest
    // (not scraped in between, so its CPU percent covers exactly that window).
    let gen_after = check_process_gauges(&generator);
    wait_for("queues drained", Duration::from_secs(10), || {
        gate.metric("concord_input_queue_batches") == 0.0
            && generator.metric("concord_output_queue_batches") == 0.0
    });
    eprintln!("held the gate for {held:?} after the queues were full");

    // Latency histograms: one observation per input batch, the stall included.
    let text = check_process_gauges(&gate);
    let batches = metric_sum(&text, "concord_input_batches_total");
    assert!(
        batches >= 1.0 && batches <= RECORDS as f64,
        "batches {batches}"
    );
    for name in [
        "concord_processing_latency_seconds",
        "concord_end_to_end_latency_seconds",
    ] {
        let count = metric_sum(&text, &format!("{name}_count"));
        assert_eq!(count, batches, "{name}: one observation per batch");
        let b = buckets(&text, name);
        assert!(b.len() > 2, "{name} buckets: {b:?}");
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {b:?}");
        assert_eq!(b.last().map(|x| (x.0, x.1)), Some((f64::INFINITY, count)));
        // The batch held at the gate took longer than the hold.
        let below_hold = b
            .iter()
            .filter(|(le, _)| *le <= held.as_secs_f64())
            .map(|(_, n)| *n)
            .next_back()
            .unwrap_or(0.0);
        assert!(
            below_hold < count,
            "{name}: an observation above {held:?}: {b:?}"
        );
        let sum = metric_sum(&text, &format!("{name}_sum"));
        assert!(sum >= held.as_secs_f64(), "{name} sum {sum}");
    }
    assert_eq!(metric_sum(&text, "concord_ready"), 1.0);

    assert_eq!(
        metric_sum(&gen_after, "concord_records_out_total"),
        RECORDS as f64
    );
    let cpu = |t: &str| metric_sum(t, "concord_process_cpu_seconds");
    assert!(cpu(&gen_after) > cpu(&gen_before));
    assert!(
        metric_sum(&gen_after, "concord_process_cpu_percent") > 0.0,
        "{gen_after}"
    );
}
