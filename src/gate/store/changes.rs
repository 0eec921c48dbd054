//! What one committed batch changes in a partition's state, in the order decisions made it.

use crate::core::decide::Decision;
use crate::core::state::{ArtifactKey, ArtifactRecord, OffenderState, PartitionState, ReplayKey};

/// Everything one Kafka transaction changed, written by [`super::StateStore::commit`] as one
/// atomic batch. Entries keep the order the decisions were made in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Artifact records written (a later entry for the same key wins).
    pub artifacts: Vec<(ArtifactKey, ArtifactRecord)>,
    /// Usage changes per product: (product, bytes, artifacts), applied in order with
    /// [`crate::core::state::Usage::plus`]'s saturation.
    pub usage: Vec<(String, i64, i64)>,
    /// New GCRA arrival times (µs) per product (a later entry wins).
    pub rates: Vec<(String, i64)>,
    /// New offender states per integration (a later entry wins), taken from the partition
    /// state by [`Changes::settle_offenders`].
    pub offenders: Vec<(String, OffenderState)>,
    /// Integrations whose offender state changed and is not in `offenders` yet (no
    /// duplicates): a window can hold many rejections, so it is copied once, when the changes
    /// are read, not once per decision.
    pub offenders_changed: Vec<String>,
    /// Intent ids to remember, in decision order.
    pub replay: Vec<ReplayKey>,
    /// Replay window: after each remembered id, the oldest beyond this many are forgotten
    /// (the semantics of [`crate::core::PartitionState::remember`]).
    pub replay_window: usize,
}

impl Changes {
    /// No changes yet, with the replay window in force.
    pub fn new(replay_window: usize) -> Self {
        Changes {
            replay_window,
            ..Changes::default()
        }
    }

    /// Adds what a decision changes, exactly as [`crate::core::PartitionState::record`] applies it.
    pub fn record(&mut self, decision: &Decision) {
        if let Some(effect) = &decision.effect {
            self.artifacts
                .push((effect.key.clone(), effect.record.clone()));
            self.usage.push((
                effect.key.product_id.clone(),
                decision.size_delta,
                decision.artifact_delta,
            ));
        }
        if let Some(key) = &decision.replay_key {
            self.replay.push(key.clone());
        }
        if let Some((product, tat)) = &decision.rate_tat {
            self.rates.push((product.clone(), *tat));
        }
        if let Some(change) = &decision.offender {
            self.note_offender(&change.integration);
        }
    }

    /// Notes that an integration's offender state changed (its state is taken in later).
    pub fn note_offender(&mut self, integration: &str) {
        if !self.offenders_changed.iter().any(|i| i == integration) {
            self.offenders_changed.push(integration.to_string());
        }
    }

    /// Takes the noted integrations' offender states into `offenders`, as `state` holds them
    /// now, once each.
    pub fn settle_offenders(&mut self, state: &PartitionState) {
        for integration in std::mem::take(&mut self.offenders_changed) {
            if let Some(o) = state.offender(&integration) {
                let o = o.clone();
                match self.offenders.iter_mut().find(|(i, _)| *i == integration) {
                    Some(entry) => entry.1 = o,
                    None => self.offenders.push((integration, o)),
                }
            }
        }
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty()
            && self.usage.is_empty()
            && self.rates.is_empty()
            && self.offenders.is_empty()
            && self.offenders_changed.is_empty()
            && self.replay.is_empty()
    }
}
