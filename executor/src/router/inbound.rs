//! The data port: accepts upstream connections and feeds their batches into the
//! operator's bounded input queue (a full queue stops reading, which back-pressures the
//! upstream over TCP).

use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use bytes::Bytes;
use concord_sdk::Record;
use prometheus_client::metrics::gauge::Gauge;

use crate::clock;
use crate::wire::{FRAME_BATCH, FRAME_HELLO, MAX_FRAME};

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

fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut hdr = [0u8; 5];
    match r.read_exact(&mut hdr) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if !(1..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::other(format!("bad frame length {len}")));
    }
    // Read into spare capacity (no zero-filling of up to 64 KiB per frame).
    let mut body = Vec::with_capacity(len - 1);
    let got = r.by_ref().take((len - 1) as u64).read_to_end(&mut body)?;
    if got != len - 1 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((hdr[4], body)))
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
    while let Some((kind, body)) = read_frame(&mut r)? {
        if kind != FRAME_BATCH {
            continue;
        }
        let msg = InMsg::Batch {
            from: from.clone(),
            body: Bytes::from(body),
            received_ns: clock::wall_ns(),
        };
        queue.inc();
        if tx.send(msg).is_err() {
            queue.dec();
            break;
        }
    }
    Ok(())
}
