//! The legacy JSON endpoints (`GET /state`, `/tasks`, `/frameworks`, `/slaves`,
//! agent `/state`, `/version`), wire reference §10.
//!
//! These differ from the v1 mapping: ids are plain strings, resources an object
//! (`{"cpus":2.0,"mem":1024.0,"ports":"[31000-32000]"}`), labels `[{key,value}]`,
//! capabilities plain name strings and times epoch seconds. Tools such as the Mesos
//! CLI and dashboards read these, so mesos-lite serves them with these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::format_ranges;
use crate::types::wire::{lenient, lenient_opt, null_default};
use crate::types::{Attribute, Labels, Resource, ValueType};

/// A legacy resources object. Known scalars are fields; everything else (other
/// scalars as numbers, ranges as `"[a-b, c-d]"`, sets as `"{a,b}"`) is in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyResources {
    /// CPUs.
    #[serde(deserialize_with = "lenient")]
    pub cpus: f64,
    /// GPUs.
    #[serde(deserialize_with = "lenient")]
    pub gpus: f64,
    /// Memory (MB).
    #[serde(deserialize_with = "lenient")]
    pub mem: f64,
    /// Disk (MB).
    #[serde(deserialize_with = "lenient")]
    pub disk: f64,
    /// Ports as `"[31000-32000]"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    /// Any other resource.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl LegacyResources {
    /// Summarises a v1 resource list the way the legacy endpoints do (all roles summed).
    pub fn from_resources(resources: &[Resource]) -> Self {
        let mut out = LegacyResources::default();
        let mut scalars: BTreeMap<String, f64> = BTreeMap::new();
        let mut ranges: BTreeMap<String, Vec<crate::types::Range>> = BTreeMap::new();
        let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in resources {
            match r.r#type {
                ValueType::Scalar => {
                    *scalars.entry(r.name.clone()).or_default() += r.scalar_value();
                }
                ValueType::Ranges => ranges
                    .entry(r.name.clone())
                    .or_default()
                    .extend(r.ranges.iter().flat_map(|x| x.range.iter().copied())),
                ValueType::Set => sets
                    .entry(r.name.clone())
                    .or_default()
                    .extend(r.set.iter().flat_map(|s| s.item.iter().cloned())),
                _ => {}
            }
        }
        for (name, v) in scalars {
            let v = crate::resources::round_scalar(v);
            match name.as_str() {
                "cpus" => out.cpus = v,
                "gpus" => out.gpus = v,
                "mem" => out.mem = v,
                "disk" => out.disk = v,
                _ => {
                    out.other.insert(name, serde_json::json!(v));
                }
            }
        }
        for (name, v) in ranges {
            let text = format_ranges(&crate::resources::normalize_ranges(v));
            if name == "ports" {
                out.ports = Some(text);
            } else {
                out.other.insert(name, serde_json::Value::String(text));
            }
        }
        for (name, mut v) in sets {
            v.sort();
            v.dedup();
            out.other.insert(
                name,
                serde_json::Value::String(format!("{{{}}}", v.join(","))),
            );
        }
        out
    }
}

