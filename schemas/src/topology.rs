//! The `Topology` resource: what users write and what the controller stores.
//!
//! Every field has its default applied during deserialisation, so a parsed
//! [`Topology`] is already normalised: two specs that mean the same thing compare
//! equal and hash equal (DESIGN.md, lesson 6). Unknown fields are rejected.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::TopologyStatus;

/// The only API version this crate reads and writes.
pub const API_VERSION: &str = "concord.io/v1alpha1";
/// The resource kind.
pub const KIND: &str = "Topology";
/// Namespace used when `metadata.namespace` is absent.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A stream-processing topology: a DAG of operators, each run as `instances` Mesos tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    /// Must be `concord.io/v1alpha1`.
    #[schemars(extend("const" = "concord.io/v1alpha1"))]
    pub api_version: String,
    /// Must be `Topology`.
    #[schemars(extend("const" = "Topology"))]
    pub kind: String,
    /// Name, namespace, labels and annotations; the server fills in the rest.
    pub metadata: ObjectMeta,
    /// What should run.
    pub spec: TopologySpec,
    /// Written by the controller only; ignored on input so `get -o yaml | apply -f -` works.
    /// Read leniently: a `status` that does not match [`TopologyStatus`] (hand-edited, or
    /// from another version) reads as absent instead of failing the whole document.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_status"
    )]
    pub status: Option<TopologyStatus>,
}

fn lenient_status<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<TopologyStatus>, D::Error> {
    // `serde_yaml_ng::Value` holds anything YAML or JSON can say, so reading it only
    // fails on malformed input, which must fail anyway.
    let value = Option::<serde_yaml_ng::Value>::deserialize(deserializer)?;
    Ok(value.and_then(|v| serde_yaml_ng::from_value(v).ok()))
}

/// Standard object metadata, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// DNS-1123 label: lower-case letters, digits and `-`, at most 63 characters.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL_PATTERN))]
    pub name: String,
    /// DNS-1123 label; `default` when absent.
    #[serde(default = "default_namespace")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL_PATTERN))]
    pub namespace: String,
    /// Identifying key/value pairs, as in Kubernetes (`app.kubernetes.io/name: x`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form key/value notes for people and tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the server on creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Incremented by the server each time `spec` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The etcd `mod_revision` of the stored object. When sent on a write, the write
    /// succeeds only if the stored object still has this revision (409 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Set by the server on creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// Set by the server when deletion was requested; tasks are being stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
}

/// Regular expression of a DNS-1123 label (also enforced by validation, with a better
/// message).
pub const DNS1123_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// What the user wants running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpec {
    /// The operators; edges are declared on the consuming side with `inputs`.
    #[schemars(length(min = 1))]
    pub operators: Vec<OperatorSpec>,
    /// Delivery guarantee for the whole topology.
    #[serde(default)]
    pub delivery: Delivery,
}

/// Delivery guarantee between operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Records may be lost on failure; the fastest mode.
    #[default]
    AtMostOnce,
    /// Sources commit positions only after everything before them was processed downstream.
    AtLeastOnce,
}

/// One operator of the DAG. Each instance runs as one Mesos task hosting `concord-executor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorSpec {
    /// DNS-1123 label, unique within the topology.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL_PATTERN))]
    pub name: String,
    /// Number of instances (tasks), 0 to 1000. Changing it only adds or removes tasks.
    #[serde(default = "default_instances")]
    #[schemars(range(max = 1000))]
    pub instances: u32,
    /// What runs: a built-in operator or a user process.
    pub runtime: Runtime,
    /// Operator configuration handed to `init`; free-form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Extra environment variables for the task. Names match `[A-Za-z_][A-Za-z0-9_]*` and
    /// may not start with the reserved prefixes `CONCORD_` or `MESOS_`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}))]
    pub env: BTreeMap<String, String>,
    /// Resources each instance needs from a Mesos offer.
    #[serde(default)]
    pub resources: Resources,
    /// Upstream operators this one consumes from. Empty for sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// How a template change is rolled out over the instances.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// Constraints on the agents instances may run on.
    #[serde(default)]
    pub placement: Placement,
    /// Exponential back-off between relaunches of a failed instance.
    #[serde(default)]
    pub restart_backoff: RestartBackoff,
    /// A rollout of this operator that makes no progress for this long is reported as
    /// `ProgressDeadlineExceeded`.
    #[serde(default = "default_progress_deadline")]
    #[schemars(range(min = 1, max = 604_800))]
    pub progress_deadline_seconds: u32,
    /// What happens to a record the operator fails on. Absent: it is skipped (counted and
    /// logged); with `deadLetter` it is also written to that Kafka topic.
    #[serde(default, skip_serializing_if = "ErrorPolicy::is_skip")]
    pub on_error: ErrorPolicy,
}

