//! `kafka-source`: reads topics as a member of a consumer group.
//!
//! Partitions are spread over the operator's instances by the group protocol: when the
//! operator is scaled, the group rebalances (each partition is revoked from its old
//! reader before it is assigned to the new one), and other operators are not involved.
//! A reader thread polls the consumer and injects records into the operator's input;
//! `process_record` emits them on the operator thread.
//!
//! Under at-most-once, offsets are committed automatically as records are read. Under
//! at-least-once, the reader sends a marker behind what it read every
//! `checkpointIntervalMs`, commits an epoch's offsets only once its marker is
//! acknowledged by the whole DAG downstream, and rewinds to the last committed offsets
//! when a marker fails or times out (`docs/delivery.md`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_sdk::{Config, Context, Metadata, Operator, OperatorError, Record};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, util::Timeout};

use super::offsets::{AckAction, OffsetTracker, Tp};
use super::{client_config, topics, user_settings};
use crate::delivery::AckTo;
use crate::metrics::KafkaMetrics;
use crate::operators::{BuiltinEnv, OUT, meta};
use crate::runtime::{Ingest, RuntimeState};

/// Most records injected as one input batch.
const BATCH: usize = 1024;
/// Most markers in flight before the reader waits for answers.
const MAX_IN_FLIGHT: usize = 64;

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartFrom {
    Earliest,
    Latest,
    /// Only committed offsets; a partition without one is a problem.
    Committed,
}

struct Settings {
    topics: Vec<String>,
    group: String,
    start_from: StartFrom,
    session_timeout_ms: u64,
    checkpoint_interval: Duration,
    ack_timeout: Duration,
}

impl Settings {
    fn from_config(c: &Config, env: &BuiltinEnv) -> Result<Self, OperatorError> {
        let start_from = match c.str("startFrom")?.as_deref() {
            None | Some("earliest") => StartFrom::Earliest,
            Some("latest") => StartFrom::Latest,
            Some("committed") => StartFrom::Committed,
            Some(other) => {
                return Err(OperatorError::msg(format!(
                    "config.startFrom: expected earliest, latest or committed, got `{other}`"
                )));
            }
        };
        Ok(Self {
            topics: topics(c)?,
            group: c.str("group")?.unwrap_or_else(|| {
                format!(
                    "concord.{}.{}.{}",
                    env.namespace, env.topology, env.operator
                )
            }),
            start_from,
            session_timeout_ms: c.u64("sessionTimeoutMs")?.unwrap_or(6000),
            checkpoint_interval: Duration::from_millis(
                c.u64("checkpointIntervalMs")?.unwrap_or(200).max(10),
            ),
            ack_timeout: Duration::from_millis(c.u64("ackTimeoutMs")?.unwrap_or(30_000).max(100)),
        })
    }
}

