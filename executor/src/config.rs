//! Executor configuration: command-line flags, each also read from the environment the
//! controller sets on the Mesos task.

use std::collections::BTreeMap;

use clap::Parser;
use serde::Deserialize;

/// Flags and environment of `concord-executor`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "concord-executor",
    about = "Hosts one Concord operator instance"
)]
pub struct ExecutorArgs {
    /// Topology namespace.
    #[arg(long, env = "CONCORD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Topology name.
    #[arg(long, env = "CONCORD_TOPOLOGY")]
    pub topology: String,
    /// Operator name within the topology.
    #[arg(long, env = "CONCORD_OPERATOR")]
    pub operator: String,
    /// Instance index of this task.
    #[arg(long, env = "CONCORD_INSTANCE", default_value_t = 0)]
    pub instance: u32,
    /// Mesos task ID (a generated one when absent).
    #[arg(long, env = "CONCORD_TASK_ID")]
    pub task_id: Option<String>,
    /// Template hash of the operator spec, published with the endpoint.
    #[arg(long, env = "CONCORD_TEMPLATE_HASH", default_value = "")]
    pub template_hash: String,
    /// JSON of the operator's normalised `OperatorSpec`.
    #[arg(long, env = "CONCORD_OPERATOR_SPEC")]
    pub operator_spec: String,
    /// `at-most-once` (default) or `at-least-once`.
    #[arg(long, env = "CONCORD_DELIVERY", default_value = "at-most-once")]
    pub delivery: String,
    /// Comma-separated etcd URLs.
    #[arg(long, env = "CONCORD_ETCD", default_value = "http://127.0.0.1:2379")]
    pub etcd: String,
    /// Key prefix in etcd.
    #[arg(long, env = "CONCORD_ETCD_PREFIX", default_value = "/concord")]
    pub etcd_prefix: String,
    /// TLS and user for etcd.
    #[command(flatten)]
    pub etcd_access: crate::discovery::EtcdAccess,
    /// Data port (0 or absent: ephemeral).
    #[arg(long, env = "CONCORD_DATA_PORT", default_value_t = 0)]
    pub data_port: u16,
    /// Metrics/health port (0 or absent: ephemeral).
    #[arg(long, env = "CONCORD_METRICS_PORT", default_value_t = 0)]
    pub metrics_port: u16,
    /// Host published in the endpoint; the data, metrics and source ports bind this
    /// address (not every interface).
    #[arg(long, env = "CONCORD_ADVERTISE_HOST", default_value = "127.0.0.1")]
    pub advertise_host: String,
    /// File holding the topology's data-plane secret (the controller has Mesos write it
    /// into the sandbox). Required unless `--insecure-no-dataplane-auth`.
    #[arg(
        long,
        env = concord_schemas::dataplane::DATAPLANE_SECRET_FILE_ENV,
        conflicts_with = "insecure_no_dataplane_auth"
    )]
    pub dataplane_secret_file: Option<std::path::PathBuf>,
    /// Accept and open data-plane connections without authentication (anyone who can
    /// reach the data port can inject records). For experiments only; logged at warn.
    #[arg(long)]
    pub insecure_no_dataplane_auth: bool,
    /// Fraction of source records sampled for tracing.
    #[arg(long, env = "CONCORD_TRACE_SAMPLE_RATE", default_value_t = 0.001)]
    pub trace_sample_rate: f64,
    /// Output batch size in bytes (a batch is flushed when it reaches this size).
    #[arg(long, env = "CONCORD_BATCH_BYTES", default_value_t = 64 * 1024)]
    pub batch_bytes: usize,
    /// Longest time a partly filled output batch waits, in microseconds.
    #[arg(long, env = "CONCORD_LINGER_US", default_value_t = 1000)]
    pub linger_us: u64,
    /// Batches queued per downstream connection before the operator blocks.
    #[arg(long, env = "CONCORD_QUEUE_BATCHES", default_value_t = 8)]
    pub queue_batches: usize,
    /// Batches queued on the input side before readers stop reading (back-pressure).
    #[arg(long, env = "CONCORD_INPUT_QUEUE_BATCHES", default_value_t = 16)]
    pub input_queue_batches: usize,
    /// How long an operator with outputs waits for a first downstream instance before it
    /// starts, ms.
    #[arg(long, env = "CONCORD_SOURCE_WAIT_MS", default_value_t = 5000)]
    pub source_wait_ms: u64,
    /// Log level filter (`RUST_LOG` syntax).
    #[arg(long, env = "CONCORD_LOG", default_value = "info")]
    pub log: String,
}

/// The subset of `concord_schemas::OperatorSpec` the executor reads. Unknown fields are
/// ignored so the executor keeps working while the schema grows.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperatorSpec {
    /// Operator name.
    #[serde(default)]
    pub name: String,
    /// Number of instances of the operator.
    #[serde(default = "one")]
    pub instances: u32,
    /// What runs.
    pub runtime: Runtime,
    /// Free-form configuration.
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Extra environment for process operators.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Edges into this operator.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// Resources (only named ports are read).
    #[serde(default)]
    pub resources: Resources,
    /// What happens to records the operator fails on.
    #[serde(default)]
    pub on_error: crate::record_errors::ErrorPolicy,
}

fn one() -> u32 {
    1
}

/// Operator runtime: built-in by name or a user process.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Runtime {
    /// A built-in operator.
    Builtin {
        /// Its name, e.g. `generator`.
        name: String,
    },
    /// A user process speaking the operator protocol.
    Process {
        /// Program to run.
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Files fetched into the sandbox (by Mesos; local paths are copied when missing).
        #[serde(default)]
        artifacts: Vec<serde_json::Value>,
    },
}

impl Default for Runtime {
    fn default() -> Self {
        Self::Builtin {
            name: String::new(),
        }
    }
}

/// An edge into this operator.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// Upstream operator name.
    pub from: String,
    /// `shuffle`, `key` or `broadcast`.
    #[serde(default)]
    pub partitioning: Partitioning,
}

/// How an edge spreads records over the consuming operator's instances.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// Round-robin.
    #[default]
    Shuffle,
    /// Rendezvous hashing on the record key.
    Key,
    /// Every instance.
    Broadcast,
}

/// Resources; the executor reads the named ports only.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Extra named ports, exposed as `CONCORD_PORT_<NAME>`.
    #[serde(default)]
    pub ports: Vec<String>,
}

/// Environment variable holding the port assigned to a named port.
pub fn port_env_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CONCORD_PORT_{upper}")
}

/// Port assigned to the named port `name` (from `CONCORD_PORT_<NAME>`), if any.
pub fn named_port(name: &str) -> Option<u16> {
    std::env::var(port_env_name(name))
        .ok()
        .and_then(|v| v.trim().parse().ok())
}
