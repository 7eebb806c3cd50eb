//! `kafka-sink`: writes every input record to a topic.
//!
//! The record key becomes the message key (so keyed output lands in a stable
//! partition; an empty key is sent as none), the value the payload and the event time
//! the timestamp. The producer is idempotent with `acks=all` by default, batches up to
//! `batchBytes` or `lingerMs`, and compresses (`compression`, lz4 by default). A full
//! producer queue blocks the operator (back-pressure). Under at-least-once the host's
//! checkpoint waits until every record handed over so far is acknowledged by the broker;
//! a record the broker refused fails the checkpoint, so its source replays it.
//!
//! A record the client refuses when it is handed over (larger than `message.max.bytes`,
//! for example) would be refused again on every replay: it goes to the operator's
//! `onError` policy (skipped or dead-lettered, counted in
//! `concord_failed_records_total`) and does not fail the checkpoint, so the stream goes
//! on. Under at-most-once a record the broker did not take (a failed delivery, or one
//! purged with a producer replaced after a fatal error) is counted in
//! `concord_dropped_records_total{reason="sink_error"}`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::{client_config, user_settings};
use crate::metrics::{DROPPED_SINK_ERROR, KafkaMetrics};
use crate::operators::{BuiltinEnv, meta};
use crate::runtime::RuntimeState;

/// Longest wait for the broker's acknowledgements at a checkpoint.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

struct SinkContext {
    state: Arc<RuntimeState>,
    metrics: KafkaMetrics,
    /// Deliveries that failed since the last checkpoint.
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    problem: AtomicBool,
    /// Under at-most-once, where records the broker did not take are counted.
    dropped: Option<prometheus_client::metrics::counter::Counter>,
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, %reason, "kafka client error");
        self.problem.store(true, Ordering::Relaxed);
        self.state.set_problem(Some(format!("kafka: {reason}")));
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.metrics.produced.inc();
                if self.problem.swap(false, Ordering::Relaxed) {
                    self.state.set_problem(None);
                }
            }
            Err((e, _)) => {
                self.metrics.produce_errors.inc();
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(d) = &self.dropped {
                    d.inc();
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
        }
    }
}

/// The `kafka-sink` operator.
pub struct KafkaSink {
    env: BuiltinEnv,
    producer: Option<ThreadedProducer<SinkContext>>,
    topic: String,
    /// The settings, to create the producer again after a fatal error.
    cfg: Option<rdkafka::ClientConfig>,
    /// A producer was replaced since the last checkpoint: what it held may be lost.
    replaced: bool,
}

impl KafkaSink {
    /// Unstarted; `init` connects.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self {
            env: env.clone(),
            producer: None,
            topic: String::new(),
            cfg: None,
            replaced: false,
        }
    }

    fn create(
        &self,
        cfg: &rdkafka::ClientConfig,
    ) -> Result<ThreadedProducer<SinkContext>, OperatorError> {
        let context = SinkContext {
            state: self.env.state.clone(),
            metrics: self.env.metrics.kafka.clone(),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
            // A replacement producer clears what its predecessor reported.
            problem: AtomicBool::new(self.env.state.problem().is_some()),
            dropped: (!self.env.at_least_once)
                .then(|| self.env.metrics.dropped_for(DROPPED_SINK_ERROR)),
        };
        cfg.create_with_context(context)
            .map_err(|e| OperatorError::msg(format!("kafka producer: {e}")))
    }

    /// An idempotent producer that hit a fatal error (e.g. the broker lost its state)
    /// accepts nothing more: replace it. Returns true when it did.
    fn replace_if_fatal(&mut self) -> bool {
        let Some((code, reason)) = self
            .producer
            .as_ref()
            .and_then(|p| p.client().fatal_error())
        else {
            return false;
        };
        tracing::warn!(?code, %reason, "kafka producer failed fatally; creating a new one");
        let Some(cfg) = self.cfg.clone() else {
            return false;
        };
        match self.create(&cfg) {
            Ok(p) => {
                self.producer = Some(p);
                self.replaced = true;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a new kafka producer");
                false
            }
        }
    }

    fn producer(&self) -> Result<&ThreadedProducer<SinkContext>, OperatorError> {
        self.producer
            .as_ref()
            .ok_or_else(|| OperatorError::msg("kafka-sink is not initialised"))
    }
}

