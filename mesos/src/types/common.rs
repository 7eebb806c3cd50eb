//! Small shared messages: labels, parameters, durations, addresses, filters, environment.

use serde::{Deserialize, Serialize};

use super::wire::{Bytes, lenient, lenient_opt, mesos_enum, null_default, ser_f64};

/// A key/value label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Label {
    /// The key (required).
    pub key: String,
    /// The optional value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Label {
    /// A label with a value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// `Labels`: a single-field message, so `{"labels":[…]}` on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Labels {
    /// The labels, in order.
    #[serde(deserialize_with = "null_default")]
    pub labels: Vec<Label>,
}

impl Labels {
    /// Builds labels from key/value pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Labels {
            labels: pairs.into_iter().map(|(k, v)| Label::new(k, v)).collect(),
        }
    }

    /// The value of the first label with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .and_then(|l| l.value.as_deref())
    }
}

/// A key/value parameter (`Parameter`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Parameter {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// `Parameters`: `{"parameter":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Parameters {
    /// The parameters.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parameter: Vec<Parameter>,
}

/// `DurationInfo`: `{"nanoseconds":N}`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(default)]
pub struct DurationInfo {
    /// Nanoseconds (int64, written as a plain number).
    #[serde(deserialize_with = "lenient")]
    pub nanoseconds: i64,
}

impl DurationInfo {
    /// Converts from a std duration (saturating).
    pub fn from_duration(d: std::time::Duration) -> Self {
        DurationInfo {
            nanoseconds: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    /// Converts to a std duration (negative values become zero).
    pub fn to_duration(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.nanoseconds).unwrap_or(0))
    }

    /// A duration of whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        DurationInfo {
            nanoseconds: secs.saturating_mul(1_000_000_000),
        }
    }
}

impl From<std::time::Duration> for DurationInfo {
    fn from(d: std::time::Duration) -> Self {
        DurationInfo::from_duration(d)
    }
}

/// `TimeInfo`: nanoseconds since the epoch, `{"nanoseconds":N}`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(default)]
pub struct TimeInfo {
    /// Nanoseconds since the Unix epoch.
    #[serde(deserialize_with = "lenient")]
    pub nanoseconds: i64,
}

impl TimeInfo {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        TimeInfo { nanoseconds: ns }
    }

    /// Seconds since the epoch as a double (the legacy endpoints' format).
    pub fn as_secs_f64(self) -> f64 {
        self.nanoseconds as f64 / 1e9
    }
}

/// `Address`: `{hostname?, ip?, port}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// IP address text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Port (required).
    #[serde(deserialize_with = "lenient")]
    pub port: i32,
}

/// `URL`: `{scheme, address, path?, query[], fragment?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Url {
    /// Scheme, e.g. `http`.
    pub scheme: String,
    /// Host and port.
    pub address: Address,
    /// Path, e.g. `/slave(1)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Query parameters.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub query: Vec<Parameter>,
    /// Fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment: Option<String>,
}

/// `Filters` sent with ACCEPT/DECLINE. `refuse_seconds` has an explicit proto default
/// (5.0) and so is always printed, as Mesos prints it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filters {
    /// Seconds the declined resources are not re-offered to this framework.
    /// Default 5.0; negative means 5; capped at 365 days by the master; 0 = no filter.
    #[serde(deserialize_with = "refuse_seconds", serialize_with = "ser_f64")]
    pub refuse_seconds: f64,
}

/// `null` is "unset", i.e. the proto default 5.0 (not 0, which disables the filter).
fn refuse_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(lenient_opt(d)?.unwrap_or(5.0))
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            refuse_seconds: 5.0,
        }
    }
}

impl Filters {
    /// Filters refusing the resources for `secs` seconds.
    pub fn refuse_seconds(secs: f64) -> Self {
        Filters {
            refuse_seconds: secs,
        }
    }
}

/// `Unavailability`: maintenance window `{start, duration?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Unavailability {
    /// Start time.
    pub start: TimeInfo,
    /// Length (absent = forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationInfo>,
}

mesos_enum!(
    /// `Environment.Variable.Type`.
    VariableType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// A plain value.
        Value = "VALUE",
        /// A secret reference.
        Secret = "SECRET",
    }
);

mesos_enum!(
    /// `Secret.Type`.
    SecretType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// A name a secret-resolver module looks up in a secret store.
        Reference = "REFERENCE",
        /// The secret's bytes themselves.
        Value = "VALUE",
    }
);

/// `Secret.Reference`: a secret in a store, for a secret-resolver module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretReference {
    /// Name of the secret (required).
    pub name: String,
    /// One key within it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `Secret.Value`: the secret passed by value. Its `Debug` never shows the bytes.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretValue {
    /// The secret (required; base64 in JSON).
    pub data: Bytes,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue {{ data: <{} bytes> }}", self.data.len())
    }
}

/// `Secret`: privileged data for a task, by value or by reference (exactly one of
/// `reference` and `value`, matching `type`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secret {
    /// `REFERENCE` or `VALUE`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<SecretType>,
    /// For `REFERENCE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<SecretReference>,
    /// For `VALUE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<SecretValue>,
}

impl Secret {
    /// A `VALUE` secret holding `data`.
    pub fn value(data: impl Into<Vec<u8>>) -> Self {
        Secret {
            r#type: Some(SecretType::Value),
            reference: None,
            value: Some(SecretValue {
                data: Bytes::new(data),
            }),
        }
    }
}

/// `Environment.Variable`. `type` has a proto default (`VALUE`) and is always printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Variable {
    /// Variable name.
    pub name: String,
    /// `VALUE` or `SECRET`.
    #[serde(rename = "type")]
    pub r#type: VariableType,
    /// The value (for `VALUE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The secret (for `SECRET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

impl Default for Variable {
    fn default() -> Self {
        Variable {
            name: String::new(),
            r#type: VariableType::Value,
            value: None,
            secret: None,
        }
    }
}

impl Variable {
    /// A plain `VALUE` variable.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Variable {
            name: name.into(),
            value: Some(value.into()),
            ..Variable::default()
        }
    }
}

/// `Environment`: `{"variables":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    /// The variables, in order.
    #[serde(deserialize_with = "null_default")]
    pub variables: Vec<Variable>,
}

impl Environment {
    /// Builds an environment of plain values.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            variables: pairs
                .into_iter()
                .map(|(k, v)| Variable::new(k, v))
                .collect(),
        }
    }

    /// The value of the first plain variable with this name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.value.as_deref())
    }
}
