//! Whole-store export and import, a chunk at a time: what a state changelog is seeded from
//! (export) and what a cold restore from the changelog writes (import). Memory stays bounded by
//! the chunk, not by the number of artifacts.

use std::collections::HashMap;
use std::sync::PoisonError;

use super::write::ReplayCounters;
use super::{
    META_CHECKPOINT, META_FOLLOW, META_REPLAY, StateStore, StateStoreError, StoreCheckpoint, Table,
    codec, ids,
};
use crate::core::state::{ArtifactKey, OffenderState, ReplayKey, Usage};

/// One piece of a partition's state, with its value in the store's own layout (so export and
/// import copy bytes instead of decoding and re-encoding them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateEntry {
    /// An artifact's record ([`codec::artifact`] bytes).
    Artifact(ArtifactKey, Vec<u8>),
    /// A product's usage ([`codec::usage`] bytes).
    Usage(String, Vec<u8>),
    /// A product's GCRA arrival time ([`codec::rate`] bytes).
    Rate(String, Vec<u8>),
    /// An integration's offender state ([`codec::offender`] bytes).
    Offender(String, Vec<u8>),
    /// A remembered intent id and its replay-window position.
    Seen(ReplayKey, u64),
}

impl StateEntry {
    /// An artifact entry from its record.
    pub fn artifact(
        key: ArtifactKey,
        record: &crate::core::ArtifactRecord,
    ) -> Result<StateEntry, StateStoreError> {
        Ok(StateEntry::Artifact(key, codec::artifact(record)?))
    }

    /// A usage entry.
    pub fn usage(product: String, usage: &Usage) -> StateEntry {
        StateEntry::Usage(product, codec::usage(usage))
    }

    /// A rate entry.
    pub fn rate(product: String, tat_us: i64) -> StateEntry {
        StateEntry::Rate(product, codec::rate(tat_us))
    }

    /// An offender entry.
    pub fn offender(integration: String, o: &OffenderState) -> Result<StateEntry, StateStoreError> {
        Ok(StateEntry::Offender(integration, codec::offender(o)?))
    }

    /// Checks that the value bytes decode (a changelog is input: never store what we could not
    /// read back).
    pub fn validate(&self) -> Result<(), StateStoreError> {
        match self {
            StateEntry::Artifact(_, v) => codec::read_artifact(v).map(drop),
            StateEntry::Usage(_, v) => codec::read_usage(v).map(drop),
            StateEntry::Rate(_, v) => codec::read_rate(v).map(drop),
            StateEntry::Offender(_, v) => codec::read_offender(v).map(drop),
            StateEntry::Seen(..) => Ok(()),
        }
    }
}

/// The tables an export walks, in order.
const EXPORTED: [Table; 5] = [
    Table::Usage,
    Table::Rates,
    Table::Offenders,
    Table::ReplayOrder,
    Table::Artifacts,
];

/// Where an export stands: the table it is in and the last key it gave.
#[derive(Debug, Clone, Default)]
pub struct ExportCursor {
    table: usize,
    after: Option<Vec<u8>>,
    names: Option<HashMap<u32, String>>,
}

impl StateStore {
    /// The next (at most `limit`) entries of the whole state; empty when the export is done.
    /// Replay ids come in position order. Not consistent with commits made during the export:
    /// export a store no one writes to.
    pub fn export(
        &self,
        cursor: &mut ExportCursor,
        limit: usize,
    ) -> Result<Vec<StateEntry>, StateStoreError> {
        let names = cursor.names.get_or_insert_with(|| {
            self.products
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .names()
        });
        while let Some(table) = EXPORTED.get(cursor.table).copied() {
            let chunk = self
                .engine
                .scan_after(table, cursor.after.as_deref(), limit)?;
            let Some((last, _)) = chunk.last() else {
                cursor.table += 1;
                cursor.after = None;
                continue;
            };
            cursor.after = Some(last.clone());
            let mut out = Vec::with_capacity(chunk.len());
            for (k, v) in chunk {
                if let Some(entry) = self.export_entry(table, k, v, names)? {
                    out.push(entry);
                }
            }
            return Ok(out);
        }
        Ok(Vec::new())
    }

