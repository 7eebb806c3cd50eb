//! Process operators: the user's command runs as a child process and the executor speaks
//! the operator protocol (`docs/operator-protocol.md`) with it over stdin/stdout.
//!
//! Records handed to `process_record` and due timers are collected into one frame;
//! at the end of each batch the frame is sent and the child's single reply frame
//! (produced records, timers, logs, errors) is applied. Lock-step and batched.
//!
//! A child that dies (crashes, exits) is restarted, and the records of the frame it died
//! on are sent again one at a time: a record the new child dies on as well is a poison
//! record, handed to the operator's error policy (counted, logged, dead-lettered) and
//! skipped, so one bad record never crash-loops the task. The child's state is lost
//! with it.
//!
//! Tracing: a sampled record goes to a child that announced the `trace` feature as a
//! `TracedRecord` carrying this hop's span; the child answers what it produced for it as
//! `TracedProduce` with that span, which is routed with it, so the trace continues
//! downstream. The hop's processing time is the exchange of the frame that held it.
//!
//! Checkpoints: a child that announced the `checkpoint` feature is sent `Checkpoint` when
//! a marker arrives and must answer `Checkpointed` within `checkpointTimeoutMs` (default
//! 30 s); a refusal, no answer (the child is then killed, so the lock-step conversation
//! cannot get out of step, and restarted on the next batch) or a dead child fails the
//! checkpoint, so the marker fails and the source replays.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use concord_sdk::protocol::{FEATURE_CHECKPOINT, FEATURE_TRACE, FrameWriter, Message, read_frame};
use concord_sdk::{Context, Metadata, Operator, OperatorError, Record, TraceContext};

use super::BuiltinEnv;
use crate::clock;

/// How long a checkpoint waits for the child's answer unless `checkpointTimeoutMs` is set.
const DEFAULT_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(30);

/// Hosts a child process speaking the operator protocol.
pub struct ProcessOperator {
    command: String,
    args: Vec<String>,
    artifacts: Vec<serde_json::Value>,
    env_vars: BTreeMap<String, String>,
    env: BuiltinEnv,
    child: Option<Child>,
    stdin: Option<BufWriter<ChildStdin>>,
    stdout: Option<BufReader<ChildStdout>>,
    frame: FrameWriter,
    metadata: Metadata,
    /// The child announced the `trace` feature (understands `TracedRecord`).
    trace_capable: bool,
    /// The child announced the `checkpoint` feature (answers `Checkpoint`).
    checkpoint_capable: bool,
    /// How long a checkpoint waits for the child's answer (`checkpointTimeoutMs`).
    checkpoint_timeout: Duration,
    /// Spans of the traced records in the pending frame.
    traced: Vec<TraceContext>,
    /// What the pending frame holds, to send again if the child dies on it.
    pending: Vec<Pending>,
    /// What the child was handed since its last successful checkpoint (only for a child
    /// that checkpoints, under at-least-once): a child that dies loses what it had not
    /// made durable, so a new one is handed all of it again.
    unsaved: Vec<Pending>,
    /// `unsaved` grew past its bound and was dropped: the next checkpoint fails.
    unsaved_lost: bool,
    /// Items are being handed again whose output was routed already: drop it.
    replaying: bool,
}

/// Most items kept for a child since its last checkpoint; past it they are dropped and
/// the next checkpoint fails (markers stopped coming, or come very rarely).
const MAX_UNSAVED: usize = 1 << 20;

/// An item of the pending frame.
#[derive(Clone)]
enum Pending {
    Record(Record, Option<TraceContext>),
    Timer(Bytes, u64),
}

/// Why an exchange failed.
enum Failure {
    /// The child answered with an `Error` message.
    Reported(OperatorError),
    /// The child is gone (or its pipes are).
    Died(String),
}

impl ProcessOperator {
    /// Not started; `init` spawns the child.
    pub fn new(
        command: String,
        args: Vec<String>,
        artifacts: Vec<serde_json::Value>,
        env_vars: BTreeMap<String, String>,
        env: BuiltinEnv,
    ) -> Self {
        Self {
            metadata: Metadata {
                name: command.clone(),
                inputs: vec![],
                outputs: vec![],
            },
            command,
            args,
            artifacts,
            env_vars,
            env,
            child: None,
            stdin: None,
            stdout: None,
            frame: FrameWriter::new(),
            trace_capable: false,
            checkpoint_capable: false,
            checkpoint_timeout: DEFAULT_CHECKPOINT_TIMEOUT,
            traced: Vec::new(),
            pending: Vec::new(),
            unsaved: Vec::new(),
            unsaved_lost: false,
            replaying: false,
        }
    }

