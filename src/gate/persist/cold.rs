//! Loading a partition's store from its state changelog, the second choice of the restore order
//! (`persist::restore_with_store`): all of it into an empty store, or the rest after a standby's
//! progress, and only when the audit log's last committed link confirms the changelog's head.

use tracing::{info, warn};

use super::StoredTask;
use crate::gate::changelog::{self, ChangelogError, Head};
use crate::gate::store::FollowProgress;
use crate::gate::task::{AuditSource, RestoreError};
use crate::kafka::read::{PartitionSource, ReadError};

/// What a cold load starts from: the changelog's latest head (with its epoch), and how far a
/// standby's store already followed that epoch (None: the store is empty).
#[derive(Debug, Clone, Copy)]
pub(super) struct ColdLoad<'a> {
    pub(super) head: Option<&'a (u64, Head)>,
    pub(super) followed: Option<FollowProgress>,
}

/// Loads the store from the changelog (all of it into an empty store, or the rest after a
/// standby's progress) when its latest head names the audit log's last committed link; returns
/// that link's offset. `None` (nothing loaded that matters: the caller wipes) when there is no
/// such head, the window is too large for the changelog's replay ring, or the changelog does
/// not read back.
pub(super) fn cold_from_changelog(
    src: AuditSource<'_>,
    changelog: &PartitionSource<'_>,
    partition: i32,
    load: ColdLoad<'_>,
    task: &mut StoredTask,
) -> Result<Option<i64>, RestoreError> {
    let Some((epoch, head)) = load.head else {
        return Ok(None);
    };
    if head.replay_window > head.replay_ring {
        warn!(
            partition,
            window = head.replay_window,
            ring = head.replay_ring,
            "state changelog head with a replay window larger than its ring; restoring from the audit log"
        );
        return Ok(None);
    }
    let last = last_link(src, partition)?;
    let Some(audit_offset) = last
        .filter(|(_, seq, hash)| *seq == head.audit_next_seq - 1 && *hash == head.audit_hash)
        .map(|(offset, _, _)| offset)
    else {
        warn!(
            partition,
            head_seq = head.audit_next_seq - 1,
            "state changelog head not confirmed by the audit log; restoring from the audit log"
        );
        return Ok(None);
    };
    let Some(p) = task.store.as_ref() else {
        return Ok(None);
    };
    match changelog::read::load(
        changelog,
        *epoch,
        head,
        audit_offset,
        &p.store,
        load.followed,
    ) {
        Ok(entries) => {
            info!(
                partition,
                entries,
                standby = load.followed.is_some(),
                "loaded the local state store from the state changelog"
            );
            Ok(Some(audit_offset))
        }
        Err(ReadError::Handler(e @ (ChangelogError::Corrupt(_) | ChangelogError::Format(_)))) => {
            warn!(partition, error = %e, "state changelog unreadable; restoring from the audit log");
            Ok(None)
        }
        Err(e) => Err(changelog_error(partition, e)),
    }
}

/// (offset, seq, hash) of the last committed link of an audit partition.
fn last_link(
    src: AuditSource<'_>,
    partition: i32,
) -> Result<Option<(i64, i64, String)>, RestoreError> {
    let audit = PartitionSource {
        brokers: src.brokers,
        topic: src.topic,
        partition,
        timeout: src.timeout,
    };
    audit
        .last_matching(|m| {
            use rdkafka::Message;
            let link = src
                .reader
                .read(m.payload())
                .map_err(|e| RestoreError::Corrupt {
                    partition,
                    offset: m.offset(),
                    problem: e.to_string(),
                })?;
            Ok(Some((m.offset(), link.event.seq, link.event.hash)))
        })
        .map_err(|e| match e {
            ReadError::Kafka(source) => RestoreError::Kafka { partition, source },
            ReadError::Timeout(timeout) => RestoreError::Timeout { partition, timeout },
            ReadError::Handler(e) => e,
        })
}

pub(super) fn changelog_error(partition: i32, e: ReadError<ChangelogError>) -> RestoreError {
    match e {
        ReadError::Kafka(source) => RestoreError::Kafka { partition, source },
        ReadError::Timeout(timeout) => RestoreError::Timeout { partition, timeout },
        ReadError::Handler(ChangelogError::Store(source)) => {
            RestoreError::Store { partition, source }
        }
        ReadError::Handler(e) => RestoreError::Corrupt {
            partition,
            offset: -1,
            problem: e.to_string(),
        },
    }
}
