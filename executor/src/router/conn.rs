//! One outbound connection to a downstream instance: a bounded queue of encoded batches
//! drained by a writer thread, with reconnect on failure. Under at-least-once delivery
//! markers go through the same queue, and a reader thread per TCP connection passes the
//! downstream's acknowledgements to the router (`crate::delivery`).

use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_sdk::TraceContext;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::auth::DataplaneAuth;
use crate::delivery::ConnAck;
use crate::wire::{BatchBuilder, FRAME_ACK, FRAME_MARKER, ack_body, marker_frame, read_frame};

/// Source of connection ids, unique within the process.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// State shared between the operator thread and a connection's writer thread.
#[derive(Debug, Default)]
pub struct ConnShared {
    /// True while a TCP connection is established.
    pub connected: AtomicBool,
    /// Batches waiting in the queue.
    pub queued: AtomicUsize,
    /// The executor's `concord_output_queue_batches` (all connections), kept live.
    pub gauge: Gauge,
    /// Records may have been lost since the last marker: the next one fails.
    pub lost: AtomicBool,
}

impl ConnShared {
    fn enqueued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.gauge.inc();
    }

    fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// Settings for outbound connections.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// Flush a batch once it holds this many bytes.
    pub batch_bytes: usize,
    /// Batches queued before the operator thread blocks (back-pressure).
    pub queue_batches: usize,
    /// The hello frame sent on every (re)connect (with authentication its body goes
    /// in the `AUTH` frame instead).
    pub hello: Vec<u8>,
    /// The topology's secret, proved on every (re)connect; `None` only with
    /// `--insecure-no-dataplane-auth`.
    pub auth: Option<DataplaneAuth>,
    /// Counter of records dropped because the downstream could not be reached.
    pub dropped: Counter,
    /// At-least-once: where acknowledgements of markers are reported (`None`: markers
    /// are not used and nothing is read back).
    pub acks: Option<Sender<ConnAck>>,
}

/// An outbound connection as seen by the operator thread.
pub struct Conn {
    /// Unique id, used in acknowledgements.
    pub id: u64,
    /// Downstream task ID.
    pub task_id: String,
    /// Downstream `host:port`.
    pub addr: String,
    builder: BatchBuilder,
    batch_bytes: usize,
    tx: Option<SyncSender<Vec<u8>>>,
    shared: Arc<ConnShared>,
    handle: Option<JoinHandle<()>>,
    pending_since: Option<Instant>,
    /// Wall-clock ns the last batch holding a traced record was handed on (0: none since
    /// [`Conn::take_traced_sent_ns`]).
    traced_sent_ns: u64,
}

impl Conn {
    /// Starts the writer thread, which connects right away. `queue_gauge` counts the
    /// batches queued on every connection of the executor.
    pub fn spawn(
        task_id: String,
        addr: String,
        settings: &ConnSettings,
        queue_gauge: Gauge,
    ) -> Self {
        let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(settings.queue_batches.max(1));
        let shared = Arc::new(ConnShared {
            gauge: queue_gauge,
            ..ConnShared::default()
        });
        let handle = {
            let shared = shared.clone();
            let w = Writer {
                id,
                addr: addr.clone(),
                hello: settings.hello.clone(),
                auth: settings.auth.clone(),
                dropped: settings.dropped.clone(),
                acks: settings.acks.clone(),
            };
            std::thread::Builder::new()
                .name(format!("conn-{task_id}"))
                .spawn(move || w.run(rx, &shared))
                .ok()
        };
        Self {
            id,
            task_id,
            addr,
            builder: BatchBuilder::with_capacity(settings.batch_bytes),
            batch_bytes: settings.batch_bytes,
            tx: Some(tx),
            shared,
            handle,
            pending_since: None,
            traced_sent_ns: 0,
        }
    }

    /// Appends a record to the current batch, flushing it when full (which blocks while
    /// the queue is full: back-pressure).
    #[inline]
    pub fn push(&mut self, key: &[u8], value: &[u8], event_time: u64, trace: Option<TraceContext>) {
        if self.builder.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.builder.push(key, value, event_time, trace);
        if self.builder.len() >= self.batch_bytes {
            self.flush();
        }
    }

