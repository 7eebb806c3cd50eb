//! Prometheus / OpenMetrics text parsing and the numbers the controller reads from one
//! executor's `/metrics`.
//!
//! The parser is small on purpose: the controller only reads the exposition of its own
//! executors (prometheus-client's OpenMetrics text), so it needs samples with labels and
//! values, not metadata or exemplars. It still accepts everything the text formats allow
//! on a sample line (escaped label values, `NaN`/`+Inf`, an optional timestamp, an
//! exemplar after `#`) and skips what it does not understand instead of failing, so a
//! newer executor exposing more metrics never breaks the controller.

use std::collections::BTreeMap;

use thiserror::Error;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name including any `_total` / `_bucket` suffix.
    pub name: String,
    /// Labels in the order they appeared.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not a valid sample.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses a whole exposition. Comment lines (`# HELP`, `# TYPE`, `# EOF`, ...) and blank
/// lines are skipped; malformed sample lines are returned as errors beside the samples
/// that did parse, so one bad line costs one metric, not the scrape.
pub fn parse(text: &str) -> (Vec<Sample>, Vec<ParseError>) {
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(s) => samples.push(s),
            Err(reason) => errors.push(ParseError {
                line: i + 1,
                reason,
            }),
        }
    }
    (samples, errors)
}

/// Parses one sample line.
pub fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| "no value after the metric name".to_owned())?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| "missing value".to_owned())
        .and_then(parse_value)?;
    // An optional timestamp, then optionally `# exemplar`: neither is needed.
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Label pairs in order.
type Labels = Vec<(String, String)>;

/// Parses label pairs after `{` up to the closing `}`; returns them and the rest.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or_else(|| "label without '='".to_owned())?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid label name {key:?}"));
        }
        s = s[eq + 1..].trim_start();
        let body = s
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key} value is not quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {key}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated value of label {key}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = body[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label".to_owned());
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("invalid value {v:?}")),
    }
}

/// Cumulative histogram buckets: upper bound -> observations at or below it.
pub type Buckets = BTreeMap<OrderedBound, f64>;

/// A bucket upper bound usable as a map key (`+Inf` sorts last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderedBound(pub f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What the controller reads from one executor's metrics (counters are cumulative).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutorCounters {
    /// `concord_records_in_total`, summed over streams.
    pub records_in: f64,
    /// `concord_records_out_total`, summed over streams.
    pub records_out: f64,
    /// `concord_bytes_in_total`.
    pub bytes_in: f64,
    /// `concord_bytes_out_total`.
    pub bytes_out: f64,
    /// `concord_dropped_records_total`, summed over reasons.
    pub dropped: f64,
    /// `concord_operator_errors_total`.
    pub errors: f64,
    /// `concord_processing_latency_seconds` buckets (cumulative).
    pub latency: Buckets,
    /// `concord_input_queue_batches`.
    pub input_queue: f64,
    /// `concord_output_queue_batches`.
    pub output_queue: f64,
    /// `concord_process_cpu_percent` (since the executor's previous scrape).
    pub cpu_percent: Option<f64>,
    /// `concord_process_resident_memory_bytes`.
    pub resident_memory_bytes: Option<f64>,
    /// `concord_ready` is 1.
    pub ready: Option<bool>,
    /// The `concord_kafka_*` partition gauges of a kafka-source, by (topic, partition).
    pub kafka_partitions: BTreeMap<(String, i32), KafkaPartitionReading>,
    /// `concord_replayed_records_total`.
    pub replayed: Option<f64>,
    /// `concord_kafka_produced_total` (kafka-sink).
    pub kafka_produced: Option<f64>,
    /// `concord_kafka_produce_errors_total` (kafka-sink).
    pub kafka_produce_errors: Option<f64>,
}

/// The gauges of one Kafka partition as one executor exported them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KafkaPartitionReading {
    /// `concord_kafka_partition_assigned` (1 while assigned, 0 after).
    pub assigned: Option<f64>,
    /// `concord_kafka_committed_offset`.
    pub committed: Option<f64>,
    /// `concord_kafka_end_offset` (high watermark).
    pub end: Option<f64>,
    /// `concord_kafka_lag_records`.
    pub lag: Option<f64>,
}

impl ExecutorCounters {
    /// Whether this executor exports any Kafka metric.
    pub fn has_kafka(&self) -> bool {
        !self.kafka_partitions.is_empty()
            || self.replayed.is_some()
            || self.kafka_produced.is_some()
            || self.kafka_produce_errors.is_some()
    }

