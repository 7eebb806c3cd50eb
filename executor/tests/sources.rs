//! The built-in sources and the http sink against real input and output: `tcp-source`
//! fed over TCP connections, `http-source` fed by HTTP POSTs, `file-source` reading a
//! file that is appended to, and the `http` sink POSTing to a local server. Every
//! operator runs in its own `concord-executor` over a real etcd.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Etcd, Executor, ExecutorSpec, builtin, free_port, wait_for};

fn start(etcd: &Etcd, d: &Path, topology: &str, op: &str, spec: Value) -> Executor {
    Executor::start(ExecutorSpec {
        etcd: &etcd.url,
        topology,
        operator: op,
        instance: 0,
        spec,
        data_port: 0,
        env: vec![],
        dir: d,
    })
}

/// A sink writing `key<TAB>value` lines of what `from` produces to a file.
fn file_sink(etcd: &Etcd, d: &Path, topology: &str, from: &str) -> (Executor, PathBuf) {
    let out = d.join(format!("{topology}-out.txt"));
    let sink = start(
        etcd,
        d,
        topology,
        "sink",
        builtin(
            "sink",
            "sink",
            json!({"target": "file", "path": out.to_string_lossy(), "includeKey": true}),
            json!([{"from": from}]),
        ),
    );
    sink.wait_ready();
    (sink, out)
}

/// The sink's lines as `(key, value)`.
fn received(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn wait_lines(out: &Path, n: usize) -> Vec<(String, String)> {
    wait_for(
        &format!("{n} records at the sink"),
        Duration::from_secs(20),
        || received(out).len() >= n,
    );
    let got = received(out);
    assert_eq!(got.len(), n, "exactly {n} records: {got:?}");
    got
}

#[test]
fn tcp_source_reads_lines_from_every_connection() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_sink, out) = file_sink(&etcd, d, "tcp", "src");
    let port = free_port();
    let src = start(
        &etcd,
        d,
        "tcp",
        "src",
        builtin(
            "tcp-source",
            "src",
            json!({"listen": format!("127.0.0.1:{port}"), "keyField": "user"}),
            json!([]),
        ),
    );
    src.wait_ready();

    let mut a = TcpStream::connect(("127.0.0.1", port)).expect("connect a");
    let mut b = TcpStream::connect(("127.0.0.1", port)).expect("connect b");
    let mut text_a = String::new();
    for i in 0..100 {
        text_a.push_str(&format!("{{\"user\":\"u{}\",\"n\":{i}}}\n", i % 5));
    }
    // One line split over two writes, a CRLF line and an empty line (skipped).
    let (first, second) = text_a.split_at(text_a.len() / 2 + 3);
    a.write_all(first.as_bytes()).expect("write");
    a.flush().expect("flush");
    b.write_all(b"{\"user\":\"b\",\"n\":1000}\r\n\n")
        .expect("write");
    a.write_all(second.as_bytes()).expect("write");
    for i in 1001..1050 {
        b.write_all(format!("{{\"user\":\"b\",\"n\":{i}}}\n").as_bytes())
            .expect("write");
    }
    drop(a);
    drop(b);

    let got = wait_lines(&out, 150);
    let mut seen = BTreeSet::new();
    for (key, value) in &got {
        let v: Value = serde_json::from_str(value).expect("a whole JSON line");
        assert_eq!(v["user"], key.as_str(), "keyed by keyField");
        assert!(
            seen.insert(v["n"].as_u64().expect("n")),
            "duplicate {value}"
        );
    }
    let want: BTreeSet<u64> = (0..100).chain(1000..1050).collect();
    assert_eq!(seen, want);
    assert_eq!(src.metric("concord_records_out_total"), 150.0);
}

