//! The out-of-process protocol with the Python SDK: directly against the example
//! operator, and hosted by a real executor in a pipeline over a real etcd, with sampled
//! records traced through the Python operator (and an SDK without tracing still served).

mod support;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use concord_sdk::TraceContext;
use concord_sdk::protocol::{Message, read_frame, write_frame};
use serde_json::{Value, json};
use support::{Etcd, Executor, ExecutorSpec, builtin, wait_for};

fn enrich_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/examples/enrich.py")
}

/// Recent spans of an executor (`GET /traces`).
fn spans(e: &Executor) -> Vec<Value> {
    reqwest::blocking::get(format!("http://{}/traces", e.metrics))
        .and_then(|r| r.json())
        .unwrap_or_default()
}

fn field<'a>(span: &'a Value, key: &str) -> &'a str {
    span[key].as_str().unwrap_or_default()
}

/// Spans by (traceId, spanId).
fn by_id(spans: &[Value]) -> HashMap<(String, String), Value> {
    spans
        .iter()
        .map(|s| {
            (
                (
                    field(s, "traceId").to_owned(),
                    field(s, "spanId").to_owned(),
                ),
                s.clone(),
            )
        })
        .collect()
}

fn ns(span: &Value, key: &str) -> u64 {
    span[key].as_u64().unwrap_or_default()
}

#[test]
fn python_enrich_speaks_the_protocol() {
    let mut child = Command::new("python3")
        .arg(enrich_py())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));

    write_frame(
        &mut stdin,
        &[Message::Init {
            json: json!({"operator": "enrich", "instance": 2, "config": {"botPatterns": ["bot"]}})
                .to_string(),
        }],
    )
    .expect("init");
    let reply = read_frame(&mut stdout).expect("read").expect("frame");
    let Message::Metadata { json } = &reply[0] else {
        panic!("expected metadata, got {reply:?}")
    };
    let md: Value = serde_json::from_str(json).expect("metadata json");
    assert_eq!(md["name"], "enrich");
    assert_eq!(
        md["features"],
        json!(["trace", "checkpoint"]),
        "the SDK announces tracing and checkpoints"
    );
    assert!(reply.iter().any(|m| matches!(m, Message::Log { .. })));

    let clicks = [
        json!({"ip": "10.1.2.3", "url": "/ad/7", "publisher": "pub-1", "userAgent": "Mozilla"}),
        json!({"ip": "10.9.9.9", "url": "/ad/8", "userAgent": "GoogleBot/2"}),
    ];
    let mut msgs: Vec<Message> = clicks
        .iter()
        .map(|c| Message::Record {
            key: vec![],
            value: c.to_string().into_bytes(),
            event_time: 42,
        })
        .collect();
    msgs.push(Message::Record {
        key: vec![],
        value: b"not json".to_vec(),
        event_time: 43,
    });
    write_frame(&mut stdin, &msgs).expect("records");
    let reply = read_frame(&mut stdout).expect("read").expect("frame");
    assert_eq!(reply.len(), 2, "{reply:?}");
    for (m, c) in reply.iter().zip(&clicks) {
        let Message::Produce {
            stream,
            key,
            value,
            event_time,
        } = m
        else {
            panic!("expected produce, got {m:?}")
        };
        assert_eq!(stream, "out");
        assert_eq!(key, c["ip"].as_str().expect("ip").as_bytes());
        assert_eq!(*event_time, 42);
        let v: serde_json::Value = serde_json::from_slice(value).expect("json");
        assert_eq!(v["enrichedBy"], "enrich.py");
        assert_eq!(v["isBot"], c["userAgent"] == "GoogleBot/2");
        assert_eq!(
            v["adId"],
            format!("ad-{}", &c["url"].as_str().expect("url")[4..])
        );
        // The publisher passes through; a click without one is counted as "unknown".
        let publisher = c["publisher"].as_str().unwrap_or("unknown");
        assert_eq!(v["publisher"], publisher);
    }

    // A sampled record: what the operator produces for it carries its trace context;
    // the untraced record after it in the same frame produces an untraced record.
    let trace = TraceContext {
        trace_id: 0x0123_4567_89ab_cdef,
        span_id: 0xfedc_ba98_7654_3210,
    };
    write_frame(
        &mut stdin,
        &[
            Message::TracedRecord {
                key: vec![],
                value: clicks[0].to_string().into_bytes(),
                event_time: 50,
                trace,
            },
            Message::Record {
                key: vec![],
                value: clicks[1].to_string().into_bytes(),
                event_time: 51,
            },
        ],
    )
    .expect("traced records");
    let reply = read_frame(&mut stdout).expect("read").expect("frame");
    assert_eq!(reply.len(), 2, "{reply:?}");
    match &reply[0] {
        Message::TracedProduce {
            stream,
            key,
            event_time,
            trace: t,
            ..
        } => {
            assert_eq!(stream, "out");
            assert_eq!(key, b"10.1.2.3");
            assert_eq!(*event_time, 50);
            assert_eq!(*t, trace);
        }
        other => panic!("expected a traced produce, got {other:?}"),
    }
    assert!(
        matches!(&reply[1], Message::Produce { event_time: 51, .. }),
        "{:?}",
        reply[1]
    );

    write_frame(&mut stdin, &[Message::Destroy]).expect("destroy");
    let reply = read_frame(&mut stdout).expect("read").expect("frame");
    assert!(reply.is_empty());
    stdin.flush().ok();
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}

