//! The out-of-process operator protocol (see `docs/operator-protocol.md`).
//!
//! Both directions carry *frames*: a big-endian `u32` body length followed by the body,
//! which is a big-endian `u32` message count followed by that many messages. Every
//! message starts with a one-byte tag. Byte strings are a `u32` length plus the bytes;
//! integers are big-endian `u64`. The executor sends one frame at a time and the
//! operator answers each frame with exactly one frame (lock-step, batched).

use std::io::{self, Read, Write};

use crate::record::TraceContext;

/// Largest frame accepted (64 MiB), to bound memory on a corrupt stream.
pub const MAX_FRAME: usize = 64 << 20;

/// Most body bytes [`read_frame`] reserves before they arrive; larger frames grow as
/// their bytes come in.
pub const PREALLOC_LIMIT: usize = 1 << 20;

/// Feature an operator announces in its `Metadata` JSON (`"features": ["trace"]`) when it
/// understands `TracedRecord` and answers with `TracedProduce`. The executor sends
/// `TracedRecord` only to operators that announce it, so older SDKs keep working.
pub const FEATURE_TRACE: &str = "trace";

/// Feature an operator announces when it answers `Checkpoint` with `Checkpointed`. The
/// executor sends `Checkpoint` only to operators that announce it; for the others it
/// cannot know whether their output is durable.
pub const FEATURE_CHECKPOINT: &str = "checkpoint";

/// Every optional feature this SDK implements (announced by [`crate::process::serve`]).
pub const FEATURES: &[&str] = &[FEATURE_TRACE, FEATURE_CHECKPOINT];

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Executor -> operator, first frame: JSON with `operator`, `instance`, `taskId`, `config`.
    Init {
        /// The JSON document.
        json: String,
    },
    /// Executor -> operator: an input record.
    Record {
        /// Record key.
        key: Vec<u8>,
        /// Record value.
        value: Vec<u8>,
        /// Event time (ms since the Unix epoch).
        event_time: u64,
    },
    /// Executor -> operator: an input record that is sampled for tracing. Sent instead of
    /// `Record` only to operators announcing [`FEATURE_TRACE`]; everything the operator
    /// produces while processing it is sent back as `TracedProduce` with this `trace`.
    TracedRecord {
        /// Record key.
        key: Vec<u8>,
        /// Record value.
        value: Vec<u8>,
        /// Event time (ms since the Unix epoch).
        event_time: u64,
        /// The executor's span for processing this record (trace id and span id).
        trace: TraceContext,
    },
    /// Executor -> operator: a timer set earlier is due.
    Timer {
        /// Timer key.
        key: Vec<u8>,
        /// Timer time (ms).
        time: u64,
    },
    /// Executor -> operator: stop. The operator replies with one frame and exits.
    Destroy,
    /// Executor -> operator, alone in its frame: make the effects of every record handed
    /// over so far durable. The reply frame holds one `Checkpointed` (and maybe `Log`s).
    /// Sent only to operators announcing [`FEATURE_CHECKPOINT`].
    Checkpoint,
    /// Operator -> executor, in the reply to `Init`: JSON `{name, inputs, outputs}`.
    Metadata {
        /// The JSON document.
        json: String,
    },
    /// Operator -> executor: emit a record.
    Produce {
        /// Output stream name.
        stream: String,
        /// Record key.
        key: Vec<u8>,
        /// Record value.
        value: Vec<u8>,
        /// Event time (ms).
        event_time: u64,
    },
    /// Operator -> executor: a record produced while processing a `TracedRecord`; `trace`
    /// is that record's `trace`, unchanged.
    TracedProduce {
        /// Output stream name.
        stream: String,
        /// Record key.
        key: Vec<u8>,
        /// Record value.
        value: Vec<u8>,
        /// Event time (ms).
        event_time: u64,
        /// The trace context of the `TracedRecord` being processed.
        trace: TraceContext,
    },
    /// Operator -> executor: set a timer.
    SetTimer {
        /// Timer key.
        key: Vec<u8>,
        /// Timer time (ms).
        time: u64,
    },
    /// Operator -> executor: a log line (level 0 error .. 4 trace).
    Log {
        /// 0 error, 1 warn, 2 info, 3 debug, 4 trace.
        level: u8,
        /// The text.
        message: String,
    },
    /// Operator -> executor: the callback for this frame failed.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Operator -> executor: the answer to `Checkpoint`.
    Checkpointed {
        /// True when everything before the checkpoint is durable.
        ok: bool,
        /// Why not, when `ok` is false (empty otherwise).
        message: String,
    },
}

