//! Built-in operators driven directly through the operator API.

use std::collections::BTreeMap;

use bytes::Bytes;
use concord_executor::operators::{
    BUILTIN_NAMES, filter, keyed_count, map, threshold, windowed_count,
};
use concord_sdk::{Config, Context, Emitter, Operator, Record, TraceContext};
use serde_json::{Value, json};

#[derive(Default)]
struct Collect {
    out: Vec<(Vec<u8>, Vec<u8>, u64)>,
    timers: Vec<(Vec<u8>, u64)>,
}

impl Emitter for Collect {
    fn emit(&mut self, _s: &str, k: &[u8], v: &[u8], t: u64, _tr: Option<TraceContext>) {
        self.out.push((k.to_vec(), v.to_vec(), t));
    }
    fn set_timer(&mut self, k: &[u8], t: u64) {
        self.timers.push((k.to_vec(), t));
    }
}

fn config(v: Value) -> Config {
    let m: BTreeMap<String, Value> = serde_json::from_value(v).expect("map");
    Config::new(m)
}

fn init(op: &mut dyn Operator, c: &Config, em: &mut Collect) {
    let mut ctx = Context::new(em, c, 0);
    op.init(&mut ctx).expect("init");
}

fn feed(op: &mut dyn Operator, c: &Config, em: &mut Collect, key: &str, value: Value, t: u64) {
    let mut ctx = Context::new(em, c, 0);
    ctx.set_current(t, None);
    op.process_record(
        &mut ctx,
        Record::new(key.as_bytes().to_vec(), value.to_string().into_bytes(), t),
    )
    .expect("process");
}

fn json_out(em: &Collect) -> Vec<Value> {
    em.out
        .iter()
        .map(|(_, v, _)| serde_json::from_slice(v).expect("json"))
        .collect()
}

#[test]
fn builtin_names_match_the_schema() {
    let mut ours: Vec<&str> = BUILTIN_NAMES.to_vec();
    let mut theirs: Vec<&str> = concord_schemas::BUILTIN_OPERATORS.to_vec();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
}

#[test]
fn tumbling_and_sliding_windows() {
    let c = config(json!({"sizeMs": 1000, "keyField": "ip"}));
    let mut op = windowed_count::WindowedCount::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    for t in [100, 200, 900, 1100] {
        feed(&mut op, &c, &mut em, "", json!({"ip": "a"}), t);
    }
    feed(&mut op, &c, &mut em, "", json!({"ip": "b"}), 500);
    assert_eq!(
        em.timers.iter().map(|t| t.1).collect::<Vec<_>>(),
        vec![1000, 2000]
    );
    let mut ctx = Context::new(&mut em, &c, 0);
    op.process_timer(&mut ctx, Bytes::from_static(b"window"), 1000)
        .expect("timer");
    let out = json_out(&em);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        json!({"key": "a", "count": 3, "windowStart": 0, "windowEnd": 1000})
    );
    assert_eq!(out[1]["key"], "b");

    let c = config(json!({"sizeMs": 1000, "slideMs": 500}));
    let mut op = windowed_count::WindowedCount::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    feed(&mut op, &c, &mut em, "k", json!({}), 700);
    let mut ctx = Context::new(&mut em, &c, 0);
    op.process_timer(&mut ctx, Bytes::from_static(b"window"), 1500)
        .expect("timer");
    let ends: Vec<u64> = json_out(&em)
        .iter()
        .map(|v| v["windowEnd"].as_u64().expect("end"))
        .collect();
    assert_eq!(
        ends,
        vec![1000, 1500],
        "a record at 700 is in [0,1000) and [500,1500)"
    );
}

