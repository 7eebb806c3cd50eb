//! Prometheus metrics of one executor, plus process CPU (the kernel's process CPU clock,
//! `/proc/self/stat` as a fallback) and memory (`/proc/self/status`).

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `reason` of `tcp-source` lines longer than its `maxLineBytes`.
pub const DROPPED_LINE_TOO_LONG: &str = "line_too_long";
/// `reason` of records the built-in `sink` gave up writing to its target.
pub const DROPPED_SINK_ERROR: &str = "sink_error";
/// `reason` of records lost in input batches that could not be decoded.
pub const DROPPED_MALFORMED: &str = "malformed";
/// `reason` of records still queued for an operator when it stopped.
pub const DROPPED_SHUTDOWN: &str = "shutdown";
/// Label set: a list of name/value pairs.
pub type Labels = Vec<(String, String)>;

/// Metrics of `kafka-source` and `kafka-sink`, labelled by `topic` and `partition`
/// where they are per partition.
#[derive(Default, Clone)]
pub struct KafkaMetrics {
    /// 1 while the partition is assigned to this instance, 0 after.
    pub assigned: Family<Labels, Gauge>,
    /// Offset committed for the partition (the next one to read after a restart).
    pub committed: Family<Labels, Gauge>,
    /// High watermark from the broker's fetch responses.
    pub end: Family<Labels, Gauge>,
    /// `end - committed`.
    pub lag: Family<Labels, Gauge>,
    /// Records read again after a rewind (at-least-once replays).
    pub replayed: Counter,
    /// Records the sink's producer had delivered (acknowledged by the broker).
    pub produced: Counter,
    /// Records the sink's producer failed to deliver.
    pub produce_errors: Counter,
}

impl KafkaMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "concord_kafka_partition_assigned",
            "1 while the partition is assigned to this instance",
            self.assigned.clone(),
        );
        registry.register(
            "concord_kafka_committed_offset",
            "Committed offset (next to read)",
            self.committed.clone(),
        );
        registry.register(
            "concord_kafka_end_offset",
            "High watermark of the partition",
            self.end.clone(),
        );
        registry.register(
            "concord_kafka_lag_records",
            "End offset minus committed offset",
            self.lag.clone(),
        );
        registry.register(
            "concord_replayed_records",
            "Records read again after a rewind",
            self.replayed.clone(),
        );
        registry.register(
            "concord_kafka_produced",
            "Records delivered to Kafka",
            self.produced.clone(),
        );
        registry.register(
            "concord_kafka_produce_errors",
            "Records Kafka did not take",
            self.produce_errors.clone(),
        );
    }

    /// Labels of one partition.
    pub fn partition(topic: &str, partition: i32) -> Labels {
        vec![
            ("topic".to_owned(), topic.to_owned()),
            ("partition".to_owned(), partition.to_string()),
        ]
    }
}

