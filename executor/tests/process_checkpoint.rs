//! A process operator takes part in checkpoints: the executor's `checkpoint` asks the
//! child (protocol `Checkpoint`) to make its output durable and fails when the child
//! says it could not, does not answer in time, or is gone; a child on an SDK without
//! the feature is still served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use concord_executor::metrics::Metrics;
use concord_executor::operators::BuiltinEnv;
use concord_executor::operators::process::ProcessOperator;
use concord_executor::record_errors::{ErrorPolicy, RecordErrors};
use concord_executor::runtime::{Ingest, RuntimeState};
use concord_sdk::{Config, Context, Emitter, Operator, Record, TraceContext};

struct Discard;

impl Emitter for Discard {
    fn emit(&mut self, _s: &str, _k: &[u8], _v: &[u8], _t: u64, _tr: Option<TraceContext>) {}
    fn set_timer(&mut self, _key: &[u8], _time: u64) {}
}

/// A file sink that buffers records and writes them out only at `checkpoint`; a record
/// `fail` makes the next checkpoint raise, a record `hang` makes it never answer, a
/// record `die` kills it.
const SINK: &str = r#"
import os, sys, time
sys.path.insert(0, os.environ["SDK_DIR"])
import concord_sdk

class BufferedSink(concord_sdk.Operator):
    def __init__(self):
        self.buf, self.mode = [], "ok"
    def process_record(self, ctx, record):
        if record.value == b"die":
            os._exit(3)
        if record.value in (b"fail", b"hang"):
            self.mode = record.value.decode()
        else:
            self.buf.append(record.value.decode())
    def checkpoint(self):
        if self.mode == "fail":
            self.mode = "ok"
            raise IOError("disk full")
        if self.mode == "hang":
            time.sleep(60)
        with open(os.environ["OUT"], "a") as f:
            f.write("".join(v + "\n" for v in self.buf))
            f.flush()
            os.fsync(f.fileno())
        self.buf = []

concord_sdk.run(BufferedSink())
"#;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python")
}

fn env(name: &str, metrics: &Arc<Metrics>, rt: &tokio::runtime::Runtime) -> BuiltinEnv {
    let errors = RecordErrors::new(
        &ErrorPolicy::default(),
        name,
        "t",
        metrics.failed_records("skipped"),
        metrics.failed_records("dead_lettered"),
    )
    .expect("errors");
    let (tx, _rx) = sync_channel(1);
    BuiltinEnv {
        ingest: Ingest::new(tx, metrics.input_queue.clone()),
        tokio: rt.handle().clone(),
        operator: name.into(),
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
    }
}

fn feed(op: &mut ProcessOperator, config: &Config, values: &[&str]) {
    let mut out = Discard;
    let mut ctx = Context::new(&mut out, config, 0);
    for v in values {
        op.process_record(
            &mut ctx,
            Record::new(b"k".to_vec(), v.as_bytes().to_vec(), 1),
        )
        .expect("queued");
    }
    op.end_of_batch(&mut ctx).expect("batch");
}

