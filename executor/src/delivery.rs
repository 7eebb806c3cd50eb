//! At-least-once delivery: markers and their acknowledgements (`docs/delivery.md`).
//!
//! A source that can replay (`kafka-source`) puts a marker into its operator's input
//! after the records it read. Markers travel in order with the records. An operator that
//! has processed a marker (so everything before it on that input has been processed and
//! its output handed to the router) sends a marker of its own on every downstream
//! connection ([`Checkpoints::forward`]); when every one of those is acknowledged, it
//! acknowledges the markers it forwarded for. An operator without consumers
//! acknowledges once its own output is durable ([`concord_sdk::Operator::checkpoint`]).
//! Any loss on the way (a connection that broke, a batch that could not be written, a
//! record with no instance to go to) fails the markers that cover it, and the source
//! rewinds to its last acknowledged position.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire::ack_frame;

/// A forwarded marker not fully acknowledged after this is failed (its source times out
/// and rewinds earlier; this only bounds memory).
const FORWARD_EXPIRY: Duration = Duration::from_secs(120);

/// Where the acknowledgement of one marker goes.
#[derive(Debug)]
pub enum AckTo {
    /// The upstream connection the marker came in on (answered with an ACK frame).
    Upstream {
        /// The upstream's marker sequence number.
        seq: u64,
        /// The write side of that connection.
        reply: Arc<Mutex<TcpStream>>,
    },
    /// The source operator's own reader, which commits its position on `true` and
    /// rewinds on `false`.
    Local {
        /// The source's epoch number.
        seq: u64,
        /// Its acknowledgement channel.
        reply: Sender<(u64, bool)>,
    },
}

impl AckTo {
    /// Sends the outcome. A closed connection or channel is ignored: the other side has
    /// gone and treats every unanswered marker as failed.
    pub fn send(self, ok: bool) {
        match self {
            AckTo::Upstream { seq, reply } => {
                let frame = ack_frame(seq, ok);
                let written = match reply.lock() {
                    Ok(mut s) => s.write_all(&frame),
                    Err(poisoned) => poisoned.into_inner().write_all(&frame),
                };
                if let Err(e) = written {
                    tracing::debug!(error = %e, seq, "acknowledgement not delivered");
                }
            }
            AckTo::Local { seq, reply } => {
                let _ = reply.send((seq, ok));
            }
        }
    }
}

/// The answer for one marker sent on a downstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// The connection's id ([`crate::router::conn::Conn::id`]).
    pub conn: u64,
    /// The marker's sequence number.
    pub seq: u64,
    /// False when the records before the marker may not all have been processed.
    pub ok: bool,
}

struct Forward {
    waiting: HashSet<(u64, u64)>,
    origins: Vec<AckTo>,
    since: Instant,
}

/// Outcome counters, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Markers acknowledged as fully processed.
    pub acked: u64,
    /// Markers failed (their source replays).
    pub failed: u64,
}

/// The markers one operator has processed and forwarded, owned by its router.
pub struct Checkpoints {
    pending: Vec<AckTo>,
    forwards: HashMap<u64, Forward>,
    /// (connection, marker) -> forward it belongs to.
    index: HashMap<(u64, u64), u64>,
    /// Final markers of removed connections, required by the next forward.
    carry: Vec<(u64, u64)>,
    next_seq: u64,
    lost: Option<String>,
    acks: Receiver<ConnAck>,
    tally: Tally,
}

impl Checkpoints {
    /// Tracks markers; connections report on the sender paired with `acks`.
    pub fn new(acks: Receiver<ConnAck>) -> Self {
        Self {
            pending: Vec::new(),
            forwards: HashMap::new(),
            index: HashMap::new(),
            carry: Vec::new(),
            next_seq: 1,
            lost: None,
            acks,
            tally: Tally::default(),
        }
    }

    /// A fresh sequence number for a marker sent downstream.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// A marker this operator has processed, to be covered by the next forward.
    pub fn arrived(&mut self, ack: AckTo) {
        self.pending.push(ack);
    }

    /// True when processed markers wait to be forwarded.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Records were lost since the last forward (e.g. no instance to route to): the next
    /// forward fails.
    pub fn lost(&mut self, why: &str) {
        if self.lost.is_none() {
            self.lost = Some(why.to_owned());
        }
    }

    /// True while a removed connection's final marker waits for the next forward.
    pub fn has_carried(&self) -> bool {
        !self.carry.is_empty()
    }

    /// A removed connection's final marker, which the next forward also waits for.
    pub fn carry(&mut self, conn: u64, seq: u64) {
        self.carry.push((conn, seq));
    }