/// A legacy label: `{"key":…, "value":…}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyLabel {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Converts v1 labels to the legacy list.
pub fn legacy_labels(labels: &Labels) -> Vec<LegacyLabel> {
    labels
        .labels
        .iter()
        .map(|l| LegacyLabel {
            key: l.key.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// Agent attributes as the legacy endpoints show them (`slaves[].attributes`): an
/// object by name, TEXT as its string, SCALAR as a number, RANGES as `"[a-b, c-d]"`
/// and SET as `"{a, b}"`.
pub fn legacy_attributes(attributes: &[Attribute]) -> BTreeMap<String, serde_json::Value> {
    attributes
        .iter()
        .filter_map(|a| {
            let value = match a.r#type {
                ValueType::Text => serde_json::Value::String(a.text.as_ref()?.value.clone()),
                ValueType::Scalar => serde_json::json!(a.scalar.as_ref()?.value),
                ValueType::Ranges => {
                    serde_json::Value::String(format_ranges(&a.ranges.as_ref()?.range))
                }
                ValueType::Set => {
                    serde_json::Value::String(format!("{{{}}}", a.set.as_ref()?.item.join(", ")))
                }
                _ => return None,
            };
            Some((a.name.clone(), value))
        })
        .collect()
}

/// One entry of a legacy task's `statuses`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyTaskStatus {
    /// State name, e.g. `TASK_RUNNING`.
    pub state: String,
    /// Epoch seconds.
    #[serde(deserialize_with = "lenient")]
    pub timestamp: f64,
    /// Labels.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub labels: Vec<LegacyLabel>,
    /// Container status (v1 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_status: Option<serde_json::Value>,
    /// Health.
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub healthy: Option<bool>,
}

/// A legacy task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyTask {
    /// Task id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Framework id.
    pub framework_id: String,
    /// Executor id (`""` for command tasks).
    pub executor_id: String,
    /// Agent id.
    pub slave_id: String,
    /// State name.
    pub state: String,
    /// Resources.
    pub resources: LegacyResources,
    /// Role of the resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Status history.
    #[serde(deserialize_with = "null_default")]
    pub statuses: Vec<LegacyTaskStatus>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Labels.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub labels: Vec<LegacyLabel>,
    /// Discovery info (v1 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<serde_json::Value>,
    /// Container (v1 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<serde_json::Value>,
    /// Health check (v1 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<serde_json::Value>,
}

/// A legacy offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyOffer {
    /// Offer id.
    pub id: String,
    /// Framework id.
    pub framework_id: String,
    /// Agent id.
    pub slave_id: String,
    /// Resources.
    pub resources: LegacyResources,
    /// Unknown extra fields.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A legacy executor (master view).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyExecutor {
    /// Executor id.
    pub executor_id: String,
    /// Name.
    pub name: String,
    /// Framework id.
    pub framework_id: String,
    /// Agent id.
    pub slave_id: String,
    /// Command (v1 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<serde_json::Value>,
    /// Resources.
    pub resources: LegacyResources,
}

/// A legacy framework.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyFramework {
    /// Framework id.
    pub id: String,
    /// Name.
    pub name: String,
    /// libprocess pid (absent for HTTP frameworks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Resources used by tasks.
    pub used_resources: LegacyResources,
    /// Resources offered.
    pub offered_resources: LegacyResources,
    /// Capability names.
    #[serde(deserialize_with = "null_default")]
    pub capabilities: Vec<String>,
    /// Host name.
    pub hostname: String,
    /// Web UI.
    pub webui_url: String,
    /// Active.
    #[serde(deserialize_with = "lenient")]
    pub active: bool,
    /// Connected.
    #[serde(deserialize_with = "lenient")]
    pub connected: bool,
    /// Recovered.
    #[serde(deserialize_with = "lenient")]
    pub recovered: bool,
    /// User.
    pub user: String,
    /// Failover timeout (s).
    #[serde(deserialize_with = "lenient")]
    pub failover_timeout: f64,
    /// Checkpointing.
    #[serde(deserialize_with = "lenient")]
    pub checkpoint: bool,
    /// Registration time (epoch s).
    #[serde(deserialize_with = "lenient")]
    pub registered_time: f64,
    /// Removal time (epoch s; 0 while registered).
    #[serde(deserialize_with = "lenient")]
    pub unregistered_time: f64,
    /// Principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Resources (used + offered).
    pub resources: LegacyResources,
    /// Re-registration time (epoch s).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub reregistered_time: Option<f64>,
    /// Deprecated single role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Roles (MULTI_ROLE).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub roles: Option<Vec<String>>,
    /// Active tasks.
    #[serde(deserialize_with = "null_default")]
    pub tasks: Vec<LegacyTask>,
    /// Tasks on unreachable agents.
    #[serde(deserialize_with = "null_default")]
    pub unreachable_tasks: Vec<LegacyTask>,
    /// Completed tasks.
    #[serde(deserialize_with = "null_default")]
    pub completed_tasks: Vec<LegacyTask>,
    /// Outstanding offers.
    #[serde(deserialize_with = "null_default")]
    pub offers: Vec<LegacyOffer>,
    /// Executors.
    #[serde(deserialize_with = "null_default")]
    pub executors: Vec<LegacyExecutor>,
    /// Labels.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub labels: Vec<LegacyLabel>,
    /// Offer constraints (v1 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_constraints: Option<serde_json::Value>,
}

