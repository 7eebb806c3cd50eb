//! `concord describe topology NAME`

use std::fmt::Write as _;

use concord_schemas::{Runtime, Topology};

use crate::Failure;
use crate::client::Client;
use crate::commands::graph::{MetricsView, count};
use crate::output::{Table, age, phase};

/// Prints everything a person needs to understand a topology's state.
pub async fn run(client: &Client, ns: &str, name: &str) -> Result<u8, Failure> {
    let t = client.get(ns, name).await?;
    // Live numbers only for what describe shows of them: Kafka partitions and lag.
    let kafka = if has_kafka_operators(&t) {
        Some(
            client
                .metrics::<MetricsView>(ns, name)
                .await
                .map_err(|e| e.to_string()),
        )
    } else {
        None
    };
    print!("{}", render_with(&t, kafka.as_ref()));
    Ok(0)
}

/// Whether an operator of `t` is a built-in Kafka source or sink.
pub fn has_kafka_operators(t: &Topology) -> bool {
    t.spec
        .operators
        .iter()
        .any(|op| matches!(&op.runtime, Runtime::Builtin(b) if b.name.starts_with("kafka-")))
}

/// The full text of `describe`; `metrics` (or why they could not be read) adds the
/// Kafka section when the topology has Kafka operators or its tasks export Kafka metrics.
pub fn render_with(t: &Topology, metrics: Option<&Result<MetricsView, String>>) -> String {
    let mut out = String::new();
    let m = &t.metadata;
    let _ = writeln!(out, "Name:         {}", m.name);
    let _ = writeln!(out, "Namespace:    {}", m.namespace);
    let _ = writeln!(out, "UID:          {}", m.uid.as_deref().unwrap_or("-"));
    let observed = t.status.as_ref().map_or(0, |s| s.observed_generation);
    let _ = writeln!(
        out,
        "Generation:   {} (observed {observed})",
        m.generation.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "Created:      {} ({} ago)",
        m.creation_timestamp.map_or("-".into(), |c| c.to_rfc3339()),
        age(m.creation_timestamp)
    );
    if let Some(d) = m.deletion_timestamp {
        let _ = writeln!(out, "Deleting:     since {}", d.to_rfc3339());
    }
    let _ = writeln!(out, "Status:       {}", phase(t));
    let _ = writeln!(
        out,
        "Delivery:     {}",
        serde_json::to_value(t.spec.delivery)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    for (title, map) in [("Labels:", &m.labels), ("Annotations:", &m.annotations)] {
        if !map.is_empty() {
            let _ = writeln!(out, "{title}");
            for (k, v) in map {
                let _ = writeln!(out, "  {k}={v}");
            }
        }
    }

    let status = t.status.clone().unwrap_or_default();
    let _ = writeln!(out, "Conditions:");
    if status.conditions.is_empty() {
        let _ = writeln!(out, "  (none reported yet)");
    } else {
        let mut table = Table::new(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]);
        for c in &status.conditions {
            table.row(vec![
                c.type_.clone(),
                format!("{:?}", c.status),
                c.reason.clone(),
                age(c.last_transition_time),
                c.message.clone(),
            ]);
        }
        indent(&mut out, &table.render());
    }

    let _ = writeln!(out, "Operators:");
    let mut table = Table::new(&[
        "NAME", "RUNTIME", "DESIRED", "RUNNING", "UPDATED", "READY", "INPUTS", "TEMPLATE",
    ]);
    for op in &t.spec.operators {
        let st = status.operators.iter().find(|o| o.name == op.name);
        let runtime = match &op.runtime {
            Runtime::Builtin(b) => format!("builtin:{}", b.name),
            Runtime::Process(p) => format!("process:{}", p.command),
        };
        let inputs = op
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "{}({})",
                    i.from,
                    serde_json::to_value(i.partitioning)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        table.row(vec![
            op.name.clone(),
            runtime,
            op.instances.to_string(),
            st.map_or("0".into(), |s| s.running.to_string()),
            st.map_or("0".into(), |s| s.updated.to_string()),
            st.map_or("0".into(), |s| s.ready.to_string()),
            if inputs.is_empty() {
                "-".into()
            } else {
                inputs
            },
            concord_schemas::template_hash(op),
        ]);
    }
    indent(&mut out, &table.render());

    let tasks: Vec<_> = status
        .operators
        .iter()
        .flat_map(|o| o.tasks.iter().map(move |t| (o.name.clone(), t)))
        .collect();
    if !tasks.is_empty() {
        let _ = writeln!(out, "Tasks:");
        let mut table = Table::new(&[
            "OPERATOR",
            "INSTANCE",
            "TASK",
            "STATE",
            "HOST",
            "RESTARTS",
            "AGE",
            "LAST EXIT",
            "BACKOFF UNTIL",
        ]);
        for (op, task) in tasks {
            table.row(vec![
                op,
                task.instance.to_string(),
                task.task_id.clone(),
                task.state.clone(),
                task.host.clone().unwrap_or_else(|| "-".into()),
                task.restarts.to_string(),
                age(task.since),
                task.last_exit_reason.clone().unwrap_or_else(|| "-".into()),
                task.backoff_until
                    .map_or("-".into(), |b| b.format("%H:%M:%S").to_string()),
            ]);
        }
        indent(&mut out, &table.render());
    }
    let problems: Vec<String> = status
        .operators
        .iter()
        .flat_map(|o| {
            o.tasks.iter().filter_map(move |t| {
                t.problem
                    .as_ref()
                    .map(|p| format!("{}[{}] {}: {p}", o.name, t.instance, t.task_id))
            })
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "Problems:");
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }

    let kafka_in_metrics =
        matches!(metrics, Some(Ok(m)) if m.operators.iter().any(|o| o.kafka.is_some()));
    if has_kafka_operators(t) || kafka_in_metrics {
        render_kafka(&mut out, t, metrics);
    }

    let _ = writeln!(out, "Events:");
    if status.events.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let mut table = Table::new(&["AGE", "REASON", "OPERATOR", "MESSAGE"]);
        for e in &status.events {
            table.row(vec![
                age(Some(e.time)),
                e.reason.clone(),
                e.operator.clone().unwrap_or_else(|| "-".into()),
                e.message.clone(),
            ]);
        }
        indent(&mut out, &table.render());
    }
    out
}

