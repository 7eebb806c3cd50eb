//! Authenticated data plane, with real `concord-executor` processes over a real etcd:
//! a client that does not prove it holds the topology's secret (a raw HELLO and batch,
//! a wrong secret, an executor with another topology's secret) is refused, injects
//! nothing and is counted; executors holding the same secret exchange records.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use concord_executor::auth::{AUTH_FAILURES_METRIC, DataplaneAuth};
use concord_executor::wire::{self, BatchBuilder};
use serde_json::{Value, json};
use support::{Etcd, Executor, ExecutorSpec, builtin, wait_for};

fn start(etcd: &Etcd, d: &Path, op: &str, spec: Value) -> Executor {
    Executor::start(ExecutorSpec {
        etcd: &etcd.url,
        topology: "auth",
        operator: op,
        instance: 0,
        spec,
        data_port: 0,
        env: vec![],
        dir: d,
    })
}

/// Waits (bounded) until the executor closes `s`; panics if it keeps it open.
fn assert_closed_by_peer(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // the challenge, or nothing else
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the executor kept an unauthenticated connection open")
            }
            Err(_) => return, // reset
        }
    }
}

fn batch_of(n: u32) -> Vec<u8> {
    let mut b = BatchBuilder::with_capacity(1024);
    for i in 0..n {
        b.push(b"forged", format!("injected-{i}").as_bytes(), 1, None);
    }
    b.finish(1024)
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn only_peers_holding_the_topology_secret_can_send_records() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = d.join("out.txt");
    let sink = start(
        &etcd,
        d,
        "sink",
        builtin(
            "sink",
            "sink",
            json!({"target": "file", "path": out.to_string_lossy()}),
            json!([{"from": "gen"}]),
        ),
    );
    sink.wait_ready();
    let failures = format!("{AUTH_FAILURES_METRIC}_total");
    let data = ("127.0.0.1", sink.data_port);

    // 1. No secret: the pre-authentication protocol (HELLO, then a batch).
    let mut raw = TcpStream::connect(data).expect("connect");
    raw.write_all(&wire::hello_frame(r#"{"operator":"gen","instance":0}"#))
        .expect("hello");
    let _ = raw.write_all(&batch_of(10));
    assert_closed_by_peer(&mut raw);

    // 2. The real handshake with a wrong secret, then a batch.
    let mut wrong = TcpStream::connect(data).expect("connect");
    let other = DataplaneAuth::new(
        b"not-this-topologys-secret-0123456789".to_vec(),
        Default::default(),
    )
    .expect("secret");
    assert!(
        other
            .connect(&mut wrong, br#"{"operator":"gen","instance":0}"#)
            .is_err(),
        "a wrong secret must not complete the handshake"
    );
    let _ = wrong.write_all(&batch_of(10));
    assert_closed_by_peer(&mut wrong);

    wait_for("both refusals counted", Duration::from_secs(10), || {
        sink.metric(&failures) >= 2.0
    });
    let text = sink.metrics_text();
    assert!(
        text.contains(r#"direction="inbound""#) && text.contains(r#"reason="bad_proof""#),
        "refusals labelled: {text}"
    );

    // 3. An executor holding another topology's secret: it finds the sink through
    // etcd, is refused on every attempt, and delivers nothing.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let gen_spec = builtin(
        "generator",
        "gen",
        json!({"mode": "random", "records": 500, "rate": 5000}),
        json!([]),
    );
    let mut intruder = start(&etcd, elsewhere.path(), "gen", gen_spec.clone());
    wait_for("the intruder refused", Duration::from_secs(20), || {
        sink.metric(&failures) >= 3.0
    });
    wait_for(
        "the intruder counts its own refusal",
        Duration::from_secs(20),
        || intruder.metric(&failures) >= 1.0,
    );
    intruder.kill();
    assert_eq!(sink.metric("concord_records_in_total"), 0.0);
    assert_eq!(lines(&out), 0, "nothing was injected");

    // 4. A generator with this topology's secret delivers everything.
    let good = start(&etcd, d, "gen", gen_spec);
    good.wait_ready();
    wait_for("500 records at the sink", Duration::from_secs(30), || {
        lines(&out) >= 500
    });
    assert_eq!(lines(&out), 500);
    assert_eq!(good.metric(&failures), 0.0);
}

#[test]
fn an_executor_without_a_secret_refuses_to_start() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_concord-executor"))
        .env_clear()
        .env("CONCORD_TOPOLOGY", "auth")
        .env("CONCORD_OPERATOR", "sink")
        .env(
            "CONCORD_OPERATOR_SPEC",
            builtin("sink", "sink", json!({}), json!([])).to_string(),
        )
        .env("CONCORD_ETCD", &etcd.url)
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run");
    assert!(!status.status.success());
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(
        err.contains("no data-plane secret") && err.contains("--insecure-no-dataplane-auth"),
        "{err}"
    );
}
