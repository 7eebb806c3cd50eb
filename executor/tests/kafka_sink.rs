//! `kafka-sink` against a real broker (Tansu): a record the client refuses for good (here
//! larger than the sink's `message.max.bytes`) goes to the operator's `onError` policy,
//! and the checkpoint succeeds for the records around it, so the source does not rewind
//! forever.
//!
//! The size trick: the sink's producer gets `properties: {message.max.bytes: 10000}`, so
//! librdkafka refuses the 20,000-byte record locally, while the dead-letter producer keeps
//! librdkafka's default limit (1 MB) and writes the record whole, with the error in its
//! headers.

use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use concord_e2e::Kafka;
use concord_executor::metrics::Metrics;
use concord_executor::operators::BuiltinEnv;
use concord_executor::operators::kafka::KafkaSink;
use concord_executor::record_errors::{DeadLetterTarget, ErrorPolicy, RecordErrors};
use concord_executor::runtime::{Ingest, RuntimeState};
use concord_sdk::{Config, Context, Emitter, Operator, Record, TraceContext};
use rdkafka::Message;
use rdkafka::message::Headers;

struct NoOutput;

impl Emitter for NoOutput {
    fn emit(&mut self, _s: &str, _k: &[u8], _v: &[u8], _t: u64, _tr: Option<TraceContext>) {}
    fn set_timer(&mut self, _key: &[u8], _time: u64) {}
}

const LIMIT: usize = 10_000;
const BIG: usize = 20_000;

struct Setup {
    rt: tokio::runtime::Runtime,
    kafka: Kafka,
    metrics: Arc<Metrics>,
    errors: Arc<RecordErrors>,
    env: BuiltinEnv,
}

fn setup(dead_letter: bool) -> Setup {
    setup_with(dead_letter, true)
}

fn setup_with(dead_letter: bool, at_least_once: bool) -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let kafka = rt.block_on(async {
        let kafka = Kafka::start().await;
        kafka.create_topic("out", 1).await;
        kafka.create_topic("dlq", 1).await;
        kafka
    });
    let metrics = Arc::new(Metrics::new("sink", 0));
    let policy = ErrorPolicy {
        dead_letter: dead_letter.then(|| DeadLetterTarget {
            bootstrap_servers: kafka.bootstrap(),
            topic: "dlq".into(),
        }),
    };
    let errors = RecordErrors::new(
        &policy,
        "sink",
        "t",
        metrics.failed_records("skipped"),
        metrics.failed_records("dead_lettered"),
    )
    .expect("errors");
    let (tx, _rx) = sync_channel(1);
    let env = BuiltinEnv {
        ingest: Ingest::new(tx, metrics.input_queue.clone()),
        tokio: rt.handle().clone(),
        operator: "sink".into(),
        instance: 0,
        instances: 1,
        task_id: "t".into(),
        bind_host: "127.0.0.1".into(),
        namespace: "default".into(),
        topology: "t".into(),
        at_least_once,
        metrics: metrics.clone(),
        state: Arc::new(RuntimeState::default()),
        errors: errors.clone(),
    };
    Setup {
        rt,
        kafka,
        metrics,
        errors,
        env,
    }
}

/// Feeds a, a too-large b, and c, then a marker, the way the runtime does: a record whose
/// `process_record` fails goes to `onError`; the checkpoint is the operator's, then the
/// dead-letter flush. Answers whether the checkpoint succeeded.
fn run_batch(s: &Setup) -> Result<(), String> {
    let config = Config::new(
        [
            (
                "bootstrapServers".to_owned(),
                serde_json::json!(s.kafka.bootstrap()),
            ),
            ("topic".to_owned(), serde_json::json!("out")),
            ("lingerMs".to_owned(), serde_json::json!(1)),
            (
                "properties".to_owned(),
                serde_json::json!({ "message.max.bytes": LIMIT }),
            ),
        ]
        .into(),
    );
    let mut op = KafkaSink::new(&s.env);
    let mut out = NoOutput;
    let mut ctx = Context::new(&mut out, &config, 0);
    op.init(&mut ctx).expect("init");
    let records = [
        Record::new(b"a".to_vec(), b"small a".to_vec(), 1_000),
        Record::new(b"b".to_vec(), vec![b'x'; BIG], 2_000),
        Record::new(b"c".to_vec(), b"small c".to_vec(), 3_000),
    ];
    for r in records {
        let copy = s.errors.wants_records().then(|| r.clone());
        let t = r.event_time;
        if let Err(e) = op.process_record(&mut ctx, r) {
            s.errors.failed(copy.as_ref(), t, &e.to_string());
        }
    }
    op.end_of_batch(&mut ctx).expect("end of batch");
    let result = op
        .checkpoint()
        .map_err(|e| e.to_string())
        .and_then(|()| s.errors.flush());
    op.destroy();
    result
}