#[test]
fn tcp_source_drops_lines_longer_than_max_line_bytes_without_buffering_them() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_sink, out) = file_sink(&etcd, d, "long", "src");
    let port = free_port();
    let src = start(
        &etcd,
        d,
        "long",
        "src",
        builtin(
            "tcp-source",
            "src",
            json!({"listen": format!("127.0.0.1:{port}"), "maxLineBytes": 64}),
            json!([]),
        ),
    );
    src.wait_ready();
    let rss_before = src.metric("concord_process_resident_memory_bytes");

    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(b"short-1\n").expect("write");
    c.write_all(&[b'x'; 65]).expect("write");
    c.write_all(b"\nshort-2\n").expect("write");
    // 64 MiB in one line: dropped as it streams, never held.
    let chunk = vec![b'y'; 1 << 20];
    for _ in 0..64 {
        c.write_all(&chunk).expect("write");
    }
    c.write_all(b"\nshort-3\n").expect("write");
    // A line of exactly the limit is kept.
    c.write_all(&[b'z'; 64]).expect("write");
    c.write_all(b"\n").expect("write");
    drop(c);

    let got = wait_lines(&out, 4);
    let values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        vec!["short-1", "short-2", "short-3", &"z".repeat(64)]
    );
    let text = src.metrics_text();
    assert_eq!(
        support::metric_sum(
            &text
                .lines()
                .filter(|l| l.contains(r#"reason="line_too_long""#))
                .collect::<Vec<_>>()
                .join("\n"),
            "concord_dropped_records_total"
        ),
        2.0,
        "{text}"
    );
    // The 64 MiB line was not buffered (the process grew by far less than it).
    let rss_after = src.metric("concord_process_resident_memory_bytes");
    assert!(
        rss_after - rss_before < 32.0 * 1024.0 * 1024.0,
        "resident memory grew from {rss_before} to {rss_after}"
    );
}

#[test]
fn http_source_accepts_posted_lines_and_arrays() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_sink, out) = file_sink(&etcd, d, "http", "src");
    let port = free_port();
    let src = start(
        &etcd,
        d,
        "http",
        "src",
        builtin(
            "http-source",
            "src",
            json!({"listen": format!("127.0.0.1:{port}"), "keyField": "id"}),
            json!([]),
        ),
    );
    src.wait_ready();

    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: String| {
        let resp = client
            .post(format!("http://127.0.0.1:{port}{path}"))
            .body(body)
            .send()
            .expect("POST");
        let status = resp.status().as_u16();
        let body: Value = resp.json().expect("json answer");
        (status, body)
    };
    let (status, body) = post(
        "/",
        "{\"id\":\"a\",\"v\":1}\n{\"id\":\"b\",\"v\":2}\n\n{\"id\":\"c\",\"v\":3}".into(),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"accepted": 3}));
    let (status, body) = post(
        "/any/path",
        json!([{"id": "d", "v": 4}, {"id": "e", "v": 5}]).to_string(),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"accepted": 2}));

    let got = wait_lines(&out, 5);
    let mut pairs: Vec<(String, u64)> = got
        .iter()
        .map(|(k, v)| {
            let doc: Value = serde_json::from_str(v).expect("json");
            assert_eq!(doc["id"], k.as_str());
            (k.clone(), doc["v"].as_u64().expect("v"))
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]
            .map(|(k, v)| (k.to_owned(), v))
            .to_vec()
    );
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
    f.flush().expect("flush");
}

