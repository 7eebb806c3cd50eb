//! `GET .../namespaces/{ns}/topologies/{name}/metrics`: live per-operator numbers,
//! aggregated by the controller from every executor's `/metrics`.
//!
//! # How rates are computed
//!
//! Executors expose cumulative counters; a rate needs two readings. The controller keeps
//! a small in-memory *scrape cache*: for each task, the last few readings with the
//! instant they were taken (at most [`MAX_READINGS`], none older than [`MAX_AGE`]). A
//! request scrapes every executor of the topology once and computes each rate against
//! the newest cached reading that is at least [`MIN_WINDOW`] old. Only when a task has no
//! such reading (the first request for it, or the previous one was less than
//! [`MIN_WINDOW`] ago) does the request wait [`MIN_WINDOW`] and scrape that task a second
//! time. A reading younger than [`FRESH`] is shared by concurrent callers instead of
//! scraping again. So:
//! - nothing runs when nobody asks (no background scraping: idle topologies cost nothing);
//! - a client that polls (the dashboard, `concord graph` run repeatedly) gets answers
//!   from one scrape per call, with rates over the time since its previous call;
//! - a one-off call still gets rates, paying [`MIN_WINDOW`] of latency once.
//!
//! The alternative, always scraping twice per call, would make every call slow and
//! double the load on executors; a background scraper would load every executor even
//! when no one looks.
//!
//! p99 latency is computed from the `concord_processing_latency_seconds` histogram over
//! the same window (bucket deltas), merged over an operator's instances; with no
//! observation in the window it is `null`.
//!
//! # Shape (stable API; the CLI and the dashboard read it)
//!
//! ```json
//! {"apiVersion":"concord.io/v1alpha1","kind":"TopologyMetrics",
//!  "metadata":{"namespace":"default","name":"wc"},"time":"2026-01-01T00:00:00Z",
//!  "operators":[{"name":"gen","desired":1,"instancesReporting":1,"instancesUnreachable":0,
//!    "recordsInPerSecond":0.0,"recordsOutPerSecond":100.2,"recordsInTotal":0,
//!    "recordsOutTotal":5120,"bytesInTotal":0,"bytesOutTotal":81920,"droppedTotal":0,
//!    "errorsTotal":0,"p99LatencySeconds":0.00012,"inputQueueBatches":0,
//!    "outputQueueBatches":0,"cpuPercent":1.5,"residentMemoryBytes":9000000,
//!    "tasks":[{"taskId":"default.wc.gen.0.abc.1234","instance":0,
//!      "metricsAddr":"127.0.0.1:10001","ready":true,"scrape":"ok","error":null,
//!      "windowSeconds":1.0, ...the same numbers as the operator...}]}]}
//! ```
//! Totals are summed over the tasks that answered; rates are `null` when no task of the
//! operator has a rate yet.
//!
//! Tasks that export Kafka metrics (`kafka-source`, `kafka-sink`) carry a `kafka` object,
//! and so does their operator (the sum, without the partition list):
//!
//! ```json
//! "kafka":{"partitionsAssigned":2,"partitions":[{"topic":"clicks","partition":0,
//!   "committedOffset":1000,"endOffset":1200,"lagRecords":200}, ...],"lagRecords":1200,
//!   "replayedRecordsTotal":12,"producedTotal":null,"produceErrorsTotal":null}
//! ```
//! Only partitions whose `concord_kafka_partition_assigned` is 1 are listed; a partition's
//! lag is the executor's `concord_kafka_lag_records`, else `end - committed`. Lag comes
//! from the high watermark of fetch responses, not ListOffsets (see docs/kafka.md). `scrape` is `ok`, `unreachable` (with `error`) or
//! `noEndpoint` (the task runs but has not registered its endpoint in etcd).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use concord_schemas::Topology;
use concord_schemas::api::{KafkaMetrics, KafkaPartitionLag};
use etcd_client::GetOptions;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use prometheus_client::metrics::counter::Counter;

use super::scrape::{self, Buckets, ExecutorCounters};
use super::{BodyError, MAX_SCRAPE_BYTES, ObserveError, error_chain, read_capped};
use crate::store::Store;

