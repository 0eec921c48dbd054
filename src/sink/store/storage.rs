//! Storage as one trait: [`Storage`] is what the rest of the program needs of a backend (open
//! the store the sink writes to, read what it holds for reconcile, check it answers), and
//! [`Backend`] is the `--backend` choice that names one. PostgreSQL ([`super::pg::PgStorage`])
//! and the filesystem ([`super::fs::FsStorage`]) each implement it in their own module; only
//! [`Backend::storage`] tells them apart.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::fs::FsStorage;
use super::objects::ObjectStoreConfig;
use super::pg::PgStorage;
use super::{StoreError, VersionStore};
use crate::sink::SinkError;

/// `(product, artifact, version)`.
pub type VersionKey = (String, String, i64);

/// What one side says about one version: the intent that made it and the content's SHA-256
/// ("" for a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Intent id.
    pub intent_id: String,
    /// Hex SHA-256 of the actual content bytes ("" for none).
    pub content_sha256: String,
}

/// Storage as read for reconcile: what every backend reports so `reconcile::diff` can compare
/// it with the topic.
#[derive(Debug, Default, Clone)]
pub struct StorageSide {
    /// Stored versions.
    pub versions: BTreeMap<VersionKey, Fingerprint>,
    /// Versions removed by retention (expected absences).
    pub purged: HashSet<VersionKey>,
    /// `(partition, offset)` quarantined for this topic.
    pub quarantined: HashSet<(i32, i64)>,
}

/// The store the sink loop writes to, whichever backend opened it.
pub type BackendStore = Box<dyn VersionStore>;

/// A storage backend as everything outside the write loop uses it; object-safe (boxed
/// futures) so the backend chosen at run time is one `Arc<dyn Storage>`.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The `--backend` name of this storage.
    fn name(&self) -> &'static str;

    /// The store the sink writes to, ready to write (connected and its schema checked, or the
    /// data directory opened); None if shutdown came first.
    fn open<'a>(
        &'a self,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Option<BackendStore>, SinkError>>;

    /// Storage as reconcile sees it: each stored version's intent and the SHA-256 of its
    /// stored bytes, purged keys, and the quarantined coordinates of `topic`.
    fn storage_side<'a>(&'a self, topic: &'a str)
    -> BoxFuture<'a, Result<StorageSide, StoreError>>;

    /// One readiness check for the admin server: Ok when the storage answers, else why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Where the sink stores versions, chosen once from `--backend pg|fs` (with `--pg-url` or
/// `--data-dir`); everything that depends on the backend goes through [`Backend::storage`].
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

    /// The storage this choice names: the one place the backends are told apart.
    pub fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Backend::Pg { url, objects } => Arc::new(PgStorage {
                url: url.clone(),
                objects: objects.clone(),
            }),
            Backend::Fs { dir } => Arc::new(FsStorage { dir: dir.clone() }),
        }
    }

    /// The backend's `--backend` name.
    pub fn name(&self) -> &'static str {
        self.storage().name()
    }

    /// The health check of this storage, for the admin server's readiness.
    pub fn probe(&self) -> StorageProbe {
        StorageProbe(self.storage())
    }

    /// The store the sink writes to (see [`Storage::open`]).
    pub async fn connect(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<BackendStore>, SinkError> {
        self.storage().open(shutdown).await
    }

    /// Storage as reconcile sees it (see [`Storage::storage_side`]).
    pub async fn storage_side(&self, topic: &str) -> Result<StorageSide, StoreError> {
        self.storage().storage_side(topic).await
    }
}

/// How the admin server checks that the storage is reachable (see [`Backend::probe`]).
#[derive(Debug, Clone)]
pub struct StorageProbe(pub Arc<dyn Storage>);

impl StorageProbe {
    /// One check: Ok when the storage answers, else why not.
    pub async fn check(&self) -> Result<(), String> {
        self.0.check().await
    }

    /// The `--backend` name of the storage probed.
    pub fn name(&self) -> &'static str {
        self.0.name()
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
        assert_eq!(pg.probe().name(), "pg");
        let probed = format!("{:?}", pg.probe());
        assert!(probed.contains("postgres://x@y/z"), "{probed}");
        let fs = Backend::from_args("fs", "postgres://x@y/z", dir, None).unwrap();
        assert_eq!(fs, Backend::Fs { dir: dir.into() });
        assert_eq!(fs.probe().name(), "fs");
        let probed = format!("{:?}", fs.probe());
        assert!(probed.contains("/tmp/data"), "{probed}");
        for b in [&pg, &fs] {
            assert!(Backend::NAMES.contains(&b.name()));
        }
        assert!(Backend::from_args("s3", "", dir, None).is_err());
    }

    #[tokio::test]
    async fn the_filesystem_probe_wants_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Backend::Fs {
            dir: dir.path().into(),
        };
        assert_eq!(ok.probe().check().await, Ok(()));
        let missing = Backend::Fs {
            dir: dir.path().join("absent"),
        };
        assert!(missing.probe().check().await.is_err());
    }
}
