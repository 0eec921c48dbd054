//! A partition task backed by its local state store (ADR 0009): before a decision the shell
//! loads what it reads into the task's in-memory state; after the Kafka commit it writes what
//! the transaction changed, with the checkpoint (audit sequence, hash and offset) the store
//! then reflects, and forgets the working set. The store is written only after the commit, so
//! it never holds effects of an aborted transaction; and it is trusted only up to a checkpoint
//! that the committed audit log confirms (same sequence and hash at the same offset), so a
//! warm restore replays just the audit tail after it.

use std::path::PathBuf;

use super::store::{Changes, StateStore, StateStoreError, StoreCheckpoint};
use super::task::{ChainHead, Folded, Task};
use crate::core::state::{ArtifactKey, ReplayKey};

mod cold;
mod restore;
mod task_store;
mod to_changelog;

pub use task_store::TaskStore;

pub use restore::{RestoreSources, RestoreStats, differences, restore_task, restore_with_store};

/// Where and how the gate keeps local state.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Directory holding one store per partition.
    pub state_dir: PathBuf,
    /// Block cache of each store, bytes.
    pub cache_bytes: u64,
    /// Names the deployment the stores belong to (the Kafka cluster and topics).
    pub cluster: String,
    /// Intents topic (part of a store's identity).
    pub intents_topic: String,
}

/// A partition task with the local state store behind it, when the gate keeps one
/// (`--state-dir`): then the task's in-memory state holds only what the open transaction reads
/// and writes, and this wrapper loads, writes and rolls back around it. Without a store it is
/// the in-memory task alone.
#[derive(Debug, Default)]
pub struct StoredTask {
    /// The in-memory task (plain state).
    pub task: Task,
    /// Its local state store and what the open transaction changed there.
    pub store: Option<TaskStore>,
}

impl StoredTask {
    /// A task kept in memory only.
    pub fn in_memory(task: Task) -> StoredTask {
        StoredTask { task, store: None }
    }

    /// Loads from the store what deciding about `intent` reads (nothing without a store).
    pub fn prefetch(
        &mut self,
        intent: &crate::core::ArtifactIntent,
    ) -> Result<(), StateStoreError> {
        let Some(p) = &self.store else {
            return Ok(());
        };
        let artifact = ArtifactKey {
            product_id: intent.product_id.clone(),
            artifact_id: intent.artifact_id.clone(),
        };
        let state = &mut self.task.state;
        if !state.holds_artifact(&artifact)
            && let Some(record) = p.store.artifact(&artifact)?
        {
            state.load_artifact(artifact, record);
        }
        self.load_replay((intent.product_id.clone(), intent.intent_id.clone()))
    }

    /// Loads a replay id's window position from the store, unless the state holds it already.
    fn load_replay(&mut self, key: ReplayKey) -> Result<(), StateStoreError> {
        let Some(p) = &self.store else {
            return Ok(());
        };
        let state = &mut self.task.state;
        if !state.holds_seen(&key)
            && let Some(position) = p.store.seen_position(&key)?
        {
            state.load_seen(key, position);
        }
        Ok(())
    }

    /// Applies a decision to the task's state and notes it for the store.
    pub fn record_decision(&mut self, decision: &crate::core::Decision, replay_window: usize) {
        self.task.state.record(decision, replay_window);
        if let Some(p) = self.store.as_mut() {
            if p.pending.replay.is_empty() {
                p.pending.replay_window = replay_window;
            }
            p.pending.record(decision);
        }
    }

    /// Checks that `event` (read at `offset`) continues the task's chain, folds it
    /// (`Task::follow`), and notes what changed for the store.
    pub fn follow(
        &mut self,
        partition: i32,
        offset: i64,
        event: &crate::wire::audit::AuditEvent,
        stored: &[u8],
        policy: &crate::core::Policy,
    ) -> Result<(), crate::gate::task::RestoreError> {
        let folded = self.task.follow(partition, offset, event, stored, policy)?;
        if let Some(p) = self.store.as_mut() {
            note_folded(&mut p.pending, folded, policy.limits.replay_window);
        }
        Ok(())
    }

    /// After the Kafka commit: writes what changed with the checkpoint at `audit_offset` (the
    /// offset of the chain's last committed link), then forgets the working set.
    pub fn persist_committed(&mut self, audit_offset: i64) -> Result<(), StateStoreError> {
        let Some(p) = self.store.as_mut() else {
            return Ok(());
        };
        p.pending.settle_offenders(&self.task.state);
        let checkpoint = store_checkpoint(&self.task, audit_offset);
        let window = p.pending.replay_window;
        let changes = std::mem::replace(&mut p.pending, Changes::new(window));
        p.store.commit(&changes, &checkpoint)?;
        p.behind_commit = false;
        self.task.state.clear_working_set();
        Ok(())
    }

