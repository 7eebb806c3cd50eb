//! `GET .../namespaces/{ns}/topologies/{name}/traces[?traceId=ID][&limit=N]`: the paths
//! of sampled records through a topology, assembled from every executor's `/traces`.
//!
//! Each executor keeps the spans of the sampled records it handled (one span per hop:
//! trace id, span id, parent span id, and when the record's batch arrived, processing
//! started and ended and its output was handed on). The controller finds the topology's
//! executors in etcd exactly as the metrics endpoint does, fetches their spans
//! concurrently (on request only, [`super::metrics_api::SCRAPE_TIMEOUT`] each), groups them by trace id and
//! orders each trace's hops along the parent links: source first, then each hop's
//! children by arrival time (a record can fan out: broadcast edges, several outputs per
//! input), so `hops` is a depth-first walk of the path tree with a `depth` per hop.
//!
//! Per hop: `networkSeconds` (parent's send to this hop's arrival: the wire, batching at
//! the receiver, reading), `queueSeconds` (arrival to processing start: the input
//! queue), `processSeconds` (the callback; for a process operator the exchange with the
//! child), `outputSeconds` (processing end to the output batch being handed on: output
//! batching and back-pressure) and `sinceStartSeconds` (this hop's send, or end, after
//! the source hop began). Times come from each host's wall clock, so across hosts a
//! difference can be off by their clock skew (even negative).
//!
//! A trace is `complete` when its source hop is present and every other hop's parent is
//! too: executors keep only their last spans and unreachable executors answer nothing,
//! so a path can have gaps.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use concord_schemas::Topology;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use prometheus_client::metrics::counter::Counter;

use super::ObserveError;
use super::metrics_api::{MAX_TARGETS, MetricsMeta, SCRAPE_CONCURRENCY, ScrapeState, get_capped};
use crate::store::Store;

/// Traces answered when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// Query parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceQuery {
    /// Only this trace (16 hex digits, as executors print it).
    pub trace_id: Option<String>,
    /// How many of the most recent traces (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub limit: Option<usize>,
}

/// One span as an executor serves it at `/traces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpan {
    /// Trace id.
    pub trace_id: String,
    /// This hop's span id.
    pub span_id: String,
    /// The upstream hop's span id (absent at the source).
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Operator name.
    pub operator: String,
    /// Instance index.
    pub instance: u32,
    /// Task ID.
    pub task_id: String,
    /// Wall-clock ns the record's batch arrived (generated, at a source).
    pub enqueue_ns: u64,
    /// Wall-clock ns processing began.
    pub process_start_ns: u64,
    /// Wall-clock ns processing ended.
    pub process_end_ns: u64,
    /// Wall-clock ns the batch with its output was handed to the network.
    #[serde(default)]
    pub send_ns: Option<u64>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyTraces {
    /// `concord.io/v1alpha1`.
    pub api_version: String,
    /// `TopologyTraces`.
    pub kind: String,
    /// Which topology.
    pub metadata: MetricsMeta,
    /// When the spans were collected.
    pub time: DateTime<Utc>,
    /// Every executor asked, and whether it answered.
    pub tasks: Vec<TraceSource>,
    /// Most recent first (by the time the source hop began).
    pub traces: Vec<Trace>,
    /// More than [`MAX_TARGETS`] executors are registered: only the first (in key order)
    /// were asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One executor asked for spans.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSource {
    /// Task ID.
    pub task_id: String,
    /// Operator.
    pub operator: String,
    /// Instance index.
    pub instance: u32,
    /// `ok` or `unreachable`.
    pub scrape: ScrapeState,
    /// Why not.
    pub error: Option<String>,
    /// Spans it answered.
    pub spans: usize,
}

/// One sampled record's path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// Trace id.
    pub trace_id: String,
    /// Source hop present and no hop's parent missing.
    pub complete: bool,
    /// Wall-clock ns the first hop began.
    pub start_ns: u64,
    /// Wall-clock ns the last hop handed its output on (or ended).
    pub end_ns: u64,
    /// `end_ns - start_ns`, seconds.
    pub duration_seconds: f64,
    /// Hops in path order (depth first from the source).
    pub hops: Vec<Hop>,
}

