//! Operator-protocol frames, both directions (the codec is shared).
#![no_main]

use concord_sdk::protocol::{decode_body, read_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_body(data);
    let mut r = data;
    while let Ok(Some(_)) = read_frame(&mut r) {}
});
