//! At-least-once markers across real TCP connections: the router's marker is answered
//! only once every downstream has processed what was routed to it before the marker,
//! and fails when a downstream refuses it, vanishes, or a record had nowhere to go.

mod support;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_executor::auth::DataplaneAuth;
use concord_executor::config::Partitioning;
use concord_executor::delivery::{AckTo, Checkpoints};
use concord_executor::metrics::Metrics;
use concord_executor::router::conn::ConnSettings;
use concord_executor::router::inbound::{self, InMsg};
use concord_executor::router::{EdgeTable, Router, RoutingTable, Target};
use concord_executor::wire::{self, BatchReader};
use prometheus_client::metrics::gauge::Gauge;

/// What a downstream answers to markers.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Fail,
}

/// A downstream: the executor's real inbound listener, drained by a thread that counts
/// records and answers markers, remembering how many records it had seen at each.
struct Downstream {
    port: u16,
    records: Arc<AtomicU64>,
    seen_at_markers: Arc<Mutex<Vec<u64>>>,
}

impl Downstream {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = sync_channel(16);
        inbound::spawn_listener(listener, tx, Gauge::default(), Some(auth())).expect("listener");
        let records = Arc::new(AtomicU64::new(0));
        let seen_at_markers = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (records.clone(), seen_at_markers.clone());
        std::thread::spawn(move || {
            while let Ok(msg) = rx.recv() {
                match msg {
                    InMsg::Batch { body, .. } => {
                        let mut br = BatchReader::new(body).expect("batch");
                        while br.next_record().expect("record").is_some() {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    InMsg::Marker(ack) => {
                        s.lock().expect("lock").push(r.load(Ordering::Relaxed));
                        ack.send(matches!(answer, Answer::Ok));
                    }
                    InMsg::Ingest(_) => {}
                }
            }
        });
        Self {
            port,
            records,
            seen_at_markers,
        }
    }

    fn target(&self, instance: u32) -> Target {
        Target {
            instance,
            task_id: format!("down-{instance}"),
            addr: format!("127.0.0.1:{}", self.port),
        }
    }
}

/// The secret both ends of every connection in these tests hold.
fn auth() -> DataplaneAuth {
    DataplaneAuth::new(
        b"delivery-test-secret-0123456789".to_vec(),
        Default::default(),
    )
    .expect("secret")
}

fn router() -> Router {
    let metrics = Arc::new(Metrics::new("test", 0));
    let (acks_tx, acks_rx) = channel();
    Router::new(
        ConnSettings {
            batch_bytes: 4096,
            queue_batches: 4,
            hello: wire::hello_frame(r#"{"operator":"test","instance":0}"#),
            auth: Some(auth()),
            dropped: metrics.dropped_downstream_gone(),
            acks: Some(acks_tx),
        },
        Duration::from_millis(1),
        metrics,
    )
    .with_checkpoints(Checkpoints::new(acks_rx))
}

fn table(targets: Vec<Target>) -> RoutingTable {
    RoutingTable {
        edges: vec![EdgeTable {
            operator: "down".into(),
            partitioning: Partitioning::Key,
            targets,
        }],
    }
}

/// Sends a local marker through the router and waits (bounded) for its answer.
fn checkpoint(r: &mut Router, seq: u64) -> bool {
    let (tx, rx) = channel();
    r.marker_arrived(AckTo::Local { seq, reply: tx });
    r.forward_markers(true);
    answer(r, &rx, seq)
}

fn answer(r: &mut Router, rx: &Receiver<(u64, bool)>, seq: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        r.poll_acks();
        if let Ok((s, ok)) = rx.try_recv() {
            assert_eq!(s, seq);
            return ok;
        }
        assert!(
            Instant::now() < deadline,
            "marker {seq} not answered in 10 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_marker_is_acknowledged_after_every_downstream_processed_what_came_before_it() {
    let (a, b) = (Downstream::start(Answer::Ok), Downstream::start(Answer::Ok));
    let mut r = router();
    r.update(&table(vec![a.target(0), b.target(1)]));
    for i in 0..5000 {
        r.route("out", format!("key-{i}").as_bytes(), b"value", 0, None);
    }
    assert!(checkpoint(&mut r, 1), "both downstreams answered ok");
    // Each downstream had processed everything routed to it before the marker.
    let (ra, rb) = (
        a.records.load(Ordering::Relaxed),
        b.records.load(Ordering::Relaxed),
    );
    assert_eq!(ra + rb, 5000);
    assert!(ra > 0 && rb > 0, "keys spread over both: {ra} / {rb}");
    assert_eq!(*a.seen_at_markers.lock().expect("lock"), vec![ra]);
    assert_eq!(*b.seen_at_markers.lock().expect("lock"), vec![rb]);
    // A second checkpoint covers only what followed.
    r.route("out", b"key-1", b"value", 0, None);
    assert!(checkpoint(&mut r, 2));
}

#[test]
fn one_refusing_downstream_fails_the_marker() {
    let (a, b) = (
        Downstream::start(Answer::Ok),
        Downstream::start(Answer::Fail),
    );
    let mut r = router();
    r.update(&table(vec![a.target(0), b.target(1)]));
    for i in 0..100 {
        r.route("out", format!("key-{i}").as_bytes(), b"value", 0, None);
    }
    assert!(!checkpoint(&mut r, 7));
}

#[test]
fn a_downstream_that_closes_without_answering_fails_the_marker() {
    // Accepts, reads until the first marker, then drops the connection.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            if auth().accept(&mut conn).is_err() {
                continue;
            }
            let mut r = BufReader::new(conn);
            while let Ok(Some((kind, _))) = wire::read_frame(&mut r) {
                if kind == wire::FRAME_MARKER {
                    break;
                }
            }
            let mut s = r.into_inner();
            let _ = s.flush();
            drop(s);
        }
    });
    let mut r = router();
    r.update(&table(vec![Target {
        instance: 0,
        task_id: "vanishing".into(),
        addr: format!("127.0.0.1:{port}"),
    }]));
    r.route("out", b"k", b"v", 0, None);
    assert!(
        !checkpoint(&mut r, 1),
        "unanswered marker on a closed connection"
    );
}

#[test]
fn a_record_with_no_instance_to_go_to_fails_the_marker() {
    let mut r = router();
    r.update(&table(vec![]));
    r.route("out", b"k", b"v", 0, None);
    assert!(!checkpoint(&mut r, 1));
    // Nothing lost since: the next one succeeds (no connection to wait for).
    assert!(checkpoint(&mut r, 2));
}

#[test]
fn a_removed_downstream_is_waited_for_by_the_next_marker() {
    let (a, b) = (Downstream::start(Answer::Ok), Downstream::start(Answer::Ok));
    let mut r = router();
    r.update(&table(vec![a.target(0), b.target(1)]));
    for i in 0..1000 {
        r.route("out", format!("key-{i}").as_bytes(), b"value", 0, None);
    }
    // Scale down to one instance: b's records are covered by its final marker.
    r.update(&table(vec![a.target(0)]));
    assert!(checkpoint(&mut r, 3));
    let rb = b.records.load(Ordering::Relaxed);
    assert!(rb > 0);
    assert_eq!(*b.seen_at_markers.lock().expect("lock"), vec![rb]);
    assert_eq!(a.records.load(Ordering::Relaxed) + rb, 1000);
}
