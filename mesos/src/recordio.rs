//! RecordIO framing (wire reference §2): `<decimal length>\n<length bytes>`, repeated.
//!
//! HTTP chunks and records are unrelated, so the decoder is incremental: a record may
//! span chunks, a chunk may hold many records and even the length header may be split.
//! The decoder is a [`tokio_util::codec::Decoder`]; [`decode_stream`] adapts any byte
//! stream (such as a `reqwest` body) into a stream of records.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, TryStreamExt};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder, FramedRead};
use tokio_util::io::StreamReader;

/// Default upper bound for one record (64 MiB): large enough for a big OFFERS event,
/// small enough that a corrupt header cannot make us allocate without limit.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 64 * 1024 * 1024;

/// Most bytes the decoder reserves for a record ahead of its arrival.
pub const RESERVE_LIMIT: usize = 1024 * 1024;

/// The longest header we accept (`u64::MAX` has 20 digits).
const MAX_HEADER_DIGITS: usize = 20;

/// Errors of the RecordIO decoder.
#[derive(Debug, Error)]
pub enum RecordIoError {
    /// The length header is not a decimal number.
    #[error("invalid RecordIO length header {0:?}")]
    InvalidHeader(String),
    /// A record is larger than the configured maximum.
    #[error("RecordIO record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Announced size.
        size: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The stream ended inside a header or a record.
    #[error("RecordIO stream ended mid-record ({buffered} bytes buffered{})", match .expected { Some(n) => format!(", record needs {n}"), None => String::new() })]
    UnexpectedEof {
        /// Bytes buffered when the stream ended.
        buffered: usize,
        /// Record length, if the header had been read.
        expected: Option<u64>,
    },
    /// Reading the underlying stream failed.
    #[error("RecordIO transport error: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends one encoded record to `dst`.
pub fn encode_into(record: &[u8], dst: &mut BytesMut) {
    let header = format!("{}\n", record.len());
    dst.reserve(header.len() + record.len());
    dst.put_slice(header.as_bytes());
    dst.put_slice(record);
}

/// Encodes one record.
pub fn encode(record: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    encode_into(record, &mut b);
    b.freeze()
}

/// Incremental RecordIO decoder (and encoder) with a bounded record size.
#[derive(Debug, Clone)]
pub struct RecordIoCodec {
    max_record_size: usize,
    /// Length of the record whose header has been consumed but whose body has not.
    pending: Option<usize>,
}

impl Default for RecordIoCodec {
    fn default() -> Self {
        RecordIoCodec::new(DEFAULT_MAX_RECORD_SIZE)
    }
}

impl RecordIoCodec {
    /// A codec refusing records larger than `max_record_size` bytes.
    pub fn new(max_record_size: usize) -> Self {
        RecordIoCodec {
            max_record_size,
            pending: None,
        }
    }

    /// The configured maximum record size.
    pub fn max_record_size(&self) -> usize {
        self.max_record_size
    }

    fn parse_len(&self, digits: &[u8]) -> Result<usize, RecordIoError> {
        let invalid = || RecordIoError::InvalidHeader(String::from_utf8_lossy(digits).into_owned());
        if digits.is_empty()
            || digits.len() > MAX_HEADER_DIGITS
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return Err(invalid());
        }
        let text = std::str::from_utf8(digits).map_err(|_| invalid())?;
        let size: u64 = text.parse().map_err(|_| invalid())?;
        match usize::try_from(size) {
            Ok(n) if n <= self.max_record_size => Ok(n),
            _ => Err(RecordIoError::RecordTooLarge {
                size,
                max: self.max_record_size,
            }),
        }
    }

    /// Decodes every complete record in `buf` (a convenience outside tokio codecs).
    pub fn decode_all(&mut self, buf: &mut BytesMut) -> Result<Vec<Bytes>, RecordIoError> {
        let mut out = Vec::new();
        while let Some(r) = self.decode(buf)? {
            out.push(r);
        }
        Ok(out)
    }
}