fn out_keys(s: &Setup) -> Vec<String> {
    let got = s.rt.block_on(
        s.kafka
            .consume_all("out", "check", 2, Duration::from_secs(30)),
    );
    let mut keys: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_record_too_large_is_skipped_and_counted_and_the_checkpoint_succeeds() {
    let s = setup(false);
    let result = run_batch(&s);
    assert_eq!(
        result,
        Ok(()),
        "the checkpoint covers the records around it"
    );
    assert_eq!(out_keys(&s), ["a", "c"]);
    let text = s.metrics.render();
    assert!(text.contains(r#"action="skipped"} 1"#), "{text}");
    // A second batch with the same poison record succeeds again: no rewind loop.
    assert_eq!(run_batch(&s), Ok(()));
    let text = s.metrics.render();
    assert!(text.contains(r#"action="skipped"} 2"#), "{text}");
}

#[test]
fn a_record_too_large_goes_to_the_dead_letter_topic_with_the_error() {
    let s = setup(true);
    assert_eq!(run_batch(&s), Ok(()));
    assert_eq!(out_keys(&s), ["a", "c"]);
    let text = s.metrics.render();
    assert!(text.contains(r#"action="dead_lettered"} 1"#), "{text}");
    // The dead-letter record: the whole value, the error in a header.
    let consumer = s.kafka.consumer("dlq-check", "dlq");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (key, len, error) = loop {
        assert!(
            Instant::now() < deadline,
            "nothing in the dead-letter topic"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let error = m
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "concord.error")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default();
            break (
                m.key().map(<[u8]>::to_vec),
                m.payload().map_or(0, <[u8]>::len),
                error,
            );
        }
    };
    assert_eq!(key.as_deref(), Some(&b"b"[..]));
    assert_eq!(len, BIG);
    assert!(error.to_lowercase().contains("too large"), "{error}");
}

/// Under at-most-once a record the broker never takes (here: the broker is gone and the
/// delivery times out) is counted as dropped with reason `sink_error`, one per record.
#[test]
fn at_most_once_undelivered_records_are_counted_as_dropped() {
    let mut s = setup_with(false, false);
    let config = Config::new(
        [
            (
                "bootstrapServers".to_owned(),
                serde_json::json!(s.kafka.bootstrap()),
            ),
            ("topic".to_owned(), serde_json::json!("out")),
            ("lingerMs".to_owned(), serde_json::json!(1)),
            ("deliveryTimeoutMs".to_owned(), serde_json::json!(1500)),
        ]
        .into(),
    );
    let mut op = KafkaSink::new(&s.env);
    let mut out = NoOutput;
    let mut ctx = Context::new(&mut out, &config, 0);
    op.init(&mut ctx).expect("init");
    s.kafka.stop();
    for i in 0..5u8 {
        op.process_record(&mut ctx, Record::new(vec![b'k', i], b"v".to_vec(), 1_000))
            .expect("queued");
    }
    let dropped = || {
        let text = s.metrics.render();
        text.lines()
            .find(|l| {
                l.starts_with("concord_dropped_records_total")
                    && l.contains(r#"reason="sink_error""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped() < 5.0 {
        assert!(Instant::now() < deadline, "dropped: {}", s.metrics.render());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dropped(), 5.0);
    op.destroy();
}
