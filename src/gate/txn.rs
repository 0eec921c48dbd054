//! The open transaction's offset bookkeeping as plain state: which partitions it touched, the
//! offsets its commit carries, and where each partition rewinds to if it aborts. Pure, in the
//! manner of a sans-I/O protocol core: `session::commit` drives it and makes the rdkafka calls in the
//! order ADR 0002 fixes, and the rules that make exactly-once true are tested here without a
//! broker.
//!
//! The rules:
//! - a partition's committed offset is one past the last intent decided in the transaction,
//!   never past an undecided record;
//! - an abort rewinds every partition with decisions to the first offset the transaction decided
//!   there, and forgets the task of every touched partition (its state holds aborted effects);
//! - a partition that holds only governance events (audit links, no decision) still commits an
//!   offset, its fencing offset, so that a zombie instance is fenced by the group generation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the open transaction holds of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touched {
    /// Only governance events: no intent decided, so nothing to rewind the consumer to.
    GovernanceOnly,
    /// Intents decided at offsets `first..next`.
    Decided {
        /// First offset decided in this transaction: where an abort rewinds to.
        first: i64,
        /// One past the last offset decided: what the commit carries.
        next: i64,
    },
}

/// What to do with one touched partition after an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    /// The partition whose task must be forgotten (restored again from the committed log).
    pub partition: i32,
    /// Where to seek the consumer, when the transaction decided intents there.
    pub seek_to: Option<i64>,
}

/// The open transaction.
#[derive(Debug, Clone)]
pub struct OpenTxn {
    started: Instant,
    intents: usize,
    touched: BTreeMap<i32, Touched>,
}

impl OpenTxn {
    /// A transaction begun at `started`, touching nothing yet.
    pub fn new(started: Instant) -> OpenTxn {
        OpenTxn {
            started,
            intents: 0,
            touched: BTreeMap::new(),
        }
    }

    /// Notes a governance event (an audit link without a decision) on `partition`.
    pub fn governance(&mut self, partition: i32) {
        self.touched
            .entry(partition)
            .or_insert(Touched::GovernanceOnly);
    }

    /// Notes that the intent at `offset` of `partition` is decided in this transaction.
    /// Offsets of one partition arrive in increasing order (the consumer's order).
    pub fn decided(&mut self, partition: i32, offset: i64) {
        self.intents += 1;
        let entry = self
            .touched
            .entry(partition)
            .or_insert(Touched::GovernanceOnly);
        *entry = match *entry {
            Touched::GovernanceOnly => Touched::Decided {
                first: offset,
                next: offset + 1,
            },
            Touched::Decided { first, .. } => Touched::Decided {
                first,
                next: offset + 1,
            },
        };
    }

    /// Intents decided in this transaction.
    pub fn intents(&self) -> usize {
        self.intents
    }

    /// How long the transaction has been open.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// True when the transaction should be committed: `max_intents` decided or `max_age` open.
    pub fn is_due(&self, max_intents: usize, max_age: Duration) -> bool {
        self.intents >= max_intents || self.age() >= max_age
    }

    /// Every partition the transaction touched, in order.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.touched.keys().copied()
    }

    /// True when the transaction touched any of `partitions`.
    pub fn touches_any(&self, partitions: &[i32]) -> bool {
        partitions.iter().any(|p| self.touched.contains_key(p))
    }

    /// What the transaction holds of `partition`, if it touched it.
    pub fn touched(&self, partition: i32) -> Option<Touched> {
        self.touched.get(&partition).copied()
    }

    /// The consumed offsets the commit carries: one past the last decision of each partition
    /// with decisions, and the fencing offset of each governance-only partition (when it has
    /// one). `fencing(p)` gives it, e.g. from [`fencing_offset`].
    pub fn commit_offsets(&self, fencing: impl Fn(i32) -> Option<i64>) -> Vec<(i32, i64)> {
        self.touched
            .iter()
            .filter_map(|(p, t)| match t {
                Touched::Decided { next, .. } => Some((*p, *next)),
                Touched::GovernanceOnly => fencing(*p).map(|at| (*p, at)),
            })
            .collect()
    }

    /// After an abort: every touched partition's task is rolled back (or forgotten); those with
    /// decisions, if still `assigned`, seek back to the first offset this transaction decided.
    pub fn rewinds(&self, assigned: &[i32]) -> Vec<Rewind> {
        self.touched
            .iter()
            .map(|(p, t)| Rewind {
                partition: *p,
                seek_to: match t {
                    Touched::Decided { first, .. } if assigned.contains(p) => Some(*first),
                    _ => None,
                },
            })
            .collect()
    }
}

