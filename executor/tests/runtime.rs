//! Operator API semantics in the runtime: callbacks are single-threaded even when input
//! arrives from many threads, timers fire in time order, and shutdown calls `destroy`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use concord_executor::delivery::{AckTo, Checkpoints};
use concord_executor::metrics::Metrics;
use concord_executor::record_errors::{ErrorPolicy, RecordErrors};
use concord_executor::router::conn::ConnSettings;
use concord_executor::router::inbound::InMsg;
use concord_executor::router::{Router, RoutingTable};
use concord_executor::runtime::{Ingest, Runtime, RuntimeState};
use concord_executor::trace::{Sampler, Tracer};
use concord_executor::wire;
use concord_sdk::{Config, Context, Metadata, Operator, OperatorError, Record};
use support::wait_for;

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<String>>,
    busy: AtomicBool,
    overlap: AtomicBool,
    threads: Mutex<Vec<std::thread::ThreadId>>,
    records: Mutex<u64>,
}

struct Probe(Arc<Shared>);

impl Probe {
    fn enter(&self) {
        if self.0.busy.swap(true, Ordering::SeqCst) {
            self.0.overlap.store(true, Ordering::SeqCst);
        }
        let id = std::thread::current().id();
        let mut t = self.0.threads.lock().expect("lock");
        if !t.contains(&id) {
            t.push(id);
        }
    }
    fn leave(&self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

impl Operator for Probe {
    fn metadata(&self) -> Metadata {
        Metadata {
            name: "probe".into(),
            inputs: vec!["in".into()],
            outputs: vec![],
        }
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        self.enter();
        let now = concord_sdk::now_millis();
        // Set out of order; the two at the same time fire in key order.
        ctx.set_timer("c", now + 300);
        ctx.set_timer("a", now + 100);
        ctx.set_timer("b2", now + 200);
        ctx.set_timer("b1", now + 200);
        ctx.set_timer("past", now.saturating_sub(1000));
        self.0.events.lock().expect("lock").push("init".into());
        self.leave();
        Ok(())
    }

    fn process_record(&mut self, _ctx: &mut Context<'_>, r: Record) -> Result<(), OperatorError> {
        self.enter();
        *self.0.records.lock().expect("lock") += 1;
        self.leave();
        if r.key.starts_with(b"poison") {
            return Err(OperatorError::msg("cannot digest this one"));
        }
        Ok(())
    }

    fn process_timer(
        &mut self,
        ctx: &mut Context<'_>,
        key: Bytes,
        time: u64,
    ) -> Result<(), OperatorError> {
        self.enter();
        assert_eq!(ctx.event_time(), time);
        self.0
            .events
            .lock()
            .expect("lock")
            .push(format!("timer:{}", String::from_utf8_lossy(&key)));
        self.leave();
        Ok(())
    }

    fn destroy(&mut self) {
        self.0.events.lock().expect("lock").push("destroy".into());
    }
}

fn record_errors(metrics: &Metrics) -> Arc<RecordErrors> {
    RecordErrors::new(
        &ErrorPolicy::default(),
        "probe",
        "t",
        metrics.failed_records("skipped"),
        metrics.failed_records("dead_lettered"),
    )
    .expect("errors")
}

#[test]
fn poison_records_are_counted_and_skipped_and_markers_still_acknowledged() {
    let shared = Arc::new(Shared::default());
    let metrics = Arc::new(Metrics::new("probe", 0));
    let (in_tx, in_rx) = sync_channel(4);
    let (route_tx, route_rx) = channel();
    route_tx.send(RoutingTable::default()).expect("send");
    let shutdown = Arc::new(AtomicBool::new(false));
    let (acks_tx, acks_rx) = channel();
    let rt = Runtime {
        operator: Box::new(Probe(shared.clone())),
        config: Config::default(),
        instance: 0,
        is_source: false,
        router: Router::new(
            ConnSettings {
                batch_bytes: 1024,
                queue_batches: 2,
                hello: wire::hello_frame("{}"),
                // No downstream speaks the handshake here (none, or a raw reader).
                auth: None,
                dropped: metrics.dropped_downstream_gone(),
                acks: Some(acks_tx),
            },
            Duration::from_millis(1),
            metrics.clone(),
        )
        .with_checkpoints(Checkpoints::new(acks_rx)),
        input: in_rx,
        routing: route_rx,
        shutdown: shutdown.clone(),
        state: Arc::new(RuntimeState::default()),
        metrics: metrics.clone(),
        tracer: Arc::new(Tracer::new("probe", 0, "t")),
        sampler: Sampler::new(0.0),
        source_wait: Duration::ZERO,
        errors: record_errors(&metrics),
    };
    let handle = std::thread::spawn(move || rt.run().map(|_| ()));
    let ingest = Ingest::new(in_tx, metrics.input_queue.clone());
    let recs = ["a", "poison-1", "b", "poison-2", "c"]
        .iter()
        .map(|k| Record::new(k.as_bytes().to_vec(), Bytes::new(), 1))
        .collect();
    assert!(ingest.send(recs));
    let (tx, rx) = channel();
    assert!(ingest.send_marker(AckTo::Local { seq: 9, reply: tx }));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).expect("answered"),
        (9, true),
        "a failed record counts as processed: no replay, no crash loop"
    );
    assert_eq!(*shared.records.lock().expect("lock"), 5);
    let text = metrics.render();
    assert!(
        text.contains(
            r#"concord_failed_records_total{operator="probe",instance="0",action="skipped"} 2"#
        ),
        "{text}"
    );
    shutdown.store(true, Ordering::Relaxed);
    handle.join().expect("join").expect("run");
}

