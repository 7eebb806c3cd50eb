//! Bad input on the operator protocol, tried systematically (issue 16), in both
//! directions: whatever an operator child writes to the executor, or an executor writes to
//! an operator, is decoded or rejected with `ProtocolError::Malformed` without a panic, a
//! hang or an allocation the bytes did not pay for.
//!
//! CI runs a bounded number of cases per property; `PROPTEST_CASES=100000` runs more
//! (see "Fuzzing" in docs/operations.md). `fuzz/` has the same decoder as a cargo-fuzz
//! target.

use concord_sdk::TraceContext;
use concord_sdk::protocol::{
    FrameWriter, MAX_FRAME, Message, PREALLOC_LIMIT, ProtocolError, decode_body, read_frame,
    write_frame,
};
use proptest::prelude::*;

/// Counts the bytes each thread has allocated, to check that decoding allocates in
/// proportion to the input and not to what its length fields claim.
mod alloc_meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    /// The test binary's allocator: the system one, metered per thread.
    pub struct Meter;

    fn note(delta: isize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    // SAFETY: every call is forwarded unchanged to `System`; the meter only counts.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            note(-(layout.size() as isize));
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size as isize - layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Runs `f` and returns its result and the most bytes it had allocated at once on
    /// this thread (beyond what was live before).
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get);
        (out, usize::try_from(peak - base).unwrap_or(0))
    }
}

#[global_allocator]
static METER: alloc_meter::Meter = alloc_meter::Meter;

/// `ci` cases per property in CI; `PROPTEST_CASES` overrides for long runs.
fn config(ci: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Allocation allowed per input byte (about two `Message`s per 5-byte message while the
/// output vector doubles) and a fixed allowance on top.
const BYTES_PER_INPUT_BYTE: usize = 64;
const FIXED_ALLOWANCE: usize = PREALLOC_LIMIT + (64 << 10);

/// Reads frames from `input` until the end or the first error; returns the frames read.
fn drive(input: &[u8]) -> usize {
    let mut r = input;
    let mut frames = 0;
    while let Ok(Some(_)) = read_frame(&mut r) {
        frames += 1;
    }
    frames
}

fn check(input: &[u8]) -> Result<(), TestCaseError> {
    let (frames, peak) = alloc_meter::peak(|| drive(input));
    prop_assert!(frames * 8 <= input.len());
    prop_assert!(
        peak <= FIXED_ALLOWANCE + BYTES_PER_INPUT_BYTE * input.len(),
        "{peak} bytes allocated for {} input bytes",
        input.len()
    );
    Ok(())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn trace() -> impl Strategy<Value = TraceContext> {
    any::<(u64, u64)>().prop_map(|(trace_id, span_id)| TraceContext { trace_id, span_id })
}

/// Any message but `Destroy`, which must end its frame.
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,20}".prop_map(|json| Message::Init { json }),
        (bytes(16), bytes(32), any::<u64>()).prop_map(|(key, value, event_time)| Message::Record {
            key,
            value,
            event_time
        }),
        (bytes(16), bytes(32), any::<u64>(), trace()).prop_map(
            |(key, value, event_time, trace)| {
                Message::TracedRecord {
                    key,
                    value,
                    event_time,
                    trace,
                }
            }
        ),
        (bytes(16), any::<u64>()).prop_map(|(key, time)| Message::Timer { key, time }),
        ".{0,20}".prop_map(|json| Message::Metadata { json }),
        (".{0,8}", bytes(16), bytes(32), any::<u64>()).prop_map(
            |(stream, key, value, event_time)| Message::Produce {
                stream,
                key,
                value,
                event_time
            }
        ),
        (".{0,8}", bytes(16), bytes(32), any::<u64>(), trace()).prop_map(
            |(stream, key, value, event_time, trace)| Message::TracedProduce {
                stream,
                key,
                value,
                event_time,
                trace,
            }
        ),
        (bytes(16), any::<u64>()).prop_map(|(key, time)| Message::SetTimer { key, time }),
        (any::<u8>(), ".{0,20}").prop_map(|(level, message)| Message::Log { level, message }),
        ".{0,20}".prop_map(|message| Message::Error { message }),
    ]
}

/// A frame's messages, `Destroy` possibly last.
fn frame_messages() -> impl Strategy<Value = Vec<Message>> {
    (proptest::collection::vec(message(), 0..8), any::<bool>()).prop_map(|(mut m, destroy)| {
        if destroy {
            m.push(Message::Destroy);
        }
        m
    })
}

fn encode(frames: &[Vec<Message>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        write_frame(&mut out, f).expect("write to a Vec");
    }
    out
}

