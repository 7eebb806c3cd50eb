//! `sink`: the end of a pipeline. Writes records somewhere (`target`: `log` = stdout,
//! `discard`, `file`, `http` POST, `tcp`), counts them and keeps an end-to-end latency
//! histogram (HDR, 2 significant digits = at most 1% error).
//!
//! Records are written a batch at a time (one write, POST or file append per input
//! batch). HTTP and TCP batches go to a writer thread through a bounded queue: when it
//! is full the operator waits (back-pressure) rather than dropping. The writer retries a
//! failed batch (`retries`, default 5, back-off from `retryBackoffMs`, default 100 ms,
//! doubling to 5 s); HTTP answers other than 2xx are failures (4xx other than 408 and
//! 429 are not retried); TCP keeps one connection, with connect and write timeouts
//! (`timeoutMs`, default 5 s), and reconnects after an error. A batch that cannot be
//! written is counted in `concord_dropped_records_total{reason="sink_error"}` and
//! logged at warn. `checkpoint` returns once every batch before it was written (the file
//! synced to disk) and fails if any record since the previous checkpoint was dropped or
//! the writer did not finish within `checkpointTimeoutMs` (default 30 s).
//!
//! In `mode: benchmark` the latency of each record is measured from the monotonic
//! creation time in the first 8 bytes of its value; otherwise from its event time. With
//! `expect: N` and `reportFile`, the sink writes a JSON report (counts, the times it
//! passed 10%, 90% and 100% of N, latency percentiles over the whole run and over the
//! steady 10%..90% part) when it has seen N records and again on destroy.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};
use hdrhistogram::Histogram;
use prometheus_client::metrics::counter::Counter;

use super::{BuiltinEnv, benchmark};
use crate::clock;

/// Batches queued for a writer thread before the operator waits.
const QUEUE_BATCHES: usize = 64;
/// A batch is handed over early when it grows past this many bytes.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Longest pause between two attempts to write a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Target {
    Discard,
    Stdout,
    File(File),
    /// HTTP or TCP: written by a thread.
    Remote(Writer),
}

/// One batch for the writer thread.
struct Batch {
    body: Vec<u8>,
    records: u64,
}

/// What the writer thread has done, shared with the operator.
#[derive(Default)]
struct Progress {
    /// Batches finished (written or given up on).
    done: u64,
    /// Records given up on since the last checkpoint, and the last error.
    failed: u64,
    error: Option<String>,
    /// The operator stopped waiting (destroy) and counted what was left itself.
    abandoned: bool,
}

type Shared = Arc<(Mutex<Progress>, Condvar)>;

/// Why an attempt to write a batch failed.
struct Attempt {
    message: String,
    retry: bool,
}

/// The operator's side of a writer thread.
struct Writer {
    tx: Option<SyncSender<Batch>>,
    shared: Shared,
    /// Batches handed to the thread.
    sent: u64,
    /// Records of the last batches handed to the thread, oldest first (at most the
    /// queue and the one being written can be unfinished: for destroy).
    in_flight: std::collections::VecDeque<u64>,
    thread: Option<JoinHandle<()>>,
}

/// Retry settings.
#[derive(Clone, Copy)]
struct Retry {
    retries: u32,
    backoff: Duration,
}

