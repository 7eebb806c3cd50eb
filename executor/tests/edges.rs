//! Edges come from the topology's spec, not from the endpoints that happen to exist
//! (issue #15, path 1). A producer's router is fed by the real discovery watch over a
//! real etcd, and its consumers are real `concord-executor` processes: a consumer with no
//! registered instance (scaled to 0, not started yet, or whose instances vanished by
//! deregistration or lease expiry) is an edge with no targets. Under at-least-once the
//! markers covering records routed there fail (nothing is acknowledged) until an
//! instance registers; under at-most-once every such record is counted as `no_route`.

mod support;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use concord_executor::auth::DataplaneAuth;
use concord_executor::config::Partitioning;
use concord_executor::delivery::{AckTo, Checkpoints};
use concord_executor::discovery::{self, Paths};
use concord_executor::metrics::Metrics;
use concord_executor::router::conn::ConnSettings;
use concord_executor::router::{EdgeTable, Router, RoutingTable};
use concord_executor::wire;
use serde_json::json;
use support::{Etcd, Executor, ExecutorSpec, builtin, dataplane_secret};

const TOPOLOGY: &str = "edges";

/// Stores the topology spec where the controller does, with `consumers` each reading
/// `gen` by key.
fn put_spec(etcd: &Etcd, consumers: &[&str]) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let mut operators = vec![json!({"name": "gen", "runtime": {"builtin": {"name": "generator"}}})];
    for c in consumers {
        operators.push(json!({
            "name": c,
            "runtime": {"builtin": {"name": "sink"}},
            "inputs": [{"from": "gen", "partitioning": "key"}],
        }));
    }
    let topology = json!({
        "apiVersion": "concord.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": TOPOLOGY, "namespace": "default"},
        "spec": {"operators": operators, "delivery": "at-least-once"},
    });
    let key = concord_schemas::dataplane::topology_spec_key("/concord", "default", TOPOLOGY);
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/v3/kv/put", etcd.url))
        .json(&json!({
            "key": STANDARD.encode(key.as_bytes()),
            "value": STANDARD.encode(topology.to_string().as_bytes()),
        }))
        .send()
        .expect("put spec");
    assert!(resp.status().is_success(), "put spec: {}", resp.status());
}

/// The producer `gen`: a router fed by the real discovery watch.
struct Producer {
    router: Router,
    tables: Receiver<RoutingTable>,
    metrics: Arc<Metrics>,
    _rt: tokio::runtime::Runtime,
}

impl Producer {
    fn start(etcd: &Etcd, dir: &std::path::Path, at_least_once: bool) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt
            .block_on(discovery::connect(&etcd.url))
            .expect("etcd client");
        let (tx, tables) = channel();
        rt.spawn(discovery::run_watch(
            client,
            Paths::new("/concord", "default", TOPOLOGY),
            "gen".into(),
            tx,
        ));
        let secret = std::fs::read(dataplane_secret(dir)).expect("secret");
        let metrics = Arc::new(Metrics::new("gen", 0));
        let (acks_tx, acks_rx) = channel();
        let router = Router::new(
            ConnSettings {
                batch_bytes: 4096,
                queue_batches: 4,
                hello: wire::hello_frame(r#"{"operator":"gen","instance":0}"#),
                auth: Some(DataplaneAuth::new(secret, Default::default()).expect("auth")),
                dropped: metrics.dropped_downstream_gone(),
                acks: at_least_once.then_some(acks_tx),
            },
            Duration::from_millis(1),
            metrics.clone(),
        );
        let router = if at_least_once {
            router.with_checkpoints(Checkpoints::new(acks_rx))
        } else {
            router
        };
        Self {
            router,
            tables,
            metrics,
            _rt: rt,
        }
    }

    /// Applies every routing table discovery sends, in order, until one satisfies `pred`;
    /// returns it.
    fn table_where(&mut self, what: &str, pred: impl Fn(&RoutingTable) -> bool) -> RoutingTable {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for a routing table: {what}"
            );
            if let Ok(t) = self
                .tables
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                self.router.update(&t);
                if pred(&t) {
                    return t;
                }
            }
        }
    }

    fn route(&mut self, from: u32, n: u32) {
        for i in from..from + n {
            self.router
                .route("out", format!("id-{i}").as_bytes(), b"v", 0, None);
        }
    }

    /// Sends a marker through the router (as the source's operator does after the
    /// records before it) and waits, bounded, for its answer.
    fn checkpoint(&mut self, seq: u64) -> bool {
        let (tx, rx) = channel();
        self.router.marker_arrived(AckTo::Local { seq, reply: tx });
        self.router.forward_markers(true);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.router.poll_acks();
            if let Ok((s, ok)) = rx.try_recv() {
                assert_eq!(s, seq);
                return ok;
            }
            assert!(Instant::now() < deadline, "marker {seq} not answered");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn no_route(&mut self) -> u64 {
        self.router.publish_stats();
        self.metrics.dropped_no_route().get()
    }
}

fn targets<'a>(t: &'a RoutingTable, op: &str) -> Option<&'a EdgeTable> {
    t.edges.iter().find(|e| e.operator == op)
}

/// A real consumer executor: the built-in file sink, under at-least-once (its checkpoint
/// answers a marker once what came before it is written).
fn consumer(etcd: &Etcd, dir: &std::path::Path, op: &str, instance: u32) -> Executor {
    let path = dir.join(format!("{op}.txt"));
    Executor::start(ExecutorSpec {
        etcd: &etcd.url,
        topology: TOPOLOGY,
        operator: op,
        instance,
        spec: builtin(
            "sink",
            op,
            json!({"target": "file", "path": path.to_string_lossy()}),
            json!([{"from": "gen", "partitioning": "key"}]),
        ),
        data_port: 0,
        env: vec![("CONCORD_DELIVERY".into(), "at-least-once".into())],
        dir,
    })
}

