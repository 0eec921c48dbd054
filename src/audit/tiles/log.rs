//! One partition's transparency log as the tiles service keeps it: the tree, its tiles and
//! decision index on disk, the resume point ([`SavedState`]) and checkpoint publication; the
//! service ([`super::run`]) feeds it the links it reads, `bucket-bench tlog` through
//! [`PartitionTiles`].

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::super::tlog_index::{IndexWriter, Key, partition_dir};
use super::{PartitionLabel, TilesError, TilesMetrics, TilesOptions, io, published_checkpoint};
use crate::core::events::CHECKPOINT;
use crate::tlog::checkpoint::TreeHead;
use crate::tlog::note::{open, unverified_text};
use crate::tlog::{Frontier, FsTileStore, Hash, TileBuilder, TileId};
use crate::wire::WireError;
use crate::wire::audit::StoredLink;

/// The resume point of one partition, saved as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SavedState {
    /// Leaves in the tree.
    size: u64,
    /// The Kafka offset to read next.
    next_offset: i64,
    /// Tree size of the published checkpoint.
    published: u64,
    /// The tree's right edge.
    edge: Vec<Hash>,
    /// The partial tiles of `size` (path, base64): the pending entries and hashes.
    partials: Vec<(String, String)>,
    /// Byte lengths of the index buckets.
    index_lens: Vec<u64>,
}

/// One partition's log being built.
pub(super) struct Log {
    partition: i32,
    store: FsTileStore,
    state_path: PathBuf,
    pub(super) builder: TileBuilder,
    index: IndexWriter,
    pub(super) next_offset: i64,
    pub(super) published: u64,
    pub(super) dirty: bool,
    pub(super) appended: u64,
}