    /// Starts a forward of the pending markers: `sent` are the (connection, marker) pairs
    /// just queued downstream. Answers at once when nothing needs waiting for, or when
    /// records were lost.
    pub fn forward(&mut self, seq: u64, sent: Vec<(u64, u64)>) {
        if self.pending.is_empty() {
            return;
        }
        let origins = std::mem::take(&mut self.pending);
        if let Some(why) = self.lost.take() {
            tracing::warn!(reason = %why, markers = origins.len(), "records lost: failing markers (sources replay)");
            // Carried final markers covered records up to here: this failure answers for
            // them, so a later forward does not wait for (or fail on) them again.
            self.carry.clear();
            self.finish(origins, false);
            return;
        }
        let mut waiting: HashSet<(u64, u64)> = sent.into_iter().collect();
        waiting.extend(self.carry.drain(..));
        if waiting.is_empty() {
            self.finish(origins, true);
            return;
        }
        for w in &waiting {
            self.index.insert(*w, seq);
        }
        self.forwards.insert(
            seq,
            Forward {
                waiting,
                origins,
                since: Instant::now(),
            },
        );
    }

    /// Answers every pending marker at once (an operator without consumers, after its
    /// checkpoint), failing them if records were lost.
    pub fn settle_local(&mut self, ok: bool) {
        let origins = std::mem::take(&mut self.pending);
        let ok = ok && self.lost.take().is_none();
        if !ok {
            self.carry.clear();
        }
        self.finish(origins, ok);
    }

