//! What a task on its store writes into the state changelog: the records of a commit's
//! changes, the chunks of a full copy under a new epoch, and the partition's head.

use super::StoredTask;
use crate::gate::changelog::{self, Epoch, Head, Record};
use crate::gate::records::OutRecord;
use crate::gate::store::{ExportCursor, StateStoreError};
use crate::gate::task::Task;

impl StoredTask {
    /// The changelog records of what the open transaction changed, then the partition's head:
    /// sent into the same transaction right before its commit. Empty without a store, or before
    /// the changelog holds this task's state (then it is copied first,
    /// [`StoredTask::changelog_copy`]). When the replay window outgrew the epoch's ring, nothing
    /// is written and the task is marked for a copy under a new epoch after the commit.
    pub fn changelog_records(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<OutRecord>, StateStoreError> {
        let Some(p) = self.store.as_mut() else {
            return Ok(Vec::new());
        };
        p.pending.settle_offenders(&self.task.state);
        let (next, window) = self.task.state.replay_counters();
        let Some(epoch) = p.changelog_epoch.filter(|e| e.holds_window(window)) else {
            p.changelog_epoch = None;
            return Ok(Vec::new());
        };
        let (committed_head, _) = p.store.replay_counters();
        let head = changelog_head(
            &self.task,
            epoch,
            changelog::replay_head_after(&p.pending, committed_head, next),
        );
        changelog::records_for(&p.pending, &self.task.state, head)?
            .iter()
            .map(|r| changelog_record(topic, partition, epoch, r))
            .collect()
    }

    /// The next chunk (at most `limit` records) of a full copy of the store into the changelog
    /// under `epoch`; after the last chunk (an empty one) the copy ends with
    /// [`StoredTask::changelog_copy_head`]. Copy a store only while nothing is being decided on
    /// it.
    pub fn changelog_copy(
        &self,
        cursor: &mut ExportCursor,
        epoch: Epoch,
        topic: &str,
        partition: i32,
        limit: usize,
    ) -> Result<Vec<OutRecord>, StateStoreError> {
        let Some(p) = &self.store else {
            return Ok(Vec::new());
        };
        p.store
            .export(cursor, limit)?
            .into_iter()
            .map(|e| changelog_record(topic, partition, epoch, &Record::State(e)))
            .collect()
    }

    /// The head that ends a copy: the committed chain head and replay window.
    pub fn changelog_copy_head(
        &self,
        epoch: Epoch,
        topic: &str,
        partition: i32,
    ) -> Result<OutRecord, StateStoreError> {
        let head = self
            .store
            .as_ref()
            .map_or(0, |p| p.store.replay_counters().0);
        let head = changelog_head(&self.task, epoch, head);
        changelog_record(topic, partition, epoch, &Record::Head(head))
    }

    /// A new epoch for copying this task's state into the changelog.
    pub fn new_changelog_epoch(&self) -> Epoch {
        Epoch::new(self.task.state.replay_counters().1)
    }

    /// True when the changelog holds this task's state (or there is no store to hold).
    pub fn changelog_current(&self) -> bool {
        self.store
            .as_ref()
            .is_none_or(|p| p.changelog_epoch.is_some())
    }

    /// From now on the changelog holds this task's state under `epoch`.
    pub fn changelog_written(&mut self, epoch: Epoch) {
        if let Some(p) = self.store.as_mut() {
            p.changelog_epoch = Some(epoch);
        }
    }
}

/// The changelog head of `task`'s chain and replay window under `epoch`.
fn changelog_head(task: &Task, epoch: Epoch, replay_head: u64) -> Head {
    let (replay_next, replay_window) = task.state.replay_counters();
    Head {
        audit_next_seq: task.chain.next_seq,
        audit_hash: task.chain.hash.clone(),
        last_decided_offset: task.last_decided_offset,
        policy_version: task.policy_version.clone(),
        control_next: task.control_next,
        replay_head,
        replay_next,
        replay_window,
        replay_ring: epoch.ring,
        tree_edge: task.tree.edge().to_vec(),
    }
}

fn changelog_record(
    topic: &str,
    partition: i32,
    epoch: Epoch,
    record: &Record,
) -> Result<OutRecord, StateStoreError> {
    let (key, value) = changelog::codec::encode(epoch.id, epoch.ring, record)?;
    Ok(OutRecord {
        topic: topic.to_string(),
        partition: Some(partition),
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
    })
}
