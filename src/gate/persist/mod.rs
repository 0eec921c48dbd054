//! A partition task backed by its local state store (ADR 0009): before a decision the shell
//! loads what it reads into the task's in-memory state; after the Kafka commit it writes what
//! the transaction changed, with the checkpoint (audit sequence, hash and offset) the store
//! then reflects, and forgets the working set. The store is written only after the commit, so
//! it never holds effects of an aborted transaction; and it is trusted only up to a checkpoint
//! that the committed audit log confirms (same sequence and hash at the same offset), so a
//! warm restore replays just the audit tail after it.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use rdkafka::Offset;
use tracing::{info, warn};

use super::changelog::{self, Epoch, Head, Record};
use super::records::OutRecord;
use super::store::{Changes, Checkpoint, ExportCursor, StateStore, StoreError, StoreIdentity};
use super::task::{AuditSource, ChainHead, RestoreError, Task, read_links};
use super::task_store::TaskStore;
use crate::core::state::{ArtifactKey, ReplayKey};
use crate::kafka::read::PartitionSource;

mod cold;
use cold::{ColdLoad, changelog_error, cold_from_changelog};

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

/// Links folded during a restore between two store commits (bounds restore memory).
const RESTORE_BATCH: u64 = 50_000;

/// How a store-backed restore went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Audit links read from Kafka.
    pub links_read: u64,
    /// The store's checkpoint was confirmed by the log and used.
    pub warm: bool,
    /// The store was wiped first (foreign, damaged or contradicted by the log).
    pub wiped: bool,
    /// The store was loaded from the state changelog (cold, without folding the audit log).
    pub from_changelog: bool,
    /// That load completed a standby's store (only the changelog after its progress was read).
    pub from_standby: bool,
}