    /// Hands the current batch to the writer thread, blocking while its queue is full.
    pub fn flush(&mut self) {
        if self.builder.is_empty() {
            return;
        }
        if self.builder.holds_traced() {
            // Taken before the hand-off, which may wake the writer thread in our place.
            self.traced_sent_ns = crate::clock::wall_ns();
        }
        let frame = self.builder.finish(self.batch_bytes);
        self.pending_since = None;
        if let Some(tx) = &self.tx {
            self.shared.enqueued();
            match tx.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(frame)) => {
                    if tx.send(frame).is_err() {
                        self.shared.dequeued();
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.shared.dequeued();
                }
            }
        }
    }

    /// Flushes the current batch and queues marker `seq` behind it (blocking while the
    /// queue is full). Returns false when the writer has gone (the marker is lost).
    pub fn push_marker(&mut self, seq: u64) -> bool {
        self.flush();
        match &self.tx {
            Some(tx) => tx.send(marker_frame(seq)).is_ok(),
            None => false,
        }
    }

    /// Flushes if the oldest record in the current batch has waited longer than `linger`.
    #[inline]
    pub fn flush_if_lingering(&mut self, now: Instant, linger: Duration) {
        if let Some(since) = self.pending_since
            && now.duration_since(since) >= linger
        {
            self.flush();
        }
    }

    /// True while the current (unsent) batch holds a traced record.
    pub fn holds_traced(&self) -> bool {
        self.builder.holds_traced()
    }

    /// When the last batch holding a traced record was handed on, once.
    pub fn take_traced_sent_ns(&mut self) -> Option<u64> {
        let t = std::mem::take(&mut self.traced_sent_ns);
        (t != 0).then_some(t)
    }

    /// True while connected.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Batches waiting to be written.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Flushes, closes the queue and returns the writer thread, which drains what is
    /// queued and then disconnects.
    pub fn close(mut self) -> Option<JoinHandle<()>> {
        self.flush();
        self.tx = None;
        self.handle.take()
    }
}

fn connect(addr: &str, hello: &[u8], auth: Option<&DataplaneAuth>) -> std::io::Result<TcpStream> {
    let sock: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(1))?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    match auth {
        Some(a) => {
            let body = hello.get(5..).unwrap_or_default();
            if let Err(e) = a.connect(&mut s, body) {
                let _ = s.shutdown(std::net::Shutdown::Both);
                return Err(std::io::Error::other(e));
            }
        }
        None => s.write_all(hello)?,
    }
    Ok(s)
}

fn batch_records(frame: &[u8]) -> u64 {
    frame
        .get(5..9)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .unwrap_or(0)
}

/// Markers written on one TCP connection and not answered yet.
///
/// Once the acknowledgement reader has ended (the downstream closed or broke the
/// connection), nothing more can be answered on it: a marker written after that would
/// wait for an answer that never comes, so [`Outstanding::insert`] refuses it.
#[derive(Default)]
struct Outstanding {
    state: Mutex<OutstandingState>,
}

#[derive(Default)]
struct OutstandingState {
    seqs: HashSet<u64>,
    reader_ended: bool,
}

impl Outstanding {
    /// Records a marker about to be written; false once no answer can come any more.
    fn insert(&self, seq: u64) -> bool {
        match self.state.lock() {
            Ok(mut s) if !s.reader_ended => {
                s.seqs.insert(seq);
                true
            }
            _ => false,
        }
    }

    fn remove(&self, seq: u64) -> bool {
        self.state
            .lock()
            .map(|mut s| s.seqs.remove(&seq))
            .unwrap_or(false)
    }

    fn drain(&self) -> Vec<u64> {
        self.state
            .lock()
            .map(|mut s| s.seqs.drain().collect())
            .unwrap_or_default()
    }

    /// The reader has ended: what is owed, and from now on nothing is accepted.
    fn close(&self) -> Vec<u64> {
        self.state
            .lock()
            .map(|mut s| {
                s.reader_ended = true;
                s.seqs.drain().collect()
            })
            .unwrap_or_default()
    }
}

/// One TCP connection and, under at-least-once, what it owes.
struct Stream {
    tcp: TcpStream,
    outstanding: Arc<Outstanding>,
}

struct Writer {
    id: u64,
    addr: String,
    hello: Vec<u8>,
    auth: Option<DataplaneAuth>,
    dropped: Counter,
    acks: Option<Sender<ConnAck>>,
}

impl Writer {
    fn report(&self, seq: u64, ok: bool) {
        if let Some(a) = &self.acks {
            let _ = a.send(ConnAck {
                conn: self.id,
                seq,
                ok,
            });
        }
    }

