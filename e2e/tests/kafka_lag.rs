//! Kafka lag from executor metrics to the user: the controller scrapes what kafka-source
//! and kafka-sink executors export (served here by small HTTP servers registered as
//! endpoints in a real etcd, in the exposition format and label scheme of
//! `concord-executor`), the metrics API carries per-task partitions and per-operator
//! sums, and `concord describe` / `concord graph` show them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use concord_e2e::{Controller, Etcd, concord, concord_with_stdin};
use serde_json::Value;

const NO_MESOS: &str = "http://127.0.0.1:1";

const TOPOLOGY: &str = r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: k2k}
spec:
  operators:
    - name: clicks
      instances: 2
      runtime: {builtin: {name: kafka-source}}
      config: {bootstrapServers: "127.0.0.1:9", topic: clicks, group: k2k}
    - name: out
      runtime: {builtin: {name: kafka-sink}}
      config: {bootstrapServers: "127.0.0.1:9", topic: counted}
      inputs: [{from: clicks}]
"#;

/// One partition's gauges as a kafka-source executor exports them.
fn partition(instance: u32, p: i32, assigned: u8, committed: i64, end: i64) -> String {
    let l = format!(r#"topic="clicks",partition="{p}",operator="clicks",instance="{instance}""#);
    format!(
        "concord_kafka_partition_assigned{{{l}}} {assigned}\n\
         concord_kafka_committed_offset{{{l}}} {committed}\n\
         concord_kafka_end_offset{{{l}}} {end}\n\
         concord_kafka_lag_records{{{l}}} {}\n",
        end - committed
    )
}

/// Serves `body` as `/metrics` on a free port until the test ends; returns the address.
fn serve_metrics(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let mut request = Vec::new();
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    addr
}

async fn register(etcd: &Etcd, op: &str, instance: u32, task: &str, metrics_addr: &str) {
    let key = format!("/concord/endpoints/default/k2k/{op}/{instance}/{task}");
    let value = serde_json::json!({
        "taskId": task, "instance": instance, "dataAddr": "127.0.0.1:1",
        "metricsAddr": metrics_addr, "ready": true,
    });
    etcd.client()
        .await
        .put(key, value.to_string(), None)
        .await
        .expect("put endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_reaches_the_metrics_api_describe_and_graph() {
    let etcd = Etcd::start().await;
    let c = Controller::start_with(&etcd.url, NO_MESOS, "/concord", &["--no-scheduler"]).await;
    let out = concord_with_stdin(&c.url, &["apply", "-f", "-"], Some(TOPOLOGY.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Instance 0 holds partitions 0 and 2 (3 moved away: assigned 0), instance 1 holds 1.
    let src0 = serve_metrics(format!(
        "{}{}{}concord_replayed_records_total{{operator=\"clicks\",instance=\"0\"}} 12\n\
         concord_records_out_total{{stream=\"default\",operator=\"clicks\",instance=\"0\"}} 4000\n",
        partition(0, 0, 1, 1000, 1200),
        partition(0, 2, 1, 250, 1250),
        partition(0, 3, 0, 7, 9),
    ));
    let src1 = serve_metrics(format!(
        "{}concord_replayed_records_total{{operator=\"clicks\",instance=\"1\"}} 3\n",
        partition(1, 1, 1, 40, 100),
    ));
    let sink = serve_metrics(
        "concord_kafka_produced_total{operator=\"out\",instance=\"0\"} 4000\n\
         concord_kafka_produce_errors_total{operator=\"out\",instance=\"0\"} 2\n\
         concord_records_in_total{stream=\"clicks\",operator=\"out\",instance=\"0\"} 4000\n"
            .to_owned(),
    );
    register(&etcd, "clicks", 0, "default.k2k.clicks.0.h.a", &src0).await;
    register(&etcd, "clicks", 1, "default.k2k.clicks.1.h.b", &src1).await;
    register(&etcd, "out", 0, "default.k2k.out.0.h.c", &sink).await;

    let url = format!(
        "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/k2k/metrics",
        c.url
    );
    let m: Value = reqwest::get(&url)
        .await
        .expect("GET metrics")
        .json()
        .await
        .expect("json");
    let op = |name: &str| -> Value {
        m["operators"]
            .as_array()
            .and_then(|ops| ops.iter().find(|o| o["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {m}"))
    };
    let clicks = op("clicks");
    assert_eq!(clicks["kafka"]["lagRecords"], 1260, "{clicks}");
    assert_eq!(clicks["kafka"]["partitionsAssigned"], 3, "{clicks}");
    assert_eq!(clicks["kafka"]["replayedRecordsTotal"], 15, "{clicks}");
    let t0 = &clicks["tasks"][0];
    assert_eq!(t0["instance"], 0, "{clicks}");
    let held: Vec<i64> = t0["kafka"]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter_map(|p| p["partition"].as_i64())
        .collect();
    assert_eq!(held, [0, 2], "only assigned partitions: {t0}");
    assert_eq!(t0["kafka"]["partitions"][1]["lagRecords"], 1000);
    assert_eq!(t0["kafka"]["lagRecords"], 1200);
    let out_op = op("out");
    assert_eq!(out_op["kafka"]["producedTotal"], 4000, "{out_op}");
    assert_eq!(out_op["kafka"]["produceErrorsTotal"], 2, "{out_op}");

    let describe = concord(&c.url, &["describe", "topology", "k2k"]);
    let text = String::from_utf8_lossy(&describe.stdout).into_owned();
    assert!(describe.status.success(), "{text}");
    let section = text
        .split("Kafka:\n")
        .nth(1)
        .and_then(|s| s.split("Events:").next())
        .unwrap_or_else(|| panic!("a Kafka section in\n{text}"));
    let rows: Vec<Vec<&str>> = section
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec![
            "clicks",
            "0",
            "default.k2k.clicks.0.h.a",
            "clicks",
            "2",
            "250",
            "1250",
            "1000"
        ]),
        "{section}"
    );
    assert!(
        rows.contains(&vec![
            "clicks",
            "1",
            "default.k2k.clicks.1.h.b",
            "clicks",
            "1",
            "40",
            "100",
            "60"
        ]),
        "{section}"
    );
    assert!(!section.contains("clicks  3 "), "{section}");
    assert!(
        section.contains("clicks: lag 1.3k records over 3 partitions, 15 replayed"),
        "{section}"
    );
    assert!(
        section.contains("out: 4000 produced, 2 produce errors"),
        "{section}"
    );

    let graph = concord(&c.url, &["graph", "k2k"]);
    let text = String::from_utf8_lossy(&graph.stdout).into_owned();
    assert!(graph.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("clicks"))
        .unwrap_or_else(|| panic!("clicks in\n{text}"));
    assert!(line.ends_with("lag 1.3k, replayed 15"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("out "))
        .unwrap_or_else(|| panic!("out in\n{text}"));
    assert!(line.ends_with("produce errors 2"), "{text}");
}
