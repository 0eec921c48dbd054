//! The state a partition task decides against: the artifact index of the products homed on
//! that partition. Pure data; `apply` is how a decision's effect changes it.

use std::collections::{HashMap, VecDeque};

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

/// How one decision changed an integration's offender state: the oldest counted rejections
/// that left the window, the one it added, and the cooling-off after it. A change is a few
/// numbers whatever the window holds, so recording it (audit version 3) and applying it cost
/// the same for a window of three rejections or of a million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffenderChange {
    /// The integration.
    pub integration: String,
    /// Oldest counted rejections dropped from the window (all of them when a cooling-off
    /// starts).
    pub dropped: u32,
    /// Time (ms) of the counted rejection added to the window, if any.
    pub added: Option<i64>,
    /// Cooling-off end (ms) after the decision, if cooling.
    pub cooling_until: Option<i64>,
}

impl OffenderState {
    /// Applies a change in place: drops the oldest `dropped` (all, if it names more than the
    /// window holds), appends `added`, sets the cooling-off.
    pub fn apply(&mut self, change: &OffenderChange) {
        let dropped = (change.dropped as usize).min(self.rejections.len());
        self.rejections.drain(..dropped);
        self.rejections.extend(change.added);
        self.cooling_until = change.cooling_until;
    }

    /// The state after a change, leaving this one as it is (a version 2 link records it).
    pub fn after(&self, change: &OffenderChange) -> OffenderState {
        let mut after = self.clone();
        after.apply(change);
        after
    }
}

/// Entries a cleared working set keeps room for (about one transaction's worth).
const WORKING_SET_KEEP: usize = 16_384;

