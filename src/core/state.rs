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

/// Stored bytes and live artifacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of the live versions.
    pub bytes: u64,
    /// Live (not deleted) artifacts.
    pub artifacts: u64,
}

impl Usage {
    /// Usage after a signed change, saturating at zero.
    pub fn plus(self, bytes: i64, artifacts: i64) -> Usage {
        Usage {
            bytes: self.bytes.saturating_add_signed(bytes),
            artifacts: self.artifacts.saturating_add_signed(artifacts),
        }
    }
}

/// Repeat-offender bookkeeping of one integration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffenderState {
    /// Times (ms) of recent counted rejections, oldest first.
    pub rejections: VecDeque<i64>,
    /// Cooling-off end (ms), if cooling.
    pub cooling_until: Option<i64>,
}

/// State owned by one partition task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    artifacts: HashMap<ArtifactKey, ArtifactRecord>,
    /// Authenticated intent ids already decided, bounded FIFO window.
    seen: HashSet<ReplayKey>,
    seen_order: VecDeque<ReplayKey>,
    /// Exact usage per product homed here.
    usage: HashMap<String, Usage>,
    /// Usage of all other partitions (from Redis; lags by the publish interval).
    others: Usage,
    /// GCRA theoretical arrival time per product, µs.
    rate_tat: HashMap<String, i64>,
    /// Repeat offenders per integration.
    offenders: HashMap<String, OffenderState>,
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

    /// Applies everything a decision changes: artifact, usage, replay memory, rate and
    /// offender state.
    pub fn record(&mut self, decision: &super::decide::Decision, window: usize) {
        if let Some(effect) = &decision.effect {
            self.apply(effect);
            self.add_usage(
                &effect.key.product_id,
                decision.size_delta,
                decision.artifact_delta,
            );
        }
        if let Some(key) = &decision.replay_key {
            self.remember(key.clone(), window);
        }
        if let Some((product, tat)) = &decision.rate_tat {
            self.rate_tat.insert(product.clone(), *tat);
        }
        if let Some(change) = &decision.offender {
            self.offenders.insert(change.0.clone(), change.1.clone());
        }
    }

    /// Adds a usage change to a product.
    pub fn add_usage(&mut self, product: &str, bytes: i64, artifacts: i64) {
        let u = self.usage.entry(product.to_string()).or_default();
        *u = u.plus(bytes, artifacts);
    }

    /// Exact usage of a product homed here.
    pub fn usage(&self, product: &str) -> Usage {
        self.usage.get(product).copied().unwrap_or_default()
    }

    /// Usage of every product homed here.
    pub fn usage_by_product(&self) -> &HashMap<String, Usage> {
        &self.usage
    }

    /// Sum of this partition's usage.
    pub fn local_total(&self) -> Usage {
        self.usage.values().fold(Usage::default(), |a, u| Usage {
            bytes: a.bytes + u.bytes,
            artifacts: a.artifacts + u.artifacts,
        })
    }

    /// Sets the usage of all other partitions (global totals input).
    pub fn set_others(&mut self, others: Usage) {
        self.others = others;
    }

    /// Usage of all products everywhere, as far as this partition knows.
    pub fn global_total(&self) -> Usage {
        let l = self.local_total();
        Usage {
            bytes: l.bytes + self.others.bytes,
            artifacts: l.artifacts + self.others.artifacts,
        }
    }

    /// GCRA arrival time of a product, µs (0 when never seen).
    pub fn rate_tat(&self, product: &str) -> i64 {
        self.rate_tat.get(product).copied().unwrap_or(0)
    }

    /// Sets a product's GCRA arrival time, µs (restore).
    pub fn set_rate_tat(&mut self, product: &str, tat_us: i64) {
        self.rate_tat.insert(product.to_string(), tat_us);
    }

    /// Replaces the offender state of an integration.
    pub fn set_offender(&mut self, integration: String, o: OffenderState) {
        self.offenders.insert(integration, o);
    }

    /// Offender state of an integration.
    pub fn offender(&self, integration: &str) -> Option<&OffenderState> {
        self.offenders.get(integration)
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