    /// A description of how the child ended, for logs.
    fn exit_status(&mut self) -> String {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status.to_string(),
            _ => "pipe closed".to_owned(),
        }
    }

    /// Starts the child and initialises it.
    fn start(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let local = Path::new(&self.command);
        let program = if !self.command.contains('/') && local.exists() {
            format!("./{}", self.command)
        } else {
            self.command.clone()
        };
        let mut child = Command::new(&program)
            .args(&self.args)
            .envs(&self.env_vars)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| OperatorError::msg(format!("start `{program}`: {e}")))?;
        self.stdin = child
            .stdin
            .take()
            .map(|s| BufWriter::with_capacity(256 << 10, s));
        self.stdout = child
            .stdout
            .take()
            .map(|s| BufReader::with_capacity(256 << 10, s));
        self.child = Some(child);
        self.checkpoint_timeout = ctx
            .config()
            .u64("checkpointTimeoutMs")?
            .map_or(DEFAULT_CHECKPOINT_TIMEOUT, Duration::from_millis);
        let init = serde_json::json!({
            "operator": self.env.operator,
            "instance": self.env.instance,
            "taskId": self.env.task_id,
            "config": ctx.config().values(),
        });
        self.frame = FrameWriter::new();
        self.frame.push(&Message::Init {
            json: init.to_string(),
        });
        match self.exchange(ctx) {
            Ok(()) => Ok(()),
            Err(Failure::Reported(e)) => Err(e),
            Err(Failure::Died(why)) => Err(OperatorError::msg(format!(
                "operator process died during init: {why}"
            ))),
        }
    }

    fn stop_child(&mut self) {
        self.stdin = None;
        self.stdout = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The child died on the pending frame: restart it and send the frame's items again
    /// one at a time; an item it dies on again is a poison record, skipped. A child that
    /// checkpoints is first handed again what the dead one had since its last checkpoint
    /// (what it wrote for them may not be durable), and so is each child that replaces
    /// one dying during the recovery: nothing but the poison record is lost.
    fn recover(&mut self, ctx: &mut Context<'_>, why: String) -> Result<(), OperatorError> {
        // (item, its output was routed already: handed again for its effects only)
        let mut items: std::collections::VecDeque<(Pending, bool)> = self
            .unsaved
            .drain(..)
            .map(|i| (i, true))
            .chain(self.pending.drain(..).map(|i| (i, false)))
            .collect();
        self.frame = FrameWriter::new();
        self.traced.clear();
        tracing::warn!(items = items.len(), reason = %why, "operator process died; restarting it and retrying the batch one record at a time");
        let mut reported = None;
        while let Some((item, answered)) = items.pop_front() {
            if self.child.is_none() {
                self.env.metrics.process_restarts.inc();
                if let Err(e) = self.start(ctx) {
                    // It does not even start: fail the task, so the reconciler's restart
                    // back-off (and CrashLoop in status) takes over.
                    tracing::error!(error = %e, "operator process cannot be restarted; exiting");
                    std::process::exit(1);
                }
            }
            let (record, event_time) = match &item {
                Pending::Record(r, _) => (Some(r.clone()), r.event_time),
                Pending::Timer(_, t) => (None, *t),
            };
            self.push(item);
            self.replaying = answered;
            let exchanged = self.exchange(ctx);
            self.replaying = false;
            match exchanged {
                Ok(()) => self.keep_unsaved(),
                Err(Failure::Reported(e)) => {
                    self.keep_unsaved();
                    reported.get_or_insert(e);
                }
                Err(Failure::Died(w)) => {
                    let status = self.exit_status();
                    self.stop_child();
                    self.pending.clear();
                    self.env.errors.failed(
                        record.as_ref(),
                        event_time,
                        &format!("operator process died on this record ({w}; {status})"),
                    );
                    for earlier in std::mem::take(&mut self.unsaved).into_iter().rev() {
                        items.push_front((earlier, true));
                    }
                }
            }
        }
        match reported {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The pending frame was answered: keep its items until the next checkpoint if the
    /// child checkpoints (under at-least-once), else forget them.
    fn keep_unsaved(&mut self) {
        if !(self.checkpoint_capable && self.env.at_least_once) || self.unsaved_lost {
            self.pending.clear();
            return;
        }
        if self.unsaved.len() + self.pending.len() > MAX_UNSAVED {
            self.unsaved.clear();
            self.pending.clear();
            self.unsaved_lost = true;
            return;
        }
        self.unsaved.append(&mut self.pending);
    }

    /// Adds an item to the pending frame.
    fn push(&mut self, item: Pending) {
        match &item {
            Pending::Record(record, None) => {
                self.frame
                    .push_record(&record.key, &record.value, record.event_time)
            }
            Pending::Record(record, Some(span)) => {
                self.traced.push(*span);
                if self.trace_capable {
                    self.frame.push_traced_record(
                        &record.key,
                        &record.value,
                        record.event_time,
                        *span,
                    );
                } else {
                    // An older SDK: its output for this record starts untraced.
                    self.frame
                        .push_record(&record.key, &record.value, record.event_time);
                }
            }
            Pending::Timer(key, time) => self.frame.push(&Message::Timer {
                key: key.to_vec(),
                time: *time,
            }),
        }
        self.pending.push(item);
    }

    /// Sends the pending frame and applies the reply.
    fn exchange(&mut self, ctx: &mut Context<'_>) -> Result<(), Failure> {
        let (Some(stdin), Some(stdout)) = (self.stdin.as_mut(), self.stdout.as_mut()) else {
            return Err(Failure::Died("operator process is not running".to_owned()));
        };
        let frame = self.frame.finish();
        let traced = std::mem::take(&mut self.traced);
        let sent_ns = if traced.is_empty() {
            0
        } else {
            clock::wall_ns()
        };
        stdin
            .write_all(&frame)
            .and_then(|()| stdin.flush())
            .map_err(|e| Failure::Died(format!("write to operator process: {e}")))?;
        let reply = read_frame(stdout)
            .map_err(|e| Failure::Died(format!("read from operator process: {e}")))?
            .ok_or_else(|| Failure::Died("operator process exited".to_owned()))?;
        if !traced.is_empty() {
            let replied_ns = clock::wall_ns();
            for span in traced {
                ctx.report_span_timing(span, sent_ns, replied_ns);
            }
        }
        let mut first_error = None;
        for msg in reply {
            match msg {
                Message::Produce { .. } | Message::TracedProduce { .. } if self.replaying => {}
                Message::Produce {
                    stream,
                    key,
                    value,
                    event_time,
                } => ctx.produce_at(&stream, key, value, event_time),
                Message::TracedProduce {
                    stream,
                    key,
                    value,
                    event_time,
                    trace,
                } => ctx.produce_traced(&stream, key, value, event_time, trace),
                Message::SetTimer { key, time } => ctx.set_timer(key, time),
                Message::Log { level, message } => match level {
                    0 => tracing::error!(target: "operator", "{message}"),
                    1 => tracing::warn!(target: "operator", "{message}"),
                    2 => tracing::info!(target: "operator", "{message}"),
                    _ => tracing::debug!(target: "operator", "{message}"),
                },
                Message::Metadata { json } => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) {
                        let list = |k: &str| -> Vec<String> {
                            v.get(k)
                                .and_then(|x| x.as_array())
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|s| s.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default()
                        };
                        self.trace_capable = v
                            .get("features")
                            .and_then(|f| f.as_array())
                            .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(FEATURE_TRACE)));
                        self.checkpoint_capable = v
                            .get("features")
                            .and_then(|f| f.as_array())
                            .is_some_and(|f| {
                                f.iter().any(|x| x.as_str() == Some(FEATURE_CHECKPOINT))
                            });
                        self.metadata = Metadata {
                            name: v
                                .get("name")
                                .and_then(|n| n.as_str())
                                .unwrap_or(&self.command)
                                .to_owned(),
                            inputs: list("inputs"),
                            outputs: list("outputs"),
                        };
                    }
                }
                Message::Error { message } => {
                    tracing::warn!(target: "operator", "operator error: {message}");
                    first_error.get_or_insert(message);
                }
                other => tracing::warn!(?other, "unexpected message from operator process"),
            }
        }
        match first_error {
            Some(m) => Err(Failure::Reported(OperatorError::Failed(m))),
            None => Ok(()),
        }
    }

    /// Sends `Checkpoint` and waits for `Checkpointed`, killing the child when it does
    /// not answer within the timeout (a late answer would be taken for the next reply).
    fn ask_checkpoint(&mut self) -> Result<(), String> {
        let (Some(child), Some(stdin), Some(stdout)) = (
            self.child.as_ref(),
            self.stdin.as_mut(),
            self.stdout.as_mut(),
        ) else {
            return Err("operator process is not running".to_owned());
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let mut fw = FrameWriter::new();
        fw.push(&Message::Checkpoint);
        let frame = fw.finish();
        let timeout = self.checkpoint_timeout;
        let (done, wait) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let expired = matches!(
                wait.recv_timeout(timeout),
                Err(mpsc::RecvTimeoutError::Timeout)
            );
            if expired {
                // The child is ours and not yet reaped, so the pid is still its own.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            expired
        });
        let reply = stdin
            .write_all(&frame)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("write to operator process: {e}"))
            .and_then(|()| {
                read_frame(stdout)
                    .map_err(|e| format!("read from operator process: {e}"))?
                    .ok_or_else(|| "operator process exited".to_owned())
            });
        drop(done);
        if watchdog.join().unwrap_or(false) {
            return Err(format!(
                "operator process did not answer the checkpoint within {} ms",
                timeout.as_millis()
            ));
        }
        let mut answer = None;
        for msg in reply? {
            match msg {
                Message::Checkpointed { ok, message } => answer = Some((ok, message)),
                Message::Log { level, message } => match level {
                    0 => tracing::error!(target: "operator", "{message}"),
                    1 => tracing::warn!(target: "operator", "{message}"),
                    _ => tracing::info!(target: "operator", "{message}"),
                },
                other => tracing::warn!(?other, "unexpected message in a checkpoint answer"),
            }
        }
        match answer {
            Some((true, _)) => Ok(()),
            Some((false, message)) => Err(format!("operator checkpoint failed: {message}")),
            None => {
                Err("operator process answered the checkpoint without `Checkpointed`".to_owned())
            }
        }
    }

    fn fetch_local_artifacts(&self) {
        for a in &self.artifacts {
            let Some(uri) = a.get("uri").and_then(|u| u.as_str()) else {
                continue;
            };
            let path = uri.strip_prefix("file://").unwrap_or(uri);
            if !path.starts_with('/') {
                continue; // remote artefacts are fetched by the Mesos fetcher
            }
            let name = a
                .get("outputFile")
                .and_then(|o| o.as_str())
                .map(str::to_owned)
                .or_else(|| {
                    Path::new(path)
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                });
            if let Some(name) = name
                && !Path::new(&name).exists()
                && let Err(e) = std::fs::copy(path, &name)
            {
                tracing::warn!(error = %e, %path, "cannot copy artefact into the sandbox");
            }
        }
    }
}

