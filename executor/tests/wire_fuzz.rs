//! Bad input on the data plane, tried systematically (issue 16): every byte stream a peer
//! can send to a data port or back on an outbound connection is decoded without a panic,
//! a hang or an allocation the bytes did not pay for, and garbage injects nothing.
//!
//! CI runs a bounded number of cases per property; `PROPTEST_CASES=100000` runs more
//! (see "Fuzzing" in docs/operations.md). `fuzz/` has the same decoders as cargo-fuzz
//! targets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_executor::router::inbound::{InMsg, spawn_listener};
use concord_executor::wire::{
    self, BatchBuilder, BatchReader, FRAME_ACK, FRAME_BATCH, FRAME_HELLO, FRAME_MARKER, MAX_FRAME,
    PREALLOC_LIMIT,
};
use concord_sdk::TraceContext;
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

/// Allocation allowed per input byte (a JSON hello of tiny arrays is the worst case) and
/// a fixed allowance on top.
const BYTES_PER_INPUT_BYTE: usize = 64;
const FIXED_ALLOWANCE: usize = PREALLOC_LIMIT + (64 << 10);

/// What a receiver does with a byte stream: frames until the end or the first error, and
/// each frame's body decoded the way its reader does. Returns (frames, records).
fn drive(input: &[u8]) -> (usize, usize) {
    let mut r = input;
    let (mut frames, mut records) = (0, 0);
    while let Ok(Some((kind, body))) = wire::read_frame(&mut r) {
        frames += 1;
        assert!(
            body.len() < input.len(),
            "a frame body larger than the input"
        );
        match kind {
            FRAME_HELLO => {
                let _ = serde_json::from_slice::<serde_json::Value>(&body);
            }
            FRAME_BATCH => {
                if let Ok(mut reader) = BatchReader::new(Bytes::from(body)) {
                    while let Ok(Some(_)) = reader.next_record() {
                        records += 1;
                    }
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
    (frames, records)
}

/// Drives `input` and checks the bounds every input must respect.
fn check(input: &[u8]) -> Result<(), TestCaseError> {
    let ((frames, records), peak) = alloc_meter::peak(|| drive(input));
    // Every frame costs its 5-byte header and every record its 17-byte header, so the
    // decoder cannot loop on what is not there.
    prop_assert!(frames * 5 <= input.len());
    prop_assert!(records * 17 <= input.len());
    prop_assert!(
        peak <= FIXED_ALLOWANCE + BYTES_PER_INPUT_BYTE * input.len(),
        "{peak} bytes allocated for {} input bytes",
        input.len()
    );
    Ok(())
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

#[derive(Debug, Clone)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    event_time: u64,
    trace: Option<(u64, u64)>,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        proptest::collection::vec(any::<u8>(), 0..24),
        proptest::collection::vec(any::<u8>(), 0..48),
        any::<u64>(),
        proptest::option::of(any::<(u64, u64)>()),
    )
        .prop_map(|(key, value, event_time, trace)| Rec {
            key,
            value,
            event_time,
            trace,
        })
}

fn trace_of(r: &Rec) -> Option<TraceContext> {
    r.trace
        .map(|(trace_id, span_id)| TraceContext { trace_id, span_id })
}

fn batch_frame(records: &[Rec]) -> Vec<u8> {
    let mut b = BatchBuilder::with_capacity(256);
    for r in records {
        b.push(&r.key, &r.value, r.event_time, trace_of(r));
    }
    b.finish(256)
}

/// What an upstream sends: a hello, then batches and markers.
fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(
            prop_oneof![
                3 => proptest::collection::vec(rec(), 0..6).prop_map(|r| batch_frame(&r)),
                1 => any::<u64>().prop_map(wire::marker_frame),
                1 => (any::<u64>(), any::<bool>()).prop_map(|(s, ok)| wire::ack_frame(s, ok).to_vec()),
            ],
            0..5,
        ),
        "[a-z]{1,12}",
    )
        .prop_map(|(frames, op)| {
            let mut out = wire::hello_frame(&format!(r#"{{"operator":"{op}","instance":0}}"#));
            for f in frames {
                out.extend_from_slice(&f);
            }
            out
        })
}

proptest! {
    #![proptest_config(config(1000))]

    /// Batches written by `BatchBuilder` come back exactly.
    #[test]
    fn valid_batches_round_trip(records in proptest::collection::vec(rec(), 0..20)) {
        let frame = batch_frame(&records);
        let (kind, body) = wire::read_frame(&mut &frame[..])
            .expect("io")
            .expect("frame");
        prop_assert_eq!(kind, FRAME_BATCH);
        let mut reader = BatchReader::new(Bytes::from(body)).expect("reader");
        prop_assert_eq!(reader.remaining() as usize, records.len());
        for r in &records {
            let got = reader.next_record().expect("ok").expect("record");
            prop_assert_eq!(&got.key[..], &r.key[..]);
            prop_assert_eq!(&got.value[..], &r.value[..]);
            prop_assert_eq!(got.event_time, r.event_time);
            prop_assert_eq!(got.trace, trace_of(r));
        }
        prop_assert!(reader.next_record().expect("ok").is_none());
    }

    /// A valid stream with a few mutations (cuts, bit flips, huge lengths and counts,
    /// inserted and removed bytes) is decoded or rejected within the bounds.
    #[test]
    fn mutated_streams_stay_within_bounds(
        stream in valid_stream(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = stream;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes)?;
    }

    /// Arbitrary bytes likewise.
    #[test]
    fn arbitrary_bytes_stay_within_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    /// A batch body whose count exceeds what the body holds ends with an error after at
    /// most as many records as fit, never reading past the body.
    #[test]
    fn batch_count_larger_than_body_is_an_error(
        records in proptest::collection::vec(rec(), 0..8),
        extra in 1u32..=u32::MAX,
    ) {
        let frame = batch_frame(&records);
        let mut body = frame[5..].to_vec();
        let claimed = (records.len() as u32).saturating_add(extra);
        body[0..4].copy_from_slice(&claimed.to_be_bytes());
        let mut reader = BatchReader::new(Bytes::from(body)).expect("reader");
        let mut n = 0;
        let end = loop {
            match reader.next_record() {
                Ok(Some(_)) => n += 1,
                other => break other,
            }
        };
        prop_assert_eq!(n, records.len());
        prop_assert!(end.is_err());
    }

    /// Marker and ack bodies of any length decode or fail; never panic.
    #[test]
    fn marker_and_ack_bodies(body in proptest::collection::vec(any::<u8>(), 0..20)) {
        prop_assert_eq!(wire::marker_seq(&body).is_ok(), body.len() >= 8);
        prop_assert_eq!(wire::ack_body(&body).is_ok(), body.len() >= 9);
    }
}

/// Regression (issue 16): a frame header claiming 64 MiB followed by a few bytes made
/// `read_frame` reserve the whole 64 MiB before any body arrived.
#[test]
fn huge_length_prefix_does_not_preallocate() {
    let mut input = (MAX_FRAME as u32).to_be_bytes().to_vec();
    input.push(FRAME_BATCH);
    input.extend_from_slice(&[0; 10]);
    let (result, peak) = alloc_meter::peak(|| wire::read_frame(&mut &input[..]));
    assert_eq!(
        result.expect_err("short body").kind(),
        std::io::ErrorKind::UnexpectedEof
    );
    assert!(peak <= PREALLOC_LIMIT + 4096, "{peak} bytes allocated");
    // A length over the limit is refused before anything is read.
    let mut input = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
    input.push(FRAME_BATCH);
    assert!(wire::read_frame(&mut &input[..]).is_err());
    // A body larger than the preallocation still arrives whole.
    let big = vec![7u8; PREALLOC_LIMIT * 2];
    let frame = wire::hello_frame(std::str::from_utf8(&big).expect("ascii"));
    let (_, body) = wire::read_frame(&mut &frame[..])
        .expect("io")
        .expect("frame");
    assert_eq!(body, big);
}

/// A hello nested deeper than serde_json's recursion limit is an error, not a stack
/// overflow.
#[test]
fn deeply_nested_hello_is_rejected() {
    let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let frame = wire::hello_frame(&json);
    let (_, body) = wire::read_frame(&mut &frame[..])
        .expect("io")
        .expect("frame");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
}

/// One data port for the socket properties, its queue, and a count of panics in any
/// thread (a reader thread that panics would otherwise only close its socket).
struct Port {
    addr: std::net::SocketAddr,
    rx: Mutex<Receiver<InMsg>>,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn port() -> &'static Port {
    static PORT: OnceLock<Port> = OnceLock::new();
    PORT.get_or_init(|| {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            hook(info);
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = sync_channel(1 << 16);
        spawn_listener(listener, tx, Default::default(), None).expect("listener");
        Port {
            addr,
            rx: Mutex::new(rx),
        }
    })
}

/// What the data port queued, without the reply socket a marker carries (holding it
/// would keep the connection open).
enum Queued {
    Batch(Bytes),
    Marker,
    Other,
}

fn queued(m: InMsg) -> Queued {
    match m {
        InMsg::Batch { body, .. } => Queued::Batch(body),
        InMsg::Marker(_) => Queued::Marker,
        InMsg::Ingest(_) => Queued::Other,
    }
}

/// Sends `input` to the data port, waits (bounded) until the reader has closed the
/// connection, and returns what it queued.
fn send_to_port(input: &[u8]) -> Result<Vec<Queued>, TestCaseError> {
    let port = port();
    let rx = port.rx.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = TcpStream::connect(port.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    // The reader may close early (bad hello): a failed write is an answer too.
    let _ = s.write_all(input);
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut sink = [0u8; 256];
    loop {
        // Drained while waiting: a queued marker holds a clone of the socket.
        got.extend(rx.try_iter().map(queued));
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() > deadline {
                    return Err(TestCaseError::fail("the data port reader did not finish"));
                }
            }
            Err(_) => break,
        }
    }
    // The reader queues before it closes: everything it sent is here now.
    got.extend(rx.try_iter().map(queued));
    Ok(got)
}

/// True when `input` starts with a complete hello frame.
fn starts_with_hello(input: &[u8]) -> bool {
    matches!(
        wire::read_frame(&mut &input[..]),
        Ok(Some((FRAME_HELLO, _)))
    )
}

proptest! {
    #![proptest_config(config(128))]

    /// Bytes that do not start with a hello inject nothing into the operator's queue.
    #[test]
    fn data_port_garbage_injects_nothing(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let msgs = send_to_port(&bytes)?;
        if !starts_with_hello(&bytes) {
            prop_assert!(msgs.is_empty(), "{} messages queued from garbage", msgs.len());
        }
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    }

    /// A mutated upstream stream queues at most one message per frame, each decodable
    /// without a panic, and the reader always finishes.
    #[test]
    fn data_port_mutated_stream(
        stream in valid_stream(),
        mutations in proptest::collection::vec(mutation(), 0..3),
    ) {
        let mut bytes = stream;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let msgs = send_to_port(&bytes)?;
        prop_assert!(msgs.len() * 5 <= bytes.len());
        for m in msgs {
            prop_assert!(!matches!(m, Queued::Other));
            if let Queued::Batch(body) = m {
                if let Ok(mut reader) = BatchReader::new(body) {
                    while let Ok(Some(_)) = reader.next_record() {}
                }
            }
        }
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    }
}
