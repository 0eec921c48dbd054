//! Storage as a component: the backend-neutral types every store shares (what a batch holds,
//! what a write reports, why a store failed), the [`VersionStore`] trait the sink loop writes
//! through, and the [`Backend`] choice parsed once from the command line.
//!
//! - [`pg`]: PostgreSQL (`artifact_versions`, `sink_undecodable`), the production backend;
//! - [`fs`]: the local filesystem (content-addressed blobs, one index file per version).

pub mod fs;
pub mod objects;
pub mod pg;
pub(crate) mod placement;
pub mod roles;
pub mod row;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::SinkError;
use super::observe::BatchOutcome;
use super::reconcile::StorageSide;
use crate::wire::accepted::AcceptedArtifact;

pub use fs::FsStore;
pub use objects::{ContentObjects, ObjectError, ObjectStoreConfig};
pub use pg::{MIGRATIONS, PgSink, Store};
pub use row::ArtifactRow;

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
    Registry(#[from] crate::registry::RegistryError),
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

/// Storage the sink loop writes to: PostgreSQL ([`PgSink`]) or the filesystem ([`FsStore`]).
pub trait VersionStore: Send {
    /// Stores a batch in one durable, idempotent step; Ok means offsets may be committed.
    fn write_batch(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
    ) -> impl std::future::Future<Output = Result<BatchReport, StoreError>> + Send;

    /// Called before retrying a failed write (e.g. reconnect); a no-op when nothing to do.
    fn recover(&mut self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Where the sink stores versions, chosen once from `--backend pg|fs` (with `--pg-url` or
/// `--data-dir`); everything that depends on the backend matches on this, never on its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL at this URL (the production backend), content in an object store when one
    /// is configured, else in the row.
    Pg {
        /// libpq URL, e.g. `postgres://bucket_sink@127.0.0.1:5432/bucket`.
        url: String,
        /// The object store content goes to (`--content-store`).
        objects: Option<ObjectStoreConfig>,
    },
    /// A local data directory (laptop demo: no audit index, no read API).
    Fs {
        /// The data directory.
        dir: PathBuf,
    },
}

/// A backend name other than those in [`Backend::NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown storage backend {0:?} (expected pg or fs)")]
pub struct UnknownBackend(pub String);

impl Backend {
    /// The names `--backend` accepts.
    pub const NAMES: [&'static str; 2] = ["pg", "fs"];

    /// The backend named `name`, with the argument it needs (the other one is ignored).
    pub fn from_args(
        name: &str,
        pg_url: &str,
        data_dir: &Path,
        objects: Option<ObjectStoreConfig>,
    ) -> Result<Backend, UnknownBackend> {
        match name {
            "pg" => Ok(Backend::Pg {
                url: pg_url.to_string(),
                objects,
            }),
            "fs" => Ok(Backend::Fs {
                dir: data_dir.to_path_buf(),
            }),
            other => Err(UnknownBackend(other.to_string())),
        }
    }

    /// The backend's `--backend` name.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Pg { .. } => "pg",
            Backend::Fs { .. } => "fs",
        }
    }

    /// The health check of this storage, for the admin server's readiness.
    pub fn probe(&self) -> StorageProbe {
        match self {
            Backend::Pg { url, objects } => StorageProbe::Pg(url.clone(), objects.clone()),
            Backend::Fs { dir } => StorageProbe::Fs(dir.clone()),
        }
    }

    /// The store the sink writes to: PostgreSQL connected (retrying with backoff while it is
    /// down) and its schema checked, or the data directory opened. None if shutdown came first.
    pub async fn connect(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<BackendStore>, SinkError> {
        match self {
            Backend::Pg { url, objects } => {
                let objects = objects
                    .as_ref()
                    .map(ContentObjects::open)
                    .transpose()
                    .map_err(|e| SinkError::Config(e.to_string()))?;
                let Some(store) = pg::connect_until_up(url, shutdown).await? else {
                    return Ok(None);
                };
                store.check_schema().await.map_err(|e| {
                    SinkError::Config(format!(
                        "database schema not ready ({e}); run the migrations as the owner role first"
                    ))
                })?;
                if let Some(o) = &objects {
                    claim_until_answered(o, &store, shutdown).await?;
                }
                let url = url.clone();
                if let Some(o) = &objects {
                    tracing::info!(content_store = o.url(), "content goes to the object store");
                }
                Ok(Some(BackendStore::Pg(Box::new(PgSink {
                    store,
                    url,
                    objects,
                }))))
            }
            Backend::Fs { dir } => Ok(Some(BackendStore::Fs(FsStore::open(dir)?))),
        }
    }

    /// Storage as reconcile sees it (each stored version's intent and content digest).
    pub async fn storage_side(&self, topic: &str) -> Result<StorageSide, StoreError> {
        match self {
            Backend::Pg { url, objects } => {
                let objects = objects.as_ref().map(ContentObjects::open).transpose()?;
                let store = Store::connect(url).await?;
                store.storage_side(topic, objects.as_ref()).await
            }
            Backend::Fs { dir } => {
                let store = FsStore::open(dir)?;
                let topic = topic.to_string();
                tokio::task::spawn_blocking(move || store.storage_side(&topic))
                    .await
                    .map_err(|e| StoreError::Fs(std::io::Error::other(e)))?
            }
        }
    }
}

/// Claims the object-store prefix for this database (its `<prefix>/deployment` marker),
/// retrying while the store does not answer; another database's prefix stops the sink.
async fn claim_until_answered(
    objects: &ContentObjects,
    store: &pg::Store,
    shutdown: &CancellationToken,
) -> Result<(), SinkError> {
    let deployment = store
        .deployment_id()
        .await
        .map_err(|e| SinkError::Config(format!("reading the deployment identity: {e}")))?;
    let mut delay = crate::sink::RETRY_FIRST;
    loop {
        match objects.claim(&deployment).await {
            Ok(()) => return Ok(()),
            Err(e @ ObjectError::Config(_)) => return Err(SinkError::Config(e.to_string())),
            Err(error) => tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                "object store unavailable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(crate::sink::RETRY_MAX);
    }
}

/// The store a [`Backend`] opens; the sink loop writes through it.
#[derive(Debug)]
pub enum BackendStore {
    /// PostgreSQL (boxed: it holds the object store's client when content goes there).
    Pg(Box<PgSink>),
    /// The filesystem.
    Fs(FsStore),
}

impl VersionStore for BackendStore {
    async fn write_batch(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
    ) -> Result<BatchReport, StoreError> {
        match self {
            BackendStore::Pg(s) => s.write_batch(accepted, undecodable).await,
            BackendStore::Fs(s) => VersionStore::write_batch(s, accepted, undecodable).await,
        }
    }

    async fn recover(&mut self) -> Result<(), StoreError> {
        match self {
            BackendStore::Pg(s) => s.recover().await,
            BackendStore::Fs(s) => s.recover().await,
        }
    }
}

/// How the admin server checks that the storage is reachable (see [`Backend::probe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageProbe {
    /// PostgreSQL at this URL (`SELECT 1` on a fresh connection), and the object store when
    /// content goes to one (a one-key listing).
    Pg(String, Option<ObjectStoreConfig>),
    /// A data directory that must exist and be a directory.
    Fs(PathBuf),
}

impl StorageProbe {
    /// One check: Ok when the storage answers, else why not.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            StorageProbe::Pg(url, objects) => {
                pg::probe(url).await?;
                let Some(config) = objects else {
                    return Ok(());
                };
                let objects = ContentObjects::open(config).map_err(|e| e.to_string())?;
                match tokio::time::timeout(std::time::Duration::from_secs(3), objects.probe_read())
                    .await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("object store: no answer within 3 s".into()),
                }
            }
            StorageProbe::Fs(dir) => match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(format!("{} is not a directory", dir.display())),
                Err(e) => Err(format!("{}: {e}", dir.display())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_parsed_once_with_the_argument_it_uses() {
        let dir = Path::new("/tmp/data");
        let pg = Backend::from_args("pg", "postgres://x@y/z", dir, None).unwrap();
        assert_eq!(
            pg,
            Backend::Pg {
                url: "postgres://x@y/z".into(),
                objects: None,
            }
        );
        assert_eq!(
            pg.probe(),
            StorageProbe::Pg("postgres://x@y/z".into(), None)
        );
        let fs = Backend::from_args("fs", "postgres://x@y/z", dir, None).unwrap();
        assert_eq!(fs.probe(), StorageProbe::Fs(dir.to_path_buf()));
        for b in [&pg, &fs] {
            assert!(Backend::NAMES.contains(&b.name()));
        }
        assert!(Backend::from_args("s3", "", dir, None).is_err());
    }
}
