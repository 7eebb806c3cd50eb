//! `sink`: the end of a pipeline. Writes records somewhere (`target`: `log` = stdout,
//! `discard`, `file`, `http` POST, `tcp`), counts them and keeps an end-to-end latency
//! histogram (HDR, 2 significant digits = at most 1% error).
//!
//! In `mode: benchmark` the latency of each record is measured from the monotonic
//! creation time in the first 8 bytes of its value; otherwise from its event time. With
//! `expect: N` and `reportFile`, the sink writes a JSON report (counts, the times it
//! passed 10%, 90% and 100% of N, latency percentiles over the whole run and over the
//! steady 10%..90% part) when it has seen N records and again on destroy.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::sync::mpsc::{SyncSender, sync_channel};

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};
use hdrhistogram::Histogram;

use super::benchmark;
use crate::clock;

enum Target {
    Discard,
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<File>),
    Tcp(String, Option<BufWriter<TcpStream>>),
    Http(Option<SyncSender<Vec<u8>>>, Vec<u8>),
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

    fn write_out(&mut self, record: &Record) {
        let mut line = Vec::with_capacity(record.key.len() + record.value.len() + 2);
        if self.include_key {
            line.extend_from_slice(&record.key);
            line.push(b'\t');
        }
        line.extend_from_slice(&record.value);
        line.push(b'\n');
        let res = match &mut self.target {
            Target::Discard => Ok(()),
            Target::Stdout(w) => w.write_all(&line),
            Target::File(w) => w.write_all(&line),
            Target::Tcp(addr, conn) => {
                if conn.is_none() {
                    *conn = TcpStream::connect(addr.as_str()).ok().map(BufWriter::new);
                }
                match conn {
                    Some(c) => c.write_all(&line).inspect_err(|_| *conn = None),
                    None => Err(std::io::Error::other("not connected")),
                }
            }
            Target::Http(_, pending) => {
                pending.extend_from_slice(&line);
                Ok(())
            }
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "sink write failed");
        }
    }

    fn flush(&mut self) {
        let res = match &mut self.target {
            Target::Stdout(w) => w.flush(),
            Target::File(w) => w.flush(),
            Target::Tcp(_, Some(c)) => c.flush(),
            Target::Http(Some(tx), pending) if !pending.is_empty() => {
                let body = std::mem::take(pending);
                let _ = tx.try_send(body);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "sink flush failed");
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
        self.target = match c.str("target")?.as_deref().unwrap_or(default_target) {
            "discard" => Target::Discard,
            "log" | "stdout" => Target::Stdout(BufWriter::new(std::io::stdout())),
            "file" => {
                let path = c.required_str("path")?;
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| OperatorError::msg(format!("open {path}: {e}")))?;
                Target::File(BufWriter::new(f))
            }
            "tcp" => Target::Tcp(c.required_str("address")?, None),
            "http" => {
                let url = c.required_str("url")?;
                let (tx, rx) = sync_channel::<Vec<u8>>(64);
                std::thread::Builder::new()
                    .name("sink-http".into())
                    .spawn(move || {
                        let client = reqwest::blocking::Client::new();
                        while let Ok(body) = rx.recv() {
                            let res = client
                                .post(&url)
                                .header("content-type", "application/x-ndjson")
                                .body(body)
                                .send();
                            if let Err(e) = res {
                                tracing::warn!(error = %e, "sink POST failed");
                            }
                        }
                    })
                    .map_err(|e| OperatorError::msg(format!("spawn: {e}")))?;
                Target::Http(Some(tx), Vec::new())
            }
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

    fn destroy(&mut self) {
        self.flush();
        if let Target::Http(tx, _) = &mut self.target {
            *tx = None;
        }
        self.write_report();
        tracing::info!(count = self.count, "sink destroyed");
    }
}
