//! The Concord operator API.
//!
//! An operator is a type implementing [`Operator`]. The executor hosting it calls
//! [`Operator::init`] once, then [`Operator::process_record`] and
//! [`Operator::process_timer`] from a single thread (never concurrently), and
//! [`Operator::destroy`] when the task is stopped. Output goes through the
//! [`Context`] handed to every callback.
//!
//! Operators written in other languages (or as separate Rust programs) run as a
//! child process of the executor and speak the [`protocol`]; [`process::run`] is the
//! Rust side of that.

pub mod config;
pub mod context;
pub mod operator;
pub mod process;
pub mod protocol;
pub mod record;

pub use config::{Config, ConfigError};
pub use context::{Context, Emitter};
pub use operator::{Metadata, Operator, OperatorError};
pub use record::{Record, TraceContext};

/// Milliseconds since the Unix epoch, the unit of event times and timer times.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