impl Operator for KafkaSink {
    fn metadata(&self) -> Metadata {
        meta("kafka-sink", true)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        self.topic = c.required_str("topic")?;
        let compression = c.str("compression")?.unwrap_or_else(|| "lz4".to_owned());
        if !["none", "gzip", "snappy", "lz4"].contains(&compression.as_str()) {
            return Err(OperatorError::msg(format!(
                "config.compression: expected none, gzip, snappy or lz4, got `{compression}`"
            )));
        }
        let acks = c.str("acks")?.unwrap_or_else(|| "all".to_owned());
        if !["all", "-1", "1", "0"].contains(&acks.as_str()) {
            return Err(OperatorError::msg(format!(
                "config.acks: expected all, 1 or 0, got `{acks}`"
            )));
        }
        let mut cfg = client_config(c, &self.env.task_id)?;
        cfg.set("acks", &acks)
            // Idempotence needs acks=all; with weaker acks the user chose speed.
            .set(
                "enable.idempotence",
                (acks == "all" || acks == "-1").to_string(),
            )
            .set("linger.ms", c.u64("lingerMs")?.unwrap_or(5).to_string())
            .set(
                "batch.size",
                c.u64("batchBytes")?.unwrap_or(1 << 20).to_string(),
            )
            .set("compression.type", &compression)
            .set(
                "message.timeout.ms",
                c.u64("deliveryTimeoutMs")?.unwrap_or(120_000).to_string(),
            );
        user_settings(&mut cfg, c)?;
        let producer = self.create(&cfg)?;
        self.cfg = Some(cfg);
        tracing::info!(topic = %self.topic, %acks, %compression, "kafka-sink ready");
        self.producer = Some(producer);
        Ok(())
    }

    fn process_record(
        &mut self,
        _ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        let producer = self.producer()?;
        let mut msg = BaseRecord::to(&self.topic).payload(&record.value[..]);
        if !record.key.is_empty() {
            msg = msg.key(&record.key[..]);
        }
        if record.event_time > 0 {
            msg = msg.timestamp(record.event_time as i64);
        }
        let sent = loop {
            match producer.send(msg) {
                Ok(()) => break Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The producer's queue is full: wait for deliveries (back-pressure).
                    msg = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                // Refused before it was queued: it goes to `onError` (the host counts
                // it), so it does not fail the checkpoint its replay would fail again.
                Err((e, _)) => break Err(e),
            }
        };
        match sent {
            Ok(()) => Ok(()),
            Err(e) => {
                self.env.metrics.kafka.produce_errors.inc();
                // A fatal producer is replaced; the checkpoint then fails, so the
                // records it held are replayed under at-least-once.
                if self.replace_if_fatal() {
                    return Err(OperatorError::msg(format!(
                        "kafka produce: {e} (the producer failed fatally and was replaced)"
                    )));
                }
                Err(OperatorError::msg(format!("kafka produce: {e}")))
            }
        }
    }

    fn end_of_batch(&mut self, _ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        self.replace_if_fatal();
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), OperatorError> {
        if self.replace_if_fatal() || std::mem::take(&mut self.replaced) {
            return Err(OperatorError::msg(
                "the kafka producer failed fatally and was replaced; records it held may be lost",
            ));
        }
        let producer = self.producer()?;
        producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| OperatorError::msg(format!("kafka flush: {e}")))?;
        let failed = producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let last = producer
                .context()
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            return Err(OperatorError::msg(format!(
                "{failed} records were not delivered to Kafka (last error: {last})"
            )));
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Some(p) = self.producer.take()
            && let Err(e) = p.flush(Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "kafka-sink: records left unflushed at shutdown");
        }
    }
}