/// One hop of a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// Span id.
    pub span_id: String,
    /// Parent span id (absent at the source).
    pub parent_id: Option<String>,
    /// Distance from the source hop (0 at the source or after a gap).
    pub depth: u32,
    /// Operator.
    pub operator: String,
    /// Instance index.
    pub instance: u32,
    /// Task ID.
    pub task_id: String,
    /// Wall-clock ns the record's batch arrived.
    pub enqueue_ns: u64,
    /// Wall-clock ns processing began.
    pub process_start_ns: u64,
    /// Wall-clock ns processing ended.
    pub process_end_ns: u64,
    /// Wall-clock ns its output was handed on.
    pub send_ns: Option<u64>,
    /// Parent's send to this hop's arrival (`null` at the source or when the parent is
    /// missing), seconds.
    pub network_seconds: Option<f64>,
    /// Arrival to processing start, seconds.
    pub queue_seconds: f64,
    /// Processing, seconds.
    pub process_seconds: f64,
    /// Processing end to output handed on, seconds.
    pub output_seconds: Option<f64>,
    /// This hop's send (or end) after the trace's start, seconds.
    pub since_start_seconds: f64,
}

/// `a - b` in seconds (negative when clocks disagree).
fn secs(a: u64, b: u64) -> f64 {
    (i128::from(a) - i128::from(b)) as f64 / 1e9
}

/// A trace id as executors write it: 1 to 16 hex digits, lower case.
pub fn normalise_trace_id(id: &str) -> Result<String, ObserveError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ObserveError::BadRequest(format!(
            "traceId {id:?} is not a trace id (up to 16 hex digits)"
        )));
    }
    Ok(format!("{:0>16}", id.to_ascii_lowercase()))
}

/// Groups spans into traces, orders each trace's hops and keeps the `limit` most recent.
pub fn assemble(spans: Vec<ExecutorSpan>, limit: usize) -> Vec<Trace> {
    let mut by_trace: BTreeMap<String, Vec<ExecutorSpan>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for s in spans {
        if seen.insert((s.trace_id.clone(), s.span_id.clone())) {
            by_trace.entry(s.trace_id.clone()).or_default().push(s);
        }
    }
    let mut traces: Vec<Trace> = by_trace
        .into_iter()
        .map(|(id, spans)| one_trace(id, spans))
        .collect();
    traces.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    traces.truncate(limit);
    traces
}

fn one_trace(trace_id: String, mut spans: Vec<ExecutorSpan>) -> Trace {
    spans.sort_by(|a, b| {
        (a.enqueue_ns, a.process_start_ns, &a.span_id).cmp(&(
            b.enqueue_ns,
            b.process_start_ns,
            &b.span_id,
        ))
    });
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    let mut has_source = false;
    let mut gap = false;
    for (i, s) in spans.iter().enumerate() {
        match s.parent_id.as_deref().map(|p| index.get(p)) {
            None => {
                has_source = true;
                roots.push(i);
            }
            Some(Some(&p)) if p != i => children[p].push(i),
            Some(_) => {
                gap = true;
                roots.push(i);
            }
        }
    }
    // Spans are sorted by arrival, so roots and children already are.
    let start_ns = roots
        .iter()
        .map(|&i| spans[i].enqueue_ns)
        .min()
        .unwrap_or(0);
    let mut order: Vec<(usize, u32)> = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    for &r in &roots {
        let mut stack = vec![(r, 0u32)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            order.push((i, depth));
            for &c in children[i].iter().rev() {
                stack.push((c, depth + 1));
            }
        }
    }
    // A cycle of parent links (never written by executors) is listed after the rest.
    for (i, v) in visited.iter().enumerate() {
        if !v {
            gap = true;
            order.push((i, 0));
        }
    }
    let hops: Vec<Hop> = order
        .into_iter()
        .map(|(i, depth)| {
            let s = &spans[i];
            let parent = s
                .parent_id
                .as_deref()
                .and_then(|p| index.get(p))
                .map(|&p| &spans[p]);
            let done = s.send_ns.unwrap_or(s.process_end_ns);
            Hop {
                span_id: s.span_id.clone(),
                parent_id: s.parent_id.clone(),
                depth,
                operator: s.operator.clone(),
                instance: s.instance,
                task_id: s.task_id.clone(),
                enqueue_ns: s.enqueue_ns,
                process_start_ns: s.process_start_ns,
                process_end_ns: s.process_end_ns,
                send_ns: s.send_ns,
                network_seconds: parent
                    .and_then(|p| p.send_ns)
                    .map(|sent| secs(s.enqueue_ns, sent)),
                queue_seconds: secs(s.process_start_ns, s.enqueue_ns),
                process_seconds: secs(s.process_end_ns, s.process_start_ns),
                output_seconds: s.send_ns.map(|sent| secs(sent, s.process_end_ns)),
                since_start_seconds: secs(done, start_ns),
            }
        })
        .collect();
    let end_ns = hops
        .iter()
        .map(|h| h.send_ns.unwrap_or(h.process_end_ns))
        .max()
        .unwrap_or(start_ns);
    Trace {
        trace_id,
        complete: has_source && !gap,
        start_ns,
        end_ns,
        duration_seconds: secs(end_ns, start_ns),
        hops,
    }
}

