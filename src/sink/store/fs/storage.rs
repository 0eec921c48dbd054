//! The filesystem as a [`Storage`]: opening the data directory, the readiness check (the
//! directory exists), and reading what the index and blobs hold for reconcile.

use std::fs;
use std::path::PathBuf;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::super::StoreError;
use super::super::storage::{BackendStore, Fingerprint, Storage, StorageSide};
use super::{FsStore, dir_name};
use crate::sink::SinkError;

/// The filesystem backend: a local data directory (laptop demo: no audit index, no read API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsStorage {
    /// The data directory.
    pub dir: PathBuf,
}

impl Storage for FsStorage {
    fn name(&self) -> &'static str {
        "fs"
    }

    fn open<'a>(
        &'a self,
        _shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Option<BackendStore>, SinkError>> {
        Box::pin(async move { Ok(Some(Box::new(FsStore::open(&self.dir)?) as BackendStore)) })
    }

    fn storage_side<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<StorageSide, StoreError>> {
        Box::pin(async move {
            let store = FsStore::open(&self.dir)?;
            let topic = topic.to_string();
            tokio::task::spawn_blocking(move || store.storage_side(&topic))
                .await
                .map_err(|e| StoreError::Fs(std::io::Error::other(e)))?
        })
    }

    /// The data directory must exist and be a directory.
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let dir = &self.dir;
        let answer = match fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("{} is not a directory", dir.display())),
            Err(e) => Err(format!("{}: {e}", dir.display())),
        };
        Box::pin(async move { answer })
    }
}

impl FsStore {
    /// Storage as reconcile sees it: each version's intent and the SHA-256 of its blob's
    /// actual bytes (re-hashed, so a damaged blob shows up as a mismatch).
    pub fn storage_side(&self, topic: &str) -> Result<StorageSide, StoreError> {
        let mut side = StorageSide::default();
        for e in self.entries()? {
            let sha = match self.content(&e) {
                Ok(Some(bytes)) => hex::encode(Sha256::digest(&bytes)),
                Ok(None) => String::new(),
                Err(StoreError::Fs(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                    "blob missing".to_string()
                }
                Err(err) => return Err(err),
            };
            side.versions.insert(
                (e.row.product_id, e.row.artifact_id, e.row.version),
                Fingerprint {
                    intent_id: e.row.intent_id,
                    content_sha256: sha,
                },
            );
        }
        let q = self.root.join("quarantine").join(dir_name(topic));
        if q.is_dir() {
            for f in fs::read_dir(q)? {
                let name = f?.file_name().to_string_lossy().into_owned();
                let coords = name
                    .strip_suffix(".json")
                    .and_then(|n| n.split_once('-'))
                    .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)));
                if let Some(c) = coords {
                    side.quarantined.insert(c);
                }
            }
        }
        Ok(side)
    }
}
