//! What a `kafka-source` instance may commit, and where it rewinds to.
//!
//! Pure bookkeeping, driven by the source's reader thread: offsets read per partition,
//! epochs (the positions when a marker was sent) and the markers' outcomes. A partition's
//! *safe* offset is the first one not yet known to be fully processed: it is what is
//! committed, and where reading restarts when a marker fails.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A topic partition.
pub type Tp = (String, i32);

struct Epoch {
    seq: u64,
    /// Next offset to read per partition when the marker was sent.
    end: BTreeMap<Tp, i64>,
    sent: Instant,
    acked: bool,
}

/// What the reader must do after an acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub enum AckAction {
    /// Nothing new to commit.
    None,
    /// Commit these offsets (next offset to read, per partition).
    Commit(BTreeMap<Tp, i64>),
    /// Seek these partitions back and read again; `replayed` records will be read twice.
    Rewind {
        seeks: BTreeMap<Tp, i64>,
        replayed: u64,
    },
}

/// Offsets and epochs of one source instance.
#[derive(Default)]
pub struct OffsetTracker {
    position: BTreeMap<Tp, i64>,
    safe: BTreeMap<Tp, i64>,
    epochs: VecDeque<Epoch>,
    next_seq: u64,
    unmarked: bool,
}

impl OffsetTracker {
    /// A record at `offset` of `tp` was handed to the operator.
    pub fn read(&mut self, tp: &Tp, offset: i64) {
        match self.position.get_mut(tp) {
            Some(p) => {
                if offset < *p {
                    // Reading went backwards without our seek: the partition came back
                    // from the group at an older committed offset, or the topic was
                    // created anew. Epochs in flight no longer describe what is read.
                    self.epochs.clear();
                }
                *p = offset + 1;
            }
            None => {
                self.position.insert(tp.clone(), offset + 1);
            }
        }
        match self.safe.get_mut(tp) {
            Some(s) if offset < *s => *s = offset,
            Some(_) => {}
            None => {
                self.safe.insert(tp.clone(), offset);
            }
        }
        self.unmarked = true;
    }

    /// True when records were read since the last marker.
    pub fn has_unmarked(&self) -> bool {
        self.unmarked
    }

    /// A marker is sent behind everything read so far; returns its sequence number.
    pub fn mark(&mut self, now: Instant) -> u64 {
        self.next_seq += 1;
        self.epochs.push_back(Epoch {
            seq: self.next_seq,
            end: self.position.clone(),
            sent: now,
            acked: false,
        });
        self.unmarked = false;
        self.next_seq
    }

