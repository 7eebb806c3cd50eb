//! The Mesos v1 wire types, all from the `mesos-v1` crate (never redefined here).

pub use mesos_v1::types::*;

/// Seconds since the epoch, as Mesos prints `timestamp`s.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
