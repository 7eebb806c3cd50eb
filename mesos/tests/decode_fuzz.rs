//! Bad input from Mesos, tried systematically (issue 16): RecordIO streams and the JSON of
//! events, calls, statuses and operator-API answers are decoded or rejected without a
//! panic, a hang or an allocation the bytes did not pay for, and the resource arithmetic
//! the controller runs on decoded offers never overflows.
//!
//! CI runs a bounded number of cases per property; `PROPTEST_CASES=100000` runs more
//! (see "Fuzzing" in docs/operations.md). `fuzz/` has the same decoders as cargo-fuzz
//! targets.

use bytes::BytesMut;
use mesos_v1::legacy::{AgentState, LegacyResources, MasterState};
use mesos_v1::recordio::{self, DEFAULT_MAX_RECORD_SIZE, RESERVE_LIMIT, RecordIoCodec};
use mesos_v1::resources;
use mesos_v1::{
    Call, Event, FileRead, GetAgents, GetFrameworks, GetState, GetTasks, Offer, OperatorResponse,
    Resource, TaskInfo, TaskStatus,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_util::codec::Decoder;

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

/// Field names of the Mesos JSON types, so generated objects reach typed fields.
const KEYS: &[&str] = &[
    "type",
    "offers",
    "resources",
    "name",
    "scalar",
    "value",
    "ranges",
    "range",
    "begin",
    "end",
    "set",
    "item",
    "role",
    "id",
    "agent_id",
    "framework_id",
    "hostname",
    "update",
    "status",
    "task_id",
    "state",
    "data",
    "timestamp",
    "uuid",
    "subscribed",
    "heartbeat_interval_seconds",
    "failure",
    "error",
    "message",
    "labels",
    "key",
    "tasks",
    "agents",
    "frameworks",
    "get_state",
    "get_tasks",
    "statuses",
    "slaves",
    "executors",
    "offset",
    "length",
    "reservations",
    "allocation_info",
    "agent_info",
    "port",
    "framework_info",
    "capabilities",
    "failover_timeout",
    "rescind",
    "offer_id",
];

/// Strings that mean something to the lenient decoders (enum names, numbers, specials).
const STRINGS: &[&str] = &[
    "",
    "OFFERS",
    "UPDATE",
    "SUBSCRIBED",
    "HEARTBEAT",
    "FAILURE",
    "ERROR",
    "RESCIND",
    "SCALAR",
    "RANGES",
    "SET",
    "TEXT",
    "TASK_RUNNING",
    "TASK_FAILED",
    "Infinity",
    "-Infinity",
    "NaN",
    "inf",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e309",
    "-1",
    "0.5",
    "true",
    "false",
    "AAAA",
    "====",
    "!!",
    "ports",
    "cpus",
    "mem",
    "disk",
    "*",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(1e300)),
            Just(json!(-1e300)),
            Just(json!(0.5)),
            Just(json!(5050.0)),
            any::<i64>().prop_map(|v| json!(v)),
            any::<u64>().prop_map(|v| json!(v)),
            any::<f64>().prop_map(|v| json!(v)),
        ],
        proptest::sample::select(STRINGS).prop_map(|s| Value::String(s.into())),
        ".{0,8}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON whose object keys are mostly real field names.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        4 => proptest::sample::select(KEYS).prop_map(String::from),
                        1 => "[a-z_]{1,6}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Numbers that break arithmetic done without care.
fn edgy_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(u64::MAX)),
        Just(json!(u64::MAX - 1)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!("Infinity")),
        Just(json!("-Infinity")),
        Just(json!("NaN")),
        Just(json!(9.2e15)),
        (0u64..70000).prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
    ]
}

/// A resource as an offer carries it, with extreme quantities.
fn resource() -> impl Strategy<Value = Value> {
    let name = proptest::sample::select(&["cpus", "mem", "disk", "ports", "gpus"][..]);
    prop_oneof![
        (name.clone(), edgy_number())
            .prop_map(|(n, v)| json!({"name": n, "type": "SCALAR", "scalar": {"value": v}})),
        (
            name.clone(),
            proptest::collection::vec((edgy_number(), edgy_number()), 0..4)
        )
            .prop_map(|(n, r)| {
                let range: Vec<Value> = r
                    .into_iter()
                    .map(|(b, e)| json!({"begin": b, "end": e}))
                    .collect();
                json!({"name": n, "type": "RANGES", "ranges": {"range": range}})
            }),
        (name, proptest::collection::vec("[a-c]{0,2}", 0..4))
            .prop_map(|(n, s)| json!({"name": n, "type": "SET", "set": {"item": s}})),
    ]
    .prop_flat_map(|r| {
        (Just(r), proptest::option::of("[a-c*]{1,3}")).prop_map(|(mut r, role)| {
            if let Some(role) = role {
                r["role"] = json!(role);
            }
            r
        })
    })
}

