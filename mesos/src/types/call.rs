//! Scheduler `Call`s (`POST /api/v1/scheduler`).
//!
//! Modelled like the protobuf: a `type` plus one optional body per type, so a master
//! implementation can validate exactly what Mesos validates (type present, matching
//! body present) and unknown types survive a round trip.

use serde::{Deserialize, Serialize};

use super::common::Filters;
use super::framework::FrameworkInfo;
use super::ids::{
    AgentId, ExecutorId, FrameworkId, OfferId, OperationId, ResourceProviderId, TaskId,
};
use super::offer::Operation;
use super::resource::Resource;
use super::task::KillPolicy;
use super::wire::{Bytes, mesos_enum, null_default};

mesos_enum!(
    /// `Call.Type`.
    CallType {
        /// `UNKNOWN` (answered with 501).
        Unknown = "UNKNOWN",
        /// Open the event stream.
        Subscribe = "SUBSCRIBE",
        /// Remove the framework, killing its tasks.
        Teardown = "TEARDOWN",
        /// Accept offers with operations.
        Accept = "ACCEPT",
        /// Decline offers.
        Decline = "DECLINE",
        /// Accept inverse offers.
        AcceptInverseOffers = "ACCEPT_INVERSE_OFFERS",
        /// Decline inverse offers.
        DeclineInverseOffers = "DECLINE_INVERSE_OFFERS",
        /// Clear filters and resume offers.
        Revive = "REVIVE",
        /// Kill a task.
        Kill = "KILL",
        /// Shut down a custom executor.
        Shutdown = "SHUTDOWN",
        /// Acknowledge a status update.
        Acknowledge = "ACKNOWLEDGE",
        /// Acknowledge an operation status update.
        AcknowledgeOperationStatus = "ACKNOWLEDGE_OPERATION_STATUS",
        /// Reconcile task states.
        Reconcile = "RECONCILE",
        /// Reconcile operation states.
        ReconcileOperations = "RECONCILE_OPERATIONS",
        /// Send a message to an executor.
        Message = "MESSAGE",
        /// Request resources.
        Request = "REQUEST",
        /// Stop receiving offers.
        Suppress = "SUPPRESS",
        /// Change the FrameworkInfo.
        UpdateFramework = "UPDATE_FRAMEWORK",
    }
);

/// `Call.Subscribe` (also the shape of `Call.UpdateFramework`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscribe {
    /// The framework (with `id` set when re-subscribing).
    pub framework_info: FrameworkInfo,
    /// Roles to subscribe suppressed (⊆ roles).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub suppressed_roles: Vec<String>,
    /// Offer constraints, kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_constraints: Option<serde_json::Value>,
}

/// `Call.UpdateFramework` has the same fields as `Call.Subscribe`.
pub type UpdateFramework = Subscribe;

/// `Call.Accept`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Accept {
    /// Offers accepted (same agent and role).
    #[serde(deserialize_with = "null_default")]
    pub offer_ids: Vec<OfferId>,
    /// Operations applied in order.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub operations: Vec<Operation>,
    /// Filters for the unused remainder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `Call.Decline`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Decline {
    /// Offers declined.
    #[serde(deserialize_with = "null_default")]
    pub offer_ids: Vec<OfferId>,
    /// Filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `Call.AcceptInverseOffers` / `DeclineInverseOffers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InverseOffersReply {
    /// The inverse offers.
    #[serde(deserialize_with = "null_default")]
    pub inverse_offer_ids: Vec<OfferId>,
    /// Filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `Call.Revive` / `Call.Suppress`: empty `roles` = all roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Roles {
    /// Roles affected.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<String>,
}

/// `Call.Kill`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kill {
    /// Task to kill.
    pub task_id: TaskId,
    /// Its agent, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Overrides the task's kill policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

/// `Call.Shutdown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shutdown {
    /// Executor to shut down.
    pub executor_id: ExecutorId,
    /// Its agent.
    pub agent_id: AgentId,
}

/// `Call.Acknowledge`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Acknowledge {
    /// Agent of the task.
    pub agent_id: AgentId,
    /// The task.
    pub task_id: TaskId,
    /// `status.uuid` of the update acknowledged (16 bytes).
    pub uuid: Bytes,
}

/// `Call.AcknowledgeOperationStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AcknowledgeOperationStatus {
    /// Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Resource provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_provider_id: Option<ResourceProviderId>,
    /// `status.uuid.value`.
    pub uuid: Bytes,
    /// The operation.
    pub operation_id: OperationId,
}

