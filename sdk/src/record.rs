//! Records flowing between operators.

use bytes::Bytes;

/// Identifies a sampled record's trace and the span (hop) that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// Shared by every hop of one sampled record's path through the DAG.
    pub trace_id: u64,
    /// The span of the hop that emitted this record (the parent of the next hop's span).
    pub span_id: u64,
}

/// One record: a key, a value, an event time and, when sampled, a trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key (may be empty).
    pub key: Bytes,
    /// Payload.
    pub value: Bytes,
    /// Event time in milliseconds since the Unix epoch.
    pub event_time: u64,
    /// Present when this record is sampled for tracing.
    pub trace: Option<TraceContext>,
}

impl Record {
    /// A record without trace context.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>, event_time: u64) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            event_time,
            trace: None,
        }
    }
}
