//! Operator API (`POST /api/v1` on the master, `master.proto`) calls and responses.

use serde::{Deserialize, Serialize};

use super::common::{DurationInfo, Labels, TimeInfo};
use super::framework::{AgentCapability, AgentInfo, FrameworkInfo};
use super::ids::{AgentId, ExecutorId, FrameworkId, TaskId};
use super::offer::{InverseOffer, Offer};
use super::resource::Resource;
use super::status::{TaskState, TaskStatus};
use super::task::{ContainerInfo, DiscoveryInfo, ExecutorInfo, HealthCheck, KillPolicy};
use super::wire::{Bytes, lenient, lenient_opt, mesos_enum, null_default};

mesos_enum!(
    /// Operator `Call.Type` / `Response.Type` (the subset this library speaks, plus
    /// every other name via `Other`).
    OperatorCallType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Health.
        GetHealth = "GET_HEALTH",
        /// Flags.
        GetFlags = "GET_FLAGS",
        /// Version.
        GetVersion = "GET_VERSION",
        /// Metrics.
        GetMetrics = "GET_METRICS",
        /// Read a file.
        ReadFile = "READ_FILE",
        /// Whole state.
        GetState = "GET_STATE",
        /// Agents.
        GetAgents = "GET_AGENTS",
        /// Frameworks.
        GetFrameworks = "GET_FRAMEWORKS",
        /// Executors.
        GetExecutors = "GET_EXECUTORS",
        /// Tasks.
        GetTasks = "GET_TASKS",
        /// Roles.
        GetRoles = "GET_ROLES",
        /// Master info.
        GetMaster = "GET_MASTER",
        /// Event stream.
        Subscribe = "SUBSCRIBE",
        /// Mark an agent gone (its tasks are gone for good).
        MarkAgentGone = "MARK_AGENT_GONE",
    }
);

/// `Call.MarkAgentGone` (operator API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarkAgentGoneCall {
    /// The agent.
    pub agent_id: AgentId,
}

/// `Call.ReadFile` (operator API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadFileCall {
    /// Virtual path.
    pub path: String,
    /// Offset.
    #[serde(deserialize_with = "lenient")]
    pub offset: u64,
    /// Max bytes.
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub length: Option<u64>,
}

/// An operator API call: `{"type":"GET_TASKS"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorCall {
    /// Call type.
    #[serde(rename = "type")]
    pub r#type: OperatorCallType,
    /// GET_METRICS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_metrics: Option<GetMetricsCall>,
    /// READ_FILE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_file: Option<ReadFileCall>,
    /// MARK_AGENT_GONE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_agent_gone: Option<MarkAgentGoneCall>,
}

impl OperatorCall {
    /// A call without a body.
    pub fn new(r#type: OperatorCallType) -> Self {
        OperatorCall {
            r#type,
            ..OperatorCall::default()
        }
    }
}

/// `Call.GetMetrics` (operator API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetMetricsCall {
    /// How long to wait for metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationInfo>,
}

/// v1 `Task` as kept by the master (operator API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    /// Name.
    pub name: String,
    /// Id.
    pub task_id: TaskId,
    /// Framework.
    pub framework_id: FrameworkId,
    /// Executor (absent for command tasks in some versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    /// Agent.
    pub agent_id: AgentId,
    /// Latest state.
    pub state: TaskState,
    /// Resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
    /// Status history.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub statuses: Vec<TaskStatus>,
    /// State of the latest update not yet acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_update_state: Option<TaskState>,
    /// Uuid of that update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_update_uuid: Option<Bytes>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryInfo>,
    /// Container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// Health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Kill policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `Response.GetTasks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetTasks {
    /// Deprecated pending tasks.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pending_tasks: Vec<Task>,
    /// Staging/running (and terminal but unacknowledged) tasks.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tasks: Vec<Task>,
    /// Tasks on unreachable agents.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub unreachable_tasks: Vec<Task>,
    /// Terminal and acknowledged tasks.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub completed_tasks: Vec<Task>,
    /// Deprecated, always empty.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub orphan_tasks: Vec<Task>,
}