/// The per-operator policy for records an operator fails on (poison records).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorPolicy {
    /// Also write each failed record, with the error in its headers, to this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
}

impl ErrorPolicy {
    /// True for the default: skip, count and log.
    pub fn is_skip(&self) -> bool {
        self.dead_letter.is_none()
    }
}

/// A Kafka topic receiving an operator's failed records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetter {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// The topic.
    pub topic: String,
}

/// Upper bound on `instances`, to catch typos like `instances: 10000000`.
pub const MAX_INSTANCES: u32 = 1000;

fn default_instances() -> u32 {
    1
}

fn default_progress_deadline() -> u32 {
    600
}

/// The code an operator instance runs: exactly one of `builtin` or `process`.
///
/// In YAML and JSON this is a mapping with a single key, `runtime: {builtin: {name: map}}`
/// or `runtime: {process: {command: python3}}`. (Serialised by hand: serde_yaml_ng would
/// otherwise read and write enums as YAML tags, `!builtin {name: map}`.)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RuntimeRepr")]
pub enum Runtime {
    /// An operator compiled into `concord-executor`, chosen by name.
    Builtin(BuiltinRuntime),
    /// A user program started by the executor and spoken to over the operator protocol.
    Process(ProcessRuntime),
}

/// The wire shape of [`Runtime`]: both keys optional, exactly one required.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuntimeRepr {
    #[serde(default)]
    builtin: Option<BuiltinRuntime>,
    #[serde(default)]
    process: Option<ProcessRuntime>,
}

/// Message of the error for a runtime with neither or both keys.
pub(crate) const RUNTIME_ONE_OF: &str = "runtime must set exactly one of `builtin` or `process`";

impl TryFrom<RuntimeRepr> for Runtime {
    type Error = String;

    fn try_from(repr: RuntimeRepr) -> Result<Self, String> {
        match (repr.builtin, repr.process) {
            (Some(b), None) => Ok(Runtime::Builtin(b)),
            (None, Some(p)) => Ok(Runtime::Process(p)),
            (None, None) => Err(format!("{RUNTIME_ONE_OF}, found neither")),
            (Some(_), Some(_)) => Err(format!("{RUNTIME_ONE_OF}, found both")),
        }
    }
}

impl Serialize for Runtime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Runtime::Builtin(b) => map.serialize_entry("builtin", b)?,
            Runtime::Process(p) => map.serialize_entry("process", p)?,
        }
        map.end()
    }
}

