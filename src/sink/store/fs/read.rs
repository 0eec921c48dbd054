//! Reading one artifact's versions back from the data directory: what the read API serves when
//! versions are kept on the filesystem (the same version reads PostgreSQL answers).

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::SystemTime;

use super::super::StoreError;
use super::{FsStore, IndexEntry, dir_name};

/// An index file read back, with when it was stored: its modification time, since an index
/// file is written once (temp file and rename) and never rewritten.
fn read_entry(path: &Path) -> Result<(IndexEntry, SystemTime), StoreError> {
    let entry: IndexEntry = serde_json::from_slice(&fs::read(path)?)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
    let stored_at = fs::metadata(path)?.modified()?;
    Ok((entry, stored_at))
}

impl FsStore {
    /// The versions of one artifact, oldest first, each with when it was stored (none when the
    /// artifact was never stored).
    pub fn versions_of(
        &self,
        product: &str,
        artifact: &str,
    ) -> Result<Vec<(IndexEntry, SystemTime)>, StoreError> {
        let dir = self
            .root
            .join("index")
            .join(dir_name(product))
            .join(dir_name(artifact));
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for file in listing {
            let path = file?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let (entry, stored_at) = read_entry(&path)?;
            if entry.row.product_id == product && entry.row.artifact_id == artifact {
                out.push((entry, stored_at));
            }
        }
        out.sort_by_key(|(e, _)| e.row.version);
        Ok(out)
    }

    /// One version of one artifact with when it was stored, or None.
    pub fn version_of(
        &self,
        product: &str,
        artifact: &str,
        version: i64,
    ) -> Result<Option<(IndexEntry, SystemTime)>, StoreError> {
        let path = self.index_path(product, artifact, version);
        match fs::metadata(&path) {
            Ok(_) => read_entry(&path).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