#[test]
fn threshold_filter_map_and_count() {
    let c = config(json!({"min": 3}));
    let mut op = threshold::Threshold::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    feed(&mut op, &c, &mut em, "ip", json!({"count": 2}), 1);
    feed(&mut op, &c, &mut em, "ip", json!({"count": 3}), 1);
    assert_eq!(
        json_out(&em),
        vec![json!({"count": 3, "alert": true, "threshold": 3.0})]
    );

    let c = config(json!({"expr": "isBot == false && url contains /ad/"}));
    let mut op = filter::Filter::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    feed(
        &mut op,
        &c,
        &mut em,
        "",
        json!({"isBot": false, "url": "/ad/1"}),
        1,
    );
    feed(
        &mut op,
        &c,
        &mut em,
        "",
        json!({"isBot": true, "url": "/ad/1"}),
        1,
    );
    assert_eq!(em.out.len(), 1);

    let c = config(json!({"regex": "^10\\.", "field": "ip"}));
    let mut op = filter::Filter::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    feed(&mut op, &c, &mut em, "", json!({"ip": "10.0.0.1"}), 1);
    feed(&mut op, &c, &mut em, "", json!({"ip": "11.0.0.1"}), 1);
    assert_eq!(em.out.len(), 1);

    let c = config(json!({"keyBy": "ip", "set": {"stage": "m"}, "upper": ["url"]}));
    let mut op = map::Map::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    feed(
        &mut op,
        &c,
        &mut em,
        "",
        json!({"ip": "1.2.3.4", "url": "/ad"}),
        9,
    );
    assert_eq!(em.out[0].0, b"1.2.3.4");
    assert_eq!(
        json_out(&em)[0],
        json!({"ip": "1.2.3.4", "url": "/AD", "stage": "m"})
    );
    assert_eq!(em.out[0].2, 9);

    let c = config(json!({}));
    let mut op = keyed_count::KeyedCount::default();
    let mut em = Collect::default();
    init(&mut op, &c, &mut em);
    for _ in 0..3 {
        feed(&mut op, &c, &mut em, "x", json!({}), 1);
    }
    assert_eq!(json_out(&em)[2], json!({"key": "x", "count": 3}));
}

#[test]
fn benchmark_map_and_count() {
    use concord_executor::operators::benchmark;
    let mut rec = benchmark::template();
    benchmark::write_record(&mut rec, 5, benchmark::DEFAULT_KEYS, 77);
    let c = config(json!({"mode": "benchmark"}));
    let mut m = map::Map::default();
    let mut em = Collect::default();
    init(&mut m, &c, &mut em);
    let mut ctx = Context::new(&mut em, &c, 0);
    m.process_record(&mut ctx, Record::new(Bytes::new(), rec.to_vec(), 1))
        .expect("map");
    let (k, v, _) = em.out[0].clone();
    assert_eq!(k, rec[8..15].to_ascii_uppercase());
    assert_eq!(v.len(), 93);
    assert_eq!(benchmark::timestamp(&v), Some(77));
    let mut kc = keyed_count::KeyedCount::default();
    let mut em2 = Collect::default();
    init(&mut kc, &c, &mut em2);
    for _ in 0..2 {
        let mut ctx = Context::new(&mut em2, &c, 0);
        kc.process_record(&mut ctx, Record::new(k.clone(), v.clone(), 1))
            .expect("count");
    }
    // Benchmark mode counts a batch at a time: output appears at the end of the batch.
    let mut ctx = Context::new(&mut em2, &c, 0);
    kc.end_of_batch(&mut ctx).expect("end of batch");
    assert_eq!(em2.out.len(), 2);
    assert_eq!(em2.out[1].2, 1, "event time kept");
    let (_, out, _) = &em2.out[1];
    assert_eq!(out.len(), 16);
    assert_eq!(benchmark::timestamp(out), Some(77));
    assert_eq!(&out[8..16], &2u64.to_be_bytes());
}

#[test]
fn reads_the_controllers_normalised_operator_spec() {
    use concord_executor::config::{OperatorSpec, Partitioning, Runtime};
    let spec: concord_schemas::OperatorSpec = serde_json::from_value(json!({
        "name": "enrich",
        "instances": 3,
        "runtime": {"process": {"command": "python3", "args": ["enrich.py"],
                                "artifacts": [{"uri": "https://example.com/enrich.py"}]}},
        "config": {"botPatterns": ["bot"]},
        "resources": {"ports": ["ingest"]},
        "inputs": [{"from": "clicks", "partitioning": "key"}],
    }))
    .expect("schema spec");
    let text = serde_json::to_string(&spec).expect("serialise");
    let ours: OperatorSpec = serde_json::from_str(&text).expect("executor reads it");
    assert_eq!(ours.name, "enrich");
    assert_eq!(ours.instances, 3);
    assert!(matches!(ours.runtime, Runtime::Process { ref command, .. } if command == "python3"));
    assert_eq!(ours.inputs[0].partitioning, Partitioning::Key);
    assert_eq!(ours.resources.ports, vec!["ingest".to_owned()]);

    let builtin: concord_schemas::OperatorSpec =
        serde_json::from_value(json!({"name": "g", "runtime": {"builtin": {"name": "generator"}}}))
            .expect("schema spec");
    let ours: OperatorSpec =
        serde_json::from_str(&serde_json::to_string(&builtin).expect("ser")).expect("de");
    assert_eq!(
        ours.runtime,
        Runtime::Builtin {
            name: "generator".into()
        }
    );
    assert!(ours.inputs.is_empty());
}