/// Shortest window a rate is computed over.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
/// A reading younger than this is reused rather than scraping the executor again, so
/// concurrent callers (several dashboards, a CLI) cost one scrape.
pub const FRESH: Duration = Duration::from_millis(250);
/// Readings older than this are dropped from the cache.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Readings kept per task.
pub const MAX_READINGS: usize = 16;
/// Time allowed for one executor's `/metrics`.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Executors scraped at the same time.
pub(crate) const SCRAPE_CONCURRENCY: usize = 64;
/// Most executors one request reads (metrics or traces); more are reported as
/// `truncated`. A topology's tasks are bounded by its spec, but the endpoint keys are
/// written by executors, so the number read is bounded here.
pub const MAX_TARGETS: usize = 2000;

/// The answer of the metrics endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyMetrics {
    /// `concord.io/v1alpha1`.
    pub api_version: String,
    /// `TopologyMetrics`.
    pub kind: String,
    /// Which topology.
    pub metadata: MetricsMeta,
    /// When the scrape finished.
    pub time: DateTime<Utc>,
    /// One entry per operator, in spec order (operators still draining after removal last).
    pub operators: Vec<OperatorMetrics>,
    /// More than [`MAX_TARGETS`] executors are registered: only the first (in key order)
    /// were scraped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Namespace and name of the topology.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsMeta {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The numbers of one task, or the sum over an operator's tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Numbers {
    /// Records received per second over the rate window.
    pub records_in_per_second: Option<f64>,
    /// Records produced per second over the rate window.
    pub records_out_per_second: Option<f64>,
    /// Records received since start.
    pub records_in_total: Option<u64>,
    /// Records produced since start.
    pub records_out_total: Option<u64>,
    /// Payload bytes received since start.
    pub bytes_in_total: Option<u64>,
    /// Payload bytes produced since start.
    pub bytes_out_total: Option<u64>,
    /// Records dropped since start (all reasons).
    pub dropped_total: Option<u64>,
    /// Failed operator callbacks since start.
    pub errors_total: Option<u64>,
    /// 99th percentile of batch processing latency over the rate window, seconds.
    pub p99_latency_seconds: Option<f64>,
    /// Batches waiting in the input queue.
    pub input_queue_batches: Option<u64>,
    /// Batches waiting in output queues.
    pub output_queue_batches: Option<u64>,
    /// CPU, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory, bytes.
    pub resident_memory_bytes: Option<u64>,
}

/// One operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorMetrics {
    /// Operator name.
    pub name: String,
    /// Instances the spec asks for (0 for an operator no longer in the spec).
    pub desired: u32,
    /// Distinct instance indices with at least one task that answered.
    pub instances_reporting: u32,
    /// Tasks that did not answer (unreachable or no endpoint).
    pub instances_unreachable: u32,
    /// Sums over the tasks that answered.
    #[serde(flatten)]
    pub numbers: Numbers,
    /// Kafka sums over the tasks that export Kafka metrics; absent when none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaMetrics>,
    /// Per task.
    pub tasks: Vec<TaskMetrics>,
}

/// Whether a task's metrics could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScrapeState {
    /// Scraped.
    Ok,
    /// The metrics address did not answer in time or answered an error.
    Unreachable,
    /// Running according to Mesos but no endpoint registered in etcd (yet).
    NoEndpoint,
}

/// One task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskMetrics {
    /// Mesos task ID.
    pub task_id: String,
    /// Instance index.
    pub instance: u32,
    /// Where its metrics are served.
    pub metrics_addr: Option<String>,
    /// What the executor's endpoint says about readiness.
    pub ready: Option<bool>,
    /// Whether the scrape worked.
    pub scrape: ScrapeState,
    /// Why not.
    pub error: Option<String>,
    /// Length of the rate window, seconds (`null` without a rate).
    pub window_seconds: Option<f64>,
    /// The task's numbers.
    #[serde(flatten)]
    pub numbers: Numbers,
    /// Its Kafka partitions and counters; absent when it exports no Kafka metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaMetrics>,
}

/// The value executors write at their endpoint key (only the fields read here).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointValue {
    #[serde(default)]
    metrics_addr: String,
    #[serde(default)]
    ready: bool,
}

