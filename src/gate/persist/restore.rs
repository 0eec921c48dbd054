//! A task's restore on its local store, from the cheapest source the audit log confirms (warm,
//! the rest of a standby's store, cold from the changelog, cold from the audit log), and the
//! comparison of a store with the state rebuilt from the log.

use std::ops::ControlFlow;
use std::time::Instant;

use rdkafka::Offset;
use tracing::{info, warn};

use super::cold::{ColdLoad, changelog_error, cold_from_changelog};
use super::{StoreOptions, StoredTask};
use crate::gate::changelog::{self, Epoch};
use crate::gate::store::{StateStore, StateStoreError, StoreCheckpoint, StoreIdentity};
use crate::gate::task::{AuditSource, RestoreError, Task, read_links};
use crate::kafka::read::PartitionSource;

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
) -> Result<(StoredTask, RestoreStats), RestoreError> {
    if let Some(store) = store {
        return restore_with_store(sources, partition, policy, store);
    }
    let task = crate::gate::task::restore(sources.audit, partition, policy)?;
    let stats = RestoreStats {
        links_read: u64::try_from(task.chain.next_seq).unwrap_or(0),
        ..RestoreStats::default()
    };
    Ok((StoredTask::in_memory(task), stats))
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
) -> Result<(StoredTask, RestoreStats), RestoreError> {
    let src = sources.audit;
    let audit_topic = src.topic;
    let started = Instant::now();
    let store_err = |source| RestoreError::Store { partition, source };
    let dir = StateStore::dir_for(&opts.state_dir, audit_topic, partition);
    let identity = StoreIdentity::new(&opts.cluster, &opts.intents_topic, audit_topic, partition);
    let window = policy.limits.replay_window;
    let mut stats = RestoreStats::default();
    let opened = match StateStore::open(&dir, &identity, opts.cache_bytes)
        .and_then(|s| StoredTask::on_store(s, window))
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
            let followed = match (other, task.store.as_ref(), head.as_ref()) {
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
    task.task.mark_committed();
    // The changelog holds this state when its head names the restored chain head.
    let chain = &task.task.chain;
    let epoch = head
        .filter(|(_, h)| h.audit_next_seq == chain.next_seq && h.audit_hash == chain.hash)
        .map(|(id, h)| Epoch {
            id,
            ring: h.replay_ring,
        })
        .filter(|e| e.holds_window(window as u64));
    if let Some(p) = task.store.as_mut() {
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
        next_seq = task.task.chain.next_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored partition task on its local state store"
    );
    Ok((task, stats))
}

/// The task again on its store, after the store was written behind its back (a load).
fn reopen(mut task: StoredTask, window: usize) -> Result<StoredTask, StateStoreError> {
    match task.store.take() {
        Some(p) => StoredTask::on_store(p.store, window).map(|(t, _)| t),
        None => Ok(task),
    }
}

impl StoredTask {
    /// Loads the replay id a link will remember (restore reads nothing else from the store).
    fn prefetch_replay(
        &mut self,
        event: &crate::wire::audit::AuditEvent,
    ) -> Result<(), StateStoreError> {
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
) -> Result<(StoredTask, Option<StoreCheckpoint>), StateStoreError> {
    StateStore::wipe(dir)?;
    stats.wiped = true;
    StoredTask::on_store(StateStore::open(dir, identity, opts.cache_bytes)?, window)
}

/// True when the committed audit log holds the checkpoint's link: sequence and hash at its
/// offset. Anything else (a recreated topic, another cluster's store, a log that lost its
/// tail) means the store cannot be trusted.
fn confirmed(
    src: AuditSource<'_>,
    partition: i32,
    cp: &StoreCheckpoint,
) -> Result<bool, RestoreError> {
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
pub fn differences(store: &StateStore, rebuilt: &Task) -> Result<Vec<String>, StateStoreError> {
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
