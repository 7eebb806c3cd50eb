//! Trace sampling: sampled records carry a trace id through the DAG and every hop
//! records a span, kept in a bounded ring served at `GET /traces`.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Spans kept for `/traces`.
pub const RING_CAPACITY: usize = 2048;

/// One hop of a sampled record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// Trace id (hex).
    pub trace_id: String,
    /// This hop's span id (hex).
    pub span_id: String,
    /// The upstream hop's span id (hex), absent at the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Operator name.
    pub operator: String,
    /// Instance index.
    pub instance: u32,
    /// Task ID.
    pub task_id: String,
    /// Wall-clock ns when the record's batch arrived (or was generated, at a source).
    pub enqueue_ns: u64,
    /// Wall-clock ns when processing began.
    pub process_start_ns: u64,
    /// Wall-clock ns when processing ended.
    pub process_end_ns: u64,
    /// Wall-clock ns when the output batch holding its result was handed to the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_ns: Option<u64>,
}

/// Decides which source records are sampled and makes ids (operator thread only).
pub struct Sampler {
    rate: f64,
    rng: u64,
}

impl Sampler {
    /// Samples a fraction `rate` (0..=1) of source records.
    pub fn new(rate: f64) -> Self {
        Self {
            rate: rate.clamp(0.0, 1.0),
            rng: crate::clock::wall_ns() | 1,
        }
    }

    /// A fresh random 64-bit id.
    pub fn next_id(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Whether to sample the next source record.
    #[inline]
    pub fn sample(&mut self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let r = (self.next_id() >> 11) as f64 / (1u64 << 53) as f64;
        r < self.rate
    }
}

/// Collects finished spans in a bounded ring.
pub struct Tracer {
    ring: Mutex<VecDeque<Span>>,
    /// Identity stamped on spans.
    pub operator: String,
    /// Instance stamped on spans.
    pub instance: u32,
    /// Task stamped on spans.
    pub task_id: String,
}

impl Tracer {
    /// A tracer stamping spans with this identity.
    pub fn new(operator: &str, instance: u32, task_id: &str) -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(RING_CAPACITY)),
            operator: operator.to_owned(),
            instance,
            task_id: task_id.to_owned(),
        }
    }

    /// Stores finished spans.
    pub fn record(&self, spans: impl IntoIterator<Item = Span>) {
        if let Ok(mut ring) = self.ring.lock() {
            for s in spans {
                if ring.len() == RING_CAPACITY {
                    ring.pop_front();
                }
                ring.push_back(s);
            }
        }
    }

    /// The recent spans, oldest first.
    pub fn recent(&self) -> Vec<Span> {
        self.ring
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Formats an id as 16 hex digits.
pub fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}
