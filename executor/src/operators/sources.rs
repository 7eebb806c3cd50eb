//! Sources that read lines from the outside world: `tcp-source` (a TCP port),
//! `http-source` (an HTTP ingest endpoint) and `file-source` (a file).
//!
//! Each runs its I/O on its own thread (or async task) and injects records into the
//! operator's input queue; `process_record` then emits them on the operator thread, so
//! callbacks stay single-threaded and a full queue back-pressures the readers.
//! Listening sources take `port` (the name of a port in `resources.ports`, whose number
//! comes from `CONCORD_PORT_<NAME>`) or `listen` (`host:port`). Records are keyed by the
//! JSON field `keyField` when set (empty key otherwise). `tcp-source` holds at most
//! `maxLineBytes` of one line ([`DEFAULT_MAX_LINE_BYTES`] by default): a longer line is
//! skipped up to its newline without being buffered, and counted as a dropped record
//! (`concord_dropped_records_total{reason="line_too_long"}`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;

use prometheus_client::metrics::counter::Counter;

use bytes::Bytes;
use concord_sdk::{Config, Context, Metadata, Operator, OperatorError, Record};

use super::{BuiltinEnv, OUT, json, meta};
use crate::clock;
use crate::config::named_port;

/// Builds records from lines.
#[derive(Clone)]
struct LineParser {
    key_field: Option<String>,
}

impl LineParser {
    fn record(&self, line: &[u8]) -> Option<Record> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let key = self
            .key_field
            .as_ref()
            .and_then(|f| {
                let doc: serde_json::Value = serde_json::from_slice(line).ok()?;
                json::get(&doc, f).map(json::as_text)
            })
            .unwrap_or_default();
        Some(Record::new(
            Bytes::from(key.into_bytes()),
            Bytes::copy_from_slice(line),
            clock::wall_ms(),
        ))
    }
}

/// Longest line `tcp-source` takes unless `maxLineBytes` says otherwise (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: u64 = 1 << 20;

/// What [`read_line_bounded`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A line (without its newline) is in the buffer; at the end of the stream it may
    /// lack the newline.
    Line,
    /// A line longer than the limit was skipped up to its newline (or the stream's end).
    TooLong,
    /// The end of the stream, nothing pending.
    Eof,
}

/// Reads one `\n`-terminated line into `line` (cleared first), holding at most `max`
/// bytes of it: a longer line is consumed and discarded, never buffered whole.
pub fn read_line_bounded(
    r: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    line.clear();
    let mut too_long = false;
    let mut seen = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(match (too_long, seen) {
                (true, _) => LineRead::TooLong,
                (false, true) => LineRead::Line,
                (false, false) => LineRead::Eof,
            });
        }
        seen = true;
        let newline = buf.iter().position(|b| *b == b'\n');
        let content = newline.unwrap_or(buf.len());
        if !too_long {
            if line.len() + content > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(&buf[..content]);
            }
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

fn listen_addr(c: &Config, env: &BuiltinEnv) -> Result<String, OperatorError> {
    if let Some(l) = c.str("listen")? {
        return Ok(l);
    }
    let name = c.str("port")?.unwrap_or_else(|| "ingest".to_owned());
    match named_port(&name) {
        Some(p) => Ok(format!("{}:{p}", env.bind_host)),
        None => Err(OperatorError::msg(format!(
            "no port for `{name}`: set CONCORD_PORT_{} or config `listen`",
            name.to_uppercase()
        ))),
    }
}

fn emit(ctx: &mut Context<'_>, record: Record) {
    ctx.produce_at(OUT, &record.key, &record.value, record.event_time);
}

/// `tcp-source`: newline-delimited records from any number of TCP clients.
pub struct TcpSource {
    env: BuiltinEnv,
}

impl TcpSource {
    /// Unstarted; `init` binds.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self { env: env.clone() }
    }
}

