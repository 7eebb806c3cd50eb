//! Running an [`Operator`] as a child process of the executor (the Rust out-of-process
//! SDK). A program calls [`run`] from `main`; the executor speaks the [`protocol`]
//! with it over stdin and stdout.
//!
//! [`protocol`]: crate::protocol

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};

use bytes::Bytes;

use crate::config::Config;
use crate::context::{Context, Emitter};
use crate::operator::Operator;
use crate::protocol::{FEATURES, FrameWriter, Message, ProtocolError, read_frame};
use crate::record::{Record, TraceContext};

/// Emitter that appends `Produce` / `SetTimer` messages to the reply frame; records
/// produced while a `TracedRecord` is processed become `TracedProduce` with its context.
struct ReplyEmitter<'a> {
    frame: &'a mut FrameWriter,
}

impl Emitter for ReplyEmitter<'_> {
    fn emit(
        &mut self,
        stream: &str,
        key: &[u8],
        value: &[u8],
        event_time: u64,
        trace: Option<TraceContext>,
    ) {
        match trace {
            Some(t) => self
                .frame
                .push_traced_produce(stream, key, value, event_time, t),
            None => self.frame.push_produce(stream, key, value, event_time),
        }
    }

    fn set_timer(&mut self, key: &[u8], time: u64) {
        self.frame.push(&Message::SetTimer {
            key: key.to_vec(),
            time,
        });
    }
}

/// Calls `process_record` for one input record, output going to the reply frame.
#[allow(clippy::too_many_arguments)]
fn process_one<O: Operator>(
    op: &mut O,
    reply: &mut FrameWriter,
    config: &Config,
    instance: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    event_time: u64,
    trace: Option<TraceContext>,
) {
    let mut em = ReplyEmitter { frame: reply };
    let mut ctx = Context::new(&mut em, config, instance);
    ctx.set_current(event_time, trace);
    let mut rec = Record::new(Bytes::from(key), Bytes::from(value), event_time);
    rec.trace = trace;
    let result = op.process_record(&mut ctx, rec);
    if let Err(e) = result {
        reply.push(&Message::Error {
            message: e.to_string(),
        });
    }
}

/// Serves the protocol on stdin/stdout until `Destroy` or end of input.
pub fn run<O: Operator>(op: O) -> Result<(), ProtocolError> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    serve(op, stdin.lock(), stdout.lock())
}

