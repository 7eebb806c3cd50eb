//! Control-plane benchmark: apply-to-Ready latency and reconcile cost on a real stack.
//!
//! `cargo run --release -p concord-e2e --bin concord-control-bench -- [RUNS]` after
//! `cargo build --release --workspace --bins`. Starts etcd, mesos-lite and the
//! controller on free loopback ports and prints a markdown table.

use std::time::{Duration, Instant};

use concord_e2e::{Controller, Etcd, MesosLite};

/// `gen -> m1 -> … -> m8 -> sink`, every operator with `instances` instances.
fn topology(name: &str, instances: u32, label: &str) -> serde_json::Value {
    let mut ops = vec![serde_json::json!({
        "name": "gen", "instances": instances, "runtime": {"builtin": {"name": "generator"}},
        "config": {"rate": 10}, "resources": {"cpus": 0.05, "mem": 16}
    })];
    let mut prev = "gen".to_owned();
    for i in 1..=8 {
        let name = format!("m{i}");
        ops.push(serde_json::json!({
            "name": name, "instances": instances, "runtime": {"builtin": {"name": "map"}},
            "config": {"set": {"stage": label}}, "inputs": [{"from": prev}],
            "resources": {"cpus": 0.05, "mem": 16}
        }));
        prev = name;
    }
    ops.push(serde_json::json!({
        "name": "sink", "instances": instances, "runtime": {"builtin": {"name": "sink"}},
        "config": {"target": "discard"}, "inputs": [{"from": prev}], "resources": {"cpus": 0.05, "mem": 16}
    }));
    serde_json::json!({
        "apiVersion": "concord.io/v1alpha1", "kind": "Topology",
        "metadata": {"name": name}, "spec": {"operators": ops}
    })
}

async fn put(c: &Controller, body: &serde_json::Value) {
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    let url = format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/{name}",
        c.url
    );
    let resp = reqwest::Client::new()
        .put(url)
        .json(body)
        .send()
        .await
        .expect("PUT");
    assert!(
        resp.status().is_success(),
        "apply failed: {}",
        resp.text().await.unwrap_or_default()
    );
}

/// Sum and count of the reconcile-duration histogram.
async fn reconcile_stats(c: &Controller) -> (f64, f64) {
    let text = reqwest::get(format!("{}/metrics", c.url))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("concord_reconcile_duration_seconds_sum"),
        value("concord_reconcile_duration_seconds_count"),
    )
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let etcd = Etcd::start().await;
    let mesos = MesosLite::start(2, 16.0, 32768).await;
    let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;

    let mut apply_ready = Vec::new();
    let mut scale_ready = Vec::new();
    let mut replace_ready = Vec::new();
    for run in 0..runs {
        let name = format!("bench{run}");
        let t0 = Instant::now();
        put(&controller, &topology(&name, 5, "a")).await;
        controller.wait_ready(&name, Duration::from_secs(300)).await;
        apply_ready.push(t0.elapsed().as_secs_f64());

        let mut scaled = topology(&name, 5, "a");
        scaled["spec"]["operators"][4]["instances"] = 6.into();
        let t0 = Instant::now();
        put(&controller, &scaled).await;
        controller.wait_ready(&name, Duration::from_secs(300)).await;
        scale_ready.push(t0.elapsed().as_secs_f64());

        let mut replaced = scaled.clone();
        replaced["spec"]["operators"][5]["config"]["set"]["stage"] = "b".into();
        let t0 = Instant::now();
        put(&controller, &replaced).await;
        controller.wait_ready(&name, Duration::from_secs(300)).await;
        replace_ready.push(t0.elapsed().as_secs_f64());

        let url = format!(
            "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/{name}",
            controller.url
        );
        reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .expect("DELETE");
        concord_e2e::wait_for(Duration::from_secs(120), "deletion", || async {
            controller.topology(&name).await.is_none().then_some(())
        })
        .await;
    }
    let (sum, count) = reconcile_stats(&controller).await;
    let rss = rss_mb(controller.process.pid());
    let fmt = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        format!(
            "{:.2} s ({:.2}–{:.2})",
            median(v.to_vec()),
            s[0],
            s[s.len() - 1]
        )
    };
    println!("| measurement ({runs} runs, median (min–max)) | value |");
    println!("|---|---|");
    println!(
        "| apply → Ready, 10 operators × 5 instances = 50 tasks | {} |",
        fmt(&apply_ready)
    );
    println!(
        "| scale one operator 5 → 6 → Ready | {} |",
        fmt(&scale_ready)
    );
    println!(
        "| config change of one operator (5 tasks, rolling, maxSurge 1) → Ready | {} |",
        fmt(&replace_ready)
    );
    println!(
        "| reconcile passes / mean time per pass | {count:.0} / {:.1} µs |",
        if count > 0.0 { sum / count * 1e6 } else { 0.0 }
    );
    println!("| controller RSS after the runs | {rss:.1} MB |");
}
