//! Routing output records to downstream instances.
//!
//! The [`Router`] lives on the operator thread. For every edge out of this operator it
//! keeps the current set of downstream instances (from [`crate::discovery`]) and appends
//! each produced record to the batch of the chosen instance's [`conn::Conn`]: by
//! rendezvous hash of the key, round-robin, or to all of them.

pub mod conn;
pub mod inbound;
pub mod partition;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_sdk::TraceContext;

use crate::config::Partitioning;
use crate::delivery::{AckTo, Checkpoints};
use crate::metrics::Metrics;
use conn::{Conn, ConnSettings};

/// The downstream instances of every edge out of this operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingTable {
    /// One entry per consuming operator.
    pub edges: Vec<EdgeTable>,
}

/// One edge: a consuming operator and its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeTable {
    /// Consuming operator.
    pub operator: String,
    /// Partitioning it asked for.
    pub partitioning: Partitioning,
    /// Its instances, at most one task per instance index, sorted by index.
    pub targets: Vec<Target>,
}

/// A downstream task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Instance index.
    pub instance: u32,
    /// Task ID.
    pub task_id: String,
    /// Data address `host:port`.
    pub addr: String,
}

struct EdgeRoute {
    partitioning: Partitioning,
    slots: Vec<usize>,
    seeds: Vec<u64>,
    rr: usize,
}

struct StreamStats {
    name: String,
    records: u64,
    bytes: u64,
}

/// Routes produced records to downstream connections.
pub struct Router {
    conns: Vec<Option<Conn>>,
    index: HashMap<(String, String), usize>,
    edges: Vec<EdgeRoute>,
    settings: ConnSettings,
    linger: Duration,
    out: Vec<StreamStats>,
    /// (pointer, length, index into `out`) of the stream named last.
    last_stream: Option<(usize, usize, usize)>,
    no_route: u64,
    /// A routing table has been applied (before that, who consumes us is unknown).
    table_seen: bool,
    closing: Vec<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    /// At-least-once bookkeeping; `None` under at-most-once.
    checkpoints: Option<Checkpoints>,
}

