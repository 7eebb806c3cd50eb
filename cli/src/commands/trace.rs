//! `concord trace NAME [TRACE_ID] [--limit N] [-o text|json]`: the paths of recently
//! sampled records through a topology, hop by hop with per-hop latency.
//!
//! Reads `GET .../topologies/NAME/traces` (the controller joins every executor's spans;
//! see `docs/observability.md`). The text form prints one block per trace: a header with
//! the trace id, hop count, end-to-end duration and whether the path is complete, then
//! one row per hop in path order, operators indented by their depth in the path tree.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::Failure;
use crate::client::Client;
use crate::output::Table;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// One table per trace.
    Text,
    /// The API's answer as it came.
    Json,
}

/// Arguments of `concord trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Topology name.
    pub name: String,
    /// Show only this trace (as printed by an earlier `concord trace`).
    pub trace_id: Option<String>,
    /// How many recent traces (most recent first).
    #[arg(long, default_value_t = 5)]
    pub limit: usize,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: TraceFormat,
}

/// The part of the answer this command reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracesView {
    #[serde(default)]
    pub tasks: Vec<SourceView>,
    #[serde(default)]
    pub traces: Vec<TraceView>,
}

/// An executor the controller asked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub task_id: String,
    pub scrape: String,
    pub error: Option<String>,
}

/// One trace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    pub trace_id: String,
    pub complete: bool,
    pub start_ns: u64,
    pub duration_seconds: f64,
    #[serde(default)]
    pub hops: Vec<HopView>,
}

/// One hop.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HopView {
    pub depth: u32,
    pub operator: String,
    pub instance: u32,
    pub network_seconds: Option<f64>,
    pub queue_seconds: f64,
    pub process_seconds: f64,
    pub output_seconds: Option<f64>,
    pub since_start_seconds: f64,
}

/// `812µs`, `3.41ms`, `1.20s`, `-` when unknown (negative values, from clock skew
/// between hosts, keep their sign).
pub fn duration(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "-".into();
    };
    let a = v.abs();
    let sign = if v < 0.0 { "-" } else { "" };
    if a >= 1.0 {
        format!("{sign}{a:.2}s")
    } else if a >= 1e-3 {
        format!("{sign}{:.2}ms", a * 1e3)
    } else {
        format!("{sign}{:.0}µs", a * 1e6)
    }
}

fn started(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32;
    DateTime::<Utc>::from_timestamp(secs, nanos)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ns.to_string())
}

/// The text rendering of traces.
pub fn render_text(name: &str, v: &TracesView) -> String {
    let mut out = String::new();
    if v.traces.is_empty() {
        let _ = writeln!(
            out,
            "no sampled records of topology {name} in its executors' recent spans \
             (sources sample a fraction of their records: concord-controller --trace-sample-rate)"
        );
        return out;
    }
    for (i, t) in v.traces.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "trace {}  {} hop{}  {}  {}  started {}",
            t.trace_id,
            t.hops.len(),
            if t.hops.len() == 1 { "" } else { "s" },
            duration(Some(t.duration_seconds)),
            if t.complete {
                "complete"
            } else {
                "incomplete (some hops are missing)"
            },
            started(t.start_ns),
        );
        let mut table = Table::new(&[
            "  OPERATOR",
            "INSTANCE",
            "NETWORK",
            "QUEUE",
            "PROCESS",
            "OUTPUT",
            "TOTAL",
        ]);
        for h in &t.hops {
            table.row(vec![
                format!("  {}{}", "  ".repeat(h.depth as usize), h.operator),
                h.instance.to_string(),
                duration(h.network_seconds),
                duration(Some(h.queue_seconds)),
                duration(Some(h.process_seconds)),
                duration(h.output_seconds),
                duration(Some(h.since_start_seconds)),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

/// Runs `concord trace`.
pub async fn run(client: &Client, ns: &str, args: &TraceArgs) -> Result<u8, Failure> {
    if args.limit == 0 {
        return Err(Failure {
            code: 2,
            message: "--limit must be at least 1".into(),
        });
    }
    let value: serde_json::Value = client
        .traces(ns, &args.name, args.trace_id.as_deref(), args.limit)
        .await?;
    if args.output == TraceFormat::Json {
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| Failure::invalid(format!("cannot print the answer: {e}")))?;
        println!("{text}");
        return Ok(0);
    }
    let view: TracesView = serde_json::from_value(value)
        .map_err(|e| Failure::invalid(format!("unexpected answer from the controller: {e}")))?;
    for t in view.tasks.iter().filter(|t| t.scrape != "ok") {
        eprintln!(
            "warning: task {} did not answer ({}); its hops are missing",
            t.task_id,
            t.error.as_deref().unwrap_or("no reason given")
        );
    }
    print!("{}", render_text(&args.name, &view));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(0.000_812)), "812µs");
        assert_eq!(duration(Some(0.003_41)), "3.41ms");
        assert_eq!(duration(Some(1.2)), "1.20s");
        assert_eq!(duration(Some(-0.000_02)), "-20µs");
    }

    #[test]
    fn a_trace_prints_its_hops_in_path_order() {
        let hop = |depth, op: &str, total| HopView {
            depth,
            operator: op.into(),
            instance: depth,
            network_seconds: (depth > 0).then_some(0.000_05),
            queue_seconds: 0.000_01,
            process_seconds: 0.000_2,
            output_seconds: Some(0.001),
            since_start_seconds: total,
        };
        let v = TracesView {
            tasks: vec![],
            traces: vec![TraceView {
                trace_id: "9b16cb82b1c576f8".into(),
                complete: true,
                start_ns: 1_796_122_172_514_846_346,
                duration_seconds: 0.0045,
                hops: vec![
                    hop(0, "gen", 0.001),
                    hop(1, "enrich", 0.0025),
                    hop(2, "sink", 0.0045),
                ],
            }],
        };
        let text = render_text("clicks", &v);
        eprintln!("{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("trace 9b16cb82b1c576f8  3 hops  4.50ms  complete  started 2026-")
        );
        assert!(lines[1].starts_with("  OPERATOR"), "{text}");
        assert!(lines[2].starts_with("  gen "), "{text}");
        assert!(lines[3].starts_with("    enrich "), "{text}");
        assert!(lines[4].starts_with("      sink "), "{text}");
        assert!(lines[4].ends_with("4.50ms"), "{text}");
        assert!(
            lines[2].contains(" -  "),
            "no network time at the source: {text}"
        );
        assert!(render_text("x", &TracesView::default()).starts_with("no sampled records"));
    }
}