/// A registered executor (also read by the traces endpoint).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) operator: String,
    pub(crate) instance: u32,
    pub(crate) task_id: String,
    pub(crate) metrics_addr: String,
    pub(crate) ready: bool,
}

type Reading = (Instant, Arc<ExecutorCounters>);

/// Recent readings per task ID.
#[derive(Debug, Clone, Default)]
pub struct ScrapeCache {
    inner: Arc<Mutex<HashMap<String, VecDeque<Reading>>>>,
}

impl ScrapeCache {
    /// The newest reading if it is younger than [`FRESH`], with its base (the newest
    /// reading at least [`MIN_WINDOW`] older than it).
    fn fresh(&self, task: &str, now: Instant) -> Option<(Reading, Option<Reading>)> {
        let map = self.inner.lock().ok()?;
        let readings = map.get(task)?;
        let newest = readings.back()?;
        if now.saturating_duration_since(newest.0) >= FRESH {
            return None;
        }
        let base = readings
            .iter()
            .rev()
            .find(|(t, _)| newest.0.saturating_duration_since(*t) >= MIN_WINDOW)
            .cloned();
        Some((newest.clone(), base))
    }

    /// Records a reading and returns the newest earlier one at least [`MIN_WINDOW`] old.
    fn record(&self, task: &str, at: Instant, counters: Arc<ExecutorCounters>) -> Option<Reading> {
        let Ok(mut map) = self.inner.lock() else {
            return None;
        };
        map.retain(|_, readings| {
            readings
                .back()
                .is_some_and(|(t, _)| at.saturating_duration_since(*t) < MAX_AGE)
        });
        let readings = map.entry(task.to_owned()).or_default();
        while readings
            .front()
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) >= MAX_AGE)
        {
            readings.pop_front();
        }
        let base = readings
            .iter()
            .rev()
            .find(|(t, _)| at.saturating_duration_since(*t) >= MIN_WINDOW)
            .cloned();
        readings.push_back((at, counters));
        while readings.len() > MAX_READINGS {
            readings.pop_front();
        }
        base
    }
}

/// Reads the registered executors of a topology from etcd, at most `max`; the flag says
/// whether more are registered.
pub(crate) async fn targets(
    store: &Store,
    ns: &str,
    name: &str,
    max: usize,
) -> Result<(Vec<Target>, bool), ObserveError> {
    let dir = format!("{}/endpoints/{ns}/{name}/", store.prefix());
    let mut client = store.client();
    let resp = client
        .get(
            dir.as_str(),
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_limit(i64::try_from(max).unwrap_or(i64::MAX)),
            ),
        )
        .await
        .map_err(|e| ObserveError::Unavailable(format!("etcd: {e}")))?;
    if resp.more() {
        tracing::warn!(namespace = %ns, topology = %name, max, "more executors registered than one request reads; the rest are left out");
    }
    let mut out = Vec::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        let Some(rest) = key.strip_prefix(&dir) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [operator, instance, task_id] = parts.as_slice() else {
            continue;
        };
        let Ok(instance) = instance.parse() else {
            continue;
        };
        let Ok(value) = serde_json::from_slice::<EndpointValue>(kv.value()) else {
            tracing::debug!(%key, "endpoint value is not valid JSON; skipped");
            continue;
        };
        out.push(Target {
            operator: (*operator).to_owned(),
            instance,
            task_id: (*task_id).to_owned(),
            metrics_addr: value.metrics_addr,
            ready: value.ready,
        });
    }
    Ok((out, resp.more()))
}

/// GETs `url` from an executor within [`SCRAPE_TIMEOUT`] (body included), reading at
/// most [`MAX_SCRAPE_BYTES`]; a longer answer is counted in `oversized` and logged.
pub(crate) async fn get_capped(
    http: &reqwest::Client,
    url: &str,
    oversized: &Counter,
) -> Result<Vec<u8>, String> {
    let resp = http
        .get(url)
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url} answered {}", resp.status()));
    }
    match read_capped(resp, MAX_SCRAPE_BYTES).await {
        Ok(body) => Ok(body),
        Err(e @ BodyError::TooLarge { .. }) => {
            oversized.inc();
            tracing::warn!(%url, max = MAX_SCRAPE_BYTES, "executor answer too large; ignored");
            Err(format!("GET {url}: {e}"))
        }
        Err(e) => Err(format!("GET {url}: {e}")),
    }
}