/// All metrics of an executor.
pub struct Metrics {
    registry: Registry,
    /// Records received per upstream stream.
    pub records_in: Family<Labels, Counter>,
    /// Payload bytes received per upstream stream.
    pub bytes_in: Family<Labels, Counter>,
    /// Records produced per output stream.
    pub records_out: Family<Labels, Counter>,
    /// Payload bytes produced per output stream.
    pub bytes_out: Family<Labels, Counter>,
    /// Records dropped, by reason (`no_route`, `downstream_gone`, `operator_error`,
    /// `line_too_long`, `sink_error`, `malformed`).
    pub dropped: Family<Labels, Counter>,
    /// Data-plane connections refused for failing authentication, by `direction` and
    /// `reason` ([`crate::auth::AUTH_FAILURES_METRIC`]).
    pub dataplane_auth_failures: Family<Labels, Counter>,
    /// Operator callbacks that returned an error.
    pub errors: Counter,
    /// Records an operator failed on, by `action` (`skipped`, `dead_lettered`).
    pub failed_records: Family<Labels, Counter>,
    /// Restarts of a process operator's child after it died.
    pub process_restarts: Counter,
    /// At-least-once markers answered, by `result` (`acked`, `failed`).
    pub markers: Family<Labels, Counter>,
    /// Kafka sources and sinks.
    pub kafka: KafkaMetrics,
    /// Input batches processed (each one observation of `processing_latency`).
    pub input_batches: Counter,
    /// Time from a batch arriving to its processing finishing, seconds.
    pub processing_latency: Histogram,
    /// Time from a record's event time to its processing here, seconds.
    pub e2e_latency: Histogram,
    /// Batches waiting in the input queue.
    pub input_queue: Gauge,
    /// Batches waiting in output queues (all downstreams).
    pub output_queue: Gauge,
    /// Connected downstream instances.
    pub downstreams: Gauge,
    /// 1 when ready.
    pub ready: Gauge,
    /// CPU used by this process since the previous scrape, percent of one core.
    pub cpu_percent: Gauge<f64, AtomicU64>,
    /// CPU seconds used by this process.
    pub cpu_seconds: Gauge<f64, AtomicU64>,
    /// Resident set size, bytes.
    pub resident_memory: Gauge,
    last_cpu: Mutex<Option<(Instant, f64)>>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new(operator: &str, instance: u32) -> Self {
        let mut registry = Registry::with_labels(
            [
                (
                    std::borrow::Cow::Borrowed("operator"),
                    std::borrow::Cow::Owned(operator.to_owned()),
                ),
                (
                    std::borrow::Cow::Borrowed("instance"),
                    std::borrow::Cow::Owned(instance.to_string()),
                ),
            ]
            .into_iter(),
        );
        let m = Self {
            records_in: Family::default(),
            bytes_in: Family::default(),
            records_out: Family::default(),
            bytes_out: Family::default(),
            dropped: Family::default(),
            dataplane_auth_failures: Family::default(),
            errors: Counter::default(),
            markers: Family::default(),
            failed_records: Family::default(),
            process_restarts: Counter::default(),
            kafka: KafkaMetrics::default(),
            input_batches: Counter::default(),
            processing_latency: Histogram::new(exponential_buckets(1e-6, 2.0, 24)),
            e2e_latency: Histogram::new(exponential_buckets(1e-5, 2.0, 24)),
            input_queue: Gauge::default(),
            output_queue: Gauge::default(),
            downstreams: Gauge::default(),
            ready: Gauge::default(),
            cpu_percent: Gauge::default(),
            cpu_seconds: Gauge::default(),
            resident_memory: Gauge::default(),
            last_cpu: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "concord_records_in",
            "Records received",
            m.records_in.clone(),
        );
        registry.register(
            "concord_bytes_in",
            "Payload bytes received",
            m.bytes_in.clone(),
        );
        registry.register(
            "concord_records_out",
            "Records produced",
            m.records_out.clone(),
        );
        registry.register(
            "concord_bytes_out",
            "Payload bytes produced",
            m.bytes_out.clone(),
        );
        registry.register(
            "concord_dropped_records",
            "Records dropped",
            m.dropped.clone(),
        );
        registry.register(
            crate::auth::AUTH_FAILURES_METRIC,
            "Data-plane connections refused for failing authentication",
            m.dataplane_auth_failures.clone(),
        );
        registry.register(
            "concord_operator_errors",
            "Failed callbacks",
            m.errors.clone(),
        );
        registry.register(
            "concord_markers",
            "At-least-once markers answered, by result",
            m.markers.clone(),
        );
        registry.register(
            "concord_failed_records",
            "Records the operator failed on, by action",
            m.failed_records.clone(),
        );
        registry.register(
            "concord_process_restarts",
            "Restarts of the operator process after it died",
            m.process_restarts.clone(),
        );
        m.kafka.register(&mut registry);
        registry.register(
            "concord_input_batches",
            "Input batches processed",
            m.input_batches.clone(),
        );
        registry.register(
            "concord_processing_latency_seconds",
            "Batch arrival to processed",
            m.processing_latency.clone(),
        );
        registry.register(
            "concord_end_to_end_latency_seconds",
            "Event time to processed here",
            m.e2e_latency.clone(),
        );
        registry.register(
            "concord_input_queue_batches",
            "Input queue depth",
            m.input_queue.clone(),
        );
        registry.register(
            "concord_output_queue_batches",
            "Output queue depth",
            m.output_queue.clone(),
        );
        registry.register(
            "concord_downstream_instances",
            "Downstream connections",
            m.downstreams.clone(),
        );
        registry.register("concord_ready", "1 when ready", m.ready.clone());
        registry.register(
            "concord_process_cpu_percent",
            "CPU percent",
            m.cpu_percent.clone(),
        );
        registry.register(
            "concord_process_cpu_seconds",
            "CPU seconds",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "concord_process_resident_memory_bytes",
            "Resident memory",
            m.resident_memory.clone(),
        );
        Self { registry, ..m }
    }