/// Serves the protocol over any reader and writer (used by [`run`] and by tests).
pub fn serve<O: Operator>(
    mut op: O,
    input: impl Read,
    output: impl Write,
) -> Result<(), ProtocolError> {
    let mut input = BufReader::with_capacity(256 << 10, input);
    let mut output = BufWriter::with_capacity(256 << 10, output);
    let mut config = Config::default();
    let mut instance = 0u32;
    let mut reply = FrameWriter::new();
    while let Some(msgs) = read_frame(&mut input)? {
        let mut stop = false;
        let mut checkpoint = false;
        for msg in msgs {
            match msg {
                Message::Init { json } => {
                    let doc: serde_json::Value = serde_json::from_str(&json)
                        .map_err(|e| ProtocolError::Malformed(format!("init json: {e}")))?;
                    instance = doc.get("instance").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
                    let map: BTreeMap<String, serde_json::Value> = doc
                        .get("config")
                        .and_then(|c| c.as_object())
                        .map(|o| o.clone().into_iter().collect())
                        .unwrap_or_default();
                    config = Config::new(map);
                    let md = op.metadata();
                    reply.push(&Message::Metadata {
                        json: serde_json::json!({
                            "name": md.name, "inputs": md.inputs, "outputs": md.outputs,
                            "features": FEATURES,
                        })
                        .to_string(),
                    });
                    let mut em = ReplyEmitter { frame: &mut reply };
                    let mut ctx = Context::new(&mut em, &config, instance);
                    if let Err(e) = op.init(&mut ctx) {
                        reply.push(&Message::Error {
                            message: e.to_string(),
                        });
                    }
                }
                Message::Record {
                    key,
                    value,
                    event_time,
                } => process_one(
                    &mut op, &mut reply, &config, instance, key, value, event_time, None,
                ),
                Message::TracedRecord {
                    key,
                    value,
                    event_time,
                    trace,
                } => process_one(
                    &mut op,
                    &mut reply,
                    &config,
                    instance,
                    key,
                    value,
                    event_time,
                    Some(trace),
                ),
                Message::Timer { key, time } => {
                    let mut em = ReplyEmitter { frame: &mut reply };
                    let mut ctx = Context::new(&mut em, &config, instance);
                    ctx.set_current(time, None);
                    if let Err(e) = op.process_timer(&mut ctx, Bytes::from(key), time) {
                        reply.push(&Message::Error {
                            message: e.to_string(),
                        });
                    }
                }
                Message::Destroy => {
                    op.destroy();
                    stop = true;
                }
                Message::Checkpoint => {
                    // Answered in its own frame; not a batch, so no `end_of_batch`.
                    checkpoint = true;
                    let (ok, message) = match op.checkpoint() {
                        Ok(()) => (true, String::new()),
                        Err(e) => (false, e.to_string()),
                    };
                    reply.push(&Message::Checkpointed { ok, message });
                }
                other => {
                    return Err(ProtocolError::Malformed(format!(
                        "unexpected message from executor: {other:?}"
                    )));
                }
            }
        }
        if !stop && !checkpoint {
            let mut em = ReplyEmitter { frame: &mut reply };
            let mut ctx = Context::new(&mut em, &config, instance);
            if let Err(e) = op.end_of_batch(&mut ctx) {
                reply.push(&Message::Error {
                    message: e.to_string(),
                });
            }
        }
        output.write_all(&reply.finish())?;
        output.flush()?;
        if stop {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{Metadata, OperatorError};
    use crate::protocol::{decode_body, write_frame};

    struct Upper;
    impl Operator for Upper {
        fn metadata(&self) -> Metadata {
            Metadata {
                name: "upper".into(),
                inputs: vec!["in".into()],
                outputs: vec!["out".into()],
            }
        }
        fn process_record(
            &mut self,
            ctx: &mut Context<'_>,
            record: Record,
        ) -> Result<(), OperatorError> {
            ctx.produce("out", &record.key, record.value.to_ascii_uppercase());
            ctx.set_timer(&record.key, record.event_time + 10);
            Ok(())
        }
    }

    #[test]
    fn serves_lock_step_frames() {
        let mut input = Vec::new();
        write_frame(
            &mut input,
            &[Message::Init {
                json: r#"{"instance":3,"config":{"a":1}}"#.into(),
            }],
        )
        .expect("w");
        write_frame(
            &mut input,
            &[Message::Record {
                key: b"k".to_vec(),
                value: b"abc".to_vec(),
                event_time: 5,
            }],
        )
        .expect("w");
        let trace = TraceContext {
            trace_id: 0xabc,
            span_id: 0xdef,
        };
        write_frame(
            &mut input,
            &[
                Message::TracedRecord {
                    key: b"t".to_vec(),
                    value: b"x".to_vec(),
                    event_time: 6,
                    trace,
                },
                Message::Record {
                    key: b"u".to_vec(),
                    value: b"y".to_vec(),
                    event_time: 7,
                },
            ],
        )
        .expect("w");
        write_frame(&mut input, &[Message::Destroy]).expect("w");
        let mut out = Vec::new();
        serve(Upper, &input[..], &mut out).expect("serve");
        let mut frames = Vec::new();
        let mut r = &out[..];
        while let Some(f) = read_frame(&mut r).expect("read") {
            frames.push(f);
        }
        assert_eq!(frames.len(), 4);
        let Message::Metadata { json } = &frames[0][0] else {
            panic!("metadata first: {:?}", frames[0]);
        };
        let md: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(md["features"], serde_json::json!(["trace", "checkpoint"]));
        assert_eq!(
            frames[1],
            vec![
                Message::Produce {
                    stream: "out".into(),
                    key: b"k".to_vec(),
                    value: b"ABC".to_vec(),
                    event_time: 5
                },
                Message::SetTimer {
                    key: b"k".to_vec(),
                    time: 15
                }
            ]
        );
        // Output of the traced record carries its context; the next record's does not.
        assert_eq!(
            frames[2],
            vec![
                Message::TracedProduce {
                    stream: "out".into(),
                    key: b"t".to_vec(),
                    value: b"X".to_vec(),
                    event_time: 6,
                    trace,
                },
                Message::SetTimer {
                    key: b"t".to_vec(),
                    time: 16
                },
                Message::Produce {
                    stream: "out".into(),
                    key: b"u".to_vec(),
                    value: b"Y".to_vec(),
                    event_time: 7
                },
                Message::SetTimer {
                    key: b"u".to_vec(),
                    time: 17
                },
            ]
        );
        assert!(frames[3].is_empty());
        assert!(decode_body(&[0, 0, 0, 0]).expect("empty").is_empty());
    }

    /// Buffers records and "writes" them at `checkpoint`, failing once when told to.
    struct Buffered {
        buf: Vec<String>,
        written: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        fail_next: bool,
    }
    impl Operator for Buffered {
        fn metadata(&self) -> Metadata {
            Metadata::default()
        }
        fn process_record(
            &mut self,
            _ctx: &mut Context<'_>,
            record: Record,
        ) -> Result<(), OperatorError> {
            if &record.value[..] == b"fail" {
                self.fail_next = true;
            } else {
                self.buf
                    .push(String::from_utf8_lossy(&record.value).into_owned());
            }
            Ok(())
        }
        fn checkpoint(&mut self) -> Result<(), OperatorError> {
            if std::mem::take(&mut self.fail_next) {
                return Err(OperatorError::msg("disk full"));
            }
            let mut w = self
                .written
                .lock()
                .map_err(|_| OperatorError::msg("lock"))?;
            w.append(&mut self.buf);
            Ok(())
        }
    }

    #[test]
    fn answers_checkpoint_with_the_operators_outcome() {
        let rec = |v: &str| Message::Record {
            key: vec![],
            value: v.as_bytes().to_vec(),
            event_time: 0,
        };
        let mut input = Vec::new();
        for frame in [
            vec![Message::Init { json: "{}".into() }],
            vec![rec("a")],
            vec![Message::Checkpoint],
            vec![rec("fail")],
            vec![Message::Checkpoint],
            vec![Message::Destroy],
        ] {
            write_frame(&mut input, &frame).expect("w");
        }
        let written = std::sync::Arc::default();
        let op = Buffered {
            buf: vec![],
            written: std::sync::Arc::clone(&written),
            fail_next: false,
        };
        let mut out = Vec::new();
        serve(op, &input[..], &mut out).expect("serve");
        let mut frames = Vec::new();
        let mut r = &out[..];
        while let Some(f) = read_frame(&mut r).expect("read") {
            frames.push(f);
        }
        assert_eq!(
            frames[2],
            vec![Message::Checkpointed {
                ok: true,
                message: String::new()
            }]
        );
        assert_eq!(
            frames[4],
            vec![Message::Checkpointed {
                ok: false,
                message: "disk full".into()
            }]
        );
        assert_eq!(*written.lock().expect("lock"), vec!["a".to_owned()]);
    }
}
