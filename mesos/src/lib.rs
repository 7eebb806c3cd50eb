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
//! # Example
//!
//! ```no_run
//! use mesos_v1::*;
//!
//! # async fn run() -> Result<(), SchedulerError> {
//! let mut info = FrameworkInfo::new("concord", "my-framework");
//! info.failover_timeout = 7.0 * 24.0 * 3600.0;
//! let (handle, mut events) = Scheduler::start(SchedulerConfig::new("http://127.0.0.1:5050", info));
//! while let Some(event) = events.recv().await {
//!     match event {
//!         SchedulerEvent::Subscribed { framework_id, .. } => println!("framework {framework_id}"),
//!         SchedulerEvent::Event(ev) if ev.r#type == EventType::Offers => {
//!             let ids = ev.offer_list().iter().map(|o| o.id.clone()).collect();
//!             handle.decline(ids, Some(Filters::refuse_seconds(30.0))).await?;
//!         }
//!         SchedulerEvent::Event(ev) => {
//!             if let Some(status) = ev.task_status() {
//!                 handle.acknowledge_status(status).await?;
//!             }
//!         }
//!         SchedulerEvent::Disconnected { reason } => eprintln!("disconnected: {reason}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
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
