//! Tiles on a filesystem: one directory per log (the log's URL prefix, served as static files),
//! written atomically (temporary file, fsync, rename) and idempotently, and read back as the
//! stored hashes proofs are computed from.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::TlogError;
use super::frontier::Frontier;
use super::hash::{Hash, Position};
use super::proof::HashReader;
use super::tiles::{
    TILE_HEIGHT, TILE_WIDTH, TileBuilder, TileId, TileKind, decode_entries, decode_hashes,
    perfect_root,
};

/// Where tiles are read from: a directory, an object store, HTTP.
pub trait TileSource {
    /// The bytes of tile `id`; [`TlogError::MissingHash`]-like errors when it is absent.
    fn read_tile(&self, id: &TileId) -> Result<Vec<u8>, TlogError>;
}

/// Whether [`FsTileStore::write`] changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The tile was written.
    New,
    /// An identical tile was already there (a replay after a crash).
    Unchanged,
}

/// A log's tiles and checkpoint under one directory (`<root>/tile/…`, `<root>/checkpoint`).
#[derive(Debug, Clone)]
pub struct FsTileStore {
    root: PathBuf,
}

/// Distinguishes temporary files of concurrent writes within one process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn io(context: String) -> impl FnOnce(std::io::Error) -> TlogError {
    move |source| TlogError::Io { context, source }
}