/// `Call.Reconcile.Task`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileTask {
    /// The task.
    pub task_id: TaskId,
    /// Its agent, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
}

/// `Call.Reconcile`: empty `tasks` = implicit reconciliation. Always serialised with
/// `tasks` (possibly `[]`) because the body itself is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reconcile {
    /// Tasks to reconcile.
    #[serde(deserialize_with = "null_default")]
    pub tasks: Vec<ReconcileTask>,
}

/// `Call.ReconcileOperations.Operation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileOperation {
    /// The operation.
    pub operation_id: OperationId,
    /// Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Resource provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_provider_id: Option<ResourceProviderId>,
}

/// `Call.ReconcileOperations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileOperations {
    /// Operations (empty = all).
    #[serde(deserialize_with = "null_default")]
    pub operations: Vec<ReconcileOperation>,
}

/// `Call.Message` (and `Event.Message`): framework ⇄ executor data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Agent.
    pub agent_id: AgentId,
    /// Executor.
    pub executor_id: ExecutorId,
    /// Payload (base64 on the wire).
    pub data: Bytes,
}

/// `mesos.v1.Request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceRequest {
    /// Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Resources wanted.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
}

/// `Call.Request`: `{"requests":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    /// Requests.
    #[serde(deserialize_with = "null_default")]
    pub requests: Vec<ResourceRequest>,
}

/// A scheduler `Call`: `{"type":T,"framework_id":{…},"<t lower-case>":{…}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Call {
    /// Required on every call but SUBSCRIBE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    /// The call type.
    #[serde(rename = "type")]
    pub r#type: CallType,
    /// SUBSCRIBE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    /// ACCEPT body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    /// DECLINE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline: Option<Decline>,
    /// ACCEPT_INVERSE_OFFERS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_inverse_offers: Option<InverseOffersReply>,
    /// DECLINE_INVERSE_OFFERS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_inverse_offers: Option<InverseOffersReply>,
    /// REVIVE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revive: Option<Roles>,
    /// KILL body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill: Option<Kill>,
    /// SHUTDOWN body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,
    /// ACKNOWLEDGE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<Acknowledge>,
    /// ACKNOWLEDGE_OPERATION_STATUS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledge_operation_status: Option<AcknowledgeOperationStatus>,
    /// RECONCILE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Reconcile>,
    /// RECONCILE_OPERATIONS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile_operations: Option<ReconcileOperations>,
    /// MESSAGE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// REQUEST body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// SUPPRESS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppress: Option<Roles>,
    /// UPDATE_FRAMEWORK body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_framework: Option<UpdateFramework>,
}

impl Call {
    fn typed(r#type: CallType, framework_id: Option<FrameworkId>) -> Self {
        Call {
            r#type,
            framework_id,
            ..Call::default()
        }
    }

    /// SUBSCRIBE. If `framework_info.id` is set it is also copied to the top-level
    /// `framework_id`, as Mesos requires for a re-subscription.
    pub fn subscribe(framework_info: FrameworkInfo) -> Self {
        let framework_id = framework_info.id.clone();
        Call {
            subscribe: Some(Subscribe {
                framework_info,
                ..Subscribe::default()
            }),
            ..Call::typed(CallType::Subscribe, framework_id)
        }
    }

    /// TEARDOWN.
    pub fn teardown(framework_id: FrameworkId) -> Self {
        Call::typed(CallType::Teardown, Some(framework_id))
    }

    /// ACCEPT.
    pub fn accept(
        framework_id: FrameworkId,
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        filters: Option<Filters>,
    ) -> Self {
        Call {
            accept: Some(Accept {
                offer_ids,
                operations,
                filters,
            }),
            ..Call::typed(CallType::Accept, Some(framework_id))
        }
    }

    /// DECLINE.
    pub fn decline(
        framework_id: FrameworkId,
        offer_ids: Vec<OfferId>,
        filters: Option<Filters>,
    ) -> Self {
        Call {
            decline: Some(Decline { offer_ids, filters }),
            ..Call::typed(CallType::Decline, Some(framework_id))
        }
    }

    /// REVIVE (empty roles = all).
    pub fn revive(framework_id: FrameworkId, roles: Vec<String>) -> Self {
        Call {
            revive: Some(Roles { roles }),
            ..Call::typed(CallType::Revive, Some(framework_id))
        }
    }

