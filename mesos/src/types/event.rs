//! Scheduler `Event`s read from the SUBSCRIBE stream.
//!
//! Like [`Call`](super::Call), modelled as the protobuf is: a `type` plus one optional
//! body, so unknown event types decode (as `EventType::Other`) instead of breaking the
//! stream.

use serde::{Deserialize, Serialize};

use super::call::Message;
use super::framework::MasterInfo;
use super::ids::{AgentId, ExecutorId, FrameworkId, OfferId};
use super::offer::{InverseOffer, Offer, OperationStatus};
use super::status::TaskStatus;
use super::wire::{lenient_opt, mesos_enum, null_default};

mesos_enum!(
    /// `Event.Type`.
    EventType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Subscription accepted.
        Subscribed = "SUBSCRIBED",
        /// New offers.
        Offers = "OFFERS",
        /// Inverse offers.
        InverseOffers = "INVERSE_OFFERS",
        /// An offer is no longer valid.
        Rescind = "RESCIND",
        /// An inverse offer is no longer valid.
        RescindInverseOffer = "RESCIND_INVERSE_OFFER",
        /// Task status update.
        Update = "UPDATE",
        /// Operation status update.
        UpdateOperationStatus = "UPDATE_OPERATION_STATUS",
        /// Executor message.
        Message = "MESSAGE",
        /// Agent removed or custom executor exited.
        Failure = "FAILURE",
        /// Subscription refused or ended; the stream closes.
        Error = "ERROR",
        /// Keep-alive.
        Heartbeat = "HEARTBEAT",
    }
);

/// `Event.Subscribed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscribed {
    /// The framework id (new or the one re-subscribed with).
    pub framework_id: FrameworkId,
    /// Heartbeat interval (15.0 on Apache Mesos).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat_interval_seconds: Option<f64>,
    /// The leading master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

/// `Event.Offers`: `{"offers":[…]}` (note the nesting).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Offers {
    /// The offers.
    #[serde(deserialize_with = "null_default")]
    pub offers: Vec<Offer>,
}

/// `Event.InverseOffers`: `{"inverse_offers":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InverseOffers {
    /// The inverse offers.
    #[serde(deserialize_with = "null_default")]
    pub inverse_offers: Vec<InverseOffer>,
}

/// `Event.Rescind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rescind {
    /// The rescinded offer.
    pub offer_id: OfferId,
}

/// `Event.RescindInverseOffer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RescindInverseOffer {
    /// The rescinded inverse offer.
    pub inverse_offer_id: OfferId,
}

/// `Event.Update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Update {
    /// The status.
    pub status: TaskStatus,
}

/// `Event.UpdateOperationStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateOperationStatus {
    /// The status.
    pub status: OperationStatus,
}

/// `Event.Failure`: agent removed (only `agent_id`) or custom executor exited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Failure {
    /// Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    /// Raw exit status (-1 if unknown).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<i32>,
}

/// `Event.Error`: `{"message": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// Why.
    pub message: String,
}

/// A scheduler `Event`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// Event type.
    #[serde(rename = "type")]
    pub r#type: EventType,
    /// SUBSCRIBED body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<Subscribed>,
    /// OFFERS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offers: Option<Offers>,
    /// INVERSE_OFFERS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inverse_offers: Option<InverseOffers>,
    /// RESCIND body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescind: Option<Rescind>,
    /// RESCIND_INVERSE_OFFER body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescind_inverse_offer: Option<RescindInverseOffer>,
    /// UPDATE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    /// UPDATE_OPERATION_STATUS body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_operation_status: Option<UpdateOperationStatus>,
    /// MESSAGE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// FAILURE body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// ERROR body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Event {
    fn typed(r#type: EventType) -> Self {
        Event {
            r#type,
            ..Event::default()
        }
    }

    /// HEARTBEAT.
    pub fn heartbeat() -> Self {
        Event::typed(EventType::Heartbeat)
    }

    /// SUBSCRIBED.
    pub fn subscribed(
        framework_id: FrameworkId,
        heartbeat_interval_seconds: f64,
        master_info: Option<MasterInfo>,
    ) -> Self {
        Event {
            subscribed: Some(Subscribed {
                framework_id,
                heartbeat_interval_seconds: Some(heartbeat_interval_seconds),
                master_info,
            }),
            ..Event::typed(EventType::Subscribed)
        }
    }

    /// OFFERS.
    pub fn offers(offers: Vec<Offer>) -> Self {
        Event {
            offers: Some(Offers { offers }),
            ..Event::typed(EventType::Offers)
        }
    }

    /// RESCIND.
    pub fn rescind(offer_id: OfferId) -> Self {
        Event {
            rescind: Some(Rescind { offer_id }),
            ..Event::typed(EventType::Rescind)
        }
    }

    /// UPDATE.
    pub fn update(status: TaskStatus) -> Self {
        Event {
            update: Some(Update { status }),
            ..Event::typed(EventType::Update)
        }
    }

    /// MESSAGE.
    pub fn message(message: Message) -> Self {
        Event {
            message: Some(message),
            ..Event::typed(EventType::Message)
        }
    }

    /// FAILURE.
    pub fn failure(
        agent_id: Option<AgentId>,
        executor_id: Option<ExecutorId>,
        status: Option<i32>,
    ) -> Self {
        Event {
            failure: Some(Failure {
                agent_id,
                executor_id,
                status,
            }),
            ..Event::typed(EventType::Failure)
        }
    }

    /// ERROR.
    pub fn error(message: impl Into<String>) -> Self {
        Event {
            error: Some(ErrorBody {
                message: message.into(),
            }),
            ..Event::typed(EventType::Error)
        }
    }

    /// The offers of an OFFERS event (empty otherwise).
    pub fn offer_list(&self) -> &[Offer] {
        self.offers
            .as_ref()
            .map(|o| o.offers.as_slice())
            .unwrap_or(&[])
    }

    /// The task status of an UPDATE event.
    pub fn task_status(&self) -> Option<&TaskStatus> {
        self.update.as_ref().map(|u| &u.status)
    }
}
