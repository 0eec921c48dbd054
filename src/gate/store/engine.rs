//! The storage engine under the store: redb (ADR 0009), one file per partition. Everything
//! engine-specific is here; the rest of the store sees tables of byte keys and values.
//!
//! Durability: every commit is atomic (redb's copy-on-write B-tree with a commit slot). A
//! commit is made durable (fsync, with redb's quick-repair state) when [`DURABLE_EVERY`] has
//! passed since the last durable one, and on [`Engine::sync`] and drop; the commits between are
//! `Durability::None`, which a killed process loses. After a crash the file reverts to the last
//! durable commit, never to part of one: the caller replays the audit tail from its checkpoint.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use super::StateStoreError;

/// Longest time between durable commits.
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// File of the store inside its directory.
const FILE: &str = "state.redb";

/// The store's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Identity, checkpoint, replay counters.
    Meta,
    /// Product id → interned number.
    Products,
    /// (product number, artifact id) → record.
    Artifacts,
    /// Remembered intent id → its replay sequence number.
    ReplayIds,
    /// Replay sequence number → intent id (the FIFO order).
    ReplayOrder,
    /// Product id → usage.
    Usage,
    /// Product id → GCRA arrival time.
    Rates,
    /// Integration id → offender state.
    Offenders,
}

impl Table {
    const ALL: [Table; 8] = [
        Table::Meta,
        Table::Products,
        Table::Artifacts,
        Table::ReplayIds,
        Table::ReplayOrder,
        Table::Usage,
        Table::Rates,
        Table::Offenders,
    ];

    fn def(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(match self {
            Table::Meta => "meta",
            Table::Products => "products",
            Table::Artifacts => "artifacts",
            Table::ReplayIds => "replay_ids",
            Table::ReplayOrder => "replay_order",
            Table::Usage => "usage",
            Table::Rates => "rates",
            Table::Offenders => "offenders",
        })
    }
}

fn engine_error(e: impl Into<redb::Error>) -> StateStoreError {
    StateStoreError::Engine(e.into())
}

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The operations of one commit, applied in one write transaction.
#[derive(Debug, Default)]
pub struct WriteBatch(Vec<(Table, Vec<u8>, Option<Vec<u8>>)>);

impl WriteBatch {
    /// Sets a key.
    pub fn put(&mut self, table: Table, key: &[u8], value: Vec<u8>) {
        self.0.push((table, key.to_vec(), Some(value)));
    }

    /// Deletes a key.
    pub fn remove(&mut self, table: Table, key: &[u8]) {
        self.0.push((table, key.to_vec(), None));
    }

    /// Orders the operations by table and key, keeping the order of operations on one key (the
    /// last still wins): a bulk load then walks each B-tree once instead of at random.
    pub fn sort_by_key(&mut self) {
        self.0.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    }
}

/// An open store file.
/// A table as of one read snapshot.
type SnapshotTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

pub struct Engine {
    db: Database,
    last_durable: Mutex<Instant>,
    /// One read snapshot of every table, shared by the point reads between two commits:
    /// opening a read transaction and its table per lookup cost more than the lookup.
    snapshot: Mutex<Option<Vec<SnapshotTable>>>,
}

