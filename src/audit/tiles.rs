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
//!
//! This file is the service (options, errors, metrics, the read loop); one partition's log,
//! its resume point and checkpoint publication are in `tiles/log.rs`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};
use serde::Serialize;

use super::tlog_index::IndexError;
use crate::kafka::read::{Elections, ReadError, Seen, Then, TopicRead, partition_ids};
use crate::tlog::checkpoint::TreeHead;
use crate::tlog::note::{NoteVerifier, unverified_text};
use crate::tlog::{FsTileStore, TlogError};
use crate::wire::WireError;
use crate::wire::audit::AuditReader;

mod log;

use log::Log;
pub use log::PartitionTiles;

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
mod tests;
