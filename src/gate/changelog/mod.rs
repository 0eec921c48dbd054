//! The state changelog (issue 15): a compacted topic, co-partitioned with `bucket.intents` and
//! `bucket.audit`, that holds the latest value of every piece of each partition's state. Every
//! transaction that touches a partition writes, inside that transaction, the state it changed
//! and then the partition's [`Head`] (the audit chain head the state adds up to). A cold
//! instance loads a partition's store from its changelog, in time proportional to the live
//! state, instead of folding the whole audit log; the audit log stays the source of truth:
//! a changelog whose head the audit log does not confirm is not used, and the partition is
//! rebuilt from the audit log and its changelog written again under a new epoch.
//!
//! Epochs: every value carries the epoch it was written in, and a head names its epoch. A
//! restore takes only the entries of the latest head's epoch, so entries left from before a
//! rebuild (or by another cluster's gate) are ignored without tombstones.

pub mod codec;
pub mod read;

use std::collections::HashSet;

pub use codec::{ChangelogError, Head, Record, ring_for};

use super::store::{Changes, StateEntry, StateStoreError};
use crate::core::PartitionState;

/// One writing of a partition's changelog from scratch: its id (in every value) and its replay
/// ring (replay ids are keyed by position modulo it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// Random id.
    pub id: u64,
    /// Replay ring: at least the replay window.
    pub ring: u64,
}

impl Epoch {
    /// A fresh epoch for a changelog written from scratch under replay window `window`.
    pub fn new(window: u64) -> Epoch {
        Epoch {
            id: uuid::Uuid::new_v4().as_u64_pair().0,
            ring: ring_for(window),
        }
    }

    /// True when this epoch's ring still keys every id of a replay window of `window` apart.
    pub fn holds_window(&self, window: u64) -> bool {
        window <= self.ring
    }
}

/// The records one transaction adds to a partition's changelog: the latest value of every
/// piece of state `changes` touched, read from `state` (which holds them all once the
/// decisions are recorded), then `head`. Pure.
pub fn records_for(
    changes: &Changes,
    state: &PartitionState,
    head: Head,
) -> Result<Vec<Record>, StateStoreError> {
    let mut out = Vec::new();
    let mut artifacts = HashSet::new();
    for (key, _) in changes.artifacts.iter().rev() {
        if artifacts.insert(key)
            && let Some(record) = state.artifact(key)
        {
            out.push(Record::State(StateEntry::artifact(key.clone(), record)?));
        }
    }
    let mut products = HashSet::new();
    for (product, _, _) in &changes.usage {
        if products.insert(product) {
            let usage = state.usage(product);
            out.push(Record::State(StateEntry::usage(product.clone(), &usage)));
        }
    }
    let mut rated = HashSet::new();
    for (product, _) in &changes.rates {
        if rated.insert(product) {
            let tat = state.rate_tat(product);
            out.push(Record::State(StateEntry::rate(product.clone(), tat)));
        }
    }
    let mut offenders = HashSet::new();
    for (integration, _) in &changes.offenders {
        if offenders.insert(integration)
            && let Some(o) = state.offender(integration)
        {
            out.push(Record::State(StateEntry::offender(integration.clone(), o)?));
        }
    }
    for key in &changes.replay {
        if let Some(position) = state.seen_position(key) {
            out.push(Record::State(StateEntry::Seen(key.clone(), position)));
        }
    }
    out.push(Record::Head(head));
    Ok(out)
}

/// Oldest replay position a store keeps after committing `changes` on top of `head` (the
/// committed one): the window's floor once ids were remembered, else unchanged (the rule of
/// [`crate::gate::store::StateStore::commit`]).
pub fn replay_head_after(changes: &Changes, committed_head: u64, next: u64) -> u64 {
    if changes.replay.is_empty() {
        committed_head
    } else {
        committed_head.max(next.saturating_sub(changes.replay_window as u64))
    }
}

#[cfg(test)]
mod tests;