impl Writer {
    fn spawn(
        what: &'static str,
        retry: Retry,
        dropped: Counter,
        mut attempt: impl FnMut(&[u8]) -> Result<(), Attempt> + Send + 'static,
    ) -> Result<Self, OperatorError> {
        let (tx, rx) = sync_channel::<Batch>(QUEUE_BATCHES);
        let shared: Shared = Arc::default();
        let progress = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{what}"))
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    let mut backoff = retry.backoff;
                    let mut tries = 0;
                    let outcome = loop {
                        match attempt(&batch.body) {
                            Ok(()) => break Ok(()),
                            Err(e) if e.retry && tries < retry.retries => {
                                tries += 1;
                                tracing::debug!(error = %e.message, tries, "sink {what} write failed; retrying");
                                std::thread::sleep(backoff);
                                backoff = (backoff * 2).min(MAX_BACKOFF);
                            }
                            Err(e) => break Err(e.message),
                        }
                    };
                    let (lock, cond) = &*progress;
                    let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = outcome
                        && !p.abandoned
                    {
                        dropped.inc_by(batch.records);
                        p.failed += batch.records;
                        tracing::warn!(error = %e, records = batch.records, tries = tries + 1, "sink {what} write failed; records dropped");
                        p.error = Some(e);
                    }
                    p.done += 1;
                    cond.notify_all();
                }
            })
            .map_err(|e| OperatorError::msg(format!("spawn: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            shared,
            sent: 0,
            in_flight: Default::default(),
            thread: Some(thread),
        })
    }

    /// Queues a batch, waiting while the queue is full. Err: the thread is gone.
    fn send(&mut self, batch: Batch) -> Result<(), Batch> {
        let Some(tx) = &self.tx else {
            return Err(batch);
        };
        let records = batch.records;
        tx.send(batch).map_err(|e| e.0)?;
        self.sent += 1;
        self.in_flight.push_back(records);
        if self.in_flight.len() > QUEUE_BATCHES + 1 {
            self.in_flight.pop_front();
        }
        Ok(())
    }

    /// Waits until every batch sent was finished; Err when some records were dropped
    /// since the last call or the deadline passed.
    fn wait(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        while p.done < self.sent {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} batches not written within {} ms",
                    self.sent - p.done,
                    timeout.as_millis()
                ));
            }
            p = cond
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let error = p.error.take().unwrap_or_default();
        match std::mem::take(&mut p.failed) {
            0 => Ok(()),
            n => Err(format!("{n} records could not be written ({error})")),
        }
    }

    /// Stops the thread after it finished the queue, waiting at most `timeout`; what it
    /// did not finish is counted as dropped.
    fn close(&mut self, timeout: Duration, dropped: &Counter) {
        self.tx = None;
        let _ = self.wait(timeout);
        let (lock, _) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        if p.done < self.sent {
            // Batches finish in order: the unfinished ones are the last ones sent.
            let unfinished = (self.sent - p.done) as usize;
            let lost: u64 = self.in_flight.iter().rev().take(unfinished).sum();
            dropped.inc_by(lost);
            tracing::warn!(
                records = lost,
                "sink stopped before writing everything; records dropped"
            );
            p.abandoned = true;
        } else if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a batch over one kept TCP connection, connecting (again) when needed.
fn tcp_attempt(address: String, timeout: Duration) -> impl FnMut(&[u8]) -> Result<(), Attempt> {
    let mut conn: Option<TcpStream> = None;
    move |body| {
        let fail = |message: String| Attempt {
            message,
            retry: true,
        };
        if conn.is_none() {
            let addr = address
                .to_socket_addrs()
                .map_err(|e| fail(format!("resolve {address}: {e}")))?
                .next()
                .ok_or_else(|| fail(format!("resolve {address}: no address")))?;
            let c = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| fail(format!("connect {address}: {e}")))?;
            c.set_write_timeout(Some(timeout))
                .and_then(|()| c.set_nodelay(true))
                .map_err(|e| fail(format!("connect {address}: {e}")))?;
            tracing::info!(%address, "sink connected");
            conn = Some(c);
        }
        let Some(c) = conn.as_mut() else {
            return Err(fail("not connected".to_owned()));
        };
        c.write_all(body).and_then(|()| c.flush()).map_err(|e| {
            conn = None;
            fail(format!("write to {address}: {e}"))
        })
    }
}

/// POSTs a batch; a 2xx answer is success. The client is made on the writer thread.
fn http_attempt(url: String, timeout: Duration) -> impl FnMut(&[u8]) -> Result<(), Attempt> {
    let mut client: Option<reqwest::blocking::Client> = None;
    move |body| {
        let c = match &client {
            Some(c) => c,
            None => client.insert(
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .build()
                    .map_err(|e| Attempt {
                        message: format!("http client: {e}"),
                        retry: false,
                    })?,
            ),
        };
        let res = c
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(body.to_vec())
            .send()
            .map_err(|e| Attempt {
                message: format!("POST {url}: {e}"),
                retry: true,
            })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        Err(Attempt {
            message: format!("POST {url}: status {status}"),
            retry: status.is_server_error() || matches!(status.as_u16(), 408 | 429),
        })
    }
}