    fn kafka_gauge(&mut self, s: &Sample) -> Option<&mut Option<f64>> {
        let topic = s.label("topic")?.to_owned();
        let partition = s.label("partition")?.parse().ok()?;
        let p = self.kafka_partitions.entry((topic, partition)).or_default();
        Some(match s.name.as_str() {
            "concord_kafka_partition_assigned" => &mut p.assigned,
            "concord_kafka_committed_offset" => &mut p.committed,
            "concord_kafka_end_offset" => &mut p.end,
            _ => &mut p.lag,
        })
    }
}

fn add_opt(a: &mut Option<f64>, b: f64) {
    *a = Some(a.unwrap_or(0.0) + b);
}

impl ExecutorCounters {
    /// Picks the executor's metrics out of parsed samples; unknown metrics are ignored.
    pub fn from_samples(samples: &[Sample]) -> Self {
        let mut c = Self::default();
        for s in samples {
            if !s.value.is_finite() && !s.name.ends_with("_bucket") {
                continue;
            }
            match s.name.as_str() {
                "concord_records_in_total" | "concord_records_in" => c.records_in += s.value,
                "concord_records_out_total" | "concord_records_out" => c.records_out += s.value,
                "concord_bytes_in_total" | "concord_bytes_in" => c.bytes_in += s.value,
                "concord_bytes_out_total" | "concord_bytes_out" => c.bytes_out += s.value,
                "concord_dropped_records_total" | "concord_dropped_records" => c.dropped += s.value,
                "concord_operator_errors_total" | "concord_operator_errors" => c.errors += s.value,
                "concord_processing_latency_seconds_bucket" => {
                    if let Some(le) = s.label("le").and_then(|v| parse_value(v).ok()) {
                        *c.latency.entry(OrderedBound(le)).or_default() += s.value;
                    }
                }
                "concord_input_queue_batches" => c.input_queue += s.value,
                "concord_output_queue_batches" => c.output_queue += s.value,
                "concord_process_cpu_percent" => c.cpu_percent = Some(s.value),
                "concord_process_resident_memory_bytes" => c.resident_memory_bytes = Some(s.value),
                "concord_ready" => c.ready = Some(s.value >= 1.0),
                "concord_kafka_partition_assigned"
                | "concord_kafka_committed_offset"
                | "concord_kafka_end_offset"
                | "concord_kafka_lag_records" => {
                    // Samples without a topic or a numeric partition are skipped.
                    if let Some(slot) = c.kafka_gauge(s) {
                        *slot = Some(s.value);
                    }
                }
                "concord_replayed_records_total" | "concord_replayed_records" => {
                    add_opt(&mut c.replayed, s.value);
                }
                "concord_kafka_produced_total" | "concord_kafka_produced" => {
                    add_opt(&mut c.kafka_produced, s.value);
                }
                "concord_kafka_produce_errors_total" | "concord_kafka_produce_errors" => {
                    add_opt(&mut c.kafka_produce_errors, s.value);
                }
                _ => {}
            }
        }
        c
    }
}

/// Adds `b`'s buckets into `a` (histograms of identical layout, as all executors have).
pub fn merge_buckets(a: &mut Buckets, b: &Buckets) {
    for (le, n) in b {
        *a.entry(*le).or_default() += n;
    }
}

/// `now - before` per bucket (observations made between two scrapes); negative counts
/// (a counter reset) clamp to zero.
pub fn bucket_delta(now: &Buckets, before: &Buckets) -> Buckets {
    now.iter()
        .map(|(le, n)| {
            let prev = before.get(le).copied().unwrap_or(0.0);
            (*le, (n - prev).max(0.0))
        })
        .collect()
}