/// A legacy agent (`slaves[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacySlave {
    /// Agent id.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// Port.
    #[serde(deserialize_with = "lenient")]
    pub port: u32,
    /// Attributes as `{name: value}`.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// libprocess pid, `slave(1)@ip:port`.
    pub pid: String,
    /// Registration time (epoch s).
    #[serde(deserialize_with = "lenient")]
    pub registered_time: f64,
    /// Re-registration time (epoch s).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub reregistered_time: Option<f64>,
    /// Total resources.
    pub resources: LegacyResources,
    /// Used resources.
    pub used_resources: LegacyResources,
    /// Offered resources.
    pub offered_resources: LegacyResources,
    /// Reserved resources by role.
    pub reserved_resources: BTreeMap<String, LegacyResources>,
    /// Unreserved resources.
    pub unreserved_resources: LegacyResources,
    /// Active.
    #[serde(deserialize_with = "lenient")]
    pub active: bool,
    /// Deactivated (draining).
    #[serde(deserialize_with = "lenient")]
    pub deactivated: bool,
    /// Mesos version.
    pub version: String,
    /// Capability names.
    #[serde(deserialize_with = "null_default")]
    pub capabilities: Vec<String>,
}

/// `GET /state` on the master.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterState {
    /// Mesos version.
    pub version: String,
    /// Build date.
    pub build_date: String,
    /// Build time (epoch s).
    #[serde(deserialize_with = "lenient")]
    pub build_time: f64,
    /// Build user.
    pub build_user: String,
    /// Git sha.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// Start time (epoch s).
    #[serde(deserialize_with = "lenient")]
    pub start_time: f64,
    /// Election time (epoch s).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub elected_time: Option<f64>,
    /// Master id.
    pub id: String,
    /// libprocess pid, `master@ip:port`.
    pub pid: String,
    /// Host name.
    pub hostname: String,
    /// Capability names.
    #[serde(deserialize_with = "null_default")]
    pub capabilities: Vec<String>,
    /// Active agents.
    #[serde(deserialize_with = "lenient")]
    pub activated_slaves: f64,
    /// Deactivated agents.
    #[serde(deserialize_with = "lenient")]
    pub deactivated_slaves: f64,
    /// Unreachable agents.
    #[serde(deserialize_with = "lenient")]
    pub unreachable_slaves: f64,
    /// Leader pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Leader info (v1 `MasterInfo` shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_info: Option<serde_json::Value>,
    /// Flags.
    pub flags: BTreeMap<String, String>,
    /// Agents.
    #[serde(deserialize_with = "null_default")]
    pub slaves: Vec<LegacySlave>,
    /// Agents recovered but not yet reregistered.
    #[serde(deserialize_with = "null_default")]
    pub recovered_slaves: Vec<serde_json::Value>,
    /// Frameworks.
    #[serde(deserialize_with = "null_default")]
    pub frameworks: Vec<LegacyFramework>,
    /// Removed frameworks.
    #[serde(deserialize_with = "null_default")]
    pub completed_frameworks: Vec<LegacyFramework>,
    /// Deprecated, empty.
    #[serde(deserialize_with = "null_default")]
    pub orphan_tasks: Vec<LegacyTask>,
    /// Deprecated, empty.
    #[serde(deserialize_with = "null_default")]
    pub unregistered_frameworks: Vec<String>,
}

