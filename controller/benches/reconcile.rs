//! Reconcile cost at 1,000 and 10,000 tasks, and the memory they take.
//!
//! `cargo bench -p concord-controller --bench reconcile`
//!
//! Times the controller's real reconcile code over injected state (every task reported
//! RUNNING and ready, as after a Mesos reconciliation): no test machine can run 10,000
//! task processes, and the point is the control plane's own cost.
//! * one topology holding all tasks: a one-operator change reconciles that topology;
//! * the same number of tasks spread over topologies of 100 tasks: a one-operator
//!   change reconciles only the topology it belongs to.

use std::time::Duration;

use concord_controller::reconcile::bench::Detached;
use concord_schemas::Topology;

fn topology(name: &str, operators: usize, instances: u32, label: &str) -> Topology {
    let mut ops = Vec::new();
    for i in 0..operators {
        let mut op = serde_json::json!({
            "name": format!("op{i}"), "instances": instances,
            "runtime": {"builtin": {"name": if i == 0 { "generator" } else { "map" }}},
            "config": {"label": if i == 0 { label } else { "fixed" }},
        });
        if i > 0 {
            op["inputs"] = serde_json::json!([{"from": format!("op{}", i - 1)}]);
        }
        ops.push(op);
    }
    let doc = serde_json::json!({
        "apiVersion": "concord.io/v1alpha1", "kind": "Topology",
        "metadata": {"name": name, "generation": 1}, "spec": {"operators": ops}
    });
    let bytes = serde_json::to_vec(&doc).expect("json");
    concord_schemas::parse_json(&bytes, "bench").expect("valid topology")
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time to reconcile after a config change of one operator of topology `name`.
fn change_one(
    r: &mut Detached,
    name: &str,
    operators: usize,
    instances: u32,
    rounds: usize,
    rev: &mut i64,
) -> Duration {
    let mut times = Vec::new();
    for round in 0..rounds {
        *rev += 1;
        r.update(
            topology(name, operators, instances, &format!("v{round}")),
            *rev,
        );
        times.push(r.reconcile());
    }
    median(times)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("| tasks | layout | full pass (all topologies) | one-operator change | RSS growth |");
    println!("|---|---|---|---|---|");
    for total in [1_000u32, 10_000] {
        // All tasks in one topology of 10 operators.
        let before = rss_kb();
        let mut r = Detached::new().await;
        let mut rev = 1;
        r.insert(topology("big", 10, total / 10, "v"), rev);
        let full = r.reconcile();
        let change = change_one(&mut r, "big", 10, total / 10, 5, &mut rev);
        let grown = rss_kb().saturating_sub(before);
        println!(
            "| {} | 1 topology × 10 operators × {} | {:.2} ms | {:.2} ms | {:.1} MB |",
            r.tasks(),
            total / 10,
            full.as_secs_f64() * 1e3,
            change.as_secs_f64() * 1e3,
            grown as f64 / 1024.0
        );
        drop(r);

        // The same tasks in topologies of 10 operators × 10 instances.
        let before = rss_kb();
        let mut r = Detached::new().await;
        let count = (total / 100) as usize;
        for i in 0..count {
            r.insert(topology(&format!("t{i}"), 10, 10, "v"), 1);
        }
        let full = r.reconcile();
        let mut rev = 1;
        let change = change_one(&mut r, "t0", 10, 10, 5, &mut rev);
        let grown = rss_kb().saturating_sub(before);
        println!(
            "| {} | {count} topologies × 10 operators × 10 | {:.2} ms | {:.3} ms | {:.1} MB |",
            r.tasks(),
            full.as_secs_f64() * 1e3,
            change.as_secs_f64() * 1e3,
            grown as f64 / 1024.0
        );
    }
}