/// State owned by one partition task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    artifacts: HashMap<ArtifactKey, ArtifactRecord>,
    /// Authenticated intent ids already decided, with their position in the replay window
    /// (a FIFO of the last `replay_window` distinct ids: an id is remembered while its
    /// position is at least `replay_next - replay_window`).
    seen: HashMap<ReplayKey, u64>,
    /// Ids remembered here, oldest first, to forget them once out of the window.
    seen_order: VecDeque<(u64, ReplayKey)>,
    /// Position the next remembered id gets.
    replay_next: u64,
    /// Window size last used.
    replay_window: u64,
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

    /// True when this (product, intent id) was already decided (and is still in the window).
    pub fn seen(&self, key: &ReplayKey) -> bool {
        self.seen
            .get(key)
            .is_some_and(|position| *position >= self.replay_floor())
    }

    fn replay_floor(&self) -> u64 {
        self.replay_next.saturating_sub(self.replay_window)
    }

    /// Remembers a decided intent id, forgetting the oldest beyond `window` distinct ids.
    pub fn remember(&mut self, key: ReplayKey, window: usize) {
        self.replay_window = window as u64;
        if !self.seen(&key) {
            let position = self.replay_next;
            self.replay_next += 1;
            self.seen.insert(key.clone(), position);
            self.seen_order.push_back((position, key));
        }
        let floor = self.replay_floor();
        while let Some((position, _)) = self.seen_order.front()
            && *position < floor
        {
            if let Some((position, old)) = self.seen_order.pop_front()
                && self.seen.get(&old) == Some(&position)
            {
                self.seen.remove(&old);
            }
        }
    }

    /// Window position of a remembered id, while it is in the window.
    pub fn seen_position(&self, key: &ReplayKey) -> Option<u64> {
        self.seen
            .get(key)
            .copied()
            .filter(|position| *position >= self.replay_floor())
    }

    /// Replay window counters: (position the next id gets, window size).
    pub fn replay_counters(&self) -> (u64, u64) {
        (self.replay_next, self.replay_window)
    }

    /// Sets the replay counters of a partial state backed by a store (see [`Self::load_seen`]).
    pub fn set_replay_counters(&mut self, next: u64, window: u64) {
        self.replay_next = next;
        self.replay_window = window;
    }

    /// Adds an artifact record read from a store, so a partial state can decide about it.
    pub fn load_artifact(&mut self, key: ArtifactKey, record: ArtifactRecord) {
        self.artifacts.insert(key, record);
    }

    /// True when the partial state already holds this artifact's record (or knows it has none
    /// because it created it here).
    pub fn holds_artifact(&self, key: &ArtifactKey) -> bool {
        self.artifacts.contains_key(key)
    }

    /// Adds a remembered id read from a store with its window position.
    pub fn load_seen(&mut self, key: ReplayKey, position: u64) {
        self.seen.entry(key).or_insert(position);
    }

    /// True when the partial state holds this id (in the window or not).
    pub fn holds_seen(&self, key: &ReplayKey) -> bool {
        self.seen.contains_key(key)
    }

    /// Forgets the artifacts and replay ids, keeping the small per-product and per-integration
    /// maps and the counters: a store-backed task calls this once its changes are stored.
    pub fn clear_working_set(&mut self) {
        // Emptied, not dropped: the next transaction fills them again without regrowing, and a
        // large one does not keep its memory beyond WORKING_SET_KEEP entries.
        self.artifacts.clear();
        self.artifacts.shrink_to(WORKING_SET_KEEP);
        self.seen.clear();
        self.seen.shrink_to(WORKING_SET_KEEP);
        self.seen_order.clear();
        self.seen_order.shrink_to(WORKING_SET_KEEP);
    }

    /// GCRA arrival times of every product homed here (for a store to persist).
    pub fn rates(&self) -> &HashMap<String, i64> {
        &self.rate_tat
    }

    /// Offender state of every integration seen here (for a store to persist).
    pub fn offenders(&self) -> &HashMap<String, OffenderState> {
        &self.offenders
    }

    /// Sets a product's usage (loading a store).
    pub fn set_usage(&mut self, product: &str, usage: Usage) {
        self.usage.insert(product.to_string(), usage);
    }

    /// The artifact records held, for comparisons with a rebuilt state.
    pub fn artifacts(&self) -> &HashMap<ArtifactKey, ArtifactRecord> {
        &self.artifacts
    }

    /// The replay ids in the window, with positions.
    pub fn seen_in_window(&self) -> Vec<(&ReplayKey, u64)> {
        let floor = self.replay_floor();
        self.seen
            .iter()
            .filter(|(_, p)| **p >= floor)
            .map(|(k, p)| (k, *p))
            .collect()
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
            self.apply_offender(change);
        }
    }

    /// Applies an offender change to its integration's state (created empty if new).
    pub fn apply_offender(&mut self, change: &OffenderChange) {
        match self.offenders.get_mut(&change.integration) {
            Some(o) => o.apply(change),
            None => {
                let mut o = OffenderState::default();
                o.apply(change);
                self.offenders.insert(change.integration.clone(), o);
            }
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

#[cfg(test)]
mod tests {
    use std::collections::{HashSet, VecDeque};

    use proptest::prelude::*;

    use super::*;

    /// The replay window as first written: a set and a FIFO of distinct ids.
    #[derive(Default)]
    struct Fifo {
        set: HashSet<ReplayKey>,
        order: VecDeque<ReplayKey>,
    }

    impl Fifo {
        fn remember(&mut self, key: ReplayKey, window: usize) {
            if self.set.insert(key.clone()) {
                self.order.push_back(key);
            }
            while self.order.len() > window {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn key(n: u8) -> ReplayKey {
        ("p".into(), format!("i{n}"))
    }

    proptest! {
        #[test]
        fn the_positional_window_answers_as_a_fifo_of_distinct_ids(
            ops in prop::collection::vec((0u8..12, any::<bool>()), 1..200),
            window in 1usize..6,
        ) {
            let mut fifo = Fifo::default();
            let mut state = PartitionState::default();
            for (n, remember) in ops {
                if remember {
                    fifo.remember(key(n), window);
                    state.remember(key(n), window);
                }
                prop_assert_eq!(state.seen(&key(n)), fifo.set.contains(&key(n)));
                prop_assert!(state.seen.len() <= window, "forgotten ids are dropped");
            }
        }

        #[test]
        fn a_partial_state_loaded_from_positions_answers_as_the_full_one(
            ops in prop::collection::vec(0u8..12, 1..100),
            probes in prop::collection::vec(0u8..12, 1..20),
            window in 1usize..6,
        ) {
            let mut full = PartitionState::default();
            for n in &ops {
                full.remember(key(*n), window);
            }
            // What a store would hold: the ids in the window and the counters.
            let mut partial = PartitionState::default();
            let (next, w) = full.replay_counters();
            partial.set_replay_counters(next, w);
            for (k, position) in full.seen_in_window() {
                partial.load_seen(k.clone(), position);
            }
            partial.clear_working_set();
            for (k, position) in full.seen_in_window() {
                if probes.iter().any(|p| key(*p) == *k) {
                    partial.load_seen(k.clone(), position);
                }
            }
            for p in &probes {
                prop_assert_eq!(partial.seen(&key(*p)), full.seen(&key(*p)));
                full.remember(key(*p), window);
                partial.remember(key(*p), window);
            }
        }
    }
}
