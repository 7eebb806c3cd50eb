//! `concord logs NAME OPERATOR [--instance I] [--stderr] [-f]`: a task's stdout or
//! stderr, read through the controller (which reads the Mesos files API).
//!
//! The task is the newest running one of the instance (during a rolling replace two
//! tasks share an instance index); with none running, the newest known one. `--task`
//! names a task directly, e.g. a failed one from `concord describe`.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use concord_schemas::Topology;
use serde::Deserialize;

use crate::Failure;
use crate::client::Client;

/// How often `-f` asks for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
/// How many follow polls between checks that the task still runs.
const STATE_CHECK_EVERY: u32 = 4;

/// Arguments of `concord logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Topology name.
    pub name: String,
    /// Operator name.
    pub operator: String,
    /// Instance index.
    #[arg(long, default_value_t = 0)]
    pub instance: u32,
    /// A task ID instead of the instance's current task.
    #[arg(long)]
    pub task: Option<String>,
    /// Print stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Start with only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Keep printing new output until Ctrl-C or the task ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// The logs endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogChunk {
    pub data: String,
    pub next_offset: u64,
}

const TERMINAL: &[&str] = &[
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
];

/// Picks the task of `operator`/`instance`: running ones first, then the newest.
pub fn pick_task(t: &Topology, operator: &str, instance: u32) -> Result<String, Failure> {
    if !t.spec.operators.iter().any(|o| o.name == operator) {
        let names: Vec<&str> = t.spec.operators.iter().map(|o| o.name.as_str()).collect();
        return Err(Failure::invalid(format!(
            "topology/{} has no operator {operator:?}; it has: {}",
            t.metadata.name,
            names.join(", ")
        )));
    }
    let tasks: Vec<_> = t
        .status
        .as_ref()
        .and_then(|s| s.operators.iter().find(|o| o.name == operator))
        .map(|o| o.tasks.iter().filter(|t| t.instance == instance).collect())
        .unwrap_or_default();
    tasks
        .iter()
        .max_by_key(|t| (t.state == "TASK_RUNNING", t.since))
        .map(|t| t.task_id.clone())
        .ok_or_else(|| {
            Failure::invalid(format!(
                "operator {operator} of topology/{} has no task for instance {instance} (yet); \
                 see `concord describe topology {}`",
                t.metadata.name, t.metadata.name
            ))
        })
}

fn task_ended(t: &Topology, task: &str) -> bool {
    let state = t
        .status
        .as_ref()
        .into_iter()
        .flat_map(|s| &s.operators)
        .flat_map(|o| &o.tasks)
        .find(|x| x.task_id == task)
        .map(|x| x.state.as_str());
    state.is_none_or(|s| TERMINAL.contains(&s))
}

fn emit(data: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(data.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::invalid(format!("cannot write to stdout: {e}")))
}

/// Reads from `offset` up to the log's size when called; returns the next offset.
///
/// The end is fixed first: a task that writes faster than pages come back would
/// otherwise keep a plain `concord logs` reading forever.
async fn drain(
    client: &Client,
    ns: &str,
    name: &str,
    task: &str,
    stderr: bool,
    mut offset: u64,
) -> Result<u64, Failure> {
    let size: LogChunk = client.logs(ns, name, task, stderr, -1, None).await?;
    let end = size.next_offset;
    while offset < end {
        let at = i64::try_from(offset).unwrap_or(i64::MAX);
        let chunk: LogChunk = client
            .logs(ns, name, task, stderr, at, Some(end - offset))
            .await?;
        if chunk.data.is_empty() || chunk.next_offset <= offset {
            break;
        }
        emit(&chunk.data)?;
        offset = chunk.next_offset;
    }
    Ok(offset)
}

/// Prints the last `lines` lines; returns the offset after them (the size when read).
async fn tail(
    client: &Client,
    ns: &str,
    name: &str,
    task: &str,
    stderr: bool,
    lines: usize,
) -> Result<u64, Failure> {
    const STEP: u64 = 64 * 1024;
    let size: LogChunk = client.logs(ns, name, task, stderr, -1, None).await?;
    let size = size.next_offset;
    let mut start = size;
    let mut text = String::new();
    // Read backwards until the text holds more than `lines` line ends (or the file start).
    while start > 0 && text.matches('\n').count() <= lines {
        let from = start.saturating_sub(STEP);
        let mut part = String::new();
        let mut at = from;
        while at < start {
            let chunk: LogChunk = client
                .logs(ns, name, task, stderr, at as i64, Some(start - at))
                .await?;
            if chunk.data.is_empty() || chunk.next_offset <= at {
                break;
            }
            part.push_str(&chunk.data);
            at = chunk.next_offset;
        }
        text.insert_str(0, &part);
        start = from;
    }
    emit(&last_lines(&text, lines, start == 0))?;
    Ok(size)
}

/// The last `n` lines of `text`; without `complete`, its first (partial) line never counts.
pub fn last_lines(text: &str, n: usize, complete: bool) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut parts: Vec<&str> = body.split('\n').collect();
    if !complete && parts.len() > 1 {
        parts.remove(0);
    } else if !complete {
        return String::new();
    }
    if body.is_empty() || n == 0 {
        return String::new();
    }
    let keep = parts.len().saturating_sub(n);
    let mut out = parts[keep..].join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Runs `concord logs`.
pub async fn run(client: &Client, ns: &str, args: &LogsArgs) -> Result<u8, Failure> {
    let topology = client.get(ns, &args.name).await?;
    let task = match &args.task {
        Some(t) => t.clone(),
        None => pick_task(&topology, &args.operator, args.instance)?,
    };
    let mut offset = match args.tail {
        // Exactly the last N lines, then (with -f) whatever comes after them.
        Some(lines) => tail(client, ns, &args.name, &task, args.stderr, lines).await?,
        None => drain(client, ns, &args.name, &task, args.stderr, 0).await?,
    };
    if !args.follow {
        return Ok(0);
    }
    let mut polls = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
        offset = drain(client, ns, &args.name, &task, args.stderr, offset).await?;
        polls += 1;
        if polls >= STATE_CHECK_EVERY {
            polls = 0;
            let t = client.get(ns, &args.name).await?;
            if task_ended(&t, &task) {
                // Whatever the task wrote last.
                drain(client, ns, &args.name, &task, args.stderr, offset).await?;
                eprintln!("task {task} has ended");
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_of_a_tail() {
        assert_eq!(last_lines("a\nb\nc\n", 2, true), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2, true), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5, true), "a\nb\n");
        // Read from the middle of the file: the first line is partial and never shown.
        assert_eq!(last_lines("rtial\nb\n", 5, false), "b\n");
        assert_eq!(last_lines("partial", 5, false), "");
        assert_eq!(last_lines("", 3, true), "");
        assert_eq!(last_lines("a\n", 0, true), "");
    }
}
