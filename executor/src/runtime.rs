//! The operator runtime: one thread calling the operator's callbacks, one at a time.
//!
//! The loop takes batches from the bounded input queue, fires due timers in time order,
//! hands output to the [`Router`], and flushes output batches when they are full, when
//! the loop is about to wait (nothing else to do), or after the linger time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_sdk::{Config, Context, Emitter, Operator, Record, TraceContext};

use crate::clock;
use crate::metrics::{DROPPED_SHUTDOWN, Metrics};
use crate::record_errors::RecordErrors;
use crate::router::inbound::InMsg;
use crate::router::{Router, RoutingTable};
use crate::trace::{Sampler, Span, Tracer, hex_id};
use crate::wire::BatchReader;

/// Why the runtime stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `init` failed.
    #[error("operator init failed: {0}")]
    Init(String),
    /// Shut down before discovery delivered a routing table.
    #[error("stopped before initialisation")]
    StoppedBeforeInit,
}

/// Lifecycle flags shared with the HTTP server and discovery.
#[derive(Debug, Default)]
pub struct RuntimeState {
    /// `init` returned successfully.
    pub initialised: AtomicBool,
    /// Initialised and every downstream connection established.
    pub ready: AtomicBool,
    /// Set once `destroy` has been called.
    pub destroyed: AtomicBool,
    /// What keeps the operator from working (published with the endpoint).
    problem: std::sync::Mutex<Option<String>>,
}

impl RuntimeState {
    /// Reports a problem (`None` clears it).
    pub fn set_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.problem.lock()
            && *p != problem
        {
            match &problem {
                Some(m) => tracing::warn!(problem = %m, "operator reports a problem"),
                None => tracing::info!("operator problem cleared"),
            }
            *p = problem;
        }
    }

    /// The problem reported last, if any.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }
}

/// Everything the runtime thread owns.
pub struct Runtime {
    /// The hosted operator.
    pub operator: Box<dyn Operator>,
    /// Its configuration.
    pub config: Config,
    /// Instance index.
    pub instance: u32,
    /// True when the operator has no inputs (its untraced output may be sampled).
    pub is_source: bool,
    /// Output routing.
    pub router: Router,
    /// Input batches and injected records.
    pub input: Receiver<InMsg>,
    /// Routing table updates from discovery.
    pub routing: Receiver<RoutingTable>,
    /// Set to stop.
    pub shutdown: Arc<AtomicBool>,
    /// Shared lifecycle flags.
    pub state: Arc<RuntimeState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Span collector.
    pub tracer: Arc<Tracer>,
    /// Trace sampling.
    pub sampler: Sampler,
    /// How long an operator with outputs waits for its first downstream before `init`.
    pub source_wait: Duration,
    /// Failed records: counted, logged, dead-lettered.
    pub errors: Arc<RecordErrors>,
}

type Timers = BTreeSet<(u64, Bytes)>;

struct Host<'a> {
    router: &'a mut Router,
    timers: &'a mut Timers,
    sampler: &'a mut Sampler,
    spans: &'a mut Vec<Span>,
    tracer: &'a Tracer,
    is_source: bool,
}

impl Emitter for Host<'_> {
    #[inline]
    fn emit(
        &mut self,
        stream: &str,
        key: &[u8],
        value: &[u8],
        event_time: u64,
        trace: Option<TraceContext>,
    ) {
        // `trace` is this hop's span (set by `call_record`), or one a bridge reports.
        let trace = match trace {
            Some(t) => Some(t),
            None if self.is_source && self.sampler.sample() => {
                let now = clock::wall_ns();
                let t = TraceContext {
                    trace_id: self.sampler.next_id(),
                    span_id: self.sampler.next_id(),
                };
                self.spans.push(Span {
                    trace_id: hex_id(t.trace_id),
                    span_id: hex_id(t.span_id),
                    parent_id: None,
                    operator: self.tracer.operator.clone(),
                    instance: self.tracer.instance,
                    task_id: self.tracer.task_id.clone(),
                    enqueue_ns: now,
                    process_start_ns: now,
                    process_end_ns: now,
                    send_ns: None,
                });
                Some(t)
            }
            None => None,
        };
        self.router.route(stream, key, value, event_time, trace);
    }

    fn set_timer(&mut self, key: &[u8], time: u64) {
        self.timers.insert((time, Bytes::copy_from_slice(key)));
    }

    fn span_timing(&mut self, span: TraceContext, start_ns: u64, end_ns: u64) {
        // Only traced records get here, and their spans are still pending (spans are
        // finished between batches), so a short search from the newest is enough.
        let span_id = hex_id(span.span_id);
        if let Some(s) = self.spans.iter_mut().rev().find(|s| s.span_id == span_id) {
            s.process_start_ns = start_ns;
            s.process_end_ns = end_ns.max(start_ns);
        }
    }
}