/// The offset a governance-only partition commits: past the task's last committed decision
/// (`last_decided`, -1 when none) and never behind where the group stood when the task was
/// created (`resume`); None when neither is known, so nothing is committed.
pub fn fencing_offset(last_decided: Option<i64>, resume: Option<i64>) -> Option<i64> {
    let decided = last_decided.map_or(-1, |d| d + 1);
    let at = decided.max(resume.unwrap_or(-1));
    (at >= 0).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn txn() -> OpenTxn {
        OpenTxn::new(Instant::now())
    }

    #[test]
    fn decisions_commit_one_past_the_last_and_rewind_to_the_first() {
        let mut t = txn();
        t.governance(0);
        t.decided(0, 10);
        t.decided(0, 11);
        t.decided(2, 5);
        assert_eq!(t.intents(), 3);
        assert_eq!(t.commit_offsets(|_| None), vec![(0, 12), (2, 6)]);
        assert_eq!(
            t.rewinds(&[0, 2]),
            vec![
                Rewind {
                    partition: 0,
                    seek_to: Some(10)
                },
                Rewind {
                    partition: 2,
                    seek_to: Some(5)
                },
            ]
        );
    }

    #[test]
    fn governance_only_partitions_carry_their_fencing_offset_and_never_seek() {
        let mut t = txn();
        t.governance(1);
        t.governance(3);
        assert_eq!(t.intents(), 0);
        let fencing = |p: i32| (p == 1).then_some(40);
        assert_eq!(t.commit_offsets(fencing), vec![(1, 40)]);
        assert!(t.rewinds(&[1, 3]).iter().all(|r| r.seek_to.is_none()));
        assert_eq!(t.rewinds(&[1, 3]).len(), 2, "both tasks are forgotten");
    }

    #[test]
    fn a_revoked_partition_is_forgotten_but_not_sought() {
        let mut t = txn();
        t.decided(4, 7);
        assert!(t.touches_any(&[9, 4]));
        assert!(!t.touches_any(&[9]));
        assert_eq!(
            t.rewinds(&[]),
            vec![Rewind {
                partition: 4,
                seek_to: None
            }]
        );
    }

    #[test]
    fn fencing_offset_is_past_the_last_decision_and_never_behind_the_group() {
        assert_eq!(fencing_offset(None, None), None);
        assert_eq!(fencing_offset(Some(-1), None), Some(0));
        assert_eq!(fencing_offset(Some(9), Some(4)), Some(10));
        assert_eq!(fencing_offset(Some(2), Some(30)), Some(30));
        assert_eq!(fencing_offset(None, Some(0)), Some(0));
    }

    #[test]
    fn due_by_size_or_age() {
        let mut t = OpenTxn::new(Instant::now() - Duration::from_secs(1));
        assert!(t.is_due(10, Duration::from_millis(500)));
        assert!(!t.is_due(10, Duration::from_secs(60)));
        for o in 0..10 {
            t.decided(0, o);
        }
        assert!(t.is_due(10, Duration::from_secs(60)));
    }

    /// One step of a transaction: a decision on a partition (the next offset of that
    /// partition's stream) or a governance event.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Decide(i32),
        Govern(i32),
    }

    fn steps() -> impl Strategy<Value = (Vec<i64>, Vec<Step>)> {
        (
            prop::collection::vec(0i64..1_000, 4),
            prop::collection::vec(
                prop_oneof![
                    4 => (0i32..4).prop_map(Step::Decide),
                    1 => (0i32..4).prop_map(Step::Govern)
                ],
                0..60,
            ),
        )
    }

    proptest! {
        /// Against a model: the commit never carries an offset past an undecided record (it is
        /// exactly one past the last decided one), an abort rewinds exactly to the first offset
        /// the transaction decided, and every touched partition is forgotten.
        #[test]
        fn offsets_follow_the_model((starts, steps) in steps()) {
            let mut t = txn();
            let mut position = starts.clone();
            let mut decided: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
            let mut touched = std::collections::BTreeSet::new();
            for s in &steps {
                match *s {
                    Step::Decide(p) => {
                        let o = position[p as usize];
                        position[p as usize] += 1;
                        t.decided(p, o);
                        decided.entry(p).or_default().push(o);
                        touched.insert(p);
                    }
                    Step::Govern(p) => {
                        t.governance(p);
                        touched.insert(p);
                    }
                }
            }
            prop_assert_eq!(t.intents(), decided.values().map(Vec::len).sum::<usize>());
            let fence = |p: i32| Some(1_000_000 + i64::from(p));
            for (p, at) in t.commit_offsets(fence) {
                match decided.get(&p) {
                    // Consecutive offsets were decided: the commit is the one after the last.
                    Some(list) => prop_assert_eq!(at, list[list.len() - 1] + 1),
                    None => prop_assert_eq!(at, 1_000_000 + i64::from(p)),
                }
            }
            prop_assert_eq!(t.commit_offsets(fence).len(), touched.len());
            let assigned = [0, 1, 2, 3];
            let rewinds = t.rewinds(&assigned);
            prop_assert_eq!(rewinds.len(), touched.len());
            for r in rewinds {
                prop_assert!(touched.contains(&r.partition));
                prop_assert_eq!(r.seek_to, decided.get(&r.partition).map(|l| l[0]));
            }
        }
    }
}
