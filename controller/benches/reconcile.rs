//! Reconcile cost at 1,000 and 10,000 tasks, and the memory they take.
//!
//! `cargo bench -p concord-controller --bench reconcile`
//!
//! Times the controller's real reconcile code over injected state (every task reported
//! RUNNING and ready, as after a Mesos reconciliation): no test machine can run 10,000
//! task processes, and the point is the control plane's own cost.
//! * one topology holding all tasks: a change of one operator (a new config, which
//!   starts a rolling replace, or scaling it down by one instance) reconciles that
//!   operator within the topology;
//! * the same number of tasks spread over topologies of 100 tasks: a one-operator
//!   change reconciles only the topology it belongs to.
//!
//! A second table shows the work behind the first: operators planned and task
//! summaries built per one-operator change, and what the status writer encodes (off
//! the reconciler's loop) for it: the changed operator's task list plus the document
//! without tasks, next to the whole document as one value (the layout before).

use std::time::Duration;

use concord_controller::reconcile::bench::Detached;
use concord_schemas::Topology;

/// `operators` operators of `instances` each, except `op0`, which has `first`
/// instances and the config label `label`.
fn topology(name: &str, operators: usize, instances: u32, first: u32, label: &str) -> Topology {
    let mut ops = Vec::new();
    for i in 0..operators {
        let mut op = serde_json::json!({
            "name": format!("op{i}"), "instances": if i == 0 { first } else { instances },
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

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

const ROUNDS: usize = 5;

/// A row of the second table.
struct Work {
    layout: String,
    planned: f64,
    summarised: f64,
    write: Option<(Duration, usize)>,
    whole: Option<(Duration, usize)>,
}

/// Operators planned and task summaries built per round by `f`.
fn per_round(r: &mut Detached, f: impl FnOnce(&mut Detached)) -> (f64, f64) {
    let (p0, s0) = r.work();
    f(r);
    let (p1, s1) = r.work();
    (
        (p1 - p0) as f64 / ROUNDS as f64,
        (s1 - s0) as f64 / ROUNDS as f64,
    )
}

/// Median time to reconcile after a config change of `op0` of topology `name`.
fn change_one(
    r: &mut Detached,
    name: &str,
    operators: usize,
    instances: u32,
    rev: &mut i64,
) -> Duration {
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        *rev += 1;
        r.update(
            topology(name, operators, instances, instances, &format!("v{round}")),
            *rev,
        );
        times.push(r.reconcile());
    }
    median(times)
}

/// Median time to reconcile after scaling `op0` of topology `name` down by one
/// instance (one kill), round after round.
fn scale_one(
    r: &mut Detached,
    name: &str,
    operators: usize,
    instances: u32,
    rev: &mut i64,
) -> Duration {
    let mut times = Vec::new();
    for round in 1..=ROUNDS as u32 {
        *rev += 1;
        r.update(
            topology(name, operators, instances, instances - round, "v"),
            *rev,
        );
        times.push(r.reconcile());
    }
    median(times)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!(
        "| tasks | layout | full pass (all topologies) | one-operator config change | scale one operator by one | RSS growth |"
    );
    println!("|---|---|---|---|---|---|");
    let mut work = Vec::new();
    for total in [1_000u32, 10_000] {
        // All tasks in one topology of 10 operators.
        let per_op = total / 10;
        let before = rss_kb();
        let mut r = Detached::new().await;
        let mut rev = 1;
        r.insert(topology("big", 10, per_op, per_op, "v"), rev);
        let full = r.reconcile();
        let tasks = r.tasks();
        let scale = scale_one(&mut r, "big", 10, per_op, &mut rev);
        let mut change = Duration::ZERO;
        let (planned, summarised) = per_round(&mut r, |r| {
            change = change_one(r, "big", 10, per_op, &mut rev);
        });
        work.push(Work {
            layout: format!("{tasks} tasks, 1 topology × 10 operators × {per_op}"),
            planned,
            summarised,
            write: r.status_write_work("default/big", Some("op0")),
            whole: r.status_write_work("default/big", None),
        });
        let grown = rss_kb().saturating_sub(before);
        println!(
            "| {tasks} | 1 topology × 10 operators × {per_op} | {} | {} | {} | {:.1} MB |",
            ms(full),
            ms(change),
            ms(scale),
            grown as f64 / 1024.0
        );
        drop(r);

        // The same tasks in topologies of 10 operators × 10 instances.
        let before = rss_kb();
        let mut r = Detached::new().await;
        let count = (total / 100) as usize;
        for i in 0..count {
            r.insert(topology(&format!("t{i}"), 10, 10, 10, "v"), 1);
        }
        let full = r.reconcile();
        let tasks = r.tasks();
        let mut rev = 1;
        let scale = scale_one(&mut r, "t0", 10, 10, &mut rev);
        let mut change = Duration::ZERO;
        let (planned, summarised) = per_round(&mut r, |r| {
            change = change_one(r, "t0", 10, 10, &mut rev);
        });
        work.push(Work {
            layout: format!("{tasks} tasks, {count} topologies × 10 operators × 10"),
            planned,
            summarised,
            write: r.status_write_work("default/t0", Some("op0")),
            whole: r.status_write_work("default/t0", None),
        });
        let grown = rss_kb().saturating_sub(before);
        println!(
            "| {tasks} | {count} topologies × 10 operators × 10 | {} | {} | {} | {:.1} MB |",
            ms(full),
            ms(change),
            ms(scale),
            grown as f64 / 1024.0
        );
    }
    println!();
    println!(
        "| layout | operators planned per one-operator change | task summaries built | status writer: task list + document | as one document |"
    );
    println!("|---|---|---|---|---|");
    let show = |w: Option<(Duration, usize)>| {
        w.map_or("-".to_owned(), |(t, b)| {
            format!("{:.0} kB, {}", b as f64 / 1e3, ms(t))
        })
    };
    for w in work {
        println!(
            "| {} | {:.0} | {:.0} | {} | {} |",
            w.layout,
            w.planned,
            w.summarised,
            show(w.write),
            show(w.whole)
        );
    }
}
