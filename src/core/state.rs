//! The state a partition task decides against: the artifact index of the products homed on
//! that partition. Pure data; `apply` is how a decision's effect changes it.

use std::collections::HashMap;

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

/// State owned by one partition task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    artifacts: HashMap<ArtifactKey, ArtifactRecord>,
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

    /// Number of artifacts known (including deleted ones).
    pub fn len(&self) -> usize {
        self.artifacts.len()
    }

    /// True when no artifact is known.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty()
    }
}