    /// After a Kafka commit whose changes could not be written to the store yet (no audit
    /// offset to checkpoint at): they stay pending for the next commit, and until then an
    /// abort restores the task instead of rolling it back to the store.
    pub fn committed_unpersisted(&mut self) {
        if let Some(p) = self.store.as_mut() {
            p.behind_commit = true;
        }
    }

    /// After an aborted transaction: this task as of its last commit, read again from its
    /// store (which only ever holds committed state, with the checkpoint of that commit). None
    /// when that cannot be had here (no store, no checkpoint, the store behind the last Kafka
    /// commit, or the takeover announcement was itself rolled back): the caller restores the
    /// partition instead.
    pub fn rolled_back(self) -> Result<Option<StoredTask>, StateStoreError> {
        let Some(p) = self.store.filter(|p| !p.behind_commit) else {
            return Ok(None);
        };
        let aborted = self.task;
        let (_, window) = aborted.state.replay_counters();
        let (mut rolled, checkpoint) = StoredTask::on_store(p.store, window as usize)?;
        let announced = (aborted.announced_at).is_some_and(|seq| seq < rolled.task.chain.next_seq);
        if checkpoint.is_none() || !announced {
            return Ok(None);
        }
        if let Some(store) = rolled.store.as_mut() {
            // The aborted transaction's changelog records were aborted with it.
            store.changelog_epoch = p.changelog_epoch;
        }
        let task = &mut rolled.task;
        task.announced_at = aborted.announced_at;
        task.committed = aborted.committed;
        task.last_checkpoint = aborted.last_checkpoint;
        task.links_since_checkpoint = aborted.links_since_checkpoint;
        Ok(Some(rolled))
    }

    /// Artifacts the task knows (its store's count when it has one).
    pub fn artifact_count(&self) -> u64 {
        match &self.store {
            Some(p) => p.artifact_count(),
            None => self.task.state.len() as u64,
        }
    }

    /// A task on an opened store: counters and small maps loaded, chain at the checkpoint.
    fn on_store(
        store: StateStore,
        replay_window: usize,
    ) -> Result<(StoredTask, Option<StoreCheckpoint>), StateStoreError> {
        let mut task = Task::empty();
        for (product, usage) in store.usage_all()? {
            task.state.set_usage(&product, usage);
        }
        for (product, tat) in store.rate_all()? {
            task.state.set_rate_tat(&product, tat);
        }
        for (integration, o) in store.offenders_all()? {
            task.state.set_offender(integration, o);
        }
        let (_, next) = store.replay_counters();
        task.state.set_replay_counters(next, replay_window as u64);
        let checkpoint = store.checkpoint()?;
        if let Some(cp) = &checkpoint {
            task.chain = ChainHead {
                next_seq: cp.audit_next_seq,
                hash: cp.audit_hash.clone(),
            };
            task.last_decided_offset = cp.last_decided_offset;
            task.policy_version = cp.policy_version.clone();
            task.control_next = cp.control_next;
            let size = u64::try_from(cp.audit_next_seq).unwrap_or(0);
            task.tree = crate::tlog::Frontier::from_parts(size, cp.tree_edge.clone())
                .map_err(|e| StateStoreError::Corrupt(format!("checkpoint tree: {e}")))?;
        }
        let store = TaskStore {
            store,
            pending: Changes::new(replay_window),
            changelog_epoch: None,
            behind_commit: false,
        };
        Ok((
            StoredTask {
                task,
                store: Some(store),
            },
            checkpoint,
        ))
    }
}

/// The store checkpoint of `task`'s chain head, its last link at `audit_offset`.
fn store_checkpoint(task: &Task, audit_offset: i64) -> StoreCheckpoint {
    StoreCheckpoint {
        audit_next_seq: task.chain.next_seq,
        audit_hash: task.chain.hash.clone(),
        audit_offset,
        last_decided_offset: task.last_decided_offset,
        policy_version: task.policy_version.clone(),
        control_next: task.control_next,
        tree_edge: task.tree.edge().to_vec(),
    }
}

/// Adds what folding a link changed to the store's pending changes.
fn note_folded(pending: &mut Changes, folded: Folded, replay_window: usize) {
    if let Some((effect, bytes, artifacts)) = folded.accepted {
        (pending.usage).push((effect.key.product_id.clone(), bytes, artifacts));
        pending.artifacts.push((effect.key, effect.record));
    }
    if let Some(key) = folded.remembered {
        pending.replay_window = replay_window;
        pending.replay.push(key);
    }
    if let Some(rate) = folded.rate_tat {
        pending.rates.push(rate);
    }
    for integration in &folded.offenders {
        pending.note_offender(integration);
    }
}

#[cfg(test)]
mod tests;