struct InStats {
    from: Arc<str>,
    records: u64,
    bytes: u64,
}

impl Runtime {
    /// Runs until `shutdown` is set: waits for the first routing table, calls `init`,
    /// processes input and timers, and finally calls `destroy`. Returns the router,
    /// still holding unflushed output, so the caller can deregister before flushing.
    pub fn run(mut self) -> Result<Router, RuntimeError> {
        // Routing first, so a source's first records already have somewhere to go.
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return Err(RuntimeError::StoppedBeforeInit);
            }
            match self.routing.recv_timeout(Duration::from_millis(50)) {
                Ok(t) => {
                    self.router.update(&t);
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // An operator with outputs whose consumers have not registered yet waits a little
        // for them before it starts (input meanwhile back-pressures upstream), so that a
        // topology started all at once does not drop its first records.
        let deadline = Instant::now() + self.source_wait;
        let has_outputs = !self.operator.metadata().outputs.is_empty();
        while has_outputs
            && self.router.downstreams() == 0
            && Instant::now() < deadline
            && !self.shutdown.load(Ordering::Relaxed)
        {
            if let Ok(t) = self.routing.recv_timeout(Duration::from_millis(20)) {
                self.router.update(&t);
            }
        }
        let mut timers = Timers::new();
        let mut spans: Vec<Span> = Vec::new();
        {
            let mut host = Host {
                router: &mut self.router,
                timers: &mut timers,
                sampler: &mut self.sampler,
                spans: &mut spans,
                tracer: &self.tracer,
                is_source: self.is_source,
            };
            let mut ctx = Context::new(&mut host, &self.config, self.instance);
            ctx.set_current(clock::wall_ms(), None);
            if let Err(e) = self.operator.init(&mut ctx) {
                return Err(RuntimeError::Init(e.to_string()));
            }
        }
        self.state.initialised.store(true, Ordering::Relaxed);
        tracing::info!("operator initialised");
        let mut in_stats: Vec<InStats> = Vec::new();
        let mut last_house = Instant::now() - Duration::from_secs(1);
        while !self.shutdown.load(Ordering::Relaxed) {
            if last_house.elapsed() >= Duration::from_millis(20) {
                last_house = Instant::now();
                while let Ok(t) = self.routing.try_recv() {
                    self.router.update(&t);
                }
                let ready = self.router.all_connected();
                self.state.ready.store(ready, Ordering::Relaxed);
                self.metrics.ready.set(i64::from(ready));
                self.publish_in(&mut in_stats);
                self.router.publish_stats();
            }
            self.router.poll_acks();
            let now_ms = clock::wall_ms();
            if timers.first().is_some_and(|(t, _)| *t <= now_ms) {
                self.fire_timers(&mut timers, &mut spans, now_ms);
            }
            match self.input.try_recv() {
                Ok(msg) => {
                    self.process(msg, &mut timers, &mut spans, &mut in_stats);
                    self.router.flush_lingering();
                }
                Err(TryRecvError::Empty) => {
                    let wait = timers
                        .first()
                        .map(|(t, _)| t.saturating_sub(clock::wall_ms()))
                        .unwrap_or(20)
                        .min(20);
                    if wait == 0 {
                        self.router.flush_lingering();
                    } else {
                        self.router.flush_all();
                        self.finish_spans(&mut spans);
                        match self.input.recv_timeout(Duration::from_millis(wait)) {
                            Ok(msg) => self.process(msg, &mut timers, &mut spans, &mut in_stats),
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            }
            // A span is finished (its send time taken) once the output it led to has been
            // handed to the network; only traced records get here.
            if !spans.is_empty() && (spans.len() > 64 || !self.router.holds_traced()) {
                self.finish_spans(&mut spans);
            }
        }
        self.drop_queued_input();
        tracing::info!("stopping: calling destroy");
        self.operator.destroy();
        self.state.destroyed.store(true, Ordering::Relaxed);
        self.state.ready.store(false, Ordering::Relaxed);
        tracing::info!("operator destroyed");
        self.publish_in(&mut in_stats);
        self.router.publish_stats();
        self.finish_spans(&mut spans);
        Ok(self.router)
    }

    /// What is still queued when the operator stops will not be processed: counted as
    /// dropped (`reason="shutdown"`); markers among it fail, so their sources replay.
    fn drop_queued_input(&mut self) {
        let mut records = 0u64;
        while let Ok(msg) = self.input.try_recv() {
            self.metrics.input_queue.dec();
            match msg {
                InMsg::Batch { body, .. } => {
                    records += body.get(0..4).map_or(1, |c| {
                        u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    });
                }
                InMsg::Ingest(batch) => records += batch.len() as u64,
                InMsg::Marker(ack) => ack.send(false),
            }
        }
        if records > 0 {
            tracing::warn!(
                records,
                "input left unprocessed at stop; counted as dropped"
            );
            self.metrics.dropped_for(DROPPED_SHUTDOWN).inc_by(records);
        }
    }

    /// Stores finished spans, with the time their output was handed to the network (the
    /// latest traced batch sent since the last call; now for spans without output).
    fn finish_spans(&mut self, spans: &mut Vec<Span>) {
        if spans.is_empty() {
            return;
        }
        let now = clock::wall_ns();
        let sent = self.router.take_traced_sent_ns();
        self.tracer.record(spans.drain(..).map(|mut s| {
            s.send_ns = Some(match sent {
                Some(t) if t >= s.process_end_ns => t,
                _ => now,
            });
            s
        }));
    }

    fn publish_in(&self, in_stats: &mut [InStats]) {
        for s in in_stats.iter_mut() {
            if s.records > 0 {
                let labels = vec![("stream".to_owned(), s.from.to_string())];
                self.metrics
                    .records_in
                    .get_or_create(&labels)
                    .inc_by(s.records);
                self.metrics.bytes_in.get_or_create(&labels).inc_by(s.bytes);
                s.records = 0;
                s.bytes = 0;
            }
        }
    }

    fn fire_timers(&mut self, timers: &mut Timers, spans: &mut Vec<Span>, now_ms: u64) {
        let mut due = Vec::new();
        while let Some(first) = timers.first() {
            if first.0 > now_ms {
                break;
            }
            if let Some(t) = timers.pop_first() {
                due.push(t);
            }
        }
        let operator = &mut self.operator;
        let config = &self.config;
        let instance = self.instance;
        let mut host = Host {
            router: &mut self.router,
            timers,
            sampler: &mut self.sampler,
            spans,
            tracer: &self.tracer,
            is_source: self.is_source,
        };
        let mut errors = 0;
        for (time, key) in due {
            let mut ctx = Context::new(&mut host, config, instance);
            ctx.set_current(time, None);
            if let Err(e) = operator.process_timer(&mut ctx, key, time) {
                errors += 1;
                tracing::warn!(error = %e, "process_timer failed");
            }
        }
        let mut ctx = Context::new(&mut host, config, instance);
        if let Err(e) = operator.end_of_batch(&mut ctx) {
            errors += 1;
            tracing::warn!(error = %e, "end_of_batch failed");
        }
        self.metrics.errors.inc_by(errors);
    }

    fn process(
        &mut self,
        msg: InMsg,
        timers: &mut Timers,
        spans: &mut Vec<Span>,
        in_stats: &mut Vec<InStats>,
    ) {
        let operator = &mut self.operator;
        let config = &self.config;
        let instance = self.instance;
        let metrics = &self.metrics;
        let failures = &*self.errors;
        let mut host = Host {
            router: &mut self.router,
            timers,
            sampler: &mut self.sampler,
            spans,
            tracer: &self.tracer,
            is_source: self.is_source,
        };
        let mut errors = 0u64;
        let mut first_event_time = None;
        let received_ns;
        match msg {
            InMsg::Batch {
                from,
                body,
                received_ns: rns,
            } => {
                received_ns = rns;
                metrics.input_queue.dec();
                let bytes = body.len() as u64;
                let mut reader = match BatchReader::new(body) {
                    Ok(r) => r,
                    Err(e) => {
                        // Its record count is unreadable: counted as one.
                        metrics.dropped_for(crate::metrics::DROPPED_MALFORMED).inc();
                        host.router.records_lost("malformed input batch");
                        tracing::warn!(error = %e, %from, "malformed batch dropped");
                        return;
                    }
                };
                let n = u64::from(reader.remaining());
                match in_stats.iter_mut().find(|s| s.from == from) {
                    Some(s) => {
                        s.records += n;
                        s.bytes += bytes;
                    }
                    None => in_stats.push(InStats {
                        from: from.clone(),
                        records: n,
                        bytes,
                    }),
                }
                loop {
                    let rec = match reader.next_record() {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            // The bad record and every one after it in the batch.
                            let lost = u64::from(reader.remaining());
                            metrics
                                .dropped_for(crate::metrics::DROPPED_MALFORMED)
                                .inc_by(lost);
                            host.router
                                .records_lost("malformed record in an input batch");
                            tracing::warn!(error = %e, %from, lost, "malformed record; rest of batch dropped");
                            break;
                        }
                    };
                    if first_event_time.is_none() {
                        first_event_time = Some(rec.event_time);
                    }
                    if call_record(
                        operator.as_mut(),
                        &mut host,
                        config,
                        instance,
                        rec,
                        received_ns,
                        failures,
                    )
                    .is_err()
                    {
                        errors += 1;
                    }
                }
            }
            InMsg::Marker(ack) => {
                metrics.input_queue.dec();
                // Everything before the marker has been processed and routed.
                let durable = match operator
                    .checkpoint()
                    .map_err(|e| e.to_string())
                    .and_then(|()| failures.flush())
                {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "checkpoint failed; records before it will be replayed");
                        false
                    }
                };
                host.router.marker_arrived(ack);
                host.router.forward_markers(durable);
                return;
            }
            InMsg::Ingest(records) => {
                received_ns = clock::wall_ns();
                metrics.input_queue.dec();
                for rec in records {
                    if call_record(
                        operator.as_mut(),
                        &mut host,
                        config,
                        instance,
                        rec,
                        received_ns,
                        failures,
                    )
                    .is_err()
                    {
                        errors += 1;
                    }
                }
            }
        }
        let mut ctx = Context::new(&mut host, config, instance);
        if let Err(e) = operator.end_of_batch(&mut ctx) {
            errors += 1;
            tracing::warn!(error = %e, "end_of_batch failed");
        }
        if errors > 0 {
            metrics.errors.inc_by(errors);
        }
        let now_ns = clock::wall_ns();
        metrics.input_batches.inc();
        metrics
            .processing_latency
            .observe(now_ns.saturating_sub(received_ns) as f64 / 1e9);
        if let Some(et) = first_event_time
            && et > 0
        {
            metrics
                .e2e_latency
                .observe((now_ns / 1_000_000).saturating_sub(et) as f64 / 1e3);
        }
    }
}

/// Runs `process_record` for one record, opening a span when it is traced.
#[inline]
fn call_record(
    operator: &mut dyn Operator,
    host: &mut Host<'_>,
    config: &Config,
    instance: u32,
    rec: Record,
    received_ns: u64,
    errors: &RecordErrors,
) -> Result<(), ()> {
    let copy = errors.wants_records().then(|| rec.clone());
    let mut span = None;
    let mut hop = None;
    if let Some(t) = rec.trace {
        let id = host.sampler.next_id();
        hop = Some(TraceContext {
            trace_id: t.trace_id,
            span_id: id,
        });
        span = Some((t, id, clock::wall_ns()));
    }
    let event_time = rec.event_time;
    let result = {
        let mut ctx = Context::new(host, config, instance);
        ctx.set_current(event_time, hop);
        operator.process_record(&mut ctx, rec)
    };
    if let Some((parent, id, start)) = span {
        host.spans.push(Span {
            trace_id: hex_id(parent.trace_id),
            span_id: hex_id(id),
            parent_id: Some(hex_id(parent.span_id)),
            operator: host.tracer.operator.clone(),
            instance: host.tracer.instance,
            task_id: host.tracer.task_id.clone(),
            enqueue_ns: received_ns,
            process_start_ns: start,
            process_end_ns: clock::wall_ns(),
            send_ns: None,
        });
    }
    result.map_err(|e| {
        errors.failed(copy.as_ref(), event_time, &e.to_string());
    })
}

/// Sender half for injecting records (source operators' I/O threads).
#[derive(Clone)]
pub struct Ingest {
    tx: std::sync::mpsc::SyncSender<InMsg>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Ingest {
    /// Wraps the input queue's sender.
    pub fn new(
        tx: std::sync::mpsc::SyncSender<InMsg>,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        Self { tx, gauge }
    }

    /// Queues an at-least-once marker behind the records sent so far, blocking while the
    /// queue is full. Returns false once the runtime has stopped.
    pub fn send_marker(&self, ack: crate::delivery::AckTo) -> bool {
        self.gauge.inc();
        let ok = self.tx.send(InMsg::Marker(ack)).is_ok();
        if !ok {
            self.gauge.dec();
        }
        ok
    }

    /// Queues records for `process_record`, blocking while the queue is full. Returns
    /// false once the runtime has stopped.
    pub fn send(&self, records: Vec<Record>) -> bool {
        if records.is_empty() {
            return true;
        }
        self.gauge.inc();
        let ok = self.tx.send(InMsg::Ingest(records)).is_ok();
        if !ok {
            self.gauge.dec();
        }
        ok
    }
}
