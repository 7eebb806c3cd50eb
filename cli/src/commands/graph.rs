//! `concord graph NAME [--format text|dot]`: the topology's DAG with live numbers.
//!
//! Structure comes from the stored spec, instance counts from its status, records/s
//! from the controller's metrics endpoint (`GET .../topologies/NAME/metrics`). Operators
//! are placed in layers by longest path from a source, so every edge points to a later
//! layer; the text form lists the layers top to bottom, one operator per line, so long
//! names and many operators stay readable in any terminal width.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use concord_schemas::api::KafkaMetrics;
use concord_schemas::{Partitioning, Topology};
use serde::Deserialize;

use crate::Failure;
use crate::client::Client;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Layers top to bottom, for the terminal.
    Text,
    /// Graphviz DOT (`concord graph NAME --format dot | dot -Tsvg > g.svg`).
    Dot,
}

/// Arguments of `concord graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Topology name.
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: GraphFormat,
}

/// The part of the metrics answer this command reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsView {
    #[serde(default)]
    pub operators: Vec<OperatorView>,
}

/// One operator's live numbers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorView {
    pub name: String,
    #[serde(default)]
    pub instances_unreachable: u32,
    pub records_in_per_second: Option<f64>,
    pub records_out_per_second: Option<f64>,
    pub dropped_total: Option<u64>,
    pub p99_latency_seconds: Option<f64>,
    /// Kafka sums (lag of a kafka-source, produced of a kafka-sink), when exported.
    #[serde(default)]
    pub kafka: Option<KafkaMetrics>,
    #[serde(default)]
    pub tasks: Vec<TaskView>,
}

/// One task's numbers (the part `describe` reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub task_id: String,
    pub instance: u32,
    #[serde(default)]
    pub kafka: Option<KafkaMetrics>,
}

/// One edge: `from` feeds `to` with `partitioning`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub partitioning: String,
}

fn partitioning_name(p: &Partitioning) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{p:?}").to_lowercase())
}

/// Edges of the spec, in operator order.
pub fn edges(t: &Topology) -> Vec<Edge> {
    t.spec
        .operators
        .iter()
        .flat_map(|op| {
            op.inputs.iter().map(|i| Edge {
                from: i.from.clone(),
                to: op.name.clone(),
                partitioning: partitioning_name(&i.partitioning),
            })
        })
        .collect()
}

/// Layer of every operator: 0 for sources, else one more than its deepest input.
/// Inputs naming unknown operators are ignored; a cycle (which validation rejects)
/// cannot loop forever: layers are capped at the number of operators.
pub fn layers(names: &[String], edges: &[Edge]) -> Vec<Vec<String>> {
    let mut layer: BTreeMap<&str, usize> = names.iter().map(|n| (n.as_str(), 0)).collect();
    let cap = names.len().saturating_sub(1);
    for _ in 0..names.len() {
        let mut changed = false;
        for e in edges {
            let (Some(&from), Some(&to)) = (layer.get(e.from.as_str()), layer.get(e.to.as_str()))
            else {
                continue;
            };
            let want = (from + 1).min(cap);
            if to < want {
                layer.insert(e.to.as_str(), want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let depth = layer.values().copied().max().map_or(0, |d| d + 1);
    let mut out = vec![Vec::new(); depth];
    for n in names {
        if let Some(&l) = layer.get(n.as_str()) {
            out[l].push(n.clone());
        }
    }
    out
}

/// `98.6/s`, `12.3k/s`, `-` when unknown.
pub fn rate(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.1}M/s", v / 1e6),
        Some(v) if v >= 1e4 => format!("{:.1}k/s", v / 1e3),
        Some(v) => format!("{v:.1}/s"),
    }
}

/// A record count: `950`, `1.2k`, `3.4M`.
pub fn count(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    if a >= 1e9 {
        format!("{sign}{:.1}G", a / 1e9)
    } else if a >= 1e6 {
        format!("{sign}{:.1}M", a / 1e6)
    } else if a >= 1e3 {
        format!("{sign}{:.1}k", a / 1e3)
    } else {
        n.to_string()
    }
}

/// Kafka notes of a node: `lag 1.2k` on sources, replays and produce errors when any.
fn kafka_extra(k: &KafkaMetrics) -> Vec<String> {
    let mut extra = Vec::new();
    if let Some(lag) = k.lag_records {
        extra.push(format!("lag {}", count(lag)));
    }
    if let Some(r) = k.replayed_records_total.filter(|r| *r > 0) {
        extra.push(format!("replayed {}", count(r as i64)));
    }
    if let Some(e) = k.produce_errors_total.filter(|e| *e > 0) {
        extra.push(format!("produce errors {}", count(e as i64)));
    }
    extra
}

fn latency(v: Option<f64>) -> Option<String> {
    let v = v?;
    Some(if v >= 1.0 {
        format!("{v:.2}s")
    } else if v >= 1e-3 {
        format!("{:.2}ms", v * 1e3)
    } else {
        format!("{:.0}µs", v * 1e6)
    })
}

/// Per operator: `running/desired` and the optional metrics.
struct Node<'a> {
    name: &'a str,
    kind: String,
    counts: String,
    metrics: Option<&'a OperatorView>,
}

fn nodes<'a>(t: &'a Topology, m: Option<&'a MetricsView>) -> BTreeMap<&'a str, Node<'a>> {
    t.spec
        .operators
        .iter()
        .map(|op| {
            let running = t
                .status
                .as_ref()
                .and_then(|s| s.operators.iter().find(|o| o.name == op.name))
                .map(|o| o.running.to_string())
                .unwrap_or_else(|| "?".into());
            let kind = match &op.runtime {
                concord_schemas::Runtime::Builtin(b) => b.name.clone(),
                concord_schemas::Runtime::Process(p) => p.command.clone(),
            };
            let metrics = m.and_then(|m| m.operators.iter().find(|o| o.name == op.name));
            (
                op.name.as_str(),
                Node {
                    name: &op.name,
                    kind,
                    counts: format!("{running}/{}", op.instances),
                    metrics,
                },
            )
        })
        .collect()
}

