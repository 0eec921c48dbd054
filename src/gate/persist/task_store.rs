//! The local state store behind one partition task (ADR 0009) and what the task's open
//! transaction changed there. [`super::StoredTask`] holds it beside the in-memory task, which
//! knows nothing of it.

use crate::gate::changelog::Epoch;
use crate::gate::store::{Changes, StateStore};

/// The store of one task and what the open transaction changed.
#[derive(Debug)]
pub struct TaskStore {
    pub(super) store: StateStore,
    /// Changes since the last store commit, in decision order.
    pub pending: Changes,
    /// Epoch under which the state changelog holds this task's state; None until the
    /// changelog has been written from the store (after a restore from the audit log, or once
    /// the replay window outgrew the epoch's ring).
    pub changelog_epoch: Option<Epoch>,
    /// A Kafka commit's changes are still pending here (its audit offsets were not yet
    /// reported, so the store got no checkpoint): the store is behind the committed log, and
    /// a rollback to it would lose committed decisions.
    pub(super) behind_commit: bool,
}

impl TaskStore {
    /// Artifacts in the store (deleted ones included), 0 if it cannot say.
    pub fn artifact_count(&self) -> u64 {
        self.store.len_artifacts().unwrap_or(0)
    }
}
