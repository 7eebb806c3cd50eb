//! Router behaviour against real TCP servers on loopback: key affinity, minimal key
//! movement, bounded memory under back-pressure, and reconnect after a restart.

mod support;

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_executor::config::Partitioning;
use concord_executor::metrics::Metrics;
use concord_executor::router::conn::ConnSettings;
use concord_executor::router::{EdgeTable, Router, RoutingTable, Target};
use concord_executor::wire::{self, BatchReader};
use support::wait_for;

/// A downstream stand-in that decodes batches and remembers record keys.
struct Server {
    port: u16,
    keys: Arc<Mutex<Vec<Vec<u8>>>>,
    count: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Server {
    fn start(port: u16) -> Self {
        // A restarted server may have to wait for the old listener to close.
        let mut bound = None;
        wait_for("port free", Duration::from_secs(10), || {
            bound = TcpListener::bind(("127.0.0.1", port)).ok();
            bound.is_some()
        });
        let listener = bound.expect("bound");
        let port = listener.local_addr().expect("addr").port();
        let s = Self {
            port,
            keys: Arc::default(),
            count: Arc::default(),
            paused: Arc::default(),
            stop: Arc::default(),
            conns: Arc::default(),
        };
        let (keys, count, paused, stop, conns) = (
            s.keys.clone(),
            s.count.clone(),
            s.paused.clone(),
            s.stop.clone(),
            s.conns.clone(),
        );
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).expect("blocking");
                        conns
                            .lock()
                            .expect("lock")
                            .push(c.try_clone().expect("clone"));
                        let (keys, count, paused) = (keys.clone(), count.clone(), paused.clone());
                        std::thread::spawn(move || read_conn(c, &keys, &count, &paused));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        s
    }

