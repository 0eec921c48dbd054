//! Local filesystem backend (the embedded default for a laptop demo): content-addressed blobs
//! plus a one-file-per-version index, crash-safe and idempotent.
//!
//! Layout under the data directory:
//! - `blobs/<first 2 hex>/<sha256>`: content bytes, named by their SHA-256 (stored once);
//! - `index/<hex product>/<hex artifact>/<version, 20 digits>.json`: the version's fields and
//!   the blob it points to (hex-encoded names: ids can never escape the directory; an id longer
//!   than 120 bytes is named `sha256-<digest of the id>` instead, to fit a file name);
//! - `quarantine/<hex topic>/<partition>-<offset>.json`: records not stored as versions (same
//!   naming rule as the ids).
//!
//! Every file is written as temp file → fsync → rename → fsync of the directory, blob before
//! index entry, so after a crash an index entry always points at a complete blob, and a
//! version file either exists complete or not at all. An existing version file is never
//! rewritten: a replay by the same intent is a no-op, another intent is quarantined.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use futures::future::BoxFuture;

use super::{Accepted, ArtifactRow, BatchReport, StoreError, Undecodable, VersionStore};

mod read;
mod storage;

pub use storage::FsStorage;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One version in the index (content lives in its blob): the stored row, the blob and where
/// on the accepted topic it was read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The version's fields.
    #[serde(flatten)]
    pub row: ArtifactRow,
    /// SHA-256 of the blob holding the content (None for a tombstone).
    pub blob: Option<String>,
    /// Accepted-topic partition it was read from.
    pub partition: i32,
    /// Accepted-topic offset it was read from.
    pub offset: i64,
}

/// A quarantined record.
#[derive(Debug, Serialize, Deserialize)]
struct QuarantineEntry {
    topic: String,
    partition: i32,
    offset: i64,
    raw_hex: Option<String>,
    error: String,
}

/// The filesystem store rooted at a data directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

/// Longest id kept readable in a directory name: its hex spelling stays under the 255-byte
/// name limit of common filesystems (ext4, XFS, APFS, NTFS).
const MAX_HEX_NAME_ID: usize = 120;

