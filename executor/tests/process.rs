//! The out-of-process protocol with the Python SDK: directly against the example
//! operator, and hosted by a real executor in a pipeline over a real etcd.

mod support;

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use concord_sdk::protocol::{Message, read_frame, write_frame};
use serde_json::json;
use support::{Etcd, Executor, ExecutorSpec, builtin, wait_for};

fn enrich_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/examples/enrich.py")
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
    assert!(json.contains("\"enrich\""));
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

    write_frame(&mut stdin, &[Message::Destroy]).expect("destroy");
    let reply = read_frame(&mut stdout).expect("read").expect("frame");
    assert!(reply.is_empty());
    stdin.flush().ok();
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn executor_hosts_the_python_operator_in_a_pipeline() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = d.join("enriched.txt");
    let start = |op: &str, spec: serde_json::Value| {
        Executor::start(ExecutorSpec {
            etcd: &etcd.url,
            topology: "clicks",
            operator: op,
            instance: 0,
            spec,
            data_port: 0,
            env: vec![],
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
    );
    sink.wait_ready();
    let mut enrich = start(
        "enrich",
        json!({
            "name": "enrich",
            "runtime": {"process": {"command": "python3", "args": [enrich_py().to_string_lossy()]}},
            "inputs": [{"from": "gen"}],
        }),
    );
    enrich.wait_ready();
    let _gen = start(
        "gen",
        builtin(
            "generator",
            "gen",
            json!({"mode": "clicks", "rate": 2000, "records": 1000, "keys": 50}),
            json!([]),
        ),
    );
    let lines = || std::fs::read_to_string(&out).unwrap_or_default();
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
    let status = enrich.terminate().expect("exit");
    assert!(status.success());
    let log = enrich.log_text();
    assert!(log.contains("enrich: destroyed"), "{log}");
}
