//! `mesos-v1`: the Apache Mesos v1 HTTP API for Rust.
//!
//! - [`types`]: serde types for the v1 JSON mapping (re-exported at the crate root),
//!   plus the legacy `/state` shapes in [`legacy`].
//! - [`resources`]: resource arithmetic (sum, subtract, contains).
//! - [`recordio`]: the RecordIO framing used by the event stream.
//!
//! The wire reference is `docs/mesos-v1-http.md` in the shared docs; where Mesos'
//! prose docs and its code disagree, this crate follows the code.

pub mod legacy;
pub mod recordio;
pub mod resources;
pub mod types;

pub use types::*;
