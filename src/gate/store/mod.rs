//! The persistent state of one partition task (issue 15, ADR 0009): the artifact index, usage,
//! rate and offender state and the replay window, in an embedded store on local disk, one
//! directory per partition. Memory is bounded by the configured cache, not by the number of
//! artifacts. Every [`StateStore::commit`] is one atomic batch that ends with the
//! [`StoreCheckpoint`] it reflects: after a crash the store holds exactly some committed batch.
//!
//! The store is a cache of the audit log, never the source of truth: a store of another
//! identity or format generation is refused ([`StateStoreError::Identity`],
//! [`StateStoreError::Generation`]) so the caller wipes it and rebuilds.

pub mod bulk;
pub mod changes;
pub mod codec;
pub mod engine;
pub mod follow;
pub mod ids;
pub mod meta;
mod positions;
mod write;

pub use write::ReplayCounters;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use crate::core::state::{ArtifactKey, ArtifactRecord, OffenderState, ReplayKey, Usage};

pub use bulk::{ExportCursor, StateEntry};
pub use changes::Changes;
pub use engine::Table;
pub use follow::FollowProgress;
pub use meta::{STORE_GENERATION, StoreCheckpoint, StoreIdentity};

use engine::Engine;
use ids::Interner;

/// Meta key of the store's identity.
const META_IDENTITY: &[u8] = b"identity";
/// Meta key of the checkpoint.
const META_CHECKPOINT: &[u8] = b"checkpoint";
/// Meta key of the replay window's counters.
const META_REPLAY: &[u8] = b"replay";
/// Meta key of a following (standby) store's progress through its changelog.
const META_FOLLOW: &[u8] = b"follow";

