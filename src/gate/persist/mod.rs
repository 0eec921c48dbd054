//! A partition task backed by its local state store (ADR 0009): before a decision the shell
//! loads what it reads into the task's in-memory state; after the Kafka commit it writes what
//! the transaction changed, with the checkpoint (audit sequence, hash and offset) the store
//! then reflects, and forgets the working set. The store is written only after the commit, so
//! it never holds effects of an aborted transaction; and it is trusted only up to a checkpoint
//! that the committed audit log confirms (same sequence and hash at the same offset), so a
//! warm restore replays just the audit tail after it.

use std::path::PathBuf;

use super::store::{Changes, StateStore, StateStoreError, StoreCheckpoint};
use super::task::{ChainHead, Task};
use super::task_store::TaskStore;
use crate::core::state::{ArtifactKey, ReplayKey};

mod cold;
mod restore;
mod to_changelog;

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

impl Task {
    /// Loads from the store what deciding about `intent` reads (nothing without a store).
    pub fn prefetch(
        &mut self,
        intent: &crate::core::ArtifactIntent,
    ) -> Result<(), StateStoreError> {
        let Some(p) = &self.persist else {
            return Ok(());
        };
        let artifact = ArtifactKey {
            product_id: intent.product_id.clone(),
            artifact_id: intent.artifact_id.clone(),
        };
        if !self.state.holds_artifact(&artifact)
            && let Some(record) = p.store.artifact(&artifact)?
        {
            self.state.load_artifact(artifact, record);
        }
        self.load_replay((intent.product_id.clone(), intent.intent_id.clone()))
    }

    /// Loads a replay id's window position from the store, unless the state holds it already.
    fn load_replay(&mut self, key: ReplayKey) -> Result<(), StateStoreError> {
        let Some(p) = &self.persist else {
            return Ok(());
        };
        if !self.state.holds_seen(&key)
            && let Some(position) = p.store.seen_position(&key)?
        {
            self.state.load_seen(key, position);
        }
        Ok(())
    }

    /// Applies a decision to the state and notes it for the store.
    pub fn record_decision(&mut self, decision: &crate::core::Decision, replay_window: usize) {
        self.state.record(decision, replay_window);
        if let Some(p) = self.persist.as_mut() {
            if p.pending.replay.is_empty() {
                p.pending.replay_window = replay_window;
            }
            p.pending.record(decision);
        }
    }

    /// Brings the changed integrations' offender states into the pending changes.
    fn settle_offenders(&mut self) {
        if let Some(p) = self.persist.as_mut() {
            p.pending.settle_offenders(&self.state);
        }
    }

    /// After the Kafka commit: writes what changed with the checkpoint at `audit_offset` (the
    /// offset of the chain's last committed link), then forgets the working set.
    pub fn persist_committed(&mut self, audit_offset: i64) -> Result<(), StateStoreError> {
        let checkpoint = self.checkpoint(audit_offset);
        self.settle_offenders();
        let Some(p) = self.persist.as_mut() else {
            return Ok(());
        };
        let window = p.pending.replay_window;
        let changes = std::mem::replace(&mut p.pending, Changes::new(window));
        p.store.commit(&changes, &checkpoint)?;
        p.behind_commit = false;
        self.state.clear_working_set();
        Ok(())
    }

    /// After a Kafka commit whose changes could not be written to the store yet (no audit
    /// offset to checkpoint at): they stay pending for the next commit, and until then an
    /// abort restores the task instead of rolling it back to the store.
    pub fn committed_unpersisted(&mut self) {
        if let Some(p) = self.persist.as_mut() {
            p.behind_commit = true;
        }
    }

    fn checkpoint(&self, audit_offset: i64) -> StoreCheckpoint {
        StoreCheckpoint {
            audit_next_seq: self.chain.next_seq,
            audit_hash: self.chain.hash.clone(),
            audit_offset,
            last_decided_offset: self.last_decided_offset,
            policy_version: self.policy_version.clone(),
            control_next: self.control_next,
            tree_edge: self.tree.edge().to_vec(),
        }
    }

    /// After an aborted transaction: this task as of its last commit, read again from its
    /// store (which only ever holds committed state, with the checkpoint of that commit). None
    /// when that cannot be had here (no store, no checkpoint, the store behind the last Kafka
    /// commit, or the takeover announcement was itself rolled back): the caller restores the
    /// partition instead.
    pub fn rolled_back(self) -> Result<Option<Task>, StateStoreError> {
        let Some(p) = self.persist.filter(|p| !p.behind_commit) else {
            return Ok(None);
        };
        let (_, window) = self.state.replay_counters();
        let (mut task, checkpoint) = Task::on_store(p.store, window as usize)?;
        let announced = self
            .announced_at
            .is_some_and(|seq| seq < task.chain.next_seq);
        if checkpoint.is_none() || !announced {
            return Ok(None);
        }
        if let Some(rolled) = task.persist.as_mut() {
            // The aborted transaction's changelog records were aborted with it.
            rolled.changelog_epoch = p.changelog_epoch;
        }
        task.announced_at = self.announced_at;
        task.committed = self.committed;
        task.last_checkpoint = self.last_checkpoint;
        task.links_since_checkpoint = self.links_since_checkpoint;
        Ok(Some(task))
    }

