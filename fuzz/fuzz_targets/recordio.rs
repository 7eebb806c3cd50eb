//! A Mesos event stream: RecordIO framing, fed in pieces whose size the first byte picks,
//! each record decoded as an event.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mesos_v1::Event;
use mesos_v1::recordio::{DEFAULT_MAX_RECORD_SIZE, RecordIoCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let mut codec = RecordIoCodec::new(DEFAULT_MAX_RECORD_SIZE);
    let mut buf = BytesMut::new();
    for piece in data.chunks(usize::from(chunk).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(record)) => {
                    let _ = serde_json::from_slice::<Event>(&record);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