    /// Markers sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.epochs.iter().filter(|e| !e.acked).count()
    }

    /// The outcome of marker `seq`. Epochs are committed in order: an acknowledged epoch
    /// behind an unanswered one waits for it.
    pub fn ack(&mut self, seq: u64, ok: bool) -> AckAction {
        let Some(i) = self.epochs.iter().position(|e| e.seq == seq) else {
            // From before a rewind: its epoch no longer exists.
            return AckAction::None;
        };
        if !ok {
            return self.rewind();
        }
        self.epochs[i].acked = true;
        let mut advanced = false;
        while self.epochs.front().is_some_and(|e| e.acked) {
            if let Some(e) = self.epochs.pop_front() {
                for (tp, off) in e.end {
                    // Only partitions still held (a revoked one is another reader's now).
                    if let Some(s) = self.safe.get_mut(&tp)
                        && off > *s
                    {
                        *s = off;
                        advanced = true;
                    }
                }
            }
        }
        if advanced {
            AckAction::Commit(self.safe.clone())
        } else {
            AckAction::None
        }
    }

    /// The oldest unanswered marker has waited longer than `timeout`.
    pub fn timed_out(&self, now: Instant, timeout: Duration) -> bool {
        self.epochs
            .iter()
            .find(|e| !e.acked)
            .is_some_and(|e| now.duration_since(e.sent) > timeout)
    }

    /// Forgets every epoch and moves each partition back to its safe offset.
    pub fn rewind(&mut self) -> AckAction {
        self.epochs.clear();
        self.unmarked = false;
        let mut seeks = BTreeMap::new();
        let mut replayed = 0u64;
        for (tp, pos) in self.position.iter_mut() {
            if let Some(safe) = self.safe.get(tp)
                && *pos > *safe
            {
                replayed += (*pos - *safe) as u64;
                *pos = *safe;
                seeks.insert(tp.clone(), *safe);
            }
        }
        AckAction::Rewind { seeks, replayed }
    }

    /// The partition was revoked: it is no longer ours to commit or rewind.
    pub fn revoke(&mut self, tp: &Tp) {
        self.position.remove(tp);
        self.safe.remove(tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("t".to_owned(), p)
    }

    #[test]
    fn acknowledged_epochs_commit_the_next_offset_in_order() {
        let mut t = OffsetTracker::default();
        let now = Instant::now();
        t.read(&tp(0), 10);
        t.read(&tp(0), 11);
        let a = t.mark(now);
        t.read(&tp(0), 12);
        t.read(&tp(1), 5);
        let b = t.mark(now);
        // The later epoch first: nothing may be committed before the earlier one.
        assert_eq!(t.ack(b, true), AckAction::None);
        let expect: BTreeMap<Tp, i64> = [(tp(0), 13), (tp(1), 6)].into();
        assert_eq!(t.ack(a, true), AckAction::Commit(expect));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_failed_epoch_rewinds_every_partition_to_its_safe_offset() {
        let mut t = OffsetTracker::default();
        let now = Instant::now();
        t.read(&tp(0), 0);
        let a = t.mark(now);
        assert!(matches!(t.ack(a, true), AckAction::Commit(_)));
        t.read(&tp(0), 1);
        t.read(&tp(0), 2);
        t.read(&tp(1), 7);
        let b = t.mark(now);
        let seeks: BTreeMap<Tp, i64> = [(tp(0), 1), (tp(1), 7)].into();
        assert_eq!(t.ack(b, false), AckAction::Rewind { seeks, replayed: 3 });
        // An answer for an epoch from before the rewind is ignored.
        assert_eq!(t.ack(b, true), AckAction::None);
        // Reading again from the safe offsets continues normally.
        t.read(&tp(0), 1);
        let c = t.mark(now);
        let expect: BTreeMap<Tp, i64> = [(tp(0), 2), (tp(1), 7)].into();
        assert_eq!(t.ack(c, true), AckAction::Commit(expect));
    }

    #[test]
    fn revoked_partitions_are_neither_committed_nor_rewound() {
        let mut t = OffsetTracker::default();
        let now = Instant::now();
        t.read(&tp(0), 3);
        t.read(&tp(1), 3);
        let a = t.mark(now);
        t.revoke(&tp(1));
        let expect: BTreeMap<Tp, i64> = [(tp(0), 4)].into();
        assert_eq!(t.ack(a, true), AckAction::Commit(expect));
        t.read(&tp(0), 4);
        let seeks: BTreeMap<Tp, i64> = [(tp(0), 4)].into();
        assert_eq!(t.rewind(), AckAction::Rewind { seeks, replayed: 1 });
    }

    #[test]
    fn reading_backwards_lowers_the_safe_offset_and_forgets_stale_epochs() {
        let mut t = OffsetTracker::default();
        let now = Instant::now();
        for o in 0..100 {
            t.read(&tp(0), o);
        }
        let a = t.mark(now);
        assert!(matches!(t.ack(a, true), AckAction::Commit(_)));
        t.read(&tp(0), 100);
        let stale = t.mark(now);
        // The topic starts again at 0 (an empty broker, or an older commit).
        t.read(&tp(0), 0);
        t.read(&tp(0), 1);
        assert_eq!(
            t.ack(stale, true),
            AckAction::None,
            "epoch from before the jump"
        );
        let seeks: BTreeMap<Tp, i64> = [(tp(0), 0)].into();
        assert_eq!(t.rewind(), AckAction::Rewind { seeks, replayed: 2 });
    }

    #[test]
    fn timeout_counts_from_the_oldest_unanswered_marker() {
        let mut t = OffsetTracker::default();
        let start = Instant::now();
        t.read(&tp(0), 0);
        t.mark(start);
        assert!(!t.timed_out(start + Duration::from_secs(1), Duration::from_secs(5)));
        assert!(t.timed_out(start + Duration::from_secs(6), Duration::from_secs(5)));
        assert!(!t.has_unmarked());
    }
}