/// The `sink` built-in.
pub struct Sink {
    target: Target,
    include_key: bool,
    benchmark: bool,
    expect: u64,
    report_file: Option<String>,
    count: u64,
    min_created_ns: u64,
    first_ns: u64,
    t10: u64,
    t90: u64,
    t100: u64,
    overall: Option<Histogram<u64>>,
    steady: Option<Histogram<u64>>,
    reported: bool,
    /// The batch being built and how many records it holds.
    pending: Vec<u8>,
    pending_records: u64,
    /// Records dropped since the last checkpoint by synchronous targets.
    failed: u64,
    checkpoint_timeout: Duration,
    dropped: Counter,
}

impl Default for Sink {
    fn default() -> Self {
        Self {
            target: Target::Discard,
            include_key: false,
            benchmark: false,
            expect: 0,
            report_file: None,
            count: 0,
            min_created_ns: u64::MAX,
            first_ns: 0,
            t10: 0,
            t90: 0,
            t100: 0,
            overall: None,
            steady: None,
            reported: false,
            pending: Vec::new(),
            pending_records: 0,
            failed: 0,
            checkpoint_timeout: Duration::from_secs(30),
            dropped: Counter::default(),
        }
    }
}

fn histogram() -> Result<Histogram<u64>, OperatorError> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
        .map_err(|e| OperatorError::msg(format!("histogram: {e}")))
}

impl Sink {
    /// Records seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// A sink whose drops are counted in the executor's metrics.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self {
            dropped: env.metrics.dropped_for(crate::metrics::DROPPED_SINK_ERROR),
            ..Self::default()
        }
    }

    fn write_out(&mut self, record: &Record) {
        if self.include_key {
            self.pending.extend_from_slice(&record.key);
            self.pending.push(b'\t');
        }
        self.pending.extend_from_slice(&record.value);
        self.pending.push(b'\n');
        self.pending_records += 1;
        if self.pending.len() >= MAX_BATCH_BYTES {
            self.flush();
        }
    }

    /// Writes (or hands to the writer thread) the batch built so far.
    fn flush(&mut self) {
        if self.pending_records == 0 {
            return;
        }
        let body = std::mem::take(&mut self.pending);
        let records = std::mem::take(&mut self.pending_records);
        let res = match &mut self.target {
            Target::Discard => Ok(()),
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&body).and_then(|()| out.flush())
            }
            Target::File(f) => f.write_all(&body),
            Target::Remote(w) => w
                .send(Batch { body, records })
                .map_err(|_| std::io::Error::other("sink writer thread is gone")),
        };
        if let Err(e) = res {
            self.dropped.inc_by(records);
            self.failed += records;
            tracing::warn!(error = %e, records, "sink write failed; records dropped");
        }
    }

    fn report(&self) -> serde_json::Value {
        let pct = |h: &Option<Histogram<u64>>| {
            h.as_ref().map(|h| {
                serde_json::json!({
                    "count": h.len(),
                    "p50Ns": h.value_at_quantile(0.5),
                    "p99Ns": h.value_at_quantile(0.99),
                    "p999Ns": h.value_at_quantile(0.999),
                    "maxNs": h.max(),
                    "meanNs": h.mean(),
                })
            })
        };
        serde_json::json!({
            "count": self.count,
            "expect": self.expect,
            "minCreatedNs": if self.min_created_ns == u64::MAX { 0 } else { self.min_created_ns },
            "firstNs": self.first_ns,
            "t10Ns": self.t10,
            "t90Ns": self.t90,
            "t100Ns": self.t100,
            "overall": pct(&self.overall),
            "steady": pct(&self.steady),
        })
    }

    fn write_report(&self) {
        if let Some(path) = &self.report_file {
            let tmp = format!("{path}.tmp");
            let ok = std::fs::write(&tmp, self.report().to_string())
                .and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = ok {
                tracing::warn!(error = %e, %path, "cannot write sink report");
            }
        }
    }
}

