//! `bucket audit tiles`: follows `bucket.audit` (read_committed, every partition) and keeps each
//! partition's transparency log on disk in the C2SP `tlog-tiles` layout, publishing the gate's
//! signed checkpoints once its own tree agrees with them.
//!
//! Layout of the tiles directory `DIR`:
//! - `DIR/<partition>/`: the log, as static files (`checkpoint`, `tile/<L>/…`, `tile/entries/…`);
//! - `DIR/index/<partition>/`: the decision index ([`super::tlog_index`]);
//! - `DIR/state/<partition>.json`: where to resume (tree size, next Kafka offset, the tree's
//!   right edge and pending tile rows, the index lengths), replaced atomically.
//!
//! Leaf `i` of partition `p` is the stored value bytes (framed, schema id included) of the link
//! with chain `seq == i`. For a `CHECKPOINT` link whose detail carries a signed `note` of tree
//! size `n` (the links before it), the service writes the partial tiles of size `n`, checks the
//! note's root against its own tree and only then replaces `checkpoint`; a root that differs is
//! a [`TilesError::Mismatch`] (the process stops, nothing is published).
//!
//! Crash safety: tiles are written by temporary file and rename, idempotently, before any state
//! that names them; the state is saved every `save_every` and when caught up. After `kill -9`
//! the service resumes from the saved state, truncates the index to the saved lengths and reads
//! the topic again from the saved offset: every tile it writes again is identical, a
//! checkpoint at or below the published size is not published again, so the directory ends up
//! equal to a rebuild from the topic.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};
use serde::{Deserialize, Serialize};

use super::tlog_index::{IndexError, IndexWriter, Key, partition_dir};
use crate::kafka::read::{Elections, ReadError, Seen, Then, TopicRead, partition_ids};
use crate::tlog::checkpoint::TreeHead;
use crate::tlog::note::{NoteVerifier, open, unverified_text};
use crate::tlog::{Frontier, FsTileStore, Hash, TileBuilder, TileId, TlogError};
use crate::wire::WireError;
use crate::wire::audit::{AuditReader, StoredLink};

use crate::core::events::CHECKPOINT;

/// What the tiles service follows and where it writes.
#[derive(Debug, Clone)]
pub struct TilesOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Audit topic.
    pub topic: String,
    /// The tiles directory.
    pub dir: PathBuf,
    /// Keep following after the end of every partition.
    pub follow: bool,
    /// Verifier keys of the gate: when given, a checkpoint note must also be signed by one.
    pub keys: Vec<NoteVerifier>,
    /// How often progress is saved while links keep coming.
    pub save_every: Duration,
}

/// Why the tiles service stopped.
#[derive(Debug, thiserror::Error)]
pub enum TilesError {
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Tiles, notes or the store.
    #[error("tlog: {0}")]
    Tlog(#[from] TlogError),
    /// The decision index.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// Writing or reading the state.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The gate signed a root this service's tree does not have: never published.
    #[error(
        "CHECKPOINT MISMATCH partition {partition} offset {offset}: the gate's note says tree \
         size {size} has root {note_root}, the tiles say {tree_root}; not published"
    )]
    Mismatch {
        /// Audit partition.
        partition: i32,
        /// Offset of the CHECKPOINT link.
        offset: i64,
        /// Tree size of the note.
        size: u64,
        /// Root in the note.
        note_root: String,
        /// Root of the tiles.
        tree_root: String,
    },
    /// A checkpoint note that cannot be used (bad signature, wrong origin or size).
    #[error("bad checkpoint note, partition {partition} offset {offset}: {why}; not published")]
    BadNote {
        /// Audit partition.
        partition: i32,
        /// Offset of the CHECKPOINT link.
        offset: i64,
        /// What is wrong.
        why: String,
    },
    /// The chain skips a seq: the tree cannot be built past it.
    #[error("partition {partition} offset {offset}: link seq {seq}, expected {expected}")]
    Gap {
        /// Audit partition.
        partition: i32,
        /// Offset of the link.
        offset: i64,
        /// Its seq.
        seq: i64,
        /// The next leaf index.
        expected: u64,
    },
    /// The saved state does not fit the directory.
    #[error("state of partition {0}: {1}")]
    State(i32, String),
    /// Another tiles service keeps this directory.
    #[error(
        "{0} is locked by another `bucket audit tiles` (one writer per directory; stop it, or \
         give this one its own --dir)"
    )]
    Locked(String),
}

/// Takes the directory's exclusive lock (`<dir>/lock`), held while the returned file lives: two
/// services writing one state and index would corrupt both. The OS drops it when the process
/// dies, `kill -9` included.
pub fn lock_dir(dir: &Path) -> Result<fs::File, TilesError> {
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(TilesError::Locked(path.display().to_string())),
        Err(fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
    }
}