impl Engine {
    /// Opens or creates the store file in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Engine, StateStoreError> {
        let db = Database::builder()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(dir.join(FILE))
            .map_err(engine_error)?;
        let engine = Engine {
            db,
            last_durable: Mutex::new(Instant::now()),
            snapshot: Mutex::new(None),
        };
        // Every table exists from the start, so reads never meet a missing table.
        let w = engine.begin(true)?;
        for t in Table::ALL {
            w.open_table(t.def()).map_err(engine_error)?;
        }
        w.commit().map_err(engine_error)?;
        Ok(engine)
    }

    fn begin(&self, durable: bool) -> Result<redb::WriteTransaction, StateStoreError> {
        let mut w = self.db.begin_write().map_err(engine_error)?;
        if durable {
            w.set_durability(Durability::Immediate)
                .map_err(engine_error)?;
            w.set_quick_repair(true);
        } else {
            w.set_durability(Durability::None).map_err(engine_error)?;
        }
        Ok(w)
    }

    fn since_durable(&self) -> Duration {
        self.last_durable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    fn mark_durable(&self) {
        *self
            .last_durable
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Value of a key, read from the snapshot of the last commit.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateStoreError> {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        if snapshot.is_none() {
            let r = self.db.begin_read().map_err(engine_error)?;
            let tables = Table::ALL
                .iter()
                .map(|t| r.open_table(t.def()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(engine_error)?;
            *snapshot = Some(tables);
        }
        let t = Table::ALL
            .iter()
            .position(|x| *x == table)
            .and_then(|i| snapshot.as_ref()?.get(i))
            .ok_or_else(|| StateStoreError::Corrupt(format!("table {table:?} not opened")))?;
        Ok(t.get(key)
            .map_err(engine_error)?
            .map(|v| v.value().to_vec()))
    }

    /// Every entry of a (small) table.
    pub fn scan(&self, table: Table) -> Result<Vec<Entry>, StateStoreError> {
        let r = self.db.begin_read().map_err(engine_error)?;
        let t = r.open_table(table.def()).map_err(engine_error)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(engine_error)? {
            let (k, v) = entry.map_err(engine_error)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Up to `limit` entries of a table in key order, starting after `after` (from the first
    /// when None): exports large tables a chunk at a time.
    pub fn scan_after(
        &self,
        table: Table,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StateStoreError> {
        use std::ops::Bound;
        let r = self.db.begin_read().map_err(engine_error)?;
        let t = r.open_table(table.def()).map_err(engine_error)?;
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut out = Vec::with_capacity(limit.min(65_536));
        for entry in t
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(engine_error)?
            .take(limit)
        {
            let (k, v) = entry.map_err(engine_error)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Number of entries of a table.
    pub fn len(&self, table: Table) -> Result<u64, StateStoreError> {
        let r = self.db.begin_read().map_err(engine_error)?;
        let t = r.open_table(table.def()).map_err(engine_error)?;
        t.len().map_err(engine_error)
    }

    /// A writer for one commit.
    pub fn writer(&self) -> WriteBatch {
        WriteBatch::default()
    }

    /// Applies a writer's operations in one atomic transaction (durable when due).
    pub fn commit(&self, w: WriteBatch) -> Result<(), StateStoreError> {
        // Reads after this commit returns see it (or, if it fails, still the previous one); the
        // snapshot is dropped before and after, as another thread may read meanwhile.
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let durable = self.since_durable() >= DURABLE_EVERY;
        let txn = self.begin(durable)?;
        {
            let mut tables = Vec::with_capacity(Table::ALL.len());
            for t in Table::ALL {
                tables.push(txn.open_table(t.def()).map_err(engine_error)?);
            }
            for (table, key, value) in &w.0 {
                let Some(t) = Table::ALL
                    .iter()
                    .position(|x| x == table)
                    .and_then(|i| tables.get_mut(i))
                else {
                    continue;
                };
                match value {
                    Some(v) => t.insert(key.as_slice(), v.as_slice()).map(drop),
                    None => t.remove(key.as_slice()).map(drop),
                }
                .map_err(engine_error)?;
            }
        }
        // Dropped uncommitted on any error above: the transaction aborts, nothing is written.
        let committed = txn.commit().map_err(engine_error);
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = None;
        committed?;
        if durable {
            self.mark_durable();
        }
        Ok(())
    }

    /// Makes every commit so far durable.
    pub fn sync(&self) -> Result<(), StateStoreError> {
        self.begin(true)?.commit().map_err(engine_error)?;
        self.mark_durable();
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "state store: final durable commit failed");
        }
    }
}