/// Scrapes one executor.
async fn scrape_one(
    http: &reqwest::Client,
    addr: &str,
    oversized: &Counter,
) -> Result<ExecutorCounters, String> {
    if addr.is_empty() {
        return Err("no metrics address registered".into());
    }
    let url = format!("http://{addr}/metrics");
    let body = get_capped(http, &url, oversized).await?;
    let text = String::from_utf8_lossy(&body);
    let (samples, errors) = scrape::parse(&text);
    if let Some(first) = errors.first() {
        tracing::debug!(%url, errors = errors.len(), %first, "unparsable metric lines skipped");
    }
    Ok(ExecutorCounters::from_samples(&samples))
}

/// A scrape result: the reading and the base it is compared with.
struct Scraped {
    now: Reading,
    base: Option<Reading>,
}

async fn scrape_all(
    http: &reqwest::Client,
    cache: &ScrapeCache,
    oversized: &Counter,
    targets: &[Target],
    reuse_fresh: bool,
) -> Vec<Result<Scraped, String>> {
    let mut out: Vec<Result<Scraped, String>> = (0..targets.len())
        .map(|_| Err(String::from("not scraped")))
        .collect();
    // Concurrent callers share readings younger than FRESH instead of scraping again.
    let now = Instant::now();
    let mut wanted = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match cache.fresh(&t.task_id, now).filter(|_| reuse_fresh) {
            Some((reading, base)) => out[i] = Ok(Scraped { now: reading, base }),
            None => wanted.push((i, t.metrics_addr.clone())),
        }
    }
    let results: Vec<(usize, Result<ExecutorCounters, String>, Instant)> =
        futures::stream::iter(wanted)
            .map(|(i, addr)| {
                let http = http.clone();
                async move {
                    let r = scrape_one(&http, &addr, oversized).await;
                    (i, r, Instant::now())
                }
            })
            .buffer_unordered(SCRAPE_CONCURRENCY)
            .collect()
            .await;
    for (i, r, at) in results {
        out[i] = r.map(|c| {
            let counters = Arc::new(c);
            let base = cache.record(&targets[i].task_id, at, counters.clone());
            Scraped {
                now: (at, counters),
                base,
            }
        });
    }
    out
}

/// Scrapes the topology's executors and aggregates per operator.
pub async fn topology_metrics(
    store: &Store,
    http: &reqwest::Client,
    cache: &ScrapeCache,
    oversized: &Counter,
    topology: &Topology,
) -> Result<TopologyMetrics, ObserveError> {
    let ns = &topology.metadata.namespace;
    let name = &topology.metadata.name;
    let (targets, truncated) = targets(store, ns, name, MAX_TARGETS).await?;
    let mut scraped = scrape_all(http, cache, oversized, &targets, true).await;

    // Tasks without a usable earlier reading: one more scrape after the minimum window.
    let second: Vec<usize> = scraped
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Ok(s) if s.base.is_none()))
        .map(|(i, _)| i)
        .collect();
    if !second.is_empty() {
        tokio::time::sleep(MIN_WINDOW).await;
        let again: Vec<Target> = second.iter().map(|i| targets[*i].clone()).collect();
        // A fresh reading of another caller may have no base yet: scrape for real.
        let results = scrape_all(http, cache, oversized, &again, false).await;
        for (i, r) in second.into_iter().zip(results) {
            // A task that stopped answering keeps its first reading (totals, no rate).
            if r.is_ok() {
                scraped[i] = r;
            }
        }
    }

    let mut by_operator: BTreeMap<String, Vec<(TaskMetrics, Option<Buckets>)>> = BTreeMap::new();
    for (t, r) in targets.iter().zip(scraped) {
        let (task, window) = match r {
            Ok(s) => task_numbers(t, &s),
            Err(error) => (
                TaskMetrics {
                    task_id: t.task_id.clone(),
                    instance: t.instance,
                    metrics_addr: Some(t.metrics_addr.clone()).filter(|a| !a.is_empty()),
                    ready: Some(t.ready),
                    scrape: ScrapeState::Unreachable,
                    error: Some(error),
                    window_seconds: None,
                    numbers: Numbers::default(),
                    kafka: None,
                },
                None,
            ),
        };
        by_operator
            .entry(t.operator.clone())
            .or_default()
            .push((task, window));
    }

    // Running tasks Mesos knows of that have not registered an endpoint.
    let registered: BTreeSet<&str> = targets.iter().map(|t| t.task_id.as_str()).collect();
    if let Some(status) = &topology.status {
        for op in &status.operators {
            for task in &op.tasks {
                if task.state == "TASK_RUNNING" && !registered.contains(task.task_id.as_str()) {
                    by_operator.entry(op.name.clone()).or_default().push((
                        TaskMetrics {
                            task_id: task.task_id.clone(),
                            instance: task.instance,
                            metrics_addr: None,
                            ready: None,
                            scrape: ScrapeState::NoEndpoint,
                            error: Some("the task has not registered its endpoint in etcd".into()),
                            window_seconds: None,
                            numbers: Numbers::default(),
                            kafka: None,
                        },
                        None,
                    ));
                }
            }
        }
    }

    let mut operators = Vec::new();
    for op in &topology.spec.operators {
        let tasks = by_operator.remove(&op.name).unwrap_or_default();
        operators.push(aggregate(&op.name, op.instances, tasks));
    }
    for (name, tasks) in by_operator {
        operators.push(aggregate(&name, 0, tasks));
    }
    Ok(TopologyMetrics {
        api_version: concord_schemas::API_VERSION.into(),
        kind: "TopologyMetrics".into(),
        metadata: MetricsMeta {
            namespace: ns.clone(),
            name: name.clone(),
        },
        time: Utc::now(),
        operators,
        truncated,
    })
}