/// Writes `bytes` to `path` by a temporary file in the same directory and a rename, so a
/// reader (or a crash) sees the old file or the new one, never a torn one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TlogError> {
    let dir = path
        .parent()
        .ok_or(TlogError::Internal("tile path has no parent"))?;
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or(TlogError::Internal("tile path has no file name"))?;
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))?;
        // Make the rename durable; a directory that cannot be opened is not fatal here.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl FsTileStore {
    /// The store of the log whose prefix is the directory `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> FsTileStore {
        FsTileStore { root: root.into() }
    }

    /// The directory of this log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temporary files of writes a crash interrupted (`.<name>.tmp-<pid>-<n>`)
    /// anywhere under the log; returns how many. Only for the one process that writes here, at
    /// its start (the tiles service holds the directory's lock): another writer's files in
    /// flight would go too.
    pub fn remove_stale_temporaries(&self) -> Result<usize, TlogError> {
        fn walk(dir: &Path, removed: &mut usize) -> std::io::Result<()> {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for e in entries {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if e.file_type()?.is_dir() {
                    walk(&e.path(), removed)?;
                } else if name.starts_with('.') && name.contains(".tmp-") {
                    fs::remove_file(e.path())?;
                    *removed += 1;
                }
            }
            Ok(())
        }
        let mut removed = 0;
        walk(&self.root, &mut removed).map_err(io(format!(
            "removing temporaries under {}",
            self.root.display()
        )))?;
        Ok(removed)
    }

    fn path_of(&self, id: &TileId) -> PathBuf {
        self.root.join(id.path())
    }

    /// Writes a tile. Idempotent: an identical tile already there is left alone; different
    /// bytes at the same path are a [`TlogError::Conflict`] (tiles never change). Writing a full
    /// tile removes that tile's partial versions (C2SP allows it once the full tile exists);
    /// narrower partials are kept until then, as checkpoints at their sizes still name them.
    pub fn write(&self, id: &TileId, bytes: &[u8]) -> Result<Written, TlogError> {
        check_contents(id, bytes)?;
        let path = self.path_of(id);
        // A partial tile whose full tile exists is superseded (a replay after a crash must not
        // bring it back: the layout then equals a rebuild).
        if !id.is_full() && self.path_of(&id.full()).exists() {
            return Ok(Written::Unchanged);
        }
        match fs::read(&path) {
            Ok(existing) if existing == bytes => {
                // A crash may have come between writing the full tile and removing partials.
                if id.is_full() {
                    self.remove_partials(id)?;
                }
                return Ok(Written::Unchanged);
            }
            Ok(_) => {
                return Err(TlogError::Conflict(format!(
                    "{} already holds different bytes",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
        write_atomic(&path, bytes)?;
        if id.is_full() {
            self.remove_partials(id)?;
        }
        Ok(Written::New)
    }

    /// Removes the partial versions of full tile `id` (absent is fine).
    fn remove_partials(&self, id: &TileId) -> Result<(), TlogError> {
        let partials = self.root.join(format!("{}.p", id.path()));
        match fs::remove_dir_all(&partials) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {}", partials.display()))(e)),
        }
    }

    /// Replaces the `checkpoint` file (the one mutable resource of a tiled log) atomically.
    pub fn write_checkpoint(&self, note: &str) -> Result<(), TlogError> {
        write_atomic(&self.root.join("checkpoint"), note.as_bytes())
    }

    /// The current `checkpoint` file.
    pub fn read_checkpoint(&self) -> Result<String, TlogError> {
        let p = self.root.join("checkpoint");
        fs::read_to_string(&p).map_err(io(format!("reading {}", p.display())))
    }

    /// A builder that continues the log at `size` from the tiles on disk (restart after a
    /// crash: the partial tiles of the last checkpointed size give the pending hashes).
    pub fn resume_builder(&self, size: u64) -> Result<TileBuilder, TlogError> {
        let reader = TileHashReader::new(size, self);
        let frontier = Frontier::from_reader(size, &reader)?;
        let partials = super::tiles::partial_tiles_for(size)
            .into_iter()
            .map(|id| Ok((id, self.read_tile(&id)?)))
            .collect::<Result<Vec<_>, TlogError>>()?;
        TileBuilder::from_partials(frontier, &partials)
    }
}

/// Refuses contents that do not fit the tile's kind and width.
fn check_contents(id: &TileId, bytes: &[u8]) -> Result<(), TlogError> {
    if id.width == 0 || id.width > TILE_WIDTH {
        return Err(TlogError::Malformed(format!("tile width {}", id.width)));
    }
    let n = match id.kind {
        TileKind::Hashes(_) => decode_hashes(bytes)?.len(),
        TileKind::Entries => decode_entries(bytes)?.len(),
    };
    if n != usize::from(id.width) {
        return Err(TlogError::Malformed(format!(
            "{} holds {n} items, not {}",
            id.path(),
            id.width
        )));
    }
    Ok(())
}

impl TileSource for FsTileStore {
    fn read_tile(&self, id: &TileId) -> Result<Vec<u8>, TlogError> {
        let p = self.path_of(id);
        match fs::read(&p) {
            Ok(b) => Ok(b),
            // A partial tile may have been removed once its full tile was written.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !id.is_full() => {
                let full = self.path_of(&id.full());
                let b = fs::read(&full).map_err(io(format!("reading {}", p.display())))?;
                let width = usize::from(id.width);
                match id.kind {
                    TileKind::Hashes(_) => Ok(b.get(..width * 32).map(<[u8]>::to_vec).unwrap_or(b)),
                    // The first `width` entries of the full bundle: the partial's exact bytes.
                    TileKind::Entries => {
                        let entries = decode_entries(&b)?;
                        super::tiles::encode_entries(entries.get(..width).unwrap_or(&entries))
                    }
                }
            }
            Err(e) => Err(io(format!("reading {}", p.display()))(e)),
        }
    }
}

/// Stored hashes of the tree of `size` leaves, read from its tiles: a hash at level `l` comes
/// from the tile of level `l / 8`, hashed up `l % 8` levels within the tile.
pub struct TileHashReader<'a, S: TileSource + ?Sized> {
    size: u64,
    source: &'a S,
}

impl<'a, S: TileSource + ?Sized> TileHashReader<'a, S> {
    /// A reader for the tree of `size` leaves (tile widths follow from the size).
    pub fn new(size: u64, source: &'a S) -> TileHashReader<'a, S> {
        TileHashReader { size, source }
    }

    /// The tile holding tile-level `level` hash `at` in the tree of this size.
    fn tile_for(&self, level: u8, at: u64) -> Option<TileId> {
        let count = self.size.checked_shr(u32::from(level) * 8)?;
        if at >= count {
            return None;
        }
        let n = at >> 8;
        let width = if n < count >> 8 {
            TILE_WIDTH
        } else {
            (count & 255) as u16
        };
        Some(TileId::hashes(level, n, width))
    }
}

impl<S: TileSource + ?Sized> HashReader for TileHashReader<'_, S> {
    fn read_hashes(&self, positions: &[Position]) -> Result<Vec<Hash>, TlogError> {
        let mut cache: HashMap<TileId, Vec<Hash>> = HashMap::new();
        let mut out = Vec::with_capacity(positions.len());
        for p in positions {
            let tile_level = p.level / TILE_HEIGHT;
            let up = u32::from(p.level % TILE_HEIGHT);
            let first = p.index.checked_shl(up).ok_or(TlogError::MissingHash(*p))?;
            let last = first + (1u64 << up) - 1;
            let id = self
                .tile_for(tile_level, last)
                .ok_or(TlogError::MissingHash(*p))?;
            let hashes = match cache.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let hashes = decode_hashes(&self.source.read_tile(&id)?)?;
                    if hashes.len() != usize::from(id.width) {
                        return Err(TlogError::Malformed(format!(
                            "{} holds {} hashes, not {}",
                            id.path(),
                            hashes.len(),
                            id.width
                        )));
                    }
                    e.insert(hashes)
                }
            };
            let from = (first & 255) as usize;
            let span = hashes
                .get(from..from + (1usize << up))
                .ok_or(TlogError::MissingHash(*p))?;
            out.push(perfect_root(span));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::hash::leaf_hash;
    use crate::tlog::proof::{MemoryHashes, prove_consistency, prove_inclusion, tree_hash};

    #[test]
    fn stale_temporaries_are_removed_and_tiles_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = build(dir.path(), 700, &[600]);
        let before = listing(dir.path());
        for t in [
            "tile/0/.001.tmp-41-7",
            "tile/entries/.002.p.tmp-9-0",
            ".checkpoint.tmp-1-1",
        ] {
            fs::write(dir.path().join(t), b"half").unwrap();
        }
        assert_eq!(store.remove_stale_temporaries().unwrap(), 3);
        assert_eq!(listing(dir.path()), before);
        assert_eq!(store.remove_stale_temporaries().unwrap(), 0);
        let missing = FsTileStore::new(dir.path().join("never-written"));
        assert_eq!(missing.remove_stale_temporaries().unwrap(), 0);
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.extend(listing(&e.path()));
            } else {
                out.push(e.path().display().to_string());
            }
        }
        out.sort();
        out
    }

    fn build(dir: &Path, n: u32, store_partials_at: &[u64]) -> (FsTileStore, MemoryHashes) {
        let store = FsTileStore::new(dir);
        let mut b = TileBuilder::new();
        let mut m = MemoryHashes::new();
        for i in 0..n {
            let e = format!("record {i}");
            m.append(leaf_hash(e.as_bytes()));
            for (id, bytes) in b.push(e.as_bytes()).unwrap() {
                store.write(&id, &bytes).unwrap();
            }
            if store_partials_at.contains(&b.size()) {
                for (id, bytes) in b.partial_tiles().unwrap() {
                    store.write(&id, &bytes).unwrap();
                }
            }
        }
        (store, m)
    }

    #[test]
    fn proofs_from_tiles_equal_proofs_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (store, m) = build(dir.path(), 70_000, &[600, 66_000, 70_000]);
        for size in [600u64, 66_000, 70_000] {
            let r = TileHashReader::new(size, &store);
            assert_eq!(tree_hash(size, &r).unwrap(), tree_hash(size, &m).unwrap());
            for i in [0, 1, 255, 256, 599, size - 1] {
                assert_eq!(
                    prove_inclusion(size, i, &r).unwrap(),
                    prove_inclusion(size, i, &m).unwrap()
                );
            }
        }
        let r = TileHashReader::new(70_000, &store);
        assert_eq!(
            prove_consistency(70_000, 600, &r).unwrap(),
            prove_consistency(70_000, 600, &m).unwrap()
        );
        // Partials of an old size are still there until their full tile is.
        assert!(dir.path().join("tile/0/273.p/112").exists());
        assert!(
            !dir.path().join("tile/0/002.p").exists(),
            "replaced by tile/0/002"
        );
        assert!(
            dir.path().join("tile/1/001.p/1").exists(),
            "kept for the checkpoint at 66000"
        );
        assert!(dir.path().join("tile/entries/273.p/112").exists());
        assert!(!dir.path().join("tile/entries/257.p").exists());
        // Beyond what the tiles hold: an error, not a panic.
        let short = TileHashReader::new(80_000, &store);
        assert!(tree_hash(80_000, &short).is_err());
    }

    #[test]
    fn writes_are_idempotent_and_conflicts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsTileStore::new(dir.path());
        let id = TileId::hashes(0, 0, 2);
        let bytes = [[1u8; 32], [2u8; 32]].concat();
        assert_eq!(store.write(&id, &bytes).unwrap(), Written::New);
        assert_eq!(store.write(&id, &bytes).unwrap(), Written::Unchanged);
        let other = [[1u8; 32], [3u8; 32]].concat();
        assert!(matches!(
            store.write(&id, &other),
            Err(TlogError::Conflict(_))
        ));
        assert!(
            store.write(&TileId::hashes(0, 0, 3), &bytes).is_err(),
            "width mismatch"
        );
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("tile/0/000.p"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("2")]);
    }

    #[test]
    fn a_builder_resumes_from_the_tiles_of_its_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = build(dir.path(), 1000, &[1000]);
        let mut resumed = store.resume_builder(1000).unwrap();
        let (_, m) = {
            let d2 = tempfile::tempdir().unwrap();
            build(d2.path(), 1300, &[])
        };
        for i in 1000..1300u32 {
            for (id, bytes) in resumed.push(format!("record {i}").as_bytes()).unwrap() {
                store.write(&id, &bytes).unwrap();
            }
        }
        assert_eq!(resumed.root(), tree_hash(1300, &m).unwrap());
        // Partials removed once their full tile exists are read from the full tile.
        let m999 = {
            let d3 = tempfile::tempdir().unwrap();
            build(d3.path(), 999, &[]).1
        };
        assert_eq!(
            store.resume_builder(999).unwrap().root(),
            tree_hash(999, &m999).unwrap()
        );
        assert!(
            store.resume_builder(1290).is_err(),
            "no partial tiles for that size"
        );
    }

    #[test]
    fn a_replay_does_not_bring_back_superseded_partials() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsTileStore::new(dir.path());
        let mut b = TileBuilder::new();
        let mut partials = Vec::new();
        let mut fulls = Vec::new();
        for i in 0..256u32 {
            fulls.extend(b.push(format!("e{i}").as_bytes()).unwrap());
            if b.size() == 100 {
                partials = b.partial_tiles().unwrap();
            }
        }
        for (id, bytes) in partials.iter().chain(&fulls) {
            store.write(id, bytes).unwrap();
        }
        assert!(!dir.path().join("tile/entries/000.p").exists());
        // The replay after a crash writes the same tiles again, in the same order.
        for (id, bytes) in partials.iter().chain(&fulls) {
            assert_eq!(store.write(id, bytes).unwrap(), Written::Unchanged);
        }
        assert!(!dir.path().join("tile/entries/000.p").exists());
        assert!(!dir.path().join("tile/0/000.p").exists());
        // The partial entry bundle is still readable, from the full one.
        let (id, bytes) = partials
            .iter()
            .find(|(id, _)| id.kind == TileKind::Entries)
            .unwrap();
        assert_eq!(&store.read_tile(id).unwrap(), bytes);
    }
}