/// An OFFERS event whose resources have extreme quantities.
fn offers_event() -> impl Strategy<Value = Value> {
    proptest::collection::vec(proptest::collection::vec(resource(), 0..6), 0..3).prop_map(
        |offers| {
            let offers: Vec<Value> = offers
                .into_iter()
                .enumerate()
                .map(|(i, res)| {
                    json!({"id": {"value": format!("O{i}")}, "framework_id": {"value": "F"},
                       "agent_id": {"value": "S"}, "hostname": "h", "resources": res})
                })
                .collect();
            json!({"type": "OFFERS", "offers": {"offers": offers}})
        },
    )
}

/// What the scheduler and the controller do with an event: the accessors, and the
/// resource arithmetic of offer matching.
fn use_event(ev: &Event) {
    let _ = ev.task_status().map(TaskStatus::needs_ack);
    let offers = ev.offer_list();
    for o in offers {
        use_resources(&o.resources);
    }
    if let [a, b, ..] = offers {
        let _ = resources::sum(&a.resources, &b.resources);
        let _ = resources::subtract(&a.resources, &b.resources);
        let _ = resources::checked_subtract(&a.resources, &b.resources);
        let _ = resources::contains(&a.resources, &b.resources);
    }
}

fn use_resources(r: &[Resource]) {
    for name in ["cpus", "mem", "disk", "gpus"] {
        let _ = resources::scalar_total(r, name);
    }
    let ports = resources::ranges_total(r, "ports");
    let _ = resources::ranges_len(&ports);
    let _ = resources::normalize(r);
    let _ = resources::sum(r, r);
    let _ = resources::subtract(r, r);
    let _ = resources::contains(r, r);
    let _ = resources::allocate_to(r, "concord");
    let _ = LegacyResources::from_resources(r);
}

/// Deserialises `v` into every Mesos type a peer can send us.
fn decode_all_types(v: &Value) {
    if let Ok(ev) = serde_json::from_value::<Event>(v.clone()) {
        use_event(&ev);
        // What we parse we can print again.
        let _ = serde_json::to_vec(&ev).expect("serialise");
    }
    let _ = serde_json::from_value::<Call>(v.clone());
    if let Ok(s) = serde_json::from_value::<TaskStatus>(v.clone()) {
        let _ = s.needs_ack();
        let _ = s.state.is_terminal();
    }
    if let Ok(o) = serde_json::from_value::<Offer>(v.clone()) {
        use_resources(&o.resources);
    }
    if let Ok(r) = serde_json::from_value::<Resource>(v.clone()) {
        use_resources(std::slice::from_ref(&r));
    }
    let _ = serde_json::from_value::<TaskInfo>(v.clone());
    let _ = serde_json::from_value::<OperatorResponse>(v.clone());
    let _ = serde_json::from_value::<GetState>(v.clone());
    let _ = serde_json::from_value::<GetTasks>(v.clone());
    let _ = serde_json::from_value::<GetAgents>(v.clone());
    let _ = serde_json::from_value::<GetFrameworks>(v.clone());
    let _ = serde_json::from_value::<FileRead>(v.clone());
    let _ = serde_json::from_value::<MasterState>(v.clone());
    let _ = serde_json::from_value::<AgentState>(v.clone());
}

/// The same from bytes, as the HTTP clients do.
fn decode_all_types_from_bytes(b: &[u8]) {
    if let Ok(ev) = serde_json::from_slice::<Event>(b) {
        use_event(&ev);
    }
    let _ = serde_json::from_slice::<Call>(b);
    let _ = serde_json::from_slice::<TaskStatus>(b);
    let _ = serde_json::from_slice::<Offer>(b);
    let _ = serde_json::from_slice::<OperatorResponse>(b);
    let _ = serde_json::from_slice::<GetState>(b);
    let _ = serde_json::from_slice::<FileRead>(b);
    let _ = serde_json::from_slice::<MasterState>(b);
    let _ = serde_json::from_slice::<AgentState>(b);
}

/// Decodes a RecordIO stream fed in `chunk`-byte pieces with the production limit, each
/// record as an event. Returns the records decoded.
fn drive_recordio(input: &[u8], chunk: usize) -> usize {
    let mut codec = RecordIoCodec::new(DEFAULT_MAX_RECORD_SIZE);
    let mut buf = BytesMut::new();
    let mut n = 0;
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(record)) => {
                    n += 1;
                    if let Ok(ev) = serde_json::from_slice::<Event>(&record) {
                        use_event(&ev);
                    }
                }
                Ok(None) => break,
                Err(_) => return n,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
    n
}

const BYTES_PER_INPUT_BYTE: usize = 64;
const FIXED_ALLOWANCE: usize = RESERVE_LIMIT + (256 << 10);