impl Log {
    /// Opens (or resumes) `partition` under `dir`: its saved state, partial tiles and index,
    /// after removing what a crash left half-written.
    pub(super) fn open(dir: &Path, partition: i32) -> Result<Log, TilesError> {
        let store = FsTileStore::new(dir.join(partition.to_string()));
        let state_path = dir.join("state").join(format!("{partition}.json"));
        let saved: SavedState = match fs::read(&state_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                TilesError::State(partition, format!("{}: {e}", state_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedState::default(),
            Err(e) => return Err(io(format!("reading {}", state_path.display()))(e)),
        };
        let mut partials = Vec::new();
        for (path, b64) in &saved.partials {
            let bytes = STANDARD
                .decode(b64)
                .map_err(|e| TilesError::State(partition, format!("{path}: {e}")))?;
            partials.push((TileId::parse_path(path)?, bytes));
        }
        let _ = fs::remove_file(state_path.with_extension("json.tmp"));
        let stale = store.remove_stale_temporaries()?;
        if stale > 0 {
            tracing::info!(
                partition,
                stale,
                "removed temporaries of interrupted writes"
            );
        }
        let frontier = Frontier::from_parts(saved.size, saved.edge.clone())?;
        let builder = TileBuilder::from_partials(frontier, &partials)?;
        let index = IndexWriter::open(partition_dir(dir, partition), &saved.index_lens)?;
        let on_disk = published_checkpoint(&store)?.map_or(0, |(_, h)| h.size);
        Ok(Log {
            partition,
            store,
            state_path,
            builder,
            index,
            next_offset: saved.next_offset,
            published: saved.published.max(on_disk),
            dirty: false,
            appended: 0,
        })
    }

    /// Flushes the index and replaces the state file (after every tile it names is written).
    pub(super) fn save(&mut self) -> Result<(), TilesError> {
        let index_lens = self.index.flush()?.to_vec();
        let partials = self
            .builder
            .partial_tiles()?
            .into_iter()
            .map(|(id, b)| (id.path(), STANDARD.encode(b)))
            .collect();
        let state = SavedState {
            size: self.builder.size(),
            next_offset: self.next_offset,
            published: self.published,
            edge: self.builder.frontier().edge().to_vec(),
            partials,
            index_lens,
        };
        let text = serde_json::to_vec(&state)
            .map_err(|e| TilesError::State(self.partition, e.to_string()))?;
        write_atomic(&self.state_path, &text)?;
        self.dirty = false;
        Ok(())
    }

    /// Appends one record of the partition (or skips it), publishing a checkpoint it carries.
    pub(super) fn apply(
        &mut self,
        o: &TilesOptions,
        m: &TilesMetrics,
        offset: i64,
        value: Option<&[u8]>,
        link: Result<StoredLink, WireError>,
    ) -> Result<(), TilesError> {
        self.next_offset = offset + 1;
        self.dirty = true;
        let (Some(bytes), Ok(link)) = (value, link) else {
            tracing::warn!(
                partition = self.partition,
                offset,
                "not an audit link; not in the tree"
            );
            m.skipped.inc();
            return Ok(());
        };
        let e = &link.event;
        let size = self.builder.size();
        if e.seq < 0 || (e.seq as u64) < size {
            tracing::warn!(
                partition = self.partition,
                offset,
                seq = e.seq,
                size,
                "seq already in the tree; skipped"
            );
            m.skipped.inc();
            return Ok(());
        }
        if e.seq as u64 > size {
            return Err(TilesError::Gap {
                partition: self.partition,
                offset,
                seq: e.seq,
                expected: size,
            });
        }
        if let Some(g) = &e.governance
            && g.event_type == CHECKPOINT
            && let Some(note) = serde_json::from_str::<serde_json::Value>(&g.detail)
                .ok()
                .and_then(|d| d.get("note").and_then(|n| n.as_str()).map(str::to_string))
        {
            self.checkpoint(o, m, offset, &note)?;
        }
        for (id, tile) in self.builder.push(bytes)? {
            self.store.write(&id, &tile)?;
        }
        self.appended += 1;
        if let Some(d) = &e.decision {
            let product = d.product_id.as_deref().unwrap_or_default();
            if let Some(id) = &d.intent_id {
                self.index.add(&Key::Intent(id.clone()), size, product);
            }
            if d.accepted
                && let (Some(p), Some(a), Some(v)) = (&d.product_id, &d.artifact_id, d.version)
            {
                let key = Key::Version {
                    product: p.clone(),
                    artifact: a.clone(),
                    version: v,
                };
                self.index.add(&key, size, product);
            }
        }
        let label = PartitionLabel {
            partition: self.partition,
        };
        m.tree_size
            .get_or_create(&label)
            .set(self.builder.size() as i64);
        m.behind_ms
            .get_or_create(&label)
            .set((crate::clock::now_ms() - e.recorded_at).max(0));
        Ok(())
    }

    /// Checks a gate note of the tree before the CHECKPOINT link at `offset` and publishes it.
    fn checkpoint(
        &mut self,
        o: &TilesOptions,
        m: &TilesMetrics,
        offset: i64,
        note: &str,
    ) -> Result<(), TilesError> {
        let bad = |why: String| TilesError::BadNote {
            partition: self.partition,
            offset,
            why,
        };
        let text = if o.keys.is_empty() {
            unverified_text(note)
        } else {
            open(note, &o.keys)
        }
        .map_err(|e| bad(e.to_string()))?;
        let head = TreeHead::parse(&text).map_err(|e| bad(e.to_string()))?;
        if !head
            .origin
            .ends_with(&format!("/bucket.audit/{}", self.partition))
        {
            return Err(bad(format!(
                "origin {:?} is not this partition's",
                head.origin
            )));
        }
        if head.size != self.builder.size() {
            return Err(bad(format!(
                "tree size {} but the CHECKPOINT link is leaf {}",
                head.size,
                self.builder.size()
            )));
        }
        let root = self.builder.root();
        if head.root != root {
            m.checkpoint_mismatches.inc();
            return Err(TilesError::Mismatch {
                partition: self.partition,
                offset,
                size: head.size,
                note_root: head.root.to_base64(),
                tree_root: root.to_base64(),
            });
        }
        for (id, tile) in self.builder.partial_tiles()? {
            self.store.write(&id, &tile)?;
        }
        if head.size > self.published {
            self.store.write_checkpoint(note)?;
            self.published = head.size;
            tracing::info!(
                partition = self.partition,
                size = head.size,
                "checkpoint published"
            );
        }
        m.published_size
            .get_or_create(&PartitionLabel {
                partition: self.partition,
            })
            .set(self.published as i64);
        Ok(())
    }
}

/// One partition's tiles, index and state kept from links handed over in offset order, without
/// Kafka: the service's own per-record step. `bucket-bench tlog` builds a 10 M-link partition
/// with it to time proofs; the caller holds the directory's lock ([`lock_dir`]).
pub struct PartitionTiles(Log);

impl PartitionTiles {
    /// Opens (or resumes) `partition` under `dir`.
    pub fn open(dir: &Path, partition: i32) -> Result<PartitionTiles, TilesError> {
        Log::open(dir, partition).map(PartitionTiles)
    }

    /// Appends the link read at `offset` (`value`: its stored bytes), publishing the checkpoint
    /// a `CHECKPOINT` link carries, exactly as the service does.
    pub fn apply(
        &mut self,
        o: &TilesOptions,
        m: &TilesMetrics,
        offset: i64,
        value: &[u8],
        link: StoredLink,
    ) -> Result<(), TilesError> {
        self.0.apply(o, m, offset, Some(value), Ok(link))
    }

    /// Leaves in the tree so far.
    pub fn size(&self) -> u64 {
        self.0.builder.size()
    }

    /// The tree's root so far (what the gate's next note must sign).
    pub fn root(&self) -> crate::tlog::Hash {
        self.0.builder.root()
    }

    /// Flushes the index and saves the resume point.
    pub fn save(&mut self) -> Result<(), TilesError> {
        self.0.save()
    }
}

/// Writes `bytes` to `path` by a synced temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TilesError> {
    let dir = path
        .parent()
        .ok_or_else(|| TilesError::State(-1, format!("{} has no parent", path.display())))?;
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let tmp = path.with_extension("json.tmp");
    let r = (|| {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    r.map_err(io(format!("writing {}", path.display())))
}