fn lines(dir: &std::path::Path, op: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{op}.txt")))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn at_least_once_a_consumer_with_no_instance_fails_markers_until_one_registers() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // `out` runs; `audit` is in the spec but has no instance (scaled to 0, or not yet
    // started).
    put_spec(&etcd, &["audit", "out"]);
    let out = consumer(&etcd, d, "out", 0);
    out.wait_ready();
    let mut gen_ = Producer::start(&etcd, d, true);
    let t = gen_.table_where("`out` has an instance", |t| {
        targets(t, "out").is_some_and(|e| e.targets.len() == 1)
    });
    let audit = targets(&t, "audit").expect("`audit` is an edge although it has no endpoint");
    assert!(audit.targets.is_empty());
    assert_eq!(audit.partitioning, Partitioning::Key);

    gen_.route(0, 100);
    assert!(
        !gen_.checkpoint(1),
        "records `audit` never got are not acknowledged"
    );
    assert_eq!(gen_.no_route(), 100);
    // A failed marker does not wait for `out`; it gets them all the same.
    support::wait_for("`out` wrote 100", Duration::from_secs(10), || {
        lines(d, "out") == 100
    });

    // An instance of `audit` registers: records flow to both and markers succeed.
    let audit0 = consumer(&etcd, d, "audit", 0);
    audit0.wait_ready();
    gen_.table_where("`audit` has an instance", |t| {
        targets(t, "audit").is_some_and(|e| e.targets.len() == 1)
    });
    gen_.route(100, 100);
    assert!(gen_.checkpoint(2));
    assert_eq!(lines(d, "audit"), 100);
    assert_eq!(lines(d, "out"), 200);
    assert_eq!(gen_.no_route(), 100, "nothing more dropped");

    // A new generation without `audit` (live): its edge goes once its instance is gone.
    put_spec(&etcd, &["out"]);
    let mut audit0 = audit0;
    audit0.terminate().expect("audit exits");
    gen_.table_where("`audit` is no longer an edge", |t| {
        targets(t, "audit").is_none() && t.edges.len() == 1
    });
    // The stopped instance's final marker settles this one, whichever way it went.
    let _ = gen_.checkpoint(3);
    gen_.route(200, 100);
    assert!(gen_.checkpoint(4));
    assert_eq!(lines(d, "out"), 300);
    assert_eq!(gen_.no_route(), 100);
}

#[test]
fn at_most_once_every_record_for_a_consumer_with_no_instance_is_counted() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    put_spec(&etcd, &["audit", "out"]);
    let out = consumer(&etcd, d, "out", 0);
    out.wait_ready();
    let mut gen_ = Producer::start(&etcd, d, false);
    gen_.table_where("`out` has an instance, `audit` none", |t| {
        targets(t, "out").is_some_and(|e| e.targets.len() == 1)
            && targets(t, "audit").is_some_and(|e| e.targets.is_empty())
    });
    gen_.route(0, 250);
    gen_.router.flush_all();
    assert_eq!(
        gen_.no_route(),
        250,
        "every record `audit` did not get is counted"
    );
    support::wait_for("`out` wrote 250", Duration::from_secs(10), || {
        lines(d, "out") == 250
    });
}

#[test]
fn at_least_once_a_consumer_whose_instances_vanish_mid_stream_fails_markers() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    put_spec(&etcd, &["out"]);
    let mut out0 = consumer(&etcd, d, "out", 0);
    out0.wait_ready();
    let mut gen_ = Producer::start(&etcd, d, true);
    gen_.table_where("`out` has an instance", |t| {
        targets(t, "out").is_some_and(|e| e.targets.len() == 1)
    });
    gen_.route(0, 100);
    assert!(gen_.checkpoint(1));
    assert_eq!(lines(d, "out"), 100);

    // Deregistration (the instance stops): the edge stays, with no targets.
    out0.terminate().expect("out exits");
    gen_.table_where("`out` has no instance", |t| {
        targets(t, "out").is_some_and(|e| e.targets.is_empty())
    });
    gen_.route(100, 50);
    assert!(
        !gen_.checkpoint(2),
        "records routed nowhere are not acknowledged"
    );
    assert_eq!(gen_.no_route(), 50);

    // A new instance: flowing again.
    let mut out1 = consumer(&etcd, d, "out", 0);
    out1.wait_ready();
    gen_.table_where("`out` has an instance again", |t| {
        targets(t, "out").is_some_and(|e| e.targets.len() == 1)
    });
    gen_.route(150, 100);
    assert!(gen_.checkpoint(3));

    // Lease expiry: the instance dies without deregistering; once its lease runs out
    // (10 s) its endpoint is gone and what is routed after that is routed nowhere.
    out1.kill();
    gen_.table_where("`out`'s lease expired", |t| {
        targets(t, "out").is_some_and(|e| e.targets.is_empty())
    });
    // Whatever the dead connection held is settled (failed) by this one.
    let _ = gen_.checkpoint(4);
    let before = gen_.no_route();
    gen_.route(250, 50);
    assert!(
        !gen_.checkpoint(5),
        "records routed nowhere are not acknowledged"
    );
    assert_eq!(gen_.no_route(), before + 50);
    // Nothing routed since: a marker covering nothing lost is acknowledged.
    assert!(gen_.checkpoint(6));
}
