//! One outbound connection to a downstream instance: a bounded queue of encoded batches
//! drained by a writer thread, with reconnect on failure.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_sdk::TraceContext;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::wire::BatchBuilder;

/// State shared between the operator thread and a connection's writer thread.
#[derive(Debug, Default)]
pub struct ConnShared {
    /// True while a TCP connection is established.
    pub connected: AtomicBool,
    /// Batches waiting in the queue.
    pub queued: AtomicUsize,
    /// The executor's `concord_output_queue_batches` (all connections), kept live.
    pub gauge: Gauge,
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
    /// The hello frame sent on every (re)connect.
    pub hello: Vec<u8>,
    /// Counter of records dropped because the downstream could not be reached.
    pub dropped: Counter,
}

/// An outbound connection as seen by the operator thread.
pub struct Conn {
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
        let (tx, rx) = sync_channel(settings.queue_batches.max(1));
        let shared = Arc::new(ConnShared {
            gauge: queue_gauge,
            ..ConnShared::default()
        });
        let handle = {
            let shared = shared.clone();
            let addr = addr.clone();
            let hello = settings.hello.clone();
            let dropped = settings.dropped.clone();
            std::thread::Builder::new()
                .name(format!("conn-{task_id}"))
                .spawn(move || writer_loop(&addr, &hello, rx, &shared, &dropped))
                .ok()
        };
        Self {
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

fn connect(addr: &str, hello: &[u8]) -> std::io::Result<TcpStream> {
    let sock: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(1))?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(hello)?;
    Ok(s)
}

fn batch_records(frame: &[u8]) -> u64 {
    frame
        .get(5..9)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .unwrap_or(0)
}

fn writer_loop(
    addr: &str,
    hello: &[u8],
    rx: Receiver<Vec<u8>>,
    shared: &ConnShared,
    dropped: &Counter,
) {
    let mut backoff = Duration::from_millis(20);
    let mut stream = match connect(addr, hello) {
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
        shared.dequeued();
        let mut attempts = 0;
        loop {
            if stream.is_none() {
                match connect(addr, hello) {
                    Ok(s) => {
                        tracing::info!(%addr, "connected to downstream");
                        shared.connected.store(true, Ordering::Relaxed);
                        backoff = Duration::from_millis(20);
                        stream = Some(s);
                    }
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "reconnect failed");
                        dropped.inc_by(batch_records(&frame));
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        break;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { break };
            match s.write_all(&frame) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "downstream connection failed");
                    shared.connected.store(false, Ordering::Relaxed);
                    stream = None;
                    attempts += 1;
                    if attempts > 1 {
                        dropped.inc_by(batch_records(&frame));
                        break;
                    }
                }
            }
        }
    }
    if let Some(s) = stream {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    shared.connected.store(false, Ordering::Relaxed);
}
