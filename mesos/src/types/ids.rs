//! Identifier messages. Every Mesos ID is a single-field message, so on the wire it
//! stays an object: `{"value":"…"}`.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $name {
            /// The identifier text.
            pub value: String,
        }

        impl $name {
            /// Creates the ID from its text.
            pub fn new(value: impl Into<String>) -> Self {
                $name { value: value.into() }
            }

            /// The identifier text.
            pub fn as_str(&self) -> &str {
                &self.value
            }
        }

        impl From<&str> for $name {
            fn from(v: &str) -> Self {
                $name::new(v)
            }
        }

        impl From<String> for $name {
            fn from(v: String) -> Self {
                $name::new(v)
            }
        }

        impl From<&String> for $name {
            fn from(v: &String) -> Self {
                $name::new(v.clone())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.value)
            }
        }
    };
}

id_type!(
    /// `FrameworkID`: `<master id>-<4-digit counter>` on Apache Mesos.
    FrameworkId
);
id_type!(
    /// `OfferID`: `<master id>-O<n>`.
    OfferId
);
id_type!(
    /// `AgentID`: `<master id>-S<n>`.
    AgentId
);
id_type!(
    /// `TaskID`, chosen by the framework.
    TaskId
);
id_type!(
    /// `ExecutorID` (equals the task id for command tasks).
    ExecutorId
);
id_type!(
    /// `OperationID`, chosen by the framework for operation feedback.
    OperationId
);
id_type!(
    /// `ResourceProviderID`.
    ResourceProviderId
);

/// `ContainerID`: `{value, parent?}`; nested containers point at their parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerId {
    /// The identifier text.
    pub value: String,
    /// The parent container for nested containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

impl ContainerId {
    /// A top-level container id.
    pub fn new(value: impl Into<String>) -> Self {
        ContainerId {
            value: value.into(),
            parent: None,
        }
    }
}

/// `UUID` message (used by operation feedback): `{"value": <base64 bytes>}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Uuid {
    /// 16 raw bytes, base64 on the wire.
    pub value: super::Bytes,
}

/// Why a task or executor id is not acceptable to Mesos.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdError {
    /// Empty.
    #[error("ID must not be empty")]
    Empty,
    /// Longer than 255 bytes.
    #[error("ID must be at most 255 bytes, is {0}")]
    TooLong(usize),
    /// `.` or `..`.
    #[error("ID must not be '.' or '..'")]
    DotPath,
    /// Contains `/`, `\` or a control character.
    #[error("ID contains invalid character {0:?}")]
    InvalidChar(char),
}

/// Checks a task or executor id the way the Mesos master does (they become
/// sandbox path components): non-empty, at most 255 bytes, no `/`, `\` or control
/// characters, and not `.` or `..`.
pub fn validate_task_id(id: &str) -> Result<(), InvalidIdError> {
    if id.is_empty() {
        return Err(InvalidIdError::Empty);
    }
    if id.len() > 255 {
        return Err(InvalidIdError::TooLong(id.len()));
    }
    if id == "." || id == ".." {
        return Err(InvalidIdError::DotPath);
    }
    if let Some(c) = id
        .chars()
        .find(|c| *c == '/' || *c == '\\' || c.is_control())
    {
        return Err(InvalidIdError::InvalidChar(c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_rules() {
        assert!(validate_task_id("wordcount.split.0.7f3a").is_ok());
        assert_eq!(validate_task_id(""), Err(InvalidIdError::Empty));
        assert_eq!(validate_task_id(".."), Err(InvalidIdError::DotPath));
        assert_eq!(
            validate_task_id("a/b"),
            Err(InvalidIdError::InvalidChar('/'))
        );
        assert_eq!(
            validate_task_id("a\nb"),
            Err(InvalidIdError::InvalidChar('\n'))
        );
        assert!(matches!(
            validate_task_id(&"x".repeat(256)),
            Err(InvalidIdError::TooLong(256))
        ));
    }
}
