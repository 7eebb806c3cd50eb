//! Data-plane frames as a data port or an ack reader receives them.
#![no_main]

use bytes::Bytes;
use concord_executor::wire::{
    self, BatchReader, FRAME_ACK, FRAME_BATCH, FRAME_HELLO, FRAME_MARKER,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    while let Ok(Some((kind, body))) = wire::read_frame(&mut r) {
        match kind {
            FRAME_HELLO => {
                let _ = serde_json::from_slice::<serde_json::Value>(&body);
            }
            FRAME_BATCH => {
                if let Ok(mut reader) = BatchReader::new(Bytes::from(body)) {
                    while let Ok(Some(_)) = reader.next_record() {}
                }
            }
            FRAME_MARKER => {
                let _ = wire::marker_seq(&body);
            }
            FRAME_ACK => {
                let _ = wire::ack_body(&body);
            }
            _ => {}
        }
    }
});
