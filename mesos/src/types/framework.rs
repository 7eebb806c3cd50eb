//! `FrameworkInfo`, `MasterInfo`, `AgentInfo` and their capabilities.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{Address, Labels};
use super::ids::{AgentId, FrameworkId};
use super::resource::{Attribute, Resource};
use super::wire::{lenient, mesos_enum, null_default, ser_f64};

mesos_enum!(
    /// `FrameworkInfo.Capability.Type`.
    FrameworkCapabilityType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Receive revocable resources.
        RevocableResources = "REVOCABLE_RESOURCES",
        /// Receive TASK_KILLING before TASK_KILLED.
        TaskKillingState = "TASK_KILLING_STATE",
        /// Receive GPUs.
        GpuResources = "GPU_RESOURCES",
        /// Receive shared resources.
        SharedResources = "SHARED_RESOURCES",
        /// Receive PA task states (DROPPED, UNREACHABLE, GONE, …) instead of LOST.
        PartitionAware = "PARTITION_AWARE",
        /// Use `roles[]` and allocation info.
        MultiRole = "MULTI_ROLE",
        /// Reservation refinement format.
        ReservationRefinement = "RESERVATION_REFINEMENT",
        /// Receive offers from remote regions.
        RegionAware = "REGION_AWARE",
    }
);

/// `FrameworkInfo.Capability`: `{"type": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct FrameworkCapability {
    /// The capability.
    #[serde(rename = "type")]
    pub r#type: FrameworkCapabilityType,
}

impl From<FrameworkCapabilityType> for FrameworkCapability {
    fn from(t: FrameworkCapabilityType) -> Self {
        FrameworkCapability { r#type: t }
    }
}

/// `FrameworkInfo`. `failover_timeout` and `checkpoint` have proto defaults and are
/// always printed; the deprecated `role` only when set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FrameworkInfo {
    /// Unix user tasks run as by default (required).
    pub user: String,
    /// Framework name (required).
    pub name: String,
    /// Framework id; set when re-subscribing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<FrameworkId>,
    /// Seconds the master keeps tasks after the scheduler disconnects (0 = none).
    #[serde(deserialize_with = "lenient", serialize_with = "ser_f64")]
    pub failover_timeout: f64,
    /// Whether agents checkpoint the framework's tasks.
    #[serde(deserialize_with = "lenient")]
    pub checkpoint: bool,
    /// Deprecated single role (default `"*"`), exclusive with `roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Roles (requires MULTI_ROLE).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<String>,
    /// Scheduler host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Principal for authentication/authorisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Framework web UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    /// Capabilities.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<FrameworkCapability>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Per-role offer filters, kept as raw JSON.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub offer_filters: BTreeMap<String, serde_json::Value>,
}

impl Default for FrameworkInfo {
    fn default() -> Self {
        FrameworkInfo {
            user: String::new(),
            name: String::new(),
            id: None,
            failover_timeout: 0.0,
            checkpoint: false,
            role: None,
            roles: Vec::new(),
            hostname: None,
            principal: None,
            webui_url: None,
            capabilities: Vec::new(),
            labels: None,
            offer_filters: BTreeMap::new(),
        }
    }
}

impl FrameworkInfo {
    /// A framework with the given user and name and Mesos' defaults otherwise.
    pub fn new(user: impl Into<String>, name: impl Into<String>) -> Self {
        FrameworkInfo {
            user: user.into(),
            name: name.into(),
            ..FrameworkInfo::default()
        }
    }

    /// Whether the framework declares this capability.
    pub fn has_capability(&self, cap: &FrameworkCapabilityType) -> bool {
        self.capabilities.iter().any(|c| &c.r#type == cap)
    }

    /// The roles the framework subscribes with (`roles`, else `role`, else `"*"`).
    pub fn effective_roles(&self) -> Vec<String> {
        if !self.roles.is_empty() {
            self.roles.clone()
        } else {
            vec![self.role.clone().unwrap_or_else(|| "*".to_string())]
        }
    }
}

mesos_enum!(
    /// `MasterInfo.Capability.Type`.
    MasterCapabilityType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Agents may update their resources.
        AgentUpdate = "AGENT_UPDATE",
        /// Agents may be drained.
        AgentDraining = "AGENT_DRAINING",
        /// Quota v2 API.
        QuotaV2 = "QUOTA_V2",
    }
);

/// `MasterInfo.Capability`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterCapability {
    /// The capability.
    #[serde(rename = "type")]
    pub r#type: MasterCapabilityType,
}

/// `MasterInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterInfo {
    /// Master UUID.
    pub id: String,
    /// IPv4 as network-order bytes read as a native u32.
    #[serde(deserialize_with = "lenient")]
    pub ip: u32,
    /// Port (default 5050).
    #[serde(deserialize_with = "lenient")]
    pub port: u32,
    /// libprocess pid, `master@ip:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Mesos version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Fault domain, kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<serde_json::Value>,
    /// Capabilities.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<MasterCapability>,
}

impl Default for MasterInfo {
    fn default() -> Self {
        MasterInfo {
            id: String::new(),
            ip: 0,
            port: 5050,
            pid: None,
            hostname: None,
            version: None,
            address: None,
            domain: None,
            capabilities: Vec::new(),
        }
    }
}

/// Encodes an IPv4 address the way `MasterInfo.ip` carries it (network-order bytes
/// read as a native-endian u32).
pub fn ipv4_to_mesos_u32(ip: std::net::Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

/// Decodes `MasterInfo.ip` back to an IPv4 address.
pub fn mesos_u32_to_ipv4(ip: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(ip.to_ne_bytes())
}

mesos_enum!(
    /// `AgentInfo.Capability.Type`.
    AgentCapabilityType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Multi-role frameworks.
        MultiRole = "MULTI_ROLE",
        /// Hierarchical roles.
        HierarchicalRole = "HIERARCHICAL_ROLE",
        /// Reservation refinement.
        ReservationRefinement = "RESERVATION_REFINEMENT",
        /// Resource providers.
        ResourceProvider = "RESOURCE_PROVIDER",
        /// Volume resizing.
        ResizeVolume = "RESIZE_VOLUME",
        /// Operation feedback.
        AgentOperationFeedback = "AGENT_OPERATION_FEEDBACK",
        /// Draining.
        AgentDraining = "AGENT_DRAINING",
        /// Task resource limits.
        TaskResourceLimits = "TASK_RESOURCE_LIMITS",
    }
);

/// `AgentInfo.Capability`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentCapability {
    /// The capability.
    #[serde(rename = "type")]
    pub r#type: AgentCapabilityType,
}

/// `AgentInfo`. `port` defaults to 5051 and is always printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentInfo {
    /// Host name (required).
    pub hostname: String,
    /// Port (default 5051).
    #[serde(deserialize_with = "lenient")]
    pub port: i32,
    /// Total resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
    /// Attributes.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub attributes: Vec<Attribute>,
    /// Agent id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<AgentId>,
    /// Fault domain, kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<serde_json::Value>,
    /// Capabilities (reported by the operator API; not part of the v1 proto message
    /// itself but accepted for convenience).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<AgentCapability>,
}

impl Default for AgentInfo {
    fn default() -> Self {
        AgentInfo {
            hostname: String::new(),
            port: 5051,
            resources: Vec::new(),
            attributes: Vec::new(),
            id: None,
            domain: None,
            capabilities: Vec::new(),
        }
    }
}