/// The text rendering.
pub fn render_text(t: &Topology, m: Option<&MetricsView>) -> String {
    let names: Vec<String> = t.spec.operators.iter().map(|o| o.name.clone()).collect();
    let edges = edges(t);
    let layers = layers(&names, &edges);
    let nodes = nodes(t, m);
    let name_w = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("OPERATOR".len());
    let kind_w = nodes
        .values()
        .map(|n| n.kind.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("RUNTIME".len(), 24);
    let mut out = String::new();
    let generation = t.metadata.generation.unwrap_or(0);
    let ready = t
        .status
        .as_ref()
        .and_then(|s| s.condition(concord_schemas::condition_type::READY))
        .map(|c| format!("Ready={:?}", c.status))
        .unwrap_or_else(|| "no status yet".into());
    let _ = writeln!(
        out,
        "topology/{} (namespace {}, generation {generation}, {ready})",
        t.metadata.name, t.metadata.namespace
    );
    if m.is_none() {
        out.push_str("(live metrics unavailable)\n");
    }
    let header = format!(
        "  {:name_w$}  {:kind_w$}  {:>9}  {:>10}  {:>10}  EXTRA",
        "OPERATOR", "RUNTIME", "INSTANCES", "IN", "OUT"
    );
    out.push_str(header.trim_end());
    out.push('\n');
    for (depth, layer) in layers.iter().enumerate() {
        let _ = writeln!(out, "── layer {} ──", depth + 1);
        for name in layer {
            let Some(node) = nodes.get(name.as_str()) else {
                continue;
            };
            let has_inputs = edges.iter().any(|e| &e.to == name);
            let has_outputs = edges.iter().any(|e| &e.from == name);
            let (mut rin, mut rout, extra) = match node.metrics {
                Some(mv) => {
                    let mut extra = Vec::new();
                    if let Some(p99) = latency(mv.p99_latency_seconds) {
                        extra.push(format!("p99 {p99}"));
                    }
                    if let Some(d) = mv.dropped_total.filter(|d| *d > 0) {
                        extra.push(format!("dropped {d}"));
                    }
                    if let Some(k) = &mv.kafka {
                        extra.extend(kafka_extra(k));
                    }
                    if mv.instances_unreachable > 0 {
                        extra.push(format!("{} unreachable", mv.instances_unreachable));
                    }
                    (
                        rate(mv.records_in_per_second),
                        rate(mv.records_out_per_second),
                        extra,
                    )
                }
                None => ("?".into(), "?".into(), Vec::new()),
            };
            // A source reads nothing from the topology, a sink feeds nothing into it.
            if !has_inputs {
                rin = "-".into();
            }
            if !has_outputs && rout == rate(Some(0.0)) {
                rout = "-".into();
            }
            let mut kind: String = node.kind.chars().take(kind_w).collect();
            if node.kind.chars().count() > kind_w {
                kind.pop();
                kind.push('…');
            }
            let line = format!(
                "  {:name_w$}  {kind:kind_w$}  {:>9}  {rin:>10}  {rout:>10}  {}",
                node.name,
                node.counts,
                extra.join(", ")
            );
            out.push_str(line.trim_end());
            out.push('\n');
            for e in edges.iter().filter(|e| &e.to == name) {
                let _ = writeln!(out, "      ◀── {} ({})", e.from, e.partitioning);
            }
            for e in edges.iter().filter(|e| &e.from == name) {
                let _ = writeln!(out, "      ──▶ {} ({})", e.to, e.partitioning);
            }
        }
    }
    out
}

fn dot_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The Graphviz rendering (left to right, one rank per layer).
pub fn render_dot(t: &Topology, m: Option<&MetricsView>) -> String {
    let names: Vec<String> = t.spec.operators.iter().map(|o| o.name.clone()).collect();
    let edges = edges(t);
    let layers = layers(&names, &edges);
    let nodes = nodes(t, m);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "digraph {} {{",
        dot_quote(&format!("{}/{}", t.metadata.namespace, t.metadata.name))
    );
    out.push_str("  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"monospace\"];\n");
    out.push_str("  edge [fontname=\"monospace\", fontsize=10];\n");
    for layer in &layers {
        out.push_str("  { rank=same;");
        for name in layer {
            let _ = write!(out, " {};", dot_quote(name));
        }
        out.push_str(" }\n");
    }
    for name in &names {
        let Some(node) = nodes.get(name.as_str()) else {
            continue;
        };
        let mut label = format!("{}\n{}\n{} instances", node.name, node.kind, node.counts);
        if let Some(mv) = node.metrics {
            label.push_str(&format!(
                "\nin {}  out {}",
                rate(mv.records_in_per_second),
                rate(mv.records_out_per_second)
            ));
            if let Some(k) = &mv.kafka {
                let extra = kafka_extra(k);
                if !extra.is_empty() {
                    label.push('\n');
                    label.push_str(&extra.join("  "));
                }
            }
        }
        let _ = writeln!(out, "  {} [label={}];", dot_quote(name), dot_quote(&label));
    }
    for e in &edges {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            dot_quote(&e.from),
            dot_quote(&e.to),
            dot_quote(&e.partitioning)
        );
    }
    out.push_str("}\n");
    out
}

