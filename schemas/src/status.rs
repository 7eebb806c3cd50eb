//! `TopologyStatus`: what the controller observed, written only by the leader.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a topology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyStatus {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default)]
    pub observed_generation: i64,
    /// `Ready`, `Progressing` and `Degraded`, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-operator counts and tasks, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorStatus>,
    /// The last generation that became Ready; `concord rollout undo` re-applies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stable_generation: Option<i64>,
    /// Recent events, oldest first, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// Condition types the controller reports.
pub mod condition_type {
    /// Every operator has its desired number of updated, running instances.
    pub const READY: &str = "Ready";
    /// A rollout or scale is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is failing: crash loops, insufficient resources, deadline exceeded.
    pub const DEGRADED: &str = "Degraded";
}

/// Condition reasons that readers act on.
pub mod condition_reason {
    /// Degraded because a running task reports a problem outside it (its Kafka broker is
    /// unreachable, its topic missing): shown, but not a failed rollout.
    pub const OPERATOR_PROBLEM: &str = "OperatorProblem";
}

/// A Kubernetes-style condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason, e.g. `ProgressDeadlineExceeded`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// Truth value of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell (e.g. Mesos unreachable).
    Unknown,
}

/// Per-operator counts and tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorStatus {
    /// Operator name.
    pub name: String,
    /// `instances` from the spec.
    pub desired: u32,
    /// Tasks in TASK_RUNNING.
    pub running: u32,
    /// Running tasks with the current template hash.
    pub updated: u32,
    /// Updated tasks whose executor reports ready.
    pub ready: u32,
    /// Hash of the fields that shape a running instance.
    pub template_hash: String,
    /// The operator's tasks, by instance number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSummary>,
}

/// One task as the controller last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    /// Mesos task ID.
    pub task_id: String,
    /// Instance number, 0-based.
    pub instance: u32,
    /// Template hash the task was launched with.
    pub template_hash: String,
    /// Mesos task state, e.g. `TASK_RUNNING`.
    pub state: String,
    /// Mesos agent running the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Host name of that agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When the task entered `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Relaunches of this instance since its back-off was last reset.
    #[serde(default)]
    pub restarts: u32,
    /// Why the previous task of this instance ended (Mesos reason and message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_reason: Option<String>,
    /// The instance will not be relaunched before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_until: Option<DateTime<Utc>>,
    /// What the task reports keeps it from working (e.g. its Kafka broker is
    /// unreachable); the topology is Degraded while any task reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Something that happened to a topology, for `concord describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// e.g. `Launched`, `Running`, `Killed`, `Failed`, `BackOff`, `ScaledUp`.
    pub reason: String,
    /// The operator concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Human-readable details.
    pub message: String,
}

impl TopologyStatus {
    /// The condition of this type, if reported.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