impl Operator for ProcessOperator {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        self.fetch_local_artifacts();
        self.start(ctx)
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        let span = ctx.trace();
        self.push(Pending::Record(record, span));
        Ok(())
    }

    fn process_timer(
        &mut self,
        _ctx: &mut Context<'_>,
        key: Bytes,
        time: u64,
    ) -> Result<(), OperatorError> {
        self.push(Pending::Timer(key, time));
        Ok(())
    }

    fn end_of_batch(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        if self.frame.is_empty() {
            return Ok(());
        }
        match self.exchange(ctx) {
            Ok(()) => {
                self.keep_unsaved();
                Ok(())
            }
            Err(Failure::Reported(e)) => {
                self.keep_unsaved();
                Err(e)
            }
            Err(Failure::Died(why)) => {
                let status = self.exit_status();
                self.stop_child();
                self.recover(ctx, format!("{why}; {status}"))
            }
        }
    }

    fn checkpoint(&mut self) -> Result<(), OperatorError> {
        if !self.frame.is_empty() {
            // Markers arrive between batches, so this does not happen; if it did, the
            // records in the frame were not handed over yet.
            return Err(OperatorError::msg(
                "records not yet sent to the operator process at a checkpoint",
            ));
        }
        if !self.checkpoint_capable {
            // An SDK without the feature: it cannot be asked.
            return Ok(());
        }
        // Whatever the outcome, the marker settles what was handed over so far: on
        // success it is durable, on failure the source replays it.
        self.unsaved.clear();
        if std::mem::take(&mut self.unsaved_lost) {
            return Err(OperatorError::msg(
                "too many records since the last checkpoint to hand to a restarted operator process",
            ));
        }
        if self.child.is_none() {
            // It died on the last record it was handed (that record went to the error
            // policy); everything before it was handed to the new child again.
            return Ok(());
        }
        self.ask_checkpoint().map_err(|why| {
            if !why.starts_with("operator checkpoint failed") {
                // Gone or out of step: replace the child on the next batch.
                self.stop_child();
            }
            OperatorError::msg(why)
        })
    }

    fn destroy(&mut self) {
        self.frame = FrameWriter::new();
        self.frame.push(&Message::Destroy);
        let frame = self.frame.finish();
        if let (Some(stdin), Some(stdout)) = (self.stdin.as_mut(), self.stdout.as_mut()) {
            let sent = stdin.write_all(&frame).and_then(|()| stdin.flush());
            if sent.is_ok() {
                let _ = read_frame(stdout);
            }
        }
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        tracing::info!(%status, "operator process exited");
                        break;
                    }
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}
