//! `concord describe topology NAME`

use std::fmt::Write as _;

use concord_schemas::{Runtime, Topology};

use crate::Failure;
use crate::client::Client;
use crate::output::{Table, age, phase};

/// Prints everything a person needs to understand a topology's state.
pub async fn run(client: &Client, ns: &str, name: &str) -> Result<u8, Failure> {
    let t = client.get(ns, name).await?;
    print!("{}", render(&t));
    Ok(0)
}

/// The full text of `describe`.
pub fn render(t: &Topology) -> String {
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

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
}