/// The `q` quantile (0..=1) of cumulative buckets, interpolated linearly inside the
/// bucket that holds it, as Prometheus' `histogram_quantile` does. `None` without
/// observations. A quantile in the `+Inf` bucket answers the highest finite bound.
pub fn quantile(q: f64, buckets: &Buckets) -> Option<f64> {
    let total = buckets
        .iter()
        .next_back()
        .map(|(_, n)| *n)
        .filter(|n| *n > 0.0)?;
    let rank = q.clamp(0.0, 1.0) * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (le, count) in buckets {
        if *count >= rank {
            if le.0.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            if in_bucket <= 0.0 {
                return Some(le.0);
            }
            return Some(lower_bound + (le.0 - lower_bound) * (rank - lower_count) / in_bucket);
        }
        lower_bound = le.0;
        lower_count = *count;
    }
    Some(lower_bound)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP concord_records_in Records received.
# TYPE concord_records_in counter
concord_records_in_total{operator="count",instance="0",stream="gen"} 120
concord_records_in_total{operator="count",instance="0",stream="other"} 30
# TYPE concord_records_out counter
concord_records_out_total{operator="count",instance="0",stream="default"} 75
concord_dropped_records_total{operator="count",instance="0",reason="no_route"} 2
concord_dropped_records_total{operator="count",instance="0",reason="downstream_gone"} 3
# TYPE concord_processing_latency_seconds histogram
concord_processing_latency_seconds_sum{operator="count",instance="0"} 0.5
concord_processing_latency_seconds_count{operator="count",instance="0"} 100
concord_processing_latency_seconds_bucket{le="0.001",operator="count",instance="0"} 50
concord_processing_latency_seconds_bucket{le="0.002",operator="count",instance="0"} 90
concord_processing_latency_seconds_bucket{le="0.004",operator="count",instance="0"} 100
concord_processing_latency_seconds_bucket{le="+Inf",operator="count",instance="0"} 100
concord_input_queue_batches{operator="count",instance="0"} 4
concord_process_cpu_percent{operator="count",instance="0"} 12.5
concord_process_resident_memory_bytes{operator="count",instance="0"} 1048576
concord_ready{operator="count",instance="0"} 1
# EOF
"#;

    #[test]
    fn parses_prometheus_client_output() {
        let (samples, errors) = parse(EXPOSITION);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(samples.len(), 15);
        assert_eq!(samples[0].name, "concord_records_in_total");
        assert_eq!(samples[0].label("stream"), Some("gen"));
        assert_eq!(samples[0].value, 120.0);
        let c = ExecutorCounters::from_samples(&samples);
        assert_eq!(c.records_in, 150.0);
        assert_eq!(c.records_out, 75.0);
        assert_eq!(c.dropped, 5.0);
        assert_eq!(c.input_queue, 4.0);
        assert_eq!(c.cpu_percent, Some(12.5));
        assert_eq!(c.resident_memory_bytes, Some(1_048_576.0));
        assert_eq!(c.ready, Some(true));
        assert_eq!(c.latency.len(), 4);
        assert_eq!(c.latency.get(&OrderedBound(f64::INFINITY)), Some(&100.0));
    }

    /// What a kafka-source executor exports (labels as prometheus-client writes them:
    /// the metric's own, then the registry's `operator` and `instance`).
    pub(crate) const KAFKA_SOURCE: &str = r#"# TYPE concord_kafka_partition_assigned gauge
concord_kafka_partition_assigned{topic="clicks",partition="0",operator="src",instance="0"} 1
concord_kafka_partition_assigned{topic="clicks",partition="2",operator="src",instance="0"} 1
concord_kafka_partition_assigned{topic="clicks",partition="3",operator="src",instance="0"} 0
concord_kafka_committed_offset{topic="clicks",partition="0",operator="src",instance="0"} 1000
concord_kafka_committed_offset{topic="clicks",partition="2",operator="src",instance="0"} 250
concord_kafka_committed_offset{topic="clicks",partition="3",operator="src",instance="0"} 7
concord_kafka_end_offset{topic="clicks",partition="0",operator="src",instance="0"} 1200
concord_kafka_end_offset{topic="clicks",partition="2",operator="src",instance="0"} 1250
concord_kafka_end_offset{topic="clicks",partition="3",operator="src",instance="0"} 9
concord_kafka_lag_records{topic="clicks",partition="0",operator="src",instance="0"} 200
concord_kafka_lag_records{topic="clicks",partition="2",operator="src",instance="0"} 1000
concord_kafka_lag_records{topic="clicks",partition="3",operator="src",instance="0"} 2
concord_kafka_lag_records{topic="clicks",operator="src",instance="0"} 5
concord_kafka_lag_records{topic="clicks",partition="x",operator="src",instance="0"} 5
# TYPE concord_replayed_records counter
concord_replayed_records_total{operator="src",instance="0"} 12
concord_records_out_total{operator="src",instance="0",stream="default"} 4000
# EOF
"#;

    #[test]
    fn kafka_source_gauges_are_read_per_partition() {
        let (samples, errors) = parse(KAFKA_SOURCE);
        assert!(errors.is_empty(), "{errors:?}");
        let c = ExecutorCounters::from_samples(&samples);
        assert!(c.has_kafka());
        assert_eq!(c.kafka_partitions.len(), 3, "{:?}", c.kafka_partitions);
        let p2 = &c.kafka_partitions[&("clicks".to_owned(), 2)];
        assert_eq!(p2.assigned, Some(1.0));
        assert_eq!(p2.committed, Some(250.0));
        assert_eq!(p2.end, Some(1250.0));
        assert_eq!(p2.lag, Some(1000.0));
        assert_eq!(
            c.kafka_partitions[&("clicks".to_owned(), 3)].assigned,
            Some(0.0)
        );
        assert_eq!(c.replayed, Some(12.0));
        assert_eq!(c.kafka_produced, None);
        assert_eq!(c.records_out, 4000.0);
        // A sink's counters; an executor without Kafka has none of it.
        let (samples, _) = parse(
            "concord_kafka_produced_total{operator=\"out\",instance=\"1\"} 900\nconcord_kafka_produce_errors_total{operator=\"out\",instance=\"1\"} 3\n",
        );
        let c = ExecutorCounters::from_samples(&samples);
        assert_eq!(
            (c.kafka_produced, c.kafka_produce_errors),
            (Some(900.0), Some(3.0))
        );
        let (samples, _) = parse(EXPOSITION);
        assert!(!ExecutorCounters::from_samples(&samples).has_kafka());
    }

    #[test]
    fn label_values_with_escapes_and_odd_spacing() {
        let s = parse_line(r#"m{a="x\"y",b="back\\slash", c="new\nline",} 1.5e3 1700000000000"#)
            .expect("parses");
        assert_eq!(s.label("a"), Some("x\"y"));
        assert_eq!(s.label("b"), Some("back\\slash"));
        assert_eq!(s.label("c"), Some("new\nline"));
        assert_eq!(s.value, 1500.0);
        let s = parse_line("plain_metric 7").expect("parses");
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 7.0);
        let s = parse_line(r#"m{l="a,}b"} NaN"#).expect("parses");
        assert_eq!(s.label("l"), Some("a,}b"));
        assert!(s.value.is_nan());
        let s = parse_line(r#"m{le="+Inf"} +Inf # {trace_id="x"} 1"#).expect("exemplar");
        assert!(s.value.is_infinite());
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let text = "ok 1\nbroken{a=\"x} 2\nnovalue\n9bad 1\nm{a=unquoted} 1\nm abc\nok2 2\n";
        let (samples, errors) = parse(text);
        assert_eq!(
            samples.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["ok", "ok2"]
        );
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [2, 3, 4, 5, 6]
        );
    }

    fn buckets(pairs: &[(f64, f64)]) -> Buckets {
        pairs
            .iter()
            .map(|(le, n)| (OrderedBound(*le), *n))
            .collect()
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let b = buckets(&[
            (1.0, 50.0),
            (2.0, 90.0),
            (4.0, 100.0),
            (f64::INFINITY, 100.0),
        ]);
        assert_eq!(quantile(0.5, &b), Some(1.0));
        // rank 99 lies 9/10 of the way through the (2, 4] bucket.
        let p99 = quantile(0.99, &b).expect("p99");
        assert!((p99 - 3.8).abs() < 1e-9, "{p99}");
        // Observations beyond the last finite bound answer that bound.
        let b = buckets(&[(1.0, 1.0), (f64::INFINITY, 10.0)]);
        assert_eq!(quantile(0.99, &b), Some(1.0));
        assert_eq!(quantile(0.99, &buckets(&[(1.0, 0.0)])), None);
        assert_eq!(quantile(0.99, &Buckets::new()), None);
    }

    #[test]
    fn deltas_and_merges() {
        let before = buckets(&[(1.0, 10.0), (f64::INFINITY, 20.0)]);
        let now = buckets(&[(1.0, 15.0), (f64::INFINITY, 40.0)]);
        let d = bucket_delta(&now, &before);
        assert_eq!(d, buckets(&[(1.0, 5.0), (f64::INFINITY, 20.0)]));
        let reset = bucket_delta(&before, &now);
        assert_eq!(reset, buckets(&[(1.0, 0.0), (f64::INFINITY, 0.0)]));
        let mut sum = d.clone();
        merge_buckets(&mut sum, &d);
        assert_eq!(sum, buckets(&[(1.0, 10.0), (f64::INFINITY, 40.0)]));
    }
}