fn check_recordio(input: &[u8], chunk: usize) -> Result<(), TestCaseError> {
    let (records, peak) = alloc_meter::peak(|| drive_recordio(input, chunk));
    // A record costs at least its 2-byte header ("0\n").
    prop_assert!(records * 2 <= input.len());
    prop_assert!(
        peak <= FIXED_ALLOWANCE + BYTES_PER_INPUT_BYTE * input.len(),
        "{peak} bytes allocated for {} input bytes",
        input.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary JSON (with real field names) into every type: no panic, and events that
    /// parse survive the accessors and resource arithmetic.
    #[test]
    fn arbitrary_json_values(v in json_value()) {
        decode_all_types(&v);
    }

    /// OFFERS events with extreme quantities: the arithmetic saturates, never panics.
    #[test]
    fn offers_with_extreme_resources(ev in offers_event()) {
        decode_all_types(&ev);
        let bytes = serde_json::to_vec(&ev).expect("json");
        decode_all_types_from_bytes(&bytes);
    }

    /// Arbitrary bytes and mutated event JSON from the wire.
    #[test]
    fn arbitrary_json_bytes(
        ev in offers_event(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
        raw in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        decode_all_types_from_bytes(&raw);
        let mut bytes = serde_json::to_vec(&ev).expect("json");
        let at = flip.0 % bytes.len();
        bytes[at] ^= 1 << (flip.1 % 8);
        decode_all_types_from_bytes(&bytes);
        bytes.truncate(cut % bytes.len());
        decode_all_types_from_bytes(&bytes);
    }

    /// RecordIO streams of events, mutated (a header replaced by a huge or odd length, a
    /// cut, a flipped bit), decoded in arbitrary chunks within the bounds.
    #[test]
    fn mutated_recordio_streams(
        events in proptest::collection::vec(offers_event(), 1..4),
        header in prop_oneof![
            Just("67108864".to_string()),
            Just("67108865".to_string()),
            Just("18446744073709551615".to_string()),
            Just("99999999999999999999999".to_string()),
            Just("".to_string()),
            Just("-1".to_string()),
            Just("0x10".to_string()),
            "[0-9]{1,9}",
        ],
        which in any::<usize>(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
        chunk in 1usize..512,
    ) {
        let records: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
        let mut wire = BytesMut::new();
        for (i, r) in records.iter().enumerate() {
            if i == which % records.len() {
                wire.extend_from_slice(format!("{header}\n").as_bytes());
                wire.extend_from_slice(r);
            } else {
                recordio::encode_into(r, &mut wire);
            }
        }
        let mut bytes = wire.to_vec();
        check_recordio(&bytes, chunk)?;
        let at = flip.0 % bytes.len();
        bytes[at] ^= 1 << (flip.1 % 8);
        check_recordio(&bytes, chunk)?;
        bytes.truncate(cut % bytes.len());
        check_recordio(&bytes, chunk)?;
    }

    /// Arbitrary bytes as a RecordIO stream.
    #[test]
    fn arbitrary_recordio_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        chunk in 1usize..256,
    ) {
        check_recordio(&bytes, chunk)?;
    }
}

/// Regression (issue 16): the header `67108864\n` made the decoder reserve 64 MiB before
/// a byte of the record had arrived.
#[test]
fn huge_record_header_does_not_preallocate() {
    let mut codec = RecordIoCodec::default();
    let (result, peak) = alloc_meter::peak(|| {
        let mut buf = BytesMut::from(&b"67108864\n{\"type\":"[..]);
        let r = codec.decode(&mut buf);
        (r.map(|o| o.is_none()), buf.capacity())
    });
    let (pending, capacity) = result;
    assert!(pending.expect("a valid header"));
    assert!(capacity <= RESERVE_LIMIT + 64, "capacity {capacity}");
    assert!(peak <= RESERVE_LIMIT + 4096, "{peak} bytes allocated");
    // A record larger than the reservation still arrives whole.
    let big = vec![b'x'; RESERVE_LIMIT * 3];
    let mut wire = BytesMut::new();
    recordio::encode_into(&big, &mut wire);
    let mut codec = RecordIoCodec::default();
    let mut buf = BytesMut::new();
    let mut got = None;
    for piece in wire.chunks(8192) {
        buf.extend_from_slice(piece);
        if let Some(r) = codec.decode(&mut buf).expect("valid") {
            got = Some(r);
        }
    }
    assert_eq!(got.expect("record").len(), big.len());
}

/// Regression (issue 16): offer arithmetic overflowed (a panic in debug builds, a wrong
/// answer in release) on ranges `0-18446744073709551615` and on huge or infinite scalars.
#[test]
fn extreme_offer_quantities_saturate() {
    let r: Vec<Resource> = serde_json::from_value(json!([
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 0, "end": u64::MAX}]}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": "Infinity"}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1e300}, "role": "a"},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": "-Infinity"}},
    ]))
    .expect("parse");
    assert_eq!(
        resources::ranges_len(&resources::ranges_total(&r, "ports")),
        u64::MAX
    );
    assert!(resources::scalar_total(&r, "cpus") > 1e15);
    let doubled = resources::sum(&r, &r);
    assert!(resources::contains(&doubled, &r));
    let _ = resources::subtract(&r, &doubled);
    let _ = resources::subtract(&doubled, &r);
}

/// JSON nested deeper than serde_json's recursion limit is an error, not a stack
/// overflow, for every type.
#[test]
fn deeply_nested_json_is_rejected() {
    for open in [
        "[",
        "{\"offers\":",
        "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[",
    ] {
        let doc = format!("{}{}", open.repeat(50_000), "]".repeat(50_000));
        decode_all_types_from_bytes(doc.as_bytes());
        assert!(serde_json::from_str::<Event>(&doc).is_err());
    }
}
