//! Data-plane framing between executors.
//!
//! Every frame is a big-endian `u32` length of the rest, a one-byte type, and the body.
//! A connection starts with the authentication handshake of [`crate::auth`]: the
//! accepting executor sends `CHALLENGE` (a 32-byte nonce), the connecting one answers
//! `AUTH` (its nonce, its HMAC proof and its hello JSON naming the sending operator and
//! instance), the acceptor answers `AUTH_OK` (its own proof). Frames before that are at
//! most [`crate::auth::MAX_HANDSHAKE_FRAME`] bytes. Only an executor started with
//! `--insecure-no-dataplane-auth` skips the handshake and sends one `HELLO` frame (the
//! same JSON) instead; the two modes do not talk to each other.
//!
//! Then come `BATCH` frames. A batch body is a `u32` record count and the records; each
//! record is `flags: u8`, `event_time: u64`, `key_len: u32`, `value_len: u32`, when
//! `flags & 1` a trace context (`trace_id: u64`, `span_id: u64`), then the key and value
//! bytes. All integers are big-endian.
//!
//! Under at-least-once delivery two more frames exist (see `docs/delivery.md`): a
//! `MARKER` (`seq: u64`) sent downstream in order with the batches, and an `ACK`
//! (`seq: u64`, `ok: u8`) sent back upstream on the same connection once everything
//! before the marker has been processed by the whole DAG below.

use std::io::Read as _;

use bytes::Bytes;
use concord_sdk::{Record, TraceContext};

/// Frame type of the connection greeting.
pub const FRAME_HELLO: u8 = 1;
/// Frame type of a record batch.
pub const FRAME_BATCH: u8 = 2;
/// Frame type of an at-least-once marker (downstream).
pub const FRAME_MARKER: u8 = 3;
/// Frame type of a marker's acknowledgement (upstream).
pub const FRAME_ACK: u8 = 4;
/// Frame type of the acceptor's handshake challenge.
pub const FRAME_CHALLENGE: u8 = 5;
/// Frame type of the connector's handshake answer (nonce, proof, hello).
pub const FRAME_AUTH: u8 = 6;
/// Frame type of the acceptor's proof that ends the handshake.
pub const FRAME_AUTH_OK: u8 = 7;
/// Largest frame a reader accepts.
pub const MAX_FRAME: usize = 64 << 20;
/// Bytes before the first record of a batch frame (length, type, count).
pub const BATCH_HEADER: usize = 9;
/// Most body bytes [`read_frame`] reserves before they arrive: the length prefix is the
/// peer's claim, so a 5-byte header must not buy a 64 MiB allocation. Larger bodies
/// grow as their bytes come in.
pub const PREALLOC_LIMIT: usize = 1 << 20;

const FLAG_TRACE: u8 = 1;

/// A malformed data-plane frame.
#[derive(Debug, thiserror::Error)]
#[error("malformed batch: {0}")]
pub struct WireError(pub &'static str);

/// Accumulates records into one batch frame.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
    traced: bool,
}

impl BatchBuilder {
    /// An empty batch with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 256);
        buf.resize(BATCH_HEADER, 0);
        Self {
            buf,
            count: 0,
            traced: false,
        }
    }

    /// Appends a record.
    #[inline]
    pub fn push(&mut self, key: &[u8], value: &[u8], event_time: u64, trace: Option<TraceContext>) {
        let b = &mut self.buf;
        b.push(if trace.is_some() { FLAG_TRACE } else { 0 });
        b.extend_from_slice(&event_time.to_be_bytes());
        b.extend_from_slice(&(key.len() as u32).to_be_bytes());
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        if let Some(t) = trace {
            self.traced = true;
            b.extend_from_slice(&t.trace_id.to_be_bytes());
            b.extend_from_slice(&t.span_id.to_be_bytes());
        }
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        self.count += 1;
    }

    /// Records in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Encoded size so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when the batch holds a traced record.
    pub fn holds_traced(&self) -> bool {
        self.traced
    }

    /// Completes the frame and returns it; the builder starts a new batch.
    pub fn finish(&mut self, capacity: usize) -> Vec<u8> {
        let mut next = Vec::with_capacity(capacity + 256);
        next.resize(BATCH_HEADER, 0);
        let mut buf = std::mem::replace(&mut self.buf, next);
        let len = (buf.len() - 4) as u32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        buf[4] = FRAME_BATCH;
        buf[5..9].copy_from_slice(&self.count.to_be_bytes());
        self.count = 0;
        self.traced = false;
        buf
    }
}

/// Encodes a hello frame carrying `json`.
pub fn hello_frame(json: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(json.len() + 5);
    b.extend_from_slice(&((json.len() + 1) as u32).to_be_bytes());
    b.push(FRAME_HELLO);
    b.extend_from_slice(json.as_bytes());
    b
}

/// Encodes a marker frame.
pub fn marker_frame(seq: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(13);
    b.extend_from_slice(&9u32.to_be_bytes());
    b.push(FRAME_MARKER);
    b.extend_from_slice(&seq.to_be_bytes());
    b
}

/// Encodes an acknowledgement frame.
pub fn ack_frame(seq: u64, ok: bool) -> [u8; 14] {
    let mut b = [0u8; 14];
    b[0..4].copy_from_slice(&10u32.to_be_bytes());
    b[4] = FRAME_ACK;
    b[5..13].copy_from_slice(&seq.to_be_bytes());
    b[13] = u8::from(ok);
    b
}