/// `gen (clicks) -> enrich (python3 ARGS) -> sink (file)` in topology `topology`; the
/// generator samples `sample_rate` of its records for tracing.
struct ClickPipeline {
    sink: Executor,
    enrich: Executor,
    generator: Executor,
    out: PathBuf,
}

fn click_pipeline(
    etcd: &Etcd,
    d: &Path,
    topology: &str,
    enrich_args: Vec<String>,
    records: u64,
    sample_rate: f64,
) -> ClickPipeline {
    let out = d.join(format!("{topology}-enriched.txt"));
    let start = |op: &str, spec: Value, env: Vec<(String, String)>| {
        Executor::start(ExecutorSpec {
            etcd: &etcd.url,
            topology,
            operator: op,
            instance: 0,
            spec,
            data_port: 0,
            env,
            dir: d,
        })
    };
    let sink = start(
        "sink",
        builtin(
            "sink",
            "sink",
            json!({"target": "file", "path": out.to_string_lossy(), "includeKey": true}),
            json!([{"from": "enrich", "partitioning": "key"}]),
        ),
        vec![],
    );
    sink.wait_ready();
    let enrich = start(
        "enrich",
        json!({
            "name": "enrich",
            "runtime": {"process": {"command": "python3", "args": enrich_args}},
            "inputs": [{"from": "gen"}],
        }),
        vec![],
    );
    enrich.wait_ready();
    let generator = start(
        "gen",
        builtin(
            "generator",
            "gen",
            json!({"mode": "clicks", "rate": 2000, "records": records, "keys": 50}),
            json!([]),
        ),
        vec![("CONCORD_TRACE_SAMPLE_RATE".into(), sample_rate.to_string())],
    );
    ClickPipeline {
        sink,
        enrich,
        generator,
        out,
    }
}

