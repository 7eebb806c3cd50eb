//! `Value` (scalar/ranges/set/text), `Resource` and `Attribute`.

use serde::{Deserialize, Serialize};

use super::common::Labels;
use super::ids::ResourceProviderId;
use super::wire::{lenient, mesos_enum, null_default, ser_f64};

mesos_enum!(
    /// `Value.Type`.
    ValueType {
        /// A floating point quantity.
        Scalar = "SCALAR",
        /// A list of inclusive integer ranges.
        Ranges = "RANGES",
        /// A set of strings.
        Set = "SET",
        /// A string (attributes only).
        Text = "TEXT",
    }
);

/// `Value.Scalar`: `{"value": f64}`. Mesos keeps three decimals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scalar {
    /// The quantity (mem/disk in MB).
    #[serde(deserialize_with = "lenient", serialize_with = "ser_f64")]
    pub value: f64,
}

/// `Value.Range`: inclusive `[begin, end]`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(default)]
pub struct Range {
    /// First value, inclusive.
    #[serde(deserialize_with = "lenient")]
    pub begin: u64,
    /// Last value, inclusive.
    #[serde(deserialize_with = "lenient")]
    pub end: u64,
}

/// `Value.Ranges`: `{"range":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Ranges {
    /// The ranges.
    #[serde(deserialize_with = "null_default")]
    pub range: Vec<Range>,
}

/// `Value.Set`: `{"item":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Set {
    /// The items.
    #[serde(deserialize_with = "null_default")]
    pub item: Vec<String>,
}

/// `Value.Text`: `{"value": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Text {
    /// The text.
    pub value: String,
}

/// `Resource.AllocationInfo`: the role an offered/allocated resource belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct AllocationInfo {
    /// The role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

mesos_enum!(
    /// `Resource.ReservationInfo.Type`.
    ReservationType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Reserved by the agent's configuration.
        Static = "STATIC",
        /// Reserved by an operation.
        Dynamic = "DYNAMIC",
    }
);

/// `Resource.ReservationInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ReservationInfo {
    /// STATIC or DYNAMIC (refinement format).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ReservationType>,
    /// The role reserved for (refinement format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The principal that made the reservation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Reservation labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// `Resource.RevocableInfo` / `SharedInfo`: empty marker messages (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Marker {}

/// A `Resource`: a named scalar/ranges/set quantity with its role and reservations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resource {
    /// Set for resources provided by a resource provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ResourceProviderId>,
    /// Resource name (`cpus`, `mem`, `disk`, `ports`, `gpus`, …).
    pub name: String,
    /// Which of `scalar`/`ranges`/`set` is meaningful.
    #[serde(rename = "type")]
    pub r#type: ValueType,
    /// Scalar quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    /// Ranges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    /// Set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
    /// Deprecated role (`"*"` = unreserved); printed only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The role this resource is allocated/offered to (MULTI_ROLE frameworks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
    /// Deprecated single reservation (pre-refinement format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationInfo>,
    /// Reservation stack (RESERVATION_REFINEMENT format).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reservations: Vec<ReservationInfo>,
    /// Disk info (persistent volumes, disk sources), kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<serde_json::Value>,
    /// Present for revocable resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocable: Option<Marker>,
    /// Present for shared resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<Marker>,
}

/// An agent `Attribute` (e.g. `rack:r1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Which value field is meaningful.
    #[serde(rename = "type")]
    pub r#type: ValueType,
    /// Scalar value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    /// Ranges value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    /// Set value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<Set>,
    /// Text value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
}

impl Attribute {
    /// A TEXT attribute.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            r#type: ValueType::Text,
            text: Some(Text {
                value: value.into(),
            }),
            ..Attribute::default()
        }
    }

    /// A SCALAR attribute.
    pub fn scalar(name: impl Into<String>, value: f64) -> Self {
        Attribute {
            name: name.into(),
            r#type: ValueType::Scalar,
            scalar: Some(Scalar { value }),
            ..Attribute::default()
        }
    }
}