const T_INIT: u8 = 1;
const T_RECORD: u8 = 2;
const T_TIMER: u8 = 3;
const T_DESTROY: u8 = 4;
const T_TRACED_RECORD: u8 = 5;
const T_CHECKPOINT: u8 = 6;
const T_METADATA: u8 = 16;
const T_PRODUCE: u8 = 17;
const T_SET_TIMER: u8 = 18;
const T_LOG: u8 = 19;
const T_ERROR: u8 = 20;
const T_TRACED_PRODUCE: u8 = 21;
const T_CHECKPOINTED: u8 = 22;

/// A malformed frame or an I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading or writing failed.
    #[error("protocol i/o: {0}")]
    Io(#[from] io::Error),
    /// The bytes do not form a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Builds one frame from messages, appending to a buffer.
#[derive(Debug, Default)]
pub struct FrameWriter {
    buf: Vec<u8>,
    count: u32,
}

impl FrameWriter {
    /// An empty frame.
    pub fn new() -> Self {
        Self {
            buf: vec![0; 8],
            count: 0,
        }
    }

    /// Number of messages so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True when no message was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a message.
    pub fn push(&mut self, msg: &Message) {
        self.count += 1;
        let b = &mut self.buf;
        match msg {
            Message::Init { json } => {
                b.push(T_INIT);
                put_bytes(b, json.as_bytes());
            }
            Message::Record {
                key,
                value,
                event_time,
            } => {
                self.count -= 1;
                self.push_record(key, value, *event_time);
            }
            Message::TracedRecord {
                key,
                value,
                event_time,
                trace,
            } => {
                self.count -= 1;
                self.push_traced_record(key, value, *event_time, *trace);
            }
            Message::Timer { key, time } => {
                b.push(T_TIMER);
                put_bytes(b, key);
                b.extend_from_slice(&time.to_be_bytes());
            }
            Message::Destroy => b.push(T_DESTROY),
            Message::Checkpoint => b.push(T_CHECKPOINT),
            Message::Checkpointed { ok, message } => {
                b.push(T_CHECKPOINTED);
                b.push(u8::from(*ok));
                put_bytes(b, message.as_bytes());
            }
            Message::Metadata { json } => {
                b.push(T_METADATA);
                put_bytes(b, json.as_bytes());
            }
            Message::Produce {
                stream,
                key,
                value,
                event_time,
            } => {
                self.count -= 1;
                self.push_produce(stream, key, value, *event_time);
            }
            Message::TracedProduce {
                stream,
                key,
                value,
                event_time,
                trace,
            } => {
                self.count -= 1;
                self.push_traced_produce(stream, key, value, *event_time, *trace);
            }
            Message::SetTimer { key, time } => {
                b.push(T_SET_TIMER);
                put_bytes(b, key);
                b.extend_from_slice(&time.to_be_bytes());
            }
            Message::Log { level, message } => {
                b.push(T_LOG);
                b.push(*level);
                put_bytes(b, message.as_bytes());
            }
            Message::Error { message } => {
                b.push(T_ERROR);
                put_bytes(b, message.as_bytes());
            }
        }
    }

    /// Appends a `Record` message without building a [`Message`].
    pub fn push_record(&mut self, key: &[u8], value: &[u8], event_time: u64) {
        self.count += 1;
        self.buf.push(T_RECORD);
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        self.buf.extend_from_slice(&event_time.to_be_bytes());
    }

    /// Appends a `Produce` message without building a [`Message`].
    pub fn push_produce(&mut self, stream: &str, key: &[u8], value: &[u8], event_time: u64) {
        self.count += 1;
        self.buf.push(T_PRODUCE);
        put_bytes(&mut self.buf, stream.as_bytes());
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        self.buf.extend_from_slice(&event_time.to_be_bytes());
    }

    /// Appends a `TracedRecord` message without building a [`Message`].
    pub fn push_traced_record(
        &mut self,
        key: &[u8],
        value: &[u8],
        event_time: u64,
        trace: TraceContext,
    ) {
        self.count += 1;
        self.buf.push(T_TRACED_RECORD);
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        self.buf.extend_from_slice(&event_time.to_be_bytes());
        put_trace(&mut self.buf, trace);
    }

    /// Appends a `TracedProduce` message without building a [`Message`].
    pub fn push_traced_produce(
        &mut self,
        stream: &str,
        key: &[u8],
        value: &[u8],
        event_time: u64,
        trace: TraceContext,
    ) {
        self.count += 1;
        self.buf.push(T_TRACED_PRODUCE);
        put_bytes(&mut self.buf, stream.as_bytes());
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
        self.buf.extend_from_slice(&event_time.to_be_bytes());
        put_trace(&mut self.buf, trace);
    }

    /// Finishes the frame: the returned bytes are ready to write. The writer is reset.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut buf = std::mem::replace(&mut self.buf, vec![0; 8]);
        let body_len = (buf.len() - 4) as u32;
        buf[0..4].copy_from_slice(&body_len.to_be_bytes());
        buf[4..8].copy_from_slice(&self.count.to_be_bytes());
        self.count = 0;
        buf
    }
}