#[test]
fn file_source_follows_a_file_being_appended_to() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = d.join("input.log");
    std::fs::write(&input, "one\ntwo\nthree\n").expect("write");
    let (_sink, out) = file_sink(&etcd, d, "file", "src");
    let src = start(
        &etcd,
        d,
        "file",
        "src",
        builtin(
            "file-source",
            "src",
            json!({"path": input.to_string_lossy(), "follow": true, "pollMs": 20}),
            json!([]),
        ),
    );
    src.wait_ready();
    let values = |got: Vec<(String, String)>| got.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    assert_eq!(values(wait_lines(&out, 3)), ["one", "two", "three"]);

    // Appended lines arrive; a line without its newline yet waits for the rest of it.
    append(&input, "four\nfive\nsi");
    assert_eq!(values(wait_lines(&out, 5))[3..], ["four", "five"]);
    append(&input, "x\n");
    assert_eq!(values(wait_lines(&out, 6))[5], "six");

    // Truncated and rewritten (log rotation by copy-truncate): read from the start.
    std::fs::write(&input, "again\n").expect("truncate");
    assert_eq!(values(wait_lines(&out, 7))[6], "again");
    // Replaced by a new file (rotation by rename): the new file is read.
    let next = d.join("input.log.new");
    std::fs::write(&next, "new file\n").expect("write");
    std::fs::rename(&next, &input).expect("rename");
    assert_eq!(values(wait_lines(&out, 8))[7], "new file");
}

#[test]
fn file_source_without_follow_reads_to_the_end() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = d.join("input.jsonl");
    let mut text: String = (0..300)
        .map(|i| format!("{{\"k\":\"k{}\",\"i\":{i}}}\n", i % 7))
        .collect();
    text.push_str("{\"k\":\"last\",\"i\":300}"); // no trailing newline
    std::fs::write(&input, text).expect("write");
    let (_sink, out) = file_sink(&etcd, d, "replay", "src");
    let src = start(
        &etcd,
        d,
        "replay",
        "src",
        builtin(
            "file-source",
            "src",
            json!({"path": input.to_string_lossy(), "keyField": "k"}),
            json!([]),
        ),
    );
    let got = wait_lines(&out, 301);
    for (n, (key, value)) in got.iter().enumerate() {
        let v: Value = serde_json::from_str(value).expect("json");
        assert_eq!(v["i"], n, "in file order");
        assert_eq!(v["k"], key.as_str());
    }
    wait_for("end of file logged", Duration::from_secs(10), || {
        src.log_text().contains("file-source reached end of file")
    });
    assert!(src.log_text().contains("records=301"), "{}", src.log_text());
}

/// Requests a local HTTP server received: content type and body.
type Posts = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server on a free 127.0.0.1 port recording every POST; stops when dropped.
struct TestServer {
    url: String,
    posts: Posts,
    _runtime: tokio::runtime::Runtime,
}

impl TestServer {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let posts: Posts = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}/ingest", listener.local_addr().expect("addr"));
        let recorded = posts.clone();
        let app = axum::Router::new().route(
            "/ingest",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let recorded = recorded.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    recorded.lock().expect("lock").push((ct, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            posts,
            _runtime: runtime,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.posts
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|(_, body)| body.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

#[test]
fn http_sink_posts_what_it_receives() {
    let server = TestServer::start();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sink = start(
        &etcd,
        d,
        "post",
        "sink",
        builtin(
            "sink",
            "sink",
            json!({"target": "http", "url": server.url, "includeKey": true}),
            json!([{"from": "gen"}]),
        ),
    );
    sink.wait_ready();
    let _gen = start(
        &etcd,
        d,
        "post",
        "gen",
        builtin(
            "generator",
            "gen",
            json!({"mode": "random", "records": 400, "rate": 2000, "keys": 10, "payloadSize": 16}),
            json!([]),
        ),
    );
    wait_for("400 records POSTed", Duration::from_secs(20), || {
        server.lines().len() >= 400
    });
    let lines = server.lines();
    assert_eq!(lines.len(), 400);
    for l in &lines {
        let (key, value) = l.split_once('\t').expect("key\\tvalue");
        assert!(key.starts_with("key-"), "{l}");
        assert_eq!(value.len(), 16, "{l}");
        assert!(value.bytes().all(|b| b.is_ascii_alphabetic()), "{l}");
    }
    let posts = server.posts.lock().expect("lock").clone();
    assert!(
        posts.iter().all(|(ct, _)| ct == "application/x-ndjson"),
        "{posts:?}"
    );
    assert!(
        posts.len() < 400,
        "batched: one POST per input batch, not per record"
    );
}