    fn export_entry(
        &self,
        table: Table,
        k: Vec<u8>,
        v: Vec<u8>,
        names: &HashMap<u32, String>,
    ) -> Result<Option<StateEntry>, StateStoreError> {
        let name = |k: Vec<u8>| {
            String::from_utf8(k)
                .map_err(|_| StateStoreError::Corrupt(format!("{table:?} key: invalid UTF-8")))
        };
        Ok(Some(match table {
            Table::Usage => StateEntry::Usage(name(k)?, v),
            Table::Rates => StateEntry::Rate(name(k)?, v),
            Table::Offenders => StateEntry::Offender(name(k)?, v),
            Table::Artifacts => StateEntry::Artifact(ids::read_artifact_key(&k, names)?, v),
            Table::ReplayOrder => {
                let position = codec::read_counter(&k, "replay position")?;
                // Only the id's current position counts (an id is remembered once).
                let current = self
                    .engine
                    .get(Table::ReplayIds, &v)?
                    .map(|p| codec::read_counter(&p, "replay position"))
                    .transpose()?;
                if current != Some(position) {
                    return Ok(None);
                }
                StateEntry::Seen(ids::read_replay_key(&v, names)?, position)
            }
            Table::Meta | Table::Products | Table::ReplayIds => return Ok(None),
        }))
    }

    /// Writes a chunk of entries into the store as they are (positions kept), without a
    /// checkpoint: the store is not usable until [`StateStore::finish_import`].
    pub fn import(&self, entries: &[StateEntry]) -> Result<(), StateStoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut products = self
            .products
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut w = self.engine.writer();
        let mut product = |name: &str, w: &mut super::engine::WriteBatch| {
            let (id, new) = products.intern(name)?;
            if let Some(value) = new {
                w.put(Table::Products, name.as_bytes(), value);
            }
            Ok::<u32, StateStoreError>(id)
        };
        for entry in entries {
            match entry {
                StateEntry::Artifact(key, v) => {
                    let p = product(&key.product_id, &mut w)?;
                    w.put(Table::Artifacts, &ids::artifact_key(p, key), v.clone());
                }
                StateEntry::Usage(name, v) => w.put(Table::Usage, name.as_bytes(), v.clone()),
                StateEntry::Rate(name, v) => w.put(Table::Rates, name.as_bytes(), v.clone()),
                StateEntry::Offender(name, v) => {
                    w.put(Table::Offenders, name.as_bytes(), v.clone())
                }
                StateEntry::Seen(key, position) => {
                    let p = product(&key.0, &mut w)?;
                    let id = ids::replay_key(p, key);
                    w.put(Table::ReplayOrder, &position.to_be_bytes(), id.clone());
                    w.put(Table::ReplayIds, &id, codec::counter(*position));
                }
            }
        }
        w.sort_by_key();
        self.engine.commit(w)?;
        *self
            .products
            .write()
            .unwrap_or_else(PoisonError::into_inner) = products;
        Ok(())
    }

    /// Ends an import: the replay counters and the checkpoint the imported state reflects,
    /// written durably. The caller imports only replay ids with positions in
    /// `replay.head..replay.next` (each id once).
    pub fn finish_import(
        &self,
        replay: ReplayCounters,
        checkpoint: &StoreCheckpoint,
    ) -> Result<(), StateStoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut w = self.engine.writer();
        w.put(Table::Meta, META_CHECKPOINT, checkpoint.encode()?);
        w.put(Table::Meta, META_REPLAY, replay.encode());
        // A followed store completed by a takeover is a decided store from now on.
        w.remove(Table::Meta, META_FOLLOW);
        self.engine.commit(w)?;
        self.engine.sync()?;
        *self.replay.lock().unwrap_or_else(PoisonError::into_inner) = replay;
        Ok(())
    }
}