impl Operator for TcpSource {
    fn metadata(&self) -> Metadata {
        meta("tcp-source", false)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let addr = listen_addr(ctx.config(), &self.env)?;
        let parser = LineParser {
            key_field: ctx.config().str("keyField")?,
        };
        let max_line = ctx
            .config()
            .u64("maxLineBytes")?
            .unwrap_or(DEFAULT_MAX_LINE_BYTES);
        if max_line == 0 {
            return Err(OperatorError::msg("maxLineBytes must be positive"));
        }
        let max_line = usize::try_from(max_line).unwrap_or(usize::MAX);
        let too_long = self
            .env
            .metrics
            .dropped_for(crate::metrics::DROPPED_LINE_TOO_LONG);
        let listener = TcpListener::bind(&addr)
            .map_err(|e| OperatorError::msg(format!("bind {addr}: {e}")))?;
        tracing::info!(%addr, max_line, "tcp-source listening");
        let ingest = self.env.ingest.clone();
        std::thread::Builder::new()
            .name("tcp-source".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let ingest = ingest.clone();
                    let parser = parser.clone();
                    let too_long = too_long.clone();
                    let _ = std::thread::Builder::new()
                        .name("tcp-source-conn".into())
                        .spawn(move || read_tcp_lines(conn, &parser, &ingest, max_line, &too_long));
                }
            })
            .map_err(|e| OperatorError::msg(format!("spawn: {e}")))?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        emit(ctx, record);
        Ok(())
    }
}

/// Reads one `tcp-source` client until it closes or the operator stops.
fn read_tcp_lines(
    conn: std::net::TcpStream,
    parser: &LineParser,
    ingest: &crate::runtime::Ingest,
    max_line: usize,
    too_long: &Counter,
) {
    let peer = conn.peer_addr().ok();
    let mut r = BufReader::new(conn);
    let mut batch = Vec::new();
    let mut line = Vec::new();
    let mut warned = false;
    loop {
        match read_line_bounded(&mut r, &mut line, max_line) {
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(LineRead::Line) => {
                if let Some(rec) = parser.record(&line) {
                    batch.push(rec);
                }
            }
            Ok(LineRead::TooLong) => {
                too_long.inc();
                // Once per connection at warn: a client sending many is one problem.
                if warned {
                    tracing::debug!(?peer, max_line, "tcp-source dropped an over-long line");
                } else {
                    tracing::warn!(
                        ?peer,
                        max_line,
                        "tcp-source dropped a line longer than maxLineBytes"
                    );
                    warned = true;
                }
            }
        }
        if (batch.len() >= 512 || r.buffer().is_empty()) && !ingest.send(std::mem::take(&mut batch))
        {
            return;
        }
    }
    ingest.send(batch);
}

/// `http-source`: `POST` any path with newline-delimited records (or a JSON array, one
/// record per element); answers `202 {"accepted": n}`.
pub struct HttpSource {
    env: BuiltinEnv,
}

impl HttpSource {
    /// Unstarted; `init` binds.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self { env: env.clone() }
    }
}

impl Operator for HttpSource {
    fn metadata(&self) -> Metadata {
        meta("http-source", false)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let addr = listen_addr(ctx.config(), &self.env)?;
        let parser = LineParser {
            key_field: ctx.config().str("keyField")?,
        };
        let listener = std::net::TcpListener::bind(&addr)
            .map_err(|e| OperatorError::msg(format!("bind {addr}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| OperatorError::msg(e.to_string()))?;
        let ingest = self.env.ingest.clone();
        let handler = move |body: Bytes| {
            let ingest = ingest.clone();
            let parser = parser.clone();
            async move {
                let records: Vec<Record> = match serde_json::from_slice::<serde_json::Value>(&body)
                {
                    Ok(serde_json::Value::Array(items)) => items
                        .iter()
                        .filter_map(|v| parser.record(v.to_string().as_bytes()))
                        .collect(),
                    _ => body
                        .split(|b| *b == b'\n')
                        .filter_map(|l| parser.record(l))
                        .collect(),
                };
                let n = records.len();
                let ok = tokio::task::spawn_blocking(move || ingest.send(records))
                    .await
                    .unwrap_or(false);
                if ok {
                    (
                        axum::http::StatusCode::ACCEPTED,
                        serde_json::json!({ "accepted": n }).to_string(),
                    )
                } else {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "{\"error\":\"stopping\"}".to_owned(),
                    )
                }
            }
        };
        let app = axum::Router::new().fallback(axum::routing::post(handler));
        let handle = self.env.tokio.clone();
        let _guard = handle.enter();
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| OperatorError::msg(e.to_string()))?;
        tracing::info!(%addr, "http-source listening");
        handle.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "http-source server ended");
            }
        });
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        emit(ctx, record);
        Ok(())
    }
}

