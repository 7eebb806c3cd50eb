//! The built-in `sink` against real local servers: the HTTP target retries a failed POST
//! (non-2xx is a failure), a target that cannot be reached makes `checkpoint` fail and
//! its records counted as dropped, and the TCP target keeps one connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel, sync_channel};
use std::time::Duration;

use concord_executor::metrics::Metrics;
use concord_executor::operators::{self, BuiltinEnv};
use concord_executor::record_errors::{ErrorPolicy, RecordErrors};
use concord_executor::runtime::{Ingest, RuntimeState};
use concord_sdk::{Config, Context, Emitter, Operator, Record, TraceContext};
use serde_json::{Value, json};

struct Discard;

impl Emitter for Discard {
    fn emit(&mut self, _s: &str, _k: &[u8], _v: &[u8], _t: u64, _tr: Option<TraceContext>) {}
    fn set_timer(&mut self, _key: &[u8], _time: u64) {}
}

/// A `sink` built as the executor builds it, initialised with `config`.
struct Harness {
    op: Box<dyn Operator>,
    config: Config,
    metrics: Arc<Metrics>,
    _rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new(config: Value) -> Self {
        let metrics = Arc::new(Metrics::new("out", 0));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio");
        let errors = RecordErrors::new(
            &ErrorPolicy::default(),
            "out",
            "t",
            metrics.failed_records("skipped"),
            metrics.failed_records("dead_lettered"),
        )
        .expect("errors");
        let (tx, _rx) = sync_channel(1);
        let env = BuiltinEnv {
            ingest: Ingest::new(tx, metrics.input_queue.clone()),
            tokio: rt.handle().clone(),
            operator: "out".into(),
            instance: 0,
            instances: 1,
            task_id: "t".into(),
            bind_host: "127.0.0.1".into(),
            namespace: "default".into(),
            topology: "t".into(),
            at_least_once: false,
            metrics: metrics.clone(),
            state: Arc::new(RuntimeState::default()),
            errors,
        };
        let spec: concord_schemas::OperatorSpec = serde_json::from_value(
            json!({"name": "out", "runtime": {"builtin": {"name": "sink"}}, "config": config}),
        )
        .expect("schema spec");
        let spec: concord_executor::config::OperatorSpec =
            serde_json::from_str(&serde_json::to_string(&spec).expect("ser")).expect("de");
        let mut op = operators::build(&spec, &env).expect("sink");
        let config = Config::new(
            config
                .as_object()
                .map(|o| o.clone().into_iter().collect())
                .unwrap_or_default(),
        );
        {
            let mut d = Discard;
            let mut ctx = Context::new(&mut d, &config, 0);
            op.init(&mut ctx).expect("init");
        }
        Self {
            op,
            config,
            metrics,
            _rt: rt,
        }
    }

    /// Hands `values` over as one batch.
    fn batch(&mut self, values: &[&str]) {
        let mut d = Discard;
        let mut ctx = Context::new(&mut d, &self.config, 0);
        for v in values {
            self.op
                .process_record(
                    &mut ctx,
                    Record::new(b"k".to_vec(), v.as_bytes().to_vec(), 1),
                )
                .expect("record");
        }
        self.op.end_of_batch(&mut ctx).expect("batch");
    }

    /// `concord_dropped_records_total{reason}` as rendered.
    fn dropped(&self, reason: &str) -> u64 {
        let text = self.metrics.render();
        text.lines()
            .filter(|l| {
                l.starts_with("concord_dropped_records_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// An HTTP/1.1 server answering POSTs with `statuses` in turn (then 200); sends each
/// (status, body) it answered.
fn http_server(statuses: Vec<u16>) -> (String, Receiver<(u16, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/ingest", listener.local_addr().expect("addr"));
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().expect("clone"));
            let mut w = conn;
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                let mut started = false;
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    started = true;
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                if !started {
                    break;
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    break;
                }
                let status = statuses.next().unwrap_or(200);
                let _ = write!(w, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                let _ = w.flush();
                if tx
                    .send((status, String::from_utf8_lossy(&body).into_owned()))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    (url, rx)
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn http_target_retries_a_500_and_the_checkpoint_waits_for_the_200() {
    let (url, posts) = http_server(vec![500]);
    let mut sink = Harness::new(json!({"target": "http", "url": url, "retryBackoffMs": 10}));
    sink.batch(&["a", "b"]);
    sink.op.checkpoint().expect("delivered after a retry");
    // The checkpoint returned, so both answers were given already.
    assert_eq!(
        posts.try_recv().expect("first POST"),
        (500, "a\nb\n".to_owned())
    );
    assert_eq!(
        posts.try_recv().expect("retried POST"),
        (200, "a\nb\n".to_owned())
    );
    assert_eq!(sink.dropped("sink_error"), 0);
    sink.op.destroy();
}

#[test]
fn a_client_error_is_not_retried_and_is_counted() {
    let (url, posts) = http_server(vec![400]);
    let mut sink = Harness::new(json!({"target": "http", "url": url, "retryBackoffMs": 10}));
    sink.batch(&["a", "b", "c"]);
    let err = sink
        .op
        .checkpoint()
        .expect_err("a refused batch fails the checkpoint");
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(
        posts.recv_timeout(WAIT).expect("the POST"),
        (400, "a\nb\nc\n".to_owned())
    );
    assert!(posts.try_recv().is_err(), "4xx is not retried");
    assert_eq!(sink.dropped("sink_error"), 3);
    // The next batch goes through and the checkpoint after it succeeds.
    sink.batch(&["d"]);
    sink.op.checkpoint().expect("next checkpoint");
    assert_eq!(
        posts.recv_timeout(WAIT).expect("next POST"),
        (200, "d\n".to_owned())
    );
    sink.op.destroy();
}

/// A port nothing listens on.
fn dead_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[test]
fn a_server_that_is_down_fails_the_checkpoint_and_counts_the_drops() {
    for target in ["http", "tcp"] {
        let addr = dead_port();
        let config = match target {
            "http" => json!({"target": "http", "url": format!("http://{addr}/x"),
                             "retries": 2, "retryBackoffMs": 10}),
            _ => json!({"target": "tcp", "address": addr, "retries": 2, "retryBackoffMs": 10}),
        };
        let mut sink = Harness::new(config);
        sink.batch(&["a", "b"]);
        sink.batch(&["c"]);
        let err = sink
            .op
            .checkpoint()
            .expect_err("nothing delivered: the checkpoint fails");
        assert!(err.to_string().contains("3 records"), "{target}: {err}");
        assert_eq!(
            sink.dropped("sink_error"),
            3,
            "{target}: every lost record is counted"
        );
        sink.op.destroy();
    }
}

#[test]
fn tcp_target_keeps_one_connection_for_many_records() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, lines) = channel();
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(conn).lines() {
                        let Ok(line) = line else { return };
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let mut sink = Harness::new(json!({"target": "tcp", "address": addr}));
    for batch in [["a", "b"], ["c", "d"], ["e", "f"]] {
        sink.batch(&batch);
    }
    sink.op.checkpoint().expect("written");
    let got: Vec<String> = (0..6)
        .map(|_| lines.recv_timeout(WAIT).expect("line"))
        .collect();
    assert_eq!(got, ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for every record"
    );
    assert_eq!(sink.dropped("sink_error"), 0);
    sink.op.destroy();
    let _ = TcpStream::connect(&addr); // let the accept loop see one more and carry on
}
