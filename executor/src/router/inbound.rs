//! The data port: accepts upstream connections and feeds their batches into the
//! operator's bounded input queue (a full queue stops reading, which back-pressures the
//! upstream over TCP).

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use bytes::Bytes;
use concord_sdk::Record;
use prometheus_client::metrics::gauge::Gauge;

use crate::clock;
use crate::delivery::AckTo;
use crate::wire::{FRAME_BATCH, FRAME_HELLO, FRAME_MARKER, marker_seq, read_frame};

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
/// `queue` counts batches waiting in the input queue.
pub fn spawn_listener(
    listener: TcpListener,
    tx: SyncSender<InMsg>,
    queue: Gauge,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("data-accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        let tx = tx.clone();
                        let queue = queue.clone();
                        let _ =
                            std::thread::Builder::new()
                                .name("data-read".into())
                                .spawn(move || {
                                    if let Err(e) = read_loop(stream, &tx, &queue) {
                                        tracing::debug!(error = %e, "upstream connection ended");
                                    }
                                });
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
            }
        })?;
    Ok(())
}

fn read_loop(stream: TcpStream, tx: &SyncSender<InMsg>, queue: &Gauge) -> std::io::Result<()> {
    let peer = stream.peer_addr().ok();
    // Small buffer: frame headers are buffered, large bodies are read straight into
    // their own allocation without an extra copy.
    let mut r = BufReader::with_capacity(16 << 10, stream);
    let from: Arc<str> = match read_frame(&mut r)? {
        Some((FRAME_HELLO, body)) => {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| std::io::Error::other(format!("bad hello: {e}")))?;
            Arc::from(
                v.get("operator")
                    .and_then(|o| o.as_str())
                    .unwrap_or("unknown"),
            )
        }
        _ => return Err(std::io::Error::other("connection did not start with hello")),
    };
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