/// `GET /tasks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TasksResponse {
    /// Tasks.
    #[serde(deserialize_with = "null_default")]
    pub tasks: Vec<LegacyTask>,
}

/// `GET /frameworks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FrameworksResponse {
    /// Frameworks.
    #[serde(deserialize_with = "null_default")]
    pub frameworks: Vec<LegacyFramework>,
    /// Removed frameworks.
    #[serde(deserialize_with = "null_default")]
    pub completed_frameworks: Vec<LegacyFramework>,
    /// Deprecated, empty.
    #[serde(deserialize_with = "null_default")]
    pub unregistered_frameworks: Vec<String>,
}

/// `GET /slaves`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlavesResponse {
    /// Agents.
    #[serde(deserialize_with = "null_default")]
    pub slaves: Vec<LegacySlave>,
    /// Recovered agents.
    #[serde(deserialize_with = "null_default")]
    pub recovered_slaves: Vec<serde_json::Value>,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionResponse {
    /// Version.
    pub version: String,
    /// Build date.
    pub build_date: String,
    /// Build time (epoch s).
    #[serde(deserialize_with = "lenient")]
    pub build_time: f64,
    /// Build user.
    pub build_user: String,
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

/// An executor in the agent's `/state`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentExecutor {
    /// Executor id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Source.
    pub source: String,
    /// Container id.
    pub container: String,
    /// Sandbox directory (use with `/files/read`).
    pub directory: String,
    /// Resources.
    pub resources: LegacyResources,
    /// Running tasks.
    #[serde(deserialize_with = "null_default")]
    pub tasks: Vec<LegacyTask>,
    /// Queued tasks.
    #[serde(deserialize_with = "null_default")]
    pub queued_tasks: Vec<LegacyTask>,
    /// Completed tasks.
    #[serde(deserialize_with = "null_default")]
    pub completed_tasks: Vec<LegacyTask>,
}

/// A framework in the agent's `/state`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentFramework {
    /// Framework id.
    pub id: String,
    /// Name.
    pub name: String,
    /// User.
    pub user: String,
    /// Failover timeout.
    #[serde(deserialize_with = "lenient")]
    pub failover_timeout: f64,
    /// Checkpointing.
    #[serde(deserialize_with = "lenient")]
    pub checkpoint: bool,
    /// Host name.
    pub hostname: String,
    /// Executors.
    #[serde(deserialize_with = "null_default")]
    pub executors: Vec<AgentExecutor>,
    /// Completed executors.
    #[serde(deserialize_with = "null_default")]
    pub completed_executors: Vec<AgentExecutor>,
}

/// `GET /state` on an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentState {
    /// Version.
    pub version: String,
    /// Agent id.
    pub id: String,
    /// libprocess pid.
    pub pid: String,
    /// Host name.
    pub hostname: String,
    /// Total resources.
    pub resources: LegacyResources,
    /// Attributes.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Master host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_hostname: Option<String>,
    /// Flags.
    pub flags: BTreeMap<String, String>,
    /// Frameworks.
    #[serde(deserialize_with = "null_default")]
    pub frameworks: Vec<AgentFramework>,
    /// Completed frameworks.
    #[serde(deserialize_with = "null_default")]
    pub completed_frameworks: Vec<AgentFramework>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_object_shape() {
        let rs = vec![
            Resource::scalar("cpus", 2.0),
            Resource::scalar("mem", 1024.0),
            Resource::scalar("disk", 1024.0),
            Resource::ranges("ports", &[(31000, 32000)]),
        ];
        let v = serde_json::to_value(LegacyResources::from_resources(&rs)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"cpus":2.0,"gpus":0.0,"mem":1024.0,"disk":1024.0,"ports":"[31000-32000]"})
        );
        let back: LegacyResources = serde_json::from_value(v).expect("parse");
        assert_eq!(back.ports.as_deref(), Some("[31000-32000]"));
    }
}