fn whole(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// The numbers of one task from its reading and base; also the window's latency buckets.
fn task_numbers(t: &Target, s: &Scraped) -> (TaskMetrics, Option<Buckets>) {
    let (now_at, now) = &s.now;
    let mut numbers = Numbers {
        records_in_total: Some(whole(now.records_in)),
        records_out_total: Some(whole(now.records_out)),
        bytes_in_total: Some(whole(now.bytes_in)),
        bytes_out_total: Some(whole(now.bytes_out)),
        dropped_total: Some(whole(now.dropped)),
        errors_total: Some(whole(now.errors)),
        input_queue_batches: Some(whole(now.input_queue)),
        output_queue_batches: Some(whole(now.output_queue)),
        cpu_percent: now.cpu_percent,
        resident_memory_bytes: now.resident_memory_bytes.map(whole),
        ..Numbers::default()
    };
    let mut window_seconds = None;
    let mut window = None;
    if let Some((base_at, base)) = &s.base {
        let secs = now_at.saturating_duration_since(*base_at).as_secs_f64();
        if secs > 0.0 {
            let rate = |a: f64, b: f64| ((a - b).max(0.0)) / secs;
            numbers.records_in_per_second = Some(rate(now.records_in, base.records_in));
            numbers.records_out_per_second = Some(rate(now.records_out, base.records_out));
            let delta = scrape::bucket_delta(&now.latency, &base.latency);
            numbers.p99_latency_seconds = scrape::quantile(0.99, &delta);
            window = Some(delta);
            window_seconds = Some(secs);
        }
    }
    (
        TaskMetrics {
            task_id: t.task_id.clone(),
            instance: t.instance,
            metrics_addr: Some(t.metrics_addr.clone()),
            ready: Some(t.ready),
            scrape: ScrapeState::Ok,
            error: None,
            window_seconds,
            numbers,
            kafka: kafka_numbers(now),
        },
        window,
    )
}

/// A gauge or counter value as a whole number (`None` when not finite).
fn int(v: f64) -> Option<i64> {
    v.is_finite().then(|| v.round() as i64)
}

/// The Kafka numbers of one reading: the partitions held (assigned = 1) with their
/// offsets and lag, the summed lag and the counters. `None` without Kafka metrics.
pub(crate) fn kafka_numbers(c: &ExecutorCounters) -> Option<KafkaMetrics> {
    if !c.has_kafka() {
        return None;
    }
    let mut k = KafkaMetrics::default();
    for ((topic, partition), p) in &c.kafka_partitions {
        if p.assigned.is_none_or(|a| a < 1.0) {
            continue;
        }
        let committed = p.committed.and_then(int).filter(|o| *o >= 0);
        let end = p.end.and_then(int).filter(|o| *o >= 0);
        let lag = p
            .lag
            .and_then(int)
            .or_else(|| Some(end? - committed?))
            .map(|l| l.max(0));
        if let Some(l) = lag {
            k.lag_records = Some(k.lag_records.unwrap_or(0) + l);
        }
        k.partitions.push(KafkaPartitionLag {
            topic: topic.clone(),
            partition: *partition,
            committed_offset: committed,
            end_offset: end,
            lag_records: lag,
        });
    }
    k.partitions_assigned = k.partitions.len() as u32;
    k.replayed_records_total = c.replayed.map(whole);
    k.produced_total = c.kafka_produced.map(whole);
    k.produce_errors_total = c.kafka_produce_errors.map(whole);
    Some(k)
}

fn add_u64(a: &mut Option<u64>, b: Option<u64>) {
    if let Some(b) = b {
        *a = Some(a.unwrap_or(0) + b);
    }
}

fn add_f64(a: &mut Option<f64>, b: Option<f64>) {
    if let Some(b) = b {
        *a = Some(a.unwrap_or(0.0) + b);
    }
}

/// Sums an operator's tasks.
fn aggregate(
    name: &str,
    desired: u32,
    mut tasks: Vec<(TaskMetrics, Option<Buckets>)>,
) -> OperatorMetrics {
    tasks.sort_by(|a, b| (a.0.instance, &a.0.task_id).cmp(&(b.0.instance, &b.0.task_id)));
    let mut n = Numbers::default();
    let mut latency = Buckets::new();
    let mut reporting = BTreeSet::new();
    let mut unreachable = 0;
    let mut kafka: Option<KafkaMetrics> = None;
    for (t, window) in &tasks {
        if t.scrape != ScrapeState::Ok {
            unreachable += 1;
            continue;
        }
        reporting.insert(t.instance);
        if let Some(k) = &t.kafka {
            kafka.get_or_insert_with(KafkaMetrics::default).add(k);
        }
        let m = &t.numbers;
        add_f64(&mut n.records_in_per_second, m.records_in_per_second);
        add_f64(&mut n.records_out_per_second, m.records_out_per_second);
        add_u64(&mut n.records_in_total, m.records_in_total);
        add_u64(&mut n.records_out_total, m.records_out_total);
        add_u64(&mut n.bytes_in_total, m.bytes_in_total);
        add_u64(&mut n.bytes_out_total, m.bytes_out_total);
        add_u64(&mut n.dropped_total, m.dropped_total);
        add_u64(&mut n.errors_total, m.errors_total);
        add_u64(&mut n.input_queue_batches, m.input_queue_batches);
        add_u64(&mut n.output_queue_batches, m.output_queue_batches);
        add_f64(&mut n.cpu_percent, m.cpu_percent);
        add_u64(&mut n.resident_memory_bytes, m.resident_memory_bytes);
        if let Some(w) = window {
            scrape::merge_buckets(&mut latency, w);
        }
    }
    n.p99_latency_seconds = scrape::quantile(0.99, &latency);
    OperatorMetrics {
        name: name.to_owned(),
        desired,
        instances_reporting: reporting.len() as u32,
        instances_unreachable: unreachable,
        numbers: n,
        kafka,
        tasks: tasks.into_iter().map(|(t, _)| t).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An "executor" on 127.0.0.1 answering `/ok`, `/declared` (a body over the cap with
    /// its length announced), `/endless` (chunks forever, no length) and `/slow` (one
    /// byte now and then); returns its address.
    async fn misbehaving_executor() -> String {
        use axum::body::Body;
        use axum::routing::get;
        let endless = || async {
            let chunk = bytes::Bytes::from(vec![b'#'; 64 * 1024]);
            let stream = futures::stream::repeat_with(move || {
                Ok::<_, std::convert::Infallible>(chunk.clone())
            });
            Body::from_stream(stream)
        };
        let slow = || async {
            let stream = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Some((
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"#")),
                    (),
                ))
            });
            Body::from_stream(stream)
        };
        let app = axum::Router::new()
            .route("/ok", get(|| async { "concord_records_out_total 7\n" }))
            .route(
                "/declared",
                get(|| async { vec![b'#'; MAX_SCRAPE_BYTES + 1] }),
            )
            .route("/endless", get(endless))
            .route("/slow", get(slow));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr.to_string()
    }

    #[tokio::test]
    async fn oversized_and_endless_answers_are_errors_not_buffered() {
        let addr = misbehaving_executor().await;
        let http = reqwest::Client::new();
        let counter = Counter::default();
        let guard = Duration::from_secs(30);
        let get = |path: &str| {
            let url = format!("http://{addr}{path}");
            let (http, counter) = (http.clone(), counter.clone());
            async move {
                tokio::time::timeout(guard, get_capped(&http, &url, &counter))
                    .await
                    .expect("bounded in time")
            }
        };
        assert_eq!(
            get("/ok").await.expect("small answer"),
            b"concord_records_out_total 7\n"
        );
        for path in ["/declared", "/endless"] {
            let err = get(path).await.expect_err(path);
            assert!(err.contains("exceeds the limit of 4194304 bytes"), "{err}");
        }
        assert_eq!(counter.get(), 2, "each oversized answer is counted");
        // A trickle is cut off by the scrape timeout (body included), not waited for.
        let err = get("/slow").await.expect_err("too slow");
        assert!(!err.contains("exceeds"), "{err}");
        assert_eq!(counter.get(), 2);
    }

    fn counters(records_out: f64) -> Arc<ExecutorCounters> {
        Arc::new(ExecutorCounters {
            records_out,
            ..ExecutorCounters::default()
        })
    }

    #[test]
    fn cache_bases_rates_on_a_reading_at_least_the_window_old() {
        let cache = ScrapeCache::default();
        let t0 = Instant::now();
        assert!(cache.record("a", t0, counters(0.0)).is_none());
        // Too soon after the first reading: no base.
        assert!(
            cache
                .record("a", t0 + Duration::from_millis(300), counters(3.0))
                .is_none()
        );
        // The newest reading at least MIN_WINDOW old is the base.
        let (at, base) = cache
            .record("a", t0 + Duration::from_millis(1400), counters(14.0))
            .expect("base");
        assert_eq!(at, t0 + Duration::from_millis(300));
        assert_eq!(base.records_out, 3.0);
        // A reading younger than FRESH is reused, with its own base.
        let (reading, base) = cache
            .fresh("a", t0 + Duration::from_millis(1500))
            .expect("fresh");
        assert_eq!(reading.1.records_out, 14.0);
        assert_eq!(base.map(|b| b.1.records_out), Some(3.0));
        assert!(cache.fresh("a", t0 + Duration::from_millis(1700)).is_none());
        // Other tasks are independent; stale readings expire.
        assert!(
            cache
                .record("b", t0 + Duration::from_secs(2), counters(1.0))
                .is_none()
        );
        assert!(
            cache
                .record("a", t0 + MAX_AGE * 3, counters(99.0))
                .is_none()
        );
    }

    fn reading(text: &str) -> Arc<ExecutorCounters> {
        let (samples, errors) = scrape::parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        Arc::new(ExecutorCounters::from_samples(&samples))
    }

    #[test]
    fn kafka_sources_report_held_partitions_and_operators_sum_lag() {
        let target = |i: u32| Target {
            operator: "src".into(),
            instance: i,
            task_id: format!("t{i}"),
            metrics_addr: "127.0.0.1:1".into(),
            ready: true,
        };
        let t0 = Instant::now();
        let scraped = |c: Arc<ExecutorCounters>| Scraped {
            now: (t0, c),
            base: None,
        };
        // Instance 0: partitions 0 and 2 held, 3 given away (assigned 0).
        let a = task_numbers(&target(0), &scraped(reading(scrape::tests::KAFKA_SOURCE)));
        let k = a.0.kafka.clone().expect("kafka numbers");
        assert_eq!(k.partitions_assigned, 2);
        assert_eq!(
            k.partitions
                .iter()
                .map(|p| (p.partition, p.committed_offset, p.end_offset, p.lag_records))
                .collect::<Vec<_>>(),
            [
                (0, Some(1000), Some(1200), Some(200)),
                (2, Some(250), Some(1250), Some(1000))
            ]
        );
        assert_eq!(k.lag_records, Some(1200));
        assert_eq!(k.replayed_records_total, Some(12));
        // Instance 1 exports no lag gauge: end - committed; no commit yet: no lag.
        let b = task_numbers(
            &target(1),
            &scraped(reading(
                r#"concord_kafka_partition_assigned{topic="clicks",partition="1",operator="src",instance="1"} 1
concord_kafka_committed_offset{topic="clicks",partition="1",operator="src",instance="1"} 40
concord_kafka_end_offset{topic="clicks",partition="1",operator="src",instance="1"} 100
concord_kafka_partition_assigned{topic="other",partition="0",operator="src",instance="1"} 1
concord_kafka_committed_offset{topic="other",partition="0",operator="src",instance="1"} -1001
concord_kafka_end_offset{topic="other",partition="0",operator="src",instance="1"} 5
concord_replayed_records_total{operator="src",instance="1"} 3
"#,
            )),
        );
        let kb = b.0.kafka.clone().expect("kafka numbers");
        assert_eq!(kb.partitions[0].lag_records, Some(60));
        assert_eq!(kb.partitions[1].committed_offset, None);
        assert_eq!(kb.partitions[1].lag_records, None);
        assert_eq!(kb.lag_records, Some(60));
        // A task without Kafka metrics has no `kafka` at all.
        let plain = task_numbers(&target(2), &scraped(counters(5.0)));
        assert!(plain.0.kafka.is_none());

        let op = aggregate("src", 3, vec![a, b, plain]);
        let sum = op.kafka.clone().expect("operator kafka");
        assert_eq!(sum.partitions_assigned, 4);
        assert_eq!(sum.lag_records, Some(1260));
        assert_eq!(sum.replayed_records_total, Some(15));
        assert!(sum.partitions.is_empty());
        let json = serde_json::to_value(&op).expect("json");
        assert_eq!(json["kafka"]["lagRecords"], 1260);
        assert!(json["kafka"].get("partitions").is_none());
        assert_eq!(
            json["tasks"][0]["kafka"]["partitions"][1]["endOffset"],
            1250
        );
        assert!(json["tasks"][2].get("kafka").is_none());
        // Operators without Kafka tasks carry no `kafka`.
        let none = aggregate(
            "gen",
            1,
            vec![task_numbers(&target(0), &scraped(counters(1.0)))],
        );
        assert!(
            serde_json::to_value(&none)
                .expect("json")
                .get("kafka")
                .is_none()
        );
    }

    #[test]
    fn operator_sums_reachable_tasks_only() {
        let target = |i: u32| Target {
            operator: "op".into(),
            instance: i,
            task_id: format!("t{i}"),
            metrics_addr: "127.0.0.1:1".into(),
            ready: true,
        };
        let t0 = Instant::now();
        let scraped = |out: f64| Scraped {
            now: (t0 + Duration::from_secs(2), counters(out)),
            base: Some((t0, counters(0.0))),
        };
        let a = task_numbers(&target(0), &scraped(200.0));
        let b = task_numbers(&target(1), &scraped(100.0));
        assert_eq!(a.0.numbers.records_out_per_second, Some(100.0));
        let down = TaskMetrics {
            task_id: "t2".into(),
            instance: 2,
            scrape: ScrapeState::Unreachable,
            error: Some("timeout".into()),
            ..a.0.clone()
        };
        let op = aggregate("op", 3, vec![b, a, (down, None)]);
        assert_eq!(op.instances_reporting, 2);
        assert_eq!(op.instances_unreachable, 1);
        assert_eq!(op.numbers.records_out_per_second, Some(150.0));
        assert_eq!(op.numbers.records_out_total, Some(300));
        assert_eq!(op.tasks[0].instance, 0);
        let json = serde_json::to_value(&op).expect("json");
        assert_eq!(json["recordsOutPerSecond"], 150.0);
        assert_eq!(json["tasks"][2]["scrape"], "unreachable");
        assert!(json["p99LatencySeconds"].is_null());
    }
}
