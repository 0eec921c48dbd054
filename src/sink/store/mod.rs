//! Storage as a component: the backend-neutral types every store shares (what a batch holds,
//! what a write reports, why a store failed), the [`VersionStore`] trait the sink loop writes
//! through, and the [`Storage`] trait every backend implements, named by the [`Backend`]
//! choice parsed once from the command line ([`storage`]).
//!
//! - [`pg`]: PostgreSQL (`artifact_versions`, `sink_undecodable`), the production backend;
//! - [`fs`]: the local filesystem (content-addressed blobs, one index file per version).

pub mod fs;
pub mod objects;
pub mod pg;
pub(crate) mod placement;
pub mod roles;
pub mod row;
pub mod storage;

use std::time::SystemTime;

use futures::future::BoxFuture;

use super::observe::BatchOutcome;
use crate::wire::accepted::AcceptedArtifact;

pub use fs::{FsStorage, FsStore};
pub use objects::{ContentObjects, ObjectError, ObjectStoreConfig};
pub use pg::{MIGRATIONS, PgSink, PgStorage, Store};
pub use row::ArtifactRow;
pub use storage::{
    Backend, BackendStore, Fingerprint, Storage, StorageProbe, StorageSide, UnknownBackend,
    VersionKey,
};

/// Why the store could not do what was asked; `is_data_error` tells a refused row from an outage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The connection URL does not parse: an operator mistake, retrying cannot help.
    #[error("bad PostgreSQL URL: {0}")]
    Config(String),
    /// Connecting or querying failed (outage, refused row, missing grant...).
    #[error("postgres: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A migration script failed; the whole migration transaction was rolled back.
    #[error("migration {name} failed: {}", describe(.source))]
    Migration {
        /// Migration name, e.g. `0001_artifacts`.
        name: &'static str,
        /// Database error.
        source: tokio_postgres::Error,
    },
    /// The filesystem backend failed (disk full, permissions, ...).
    #[error("filesystem: {0}")]
    Fs(#[from] std::io::Error),
    /// A stored row does not read back as an artifact version (hand-edited database?).
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// The object store holding content failed (outage, credentials): retry.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The schema registry could not be asked which schema wrote a record: retry, never
    /// quarantine the record for it.
    #[error(transparent)]
    Registry(#[from] crate::kafka::registry::RegistryError),
}

/// The server's message and SQLSTATE when there is one (tokio-postgres alone says "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

impl StoreError {
    /// True when the database refused the data itself (SQLSTATE classes 22, 23, 54), so
    /// retrying the same row can never succeed and it must be quarantined instead.
    pub fn is_data_error(&self) -> bool {
        match self {
            StoreError::Db(e) => e.code().is_some_and(|c| {
                let code = c.code();
                code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
            }),
            _ => false,
        }
    }
}

/// A decoded record of `bucket.accepted` with where it came from, so a refused row can be
/// quarantined under its Kafka coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Kafka topic the record was read from.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// The decoded version.
    pub artifact: AcceptedArtifact,
}

/// A record of `bucket.accepted` that did not decode, kept with its raw bytes so it is not lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// Kafka topic the record was read from.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Record value as read (None for a null value).
    pub raw: Option<Vec<u8>>,
    /// Why it could not be stored as a version.
    pub error: String,
}

/// What one `write_batch` did, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Versions newly stored.
    pub inserted: usize,
    /// Versions that were already stored by the same intent (a replay: a no-op).
    pub replayed: usize,
    /// Records written to `sink_undecodable` (undecodable, conflicting or refused).
    pub quarantined: usize,
    /// Of those, decoded accepted versions the store could not keep (a conflict or a refused
    /// row): accepted but not stored, an incident (docs/runbook.md, BucketSinkVersionQuarantined).
    pub versions_quarantined: usize,
}

impl BatchReport {
    /// The figures the sink's metrics count.
    pub fn outcome(&self) -> BatchOutcome {
        BatchOutcome {
            inserted: self.inserted,
            versions_quarantined: self.versions_quarantined,
            undecodable: self.quarantined.saturating_sub(self.versions_quarantined),
        }
    }
}

/// A version read back from `artifact_versions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// The version as the gate accepted it.
    pub artifact: AcceptedArtifact,
    /// When the sink stored it.
    pub stored_at: SystemTime,
}

/// Storage the sink loop writes to: PostgreSQL ([`PgSink`]) or the filesystem ([`FsStore`]);
/// object-safe (boxed futures, one per batch) so [`Storage::open`] can return either, and
/// `Sync` because the sink loop borrows it across awaits in a spawned task.
pub trait VersionStore: Send + Sync {
    /// Stores a batch in one durable, idempotent step; Ok means offsets may be committed.
    fn write_batch<'a>(
        &'a mut self,
        accepted: &'a [Accepted],
        undecodable: &'a [Undecodable],
    ) -> BoxFuture<'a, Result<BatchReport, StoreError>>;

    /// Called before retrying a failed write (e.g. reconnect); a no-op when nothing to do.
    fn recover(&mut self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// A boxed store writes like the store it holds (what [`Storage::open`] returns).
impl<S: VersionStore + ?Sized> VersionStore for Box<S> {
    fn write_batch<'a>(
        &'a mut self,
        accepted: &'a [Accepted],
        undecodable: &'a [Undecodable],
    ) -> BoxFuture<'a, Result<BatchReport, StoreError>> {
        (**self).write_batch(accepted, undecodable)
    }

    fn recover(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).recover()
    }
}