#[test]
fn executor_hosts_the_python_operator_in_a_pipeline() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = click_pipeline(
        &etcd,
        dir.path(),
        "clicks",
        vec![enrich_py().to_string_lossy().into_owned()],
        1000,
        0.05,
    );
    let lines = || std::fs::read_to_string(&p.out).unwrap_or_default();
    wait_for("1000 enriched clicks", Duration::from_secs(30), || {
        lines().lines().count() == 1000
    });
    let mut publishers = std::collections::BTreeSet::new();
    for l in lines().lines() {
        let (key, value) = l.split_once('\t').expect("key\\tvalue");
        let v: serde_json::Value = serde_json::from_str(value).expect("json");
        assert_eq!(v["ip"], key);
        assert_eq!(v["enrichedBy"], "enrich.py");
        // The generator's publisher (the owner of the ad) survives enrichment.
        let ad: u64 = v["adId"]
            .as_str()
            .and_then(|a| a.strip_prefix("ad-"))
            .and_then(|n| n.parse().ok())
            .expect("adId");
        let publisher = format!(
            "pub-{}",
            concord_executor::operators::generator::publisher_of(ad)
        );
        assert_eq!(v["publisher"], publisher.as_str(), "{l}");
        publishers.insert(publisher);
    }
    assert!(publishers.len() > 1, "{publishers:?}");

    // Every sampled record's path is complete through the Python operator: the sink's
    // span has the enrich span as parent, whose parent is the generator's span.
    let (gen_spans, enrich_spans, sink_spans) = wait_for_value(
        "sampled records traced gen -> enrich -> sink",
        Duration::from_secs(15),
        || {
            let g = spans(&p.generator);
            let e = spans(&p.enrich);
            let s = spans(&p.sink);
            (!g.is_empty() && g.len() == e.len() && e.len() == s.len()).then_some((g, e, s))
        },
    );
    let gen_by_id = by_id(&gen_spans);
    let enrich_by_id = by_id(&enrich_spans);
    for sink_span in &sink_spans {
        let trace = field(sink_span, "traceId").to_owned();
        let parent = (trace.clone(), field(sink_span, "parentId").to_owned());
        let enrich_span = enrich_by_id
            .get(&parent)
            .unwrap_or_else(|| panic!("no enrich span for {sink_span}"));
        assert_eq!(enrich_span["operator"], "enrich");
        let grandparent = (trace, field(enrich_span, "parentId").to_owned());
        let gen_span = gen_by_id
            .get(&grandparent)
            .unwrap_or_else(|| panic!("no generator span for {enrich_span}"));
        assert!(gen_span.get("parentId").is_none(), "{gen_span}");
        // The hop through the child: the exchange of the frame that held the record.
        let (enq, start, end, send) = (
            ns(enrich_span, "enqueueNs"),
            ns(enrich_span, "processStartNs"),
            ns(enrich_span, "processEndNs"),
            ns(enrich_span, "sendNs"),
        );
        assert!(enq <= start && start <= end && end <= send, "{enrich_span}");
        assert!(
            ns(gen_span, "sendNs") <= ns(sink_span, "enqueueNs"),
            "{gen_span}\n{enrich_span}\n{sink_span}"
        );
    }

    let mut enrich = p.enrich;
    let status = enrich.terminate().expect("exit");
    assert!(status.success());
    let log = enrich.log_text();
    assert!(log.contains("enrich: destroyed"), "{log}");
}

/// Polls `f` until it returns a value or `timeout` passes.
fn wait_for_value<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let mut out = None;
    wait_for(what, timeout, || {
        out = f();
        out.is_some()
    });
    out.expect("value")
}

#[test]
fn an_sdk_without_tracing_is_still_served() {
    // The Python SDK as it was before tracing: announces no features and rejects the
    // TracedRecord tag. The executor must not send it one, even when every record is
    // sampled; the operator's output then starts untraced.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/python");
    let wrapper = d.join("old_sdk_enrich.py");
    std::fs::write(
        &wrapper,
        format!(
            "import runpy, sys\n\
             sys.path.insert(0, {sdk:?})\n\
             import concord_sdk\n\
             concord_sdk.FEATURES = []\n\
             concord_sdk.T_TRACED_RECORD = -1\n\
             runpy.run_path({enrich:?}, run_name='__main__')\n",
            sdk = sdk.to_string_lossy(),
            enrich = enrich_py().to_string_lossy(),
        ),
    )
    .expect("wrapper");
    let etcd = Etcd::start();
    let p = click_pipeline(
        &etcd,
        d,
        "oldsdk",
        vec![wrapper.to_string_lossy().into_owned()],
        300,
        1.0,
    );
    let lines = || std::fs::read_to_string(&p.out).unwrap_or_default();
    wait_for("300 enriched clicks", Duration::from_secs(30), || {
        lines().lines().count() == 300
    });
    // The enrich hop of every record is still recorded (its parent is the generator's
    // span); the records it produced are untraced, so the sink has no spans.
    wait_for("300 enrich spans", Duration::from_secs(15), || {
        spans(&p.enrich).len() == 300
    });
    let gen_by_id = by_id(&spans(&p.generator));
    for s in spans(&p.enrich) {
        let parent = (
            field(&s, "traceId").to_owned(),
            field(&s, "parentId").to_owned(),
        );
        assert!(gen_by_id.contains_key(&parent), "{s}");
    }
    assert!(spans(&p.sink).is_empty());
    assert_eq!(p.enrich.metric("concord_operator_errors_total"), 0.0);
    assert!(
        p.enrich.log_text().contains("enrich ready"),
        "{}",
        p.enrich.log_text()
    );
}