impl Router {
    /// A router with no downstreams yet.
    pub fn new(settings: ConnSettings, linger: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            conns: Vec::new(),
            index: HashMap::new(),
            edges: Vec::new(),
            settings,
            linger,
            out: Vec::new(),
            last_stream: None,
            no_route: 0,
            table_seen: false,
            closing: Vec::new(),
            metrics,
            checkpoints: None,
        }
    }

    /// Turns on at-least-once markers; `settings.acks` of the router must be the sender
    /// paired with `checkpoints`.
    pub fn with_checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// A marker this operator has processed (everything before it is handed on).
    /// Without at-least-once it is answered at once.
    pub fn marker_arrived(&mut self, ack: AckTo) {
        match &mut self.checkpoints {
            Some(c) => c.arrived(ack),
            None => ack.send(true),
        }
    }

    /// Records were lost before the operator saw them (a malformed input batch): the
    /// next forward of markers fails, so their sources replay them.
    pub fn records_lost(&mut self, why: &str) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.lost(why);
        }
    }

    /// Forwards the processed markers: one marker of ours on every downstream connection,
    /// behind the records already routed to it. `durable` is the operator's own
    /// checkpoint result; without consumers the markers are answered with it right away.
    pub fn forward_markers(&mut self, durable: bool) {
        let Some(c) = self.checkpoints.as_mut() else {
            return;
        };
        if !c.has_pending() {
            return;
        }
        // Without edges there is nobody to wait for, unless a removed downstream's final
        // marker is still owed.
        if !durable || (self.edges.is_empty() && !c.has_carried()) {
            c.settle_local(durable);
            return;
        }
        let seq = c.next_seq();
        let mut sent = Vec::with_capacity(self.index.len());
        for conn in self.conns.iter_mut().flatten() {
            if conn.push_marker(seq) {
                sent.push((conn.id, seq));
            } else {
                c.lost("downstream writer gone");
            }
        }
        c.forward(seq, sent);
    }

    /// Applies acknowledgements from downstream (at-least-once).
    pub fn poll_acks(&mut self) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.poll();
            let t = c.take_tally();
            if t.acked > 0 {
                self.metrics
                    .markers
                    .get_or_create(&vec![("result".to_owned(), "acked".to_owned())])
                    .inc_by(t.acked);
            }
            if t.failed > 0 {
                self.metrics
                    .markers
                    .get_or_create(&vec![("result".to_owned(), "failed".to_owned())])
                    .inc_by(t.failed);
            }
        }
    }

    /// Applies a new routing table: connects to new instances, drains and closes removed
    /// ones, and rebuilds the partitioning of every edge.
    pub fn update(&mut self, table: &RoutingTable) {
        self.table_seen = true;
        let mut wanted: HashMap<(String, String), ()> = HashMap::new();
        for e in &table.edges {
            for t in &e.targets {
                wanted.insert((t.task_id.clone(), t.addr.clone()), ());
            }
        }
        let removed: Vec<(String, String)> = self
            .index
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in removed {
            if let Some(slot) = self.index.remove(&k)
                && let Some(conn) = self.conns[slot].take()
            {
                tracing::info!(task = %conn.task_id, addr = %conn.addr, "downstream removed; draining");
                let mut conn = conn;
                if let Some(c) = self.checkpoints.as_mut() {
                    // Records it got since the last forward are covered by a final marker.
                    let seq = c.next_seq();
                    if conn.push_marker(seq) {
                        c.carry(conn.id, seq);
                    } else {
                        c.lost("removed downstream's writer gone");
                    }
                }
                if let Some(h) = conn.close() {
                    self.closing.push(h);
                }
            }
        }
        let mut edges = Vec::with_capacity(table.edges.len());
        for e in &table.edges {
            let mut targets = e.targets.clone();
            targets.sort_by_key(|t| t.instance);
            let mut slots = Vec::with_capacity(targets.len());
            let mut seeds = Vec::with_capacity(targets.len());
            for t in &targets {
                let key = (t.task_id.clone(), t.addr.clone());
                let slot = match self.index.get(&key) {
                    Some(s) => *s,
                    None => {
                        tracing::info!(operator = %e.operator, instance = t.instance, task = %t.task_id, addr = %t.addr, "downstream added");
                        let conn = Conn::spawn(
                            t.task_id.clone(),
                            t.addr.clone(),
                            &self.settings,
                            self.metrics.output_queue.clone(),
                        );
                        let slot = match self.conns.iter().position(Option::is_none) {
                            Some(free) => {
                                self.conns[free] = Some(conn);
                                free
                            }
                            None => {
                                self.conns.push(Some(conn));
                                self.conns.len() - 1
                            }
                        };
                        self.index.insert(key, slot);
                        slot
                    }
                };
                slots.push(slot);
                seeds.push(partition::instance_seed(t.instance));
            }
            edges.push(EdgeRoute {
                partitioning: e.partitioning,
                slots,
                seeds,
                rr: 0,
            });
        }
        self.edges = edges;
        self.closing.retain(|h| !h.is_finished());
        self.metrics.downstreams.set(self.index.len() as i64);
    }

    /// Routes one record on every edge.
    #[inline]
    pub fn route(
        &mut self,
        stream: &str,
        key: &[u8],
        value: &[u8],
        event_time: u64,
        trace: Option<TraceContext>,
    ) {
        let size = (key.len() + value.len()) as u64;
        // Fast path: the same stream as last time (usually a `&'static str`).
        let hit = self
            .last_stream
            .filter(|(ptr, len, _)| *ptr == stream.as_ptr() as usize && *len == stream.len())
            .map(|(_, _, i)| i);
        let idx = match hit {
            Some(i) => i,
            None => {
                let i = match self.out.iter().position(|s| s.name == stream) {
                    Some(i) => i,
                    None => {
                        self.out.push(StreamStats {
                            name: stream.to_owned(),
                            records: 0,
                            bytes: 0,
                        });
                        self.out.len() - 1
                    }
                };
                self.last_stream = Some((stream.as_ptr() as usize, stream.len(), i));
                i
            }
        };
        let s = &mut self.out[idx];
        s.records += 1;
        s.bytes += size;
        if self.edges.is_empty() {
            self.no_route += 1;
            if !self.table_seen
                && let Some(c) = self.checkpoints.as_mut()
            {
                // Discovery has not said yet who consumes this operator.
                c.lost("no routing table yet");
            }
            return;
        }
        let conns = &mut self.conns;
        for e in &mut self.edges {
            if e.slots.is_empty() {
                self.no_route += 1;
                if let Some(c) = self.checkpoints.as_mut() {
                    c.lost("a consuming operator has no instance");
                }
                continue;
            }
            match e.partitioning {
                Partitioning::Key => {
                    let i = if e.slots.len() == 1 {
                        0
                    } else {
                        partition::rendezvous(partition::key_hash(key), &e.seeds)
                    };
                    if let Some(c) = conns[e.slots[i]].as_mut() {
                        c.push(key, value, event_time, trace);
                    }
                }
                Partitioning::Shuffle => {
                    e.rr = (e.rr + 1) % e.slots.len();
                    if let Some(c) = conns[e.slots[e.rr]].as_mut() {
                        c.push(key, value, event_time, trace);
                    }
                }
                Partitioning::Broadcast => {
                    for s in &e.slots {
                        if let Some(c) = conns[*s].as_mut() {
                            c.push(key, value, event_time, trace);
                        }
                    }
                }
            }
        }
    }

    /// Flushes every partly filled batch.
    pub fn flush_all(&mut self) {
        for c in self.conns.iter_mut().flatten() {
            c.flush();
        }
        self.publish_stats();
    }

    /// Flushes batches whose oldest record waited longer than the linger time.
    pub fn flush_lingering(&mut self) {
        let now = Instant::now();
        for c in self.conns.iter_mut().flatten() {
            c.flush_if_lingering(now, self.linger);
        }
    }

    /// True while a traced record waits in a batch that has not been handed on yet.
    pub fn holds_traced(&self) -> bool {
        self.conns.iter().flatten().any(Conn::holds_traced)
    }

    /// The latest time a batch holding a traced record was handed on since the previous
    /// call, if any.
    pub fn take_traced_sent_ns(&mut self) -> Option<u64> {
        self.conns
            .iter_mut()
            .flatten()
            .filter_map(Conn::take_traced_sent_ns)
            .max()
    }

    /// True when every downstream connection is established.
    pub fn all_connected(&self) -> bool {
        self.conns.iter().flatten().all(Conn::connected)
    }

    /// Number of downstream connections.
    pub fn downstreams(&self) -> usize {
        self.index.len()
    }

    /// Pushes locally accumulated counters to the metrics registry.
    pub fn publish_stats(&mut self) {
        for s in &mut self.out {
            if s.records > 0 {
                let labels = vec![("stream".to_owned(), s.name.clone())];
                self.metrics
                    .records_out
                    .get_or_create(&labels)
                    .inc_by(s.records);
                self.metrics
                    .bytes_out
                    .get_or_create(&labels)
                    .inc_by(s.bytes);
                s.records = 0;
                s.bytes = 0;
            }
        }
        if self.no_route > 0 {
            self.metrics.dropped_no_route().inc_by(self.no_route);
            self.no_route = 0;
        }
    }

    /// Flushes everything, closes all connections and waits (up to `deadline`) for the
    /// writer threads to drain.
    pub fn close(mut self, deadline: Instant) {
        self.flush_all();
        let mut handles = std::mem::take(&mut self.closing);
        for c in self.conns.drain(..).flatten() {
            if let Some(h) = c.close() {
                handles.push(h);
            }
        }
        for h in handles {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}