    /// Applies the acknowledgements that arrived, and expires forwards that waited too long.
    pub fn poll(&mut self) {
        while let Ok(a) = self.acks.try_recv() {
            self.on_ack(a);
        }
        if self.forwards.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| now.duration_since(f.since) > FORWARD_EXPIRY)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            tracing::warn!(seq, "marker not acknowledged in time; failing it");
            self.complete(seq, false);
        }
    }

    fn on_ack(&mut self, a: ConnAck) {
        let Some(seq) = self.index.remove(&(a.conn, a.seq)) else {
            self.on_early_final_ack(a);
            return;
        };
        if !a.ok {
            self.complete(seq, false);
            return;
        }
        let done = match self.forwards.get_mut(&seq) {
            Some(f) => {
                f.waiting.remove(&(a.conn, a.seq));
                f.waiting.is_empty()
            }
            None => false,
        };
        if done {
            self.complete(seq, true);
        }
    }

    /// A removed connection's final marker answered before the forward that carries it:
    /// settle it now, so that forward neither waits for an answer already gone (until
    /// it expires) nor misses a failure.
    fn on_early_final_ack(&mut self, a: ConnAck) {
        let Some(i) = self.carry.iter().position(|c| *c == (a.conn, a.seq)) else {
            return; // an answer for a forward already settled
        };
        self.carry.swap_remove(i);
        if !a.ok {
            self.lost("a removed downstream failed its final marker");
        }
    }

    fn complete(&mut self, seq: u64, ok: bool) {
        if let Some(f) = self.forwards.remove(&seq) {
            for w in &f.waiting {
                self.index.remove(w);
            }
            self.finish(f.origins, ok);
        }
    }

    fn finish(&mut self, origins: Vec<AckTo>, ok: bool) {
        for o in origins {
            if ok {
                self.tally.acked += 1;
            } else {
                self.tally.failed += 1;
            }
            o.send(ok);
        }
    }

    /// Counts since the previous call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Forwards waiting for acknowledgements.
    pub fn in_flight(&self) -> usize {
        self.forwards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn local(seq: u64) -> (AckTo, Receiver<(u64, bool)>) {
        let (tx, rx) = channel();
        (AckTo::Local { seq, reply: tx }, rx)
    }

    #[test]
    fn forward_is_acknowledged_once_every_connection_answered() {
        let (tx, rx) = channel();
        let mut c = Checkpoints::new(rx);
        let (a, a_rx) = local(10);
        c.arrived(a);
        let seq = c.next_seq();
        c.forward(seq, vec![(1, seq), (2, seq)]);
        tx.send(ConnAck {
            conn: 1,
            seq,
            ok: true,
        })
        .expect("send");
        c.poll();
        assert!(
            a_rx.try_recv().is_err(),
            "one connection still owes an answer"
        );
        tx.send(ConnAck {
            conn: 2,
            seq,
            ok: true,
        })
        .expect("send");
        c.poll();
        assert_eq!(a_rx.try_recv().expect("answered"), (10, true));
        assert_eq!(c.in_flight(), 0);
        assert_eq!(
            c.take_tally(),
            Tally {
                acked: 1,
                failed: 0
            }
        );
    }

    #[test]
    fn one_failed_connection_fails_every_marker_it_covers() {
        let (tx, rx) = channel();
        let mut c = Checkpoints::new(rx);
        let (a, a_rx) = local(1);
        let (b, b_rx) = local(2);
        c.arrived(a);
        c.arrived(b);
        let seq = c.next_seq();
        c.forward(seq, vec![(1, seq), (2, seq)]);
        tx.send(ConnAck {
            conn: 2,
            seq,
            ok: false,
        })
        .expect("send");
        c.poll();
        assert_eq!(a_rx.try_recv().expect("answered"), (1, false));
        assert_eq!(b_rx.try_recv().expect("answered"), (2, false));
        // A late answer of the other connection changes nothing.
        tx.send(ConnAck {
            conn: 1,
            seq,
            ok: true,
        })
        .expect("send");
        c.poll();
        assert_eq!(
            c.take_tally(),
            Tally {
                acked: 0,
                failed: 2
            }
        );
    }

    #[test]
    fn lost_records_fail_the_next_forward_only() {
        let (_tx, rx) = channel();
        let mut c = Checkpoints::new(rx);
        let (a, a_rx) = local(1);
        c.arrived(a);
        c.lost("no instance of `counts`");
        let seq = c.next_seq();
        c.forward(seq, vec![]);
        assert_eq!(a_rx.try_recv().expect("answered"), (1, false));
        let (b, b_rx) = local(2);
        c.arrived(b);
        let seq = c.next_seq();
        c.forward(seq, vec![]);
        assert_eq!(b_rx.try_recv().expect("answered"), (2, true));
    }

    #[test]
    fn a_removed_connection_final_marker_is_waited_for() {
        let (tx, rx) = channel();
        let mut c = Checkpoints::new(rx);
        let close = c.next_seq();
        c.carry(7, close);
        let (a, a_rx) = local(1);
        c.arrived(a);
        let seq = c.next_seq();
        c.forward(seq, vec![(1, seq)]);
        tx.send(ConnAck {
            conn: 1,
            seq,
            ok: true,
        })
        .expect("send");
        c.poll();
        assert!(
            a_rx.try_recv().is_err(),
            "the closed connection has not answered"
        );
        tx.send(ConnAck {
            conn: 7,
            seq: close,
            ok: true,
        })
        .expect("send");
        c.poll();
        assert_eq!(a_rx.try_recv().expect("answered"), (1, true));
    }

    /// A forward that fails because records were lost answers for the final markers it
    /// carried: the next forward neither waits for them nor fails because of them.
    #[test]
    fn a_failed_forward_answers_for_the_final_markers_it_carried() {
        let (tx, rx) = channel();
        let mut c = Checkpoints::new(rx);
        let close = c.next_seq();
        c.carry(7, close);
        c.lost("no instance to route to");
        let (a, a_rx) = local(1);
        c.arrived(a);
        let seq = c.next_seq();
        c.forward(seq, vec![]);
        assert_eq!(a_rx.try_recv().expect("answered"), (1, false));
        // The removed connection answers late, and badly: nothing of it reaches the next.
        tx.send(ConnAck {
            conn: 7,
            seq: close,
            ok: false,
        })
        .expect("send");
        let (b, b_rx) = local(2);
        c.arrived(b);
        let seq = c.next_seq();
        c.forward(seq, vec![(1, seq)]);
        tx.send(ConnAck {
            conn: 1,
            seq,
            ok: true,
        })
        .expect("send");
        c.poll();
        assert_eq!(b_rx.try_recv().expect("answered"), (2, true));
    }

    /// The final marker of a removed connection may be answered before the next forward
    /// (the downstream was quick) or after it: either way the forward is settled by it.
    #[test]
    fn a_final_marker_answered_before_or_after_the_forward_settles_it() {
        for (early, ok) in [(true, true), (true, false), (false, true), (false, false)] {
            let (tx, rx) = channel();
            let mut c = Checkpoints::new(rx);
            let close = c.next_seq();
            c.carry(7, close);
            let final_ack = ConnAck {
                conn: 7,
                seq: close,
                ok,
            };
            if early {
                tx.send(final_ack).expect("send");
                c.poll();
            }
            let (a, a_rx) = local(1);
            c.arrived(a);
            let seq = c.next_seq();
            c.forward(seq, vec![(1, seq)]);
            tx.send(ConnAck {
                conn: 1,
                seq,
                ok: true,
            })
            .expect("send");
            if !early {
                c.poll();
                assert!(a_rx.try_recv().is_err(), "waits for the final marker");
                tx.send(final_ack).expect("send");
            }
            c.poll();
            assert_eq!(
                a_rx.try_recv()
                    .expect("answered without waiting for expiry"),
                (1, ok),
                "early {early}, ok {ok}"
            );
            assert_eq!(c.in_flight(), 0);
            // Nothing is left over to settle a later forward.
            let (b, b_rx) = local(2);
            c.arrived(b);
            let seq = c.next_seq();
            c.forward(seq, vec![]);
            assert_eq!(b_rx.try_recv().expect("answered"), (2, true));
        }
    }

    #[test]
    fn settle_local_answers_pending_markers() {
        let (_tx, rx) = channel();
        let mut c = Checkpoints::new(rx);
        let (a, a_rx) = local(3);
        c.arrived(a);
        c.settle_local(false);
        assert_eq!(a_rx.try_recv().expect("answered"), (3, false));
    }
}