impl Decoder for RecordIoCodec {
    type Item = Bytes;
    type Error = RecordIoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        let len = match self.pending {
            Some(len) => len,
            None => match src.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let len = self.parse_len(&src[..nl])?;
                    src.advance(nl + 1);
                    self.pending = Some(len);
                    len
                }
                None => {
                    // Fail early on a partial header that can never become valid
                    // instead of buffering garbage until EOF.
                    if src.len() > MAX_HEADER_DIGITS || !src.iter().all(u8::is_ascii_digit) {
                        return Err(RecordIoError::InvalidHeader(
                            String::from_utf8_lossy(&src[..src.len().min(32)]).into_owned(),
                        ));
                    }
                    if !src.is_empty() {
                        // Digits only so far: already too large?
                        self.parse_len(src).map(|_| ()).or_else(|e| match e {
                            RecordIoError::RecordTooLarge { .. } => Err(e),
                            _ => Ok(()),
                        })?;
                    }
                    return Ok(None);
                }
            },
        };
        if src.len() < len {
            // The header is the sender's claim: reserve up to RESERVE_LIMIT of buffer ahead
            // of the bytes; past that the buffer grows as the record arrives.
            src.reserve((len - src.len()).min(RESERVE_LIMIT.saturating_sub(src.len())));
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        match self.decode(src)? {
            Some(record) => Ok(Some(record)),
            None if src.is_empty() && self.pending.is_none() => Ok(None),
            None => Err(RecordIoError::UnexpectedEof {
                buffered: src.len(),
                expected: self.pending.map(|n| n as u64),
            }),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for RecordIoCodec {
    type Error = RecordIoError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), RecordIoError> {
        encode_into(item.as_ref(), dst);
        Ok(())
    }
}

/// Turns a stream of byte chunks into a stream of records.
///
/// Transport errors are mapped to [`RecordIoError::Io`]; a stream ending mid-record
/// yields [`RecordIoError::UnexpectedEof`].
pub fn decode_stream<S, B, E>(
    chunks: S,
    max_record_size: usize,
) -> impl Stream<Item = Result<Bytes, RecordIoError>> + Send
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let reader = StreamReader::new(chunks.map_err(std::io::Error::other));
    FramedRead::new(reader, RecordIoCodec::new(max_record_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_doc_example() {
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::from(&b"20\n{\"type\":\"HEARTBEAT\"}"[..]);
        let recs = c.decode_all(&mut buf).expect("decode");
        assert_eq!(recs, vec![Bytes::from_static(b"{\"type\":\"HEARTBEAT\"}")]);
        assert_eq!(
            &encode(b"{\"type\":\"HEARTBEAT\"}")[..],
            b"20\n{\"type\":\"HEARTBEAT\"}"
        );
    }

    #[test]
    fn split_header_and_body() {
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::from(&b"1"[..]);
        assert!(c.decode(&mut buf).expect("partial").is_none());
        buf.extend_from_slice(b"0\nhello");
        assert!(c.decode(&mut buf).expect("partial").is_none());
        buf.extend_from_slice(b"world3\nabc");
        assert_eq!(
            c.decode_all(&mut buf).expect("decode"),
            vec![
                Bytes::from_static(b"helloworld"),
                Bytes::from_static(b"abc")
            ]
        );
    }

    #[test]
    fn errors_are_typed() {
        let mut c = RecordIoCodec::new(10);
        let mut buf = BytesMut::from(&b"11\n"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(RecordIoError::RecordTooLarge { size: 11, max: 10 })
        ));
        let mut c = RecordIoCodec::new(10);
        let mut buf = BytesMut::from(&b"123"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(RecordIoError::RecordTooLarge { .. })
        ));
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::from(&b"{\"type\""[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(RecordIoError::InvalidHeader(_))
        ));
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::from(&b"\nabc"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(RecordIoError::InvalidHeader(_))
        ));
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::from(&b"5\nab"[..]);
        assert!(matches!(
            c.decode_eof(&mut buf),
            Err(RecordIoError::UnexpectedEof {
                buffered: 2,
                expected: Some(5)
            })
        ));
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::from(&b"5"[..]);
        assert!(matches!(
            c.decode_eof(&mut buf),
            Err(RecordIoError::UnexpectedEof { expected: None, .. })
        ));
        let mut c = RecordIoCodec::default();
        let mut buf = BytesMut::new();
        assert!(c.decode_eof(&mut buf).expect("clean eof").is_none());
    }
}