/// A batch that cannot be decoded is not skipped silently: its records are counted in
/// `concord_dropped_records_total{reason="malformed"}` and the marker after it fails, so
/// the source replays them.
#[test]
fn a_malformed_batch_fails_the_marker_after_it_and_is_counted() {
    let shared = Arc::new(Shared::default());
    let metrics = Arc::new(Metrics::new("probe", 0));
    let (in_tx, in_rx) = sync_channel(4);
    let (route_tx, route_rx) = channel();
    route_tx.send(RoutingTable::default()).expect("send");
    let shutdown = Arc::new(AtomicBool::new(false));
    let (acks_tx, acks_rx) = channel();
    let rt = Runtime {
        operator: Box::new(Probe(shared.clone())),
        config: Config::default(),
        instance: 0,
        is_source: false,
        router: Router::new(
            ConnSettings {
                batch_bytes: 1024,
                queue_batches: 2,
                hello: wire::hello_frame("{}"),
                // No downstream speaks the handshake here (none, or a raw reader).
                auth: None,
                dropped: metrics.dropped_downstream_gone(),
                acks: Some(acks_tx),
            },
            Duration::from_millis(1),
            metrics.clone(),
        )
        .with_checkpoints(Checkpoints::new(acks_rx)),
        input: in_rx,
        routing: route_rx,
        shutdown: shutdown.clone(),
        state: Arc::new(RuntimeState::default()),
        metrics: metrics.clone(),
        tracer: Arc::new(Tracer::new("probe", 0, "t")),
        sampler: Sampler::new(0.0),
        source_wait: Duration::ZERO,
        errors: record_errors(&metrics),
    };
    let handle = std::thread::spawn(move || rt.run().map(|_| ()));
    let batch = |body: &'static [u8]| InMsg::Batch {
        from: Arc::from("up"),
        body: Bytes::from_static(body),
        received_ns: 0,
    };
    let ingest = Ingest::new(in_tx.clone(), metrics.input_queue.clone());
    // Three records announced, none readable; then a body too short for its count.
    in_tx
        .send(batch(&[0, 0, 0, 3, 0xff, 0xff, 0xff]))
        .expect("send");
    in_tx.send(batch(&[0, 0])).expect("send");
    let (tx, rx) = channel();
    assert!(ingest.send_marker(AckTo::Local { seq: 9, reply: tx }));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).expect("answered"),
        (9, false),
        "records were lost before the marker: it fails"
    );
    let text = metrics.render();
    assert!(
        text.contains(
            r#"concord_dropped_records_total{operator="probe",instance="0",reason="malformed"} 4"#
        ),
        "{text}"
    );
    // The loss fails that marker only.
    let (tx, rx) = channel();
    assert!(ingest.send_marker(AckTo::Local { seq: 10, reply: tx }));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).expect("answered"),
        (10, true)
    );
    shutdown.store(true, Ordering::Relaxed);
    handle.join().expect("join").expect("run");
}

#[test]
fn single_threaded_callbacks_ordered_timers_and_destroy() {
    let shared = Arc::new(Shared::default());
    let metrics = Arc::new(Metrics::new("probe", 0));
    let (in_tx, in_rx) = sync_channel(4);
    let (route_tx, route_rx) = channel();
    route_tx.send(RoutingTable::default()).expect("send");
    let shutdown = Arc::new(AtomicBool::new(false));
    let state = Arc::new(RuntimeState::default());
    let rt = Runtime {
        operator: Box::new(Probe(shared.clone())),
        config: Config::default(),
        instance: 0,
        is_source: false,
        router: Router::new(
            ConnSettings {
                batch_bytes: 1024,
                queue_batches: 2,
                hello: wire::hello_frame("{}"),
                // No downstream speaks the handshake here (none, or a raw reader).
                auth: None,
                dropped: metrics.dropped_downstream_gone(),
                acks: None,
            },
            Duration::from_millis(1),
            metrics.clone(),
        ),
        input: in_rx,
        routing: route_rx,
        shutdown: shutdown.clone(),
        state: state.clone(),
        metrics: metrics.clone(),
        tracer: Arc::new(Tracer::new("probe", 0, "t")),
        sampler: Sampler::new(0.0),
        source_wait: Duration::ZERO,
        errors: record_errors(&metrics),
    };
    let handle = std::thread::spawn(move || rt.run().map(|_| ()));

    // Input from four threads at once.
    let ingest = Ingest::new(in_tx, metrics.input_queue.clone());
    let feeders: Vec<_> = (0..4)
        .map(|t| {
            let ingest = ingest.clone();
            std::thread::spawn(move || {
                for b in 0..50 {
                    let recs = (0..20)
                        .map(|i| Record::new(format!("{t}-{b}-{i}").into_bytes(), Bytes::new(), 1))
                        .collect();
                    assert!(ingest.send(recs));
                }
            })
        })
        .collect();
    for f in feeders {
        f.join().expect("feeder");
    }
    wait_for("all records processed", Duration::from_secs(10), || {
        *shared.records.lock().expect("lock") == 4000
    });
    wait_for("all timers fired", Duration::from_secs(10), || {
        shared.events.lock().expect("lock").len() == 6
    });
    shutdown.store(true, Ordering::Relaxed);
    handle.join().expect("join").expect("run");

    let events = shared.events.lock().expect("lock").clone();
    assert_eq!(
        events,
        vec![
            "init",
            "timer:past",
            "timer:a",
            "timer:b1",
            "timer:b2",
            "timer:c",
            "destroy"
        ]
    );
    assert!(
        !shared.overlap.load(Ordering::SeqCst),
        "callbacks overlapped"
    );
    assert_eq!(
        shared.threads.lock().expect("lock").len(),
        1,
        "one callback thread"
    );
    assert!(state.destroyed.load(Ordering::Relaxed));
}