/// A `partition` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// Audit partition.
    pub partition: i32,
}

/// The service's metrics (`bucket_tlog_*`).
#[derive(Debug, Clone, Default)]
pub struct TilesMetrics {
    /// Leaves in each partition's tree.
    pub tree_size: Family<PartitionLabel, Gauge>,
    /// Tree size of each partition's published checkpoint.
    pub published_size: Family<PartitionLabel, Gauge>,
    /// Records of each partition not yet read (high watermark − next offset).
    pub lag_records: Family<PartitionLabel, Gauge>,
    /// Gate clock of the last link read minus now, ms (how far behind the gate).
    pub behind_ms: Family<PartitionLabel, Gauge>,
    /// Checkpoint notes whose root differs from the tiles (never published).
    pub checkpoint_mismatches: Counter,
    /// Records skipped: not audit links, or a seq already in the tree.
    pub skipped: Counter,
}

impl TilesMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "bucket_tlog_tree_size",
            "Leaves in the partition's tree",
            self.tree_size.clone(),
        );
        registry.register(
            "bucket_tlog_published_size",
            "Tree size of the published checkpoint",
            self.published_size.clone(),
        );
        registry.register(
            "bucket_tlog_lag_records",
            "Audit records not yet in the tiles",
            self.lag_records.clone(),
        );
        registry.register(
            "bucket_tlog_behind_ms",
            "Now minus the gate clock of the last link in the tiles",
            self.behind_ms.clone(),
        );
        registry.register(
            "bucket_tlog_checkpoint_mismatches",
            "Checkpoint notes whose root differs from the tiles",
            self.checkpoint_mismatches.clone(),
        );
        registry.register(
            "bucket_tlog_skipped_records",
            "Records that are not new audit links",
            self.skipped.clone(),
        );
    }
}

/// What a run did, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionSummary {
    /// Leaves in the tree.
    pub size: u64,
    /// Tree size of the published checkpoint (0: none).
    pub published: u64,
    /// Links appended by this run.
    pub appended: u64,
}

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

fn io(context: String) -> impl FnOnce(std::io::Error) -> TilesError {
    move |source| TilesError::Io { context, source }
}