    /// Connects; under at-least-once also starts the thread reading acknowledgements.
    fn open(&self, shared: &Arc<ConnShared>) -> std::io::Result<Stream> {
        let tcp = connect(&self.addr, &self.hello, self.auth.as_ref())?;
        let outstanding = Arc::new(Outstanding::default());
        if let Some(acks) = &self.acks {
            let read = tcp.try_clone()?;
            let outstanding = outstanding.clone();
            let acks = acks.clone();
            let shared = shared.clone();
            let id = self.id;
            std::thread::Builder::new()
                .name("conn-acks".into())
                .spawn(move || read_acks(id, read, &outstanding, &acks, &shared))?;
        }
        Ok(Stream { tcp, outstanding })
    }

    /// A stream failed: whatever it still owed is failed, and so is the next marker
    /// (records written to it may be lost).
    fn broken(&self, stream: Stream, shared: &ConnShared) {
        shared.connected.store(false, Ordering::Relaxed);
        shared.lost.store(true, Ordering::Relaxed);
        let _ = stream.tcp.shutdown(std::net::Shutdown::Both);
        for seq in stream.outstanding.drain() {
            self.report(seq, false);
        }
    }

    fn run(&self, rx: Receiver<Vec<u8>>, shared: &Arc<ConnShared>) {
        let addr = &self.addr;
        let mut backoff = Duration::from_millis(20);
        let mut stream = match self.open(shared) {
            Ok(s) => {
                shared.connected.store(true, Ordering::Relaxed);
                Some(s)
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot connect to downstream");
                None
            }
        };
        while let Ok(frame) = rx.recv() {
            let marker = frame.get(4) == Some(&FRAME_MARKER);
            let seq = if marker {
                frame
                    .get(5..13)
                    .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .unwrap_or(0)
            } else {
                shared.dequeued();
                0
            };
            if marker && shared.lost.swap(false, Ordering::Relaxed) {
                // Records before this marker were dropped: it must not be acknowledged.
                self.report(seq, false);
                continue;
            }
            let mut attempts = 0;
            loop {
                if stream.is_none() {
                    match self.open(shared) {
                        Ok(s) => {
                            tracing::info!(%addr, "connected to downstream");
                            shared.connected.store(true, Ordering::Relaxed);
                            backoff = Duration::from_millis(20);
                            stream = Some(s);
                        }
                        Err(e) => {
                            tracing::debug!(%addr, error = %e, "reconnect failed");
                            if marker {
                                self.report(seq, false);
                            } else {
                                self.dropped.inc_by(batch_records(&frame));
                                shared.lost.store(true, Ordering::Relaxed);
                            }
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            break;
                        }
                    }
                }
                let Some(s) = stream.as_mut() else { break };
                if marker && !s.outstanding.insert(seq) {
                    // The downstream already closed its side: no answer can come.
                    tracing::warn!(%addr, seq, "downstream closed the connection; failing the marker");
                    self.report(seq, false);
                    if let Some(s) = stream.take() {
                        self.broken(s, shared);
                    }
                    break;
                }
                match s.tcp.write_all(&frame) {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "downstream connection failed");
                        if let Some(s) = stream.take() {
                            self.broken(s, shared);
                        }
                        if marker {
                            // Reported failed with the rest of what the stream owed.
                            break;
                        }
                        attempts += 1;
                        if attempts > 1 {
                            self.dropped.inc_by(batch_records(&frame));
                            break;
                        }
                    }
                }
            }
        }
        if let Some(s) = stream {
            // Only the write side: acknowledgements of the last markers still come back.
            let _ = s.tcp.shutdown(std::net::Shutdown::Write);
        }
        shared.connected.store(false, Ordering::Relaxed);
    }
}

/// Reads acknowledgements until the downstream closes the connection; whatever is still
/// owed then is failed.
fn read_acks(
    id: u64,
    tcp: TcpStream,
    outstanding: &Outstanding,
    acks: &Sender<ConnAck>,
    shared: &ConnShared,
) {
    let mut r = BufReader::with_capacity(1024, tcp);
    loop {
        match read_frame(&mut r) {
            Ok(Some((FRAME_ACK, body))) => {
                if let Ok((seq, ok)) = ack_body(&body)
                    && outstanding.remove(seq)
                {
                    let _ = acks.send(ConnAck { conn: id, seq, ok });
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let owed = outstanding.close();
    if !owed.is_empty() {
        shared.lost.store(true, Ordering::Relaxed);
    }
    for seq in owed {
        let _ = acks.send(ConnAck {
            conn: id,
            seq,
            ok: false,
        });
    }
}
