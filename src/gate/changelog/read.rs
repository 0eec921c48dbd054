//! Reading a partition's changelog: its latest head (a short scan back from the end), and a
//! cold load of its live state into an empty store, a chunk at a time.

use std::ops::ControlFlow;

use rdkafka::{Message, Offset};

use super::codec::{self, ChangelogError, Head, Record};
use crate::gate::store::{
    FollowProgress, ReplayCounters, StateEntry, StateStore, StateStoreError, StoreCheckpoint,
};
use crate::kafka::read::{PartitionSource, ReadError};

/// Entries imported into the store per engine commit during a load.
const IMPORT_CHUNK: usize = 50_000;

/// The latest head of a changelog partition, with its epoch. `Ok(None)` when the partition has
/// no head this build can read (new or emptied topic, another format, a damaged record): the
/// caller restores from the audit log.
pub fn latest_head(
    src: &PartitionSource<'_>,
) -> Result<Option<(u64, Head)>, ReadError<ChangelogError>> {
    let found = src.last_matching(|m| {
        let key = m.key().unwrap_or_default();
        if key.first() != Some(&codec::TAG_HEAD) {
            return Ok(None);
        }
        Ok(Some(codec::decode(key, m.payload().unwrap_or_default())))
    })?;
    Ok(match found {
        Some(Ok((epoch, Record::Head(head)))) => Some((epoch, head)),
        Some(Ok(_)) => None,
        Some(Err(e)) => {
            tracing::warn!(partition = src.partition, error = %e, "state changelog head unreadable; restoring from the audit log");
            None
        }
        None => None,
    })
}

/// Loads the state of `epoch` into a store: every entry of that epoch in log order (a later
/// value of a key wins), replay ids only inside the head's window, then the head as the
/// store's checkpoint at `audit_offset` (the offset of the audit link the head names). The
/// store is empty, or followed the same epoch up to `resume` (a standby's store): then only the
/// changelog after it is read, and the replay ids between its floor and the head's are
/// forgotten. Returns the entries imported. Reading (and decoding) and writing the store
/// overlap: chunks go to an importer thread through a queue of two.
pub fn load(
    src: &PartitionSource<'_>,
    epoch: u64,
    head: &Head,
    audit_offset: i64,
    store: &StateStore,
    resume: Option<FollowProgress>,
) -> Result<u64, ReadError<ChangelogError>> {
    let (to_importer, chunks) = std::sync::mpsc::sync_channel::<Vec<StateEntry>>(2);
    std::thread::scope(|scope| {
        let importer = scope.spawn(move || -> Result<u64, StateStoreError> {
            let mut imported = 0u64;
            for chunk in chunks {
                store.import(&chunk)?;
                imported += chunk.len() as u64;
            }
            if let Some(followed) = resume {
                store.evict_replay_between(followed.replay.head, head.replay_head)?;
            }
            store.finish_import(replay_of(head), &checkpoint_of(head, audit_offset))?;
            Ok(imported)
        });
        let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
        let start = resume.map_or(Offset::Beginning, |r| Offset::Offset(r.next_offset));
        let read = src.read(start, |m| {
            crate::gate::lifecycle::RESTORE_PROGRESS.read_one();
            let (e, record) =
                codec::decode(m.key().unwrap_or_default(), m.payload().unwrap_or_default())?;
            match record {
                Record::State(StateEntry::Seen(_, p))
                    if p < head.replay_head || p >= head.replay_next => {}
                Record::State(entry) if e == epoch => chunk.push(entry),
                _ => {}
            }
            if chunk.len() >= IMPORT_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(IMPORT_CHUNK));
                // A closed queue means the importer failed: its error is reported below.
                if to_importer.send(full).is_err() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        });
        let read = read.map(|_| {
            let _ = to_importer.send(chunk);
        });
        drop(to_importer);
        let imported = match importer.join() {
            Ok(result) => result.map_err(|e| ReadError::Handler(ChangelogError::Store(e))),
            Err(_) => Err(ReadError::Handler(ChangelogError::Corrupt(
                "the changelog importer panicked".into(),
            ))),
        };
        // A read error explains an importer that saw too little; report it first.
        read?;
        imported
    })
}

/// The store checkpoint a head stands for, its link being at `audit_offset`.
pub fn checkpoint_of(head: &Head, audit_offset: i64) -> StoreCheckpoint {
    StoreCheckpoint {
        audit_next_seq: head.audit_next_seq,
        audit_hash: head.audit_hash.clone(),
        audit_offset,
        last_decided_offset: head.last_decided_offset,
        policy_version: head.policy_version.clone(),
        control_next: head.control_next,
        tree_edge: head.tree_edge.clone(),
    }
}

/// The replay window a head describes.
pub fn replay_of(head: &Head) -> ReplayCounters {
    ReplayCounters {
        head: head.replay_head,
        next: head.replay_next,
        window: head.replay_window,
    }
}

/// Brings a following (standby) store up to the last head of `epoch`, the changelog's latest
/// epoch, whose latest head was `latest` when the round began. Reads from the store's
/// `progress` (from the beginning without one: the store is empty) to the end, imports the
/// entries of `epoch` a chunk at a time (replay ids only from the floor on), and at the end
/// records the progress of the last head read ([`StateStore::followed_to`]). Entries after
/// that head are imported too and read again next time, which changes nothing: the same values
/// in the same order.
pub fn follow(
    src: &PartitionSource<'_>,
    epoch: u64,
    latest: &Head,
    store: &StateStore,
    progress: Option<FollowProgress>,
) -> Result<Followed, ReadError<ChangelogError>> {
    let floor = progress.map_or(latest.replay_head, |p| p.replay.head);
    let start = progress.map_or(Offset::Beginning, |p| Offset::Offset(p.next_offset));
    let mut chunk = Vec::new();
    let mut last: Option<FollowProgress> = progress;
    let mut ours_seen = progress.is_some();
    let mut replaced = false;
    src.read(start, |m| {
        let (e, record) =
            codec::decode(m.key().unwrap_or_default(), m.payload().unwrap_or_default())?;
        match record {
            Record::Head(_) if e != epoch && ours_seen => {
                replaced = true;
                return Ok(ControlFlow::Break(()));
            }
            Record::Head(h) if e == epoch => {
                ours_seen = true;
                last = Some(FollowProgress {
                    epoch,
                    next_offset: m.offset() + 1,
                    replay: replay_of(&h),
                });
            }
            Record::State(StateEntry::Seen(_, p)) if p < floor => {}
            Record::State(entry) if e == epoch => chunk.push(entry),
            _ => {}
        }
        if chunk.len() >= IMPORT_CHUNK {
            store
                .import(&std::mem::take(&mut chunk))
                .map_err(ChangelogError::Store)?;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if replaced {
        return Ok(Followed::Replaced);
    }
    store
        .import(&chunk)
        .map_err(|e| ReadError::Handler(ChangelogError::Store(e)))?;
    let Some(now) = last else {
        return Ok(Followed::Replaced);
    };
    if Some(now) != progress {
        store
            .followed_to(floor, &now)
            .map_err(|e| ReadError::Handler(ChangelogError::Store(e)))?;
    }
    Ok(Followed::To(now))
}

/// What one round of following a changelog came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The store holds the epoch's state up to this progress.
    To(FollowProgress),
    /// The epoch is no longer the latest (or has no head): start over on an empty store.
    Replaced,
}