/// `Response.GetAgents.Agent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Agent {
    /// Agent info.
    pub agent_info: AgentInfo,
    /// Active.
    #[serde(deserialize_with = "lenient")]
    pub active: bool,
    /// Deactivated (draining).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub deactivated: Option<bool>,
    /// Mesos version of the agent.
    pub version: String,
    /// libprocess pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Registration time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_time: Option<TimeInfo>,
    /// Re-registration time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reregistered_time: Option<TimeInfo>,
    /// Total resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub total_resources: Vec<Resource>,
    /// Allocated resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allocated_resources: Vec<Resource>,
    /// Offered resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub offered_resources: Vec<Resource>,
    /// Capabilities.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<AgentCapability>,
}

/// `Response.GetAgents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetAgents {
    /// Registered agents.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub agents: Vec<Agent>,
    /// Agents known from the registry but not yet reregistered.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub recovered_agents: Vec<AgentInfo>,
}

/// `Response.GetFrameworks.Framework`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Framework {
    /// Framework info.
    pub framework_info: FrameworkInfo,
    /// Active.
    #[serde(deserialize_with = "lenient")]
    pub active: bool,
    /// Connected.
    #[serde(deserialize_with = "lenient")]
    pub connected: bool,
    /// Recovered after master failover and not yet reconnected.
    #[serde(deserialize_with = "lenient")]
    pub recovered: bool,
    /// Registration time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_time: Option<TimeInfo>,
    /// Re-registration time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reregistered_time: Option<TimeInfo>,
    /// Removal time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unregistered_time: Option<TimeInfo>,
    /// Outstanding offers.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub offers: Vec<Offer>,
    /// Outstanding inverse offers.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub inverse_offers: Vec<InverseOffer>,
    /// Allocated resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allocated_resources: Vec<Resource>,
    /// Offered resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub offered_resources: Vec<Resource>,
}

/// `Response.GetFrameworks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetFrameworks {
    /// Current frameworks.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub frameworks: Vec<Framework>,
    /// Removed frameworks.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub completed_frameworks: Vec<Framework>,
}

/// `Response.GetExecutors.Executor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Executor {
    /// Executor info.
    pub executor_info: ExecutorInfo,
    /// Agent.
    pub agent_id: AgentId,
}

/// `Response.GetExecutors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetExecutors {
    /// Executors.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub executors: Vec<Executor>,
}

/// `Response.GetState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetState {
    /// Tasks.
    pub get_tasks: GetTasks,
    /// Executors.
    pub get_executors: GetExecutors,
    /// Frameworks.
    pub get_frameworks: GetFrameworks,
    /// Agents.
    pub get_agents: GetAgents,
}

/// `Response.GetHealth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetHealth {
    /// Healthy.
    #[serde(deserialize_with = "lenient")]
    pub healthy: bool,
}

/// `VersionInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionInfo {
    /// Version, e.g. `1.11.0`.
    pub version: String,
    /// Build date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    /// Build time (epoch seconds).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub build_time: Option<f64>,
    /// Build user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_user: Option<String>,
    /// Git sha.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// Git branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    /// Git tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_tag: Option<String>,
}

/// `Response.GetVersion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetVersion {
    /// Version info.
    pub version_info: VersionInfo,
}

/// An operator API response: `{"type":"GET_X","get_x":{…}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorResponse {
    /// Response type (equals the call type).
    #[serde(rename = "type")]
    pub r#type: OperatorCallType,
    /// GET_HEALTH body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_health: Option<GetHealth>,
    /// GET_VERSION body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_version: Option<GetVersion>,
    /// GET_STATE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_state: Option<GetState>,
    /// GET_AGENTS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_agents: Option<GetAgents>,
    /// GET_FRAMEWORKS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_frameworks: Option<GetFrameworks>,
    /// GET_EXECUTORS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_executors: Option<GetExecutors>,
    /// GET_TASKS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_tasks: Option<GetTasks>,
}

/// `GET /files/read` response: `data` is the raw bytes as a JSON string (not base64).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileRead {
    /// The bytes read.
    pub data: String,
    /// Offset they start at (or the file size for `offset=-1`).
    #[serde(deserialize_with = "lenient")]
    pub offset: u64,
}