impl Operator for Sink {
    fn metadata(&self) -> Metadata {
        Metadata {
            name: "sink".into(),
            inputs: vec!["in".into()],
            outputs: vec![],
        }
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        self.benchmark = c.str("mode")?.as_deref() == Some("benchmark");
        self.include_key = c.bool("includeKey")?.unwrap_or(false);
        self.expect = c.u64("expect")?.unwrap_or(0);
        self.report_file = c.str("reportFile")?;
        let default_target = if self.benchmark { "discard" } else { "log" };
        let retry = Retry {
            retries: u32::try_from(c.u64("retries")?.unwrap_or(5)).unwrap_or(u32::MAX),
            backoff: Duration::from_millis(c.u64("retryBackoffMs")?.unwrap_or(100)),
        };
        let timeout = Duration::from_millis(c.u64("timeoutMs")?.unwrap_or(5_000).max(1));
        self.checkpoint_timeout =
            Duration::from_millis(c.u64("checkpointTimeoutMs")?.unwrap_or(30_000));
        self.target = match c.str("target")?.as_deref().unwrap_or(default_target) {
            "discard" => Target::Discard,
            "log" | "stdout" => Target::Stdout,
            "file" => {
                let path = c.required_str("path")?;
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| OperatorError::msg(format!("open {path}: {e}")))?;
                Target::File(f)
            }
            "tcp" => Target::Remote(Writer::spawn(
                "tcp",
                retry,
                self.dropped.clone(),
                tcp_attempt(c.required_str("address")?, timeout),
            )?),
            "http" => Target::Remote(Writer::spawn(
                "http",
                retry,
                self.dropped.clone(),
                http_attempt(c.required_str("url")?, timeout),
            )?),
            other => {
                return Err(OperatorError::msg(format!(
                    "sink target `{other}`: expected log, discard, file, tcp or http"
                )));
            }
        };
        self.overall = Some(histogram()?);
        self.steady = Some(histogram()?);
        Ok(())
    }

    fn process_record(
        &mut self,
        _ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        let latency_ns = if self.benchmark {
            let now = clock::monotonic_ns();
            let created = benchmark::timestamp(&record.value).unwrap_or(now);
            self.min_created_ns = self.min_created_ns.min(created);
            if self.count == 0 {
                self.first_ns = now;
            }
            now.saturating_sub(created)
        } else {
            clock::wall_ms().saturating_sub(record.event_time) * 1_000_000
        };
        self.count += 1;
        let latency_ns = latency_ns.max(1);
        if let Some(h) = &mut self.overall {
            h.saturating_record(latency_ns);
        }
        if self.expect > 0 {
            let in_steady = self.count * 10 > self.expect && self.count * 10 <= self.expect * 9;
            if in_steady && let Some(h) = &mut self.steady {
                h.saturating_record(latency_ns);
            }
            if self.t10 == 0 && self.count * 10 >= self.expect {
                self.t10 = clock::monotonic_ns();
            }
            if self.t90 == 0 && self.count * 10 >= self.expect * 9 {
                self.t90 = clock::monotonic_ns();
            }
            if self.count == self.expect {
                self.t100 = clock::monotonic_ns();
                tracing::info!(count = self.count, "sink reached expected count");
                self.write_report();
                self.reported = true;
            }
        }
        if !matches!(self.target, Target::Discard) {
            self.write_out(&record);
        }
        Ok(())
    }

    fn end_of_batch(&mut self, _ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        self.flush();
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), OperatorError> {
        self.flush();
        let failed = std::mem::take(&mut self.failed);
        let waited = match &mut self.target {
            Target::Remote(w) => w.wait(self.checkpoint_timeout),
            Target::File(f) => f.sync_data().map_err(|e| format!("sync: {e}")),
            Target::Discard | Target::Stdout => Ok(()),
        };
        if let Err(e) = waited {
            return Err(OperatorError::msg(format!(
                "sink checkpoint: {e}{}",
                if failed > 0 {
                    format!(" (and {failed} records could not be written)")
                } else {
                    String::new()
                }
            )));
        }
        match failed {
            0 => Ok(()),
            n => Err(OperatorError::msg(format!(
                "sink checkpoint: {n} records could not be written"
            ))),
        }
    }

    fn destroy(&mut self) {
        self.flush();
        if let Target::Remote(w) = &mut self.target {
            w.close(self.checkpoint_timeout, &self.dropped);
        }
        self.write_report();
        tracing::info!(count = self.count, "sink destroyed");
    }
}