/// The directory name of a product or artifact id: its hex spelling, or `sha256-<digest>` when
/// that would be too long for a file name (ids may be 256 bytes; the gate accepts them, so the
/// store must too). The index entry inside carries the id itself, so nothing reads it back from
/// the name, and existing stores keep their layout.
fn dir_name(id: &str) -> String {
    if id.len() <= MAX_HEX_NAME_ID {
        hex::encode(id)
    } else {
        format!("sha256-{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, fsyncing each parent that gained an entry.
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no parent"))?;
    ensure_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl FsStore {
    /// Opens (creating) the data directory and removes temp files a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root = root.into();
        for d in ["blobs", "index", "quarantine"] {
            ensure_dir(&root.join(d))?;
        }
        let store = FsStore { root };
        store.sweep_temp_files(&store.root.clone())?;
        Ok(store)
    }

    fn sweep_temp_files(&self, dir: &Path) -> Result<(), StoreError> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                self.sweep_temp_files(&path)?;
            } else if entry.file_name().to_string_lossy().contains(".tmp-") {
                tracing::info!(path = %path.display(), "removing a temp file left by a crash");
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    fn blob_path(&self, sha: &str) -> PathBuf {
        let prefix = sha.get(..2).unwrap_or("xx");
        self.root.join("blobs").join(prefix).join(sha)
    }

    fn index_path(&self, product: &str, artifact: &str, version: i64) -> PathBuf {
        // Versions are positive; a sign prefix keeps odd ones distinct and sortable enough.
        let v = if version < 0 {
            format!("n{}", version.unsigned_abs())
        } else {
            format!("{version:020}")
        };
        self.root
            .join("index")
            .join(dir_name(product))
            .join(dir_name(artifact))
            .join(format!("{v}.json"))
    }

    fn quarantine(&self, u: &Undecodable) -> Result<(), StoreError> {
        let path = self
            .root
            .join("quarantine")
            .join(dir_name(&u.topic))
            .join(format!("{}-{}.json", u.partition, u.offset));
        if path.exists() {
            return Ok(());
        }
        let entry = QuarantineEntry {
            topic: u.topic.clone(),
            partition: u.partition,
            offset: u.offset,
            raw_hex: u.raw.as_deref().map(hex::encode),
            error: u.error.clone(),
        };
        write_atomic(
            &path,
            &serde_json::to_vec(&entry).map_err(std::io::Error::other)?,
        )?;
        Ok(())
    }

    /// Stores one version; returns Ok(true) inserted, Ok(false) replay, Err(reason) conflict.
    fn write_one(&self, a: &Accepted) -> Result<Result<bool, String>, StoreError> {
        let v = &a.artifact;
        let path = self.index_path(&v.product_id, &v.artifact_id, v.version);
        if path.exists() {
            let existing: IndexEntry = serde_json::from_slice(&fs::read(&path)?)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
            if existing.row.intent_id == v.intent_id {
                return Ok(Ok(false));
            }
            return Ok(Err(format!(
                "conflict: {}/{} version {} already stored from intent {}, not {}",
                v.product_id, v.artifact_id, v.version, existing.row.intent_id, v.intent_id
            )));
        }
        let blob = match &v.content {
            Some(content) => {
                let sha = hex::encode(Sha256::digest(content));
                let blob_path = self.blob_path(&sha);
                if !blob_path.exists() {
                    write_atomic(&blob_path, content)?;
                }
                Some(sha)
            }
            None => None,
        };
        let entry = IndexEntry {
            row: ArtifactRow::of(v),
            blob,
            partition: a.partition,
            offset: a.offset,
        };
        let json = serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?;
        write_atomic(&path, &json)?;
        Ok(Ok(true))
    }

    /// Stores a batch: every version durably (idempotent), then the quarantined records. When
    /// this returns Ok everything is on disk and fsynced, and offsets may be committed.
    pub fn write_batch_blocking(
        &self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
    ) -> Result<BatchReport, StoreError> {
        let mut report = BatchReport::default();
        for a in accepted {
            match self.write_one(a)? {
                Ok(true) => report.inserted += 1,
                Ok(false) => report.replayed += 1,
                Err(reason) => {
                    tracing::warn!(partition = a.partition, offset = a.offset, %reason,
                        "version quarantined");
                    self.quarantine(&Undecodable {
                        topic: a.topic.clone(),
                        partition: a.partition,
                        offset: a.offset,
                        raw: crate::wire::accepted::encode(&a.artifact).ok(),
                        error: reason,
                    })?;
                    report.quarantined += 1;
                    report.versions_quarantined += 1;
                }
            }
        }
        for u in undecodable {
            self.quarantine(u)?;
            report.quarantined += 1;
        }
        Ok(report)
    }

    /// Every index entry, in (product, artifact, version) order.
    pub fn entries(&self) -> Result<Vec<IndexEntry>, StoreError> {
        let mut out = BTreeMap::new();
        let index = self.root.join("index");
        for product in fs::read_dir(&index)? {
            for artifact in fs::read_dir(product?.path())? {
                for file in fs::read_dir(artifact?.path())? {
                    let path = file?.path();
                    if path.extension().is_none_or(|e| e != "json") {
                        continue;
                    }
                    let e: IndexEntry = serde_json::from_slice(&fs::read(&path)?)
                        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
                    let key = (
                        e.row.product_id.clone(),
                        e.row.artifact_id.clone(),
                        e.row.version,
                    );
                    out.insert(key, e);
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// The content of an entry, read back from its blob (None for a tombstone).
    pub fn content(&self, e: &IndexEntry) -> Result<Option<Vec<u8>>, StoreError> {
        e.blob
            .as_deref()
            .map(|sha| fs::read(self.blob_path(sha)).map_err(StoreError::from))
            .transpose()
    }
}

impl VersionStore for FsStore {
    fn write_batch<'a>(
        &'a mut self,
        accepted: &'a [Accepted],
        undecodable: &'a [Undecodable],
    ) -> BoxFuture<'a, Result<BatchReport, StoreError>> {
        Box::pin(async move {
            // Blocking file I/O with fsyncs: off the async workers when the runtime allows it.
            match tokio::runtime::Handle::current().runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| self.write_batch_blocking(accepted, undecodable))
                }
                _ => self.write_batch_blocking(accepted, undecodable),
            }
        })
    }

    fn recover(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::accepted::tests::sample;

    fn accepted(offset: i64, version: i64, intent: &str, content: &[u8]) -> Accepted {
        let mut a = sample();
        a.version = version;
        a.intent_id = intent.into();
        a.content = Some(content.to_vec());
        a.content_sha256 = hex::encode(Sha256::digest(content));
        Accepted {
            topic: "bucket.accepted".into(),
            partition: 0,
            offset,
            artifact: a,
        }
    }

    #[test]
    fn index_files_of_the_earlier_layout_still_read_and_unknown_fields_are_refused() {
        let earlier = r#"{
  "product_id": "p", "artifact_id": "a", "version": 1, "intent_id": "i1",
  "artifact_class": "DOCUMENT", "owner_id": "o", "requester_id": "r", "integration_id": "g",
  "operation": "CREATE", "deleted": false, "blob": "ab", "content_sha256": "ab",
  "content_size": 1, "content_type": "text/plain", "metadata": "{}", "purpose": "x",
  "client_time": 5, "decided_at": 6, "policy_version": "v", "source_partition": 0,
  "source_offset": 7, "partition": 2, "offset": 3
}"#;
        let e: IndexEntry = serde_json::from_str(earlier).unwrap();
        assert_eq!((e.row.client_time_ms, e.row.decided_at_ms), (5, 6));
        assert_eq!(
            (e.partition, e.offset, e.blob.as_deref()),
            (2, 3, Some("ab"))
        );
        let again: IndexEntry = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(again, e);
        let unknown = earlier.replace("\"offset\": 3", "\"offset\": 3, \"extra\": 1");
        assert!(serde_json::from_str::<IndexEntry>(&unknown).is_err());
    }

    #[test]
    fn writes_are_idempotent_content_addressed_and_conflicts_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let batch = vec![
            accepted(0, 1, "i1", b"same bytes"),
            accepted(1, 2, "i2", b"same bytes"),
        ];
        let r = store.write_batch_blocking(&batch, &[]).unwrap();
        assert_eq!((r.inserted, r.replayed, r.quarantined), (2, 0, 0));
        // Replay: no-op. Another intent for version 1: quarantined, original untouched.
        let r = store.write_batch_blocking(&batch, &[]).unwrap();
        assert_eq!((r.inserted, r.replayed), (0, 2));
        let r = store
            .write_batch_blocking(&[accepted(2, 1, "other", b"evil")], &[])
            .unwrap();
        assert_eq!(r.quarantined, 1);
        let entries = store.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].row.intent_id, "i1");
        assert_eq!(store.content(&entries[0]).unwrap().unwrap(), b"same bytes");
        // One blob for two versions with the same bytes.
        let blobs: usize = fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(blobs, 1);
        let side = store.storage_side("bucket.accepted").unwrap();
        assert_eq!(side.versions.len(), 2);
        assert!(side.quarantined.contains(&(0, 2)));
    }

    #[test]
    fn the_longest_ids_the_gate_accepts_are_stored_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        // 256 bytes each (the gate's MAX_ID_LEN), multi-byte characters: hex would be 512
        // characters, over every common file-name limit.
        let long = |c: char| std::iter::repeat_n(c, 128).collect::<String>();
        let mut a = accepted(0, 1, "i1", b"x");
        a.artifact.product_id = long('é');
        a.artifact.artifact_id = long('ü');
        let mut b = a.clone();
        b.offset = 1;
        b.artifact.artifact_id = format!("{}ä", &long('ü')[..254]);
        let r = store.write_batch_blocking(&[a.clone(), b], &[]).unwrap();
        assert_eq!((r.inserted, r.quarantined), (2, 0));
        let r = store.write_batch_blocking(&[a.clone()], &[]).unwrap();
        assert_eq!((r.inserted, r.replayed), (0, 1));
        let entries = store.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(
            entries
                .iter()
                .any(|e| e.row.artifact_id == a.artifact.artifact_id)
        );
        // Short ids keep their readable hex names.
        assert_eq!(dir_name("doc-1"), hex::encode("doc-1"));
    }

    #[test]
    fn ids_cannot_escape_the_data_directory_and_temp_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let mut a = accepted(0, 1, "i1", b"x");
        a.artifact.product_id = "../../etc".into();
        a.artifact.artifact_id = "/passwd".into();
        store.write_batch_blocking(&[a], &[]).unwrap();
        assert!(
            store
                .index_path("../../etc", "/passwd", 1)
                .starts_with(dir.path())
        );
        let stray = dir.path().join("index").join(".x.json.tmp-1-1");
        fs::write(&stray, b"partial").unwrap();
        FsStore::open(dir.path()).unwrap();
        assert!(!stray.exists());
    }
}
