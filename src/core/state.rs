//! The state a partition task decides against: the artifact index of the products homed on
//! that partition. Pure data; `apply` is how a decision's effect changes it.

use std::collections::{HashMap, HashSet, VecDeque};

/// Identifies an artifact: (product, artifact id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactKey {
    /// Owning product.
    pub product_id: String,
    /// Artifact id within the product.
    pub artifact_id: String,
}

/// What the gate knows about an artifact's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// Current version (1 after CREATE).
    pub version: i64,
    /// Owner; only they may delete.
    pub owner_id: String,
    /// Class, fixed at CREATE.
    pub artifact_class: String,
    /// Size of the current version's content.
    pub size: u64,
    /// True once a DELETE was accepted (the id stays taken).
    pub deleted: bool,
}

/// A state change produced by an accepted decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Artifact written.
    pub key: ArtifactKey,
    /// Its record after the change.
    pub record: ArtifactRecord,
}

/// Identifies a decided intent for replay detection: (product, intent id).
pub type ReplayKey = (String, String);

/// State owned by one partition task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    artifacts: HashMap<ArtifactKey, ArtifactRecord>,
    /// Authenticated intent ids already decided, bounded FIFO window.
    seen: HashSet<ReplayKey>,
    seen_order: VecDeque<ReplayKey>,
}

impl PartitionState {
    /// Current record of an artifact, if it was ever created.
    pub fn artifact(&self, key: &ArtifactKey) -> Option<&ArtifactRecord> {
        self.artifacts.get(key)
    }

    /// Applies the effect of an accepted decision.
    pub fn apply(&mut self, effect: &Effect) {
        self.artifacts
            .insert(effect.key.clone(), effect.record.clone());
    }

    /// True when this (product, intent id) was already decided.
    pub fn seen(&self, key: &ReplayKey) -> bool {
        self.seen.contains(key)
    }

    /// Remembers a decided intent id, forgetting the oldest beyond `window`.
    pub fn remember(&mut self, key: ReplayKey, window: usize) {
        if self.seen.insert(key.clone()) {
            self.seen_order.push_back(key);
        }
        while self.seen_order.len() > window {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// Applies everything a decision changes: the artifact effect and the replay memory.
    pub fn record(&mut self, decision: &super::decide::Decision, window: usize) {
        if let Some(effect) = &decision.effect {
            self.apply(effect);
        }
        if let Some(key) = &decision.replay_key {
            self.remember(key.clone(), window);
        }
    }

    /// Number of artifacts known (including deleted ones).
    pub fn len(&self) -> usize {
        self.artifacts.len()
    }

    /// True when no artifact is known.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty()
    }
}