/// `file-source`: the lines of `path`, optionally paced at `rate` lines/s. With
/// `follow: true` it keeps reading what is appended (like `tail -F`: a truncated file is
/// read again from its start, a replaced one from the new file's start), polling every
/// `pollMs` (default 200) at the end of the file; a last line without its newline waits
/// for it. Without `follow` it stops at the end of the file.
pub struct FileSource {
    env: BuiltinEnv,
}

impl FileSource {
    /// Unstarted; `init` opens the file.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self { env: env.clone() }
    }
}

/// Identity of the file at a path (device, inode), to notice it being replaced.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

/// Reads the lines of a file and hands them to the operator (see [`FileSource`]).
struct FileReader {
    path: String,
    rate: f64,
    follow: bool,
    poll: std::time::Duration,
    parser: LineParser,
    ingest: crate::runtime::Ingest,
}

impl FileReader {
    fn run(self, file: std::fs::File) {
        let start = std::time::Instant::now();
        let mut sent = 0u64;
        let mut batch = Vec::new();
        let mut id = file.metadata().ok().map(|m| file_id(&m));
        let mut offset = 0u64;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            let n = match reader.read_until(b'\n', &mut line) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.path, "file-source read failed");
                    break;
                }
            };
            offset += n as u64;
            if n > 0 && line.ends_with(b"\n") {
                if let Some(r) = self.parser.record(&line[..line.len() - 1]) {
                    batch.push(r);
                    sent += 1;
                }
                line.clear();
                if self.rate > 0.0 {
                    let due = std::time::Duration::from_secs_f64(sent as f64 / self.rate);
                    let elapsed = start.elapsed();
                    if due > elapsed {
                        if !self.ingest.send(std::mem::take(&mut batch)) {
                            return;
                        }
                        // Pacing a file replay, not synchronisation.
                        std::thread::sleep(due - elapsed);
                    }
                }
                if batch.len() >= 512 && !self.ingest.send(std::mem::take(&mut batch)) {
                    return;
                }
                continue;
            }
            if n > 0 {
                continue; // a last line without newline: keep reading (EOF comes next)
            }
            // End of the file.
            if !self.follow {
                if let Some(r) = self.parser.record(&line) {
                    batch.push(r);
                    sent += 1;
                }
                break;
            }
            if !self.ingest.send(std::mem::take(&mut batch)) {
                return;
            }
            // Polling the file for appended data, not synchronisation.
            std::thread::sleep(self.poll);
            let Ok(meta) = std::fs::metadata(&self.path) else {
                continue; // being replaced: keep the old file until a new one appears
            };
            let replaced = id.is_some_and(|old| old != file_id(&meta));
            if replaced || meta.len() < offset {
                match std::fs::File::open(&self.path) {
                    Ok(f) => {
                        tracing::info!(path = %self.path, replaced, "file-source reading the file from its start");
                        id = f.metadata().ok().map(|m| file_id(&m));
                        reader = BufReader::new(f);
                        offset = 0;
                        line.clear();
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, path = %self.path, "file-source reopen failed")
                    }
                }
            }
        }
        self.ingest.send(batch);
        tracing::info!(records = sent, path = %self.path, "file-source reached end of file");
    }
}

impl Operator for FileSource {
    fn metadata(&self) -> Metadata {
        meta("file-source", false)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        let path = c.required_str("path")?;
        let reader = FileReader {
            rate: c.f64("rate")?.unwrap_or(0.0),
            follow: c.bool("follow")?.unwrap_or(false),
            poll: std::time::Duration::from_millis(c.u64("pollMs")?.unwrap_or(200).max(1)),
            parser: LineParser {
                key_field: c.str("keyField")?,
            },
            ingest: self.env.ingest.clone(),
            path: path.clone(),
        };
        let file = std::fs::File::open(&path)
            .map_err(|e| OperatorError::msg(format!("open {path}: {e}")))?;
        std::thread::Builder::new()
            .name("file-source".into())
            .spawn(move || reader.run(file))
            .map_err(|e| OperatorError::msg(format!("spawn: {e}")))?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        emit(ctx, record);
        Ok(())
    }
}
