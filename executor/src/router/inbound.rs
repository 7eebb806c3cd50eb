//! The data port: accepts upstream connections and feeds their batches into the
//! operator's bounded input queue (a full queue stops reading, which back-pressures the
//! upstream over TCP). A connection is read only once its peer passed the handshake
//! of [`crate::auth`]; nothing a peer sends before that reaches the operator.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;

use bytes::Bytes;
use concord_sdk::Record;
use prometheus_client::metrics::gauge::Gauge;

use crate::auth::{DataplaneAuth, MAX_HANDSHAKE_FRAME};
use crate::clock;
use crate::delivery::AckTo;
use crate::wire::{FRAME_BATCH, FRAME_HELLO, FRAME_MARKER, marker_seq, read_frame, read_frame_max};

/// Connections allowed in their handshake at once; more are closed at once (each one
/// holds a thread for up to [`crate::auth::HANDSHAKE_TIMEOUT`]).
pub const MAX_PENDING_HANDSHAKES: usize = 64;

/// A unit of work for the operator thread.
#[derive(Debug)]
pub enum InMsg {
    /// A batch frame body from an upstream operator.
    Batch {
        /// Upstream operator name (from its hello).
        from: Arc<str>,
        /// Batch body: record count and records.
        body: Bytes,
        /// Wall-clock ns when the frame was read.
        received_ns: u64,
    },
    /// Records injected by a source operator's own I/O thread.
    Ingest(Vec<Record>),
    /// An at-least-once marker: everything before it (from its sender) has been queued.
    Marker(AckTo),
}

/// Accepts connections on `listener` until the process exits.
/// `queue` counts batches waiting in the input queue. `auth` is the topology's secret;
/// `None` (only with `--insecure-no-dataplane-auth`) takes any peer at its word.
pub fn spawn_listener(
    listener: TcpListener,
    tx: SyncSender<InMsg>,
    queue: Gauge,
    auth: Option<DataplaneAuth>,
) -> std::io::Result<()> {
    let pending = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("data-accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        if pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_HANDSHAKES {
                            pending.fetch_sub(1, Ordering::AcqRel);
                            if let Some(a) = &auth {
                                a.refused(&stream, "too_many_handshakes");
                            }
                            continue;
                        }
                        let tx = tx.clone();
                        let queue = queue.clone();
                        let auth = auth.clone();
                        let in_handshake = pending.clone();
                        let spawned =
                            std::thread::Builder::new()
                                .name("data-read".into())
                                .spawn(move || {
                                    if let Err(e) =
                                        read_loop(stream, &tx, &queue, auth, &in_handshake)
                                    {
                                        tracing::debug!(error = %e, "upstream connection ended");
                                    }
                                });
                        if spawned.is_err() {
                            pending.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
            }
        })?;
    Ok(())
}

/// The peer's hello JSON, once it is authenticated (or, insecure, its `HELLO` frame).
fn handshake(stream: &mut TcpStream, auth: Option<&DataplaneAuth>) -> std::io::Result<Vec<u8>> {
    match auth {
        Some(a) => a.accept(stream).map_err(std::io::Error::other),
        None => {
            stream.set_read_timeout(Some(crate::auth::HANDSHAKE_TIMEOUT))?;
            let hello = match read_frame_max(stream, MAX_HANDSHAKE_FRAME)? {
                Some((FRAME_HELLO, body)) => body,
                _ => return Err(std::io::Error::other("connection did not start with hello")),
            };
            stream.set_read_timeout(None)?;
            Ok(hello)
        }
    }
}

fn read_loop(
    mut stream: TcpStream,
    tx: &SyncSender<InMsg>,
    queue: &Gauge,
    auth: Option<DataplaneAuth>,
    pending: &AtomicUsize,
) -> std::io::Result<()> {
    let peer = stream.peer_addr().ok();
    let hello = handshake(&mut stream, auth.as_ref());
    pending.fetch_sub(1, Ordering::AcqRel);
    let hello = match hello {
        Ok(h) => h,
        Err(e) => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Err(e);
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&hello)
        .map_err(|e| std::io::Error::other(format!("bad hello: {e}")))?;
    let from: Arc<str> = Arc::from(
        v.get("operator")
            .and_then(|o| o.as_str())
            .unwrap_or("unknown"),
    );
    // Small buffer: frame headers are buffered, large bodies are read straight into
    // their own allocation without an extra copy.
    let mut r = BufReader::with_capacity(16 << 10, stream);
    tracing::debug!(?peer, %from, "upstream connected");
    // Acknowledgements go back on this socket (created at the first marker).
    let mut reply: Option<Arc<std::sync::Mutex<TcpStream>>> = None;
    while let Some((kind, body)) = read_frame(&mut r)? {
        let msg = match kind {
            FRAME_BATCH => InMsg::Batch {
                from: from.clone(),
                body: Bytes::from(body),
                received_ns: clock::wall_ns(),
            },
            FRAME_MARKER => {
                let seq = marker_seq(&body).map_err(std::io::Error::other)?;
                let writer = match &reply {
                    Some(w) => w.clone(),
                    None => {
                        let s = r.get_ref().try_clone()?;
                        s.set_write_timeout(Some(std::time::Duration::from_secs(5)))?;
                        let w = Arc::new(std::sync::Mutex::new(s));
                        reply = Some(w.clone());
                        w
                    }
                };
                InMsg::Marker(AckTo::Upstream { seq, reply: writer })
            }
            _ => continue,
        };
        queue.inc();
        if tx.send(msg).is_err() {
            queue.dec();
            break;
        }
    }
    Ok(())
}
