//! Operator configuration: the `config` map of the operator's spec.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A configuration value was missing or had the wrong type.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required key is absent.
    #[error("config key `{0}` is required")]
    Missing(String),
    /// A key is present but has the wrong type or value.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Read-only operator configuration (free-form JSON values by key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: BTreeMap<String, Value>,
}

impl Config {
    /// Wraps a map of values.
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        Self { values }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// All values.
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    /// A string value (numbers and booleans are rendered as text).
    pub fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(_) => Err(invalid(key, "expected a string")),
        }
    }

    /// An unsigned integer value (strings holding integers are accepted).
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .map(Some)
                .ok_or_else(|| invalid(key, "expected a non-negative integer")),
            Some(Value::String(s)) => s
                .trim()
                .replace('_', "")
                .parse()
                .map(Some)
                .map_err(|_| invalid(key, "expected a non-negative integer")),
            Some(_) => Err(invalid(key, "expected a non-negative integer")),
        }
    }

    /// A floating-point value.
    pub fn f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid(key, "expected a number")),
            Some(_) => Err(invalid(key, "expected a number")),
        }
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(invalid(key, "expected true or false")),
        }
    }

    /// Deserialises `key` into `T`.
    pub fn parse<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| invalid(key, &e.to_string())),
        }
    }

    /// Like [`Config::str`] but the key must be present.
    pub fn required_str(&self, key: &str) -> Result<String, ConfigError> {
        self.str(key)?
            .ok_or_else(|| ConfigError::Missing(key.to_owned()))
    }
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.to_owned(),
    }
}
