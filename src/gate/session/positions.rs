//! Which polled records may still be decided, as plain state. A poll hands the loop a batch of
//! records; while the loop works through it, a partition can move under it: an abort rewinds
//! it, a registry pause seeks it back, a revocation gives it up. The batch's remaining records
//! of that partition are then stale: they come again from where the partition now stands, and
//! deciding one would commit an offset past the records between the rewind and it (an
//! exactly-once loss). Every move is stamped; a record is current only when its partition has
//! not moved since the poll that returned it, wherever in the loop the move happened.

use std::collections::HashMap;

/// When a batch was polled, in the sequence of partition moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollStamp(u64);

/// The moves of each partition's consumer position since the session began.
#[derive(Debug, Default)]
pub struct FetchPositions {
    moves: u64,
    last_move: HashMap<i32, u64>,
}

impl FetchPositions {
    /// Marks a poll: records it returns are current until their partition moves.
    pub fn polled(&self) -> PollStamp {
        PollStamp(self.moves)
    }

    /// Notes that `partition`'s position moved (sought back, or given up).
    pub fn moved(&mut self, partition: i32) {
        self.moves += 1;
        self.last_move.insert(partition, self.moves);
    }

    /// True when `partition` has not moved since the poll stamped `at`.
    pub fn is_current(&self, partition: i32, at: PollStamp) -> bool {
        // Nothing moved since the poll (the usual case): no lookup per record.
        self.moves == at.0 || self.last_move.get(&partition).is_none_or(|m| *m <= at.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_after_the_poll_makes_only_that_partitions_records_stale() {
        let mut p = FetchPositions::default();
        let batch = p.polled();
        assert!(p.is_current(0, batch) && p.is_current(1, batch));
        p.moved(0);
        assert!(
            !p.is_current(0, batch),
            "the rewound partition's polled records are stale"
        );
        assert!(p.is_current(1, batch), "other partitions are untouched");
        let next = p.polled();
        assert!(
            p.is_current(0, next),
            "records of the next poll are current again"
        );
    }

    #[test]
    fn a_move_before_the_poll_does_not_make_its_records_stale() {
        let mut p = FetchPositions::default();
        p.moved(2);
        p.moved(3);
        let batch = p.polled();
        assert!(p.is_current(2, batch) && p.is_current(3, batch));
        p.moved(3);
        assert!(p.is_current(2, batch));
        assert!(!p.is_current(3, batch));
    }

    #[test]
    fn a_stamp_stays_stale_for_a_partition_that_moved_twice() {
        let mut p = FetchPositions::default();
        let first = p.polled();
        p.moved(5);
        let second = p.polled();
        p.moved(5);
        assert!(!p.is_current(5, first));
        assert!(!p.is_current(5, second));
        assert!(p.is_current(5, p.polled()));
    }
}