/// Fetches one executor's spans (at most [`RING_CAPACITY`], what an executor keeps).
async fn fetch_spans(
    http: &reqwest::Client,
    addr: &str,
    trace_id: Option<&str>,
    oversized: &Counter,
) -> Result<Vec<ExecutorSpan>, String> {
    if addr.is_empty() {
        return Err("no metrics address registered".into());
    }
    let mut url = format!("http://{addr}/traces");
    if let Some(id) = trace_id {
        url.push_str(&format!("?traceId={id}"));
    }
    let body = get_capped(http, &url, oversized).await?;
    let mut spans: Vec<ExecutorSpan> = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {url}: not a list of spans: {e}"))?;
    spans.truncate(RING_CAPACITY);
    // Executors without the `traceId` filter answer every span.
    Ok(match trace_id {
        Some(id) => spans.into_iter().filter(|s| s.trace_id == id).collect(),
        None => spans,
    })
}

/// Collects the topology's spans and assembles its traces.
pub async fn topology_traces(
    store: &Store,
    http: &reqwest::Client,
    oversized: &Counter,
    topology: &Topology,
    query: &TraceQuery,
) -> Result<TopologyTraces, ObserveError> {
    let ns = &topology.metadata.namespace;
    let name = &topology.metadata.name;
    let trace_id = query
        .trace_id
        .as_deref()
        .map(normalise_trace_id)
        .transpose()?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(ObserveError::BadRequest("limit must be at least 1".into())),
        Some(n) => n.min(MAX_LIMIT),
    };
    let (mut targets, truncated) =
        super::metrics_api::targets(store, ns, name, MAX_TARGETS).await?;
    targets.sort_by(|a, b| {
        (&a.operator, a.instance, &a.task_id).cmp(&(&b.operator, b.instance, &b.task_id))
    });
    let results: Vec<(usize, Result<Vec<ExecutorSpan>, String>)> = futures::stream::iter(
        targets
            .iter()
            .map(|t| t.metrics_addr.clone())
            .enumerate()
            .collect::<Vec<_>>(),
    )
    .map(|(i, addr)| {
        let http = http.clone();
        let id = trace_id.clone();
        async move { (i, fetch_spans(&http, &addr, id.as_deref(), oversized).await) }
    })
    .buffer_unordered(SCRAPE_CONCURRENCY)
    .collect()
    .await;
    let mut answers: Vec<Option<Result<Vec<ExecutorSpan>, String>>> =
        (0..targets.len()).map(|_| None).collect();
    for (i, r) in results {
        answers[i] = Some(r);
    }
    let mut tasks = Vec::with_capacity(targets.len());
    let mut spans = Vec::new();
    for (t, r) in targets.iter().zip(answers) {
        let (scrape, error, n) = match r {
            Some(Ok(s)) => {
                let n = s.len();
                spans.extend(s);
                (ScrapeState::Ok, None, n)
            }
            Some(Err(e)) => (ScrapeState::Unreachable, Some(e), 0),
            None => (ScrapeState::Unreachable, Some("not asked".into()), 0),
        };
        tasks.push(TraceSource {
            task_id: t.task_id.clone(),
            operator: t.operator.clone(),
            instance: t.instance,
            scrape,
            error,
            spans: n,
        });
    }
    let traces = assemble(spans, limit);
    if let Some(id) = &trace_id
        && traces.is_empty()
    {
        let unreachable = tasks.iter().filter(|t| t.scrape != ScrapeState::Ok).count();
        let mut message = format!(
            "trace {id} not found in the recent spans of topology {ns}/{name} (each executor keeps its last {} spans)",
            RING_CAPACITY
        );
        if unreachable > 0 {
            message.push_str(&format!("; {unreachable} executor(s) did not answer"));
        }
        return Err(ObserveError::NotFound(message));
    }
    Ok(TopologyTraces {
        api_version: concord_schemas::API_VERSION.into(),
        kind: "TopologyTraces".into(),
        metadata: MetricsMeta {
            namespace: ns.clone(),
            name: name.clone(),
        },
        time: Utc::now(),
        tasks,
        traces,
        truncated,
    })
}

