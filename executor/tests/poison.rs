//! A process operator whose child dies on a record: the child is restarted, the batch is
//! retried one record at a time, and only the record it dies on again is skipped (and
//! counted), so the task neither loses the rest of the batch nor crash-loops.

use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use concord_executor::metrics::Metrics;
use concord_executor::operators::BuiltinEnv;
use concord_executor::operators::process::ProcessOperator;
use concord_executor::record_errors::{ErrorPolicy, RecordErrors};
use concord_executor::runtime::{Ingest, RuntimeState};
use concord_sdk::{Config, Context, Emitter, Operator, Record, TraceContext};

#[derive(Default)]
struct Collect(Vec<String>);

impl Emitter for Collect {
    fn emit(&mut self, _s: &str, key: &[u8], _v: &[u8], _t: u64, _tr: Option<TraceContext>) {
        self.0.push(String::from_utf8_lossy(key).into_owned());
    }
    fn set_timer(&mut self, _key: &[u8], _time: u64) {}
}

const OPERATOR: &str = r#"
import os, sys
sys.path.insert(0, os.environ["SDK_DIR"])
import concord_sdk

class Fragile(concord_sdk.Operator):
    def process_record(self, ctx, record):
        if record.value == b"poison":
            os._exit(3)
        ctx.produce("out", record.key, record.value)

concord_sdk.run(Fragile())
"#;

#[test]
fn a_child_that_dies_on_a_record_is_restarted_and_only_that_record_is_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("fragile.py");
    std::fs::write(&script, OPERATOR).expect("write");
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python");
    let metrics = Arc::new(Metrics::new("fragile", 0));
    let errors = RecordErrors::new(
        &ErrorPolicy::default(),
        "fragile",
        "t",
        metrics.failed_records("skipped"),
        metrics.failed_records("dead_lettered"),
    )
    .expect("errors");
    let (tx, _rx) = sync_channel(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let env = BuiltinEnv {
        ingest: Ingest::new(tx, metrics.input_queue.clone()),
        tokio: rt.handle().clone(),
        operator: "fragile".into(),
        instance: 0,
        instances: 1,
        task_id: "t".into(),
        bind_host: "127.0.0.1".into(),
        namespace: "default".into(),
        topology: "t".into(),
        at_least_once: true,
        metrics: metrics.clone(),
        state: Arc::new(RuntimeState::default()),
        errors,
    };
    let mut op = ProcessOperator::new(
        "python3".into(),
        vec![script.to_string_lossy().into_owned()],
        vec![],
        [("SDK_DIR".to_owned(), sdk.to_string_lossy().into_owned())].into(),
        env,
    );
    let config = Config::default();
    let mut out = Collect::default();
    {
        let mut ctx = Context::new(&mut out, &config, 0);
        op.init(&mut ctx).expect("init");
        for (k, v) in [("a", "ok"), ("b", "poison"), ("c", "ok"), ("d", "ok")] {
            op.process_record(
                &mut ctx,
                Record::new(k.as_bytes().to_vec(), v.as_bytes().to_vec(), 1),
            )
            .expect("queued");
        }
        op.end_of_batch(&mut ctx).expect("the batch is recovered");
        // The restarted child keeps working.
        op.process_record(&mut ctx, Record::new(b"e".to_vec(), b"ok".to_vec(), 1))
            .expect("queued");
        op.end_of_batch(&mut ctx).expect("next batch");
    }
    assert_eq!(out.0, ["a", "c", "d", "e"]);
    let text = metrics.render();
    assert!(text.contains(r#"action="skipped"} 1"#), "{text}");
    assert!(
        text.contains("concord_process_restarts_total{operator=\"fragile\",instance=\"0\"} 2"),
        "{text}"
    );
    op.destroy();
}