impl JsonSchema for Runtime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Runtime".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let builtin = generator.subschema_for::<BuiltinRuntime>();
        let process = generator.subschema_for::<ProcessRuntime>();
        schemars::json_schema!({
            "description": "What runs: exactly one of `builtin` (an operator compiled into \
                concord-executor) or `process` (a user program speaking the operator protocol).",
            "oneOf": [
                {
                    "type": "object",
                    "description": "An operator compiled into `concord-executor`, chosen by name.",
                    "properties": {"builtin": builtin},
                    "required": ["builtin"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "description": "A user program started by the executor and spoken to over \
                        the operator protocol.",
                    "properties": {"process": process},
                    "required": ["process"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// A built-in operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuiltinRuntime {
    /// One of the operators compiled into the executor (`BUILTIN_OPERATORS`).
    #[schemars(extend("enum" = ["generator", "map", "filter", "keyed-count", "windowed-count",
        "threshold", "sink", "tcp-source", "http-source", "file-source", "kafka-source",
        "kafka-sink"]))]
    pub name: String,
}

/// A user process operator, started by the executor inside the task sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessRuntime {
    /// Program to run (looked up in the sandbox, then `PATH`).
    #[schemars(length(min = 1))]
    pub command: String,
    /// Arguments passed to `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Files fetched into the sandbox before start, like Mesos `CommandInfo.URI`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

/// A file fetched into the task sandbox before the operator starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifact {
    /// `http(s)://`, `file://`, an absolute path, or a path relative to the manifest
    /// (`./x`, `../x`), which `concord apply` resolves to a `file://` URI before sending
    /// (the API itself accepts only absolute URIs).
    #[schemars(regex(pattern = crate::validate::ARTIFACT_URI_PATTERN))]
    pub uri: String,
    /// Unpack archives (`.tar.gz`, `.tgz`, `.zip`, ...).
    #[serde(default = "default_true")]
    pub extract: bool,
    /// Mark the fetched file executable (no extraction).
    #[serde(default)]
    pub executable: bool,
    /// Name in the sandbox (relative); the URI's basename when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

fn default_true() -> bool {
    true
}

/// Per-instance resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU shares, > 0.
    #[serde(default = "default_cpus")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub cpus: f64,
    /// Memory in MB, > 0.
    #[serde(default = "default_mem")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub mem: f64,
    /// Disk in MB, >= 0.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub disk: f64,
    /// Extra named ports the operator needs (the executor's own data and metrics
    /// ports are always reserved in addition). Exposed as `CONCORD_PORT_<NAME>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpus: default_cpus(),
            mem: default_mem(),
            disk: 0.0,
            ports: Vec::new(),
        }
    }
}

fn default_cpus() -> f64 {
    0.1
}

fn default_mem() -> f64 {
    64.0
}

/// An edge into this operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    /// Name of the upstream operator.
    pub from: String,
    /// How records on this edge are spread over this operator's instances.
    #[serde(default)]
    pub partitioning: Partitioning,
}

/// How records on an edge are spread over this operator's instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// Any instance; balanced.
    #[default]
    Shuffle,
    /// By record key: the same key always reaches the same instance.
    Key,
    /// Every instance gets every record.
    Broadcast,
}

/// Rolling replacement bounds, as in Kubernetes Deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    /// Extra instances allowed above `instances` during a replacement (default 1).
    #[serde(default = "default_one")]
    pub max_surge: u32,
    /// Instances allowed below `instances` during a replacement (default 0). Not both 0.
    #[serde(default)]
    pub max_unavailable: u32,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        Self {
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

fn default_one() -> u32 {
    1
}

/// Where instances may run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// At most one instance of this operator per agent host.
    #[serde(default)]
    pub one_instance_per_host: bool,
    /// Agent attributes that must match exactly (e.g. `rack: r1`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub require_attributes: BTreeMap<String, String>,
}

/// Per-instance exponential back-off between relaunches of a failed task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartBackoff {
    /// Delay before the first relaunch, > 0 (default 1).
    #[serde(default = "default_backoff_initial")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub initial_seconds: f64,
    /// Multiplier applied after each failed relaunch, >= 1 (default 2).
    #[serde(default = "default_backoff_factor")]
    #[schemars(range(min = 1))]
    pub factor: f64,
    /// Upper bound of the delay, >= `initialSeconds` (default 300).
    #[serde(default = "default_backoff_max")]
    pub max_seconds: f64,
    /// A task running this long resets its instance's back-off.
    #[serde(default = "default_backoff_reset")]
    pub reset_after_seconds: f64,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self {
            initial_seconds: default_backoff_initial(),
            factor: default_backoff_factor(),
            max_seconds: default_backoff_max(),
            reset_after_seconds: default_backoff_reset(),
        }
    }
}

fn default_backoff_initial() -> f64 {
    1.0
}
fn default_backoff_factor() -> f64 {
    2.0
}
fn default_backoff_max() -> f64 {
    300.0
}
fn default_backoff_reset() -> f64 {
    600.0
}

impl Topology {
    /// `<namespace>/<name>`, the key used in etcd and in work queues.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// The operator with this name, if any.
    pub fn operator(&self, name: &str) -> Option<&OperatorSpec> {
        self.spec.operators.iter().find(|op| op.name == name)
    }
}