    /// SUPPRESS (empty roles = all).
    pub fn suppress(framework_id: FrameworkId, roles: Vec<String>) -> Self {
        Call {
            suppress: Some(Roles { roles }),
            ..Call::typed(CallType::Suppress, Some(framework_id))
        }
    }

    /// KILL.
    pub fn kill(
        framework_id: FrameworkId,
        task_id: TaskId,
        agent_id: Option<AgentId>,
        kill_policy: Option<KillPolicy>,
    ) -> Self {
        Call {
            kill: Some(Kill {
                task_id,
                agent_id,
                kill_policy,
            }),
            ..Call::typed(CallType::Kill, Some(framework_id))
        }
    }

    /// SHUTDOWN.
    pub fn shutdown(framework_id: FrameworkId, executor_id: ExecutorId, agent_id: AgentId) -> Self {
        Call {
            shutdown: Some(Shutdown {
                executor_id,
                agent_id,
            }),
            ..Call::typed(CallType::Shutdown, Some(framework_id))
        }
    }

    /// ACKNOWLEDGE.
    pub fn acknowledge(
        framework_id: FrameworkId,
        agent_id: AgentId,
        task_id: TaskId,
        uuid: Bytes,
    ) -> Self {
        Call {
            acknowledge: Some(Acknowledge {
                agent_id,
                task_id,
                uuid,
            }),
            ..Call::typed(CallType::Acknowledge, Some(framework_id))
        }
    }

    /// ACKNOWLEDGE_OPERATION_STATUS.
    pub fn acknowledge_operation_status(
        framework_id: FrameworkId,
        agent_id: Option<AgentId>,
        resource_provider_id: Option<ResourceProviderId>,
        uuid: Bytes,
        operation_id: OperationId,
    ) -> Self {
        Call {
            acknowledge_operation_status: Some(AcknowledgeOperationStatus {
                agent_id,
                resource_provider_id,
                uuid,
                operation_id,
            }),
            ..Call::typed(CallType::AcknowledgeOperationStatus, Some(framework_id))
        }
    }

    /// RECONCILE (empty = implicit).
    pub fn reconcile(framework_id: FrameworkId, tasks: Vec<ReconcileTask>) -> Self {
        Call {
            reconcile: Some(Reconcile { tasks }),
            ..Call::typed(CallType::Reconcile, Some(framework_id))
        }
    }

    /// MESSAGE.
    pub fn message(
        framework_id: FrameworkId,
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Bytes,
    ) -> Self {
        Call {
            message: Some(Message {
                agent_id,
                executor_id,
                data,
            }),
            ..Call::typed(CallType::Message, Some(framework_id))
        }
    }

    /// REQUEST.
    pub fn request(framework_id: FrameworkId, requests: Vec<ResourceRequest>) -> Self {
        Call {
            request: Some(Request { requests }),
            ..Call::typed(CallType::Request, Some(framework_id))
        }
    }

    /// UPDATE_FRAMEWORK.
    pub fn update_framework(
        framework_id: FrameworkId,
        framework_info: FrameworkInfo,
        suppressed_roles: Vec<String>,
    ) -> Self {
        Call {
            update_framework: Some(Subscribe {
                framework_info,
                suppressed_roles,
                offer_constraints: None,
            }),
            ..Call::typed(CallType::UpdateFramework, Some(framework_id))
        }
    }

    /// Whether the body matching `type` is present (Mesos answers 400 otherwise).
    /// TEARDOWN needs no body; REVIVE and SUPPRESS bodies are optional.
    pub fn has_body_for_type(&self) -> bool {
        match self.r#type {
            CallType::Subscribe => self.subscribe.is_some(),
            CallType::Teardown | CallType::Revive | CallType::Suppress => true,
            CallType::Accept => self.accept.is_some(),
            CallType::Decline => self.decline.is_some(),
            CallType::AcceptInverseOffers => self.accept_inverse_offers.is_some(),
            CallType::DeclineInverseOffers => self.decline_inverse_offers.is_some(),
            CallType::Kill => self.kill.is_some(),
            CallType::Shutdown => self.shutdown.is_some(),
            CallType::Acknowledge => self.acknowledge.is_some(),
            CallType::AcknowledgeOperationStatus => self.acknowledge_operation_status.is_some(),
            CallType::Reconcile => self.reconcile.is_some(),
            CallType::ReconcileOperations => self.reconcile_operations.is_some(),
            CallType::Message => self.message.is_some(),
            CallType::Request => self.request.is_some(),
            CallType::UpdateFramework => self.update_framework.is_some(),
            CallType::Unknown | CallType::Other(_) => false,
        }
    }
}
