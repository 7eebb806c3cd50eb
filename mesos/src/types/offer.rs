//! Offers, inverse offers and the operations a framework applies to offers.

use serde::{Deserialize, Serialize};

use super::common::{Unavailability, Url};
use super::ids::{
    AgentId, ExecutorId, FrameworkId, OfferId, OperationId, ResourceProviderId, Uuid,
};
use super::resource::{AllocationInfo, Attribute, Resource};
use super::task::{ExecutorInfo, TaskGroupInfo, TaskInfo};
use super::wire::{mesos_enum, null_default};

/// An `Offer` of one agent's resources to one framework (and one role).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Offer {
    /// Offer id; usable once.
    pub id: OfferId,
    /// The framework it is offered to.
    pub framework_id: FrameworkId,
    /// The agent.
    pub agent_id: AgentId,
    /// The agent's host name.
    pub hostname: String,
    /// The agent's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    /// Fault domain, kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<serde_json::Value>,
    /// Offered resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
    /// Agent attributes.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub attributes: Vec<Attribute>,
    /// Executors of this framework already running on the agent.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub executor_ids: Vec<ExecutorId>,
    /// Scheduled maintenance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailability: Option<Unavailability>,
    /// The role offered to (MULTI_ROLE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

/// An `InverseOffer`: the master asks for resources back (maintenance).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InverseOffer {
    /// Inverse offer id.
    pub id: OfferId,
    /// Agent URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    /// Framework.
    pub framework_id: FrameworkId,
    /// Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// The maintenance window.
    pub unavailability: Unavailability,
    /// Resources asked for (empty = all).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
}

mesos_enum!(
    /// `Offer.Operation.Type`.
    OperationType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Launch tasks.
        Launch = "LAUNCH",
        /// Launch a task group under the default executor.
        LaunchGroup = "LAUNCH_GROUP",
        /// Dynamically reserve.
        Reserve = "RESERVE",
        /// Unreserve.
        Unreserve = "UNRESERVE",
        /// Create persistent volumes.
        Create = "CREATE",
        /// Destroy persistent volumes.
        Destroy = "DESTROY",
        /// Grow a volume.
        GrowVolume = "GROW_VOLUME",
        /// Shrink a volume.
        ShrinkVolume = "SHRINK_VOLUME",
        /// Create a disk.
        CreateDisk = "CREATE_DISK",
        /// Destroy a disk.
        DestroyDisk = "DESTROY_DISK",
    }
);

/// `Offer.Operation.Launch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Launch {
    /// The tasks.
    #[serde(deserialize_with = "null_default")]
    pub task_infos: Vec<TaskInfo>,
}

/// `Offer.Operation.LaunchGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchGroup {
    /// The (DEFAULT) executor.
    pub executor: ExecutorInfo,
    /// The tasks.
    pub task_group: TaskGroupInfo,
}

/// `Offer.Operation.Reserve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reserve {
    /// Source resources (refinement).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub source: Vec<Resource>,
    /// Resources to reserve.
    #[serde(deserialize_with = "null_default")]
    pub resources: Vec<Resource>,
}

/// `Offer.Operation.Unreserve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unreserve {
    /// Resources to unreserve.
    #[serde(deserialize_with = "null_default")]
    pub resources: Vec<Resource>,
}

/// `Offer.Operation.Create` / `Destroy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volumes {
    /// The volumes.
    #[serde(deserialize_with = "null_default")]
    pub volumes: Vec<Resource>,
}

/// `Offer.Operation`: one thing to do with accepted offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    /// Which body is set.
    #[serde(rename = "type")]
    pub r#type: OperationType,
    /// Id for operation feedback (not allowed on LAUNCH/LAUNCH_GROUP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<OperationId>,
    /// LAUNCH body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    /// LAUNCH_GROUP body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
    /// RESERVE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve: Option<Reserve>,
    /// UNRESERVE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreserve: Option<Unreserve>,
    /// CREATE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<Volumes>,
    /// DESTROY body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroy: Option<Volumes>,
    /// GROW_VOLUME body (raw JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grow_volume: Option<serde_json::Value>,
    /// SHRINK_VOLUME body (raw JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrink_volume: Option<serde_json::Value>,
    /// CREATE_DISK body (raw JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_disk: Option<serde_json::Value>,
    /// DESTROY_DISK body (raw JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroy_disk: Option<serde_json::Value>,
}

impl Operation {
    /// A LAUNCH operation.
    pub fn launch(task_infos: Vec<TaskInfo>) -> Self {
        Operation {
            r#type: OperationType::Launch,
            launch: Some(Launch { task_infos }),
            ..Operation::default()
        }
    }

    /// A LAUNCH_GROUP operation.
    pub fn launch_group(executor: ExecutorInfo, tasks: Vec<TaskInfo>) -> Self {
        Operation {
            r#type: OperationType::LaunchGroup,
            launch_group: Some(LaunchGroup {
                executor,
                task_group: TaskGroupInfo { tasks },
            }),
            ..Operation::default()
        }
    }

    /// A RESERVE operation.
    pub fn reserve(resources: Vec<Resource>) -> Self {
        Operation {
            r#type: OperationType::Reserve,
            reserve: Some(Reserve {
                source: Vec::new(),
                resources,
            }),
            ..Operation::default()
        }
    }

    /// An UNRESERVE operation.
    pub fn unreserve(resources: Vec<Resource>) -> Self {
        Operation {
            r#type: OperationType::Unreserve,
            unreserve: Some(Unreserve { resources }),
            ..Operation::default()
        }
    }
}

mesos_enum!(
    /// `OperationState`.
    OperationState {
        /// Not supported.
        Unsupported = "OPERATION_UNSUPPORTED",
        /// In progress.
        Pending = "OPERATION_PENDING",
        /// Done.
        Finished = "OPERATION_FINISHED",
        /// Failed.
        Failed = "OPERATION_FAILED",
        /// Invalid.
        Error = "OPERATION_ERROR",
        /// Dropped.
        Dropped = "OPERATION_DROPPED",
        /// Agent unreachable.
        Unreachable = "OPERATION_UNREACHABLE",
        /// Agent gone by operator.
        GoneByOperator = "OPERATION_GONE_BY_OPERATOR",
        /// Agent recovering.
        Recovering = "OPERATION_RECOVERING",
        /// Unknown operation.
        Unknown = "OPERATION_UNKNOWN",
    }
);

/// `OperationStatus` (UPDATE_OPERATION_STATUS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperationStatus {
    /// The operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<OperationId>,
    /// Its state.
    pub state: OperationState,
    /// Explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Resources after conversion.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub converted_resources: Vec<Resource>,
    /// Update id, `{"value": <base64>}`; acknowledge with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    /// Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Resource provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_provider_id: Option<ResourceProviderId>,
}