fn put_bytes(b: &mut Vec<u8>, data: &[u8]) {
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
}

fn put_trace(b: &mut Vec<u8>, trace: TraceContext) {
    b.extend_from_slice(&trace.trace_id.to_be_bytes());
    b.extend_from_slice(&trace.span_id.to_be_bytes());
}

/// Writes one frame holding `msgs` and flushes.
pub fn write_frame(w: &mut impl Write, msgs: &[Message]) -> Result<(), ProtocolError> {
    let mut fw = FrameWriter::new();
    for m in msgs {
        fw.push(m);
    }
    w.write_all(&fw.finish())?;
    w.flush()?;
    Ok(())
}

/// Reads one frame. `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<Message>>, ProtocolError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(ProtocolError::Malformed(format!("frame length {len}")));
    }
    // The length is the peer's claim: reserve at most PREALLOC_LIMIT before the bytes
    // arrive, so a 4-byte header cannot buy a 64 MiB allocation.
    let mut body = Vec::with_capacity(len.min(PREALLOC_LIMIT));
    let got = r.by_ref().take(len as u64).read_to_end(&mut body)?;
    if got != len {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    decode_body(&body).map(Some)
}

/// Decodes a frame body (without its length prefix).
pub fn decode_body(body: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    let mut c = Cursor { b: body, pos: 0 };
    let count = c.u32()? as usize;
    // The count is the peer's claim. Every message but a final Destroy takes at least 5
    // bytes (a tag and a length or more), so reserve only what the body can hold.
    let mut out = Vec::with_capacity(count.min(body.len() / 5 + 1));
    for _ in 0..count {
        let tag = c.u8()?;
        let msg = match tag {
            T_INIT => Message::Init { json: c.string()? },
            T_RECORD => Message::Record {
                key: c.bytes()?.to_vec(),
                value: c.bytes()?.to_vec(),
                event_time: c.u64()?,
            },
            T_TRACED_RECORD => Message::TracedRecord {
                key: c.bytes()?.to_vec(),
                value: c.bytes()?.to_vec(),
                event_time: c.u64()?,
                trace: c.trace()?,
            },
            T_TIMER => Message::Timer {
                key: c.bytes()?.to_vec(),
                time: c.u64()?,
            },
            T_DESTROY => {
                // Destroy ends the conversation, so it ends its frame too. Without this a
                // frame of one-byte Destroys would cost ~100 bytes of memory per byte.
                if out.len() + 1 != count {
                    return Err(ProtocolError::Malformed(
                        "Destroy must be the last message of its frame".into(),
                    ));
                }
                Message::Destroy
            }
            T_CHECKPOINT => Message::Checkpoint,
            T_CHECKPOINTED => Message::Checkpointed {
                ok: c.u8()? != 0,
                message: c.string()?,
            },
            T_METADATA => Message::Metadata { json: c.string()? },
            T_PRODUCE => Message::Produce {
                stream: c.string()?,
                key: c.bytes()?.to_vec(),
                value: c.bytes()?.to_vec(),
                event_time: c.u64()?,
            },
            T_TRACED_PRODUCE => Message::TracedProduce {
                stream: c.string()?,
                key: c.bytes()?.to_vec(),
                value: c.bytes()?.to_vec(),
                event_time: c.u64()?,
                trace: c.trace()?,
            },
            T_SET_TIMER => Message::SetTimer {
                key: c.bytes()?.to_vec(),
                time: c.u64()?,
            },
            T_LOG => Message::Log {
                level: c.u8()?,
                message: c.string()?,
            },
            T_ERROR => Message::Error {
                message: c.string()?,
            },
            other => return Err(ProtocolError::Malformed(format!("unknown tag {other}"))),
        };
        out.push(msg);
    }
    if c.pos != body.len() {
        return Err(ProtocolError::Malformed("trailing bytes".into()));
    }
    Ok(out)
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| ProtocolError::Malformed("truncated message".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn trace(&mut self) -> Result<TraceContext, ProtocolError> {
        Ok(TraceContext {
            trace_id: self.u64()?,
            span_id: self.u64()?,
        })
    }
    fn bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, ProtocolError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| ProtocolError::Malformed("invalid utf-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_messages() {
        let msgs = vec![
            Message::Init { json: "{}".into() },
            Message::Record {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                event_time: 7,
            },
            Message::TracedRecord {
                key: b"tk".to_vec(),
                value: b"tv".to_vec(),
                event_time: 8,
                trace: TraceContext {
                    trace_id: u64::MAX,
                    span_id: 0x0102_0304_0506_0708,
                },
            },
            Message::Timer {
                key: b"t".to_vec(),
                time: 9,
            },
            Message::Metadata {
                json: "{\"name\":\"x\"}".into(),
            },
            Message::Produce {
                stream: "out".into(),
                key: vec![],
                value: vec![1, 2, 3],
                event_time: 1,
            },
            Message::TracedProduce {
                stream: "out".into(),
                key: b"k".to_vec(),
                value: vec![4],
                event_time: 3,
                trace: TraceContext {
                    trace_id: 1,
                    span_id: 2,
                },
            },
            Message::SetTimer {
                key: b"a".to_vec(),
                time: 2,
            },
            Message::Log {
                level: 2,
                message: "hi".into(),
            },
            Message::Error {
                message: "bad".into(),
            },
            Message::Checkpoint,
            Message::Checkpointed {
                ok: false,
                message: "disk full".into(),
            },
            Message::Checkpointed {
                ok: true,
                message: String::new(),
            },
            // Last: Destroy ends its frame.
            Message::Destroy,
        ];
        let mut buf = Vec::new();
        write_frame(&mut buf, &msgs).expect("write");
        let mut r = &buf[..];
        let back = read_frame(&mut r).expect("read").expect("frame");
        assert_eq!(back, msgs);
        assert!(read_frame(&mut r).expect("eof").is_none());
    }

    #[test]
    fn traced_messages_have_the_documented_layout() {
        let mut fw = FrameWriter::new();
        fw.push_traced_produce(
            "o",
            b"k",
            b"v",
            7,
            TraceContext {
                trace_id: 0x11,
                span_id: 0x22,
            },
        );
        let frame = fw.finish();
        let mut want = vec![0, 0, 0, 0, 0, 0, 0, 1, T_TRACED_PRODUCE];
        for field in [&b"o"[..], b"k", b"v"] {
            want.extend_from_slice(&1u32.to_be_bytes());
            want.extend_from_slice(field);
        }
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(&0x11u64.to_be_bytes());
        want.extend_from_slice(&0x22u64.to_be_bytes());
        let body_len = (want.len() - 4) as u32;
        want[0..4].copy_from_slice(&body_len.to_be_bytes());
        assert_eq!(frame, want);
        assert_eq!(body_len, 44, "the example in docs/operator-protocol.md");
        // A traced record cut short inside its trace context is malformed.
        let mut fw = FrameWriter::new();
        fw.push_traced_record(
            b"",
            b"",
            0,
            TraceContext {
                trace_id: 1,
                span_id: 2,
            },
        );
        let frame = fw.finish();
        assert!(decode_body(&frame[4..frame.len() - 1]).is_err());
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        assert!(decode_body(&[0, 0, 0, 1]).is_err());
        assert!(decode_body(&[0, 0, 0, 1, 99]).is_err());
        assert!(decode_body(&[0, 0, 0, 1, T_RECORD, 0, 0, 0, 9, 1]).is_err());
    }
}