proptest! {
    #![proptest_config(config(1000))]

    /// Frames written by `write_frame` read back exactly, in order.
    #[test]
    fn valid_frames_round_trip(frames in proptest::collection::vec(frame_messages(), 0..4)) {
        let wire = encode(&frames);
        let mut r = &wire[..];
        for f in &frames {
            let back = read_frame(&mut r).expect("valid").expect("a frame");
            prop_assert_eq!(&back, f);
        }
        prop_assert!(read_frame(&mut r).expect("clean end").is_none());
    }

    /// Valid streams with a few mutations (cuts, bit flips, huge lengths and counts,
    /// inserted and removed bytes) are read or rejected within the bounds.
    #[test]
    fn mutated_streams_stay_within_bounds(
        frames in proptest::collection::vec(frame_messages(), 1..4),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut wire = encode(&frames);
        for m in &mutations {
            apply(&mut wire, m);
        }
        check(&wire)?;
    }

    /// Arbitrary bytes likewise.
    #[test]
    fn arbitrary_bytes_stay_within_bounds(input in bytes(2048)) {
        check(&input)?;
    }

    /// Arbitrary frame bodies: decoded or `Malformed`, never an I/O error or a panic.
    #[test]
    fn arbitrary_bodies_are_decoded_or_malformed(body in bytes(512)) {
        match decode_body(&body) {
            Ok(msgs) => prop_assert!(msgs.len() <= body.len()),
            Err(e) => prop_assert!(matches!(e, ProtocolError::Malformed(_)), "{e}"),
        }
    }

    /// A message count larger than the body holds is `Malformed`.
    #[test]
    fn count_larger_than_body_is_malformed(msgs in frame_messages(), extra in 1u32..=u32::MAX) {
        let mut fw = FrameWriter::new();
        for m in &msgs {
            fw.push(m);
        }
        let frame = fw.finish();
        let mut body = frame[4..].to_vec();
        let claimed = (msgs.len() as u32).saturating_add(extra);
        body[0..4].copy_from_slice(&claimed.to_be_bytes());
        prop_assert!(matches!(decode_body(&body), Err(ProtocolError::Malformed(_))));
    }
}

/// Regression (issue 16): a 4-byte length of 64 MiB made `read_frame` allocate and
/// zero-fill 64 MiB before reading any of the body.
#[test]
fn huge_length_prefix_does_not_preallocate() {
    let mut input = (MAX_FRAME as u32).to_be_bytes().to_vec();
    input.extend_from_slice(&[0, 0, 0, 1, 4]);
    let (result, peak) = alloc_meter::peak(|| read_frame(&mut &input[..]));
    assert!(
        matches!(result, Err(ProtocolError::Io(ref e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{result:?}"
    );
    assert!(peak <= PREALLOC_LIMIT + 4096, "{peak} bytes allocated");
    let over = (MAX_FRAME as u32 + 1).to_be_bytes();
    assert!(matches!(
        read_frame(&mut &over[..]),
        Err(ProtocolError::Malformed(_))
    ));
    // A frame larger than the preallocation still arrives whole.
    let big = Message::Error {
        message: "x".repeat(PREALLOC_LIMIT * 2),
    };
    let wire = encode(&[vec![big.clone()]]);
    assert_eq!(
        read_frame(&mut &wire[..]).expect("read").expect("frame"),
        vec![big]
    );
}

/// Regression (issue 16): a count of 65536 in an 8-byte body reserved 65536 `Message`s
/// (6 MiB) before decoding any.
#[test]
fn huge_count_does_not_preallocate() {
    let body = [0, 1, 0, 0, 4];
    let (result, peak) = alloc_meter::peak(|| decode_body(&body));
    assert!(matches!(result, Err(ProtocolError::Malformed(_))));
    assert!(peak <= 4096, "{peak} bytes allocated");
}

/// Regression (issue 16): a frame of one-byte `Destroy` messages decoded into ~100 bytes
/// of `Message` per input byte (6 GiB for a 64 MiB frame). `Destroy` now ends its frame.
#[test]
fn frame_of_destroys_is_malformed() {
    let n = 4096u32;
    let mut body = n.to_be_bytes().to_vec();
    body.extend(std::iter::repeat_n(4u8, n as usize));
    let (result, peak) = alloc_meter::peak(|| decode_body(&body));
    assert!(matches!(result, Err(ProtocolError::Malformed(ref m)) if m.contains("Destroy")));
    assert!(
        peak <= BYTES_PER_INPUT_BYTE * body.len(),
        "{peak} bytes allocated for {} input bytes",
        body.len()
    );
    assert_eq!(
        decode_body(&[0, 0, 0, 1, 4]).expect("a lone Destroy"),
        vec![Message::Destroy]
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the stream at this offset.
    Truncate(usize),
    /// Flip one bit.
    FlipBit(usize, u8),
    /// Overwrite 4 bytes (a length, count, key or value length) with this value.
    PutU32(usize, u32),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Remove a few bytes.
    Remove(usize, usize),
}

/// Values that make length and count fields interesting.
fn edgy_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(16),
        Just(17),
        Just(u32::MAX),
        Just(u32::MAX - 16),
        Just(0x8000_0000),
        Just(MAX_FRAME as u32),
        Just(MAX_FRAME as u32 + 1),
        Just(4),
        0u32..300,
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<usize>(), edgy_u32()).prop_map(|(at, v)| Mutation::PutU32(at, v)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), 1usize..8).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize| i % bytes.len();
    match m {
        Mutation::Truncate(i) => bytes.truncate(at(*i)),
        Mutation::FlipBit(i, bit) => {
            let i = at(*i);
            bytes[i] ^= 1 << bit;
        }
        Mutation::PutU32(i, v) => {
            let i = at(*i);
            for (k, b) in v.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = b;
                }
            }
        }
        Mutation::Insert(i, extra) => {
            let i = at(*i);
            bytes.splice(i..i, extra.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let i = at(*i);
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}