/// Callbacks librdkafka makes from inside `poll`, on the reader thread.
struct SourceContext {
    state: Arc<RuntimeState>,
    metrics: KafkaMetrics,
    assigned: Mutex<BTreeSet<Tp>>,
    revoked: Mutex<Vec<Tp>>,
    /// High watermark and committed offset per partition, from statistics.
    watermarks: Mutex<HashMap<Tp, (i64, i64)>>,
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, %reason, "kafka client error");
        self.state.set_problem(Some(format!("kafka: {reason}")));
    }

    fn stats(&self, statistics: Statistics) {
        let Ok(mut w) = self.watermarks.lock() else {
            return;
        };
        for (topic, t) in statistics.topics {
            for (p, part) in t.partitions {
                if p >= 0 && part.hi_offset >= 0 {
                    w.insert((topic.clone(), p), (part.hi_offset, part.committed_offset));
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let (Ok(mut assigned), Ok(mut revoked)) = (self.assigned.lock(), self.revoked.lock())
            else {
                return;
            };
            for e in tpl.elements() {
                let tp = (e.topic().to_owned(), e.partition());
                self.metrics
                    .assigned
                    .get_or_create(&KafkaMetrics::partition(&tp.0, tp.1))
                    .set(0);
                assigned.remove(&tp);
                revoked.push(tp);
            }
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Ok(mut assigned) = self.assigned.lock() {
                    for e in tpl.elements() {
                        let tp = (e.topic().to_owned(), e.partition());
                        self.metrics
                            .assigned
                            .get_or_create(&KafkaMetrics::partition(&tp.0, tp.1))
                            .set(1);
                        assigned.insert(tp);
                    }
                }
                let list: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = %list.join(","), "partitions assigned");
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance failed");
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The `kafka-source` operator.
pub struct KafkaSource {
    env: BuiltinEnv,
    stop: Arc<AtomicBool>,
}

impl KafkaSource {
    /// Unstarted; `init` connects.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self {
            env: env.clone(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Operator for KafkaSource {
    fn metadata(&self) -> Metadata {
        meta("kafka-source", false)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let settings = Settings::from_config(ctx.config(), &self.env)?;
        let mut cfg = client_config(ctx.config(), &self.env.task_id)?;
        cfg.set("group.id", &settings.group)
            .set(
                "session.timeout.ms",
                settings.session_timeout_ms.to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (settings.session_timeout_ms / 3).max(100).to_string(),
            )
            .set(
                "auto.offset.reset",
                match settings.start_from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                    StartFrom::Committed => "error",
                },
            )
            .set("statistics.interval.ms", "1000")
            // Records reach the operator within ~50 ms of their arrival at the broker
            // (librdkafka's default long poll is 500 ms).
            .set("fetch.wait.max.ms", "50")
            .set("enable.partition.eof", "false");
        user_settings(&mut cfg, ctx.config())?;
        // What the delivery guarantee rests on is not the user's to override.
        if self.env.at_least_once {
            cfg.set("enable.auto.commit", "false");
        } else {
            cfg.set("enable.auto.commit", "true");
            if cfg.get("auto.commit.interval.ms").is_none() {
                cfg.set("auto.commit.interval.ms", "1000");
            }
        }
        let context = SourceContext {
            state: self.env.state.clone(),
            metrics: self.env.metrics.kafka.clone(),
            assigned: Mutex::new(BTreeSet::new()),
            revoked: Mutex::new(Vec::new()),
            watermarks: Mutex::new(HashMap::new()),
        };
        let consumer: BaseConsumer<SourceContext> = cfg
            .create_with_context(context)
            .map_err(|e| OperatorError::msg(format!("kafka consumer: {e}")))?;
        let names: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| OperatorError::msg(format!("subscribe to {}: {e}", names.join(","))))?;
        tracing::info!(topics = %names.join(","), group = %settings.group, at_least_once = self.env.at_least_once, "kafka-source subscribed");
        let reader = Reader {
            consumer,
            settings,
            ingest: self.env.ingest.clone(),
            stop: self.stop.clone(),
            metrics: self.env.metrics.kafka.clone(),
            state: self.env.state.clone(),
            at_least_once: self.env.at_least_once,
            tracker: OffsetTracker::default(),
            committed: BTreeMap::new(),
        };
        std::thread::Builder::new()
            .name("kafka-source".into())
            .spawn(move || reader.run())
            .map_err(|e| OperatorError::msg(format!("spawn: {e}")))?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        ctx.produce_at(OUT, &record.key, &record.value, record.event_time);
        Ok(())
    }

    fn destroy(&mut self) {
        // The reader leaves the group when it sees this (or when the input closes).
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Reader {
    consumer: BaseConsumer<SourceContext>,
    settings: Settings,
    ingest: Ingest,
    stop: Arc<AtomicBool>,
    metrics: KafkaMetrics,
    state: Arc<RuntimeState>,
    at_least_once: bool,
    tracker: OffsetTracker,
    /// Offsets committed by this reader (at-least-once).
    committed: BTreeMap<Tp, i64>,
}

impl Reader {
    fn run(mut self) {
        let (ack_tx, ack_rx) = channel();
        let mut last_mark = Instant::now();
        let mut last_gauges = Instant::now();
        let mut last_health = Instant::now();
        let mut backoff = Duration::from_millis(200);
        while !self.stop.load(Ordering::Relaxed) {
            let (batch, error) = self.poll_batch();
            if let Some(e) = error {
                self.state.set_problem(Some(e));
            }
            if !batch.is_empty() && !self.ingest.send(batch) {
                break;
            }
            self.forget_revoked();
            if self.at_least_once {
                let mut rewound = false;
                while let Ok((seq, ok)) = ack_rx.try_recv() {
                    let action = self.tracker.ack(seq, ok);
                    rewound |= matches!(action, AckAction::Rewind { .. });
                    if ok && !rewound {
                        backoff = Duration::from_millis(200);
                    }
                    self.apply(action);
                }
                if !rewound
                    && self
                        .tracker
                        .timed_out(Instant::now(), self.settings.ack_timeout)
                {
                    tracing::warn!(
                        timeout_ms = self.settings.ack_timeout.as_millis() as u64,
                        "marker not acknowledged in time; rewinding"
                    );
                    let action = self.tracker.rewind();
                    self.apply(action);
                    rewound = true;
                }
                if rewound {
                    self.pause(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                } else if self.tracker.has_unmarked()
                    && last_mark.elapsed() >= self.settings.checkpoint_interval
                    && self.tracker.in_flight() < MAX_IN_FLIGHT
                {
                    last_mark = Instant::now();
                    let seq = self.tracker.mark(last_mark);
                    if !self.ingest.send_marker(AckTo::Local {
                        seq,
                        reply: ack_tx.clone(),
                    }) {
                        break;
                    }
                }
            }
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = Instant::now();
                self.update_gauges();
            }
            let every = if self.state.problem().is_some() {
                2
            } else {
                10
            };
            if last_health.elapsed() >= Duration::from_secs(every) {
                last_health = Instant::now();
                self.check_health();
            }
        }
        drop(ack_rx);
        tracing::info!("kafka-source leaving its group");
        self.consumer.unsubscribe();
    }

    /// Polls until a batch is full or nothing more is waiting.
    fn poll_batch(&mut self) -> (Vec<Record>, Option<String>) {
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(100);
        while batch.len() < BATCH {
            match self.consumer.poll(Timeout::After(wait)) {
                None => break,
                Some(Ok(m)) => {
                    let tp = (m.topic().to_owned(), m.partition());
                    if self.at_least_once {
                        self.tracker.read(&tp, m.offset());
                    }
                    let event_time = m
                        .timestamp()
                        .to_millis()
                        .filter(|t| *t > 0)
                        .map(|t| t as u64)
                        .unwrap_or_else(crate::clock::wall_ms);
                    batch.push(Record::new(
                        Bytes::copy_from_slice(m.key().unwrap_or_default()),
                        Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                        event_time,
                    ));
                    wait = Duration::ZERO;
                }
                Some(Err(e)) => {
                    return (batch, Some(describe_error(&e, &self.settings.topics)));
                }
            }
        }
        if !batch.is_empty() && self.state.problem().is_some() {
            self.state.set_problem(None);
        }
        (batch, None)
    }

    fn forget_revoked(&mut self) {
        let revoked = match self.consumer.context().revoked.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(_) => return,
        };
        for tp in revoked {
            self.tracker.revoke(&tp);
            self.committed.remove(&tp);
        }
    }

    fn apply(&mut self, action: AckAction) {
        match action {
            AckAction::None => {}
            AckAction::Commit(offsets) => {
                let held = self.held();
                let mut tpl = TopicPartitionList::new();
                for ((topic, p), off) in &offsets {
                    if held.contains(&(topic.clone(), *p)) {
                        let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*off));
                    }
                }
                if tpl.count() == 0 {
                    return;
                }
                match self
                    .consumer
                    .commit(&tpl, rdkafka::consumer::CommitMode::Async)
                {
                    Ok(()) => {
                        for e in tpl.elements() {
                            if let Offset::Offset(o) = e.offset() {
                                self.committed
                                    .insert((e.topic().to_owned(), e.partition()), o);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "commit failed; the next one covers it"),
                }
            }
            AckAction::Rewind { seeks, replayed } => {
                tracing::warn!(
                    partitions = seeks.len(),
                    replayed,
                    "rewinding to the last acknowledged offsets"
                );
                for ((topic, p), off) in &seeks {
                    self.seek_or_exit(topic, *p, *off);
                }
                self.metrics.replayed.inc_by(replayed);
            }
        }
    }

    /// Moves a held partition back to `offset`. Reading on past records that were lost
    /// would lose them for good, so when the consumer refuses, the task exits and its
    /// replacement resumes from the committed offsets (never beyond what was processed).
    fn seek_or_exit(&self, topic: &str, partition: i32, offset: i64) {
        for attempt in 0..3 {
            match self.consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                Timeout::After(Duration::from_secs(2)),
            ) {
                Ok(()) => return,
                Err(e) => {
                    if !self.held().contains(&(topic.to_owned(), partition)) {
                        // Revoked meanwhile: its next reader starts at the committed offset.
                        return;
                    }
                    tracing::warn!(%topic, partition, offset, attempt, error = %e, "seek failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        tracing::error!(%topic, partition, offset, "cannot rewind the partition; exiting so that the replacement resumes from the committed offsets");
        std::process::exit(1);
    }

    fn held(&self) -> BTreeSet<Tp> {
        self.consumer
            .context()
            .assigned
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Waits before reading again after a rewind, so that a downstream that keeps
    /// failing is not flooded with replays (librdkafka heartbeats on its own thread).
    fn pause(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn update_gauges(&self) {
        let held = self.held();
        let marks = self
            .consumer
            .context()
            .watermarks
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        for tp in &held {
            let labels = KafkaMetrics::partition(&tp.0, tp.1);
            let Some((end, stats_committed)) = marks.get(tp).copied() else {
                continue;
            };
            let committed = if self.at_least_once {
                self.committed.get(tp).copied().unwrap_or(stats_committed)
            } else {
                stats_committed
            };
            self.metrics.end.get_or_create(&labels).set(end);
            if committed >= 0 {
                self.metrics.committed.get_or_create(&labels).set(committed);
                self.metrics
                    .lag
                    .get_or_create(&labels)
                    .set((end - committed).max(0));
            } else {
                // Nothing committed yet: everything up to the end is still to do.
                self.metrics.lag.get_or_create(&labels).set(end.max(0));
            }
        }
    }

    /// Asks the broker about the topics: unreachable brokers and missing topics become
    /// the task's problem; a healthy answer clears it.
    fn check_health(&self) {
        let mut problem = None;
        for topic in &self.settings.topics {
            match self
                .consumer
                .fetch_metadata(Some(topic), Timeout::After(Duration::from_secs(2)))
            {
                Ok(md) => {
                    for t in md.topics() {
                        if let Some(e) = t.error() {
                            problem = Some(format!(
                                "kafka: topic `{}`: {}",
                                t.name(),
                                rdkafka::types::RDKafkaErrorCode::from(e)
                            ));
                        } else if t.partitions().is_empty() {
                            problem = Some(format!("kafka: topic `{}` does not exist", t.name()));
                        }
                    }
                }
                Err(e) => problem = Some(format!("kafka: cannot reach the brokers: {e}")),
            }
        }
        self.state.set_problem(problem);
    }
}

fn describe_error(e: &KafkaError, topics: &[String]) -> String {
    match e.rdkafka_error_code() {
        Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
        | Some(rdkafka::types::RDKafkaErrorCode::UnknownTopic) => {
            format!("kafka: topic {} does not exist", topics.join(", "))
        }
        Some(rdkafka::types::RDKafkaErrorCode::AutoOffsetReset) => {
            "kafka: no committed offset for a partition and startFrom is `committed`".to_owned()
        }
        _ => format!("kafka: {e}"),
    }
}