/// The `Kafka:` section: per source task the partitions it holds with committed and end
/// offsets and lag, then per operator its total lag, replays and produced records.
fn render_kafka(out: &mut String, t: &Topology, metrics: Option<&Result<MetricsView, String>>) {
    let _ = writeln!(out, "Kafka:");
    let m = match metrics {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            let _ = writeln!(out, "  (live metrics unavailable: {e})");
            return;
        }
        None => {
            let _ = writeln!(out, "  (live metrics not read)");
            return;
        }
    };
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut table = Table::new(&[
        "OPERATOR",
        "INSTANCE",
        "TASK",
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "END",
        "LAG",
    ]);
    let mut rows = 0;
    let mut totals = Vec::new();
    // Spec order, then operators still draining.
    let mut ops: Vec<_> = t
        .spec
        .operators
        .iter()
        .filter_map(|o| m.operators.iter().find(|v| v.name == o.name))
        .collect();
    ops.extend(
        m.operators
            .iter()
            .filter(|v| !t.spec.operators.iter().any(|o| o.name == v.name)),
    );
    for op in ops {
        let Some(sum) = &op.kafka else { continue };
        let is_source = op.tasks.iter().any(|task| {
            task.kafka
                .as_ref()
                .is_some_and(|k| k.partitions_assigned > 0 || k.lag_records.is_some())
        }) || sum.produced_total.is_none();
        if is_source {
            for task in &op.tasks {
                let Some(k) = &task.kafka else { continue };
                if k.partitions.is_empty() {
                    table.row(vec![
                        op.name.clone(),
                        task.instance.to_string(),
                        task.task_id.clone(),
                        "-".into(),
                        "(none assigned)".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                    rows += 1;
                }
                for p in &k.partitions {
                    table.row(vec![
                        op.name.clone(),
                        task.instance.to_string(),
                        task.task_id.clone(),
                        p.topic.clone(),
                        p.partition.to_string(),
                        opt(p.committed_offset),
                        opt(p.end_offset),
                        opt(p.lag_records),
                    ]);
                    rows += 1;
                }
            }
            let mut line = format!(
                "{}: lag {} records over {} partitions",
                op.name,
                sum.lag_records.map_or_else(|| "-".to_owned(), count),
                sum.partitions_assigned
            );
            if let Some(r) = sum.replayed_records_total {
                let _ = write!(line, ", {r} replayed");
            }
            totals.push(line);
        }
        if let Some(p) = sum.produced_total {
            totals.push(format!(
                "{}: {p} produced, {} produce errors",
                op.name,
                sum.produce_errors_total.unwrap_or(0)
            ));
        }
    }
    if rows > 0 {
        indent(out, &table.render());
    }
    if totals.is_empty() {
        let _ = writeln!(out, "  (no Kafka metrics reported yet)");
    }
    for line in totals {
        let _ = writeln!(out, "  {line}");
    }
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(yaml: &str) -> Topology {
        concord_schemas::parse_yaml(yaml.as_bytes(), "t.yaml")
            .expect("valid")
            .remove(0)
    }

    const K2K: &str = r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: k2k}
spec:
  operators:
    - name: clicks
      instances: 2
      runtime: {builtin: {name: kafka-source}}
      config: {bootstrapServers: "127.0.0.1:9092", topic: clicks}
    - name: out
      runtime: {builtin: {name: kafka-sink}}
      config: {bootstrapServers: "127.0.0.1:9092", topic: alerts}
      inputs: [{from: clicks}]
"#;

    fn metrics() -> MetricsView {
        serde_json::from_value(serde_json::json!({"operators": [
            {"name": "clicks",
             "kafka": {"partitionsAssigned": 3, "lagRecords": 1260, "replayedRecordsTotal": 15},
             "tasks": [
                {"taskId": "default.k2k.clicks.0.h.a", "instance": 0, "scrape": "ok",
                 "kafka": {"partitionsAssigned": 2, "lagRecords": 1200, "replayedRecordsTotal": 12,
                   "partitions": [
                     {"topic": "clicks", "partition": 0, "committedOffset": 1000, "endOffset": 1200, "lagRecords": 200},
                     {"topic": "clicks", "partition": 2, "committedOffset": 250, "endOffset": 1250, "lagRecords": 1000}]}},
                {"taskId": "default.k2k.clicks.1.h.b", "instance": 1, "scrape": "ok",
                 "kafka": {"partitionsAssigned": 1, "lagRecords": 60, "replayedRecordsTotal": 3,
                   "partitions": [{"topic": "clicks", "partition": 1, "committedOffset": null, "endOffset": 100, "lagRecords": 60}]}},
                {"taskId": "default.k2k.clicks.1.h.c", "instance": 1, "scrape": "ok",
                 "kafka": {"partitionsAssigned": 0, "replayedRecordsTotal": 0}}
             ]},
            {"name": "out",
             "kafka": {"partitionsAssigned": 0, "producedTotal": 4000, "produceErrorsTotal": 2},
             "tasks": [{"taskId": "default.k2k.out.0.h.d", "instance": 0,
                        "kafka": {"partitionsAssigned": 0, "producedTotal": 4000, "produceErrorsTotal": 2}}]}
        ]}))
        .expect("metrics view")
    }

    #[test]
    fn kafka_section_lists_partitions_per_source_task_and_totals() {
        let t = topology(K2K);
        let text = render_with(&t, Some(&Ok(metrics())));
        eprintln!("{text}");
        let section: Vec<&str> = text
            .split("Kafka:\n")
            .nth(1)
            .and_then(|s| s.split("Events:").next())
            .expect("a Kafka section")
            .lines()
            .collect();
        assert!(section[0].split_whitespace().eq([
            "OPERATOR",
            "INSTANCE",
            "TASK",
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "END",
            "LAG"
        ]));
        let row = |task: &str, partition: &str| -> Vec<&str> {
            section
                .iter()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|cols| cols.get(2) == Some(&task) && cols.get(4) == Some(&partition))
                .unwrap_or_else(|| panic!("{task} {partition} in\n{text}"))
        };
        assert_eq!(
            row("default.k2k.clicks.0.h.a", "2"),
            [
                "clicks",
                "0",
                "default.k2k.clicks.0.h.a",
                "clicks",
                "2",
                "250",
                "1250",
                "1000"
            ]
        );
        assert_eq!(
            row("default.k2k.clicks.1.h.b", "1")[5..],
            ["-", "100", "60"]
        );
        assert!(
            section
                .iter()
                .any(|l| l.contains("default.k2k.clicks.1.h.c") && l.contains("(none assigned)")),
            "{text}"
        );
        assert!(
            section
                .iter()
                .any(|l| l.trim() == "clicks: lag 1.3k records over 3 partitions, 15 replayed"),
            "{text}"
        );
        assert!(
            section
                .iter()
                .any(|l| l.trim() == "out: 4000 produced, 2 produce errors"),
            "{text}"
        );
        assert!(
            !section.iter().any(|l| l.contains("default.k2k.out.0")),
            "{text}"
        );
    }

    #[test]
    fn kafka_section_only_for_kafka_topologies_and_says_when_metrics_are_missing() {
        let plain = topology(
            "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: p}\nspec:\n  operators:\n    - name: gen\n      runtime: {builtin: {name: generator}}\n",
        );
        assert!(!has_kafka_operators(&plain));
        let empty = MetricsView::default();
        assert!(!render_with(&plain, Some(&Ok(empty))).contains("Kafka:"));
        assert!(!render_with(&plain, None).contains("Kafka:"));

        let t = topology(K2K);
        assert!(has_kafka_operators(&t));
        let text = render_with(&t, Some(&Err("connection refused".into())));
        assert!(
            text.contains("Kafka:\n  (live metrics unavailable: connection refused)\n"),
            "{text}"
        );
        let text = render_with(&t, Some(&Ok(MetricsView::default())));
        assert!(
            text.contains("Kafka:\n  (no Kafka metrics reported yet)\n"),
            "{text}"
        );
    }
}
