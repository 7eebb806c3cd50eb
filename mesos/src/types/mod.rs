//! Serde types for the v1 JSON mapping of Mesos' protobuf messages (wire reference §3–§6, §10).
//!
//! Conventions shared by every type: snake_case field names as in the `.proto`; enums
//! as name strings with an `Other(String)` fallback; `bytes` as standard padded
//! base64 ([`Bytes`]); IDs as `{"value": …}`; unset optionals omitted; unknown fields
//! ignored; numbers accepted as numeric strings and booleans as `"true"`/`"false"`.
//! Fields with an explicit proto `[default]` are plain values printed with their
//! default, as Mesos prints them.

pub mod call;
pub mod common;
pub mod event;
pub mod framework;
pub mod ids;
pub mod master;
pub mod offer;
pub mod resource;
pub mod status;
pub mod task;
pub mod wire;

pub use call::*;
pub use common::*;
pub use event::*;
pub use framework::*;
pub use ids::*;
pub use master::*;
pub use offer::*;
pub use resource::*;
pub use status::*;
pub use task::*;
pub use wire::{Bytes, Lenient};
