//! Clocks used on the data path.

use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds on the system-wide monotonic clock (comparable across processes on one host).
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch (wall clock), used for trace spans.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch: the unit of event and timer times.
pub fn wall_ms() -> u64 {
    wall_ns() / 1_000_000
}

/// CPU seconds (user + system, every thread) this process has used, with nanosecond
/// resolution (the kernel's process CPU clock; `/proc/self/stat` counts 10 ms ticks).
pub fn process_cpu_seconds() -> Option<f64> {
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .ok()
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}
