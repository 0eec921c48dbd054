//! A task's restore and takeover, the I/O around the task manager: restore a partition's task
//! (local store, changelog or audit log), read where the group stands on it, copy its state into
//! the changelog under a new epoch when the changelog cannot hold it, and queue its takeover
//! announcement.

use std::time::Instant;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info};

use super::{OP_TIMEOUT, Session};
use crate::clock::now_ms;
use crate::gate::GateError;
use crate::gate::events::GovernanceEvent;
use crate::gate::persist::{RestoreSources, RestoreStats, StoredTask, restore_task};
use crate::gate::task::AuditSource;

/// Records per transaction when a partition's state is copied into the changelog.
const COPY_CHUNK: usize = 20_000;

impl Session<'_> {
    /// Restores the task of `partition` from the audit log if this instance has none, records
    /// where the group stands on it, and announces the takeover in its chain (`GATE_STARTED`).
    pub(super) fn ensure_task(&mut self, partition: i32) -> Result<(), GateError> {
        if self.tasks.contains(partition) {
            return Ok(());
        }
        // A restore can take long: do not hold the open transaction (and the readers behind the
        // last stable offset) across it, nor let it run into the transaction timeout.
        if self.eos.txn().is_some() {
            self.commit()?;
        }
        let started = Instant::now();
        crate::gate::lifecycle::RESTORE_PROGRESS.begin(partition, now_ms());
        let restored = self.restore_locked(partition);
        crate::gate::lifecycle::RESTORE_PROGRESS.end();
        let (mut task, stats) = restored?;
        debug!(partition, "task restored; reading the group's position");
        let resume = self.group_position(partition)?;
        debug!(
            partition,
            resume, "group position read; announcing the takeover"
        );
        if !task.changelog_current() {
            let epoch = self.copy_to_changelog(partition, &task, resume)?;
            task.changelog_written(epoch);
        }
        let event = GovernanceEvent::GateStarted {
            gate_id: self.opts.gate_id.clone(),
            gate_version: env!("CARGO_PKG_VERSION"),
            partition,
            restored_links: task.task.chain.next_seq,
            replayed_links: stats.links_read,
            warm: stats.warm,
            restored_from: stats.source(self.store.is_some()),
            artifacts: task.artifact_count(),
            last_decided_offset: task.task.last_decided_offset,
            restore_ms: started.elapsed().as_millis() as u64,
        };
        self.tasks.adopt(partition, task, resume, event);
        Ok(())
    }

    /// Restores `partition`'s task (`persist::restore_task`) once no standby round holds its
    /// store: what [`Session::ensure_task`] announces.
    pub(super) fn restore_locked(
        &self,
        partition: i32,
    ) -> Result<(StoredTask, RestoreStats), GateError> {
        let src = AuditSource {
            brokers: &self.opts.brokers,
            topic: &self.opts.topics.audit,
            timeout: self.opts.restore_timeout,
            reader: self.audit_reader,
        };
        let sources = RestoreSources {
            audit: src,
            changelog_topic: &self.opts.topics.changelog,
        };
        // Waits for a standby round on this partition's store to finish.
        let lock = self.standbys.store_lock(partition);
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        let store = self.store.as_ref();
        Ok(restore_task(
            sources,
            partition,
            self.watch.current(),
            store,
        )?)
    }

    /// Writes a restored task's whole state into the changelog under a new epoch, in
    /// transactions of [`COPY_CHUNK`] records that carry the partition's unchanged group offset
    /// (so a zombie instance is fenced), the head last. Until that head commits, a cold restore
    /// does not use the copy (it finds no head of its epoch).
    pub(super) fn copy_to_changelog(
        &self,
        partition: i32,
        task: &StoredTask,
        resume: i64,
    ) -> Result<crate::gate::changelog::Epoch, GateError> {
        let epoch = task.new_changelog_epoch();
        let topic = &self.opts.topics.changelog;
        let started = Instant::now();
        let mut cursor = crate::gate::store::ExportCursor::default();
        let mut copied = 0u64;
        loop {
            let mut records =
                task.changelog_copy(&mut cursor, epoch, topic, partition, COPY_CHUNK)?;
            // An empty chunk means the state is all written: the head goes in last, alone.
            let last = records.is_empty();
            if last {
                records.push(task.changelog_copy_head(epoch, topic, partition)?);
            } else {
                copied += records.len() as u64;
            }
            let cgm = self.group_metadata()?;
            self.eos
                .commit_alone(&records, &[(partition, resume)], cgm)?;
            if last {
                break;
            }
        }
        info!(
            partition,
            records = copied,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state changelog written from the local store (new epoch)"
        );
        Ok(epoch)
    }

    /// Copies into the changelog, under a new epoch, the state of every task whose epoch can no
    /// longer hold it (its replay window outgrew the ring). Between the commit and the copy the
    /// changelog's head is behind the audit log, so a restore then would not use it.
    pub(super) fn recopy_changelogs(&mut self) -> Result<(), GateError> {
        for p in self.tasks.stale_changelogs() {
            let at = self.tasks.fencing(p);
            let Some(mut task) = self.tasks.take(p) else {
                continue;
            };
            let epoch = self.copy_to_changelog(p, &task, at.unwrap_or(0))?;
            task.changelog_written(epoch);
            self.tasks.put_back(p, task);
        }
        Ok(())
    }

    /// The group's committed offset of `partition`, or the log start when none is committed.
    pub(super) fn group_position(&self, partition: i32) -> Result<i64, GateError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.opts.topics.intents, partition);
        let committed = self.consumer.committed_offsets(tpl, OP_TIMEOUT)?;
        let offset = committed
            .find_partition(&self.opts.topics.intents, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        match offset {
            Some(o) => Ok(o),
            None => Ok(self
                .consumer
                .fetch_watermarks(&self.opts.topics.intents, partition, OP_TIMEOUT)?
                .0),
        }
    }
}