/// Why the store failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum StateStoreError {
    /// The storage engine failed (I/O, a store already open, a damaged file).
    #[error("state store: {0}")]
    Engine(#[source] redb::Error),
    /// File system error outside the engine (creating or wiping the directory).
    #[error("state store directory: {0}")]
    Io(#[from] std::io::Error),
    /// The store belongs to another cluster, topic or partition: wipe it.
    #[error("state store belongs to {found:?}, not {expected:?}")]
    Identity {
        /// Identity found in the store.
        found: Box<StoreIdentity>,
        /// Identity asked for.
        expected: Box<StoreIdentity>,
    },
    /// The store was written in another format generation: wipe it.
    #[error("state store generation {found}, this build needs {expected}")]
    Generation {
        /// Generation found in the store.
        found: u32,
        /// Generation asked for.
        expected: u32,
    },
    /// A stored value does not decode: wipe the store.
    #[error("state store corrupt: {0}")]
    Corrupt(String),
    /// A string or list too long for its length field; nothing was written.
    #[error("value too long for the state store ({0})")]
    TooLong(usize),
}

impl StateStoreError {
    /// True when the store cannot be used as it is and should be wiped and rebuilt from the
    /// changelog or the audit log: another identity or generation, or damaged contents. False
    /// for errors a retry may cure (I/O, the store still open elsewhere).
    pub fn wipe_and_rebuild(&self) -> bool {
        match self {
            StateStoreError::Identity { .. }
            | StateStoreError::Generation { .. }
            | StateStoreError::Corrupt(_) => true,
            StateStoreError::Engine(e) => match e {
                redb::Error::Corrupted(_)
                | redb::Error::UpgradeRequired(_)
                | redb::Error::TableTypeMismatch { .. }
                | redb::Error::TypeDefinitionChanged { .. } => true,
                // How redb reports a file that is not a redb database.
                redb::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
                _ => false,
            },
            StateStoreError::Io(_) | StateStoreError::TooLong(_) => false,
        }
    }
}

/// The persistent state of one partition task. `Sync`: reads may run on one thread while a
/// commit runs on another; they see the last committed batch.
pub struct StateStore {
    engine: Engine,
    dir: PathBuf,
    products: RwLock<Interner>,
    /// Held for a whole commit: one writer at a time.
    writer: Mutex<()>,
    replay: Mutex<ReplayCounters>,
    /// Test hook: fail the next commit after building its batch, before writing it.
    #[cfg(test)]
    fail_next_commit: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("dir", &self.dir)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Directory of a partition's store: `<state_dir>/<audit topic>-<partition>`.
    pub fn dir_for(state_dir: &Path, audit_topic: &str, partition: i32) -> PathBuf {
        state_dir.join(format!("{audit_topic}-{partition}"))
    }

    /// Opens (or creates) the store in `dir`, refusing one of another identity or generation;
    /// `cache_bytes` bounds the engine's block cache.
    pub fn open(
        dir: &Path,
        identity: &StoreIdentity,
        cache_bytes: u64,
    ) -> Result<StateStore, StateStoreError> {
        std::fs::create_dir_all(dir)?;
        let engine = Engine::open(dir, cache_bytes)?;
        match engine.get(Table::Meta, META_IDENTITY)? {
            Some(bytes) => check_identity(&bytes, identity)?,
            None => {
                let mut w = engine.writer();
                w.put(Table::Meta, META_IDENTITY, identity.encode()?);
                engine.commit(w)?;
                engine.sync()?;
            }
        }
        let products = Interner::from_entries(engine.scan(Table::Products)?)?;
        let replay = match engine.get(Table::Meta, META_REPLAY)? {
            Some(v) => ReplayCounters::decode(&v)?,
            None => ReplayCounters::default(),
        };
        Ok(StateStore {
            engine,
            dir: dir.to_path_buf(),
            products: RwLock::new(products),
            writer: Mutex::new(()),
            replay: Mutex::new(replay),
            #[cfg(test)]
            fail_next_commit: Default::default(),
        })
    }

    /// Deletes a store directory (after a refusal, or to rebuild from the audit log).
    pub fn wipe(dir: &Path) -> Result<(), StateStoreError> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The committed point the store reflects; None for a store never committed to.
    pub fn checkpoint(&self) -> Result<Option<StoreCheckpoint>, StateStoreError> {
        self.engine
            .get(Table::Meta, META_CHECKPOINT)?
            .map(|v| StoreCheckpoint::decode(&v))
            .transpose()
    }

    /// Current record of an artifact, if it was ever created.
    pub fn artifact(&self, key: &ArtifactKey) -> Result<Option<ArtifactRecord>, StateStoreError> {
        let Some(product) = self.product(&key.product_id) else {
            return Ok(None);
        };
        self.engine
            .get(Table::Artifacts, &ids::artifact_key(product, key))?
            .map(|v| codec::read_artifact(&v))
            .transpose()
    }

    /// True when this (product, intent id) is in the replay window.
    pub fn seen(&self, key: &ReplayKey) -> Result<bool, StateStoreError> {
        let Some(product) = self.product(&key.0) else {
            return Ok(false);
        };
        Ok(self
            .engine
            .get(Table::ReplayIds, &ids::replay_key(product, key))?
            .is_some())
    }

    /// Usage of every product (a small map, loaded whole).
    pub fn usage_all(&self) -> Result<HashMap<String, Usage>, StateStoreError> {
        self.load_all(Table::Usage, codec::read_usage)
    }

    /// GCRA arrival time (µs) of every product that has one.
    pub fn rate_all(&self) -> Result<HashMap<String, i64>, StateStoreError> {
        self.load_all(Table::Rates, codec::read_rate)
    }

    /// Offender state of every integration that has one.
    pub fn offenders_all(&self) -> Result<HashMap<String, OffenderState>, StateStoreError> {
        self.load_all(Table::Offenders, codec::read_offender)
    }

    /// Number of artifacts stored, deleted ones included (for metrics).
    pub fn len_artifacts(&self) -> Result<u64, StateStoreError> {
        self.engine.len(Table::Artifacts)
    }

    /// Number of intent ids in the replay window (exact).
    pub fn replay_len(&self) -> u64 {
        let c = self.replay_state();
        c.next - c.head
    }

    /// The replay window's counters as of the last commit.
    pub fn replay_state(&self) -> ReplayCounters {
        *self.replay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes one batch atomically: the changes, the replay window's evictions and the
    /// checkpoint. On error nothing of it is written and the store is as before.
    pub fn commit(
        &self,
        changes: &Changes,
        checkpoint: &StoreCheckpoint,
    ) -> Result<(), StateStoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let products = self
            .products
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut plan = write::Plan::new(&self.engine, products, self.replay_state());
        plan.changes(changes)?;
        let (w, products, replay) = plan.finish(checkpoint)?;
        #[cfg(test)]
        if self
            .fail_next_commit
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return Err(StateStoreError::Io(std::io::Error::other(
                "injected failure",
            )));
        }
        self.engine.commit(w)?;
        *self
            .products
            .write()
            .unwrap_or_else(PoisonError::into_inner) = products;
        *self.replay.lock().unwrap_or_else(PoisonError::into_inner) = replay;
        Ok(())
    }

    /// Makes every commit so far durable (fsync). Without it a crash may lose the commits of
    /// the last [`engine::DURABLE_EVERY`] (never part of one); dropping the store syncs too.
    pub fn sync(&self) -> Result<(), StateStoreError> {
        self.engine.sync()
    }

    /// Interned number of a product, if it was ever written.
    fn product(&self, name: &str) -> Option<u32> {
        self.products
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
    }

    fn load_all<T>(
        &self,
        table: Table,
        decode: fn(&[u8]) -> Result<T, StateStoreError>,
    ) -> Result<HashMap<String, T>, StateStoreError> {
        let mut out = HashMap::new();
        for (k, v) in self.engine.scan(table)? {
            let name = String::from_utf8(k)
                .map_err(|_| StateStoreError::Corrupt(format!("{table:?} key: invalid UTF-8")))?;
            out.insert(name, decode(&v)?);
        }
        Ok(out)
    }
}

/// Refuses a stored identity that is not `expected`.
fn check_identity(stored: &[u8], expected: &StoreIdentity) -> Result<(), StateStoreError> {
    match StoreIdentity::decode(stored)? {
        Err(found) => Err(StateStoreError::Generation {
            found,
            expected: expected.generation,
        }),
        Ok(found) if found.generation != expected.generation => Err(StateStoreError::Generation {
            found: found.generation,
            expected: expected.generation,
        }),
        Ok(found) if found != *expected => Err(StateStoreError::Identity {
            found: Box::new(found),
            expected: Box::new(expected.clone()),
        }),
        Ok(_) => Ok(()),
    }
}
