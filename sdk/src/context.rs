//! The context handed to operator callbacks: output, timers and configuration.

use crate::config::Config;
use crate::record::TraceContext;

/// Where a [`Context`] sends output; implemented by the host (the executor's router,
/// or the out-of-process protocol writer).
pub trait Emitter {
    /// Emits one record on `stream`. `trace` is the trace context the record belongs to:
    /// the host's span for the hop being processed (what the host passed to
    /// [`Context::set_current`]) or the one given to [`Context::produce_traced`]; `None`
    /// for an untraced record.
    fn emit(
        &mut self,
        stream: &str,
        key: &[u8],
        value: &[u8],
        event_time: u64,
        trace: Option<TraceContext>,
    );

    /// Requests a call to `process_timer(key, time)` once the clock reaches `time` (ms).
    fn set_timer(&mut self, key: &[u8], time: u64);

    /// Reports when the work on the traced hop `span` really ran (wall-clock ns since the
    /// Unix epoch), for operators that hand records on and process them later (the
    /// process-operator bridge). Hosts without spans ignore it.
    fn span_timing(&mut self, span: TraceContext, start_ns: u64, end_ns: u64) {
        let _ = (span, start_ns, end_ns);
    }
}

/// What an operator callback may do besides returning.
pub struct Context<'a> {
    emitter: &'a mut dyn Emitter,
    config: &'a Config,
    instance: u32,
    event_time: u64,
    trace: Option<TraceContext>,
}

impl<'a> Context<'a> {
    /// Creates a context over a host emitter. Hosts call this; operators only use it.
    pub fn new(emitter: &'a mut dyn Emitter, config: &'a Config, instance: u32) -> Self {
        Self {
            emitter,
            config,
            instance,
            event_time: 0,
            trace: None,
        }
    }

    /// Sets the event time and trace context inherited by records produced next (hosts
    /// call this before each callback; `trace` is the host's span for this hop when the
    /// record being processed is sampled).
    pub fn set_current(&mut self, event_time: u64, trace: Option<TraceContext>) {
        self.event_time = event_time;
        self.trace = trace;
    }

    /// Emits a record on `stream`, with the event time of the record (or timer) being
    /// processed.
    pub fn produce(&mut self, stream: &str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.emitter.emit(
            stream,
            key.as_ref(),
            value.as_ref(),
            self.event_time,
            self.trace,
        );
    }

    /// Emits a record with an explicit event time (ms since the Unix epoch).
    pub fn produce_at(
        &mut self,
        stream: &str,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        event_time: u64,
    ) {
        self.emitter
            .emit(stream, key.as_ref(), value.as_ref(), event_time, self.trace);
    }

    /// Emits a record that belongs to the traced hop `trace` rather than to the current
    /// callback's (used by hosts' bridges, e.g. for records a child process produced
    /// while it processed a traced record).
    pub fn produce_traced(
        &mut self,
        stream: &str,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        event_time: u64,
        trace: TraceContext,
    ) {
        self.emitter.emit(
            stream,
            key.as_ref(),
            value.as_ref(),
            event_time,
            Some(trace),
        );
    }

    /// Tells the host when the work for the traced hop `span` really ran (wall-clock ns);
    /// see [`Emitter::span_timing`].
    pub fn report_span_timing(&mut self, span: TraceContext, start_ns: u64, end_ns: u64) {
        self.emitter.span_timing(span, start_ns, end_ns);
    }

    /// Asks for `process_timer(key, time)` once wall-clock time reaches `time` (ms since the
    /// Unix epoch). Setting the same `(key, time)` twice fires once.
    pub fn set_timer(&mut self, key: impl AsRef<[u8]>, time: u64) {
        self.emitter.set_timer(key.as_ref(), time);
    }

    /// The operator's configuration.
    pub fn config(&self) -> &Config {
        self.config
    }

    /// This instance's index within its operator.
    pub fn instance(&self) -> u32 {
        self.instance
    }

    /// Event time of the record being processed (or the timer's time).
    pub fn event_time(&self) -> u64 {
        self.event_time
    }

    /// Trace context that produced records inherit: the current hop's span when the
    /// record being processed is sampled, else `None`.
    pub fn trace(&self) -> Option<TraceContext> {
        self.trace
    }
}