/// The published checkpoint of `store`, if any, and its tree size.
pub fn published_checkpoint(store: &FsTileStore) -> Result<Option<(String, TreeHead)>, TlogError> {
    match fs::read_to_string(store.root().join("checkpoint")) {
        Ok(note) => {
            let head = TreeHead::parse(&unverified_text(&note)?)?;
            Ok(Some((note, head)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlogError::Io {
            context: format!("reading {}/checkpoint", store.root().display()),
            source,
        }),
    }
}

/// One partition's log being built.
struct Log {
    partition: i32,
    store: FsTileStore,
    state_path: PathBuf,
    builder: TileBuilder,
    index: IndexWriter,
    next_offset: i64,
    published: u64,
    dirty: bool,
    appended: u64,
}

impl Log {
    fn open(dir: &Path, partition: i32) -> Result<Log, TilesError> {
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
    fn save(&mut self) -> Result<(), TilesError> {
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
    fn apply(
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

fn consumer(brokers: &str) -> Result<BaseConsumer<crate::kafka::EofQuietContext>, KafkaError> {
    crate::kafka::read::committed_reader_config(brokers, "bucket-audit-tiles")
        .create_with_context(crate::kafka::EofQuietContext)
}

/// Runs the tiles service: reads every audit partition from its saved offset to the end (and on,
/// with `follow`, until `stop` says so), keeping the tiles, index and checkpoints. Links are
/// decoded with their writer's schema; on a schema id `reader` does not know, `relearn` is
/// asked for a fresh reader once per id.
pub fn run(
    o: &TilesOptions,
    mut reader: AuditReader,
    relearn: &mut dyn FnMut() -> Option<AuditReader>,
    metrics: &TilesMetrics,
    stop: &dyn Fn() -> bool,
) -> Result<BTreeMap<i32, PartitionSummary>, TilesError> {
    let _lock = lock_dir(&o.dir)?;
    let consumer = consumer(&o.brokers)?;
    let partitions =
        crate::kafka::errors::through_elections(|| partition_ids(&consumer, &o.topic))?;
    let mut logs: BTreeMap<i32, Log> = BTreeMap::new();
    let mut starts = Vec::new();
    for p in partitions {
        let log = Log::open(&o.dir, p)?;
        let start = if log.next_offset > 0 {
            Offset::Offset(log.next_offset)
        } else {
            Offset::Beginning
        };
        starts.push((p, start));
        logs.insert(p, log);
    }
    if logs.is_empty() {
        return Err(TilesError::State(
            -1,
            format!("topic {} has no partitions", o.topic),
        ));
    }
    let mut asked: HashSet<u32> = HashSet::new();
    let mut last_save = Instant::now();
    let read = TopicRead {
        topic: &o.topic,
        timeout: None,
        elections: Elections::RideWhileProgressing,
        follow: o.follow,
    };
    let each = |seen: Seen<'_>| {
        match seen {
            Seen::Nothing => {}
            Seen::End(p) => {
                if let Some(log) = logs.get_mut(&p) {
                    metrics
                        .lag_records
                        .get_or_create(&PartitionLabel { partition: p })
                        .set(0);
                    if log.dirty {
                        log.save()?;
                    }
                }
            }
            Seen::Record(msg) => {
                let p = msg.partition();
                let mut link = reader.read(msg.payload());
                if let Err(WireError::UnknownWriterSchema(id)) = link
                    && asked.insert(id)
                    && let Some(fresh) = relearn()
                {
                    reader = fresh;
                    link = reader.read(msg.payload());
                }
                if let Some(log) = logs.get_mut(&p) {
                    log.apply(o, metrics, msg.offset(), msg.payload(), link)?;
                }
            }
        }
        if last_save.elapsed() >= o.save_every {
            for (p, log) in logs.iter_mut() {
                if log.dirty {
                    log.save()?;
                }
                if let Ok((_, high)) =
                    consumer.fetch_watermarks(&o.topic, *p, Duration::from_secs(1))
                {
                    metrics
                        .lag_records
                        .get_or_create(&PartitionLabel { partition: *p })
                        .set((high - log.next_offset).max(0));
                }
            }
            last_save = Instant::now();
        }
        Ok(if stop() { Then::Stop } else { Then::Continue })
    };
    if !stop() {
        read.run(&consumer, &starts, each).map_err(|e| match e {
            ReadError::Kafka(e) => TilesError::from(e),
            // Without a timeout the read waits for every end; Kafka's own word for giving up.
            ReadError::Timeout(_) => {
                TilesError::from(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut))
            }
            ReadError::Handler(e) => e,
        })?;
    }
    let mut out = BTreeMap::new();
    for (p, log) in logs.iter_mut() {
        if log.dirty {
            log.save()?;
        }
        out.insert(
            *p,
            PartitionSummary {
                size: log.builder.size(),
                published: log.published,
                appended: log.appended,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::signature::SignKey;
    use crate::tlog::NoteSigner;
    use crate::tlog::checkpoint::{key_name, origin};
    use crate::wire::audit::{AuditEvent, DecisionRecord, GovernanceRecord};

    fn signer() -> NoteSigner {
        NoteSigner::new(&key_name("t"), &SignKey::ed25519_from_seed(&[4; 32])).unwrap()
    }

    #[test]
    fn one_tiles_service_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        let e = lock_dir(dir.path()).unwrap_err();
        assert!(matches!(e, TilesError::Locked(_)), "{e}");
        drop(held);
        lock_dir(dir.path()).unwrap();
    }

    fn options(dir: &Path) -> TilesOptions {
        TilesOptions {
            brokers: String::new(),
            topic: String::new(),
            dir: dir.to_path_buf(),
            follow: false,
            keys: vec![signer().verifier()],
            save_every: Duration::from_secs(1),
        }
    }

    /// Link `seq` of partition 1: a decision, or a CHECKPOINT carrying `note`.
    fn link(seq: u64, note: Option<String>) -> (Vec<u8>, StoredLink) {
        let mut e = AuditEvent {
            seq: seq as i64,
            prev_hash: String::new(),
            hash: String::new(),
            recorded_at: 0,
            gate_id: "g".into(),
            policy_version: "p".into(),
            decision: None,
            governance: None,
        };
        match note {
            Some(n) => {
                e.governance = Some(GovernanceRecord {
                    event_type: CHECKPOINT.into(),
                    detail: serde_json::json!({"partition": 1, "note": n}).to_string(),
                });
            }
            None => {
                e.decision = Some(DecisionRecord {
                    accepted: true,
                    intent_id: Some(format!("intent-{seq}")),
                    product_id: Some("prod".into()),
                    artifact_id: Some("art".into()),
                    version: Some(seq as i64),
                    ..Default::default()
                });
            }
        }
        let bytes = format!("link {seq} {}", e.governance.is_some()).into_bytes();
        let stored = StoredLink {
            event: e,
            version: 1,
            stored_hash: String::new(),
        };
        (bytes, stored)
    }

    /// The records of a log with a CHECKPOINT (with a correct note) every 100 links.
    fn log_records(n: u64) -> Vec<(Vec<u8>, StoredLink)> {
        let mut tree = Frontier::new();
        let mut out = Vec::new();
        for seq in 0..n {
            let note = (seq > 0 && seq % 100 == 0).then(|| {
                let head = TreeHead::new(origin("t", 1), tree.size(), tree.root());
                signer().sign(&head.to_text().unwrap()).unwrap()
            });
            let (bytes, l) = link(seq, note);
            tree.append_bytes(&bytes);
            out.push((bytes, l));
        }
        out
    }

    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for e in fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    out.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    #[test]
    fn restarts_from_any_saved_point_end_equal_to_a_rebuild() {
        let records = log_records(1300);
        let m = TilesMetrics::default();
        let rebuilt = tempfile::tempdir().unwrap();
        let o = options(rebuilt.path());
        let mut log = Log::open(rebuilt.path(), 1).unwrap();
        for (i, (b, l)) in records.iter().enumerate() {
            log.apply(&o, &m, i as i64 * 2, Some(b), Ok(l.clone()))
                .unwrap();
        }
        log.save().unwrap();
        assert_eq!(log.published, 1200);

        // Crash (drop without saving) at many points; a save now and then.
        let live = tempfile::tempdir().unwrap();
        let o = options(live.path());
        let mut rng = 7u64;
        let mut log = Log::open(live.path(), 1).unwrap();
        loop {
            let from = usize::try_from((log.next_offset + 1) / 2).unwrap();
            if from >= records.len() {
                break;
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let upto = (from + 1 + (rng % 300) as usize).min(records.len());
            for (i, (b, l)) in records.iter().enumerate().take(upto).skip(from) {
                log.apply(&o, &m, i as i64 * 2, Some(b), Ok(l.clone()))
                    .unwrap();
                if rng.is_multiple_of(5) && i % 37 == 0 {
                    log.save().unwrap();
                }
            }
            if upto == records.len() || rng.is_multiple_of(3) {
                log.save().unwrap();
            }
            log = Log::open(live.path(), 1).unwrap();
        }
        assert_eq!(snapshot(live.path()), snapshot(rebuilt.path()));
        // The index finds decisions of the rebuilt log.
        let hits = crate::audit::tlog_index::lookup(live.path(), &Key::Intent("intent-777".into()))
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].seq, 777);
        let b = crate::audit::prove::prove(live.path(), 1, 777).unwrap();
        let v = crate::tlog::verify_bundle(&b, &[signer().verifier()]).unwrap();
        assert_eq!((v.tree_size, v.index), (1200, 777));
        assert!(matches!(
            crate::audit::prove::prove(live.path(), 1, 1250),
            Err(crate::audit::prove::ProveError::NotYetCheckpointed { size: 1200, .. })
        ));
    }

    #[test]
    fn a_note_with_another_root_or_key_is_never_published() {
        let m = TilesMetrics::default();
        let records = log_records(150);
        for (case, note) in [
            ("root", {
                let head = TreeHead::new(origin("t", 1), 100, crate::tlog::leaf_hash(b"x"));
                signer().sign(&head.to_text().unwrap()).unwrap()
            }),
            ("key", {
                let other =
                    NoteSigner::new(&key_name("t"), &SignKey::ed25519_from_seed(&[5; 32])).unwrap();
                let good = records[100].1.event.governance.clone().unwrap().detail;
                let v: serde_json::Value = serde_json::from_str(&good).unwrap();
                let text = unverified_text(v["note"].as_str().unwrap()).unwrap();
                other.sign(&text).unwrap()
            }),
            ("origin", {
                let mut tree = Frontier::new();
                for (b, _) in &records[..100] {
                    tree.append_bytes(b);
                }
                let head = TreeHead::new(origin("t", 2), 100, tree.root());
                signer().sign(&head.to_text().unwrap()).unwrap()
            }),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let o = options(dir.path());
            let mut log = Log::open(dir.path(), 1).unwrap();
            for (i, (b, l)) in records[..100].iter().enumerate() {
                log.apply(&o, &m, i as i64, Some(b), Ok(l.clone())).unwrap();
            }
            let (b, _) = &records[100];
            let err = log
                .apply(&o, &m, 100, Some(b), Ok(link(100, Some(note)).1))
                .unwrap_err();
            match case {
                "root" => assert!(matches!(err, TilesError::Mismatch { size: 100, .. })),
                _ => assert!(matches!(err, TilesError::BadNote { .. }), "{case}: {err}"),
            }
            assert!(!dir.path().join("1/checkpoint").exists(), "{case}");
        }
        assert_eq!(m.checkpoint_mismatches.get(), 1);
    }
}