/// The sequence number of a marker frame body.
pub fn marker_seq(body: &[u8]) -> Result<u64, WireError> {
    body.get(0..8).map(be_u64).ok_or(WireError("short marker"))
}

/// The sequence number and outcome of an acknowledgement frame body.
pub fn ack_body(body: &[u8]) -> Result<(u64, bool), WireError> {
    match (body.get(0..8), body.get(8)) {
        (Some(seq), Some(ok)) => Ok((be_u64(seq), *ok != 0)),
        _ => Err(WireError("short ack")),
    }
}

/// Reads one frame (`type`, body without length and type); `Ok(None)` at a clean end of
/// stream between frames.
pub fn read_frame(r: &mut impl std::io::Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    read_frame_max(r, MAX_FRAME)
}

/// [`read_frame`] refusing frames longer than `max` bytes (before authentication a
/// peer gets a few KiB, not 64 MiB).
pub fn read_frame_max(
    r: &mut impl std::io::Read,
    max: usize,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut hdr = [0u8; 5];
    match r.read_exact(&mut hdr) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if !(1..=max).contains(&len) {
        return Err(std::io::Error::other(format!("bad frame length {len}")));
    }
    // Read into spare capacity (no zero-filling of up to 64 KiB per frame), reserving
    // at most PREALLOC_LIMIT on the peer's word.
    let mut body = Vec::with_capacity((len - 1).min(PREALLOC_LIMIT));
    let got = r.by_ref().take((len - 1) as u64).read_to_end(&mut body)?;
    if got != len - 1 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((hdr[4], body)))
}

/// Number of records a batch body (count + records, without length and type) claims.
pub fn batch_count(body: &[u8]) -> Result<u32, WireError> {
    body.get(0..4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .ok_or(WireError("short batch"))
}

/// Iterates the records of a batch body, slicing keys and values out of `body` without
/// copying.
pub struct BatchReader {
    body: Bytes,
    pos: usize,
    remaining: u32,
}

impl BatchReader {
    /// Starts reading a batch body (count followed by records).
    pub fn new(body: Bytes) -> Result<Self, WireError> {
        let remaining = batch_count(&body)?;
        Ok(Self {
            body,
            pos: 4,
            remaining,
        })
    }

    /// Records not yet returned.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The next record, `Ok(None)` at the end.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record>, WireError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let b = &self.body[..];
        let p = self.pos;
        if b.len() < p + 17 {
            return Err(WireError("truncated record header"));
        }
        let flags = b[p];
        let event_time = be_u64(&b[p + 1..p + 9]);
        let klen = be_u32(&b[p + 9..p + 13]) as usize;
        let vlen = be_u32(&b[p + 13..p + 17]) as usize;
        let mut q = p + 17;
        let trace = if flags & FLAG_TRACE != 0 {
            if b.len() < q + 16 {
                return Err(WireError("truncated trace"));
            }
            let t = TraceContext {
                trace_id: be_u64(&b[q..q + 8]),
                span_id: be_u64(&b[q + 8..q + 16]),
            };
            q += 16;
            Some(t)
        } else {
            None
        };
        let end = q
            .checked_add(klen)
            .and_then(|e| e.checked_add(vlen))
            .filter(|e| *e <= b.len())
            .ok_or(WireError("truncated key or value"))?;
        let key = self.body.slice(q..q + klen);
        let value = self.body.slice(q + klen..end);
        self.pos = end;
        self.remaining -= 1;
        Ok(Some(Record {
            key,
            value,
            event_time,
            trace,
        }))
    }
}

#[inline]
fn be_u64(s: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    u64::from_be_bytes(a)
}

#[inline]
fn be_u32(s: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    u32::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip() {
        let mut b = BatchBuilder::with_capacity(64);
        b.push(b"k1", b"v1", 5, None);
        let t = TraceContext {
            trace_id: 9,
            span_id: 10,
        };
        b.push(b"", b"value-two", 6, Some(t));
        let frame = b.finish(64);
        assert_eq!(frame[4], FRAME_BATCH);
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        let mut r = BatchReader::new(Bytes::from(frame[5..].to_vec())).expect("reader");
        let a = r.next_record().expect("ok").expect("rec");
        assert_eq!(
            (&a.key[..], &a.value[..], a.event_time),
            (&b"k1"[..], &b"v1"[..], 5)
        );
        let c = r.next_record().expect("ok").expect("rec");
        assert_eq!(c.trace, Some(t));
        assert_eq!(&c.value[..], b"value-two");
        assert!(r.next_record().expect("ok").is_none());
        assert!(b.is_empty());
    }

    #[test]
    fn marker_and_ack_frames_round_trip() {
        let m = marker_frame(42);
        let (kind, body) = read_frame(&mut &m[..]).expect("io").expect("frame");
        assert_eq!((kind, marker_seq(&body).expect("seq")), (FRAME_MARKER, 42));
        let a = ack_frame(7, false);
        let (kind, body) = read_frame(&mut &a[..]).expect("io").expect("frame");
        assert_eq!(
            (kind, ack_body(&body).expect("ack")),
            (FRAME_ACK, (7, false))
        );
        assert!(read_frame(&mut &[][..]).expect("io").is_none());
        assert!(ack_body(&[0, 1]).is_err());
    }

    #[test]
    fn truncated_batch_is_an_error() {
        let mut b = BatchBuilder::with_capacity(64);
        b.push(b"key", b"value", 1, None);
        let frame = b.finish(64);
        let body = Bytes::from(frame[5..frame.len() - 2].to_vec());
        let mut r = BatchReader::new(body).expect("reader");
        assert!(r.next_record().is_err());
    }
}
