//! Reading a partition's changelog: its latest head (a short scan back from the end), and a
//! cold load of its live state into an empty store, a chunk at a time.

use std::ops::ControlFlow;

use rdkafka::{Message, Offset};

use super::codec::{self, ChangelogError, Head, Record};
use crate::gate::store::{Checkpoint, ReplayCounters, StateEntry, StateStore, StoreError};
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

/// Loads the state of `epoch` into an empty store: every entry of that epoch in log order (a
/// later value of a key wins), replay ids only inside the head's window, then the head as the
/// store's checkpoint at `audit_offset` (the offset of the audit link the head names). Returns
/// the entries imported. Reading (and decoding) and writing the store overlap: chunks go to an
/// importer thread through a queue of two.
pub fn load(
    src: &PartitionSource<'_>,
    epoch: u64,
    head: &Head,
    audit_offset: i64,
    store: &StateStore,
) -> Result<u64, ReadError<ChangelogError>> {
    let (to_importer, chunks) = std::sync::mpsc::sync_channel::<Vec<StateEntry>>(2);
    std::thread::scope(|scope| {
        let importer = scope.spawn(move || -> Result<u64, StoreError> {
            let mut imported = 0u64;
            for chunk in chunks {
                store.import(&chunk)?;
                imported += chunk.len() as u64;
            }
            let counters = ReplayCounters {
                head: head.replay_head,
                next: head.replay_next,
                window: head.replay_window,
            };
            store.finish_import(counters, &checkpoint_of(head, audit_offset))?;
            Ok(imported)
        });
        let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
        let read = src.read(Offset::Beginning, |m| {
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
pub fn checkpoint_of(head: &Head, audit_offset: i64) -> Checkpoint {
    Checkpoint {
        audit_next_seq: head.audit_next_seq,
        audit_hash: head.audit_hash.clone(),
        audit_offset,
        last_decided_offset: head.last_decided_offset,
        policy_version: head.policy_version.clone(),
        control_next: head.control_next,
        tree_edge: head.tree_edge.clone(),
    }
}