/// Spans an executor keeps (`concord-executor`'s ring): for messages, and the most read
/// from one executor.
const RING_CAPACITY: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, op: &str, t: u64) -> ExecutorSpan {
        ExecutorSpan {
            trace_id: "00000000000000aa".into(),
            span_id: id.into(),
            parent_id: parent.map(str::to_owned),
            operator: op.into(),
            instance: 0,
            task_id: format!("task-{op}"),
            enqueue_ns: t,
            process_start_ns: t + 10,
            process_end_ns: t + 30,
            send_ns: Some(t + 100),
        }
    }

    #[test]
    fn hops_follow_parent_links_with_per_hop_latency() {
        // gen -> enrich -> {count (broadcast to two instances)} -> sink, given shuffled.
        let mut c1 = span("c1", Some("e"), "count", 1_250);
        c1.instance = 1;
        let spans = vec![
            span("s", Some("c0"), "sink", 1_500),
            c1,
            span("e", Some("g"), "enrich", 1_100),
            span("g", None, "gen", 1_000),
            span("c0", Some("e"), "count", 1_240),
        ];
        let traces = assemble(spans, 10);
        assert_eq!(traces.len(), 1);
        let t = &traces[0];
        assert!(t.complete);
        let path: Vec<(&str, u32)> = t
            .hops
            .iter()
            .map(|h| (h.span_id.as_str(), h.depth))
            .collect();
        assert_eq!(path, [("g", 0), ("e", 1), ("c0", 2), ("s", 3), ("c1", 2)]);
        let e = &t.hops[1];
        // enrich arrived at 1100; gen sent at 1100: no time on the wire.
        assert_eq!(e.network_seconds, Some(0.0));
        assert!((e.queue_seconds - 10e-9).abs() < 1e-15);
        assert!((e.process_seconds - 20e-9).abs() < 1e-15);
        assert_eq!(e.output_seconds, Some(70e-9));
        assert!((e.since_start_seconds - 200e-9).abs() < 1e-15);
        assert_eq!(t.hops[0].network_seconds, None);
        assert_eq!(t.start_ns, 1_000);
        assert_eq!(t.end_ns, 1_600);
        assert!((t.duration_seconds - 600e-9).abs() < 1e-15);
    }

    #[test]
    fn gaps_make_a_trace_incomplete_and_recent_traces_come_first() {
        let mut orphan = span("x", Some("lost"), "sink", 5_000);
        orphan.trace_id = "00000000000000bb".into();
        let mut newer = span("n", None, "gen", 9_000);
        newer.trace_id = "00000000000000cc".into();
        let traces = assemble(
            vec![span("g", None, "gen", 1_000), orphan.clone(), newer, orphan],
            10,
        );
        let ids: Vec<&str> = traces.iter().map(|t| t.trace_id.as_str()).collect();
        assert_eq!(
            ids,
            ["00000000000000cc", "00000000000000bb", "00000000000000aa"]
        );
        let gap = &traces[1];
        assert!(!gap.complete, "the parent of the only hop is missing");
        assert_eq!(gap.hops.len(), 1, "duplicates are dropped");
        assert_eq!(gap.hops[0].network_seconds, None);
        assert!(traces[2].complete);
        assert_eq!(assemble(traces_spans(), 1).len(), 1);
    }

    fn traces_spans() -> Vec<ExecutorSpan> {
        let mut b = span("b", None, "gen", 2_000);
        b.trace_id = "00000000000000bb".into();
        vec![span("a", None, "gen", 1_000), b]
    }

    #[test]
    fn trace_ids_are_validated_and_padded() {
        assert_eq!(normalise_trace_id("ABC").expect("hex"), "0000000000000abc");
        assert!(normalise_trace_id("").is_err());
        assert!(normalise_trace_id("xyz").is_err());
        assert!(normalise_trace_id("00000000000000000").is_err());
    }

    #[test]
    fn executor_spans_parse_as_served() {
        let json = r#"[{"traceId":"9b16cb82b1c576f8","spanId":"57991f47dd3d7cb4","operator":"gen",
            "instance":0,"taskId":"t","enqueueNs":1,"processStartNs":1,"processEndNs":1,"sendNs":2}]"#;
        let spans: Vec<ExecutorSpan> = serde_json::from_str(json).expect("parses");
        assert_eq!(spans[0].parent_id, None);
        assert_eq!(spans[0].send_ns, Some(2));
        let t = assemble(spans, 5);
        let v = serde_json::to_value(&t[0]).expect("json");
        assert_eq!(v["hops"][0]["operator"], "gen");
        assert!(v["hops"][0]["networkSeconds"].is_null());
        assert_eq!(v["complete"], true);
    }
}