    /// A task on an opened store: counters and small maps loaded, chain at the checkpoint.
    fn on_store(
        store: StateStore,
        replay_window: usize,
    ) -> Result<(Task, Option<StoreCheckpoint>), StateStoreError> {
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
        task.persist = Some(TaskStore {
            store,
            pending: Changes::new(replay_window),
            changelog_epoch: None,
            behind_commit: false,
        });
        Ok((task, checkpoint))
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use crate::gate::store::StoreIdentity;

    use super::*;
    use crate::core::decide::{Decision, Outcome};
    use crate::core::state::{ArtifactRecord, Effect};

    const WINDOW: usize = 16;

    fn task_on(dir: &TempDir) -> Task {
        let identity = StoreIdentity::new("cluster", "bucket.intents", "bucket.audit", 0);
        let store = StateStore::open(dir.path(), &identity, 8 << 20).unwrap();
        Task::on_store(store, WINDOW).unwrap().0
    }

    fn key(artifact: &str) -> ArtifactKey {
        ArtifactKey {
            product_id: "p".into(),
            artifact_id: artifact.into(),
        }
    }

    fn create(artifact: &str, intent: &str) -> Decision {
        Decision {
            outcome: Outcome::Accepted,
            findings: vec![],
            version: Some(1),
            effect: Some(Effect {
                key: key(artifact),
                record: ArtifactRecord {
                    version: 1,
                    owner_id: "o".into(),
                    artifact_class: "document".into(),
                    size: 100,
                    deleted: false,
                },
            }),
            size_delta: 100,
            decided_at: 0,
            policy_version: "v1".into(),
            replay_key: Some(("p".into(), intent.into())),
            artifact_delta: 1,
            rate_tat: Some(("p".into(), 7)),
            offender: None,
            counted_rejection: false,
            events: vec![],
        }
    }

    /// Decides `artifact` as link `seq` of the chain (the takeover is link 0).
    fn decide(task: &mut Task, artifact: &str, seq: i64) {
        task.record_decision(&create(artifact, artifact), WINDOW);
        task.tree.append_bytes(artifact.as_bytes());
        task.chain = ChainHead {
            next_seq: seq + 1,
            hash: format!("h{seq}"),
        };
        task.last_decided_offset = seq * 10;
    }

    fn announced(dir: &TempDir) -> Task {
        let mut task = task_on(dir);
        task.tree.append_bytes(b"GATE_STARTED");
        task.chain = ChainHead {
            next_seq: 1,
            hash: "h0".into(),
        };
        task.announced_at = Some(0);
        task
    }

    #[test]
    fn a_rolled_back_task_is_its_last_commit_without_the_aborted_work() {
        let dir = TempDir::new().unwrap();
        let mut task = announced(&dir);
        decide(&mut task, "a1", 1);
        task.persist_committed(5).unwrap();
        let (chain, tree, usage) = (task.chain.clone(), task.tree.root(), task.state.usage("p"));

        decide(&mut task, "a2", 2);
        decide(&mut task, "a3", 3);
        assert_ne!(
            task.state.usage("p"),
            usage,
            "the open transaction changed usage"
        );
        let mut rolled = task
            .rolled_back()
            .unwrap()
            .expect("a store-backed task rolls back");

        assert_eq!(rolled.chain, chain);
        assert_eq!(rolled.tree.root(), tree);
        assert_eq!(rolled.last_decided_offset, 10);
        assert_eq!(rolled.state.usage("p"), usage);
        assert_eq!(rolled.announced_at, Some(0));
        let store = &rolled.persist.as_ref().expect("store").store;
        for (artifact, committed) in [("a1", true), ("a2", false), ("a3", false)] {
            let k = key(artifact);
            assert!(rolled.state.artifact(&k).is_none(), "{artifact} in memory");
            assert_eq!(
                store.artifact(&k).unwrap().is_some(),
                committed,
                "{artifact}"
            );
        }
        // Deciding again after the rollback commits as if the aborted work never happened.
        decide(&mut rolled, "a2", 2);
        rolled.persist_committed(6).unwrap();
        assert_eq!(rolled.state.usage("p").bytes, usage.bytes + 100);
    }

    #[test]
    fn a_task_whose_takeover_was_aborted_or_without_a_store_is_restored_instead() {
        let dir = TempDir::new().unwrap();
        let mut task = announced(&dir);
        decide(&mut task, "a1", 1);
        assert!(
            task.rolled_back().unwrap().is_none(),
            "nothing committed: the takeover announcement itself was aborted"
        );

        let dir = TempDir::new().unwrap();
        let mut task = task_on(&dir);
        task.persist_committed(0).unwrap();
        task.announced_at = Some(4);
        assert!(
            task.rolled_back().unwrap().is_none(),
            "the committed chain ends before the announcement"
        );

        let mut task = Task::empty();
        task.announced_at = Some(0);
        task.chain.next_seq = 3;
        assert!(task.rolled_back().unwrap().is_none(), "no store");
    }

    #[test]
    fn a_store_behind_the_last_kafka_commit_is_not_rolled_back_to() {
        let dir = TempDir::new().unwrap();
        let mut task = announced(&dir);
        decide(&mut task, "a1", 1);
        task.persist_committed(5).unwrap();
        // Committed in Kafka, but its audit offset was not reported: not in the store yet.
        decide(&mut task, "a2", 2);
        task.committed_unpersisted();
        decide(&mut task, "a3", 3);
        assert!(
            task.rolled_back().unwrap().is_none(),
            "the store lacks the committed a2: the partition must be restored from the log"
        );

        let dir = TempDir::new().unwrap();
        let mut task = announced(&dir);
        decide(&mut task, "a1", 1);
        task.persist_committed(5).unwrap();
        decide(&mut task, "a2", 2);
        task.committed_unpersisted();
        task.persist_committed(7).unwrap();
        decide(&mut task, "a3", 3);
        let rolled = task.rolled_back().unwrap().expect("caught up: rolls back");
        assert_eq!(rolled.chain.next_seq, 3, "a1 and a2 are kept, a3 is not");
    }
}
