//! Records an operator fails on (poison records): counted, logged, skipped, and with the
//! operator's `onError.deadLetter` also written to a Kafka topic with the error in the
//! message headers. A failed record never stops the operator or its marker: under
//! at-least-once it counts as processed, so it is not replayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use concord_sdk::Record;
use prometheus_client::metrics::counter::Counter;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// Where failed records of this operator go.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPolicy {
    /// The dead-letter topic, if any.
    #[serde(default)]
    pub dead_letter: Option<DeadLetterTarget>,
}

/// A dead-letter topic.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterTarget {
    /// Brokers.
    pub bootstrap_servers: String,
    /// Topic.
    pub topic: String,
}

/// Counts, logs and dead-letters failed records; shared by the runtime and operators.
pub struct RecordErrors {
    task_id: String,
    operator: String,
    dead_letter: Option<(ThreadedProducer<DefaultProducerContext>, String)>,
    seen: AtomicU64,
    skipped: Counter,
    dead_lettered: Counter,
}

impl RecordErrors {
    /// Builds the policy's producer (when it has a dead-letter topic).
    pub fn new(
        policy: &ErrorPolicy,
        operator: &str,
        task_id: &str,
        skipped: Counter,
        dead_lettered: Counter,
    ) -> Result<Arc<Self>, String> {
        let dead_letter = match &policy.dead_letter {
            None => None,
            Some(t) => {
                let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
                    .set("bootstrap.servers", &t.bootstrap_servers)
                    .set("client.id", format!("{task_id}-dead-letter"))
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "5")
                    .create()
                    .map_err(|e| format!("dead-letter producer: {e}"))?;
                Some((producer, t.topic.clone()))
            }
        };
        Ok(Arc::new(Self {
            task_id: task_id.to_owned(),
            operator: operator.to_owned(),
            dead_letter,
            seen: AtomicU64::new(0),
            skipped,
            dead_lettered,
        }))
    }

    /// True when failed records are written somewhere (the caller must keep a copy of
    /// each record until its callback returned).
    pub fn wants_records(&self) -> bool {
        self.dead_letter.is_some()
    }

    /// One record failed with `error`. `record` is `None` when the caller kept no copy.
    pub fn failed(&self, record: Option<&Record>, event_time: u64, error: &str) {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        // The first few, then one in a thousand: a stream of bad records must not flood
        // the log.
        if n < 10 || n % 1000 == 0 {
            let key =
                record.map(|r| String::from_utf8_lossy(&r.key[..r.key.len().min(64)]).into_owned());
            tracing::warn!(
                operator = %self.operator,
                key = key.as_deref().unwrap_or("?"),
                event_time,
                failed_so_far = n + 1,
                %error,
                "record failed; skipped"
            );
        }
        match (&self.dead_letter, record) {
            (Some((producer, topic)), Some(r)) => {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "concord.error",
                        value: Some(error),
                    })
                    .insert(Header {
                        key: "concord.operator",
                        value: Some(&self.operator),
                    })
                    .insert(Header {
                        key: "concord.task",
                        value: Some(&self.task_id),
                    });
                let mut msg = BaseRecord::to(topic).payload(&r.value[..]).headers(headers);
                if !r.key.is_empty() {
                    msg = msg.key(&r.key[..]);
                }
                if r.event_time > 0 {
                    msg = msg.timestamp(r.event_time as i64);
                }
                match producer.send(msg) {
                    Ok(()) => {
                        self.dead_lettered.inc();
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, "dead-letter write failed; record skipped");
                        self.skipped.inc();
                    }
                }
            }
            _ => {
                self.skipped.inc();
            }
        }
    }

    /// Waits until dead-lettered records are acknowledged (at a checkpoint).
    pub fn flush(&self) -> Result<(), String> {
        match &self.dead_letter {
            Some((p, _)) => p
                .flush(Duration::from_secs(30))
                .map_err(|e| format!("dead-letter flush: {e}")),
            None => Ok(()),
        }
    }
}
