//! Built-in operators and the process-operator adapter.

pub mod benchmark;
pub mod count_table;
pub mod filter;
pub mod generator;
pub mod json;
pub mod kafka;
pub mod keyed_count;
pub mod map;
pub mod process;
pub mod sink;
pub mod sources;
pub mod threshold;
pub mod windowed_count;

use concord_sdk::{Operator, OperatorError};

use crate::config::{OperatorSpec, Runtime};
use crate::runtime::Ingest;

/// Names of the built-in operators (must match `concord_schemas::BUILTIN_OPERATORS`).
pub const BUILTIN_NAMES: &[&str] = &[
    "generator",
    "map",
    "filter",
    "keyed-count",
    "windowed-count",
    "threshold",
    "sink",
    "tcp-source",
    "http-source",
    "file-source",
    "kafka-source",
    "kafka-sink",
];

/// What built-in operators may use besides their configuration.
#[derive(Clone)]
pub struct BuiltinEnv {
    /// Injects records into this operator's input (for sources doing their own I/O).
    pub ingest: Ingest,
    /// The executor's async runtime (for HTTP servers and clients).
    pub tokio: tokio::runtime::Handle,
    /// Operator name.
    pub operator: String,
    /// Instance index.
    pub instance: u32,
    /// Number of instances of this operator (from the spec; 1 when absent).
    pub instances: u32,
    /// Task ID.
    pub task_id: String,
    /// Host to bind source listeners on.
    pub bind_host: String,
    /// Topology namespace and name.
    pub namespace: String,
    pub topology: String,
    /// True under at-least-once delivery (sources that can replay send markers).
    pub at_least_once: bool,
    /// The executor's metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Lifecycle flags; operators report problems here.
    pub state: std::sync::Arc<crate::runtime::RuntimeState>,
    /// Failed (poison) records go here.
    pub errors: std::sync::Arc<crate::record_errors::RecordErrors>,
}

/// Creates the operator the spec asks for.
pub fn build(spec: &OperatorSpec, env: &BuiltinEnv) -> Result<Box<dyn Operator>, OperatorError> {
    match &spec.runtime {
        Runtime::Builtin { name } => builtin(name, env),
        Runtime::Process {
            command,
            args,
            artifacts,
        } => Ok(Box::new(process::ProcessOperator::new(
            command.clone(),
            args.clone(),
            artifacts.clone(),
            spec.env.clone(),
            env.clone(),
        ))),
    }
}

fn builtin(name: &str, env: &BuiltinEnv) -> Result<Box<dyn Operator>, OperatorError> {
    Ok(match name {
        "generator" => Box::new(generator::Generator::new(env)),
        "map" => Box::new(map::Map::default()),
        "filter" => Box::new(filter::Filter::default()),
        "keyed-count" => Box::new(keyed_count::KeyedCount::default()),
        "windowed-count" => Box::new(windowed_count::WindowedCount::default()),
        "threshold" => Box::new(threshold::Threshold::default()),
        "sink" => Box::new(sink::Sink::new(env)),
        "tcp-source" => Box::new(sources::TcpSource::new(env)),
        "http-source" => Box::new(sources::HttpSource::new(env)),
        "file-source" => Box::new(sources::FileSource::new(env)),
        "kafka-source" => Box::new(kafka::KafkaSource::new(env)),
        "kafka-sink" => Box::new(kafka::KafkaSink::new(env)),
        other => {
            return Err(OperatorError::msg(format!(
                "unknown built-in operator `{other}` (known: {})",
                BUILTIN_NAMES.join(", ")
            )));
        }
    })
}

/// Output stream name used by every built-in operator.
pub const OUT: &str = "out";

/// Metadata helper.
pub(crate) fn meta(name: &str, has_input: bool) -> concord_sdk::Metadata {
    concord_sdk::Metadata {
        name: name.to_owned(),
        inputs: if has_input {
            vec!["in".to_owned()]
        } else {
            vec![]
        },
        outputs: vec![OUT.to_owned()],
    }
}