    /// Counter of failed records handled with `action` (`skipped`, `dead_lettered`).
    pub fn failed_records(&self, action: &str) -> Counter {
        self.failed_records
            .get_or_create(&vec![("action".to_owned(), action.to_owned())])
            .clone()
    }

    /// Counter of records dropped for lack of any downstream instance.
    pub fn dropped_no_route(&self) -> Counter {
        self.dropped
            .get_or_create(&vec![("reason".to_owned(), "no_route".to_owned())])
            .clone()
    }

    /// Counter of records dropped because a downstream could not be reached.
    pub fn dropped_downstream_gone(&self) -> Counter {
        self.dropped
            .get_or_create(&vec![("reason".to_owned(), "downstream_gone".to_owned())])
            .clone()
    }

    /// Counter of records dropped for `reason` (a `DROPPED_*` label value).
    pub fn dropped_for(&self, reason: &str) -> Counter {
        self.dropped
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .clone()
    }

    /// Refreshes process gauges and renders the Prometheus text format.
    pub fn render(&self) -> String {
        self.refresh_process();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::warn!("metrics encoding failed");
        }
        out
    }

    fn refresh_process(&self) {
        let usage = read_proc_self();
        if let Some(rss) = usage.rss_bytes {
            self.resident_memory.set(rss as i64);
        }
        // The process CPU clock, not /proc's 10 ms ticks: scrapes a few ms apart would
        // otherwise see CPU percent jump between 0 and several hundred.
        if let Some(cpu) = crate::clock::process_cpu_seconds().or(usage.cpu_seconds) {
            self.cpu_seconds.set(cpu);
            let now = Instant::now();
            if let Ok(mut last) = self.last_cpu.lock() {
                if let Some((t, c)) = *last {
                    let dt = now.duration_since(t).as_secs_f64();
                    if dt > 0.0 {
                        self.cpu_percent.set(100.0 * (cpu - c) / dt);
                    }
                }
                *last = Some((now, cpu));
            }
        }
    }
}

/// CPU and memory of a process as read from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcUsage {
    /// User + system CPU seconds.
    pub cpu_seconds: Option<f64>,
    /// Current resident set size.
    pub rss_bytes: Option<u64>,
    /// Peak resident set size (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
}

/// Reads CPU and memory of this process.
pub fn read_proc_self() -> ProcUsage {
    read_proc("self")
}

/// Reads CPU and memory of process `pid` (`"self"` for this one).
pub fn read_proc(pid: &str) -> ProcUsage {
    let mut u = ProcUsage::default();
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
    {
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state is field 3; utime 14 and stime 15 (1-based overall).
        if let (Some(ut), Some(st)) = (f.get(11), f.get(12))
            && let (Ok(ut), Ok(st)) = (ut.parse::<f64>(), st.parse::<f64>())
        {
            u.cpu_seconds = Some((ut + st) / clock_ticks());
        }
    }
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let kb = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|v| v * 1024)
            };
            if line.starts_with("VmRSS:") {
                u.rss_bytes = kb(line);
            } else if line.starts_with("VmHWM:") {
                u.peak_rss_bytes = kb(line);
            }
        }
    }
    u
}

fn clock_ticks() -> f64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every mainstream platform.
    100.0
}