impl Task {
    /// Loads from the store what deciding about `intent` reads (nothing without a store).
    pub fn prefetch(&mut self, intent: &crate::core::ArtifactIntent) -> Result<(), StoreError> {
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
    fn load_replay(&mut self, key: ReplayKey) -> Result<(), StoreError> {
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
    pub fn persist_committed(&mut self, audit_offset: i64) -> Result<(), StoreError> {
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

    fn checkpoint(&self, audit_offset: i64) -> Checkpoint {
        Checkpoint {
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
    pub fn rolled_back(self) -> Result<Option<Task>, StoreError> {
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
    ) -> Result<(Task, Option<Checkpoint>), StoreError> {
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
                .map_err(|e| StoreError::Corrupt(format!("checkpoint tree: {e}")))?;
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

impl RestoreStats {
    /// Where the state came from, as GATE_STARTED reports it.
    pub fn source(&self, with_store: bool) -> &'static str {
        match (with_store, self.warm, self.from_changelog) {
            (false, _, _) => "memory",
            (true, true, _) => "store",
            (true, false, true) => "changelog",
            (true, false, false) => "audit",
        }
    }
}

impl Task {
    /// The changelog records of what the open transaction changed, then the partition's head:
    /// sent into the same transaction right before its commit. Empty without a store, or before
    /// the changelog holds this task's state (then it is copied first, [`Task::changelog_copy`]).
    /// When the replay window outgrew the epoch's ring, nothing is written and the task is
    /// marked for a copy under a new epoch after the commit.
    pub fn changelog_records(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<OutRecord>, StoreError> {
        self.settle_offenders();
        let (next, window) = self.state.replay_counters();
        let Some(p) = self.persist.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(epoch) = p.changelog_epoch.filter(|e| e.holds_window(window)) else {
            p.changelog_epoch = None;
            return Ok(Vec::new());
        };
        let Some(p) = self.persist.as_ref() else {
            return Ok(Vec::new());
        };
        let (committed_head, _) = p.store.replay_counters();
        let head = self.changelog_head(
            epoch,
            changelog::replay_head_after(&p.pending, committed_head, next),
        );
        changelog::records_for(&p.pending, &self.state, head)?
            .iter()
            .map(|r| changelog_record(topic, partition, epoch, r))
            .collect()
    }

    /// The next chunk (at most `limit` records) of a full copy of the store into the changelog
    /// under `epoch`; after the last chunk (an empty one) the copy ends with
    /// [`Task::changelog_copy_head`]. Copy a store only while nothing is being decided on it.
    pub fn changelog_copy(
        &self,
        cursor: &mut ExportCursor,
        epoch: Epoch,
        topic: &str,
        partition: i32,
        limit: usize,
    ) -> Result<Vec<OutRecord>, StoreError> {
        let Some(p) = &self.persist else {
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
    ) -> Result<OutRecord, StoreError> {
        let head = self
            .persist
            .as_ref()
            .map_or(0, |p| p.store.replay_counters().0);
        let head = self.changelog_head(epoch, head);
        changelog_record(topic, partition, epoch, &Record::Head(head))
    }

    /// A new epoch for copying this task's state into the changelog.
    pub fn new_changelog_epoch(&self) -> Epoch {
        Epoch::new(self.state.replay_counters().1)
    }

    /// True when the changelog holds this task's state (or there is no store to hold).
    pub fn changelog_current(&self) -> bool {
        self.persist
            .as_ref()
            .is_none_or(|p| p.changelog_epoch.is_some())
    }

    /// From now on the changelog holds this task's state under `epoch`.
    pub fn changelog_written(&mut self, epoch: Epoch) {
        if let Some(p) = self.persist.as_mut() {
            p.changelog_epoch = Some(epoch);
        }
    }

    fn changelog_head(&self, epoch: Epoch, replay_head: u64) -> Head {
        let (replay_next, replay_window) = self.state.replay_counters();
        Head {
            audit_next_seq: self.chain.next_seq,
            audit_hash: self.chain.hash.clone(),
            last_decided_offset: self.last_decided_offset,
            policy_version: self.policy_version.clone(),
            control_next: self.control_next,
            replay_head,
            replay_next,
            replay_window,
            replay_ring: epoch.ring,
            tree_edge: self.tree.edge().to_vec(),
        }
    }
}

fn changelog_record(
    topic: &str,
    partition: i32,
    epoch: Epoch,
    record: &Record,
) -> Result<OutRecord, StoreError> {
    let (key, value) = changelog::codec::encode(epoch.id, epoch.ring, record)?;
    Ok(OutRecord {
        topic: topic.to_string(),
        partition: Some(partition),
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
    })
}

/// Where a store-backed restore reads from besides the audit log.
#[derive(Debug, Clone, Copy)]
pub struct RestoreSources<'a> {
    /// The audit log (the source of truth).
    pub audit: AuditSource<'a>,
    /// The state changelog topic.
    pub changelog_topic: &'a str,
}

/// Restores a partition's task: on its local store when the gate keeps stores (`store`), else
/// in memory from the whole audit log (`task::restore`).
pub fn restore_task(
    sources: RestoreSources<'_>,
    partition: i32,
    policy: &crate::core::Policy,
    store: Option<&StoreOptions>,
) -> Result<(Task, RestoreStats), RestoreError> {
    if let Some(store) = store {
        return restore_with_store(sources, partition, policy, store);
    }
    let task = super::task::restore(sources.audit, partition, policy)?;
    let stats = RestoreStats {
        links_read: u64::try_from(task.chain.next_seq).unwrap_or(0),
        ..RestoreStats::default()
    };
    Ok((task, stats))
}

/// Restores a partition's task on its local store, from the cheapest source the audit log
/// confirms:
/// - warm: the store's checkpoint plus the audit tail after it;
/// - cold from the changelog: an empty store loaded with the changelog's latest epoch, when
///   the changelog's head names the audit log's last link;
/// - cold from the audit log: the whole log folded into an empty store (the changelog must then
///   be written again: `changelog_epoch` is None).
///
/// A store that is foreign, damaged, or whose checkpoint the log does not confirm is wiped.
pub fn restore_with_store(
    sources: RestoreSources<'_>,
    partition: i32,
    policy: &crate::core::Policy,
    opts: &StoreOptions,
) -> Result<(Task, RestoreStats), RestoreError> {
    let src = sources.audit;
    let audit_topic = src.topic;
    let started = Instant::now();
    let store_err = |source| RestoreError::Store { partition, source };
    let dir = StateStore::dir_for(&opts.state_dir, audit_topic, partition);
    let identity = StoreIdentity::new(&opts.cluster, &opts.intents_topic, audit_topic, partition);
    let window = policy.limits.replay_window;
    let mut stats = RestoreStats::default();
    let opened = match StateStore::open(&dir, &identity, opts.cache_bytes)
        .and_then(|s| Task::on_store(s, window))
    {
        Ok(opened) => opened,
        Err(e) if e.wipe_and_rebuild() => {
            warn!(partition, error = %e, "local state store refused; wiping it");
            wipe_and_open(&dir, &identity, opts, window, &mut stats).map_err(store_err)?
        }
        Err(e) => return Err(store_err(e)),
    };
    let changelog = PartitionSource {
        brokers: src.brokers,
        topic: sources.changelog_topic,
        partition,
        timeout: src.timeout,
    };
    let head =
        changelog::read::latest_head(&changelog).map_err(|e| changelog_error(partition, e))?;
    let (mut task, checkpoint) = opened;
    let start = match &checkpoint {
        Some(cp) if confirmed(src, partition, cp)? => {
            stats.warm = true;
            Offset::Offset(cp.audit_offset + 1)
        }
        other => {
            if let Some(cp) = other {
                warn!(
                    partition,
                    seq = cp.audit_next_seq - 1,
                    offset = cp.audit_offset,
                    "local state store checkpoint not confirmed by the audit log; wiping it"
                );
            }
            // A standby's store followed the changelog's latest epoch: completed from where it
            // stopped. Any other store without a checkpoint may hold half a load: start from an
            // empty one.
            let followed = match (other, task.persist.as_ref(), head.as_ref()) {
                (None, Some(p), Some((epoch, _))) => (p.store.follow_progress())
                    .map_err(store_err)?
                    .filter(|f| f.epoch == *epoch),
                _ => None,
            };
            if followed.is_none() {
                drop(task);
                let mut unreported = RestoreStats::default();
                let report = if other.is_some() {
                    &mut stats
                } else {
                    &mut unreported
                };
                let (fresh, _) =
                    wipe_and_open(&dir, &identity, opts, window, report).map_err(store_err)?;
                task = fresh;
            }
            let load = ColdLoad {
                head: head.as_ref(),
                followed,
            };
            match cold_from_changelog(src, &changelog, partition, load, &mut task)? {
                Some(audit_offset) => {
                    stats.from_changelog = true;
                    stats.from_standby = followed.is_some();
                    task = reopen(task, window).map_err(store_err)?;
                    Offset::Offset(audit_offset + 1)
                }
                None => {
                    drop(task);
                    let (fresh, _) = wipe_and_open(&dir, &identity, opts, window, &mut stats)
                        .map_err(store_err)?;
                    task = fresh;
                    Offset::Beginning
                }
            }
        }
    };
    let mut since_commit = 0u64;
    let mut last_offset = -1;
    stats.links_read = read_links(src, partition, start, |offset, event, stored| {
        task.prefetch_replay(&event).map_err(store_err)?;
        task.follow(partition, offset, &event, stored, policy)?;
        last_offset = offset;
        since_commit += 1;
        if since_commit >= RESTORE_BATCH {
            task.persist_committed(offset).map_err(store_err)?;
            since_commit = 0;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if since_commit > 0 {
        task.persist_committed(last_offset).map_err(store_err)?;
    }
    task.mark_committed();
    // The changelog holds this state when its head names the restored chain head.
    let epoch = head
        .filter(|(_, h)| h.audit_next_seq == task.chain.next_seq && h.audit_hash == task.chain.hash)
        .map(|(id, h)| Epoch {
            id,
            ring: h.replay_ring,
        })
        .filter(|e| e.holds_window(window as u64));
    if let Some(p) = task.persist.as_mut() {
        p.changelog_epoch = epoch;
    }
    info!(
        partition,
        links_read = stats.links_read,
        warm = stats.warm,
        from_changelog = stats.from_changelog,
        from_standby = stats.from_standby,
        changelog_current = epoch.is_some(),
        wiped = stats.wiped,
        artifacts = task.artifact_count(),
        next_seq = task.chain.next_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored partition task on its local state store"
    );
    Ok((task, stats))
}

/// The task again on its store, after the store was written behind its back (a load).
fn reopen(mut task: Task, window: usize) -> Result<Task, StoreError> {
    match task.persist.take() {
        Some(p) => Task::on_store(p.store, window).map(|(t, _)| t),
        None => Ok(task),
    }
}

impl Task {
    /// Loads the replay id a link will remember (restore reads nothing else from the store).
    fn prefetch_replay(
        &mut self,
        event: &crate::wire::audit::AuditEvent,
    ) -> Result<(), StoreError> {
        match &event.decision {
            Some(d) if d.authenticated => match (&d.product_id, &d.intent_id) {
                (Some(p), Some(i)) => self.load_replay((p.clone(), i.clone())),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

fn wipe_and_open(
    dir: &std::path::Path,
    identity: &StoreIdentity,
    opts: &StoreOptions,
    window: usize,
    stats: &mut RestoreStats,
) -> Result<(Task, Option<Checkpoint>), StoreError> {
    StateStore::wipe(dir)?;
    stats.wiped = true;
    Task::on_store(StateStore::open(dir, identity, opts.cache_bytes)?, window)
}

/// True when the committed audit log holds the checkpoint's link: sequence and hash at its
/// offset. Anything else (a recreated topic, another cluster's store, a log that lost its
/// tail) means the store cannot be trusted.
fn confirmed(src: AuditSource<'_>, partition: i32, cp: &Checkpoint) -> Result<bool, RestoreError> {
    if cp.audit_offset < 0 {
        return Ok(false);
    }
    let mut found = None;
    let result = read_links(
        src,
        partition,
        Offset::Offset(cp.audit_offset),
        |offset, event, _| {
            found = Some((offset, event.seq, event.hash));
            Ok(ControlFlow::Break(()))
        },
    );
    match result {
        Ok(_) => {}
        // The link there does not decode or hash: the store's checkpoint is not confirmed.
        Err(RestoreError::Corrupt { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    Ok(found.is_some_and(|(offset, seq, hash)| {
        offset == cp.audit_offset && seq == cp.audit_next_seq - 1 && hash == cp.audit_hash
    }))
}

/// What differs between a partition's local store and the task rebuilt from the audit log
/// alone (empty when they agree): the fault suite's "store equals recomputation" check, and
/// `bucket state check`.
pub fn differences(store: &StateStore, rebuilt: &Task) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let state = &rebuilt.state;
    let artifacts = state.artifacts();
    let stored = store.len_artifacts()?;
    if stored != artifacts.len() as u64 {
        out.push(format!(
            "{stored} artifacts stored, {} rebuilt",
            artifacts.len()
        ));
    }
    for (key, record) in artifacts {
        let found = store.artifact(key)?;
        if found.as_ref() != Some(record) {
            out.push(format!(
                "artifact {key:?}: stored {found:?}, rebuilt {record:?}"
            ));
        }
    }
    let usage: std::collections::HashMap<String, crate::core::state::Usage> = store
        .usage_all()?
        .into_iter()
        .filter(|(_, u)| *u != Default::default())
        .collect();
    let want: std::collections::HashMap<String, crate::core::state::Usage> = state
        .usage_by_product()
        .iter()
        .filter(|(_, u)| **u != Default::default())
        .map(|(p, u)| (p.clone(), *u))
        .collect();
    if usage != want {
        out.push(format!("usage: stored {usage:?}, rebuilt {want:?}"));
    }
    if store.rate_all()? != *state.rates() {
        out.push("rate state differs".into());
    }
    if store.offenders_all()? != *state.offenders() {
        out.push("offender state differs".into());
    }
    let window = state.seen_in_window();
    let (head, next) = store.replay_counters();
    if next - head != window.len() as u64 {
        out.push(format!(
            "{} replay ids stored, {} rebuilt",
            next - head,
            window.len()
        ));
    }
    for (key, position) in window {
        let found = store.seen_position(key)?;
        if found != Some(position) {
            out.push(format!(
                "replay id {key:?}: stored {found:?}, rebuilt {position}"
            ));
        }
    }
    if let Some(cp) = store.checkpoint()?
        && cp.audit_next_seq > rebuilt.chain.next_seq
    {
        out.push(format!(
            "checkpoint at seq {} is past the committed chain ({})",
            cp.audit_next_seq, rebuilt.chain.next_seq
        ));
    }
    out.truncate(20);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

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