#[test]
fn a_python_sink_makes_its_output_durable_before_the_checkpoint_succeeds() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("sink.py");
    std::fs::write(&script, SINK).expect("write");
    let out = dir.path().join("out.txt");
    let metrics = Arc::new(Metrics::new("pysink", 0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let mut op = ProcessOperator::new(
        "python3".into(),
        vec![script.to_string_lossy().into_owned()],
        vec![],
        [
            (
                "SDK_DIR".to_owned(),
                sdk_dir().to_string_lossy().into_owned(),
            ),
            ("OUT".to_owned(), out.to_string_lossy().into_owned()),
        ]
        .into(),
        env("pysink", &metrics, &rt),
    );
    let config = Config::new([("checkpointTimeoutMs".to_owned(), serde_json::json!(500))].into());
    {
        let mut d = Discard;
        let mut ctx = Context::new(&mut d, &config, 0);
        op.init(&mut ctx).expect("init");
    }
    let read = || std::fs::read_to_string(&out).unwrap_or_default();

    feed(&mut op, &config, &["a", "b"]);
    assert_eq!(read(), "", "nothing is written before the checkpoint");
    op.checkpoint().expect("checkpoint succeeds");
    assert_eq!(
        read(),
        "a\nb\n",
        "the checkpoint returned after the child wrote"
    );

    // The child reports that it could not make its output durable: the checkpoint fails.
    feed(&mut op, &config, &["c", "fail"]);
    let err = op
        .checkpoint()
        .expect_err("a failed child checkpoint fails");
    assert!(err.to_string().contains("disk full"), "{err}");
    // The next one succeeds again (and writes what was held back).
    op.checkpoint().expect("checkpoint after a failure");
    assert_eq!(read(), "a\nb\nc\n");

    // The child does not answer in time: the checkpoint fails, the child is replaced,
    // and the operator goes on with a new child.
    feed(&mut op, &config, &["d", "hang"]);
    let err = op.checkpoint().expect_err("an unanswered checkpoint fails");
    assert!(err.to_string().contains("answer"), "{err}");
    feed(&mut op, &config, &["e"]);
    op.checkpoint().expect("the restarted child checkpoints");
    assert_eq!(
        read(),
        "a\nb\nc\ne\n",
        "d was lost with the hung child (and is replayed by the source)"
    );

    // The child dies on a (poison) record after it was handed others in earlier batches
    // since the last checkpoint: the new child is handed those again, so the checkpoint
    // covers them; only the poison record is skipped (and counted).
    feed(&mut op, &config, &["f", "g"]);
    feed(&mut op, &config, &["h", "die"]);
    op.checkpoint().expect("checkpoint after a recovered death");
    assert_eq!(read(), "a\nb\nc\ne\nf\ng\nh\n");
    let text = metrics.render();
    assert!(text.contains(r#"action="skipped"} 1"#), "{text}");
    op.destroy();
}

/// A child built on an SDK without the `checkpoint` feature is not sent `Checkpoint`
/// (it would not understand it) and keeps working.
#[test]
fn a_child_without_the_checkpoint_feature_is_still_served() {
    let dir = tempfile::tempdir().expect("tmp");
    // The SDK as it was before the feature: announces only tracing and rejects the
    // Checkpoint tag (it would die on one).
    let script = dir.path().join("echo.py");
    std::fs::write(
        &script,
        "import os, sys\nsys.path.insert(0, os.environ['SDK_DIR'])\nimport concord_sdk\n\
         concord_sdk.FEATURES = ['trace']\nconcord_sdk.T_CHECKPOINT = -1\n\
         class Echo(concord_sdk.Operator):\n    def process_record(self, ctx, r):\n        ctx.produce('out', r.key, r.value)\n\
         concord_sdk.run(Echo())\n",
    )
    .expect("write");
    let metrics = Arc::new(Metrics::new("echo", 0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let mut op = ProcessOperator::new(
        "python3".into(),
        vec![script.to_string_lossy().into_owned()],
        vec![],
        [(
            "SDK_DIR".to_owned(),
            sdk_dir().to_string_lossy().into_owned(),
        )]
        .into(),
        env("echo", &metrics, &rt),
    );
    let config = Config::default();
    {
        let mut d = Discard;
        let mut ctx = Context::new(&mut d, &config, 0);
        op.init(&mut ctx).expect("init");
    }
    feed(&mut op, &config, &["a"]);
    op.checkpoint().expect("no feature: nothing to ask");
    feed(&mut op, &config, &["b"]);
    op.checkpoint().expect("still served");
    assert!(
        !metrics
            .render()
            .contains("concord_process_restarts_total{operator=\"echo\",instance=\"0\"} 1"),
        "the child was never sent a message it does not understand"
    );
    op.destroy();
}
