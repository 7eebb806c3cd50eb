//! `mesos-v1`: the Apache Mesos v1 HTTP API for Rust.
//!
//! - [`types`]: serde types for the v1 JSON mapping (re-exported at the crate root),
//!   plus the legacy `/state` shapes in [`legacy`].
//! - [`resources`]: resource arithmetic (sum, subtract, contains).
//! - [`recordio`]: the RecordIO framing used by the event stream.
//! - [`scheduler`]: the scheduler client ([`Scheduler::start`] → [`SchedulerHandle`]
//!   for calls + [`SchedulerEvents`] for events), and [`scheduler::subscribe_raw`]
//!   for step-by-step protocol tests.
//! - [`operator`]: a small operator API / files API client.
//!
//! The wire reference is `docs/mesos-v1-http.md` in the shared docs; where Mesos'
//! prose docs and its code disagree, this crate follows the code.

pub mod legacy;
pub mod operator;
pub mod recordio;
pub mod resources;
pub mod scheduler;
pub mod types;

pub use scheduler::{
    Credentials, Scheduler, SchedulerConfig, SchedulerError, SchedulerEvent, SchedulerEvents,
    SchedulerHandle,
};
pub use types::*;
