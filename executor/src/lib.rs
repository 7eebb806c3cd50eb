//! `concord-executor`: the data-plane host started as each Mesos task.
//!
//! One executor process hosts one operator instance. It listens for records from
//! upstream executors ([`router::inbound`]), runs the operator's callbacks on a single
//! thread ([`runtime`]), routes output to downstream instances discovered in etcd
//! ([`discovery`], [`router`]), and serves metrics, health and sampled traces over HTTP
//! ([`http`], [`metrics`], [`trace`]).

pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod discovery;
pub mod http;
pub mod metrics;
pub mod operators;
pub mod record_errors;
pub mod router;
pub mod runtime;
pub mod trace;
pub mod wire;
