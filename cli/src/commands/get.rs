//! `concord get topologies|topology NAME [-o table|json|yaml] [-w]`

use std::time::Duration;

use concord_schemas::Topology;
use concord_schemas::api::{WatchEvent, WatchEventType};
use futures::StreamExt;

use crate::client::{Client, ClientError};
use crate::output::{Table, topology_headers, topology_row};
use crate::{Failure, OutputFormat};

/// Prints the current state, then with `watch` every change until interrupted.
pub async fn run(
    client: &Client,
    ns: Option<&str>,
    name: Option<&str>,
    format: OutputFormat,
    watch: bool,
) -> Result<u8, Failure> {
    let with_ns = ns.is_none();
    if watch {
        // The watch replays the current state as ADDED events, then streams changes.
        if let Some(name) = name {
            client.get(ns.unwrap_or("default"), name).await?;
        }
        if format == OutputFormat::Table {
            print!("{}", Table::new(&topology_headers(with_ns)).render());
        }
        return follow(client, ns, name, format, with_ns, None).await;
    }
    let items = match name {
        Some(name) => vec![client.get(ns.unwrap_or("default"), name).await?],
        None => client.list(ns).await?.items,
    };
    match format {
        OutputFormat::Table => {
            if items.is_empty() {
                eprintln!(
                    "No topologies found{}.",
                    ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
                );
                return Ok(0);
            }
            let mut table = Table::new(&topology_headers(with_ns));
            for t in &items {
                table.row(topology_row(t, with_ns));
            }
            print!("{}", table.render());
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            if name.is_some() {
                for t in &items {
                    print_object(t, format)?;
                }
            } else {
                let list = serde_json::json!({
                    "apiVersion": concord_schemas::API_VERSION,
                    "kind": "TopologyList",
                    "items": items,
                });
                print_value(&list, format)?;
            }
        }
    }
    Ok(0)
}

async fn follow(
    client: &Client,
    ns: Option<&str>,
    name: Option<&str>,
    format: OutputFormat,
    with_ns: bool,
    mut after: Option<String>,
) -> Result<u8, Failure> {
    let mut failures = 0u32;
    loop {
        let stream = match client
            .watch(ns.or(name.map(|_| "default")), name, after.as_deref())
            .await
        {
            Ok(s) => s,
            Err(e @ ClientError::Unreachable { .. }) => {
                failures += 1;
                if failures > 10 {
                    return Err(e.into());
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(e) => e,
                Err(_) => break,
            };
            failures = 0;
            if event.kind == WatchEventType::Error {
                if event.code == Some(410) {
                    // Too old: start over from the current state.
                    after = None;
                } else {
                    after = Some(event.revision.clone());
                }
                break;
            }
            after = Some(event.revision.clone());
            print_event(&event, format, with_ns)?;
        }
        // Stream ended (controller restart or etcd hiccup): resume after a short pause.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn print_event(event: &WatchEvent, format: OutputFormat, with_ns: bool) -> Result<(), Failure> {
    let Some(t) = &event.object else {
        return Ok(());
    };
    match format {
        OutputFormat::Table => {
            let mut row = topology_row(t, with_ns);
            if event.kind == WatchEventType::Deleted {
                if let Some(status) = row.iter_mut().rev().nth(1) {
                    *status = "Deleted".into();
                }
            }
            // Watch rows are aligned like the header, without re-printing it.
            let mut table = Table::new(&topology_headers(with_ns));
            table.row(row);
            let rendered = table.render();
            if let Some(line) = rendered.lines().nth(1) {
                println!("{line}");
            }
        }
        OutputFormat::Json => println!("{}", serde_json::to_string(event).map_err(to_failure)?),
        OutputFormat::Yaml => {
            println!("---");
            print!("{}", serde_yaml_ng::to_string(event).map_err(to_failure)?);
        }
    }
    Ok(())
}

fn print_object(t: &Topology, format: OutputFormat) -> Result<(), Failure> {
    print_value(&serde_json::to_value(t).map_err(to_failure)?, format)
}

fn print_value(v: &serde_json::Value, format: OutputFormat) -> Result<(), Failure> {
    match format {
        OutputFormat::Yaml => print!("{}", serde_yaml_ng::to_string(v).map_err(to_failure)?),
        _ => println!("{}", serde_json::to_string_pretty(v).map_err(to_failure)?),
    }
    Ok(())
}

fn to_failure(e: impl std::fmt::Display) -> Failure {
    Failure::invalid(format!("cannot render output: {e}"))
}