    fn target(&self, instance: u32) -> Target {
        Target {
            instance,
            task_id: format!("task-{}", self.port),
            addr: format!("127.0.0.1:{}", self.port),
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Closes the listener and every connection.
    fn kill(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn read_conn(c: TcpStream, keys: &Mutex<Vec<Vec<u8>>>, count: &AtomicU64, paused: &AtomicBool) {
    let mut r = BufReader::new(c);
    let mut first = true;
    loop {
        while paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut hdr = [0u8; 5];
        if r.read_exact(&mut hdr).is_err() {
            return;
        }
        let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let mut body = vec![0u8; len - 1];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if first {
            assert_eq!(hdr[4], wire::FRAME_HELLO);
            first = false;
            continue;
        }
        let mut br = BatchReader::new(Bytes::from(body)).expect("batch");
        let mut local = Vec::new();
        while let Some(rec) = br.next_record().expect("record") {
            local.push(rec.key.to_vec());
        }
        count.fetch_add(local.len() as u64, Ordering::Relaxed);
        keys.lock().expect("lock").extend(local);
    }
}

fn router(batch_bytes: usize, queue: usize) -> (Router, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new("test", 0));
    let r = Router::new(
        ConnSettings {
            batch_bytes,
            queue_batches: queue,
            hello: wire::hello_frame(r#"{"operator":"test","instance":0}"#),
            // No downstream speaks the handshake here (none, or a raw reader).
            auth: None,
            dropped: metrics.dropped_downstream_gone(),
            acks: None,
        },
        Duration::from_millis(1),
        metrics.clone(),
    );
    (r, metrics)
}

fn table(p: Partitioning, targets: Vec<Target>) -> RoutingTable {
    RoutingTable {
        edges: vec![EdgeTable {
            operator: "down".into(),
            partitioning: p,
            targets,
        }],
    }
}

fn owners(servers: &[&Server]) -> HashMap<Vec<u8>, Vec<u16>> {
    let mut m: HashMap<Vec<u8>, Vec<u16>> = HashMap::new();
    for s in servers {
        for k in s.keys.lock().expect("lock").drain(..) {
            let e = m.entry(k).or_default();
            if !e.contains(&s.port) {
                e.push(s.port);
            }
        }
    }
    m
}

#[test]
fn keyed_routing_is_sticky_and_moves_few_keys_when_an_instance_is_added() {
    let (a, b, c) = (Server::start(0), Server::start(0), Server::start(0));
    let (mut r, _) = router(4096, 4);
    let keys: Vec<String> = (0..3000).map(|i| format!("key-{i}")).collect();
    r.update(&table(Partitioning::Key, vec![a.target(0), b.target(1)]));
    for _ in 0..2 {
        for k in &keys {
            r.route("out", k.as_bytes(), b"v", 0, None);
        }
    }
    r.flush_all();
    wait_for("phase 1 delivered", Duration::from_secs(10), || {
        a.count() + b.count() == 6000
    });
    let before = owners(&[&a, &b]);
    assert_eq!(before.len(), 3000);
    assert!(
        before.values().all(|o| o.len() == 1),
        "a key went to two instances"
    );

    r.update(&table(
        Partitioning::Key,
        vec![a.target(0), b.target(1), c.target(2)],
    ));
    for k in &keys {
        r.route("out", k.as_bytes(), b"v", 0, None);
    }
    r.flush_all();
    wait_for("phase 2 delivered", Duration::from_secs(10), || {
        a.count() + b.count() + c.count() == 9000
    });
    let after = owners(&[&a, &b, &c]);
    let mut moved = 0;
    for (k, o) in &after {
        assert_eq!(o.len(), 1);
        if o[0] != before[k][0] {
            assert_eq!(o[0], c.port, "keys only move to the new instance");
            moved += 1;
        }
    }
    let frac = f64::from(moved) / 3000.0;
    assert!((0.2..0.47).contains(&frac), "moved {frac}");
}

#[test]
fn shuffle_and_broadcast_spread_records() {
    let (a, b) = (Server::start(0), Server::start(0));
    let (mut r, _) = router(1024, 4);
    r.update(&table(
        Partitioning::Shuffle,
        vec![a.target(0), b.target(1)],
    ));
    for i in 0..1000 {
        r.route("out", format!("{i}").as_bytes(), b"v", 0, None);
    }
    r.flush_all();
    wait_for("shuffle delivered", Duration::from_secs(10), || {
        a.count() + b.count() == 1000
    });
    assert_eq!(a.count(), 500);
    r.update(&table(
        Partitioning::Broadcast,
        vec![a.target(0), b.target(1)],
    ));
    for i in 0..100 {
        r.route("out", format!("{i}").as_bytes(), b"v", 0, None);
    }
    r.flush_all();
    wait_for("broadcast delivered", Duration::from_secs(10), || {
        a.count() == 600 && b.count() == 600
    });
}

#[test]
fn back_pressure_bounds_memory_and_loses_nothing() {
    let s = Server::start(0);
    s.paused.store(true, Ordering::Relaxed);
    let (mut r, metrics) = router(16 * 1024, 4);
    r.update(&table(Partitioning::Shuffle, vec![s.target(0)]));
    let total: u64 = 400_000;
    let routed = Arc::new(AtomicU64::new(0));
    let routed2 = routed.clone();
    let value = [b'x'; 100];
    let producer = std::thread::spawn(move || {
        for i in 0..total {
            r.route("out", &i.to_be_bytes(), &value, 0, None);
            routed2.store(i + 1, Ordering::Relaxed);
        }
        r.flush_all();
        r
    });
    // The producer must stall: its progress stops changing while the consumer is paused.
    let mut last = 0;
    let mut stable_since = Instant::now();
    wait_for(
        "producer blocked by back-pressure",
        Duration::from_secs(30),
        || {
            let now = routed.load(Ordering::Relaxed);
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
            now > 0 && stable_since.elapsed() > Duration::from_millis(300)
        },
    );
    let in_flight_bytes = last * 117;
    // Queue (4 x 16 KiB) + the batch being built + kernel socket buffers (a few MiB on
    // loopback): far below the 47 MB an unbounded queue would hold.
    assert!(last < total, "producer was never blocked");
    assert!(
        in_flight_bytes < 24 << 20,
        "{in_flight_bytes} bytes buffered while the consumer was paused"
    );
    s.paused.store(false, Ordering::Relaxed);
    let r = producer.join().expect("producer");
    wait_for("everything delivered", Duration::from_secs(60), || {
        s.count() == total
    });
    assert_eq!(
        support::metric_sum(&metrics.render(), "concord_dropped_records_total"),
        0.0
    );
    drop(r);
}

#[test]
fn reconnects_after_the_downstream_restarts() {
    let a = Server::start(0);
    let port = a.port;
    let (mut r, metrics) = router(512, 4);
    r.update(&table(Partitioning::Shuffle, vec![a.target(0)]));
    let sent = std::cell::Cell::new(0u64);
    let send = |r: &mut Router, n: u32| {
        for i in 0..n {
            r.route("out", &i.to_be_bytes(), b"payload", 0, None);
        }
        r.flush_all();
        sent.set(sent.get() + u64::from(n));
    };
    send(&mut r, 100);
    wait_for("first server got data", Duration::from_secs(10), || {
        a.count() == 100
    });
    a.kill();
    let b = Server::start(port);
    // Keep sending until the restarted server sees data; what was sent meanwhile is
    // either delivered to it or counted as dropped.
    wait_for("restarted server got data", Duration::from_secs(20), || {
        send(&mut r, 10);
        b.count() > 0
    });
    let dropped = || support::metric_sum(&metrics.render(), "concord_dropped_records_total") as u64;
    // Everything after the restarted server's first record arrives or is counted; wait
    // until the totals stop moving.
    let total = || a.count() + b.count() + dropped();
    let mut last = (total(), std::time::Instant::now());
    wait_for(
        "delivered and dropped counts settle",
        Duration::from_secs(20),
        || {
            let now = total();
            if now != last.0 {
                last = (now, std::time::Instant::now());
            }
            last.1.elapsed() > Duration::from_millis(500)
        },
    );
    let accounted = total();
    assert!(
        accounted <= sent.get(),
        "{accounted} accounted of {} sent",
        sent.get()
    );
    // Known gap (issue #15, at-most-once): the batch written into the dead connection
    // before the first write error surfaces is lost without being counted, because
    // at-most-once connections carry no acknowledgements. This bounds it to that one
    // batch of 10 records, so a wider silent loss fails here.
    assert!(
        sent.get() - accounted <= 10,
        "{} records lost without being counted (sent {}, delivered {} + {}, dropped {})",
        sent.get() - accounted,
        sent.get(),
        a.count(),
        b.count(),
        dropped()
    );
}