/// Runs `concord graph`.
pub async fn run(client: &Client, ns: &str, args: &GraphArgs) -> Result<u8, Failure> {
    let topology = client.get(ns, &args.name).await?;
    let metrics = match client.metrics::<MetricsView>(ns, &args.name).await {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("warning: no live metrics: {e}");
            None
        }
    };
    let text = match args.format {
        GraphFormat::Text => render_text(&topology, metrics.as_ref()),
        GraphFormat::Dot => render_dot(&topology, metrics.as_ref()),
    };
    print!("{text}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, to: &str) -> Edge {
        Edge {
            from: from.into(),
            to: to.into(),
            partitioning: "shuffle".into(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn layers_follow_the_longest_path() {
        // a -> b -> d, a -> c -> d, a -> d, e (isolated source), d -> f
        let ops = names(&["f", "d", "c", "b", "a", "e"]);
        let e = [
            edge("a", "b"),
            edge("b", "d"),
            edge("a", "c"),
            edge("c", "d"),
            edge("a", "d"),
            edge("d", "f"),
        ];
        let l = layers(&ops, &e);
        assert_eq!(
            l,
            vec![
                names(&["a", "e"]),
                names(&["c", "b"]),
                names(&["d"]),
                names(&["f"])
            ]
        );
    }

    #[test]
    fn layers_survive_unknown_inputs_and_cycles() {
        let l = layers(&names(&["a", "b"]), &[edge("ghost", "a"), edge("a", "b")]);
        assert_eq!(l, vec![names(&["a"]), names(&["b"])]);
        let l = layers(&names(&["a", "b"]), &[edge("a", "b"), edge("b", "a")]);
        assert_eq!(l.iter().map(Vec::len).sum::<usize>(), 2);
        assert!(layers(&[], &[]).is_empty());
    }

    #[test]
    fn a_long_chain_makes_one_layer_per_operator() {
        let ops: Vec<String> = (0..12)
            .map(|i| format!("operator-with-a-long-name-{i}"))
            .collect();
        let e: Vec<Edge> = ops.windows(2).map(|w| edge(&w[0], &w[1])).collect();
        let l = layers(&ops, &e);
        assert_eq!(l.len(), 12);
        assert!(l.iter().all(|layer| layer.len() == 1));
    }

    #[test]
    fn text_of_a_wide_topology_lines_up() {
        let mut yaml = String::from(
            "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: wide}\nspec:\n  operators:\n",
        );
        yaml.push_str("    - name: source\n      runtime: {builtin: {name: generator}}\n");
        for i in 0..11 {
            let name = format!("enrich-and-aggregate-clicks-by-publisher-{i}");
            let inputs = if i == 0 {
                "[{from: source, partitioning: key}]".to_owned()
            } else {
                format!(
                    "[{{from: enrich-and-aggregate-clicks-by-publisher-{}, partitioning: key}}, {{from: source, partitioning: broadcast}}]",
                    i - 1
                )
            };
            yaml.push_str(&format!(
                "    - name: {name}\n      instances: {}\n      runtime: {{builtin: {{name: keyed-count}}}}\n      inputs: {inputs}\n",
                i + 1
            ));
        }
        let t = concord_schemas::parse_yaml(yaml.as_bytes(), "wide.yaml")
            .expect("valid")
            .remove(0);
        let m = MetricsView {
            operators: vec![OperatorView {
                name: "source".into(),
                records_out_per_second: Some(1234.5),
                ..OperatorView::default()
            }],
        };
        let text = render_text(&t, Some(&m));
        eprintln!("{text}");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("      "))
            .collect();
        assert_eq!(rows.len(), 13, "header + 12 operators:\n{text}");
        // The INSTANCES column (`?/N` without status) ends where its header ends.
        let col = |l: &str, pat: &str| l.find(pat).map(|i| l[..i + pat.len()].chars().count());
        let header_end = col(rows[0], "INSTANCES").expect("header");
        for (i, row) in rows[1..].iter().enumerate() {
            let n = if i == 0 { 1 } else { i };
            assert_eq!(
                col(row, &format!("?/{n}")),
                Some(header_end),
                "{row}\n{text}"
            );
        }
        assert!(text.contains("1234.5/s"), "{text}");
        assert!(text.contains("──▶ enrich-and-aggregate-clicks-by-publisher-0 (key)"));
        assert!(text.contains("◀── source (broadcast)"));
        assert!(text.contains("── layer 12 ──"), "{text}");
        assert!(
            text.lines().all(|l| l == l.trim_end()),
            "no trailing blanks"
        );
        let dot = render_dot(&t, Some(&m));
        assert_eq!(dot.matches(" -> ").count(), 21);
    }

    #[test]
    fn kafka_sources_show_their_lag() {
        let yaml = r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: k2k}
spec:
  operators:
    - name: clicks
      instances: 2
      runtime: {builtin: {name: kafka-source}}
      config: {bootstrapServers: "127.0.0.1:9092", topic: clicks}
    - name: count
      runtime: {builtin: {name: keyed-count}}
      inputs: [{from: clicks, partitioning: key}]
    - name: out
      runtime: {builtin: {name: kafka-sink}}
      config: {bootstrapServers: "127.0.0.1:9092", topic: alerts}
      inputs: [{from: count}]
"#;
        let t = concord_schemas::parse_yaml(yaml.as_bytes(), "k2k.yaml")
            .expect("valid")
            .remove(0);
        let m: MetricsView = serde_json::from_value(serde_json::json!({"operators": [
            {"name": "clicks", "recordsOutPerSecond": 50.0,
             "kafka": {"partitionsAssigned": 4, "lagRecords": 1234, "replayedRecordsTotal": 7}},
            {"name": "count", "recordsInPerSecond": 50.0, "recordsOutPerSecond": 50.0},
            {"name": "out", "recordsInPerSecond": 50.0,
             "kafka": {"partitionsAssigned": 0, "producedTotal": 900, "produceErrorsTotal": 0}}
        ]}))
        .expect("metrics view");
        let text = render_text(&t, Some(&m));
        let line = |name: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("{name} in\n{text}"))
                .to_owned()
        };
        assert!(line("clicks").ends_with("lag 1.2k, replayed 7"), "{text}");
        assert!(!line("count").contains("lag"), "{text}");
        assert!(!line("out").contains("lag"), "{text}");
        let dot = render_dot(&t, Some(&m));
        assert!(dot.contains("lag 1.2k  replayed 7"), "{dot}");
    }

    #[test]
    fn counts_are_compact() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1234), "1.2k");
        assert_eq!(count(2_500_000), "2.5M");
        assert_eq!(count(-1500), "-1.5k");
    }

    #[test]
    fn rates_are_compact() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(98.64)), "98.6/s");
        assert_eq!(rate(Some(12_345.0)), "12.3k/s");
        assert_eq!(rate(Some(2_500_000.0)), "2.5M/s");
        assert_eq!(dot_quote("a\"b"), "\"a\\\"b\"");
    }
}
