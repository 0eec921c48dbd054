//! `bucket audit witness`: follows the published checkpoints (a tiles directory or the read
//! API), keeps the last one it accepted per partition, and raises an [`Alert`] on any checkpoint
//! that is not consistent with it: a bad signature, another origin, a tree that shrank, the
//! same size with another root, or a consistency proof (computed from the published tiles) that
//! does not lead from the accepted root to the new one: a rewritten or forked log.
//!
//! State: `STATE/<partition>.checkpoint`, the accepted note verbatim, replaced atomically after
//! each accepted checkpoint; an alert leaves it as it was. The first checkpoint seen for a
//! partition is accepted when its signature holds and its tiles give its root (trust on first
//! use: start the witness early, or seed the state with a checkpoint obtained out of band).

use std::fs;
use std::path::{Path, PathBuf};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::tiles::PartitionLabel;
use crate::tlog::checkpoint::TreeHead;
use crate::tlog::note::{NoteVerifier, open};
use crate::tlog::proof::{prove_consistency, tree_hash, verify_consistency};
use crate::tlog::tiles_fs::TileSource;
use crate::tlog::{FsTileStore, TileHashReader, TileId, TlogError};

/// Where checkpoints and tiles come from.
pub trait CheckpointSource {
    /// The partitions that have a log.
    fn partitions(&self) -> Result<Vec<i32>, WitnessError>;
    /// The published checkpoint of `partition`, if there is one.
    fn checkpoint(&self, partition: i32) -> Result<Option<String>, WitnessError>;
    /// A tile of `partition`'s log.
    fn tile(&self, partition: i32, id: &TileId) -> Result<Vec<u8>, TlogError>;
}

/// Why the witness could not look (not a verdict on the log).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Reading the source or the state failed.
    #[error("{context}: {why}")]
    Read {
        /// What was being read.
        context: String,
        /// What went wrong.
        why: String,
    },
}

fn read_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> WitnessError {
    let context = context.into();
    move |e| WitnessError::Read {
        context,
        why: e.to_string(),
    }
}

/// A tiles directory (`bucket audit tiles --dir`).
#[derive(Debug, Clone)]
pub struct DirSource {
    /// The tiles directory.
    pub dir: PathBuf,
}

impl CheckpointSource for DirSource {
    fn partitions(&self) -> Result<Vec<i32>, WitnessError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(read_err(self.dir.display().to_string()))?;
        for e in entries.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                out.push(p);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn checkpoint(&self, partition: i32) -> Result<Option<String>, WitnessError> {
        let p = self.dir.join(partition.to_string()).join("checkpoint");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(p.display().to_string())(e)),
        }
    }

    fn tile(&self, partition: i32, id: &TileId) -> Result<Vec<u8>, TlogError> {
        FsTileStore::new(self.dir.join(partition.to_string())).read_tile(id)
    }
}

/// One partition's tiles through a [`CheckpointSource`].
struct PartitionTiles<'a> {
    source: &'a dyn CheckpointSource,
    partition: i32,
}

impl TileSource for PartitionTiles<'_> {
    fn read_tile(&self, id: &TileId) -> Result<Vec<u8>, TlogError> {
        self.source.tile(self.partition, id)
    }
}

/// A checkpoint that is not consistent with the accepted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Audit partition.
    pub partition: i32,
    /// Tree size and root (base64) of the accepted checkpoint, if any.
    pub accepted: Option<(u64, String)>,
    /// Tree size and root of the offending checkpoint, when it parsed.
    pub offered: Option<(u64, String)>,
    /// What is wrong.
    pub why: String,
}

/// What one look at a partition found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// No checkpoint published yet.
    Nothing,
    /// The same checkpoint as accepted.
    Unchanged(u64),
    /// A new checkpoint, consistent with the accepted one (or the first one): now accepted.
    Accepted {
        /// Previously accepted size (0: none).
        from: u64,
        /// New size.
        to: u64,
    },
    /// Could not check now (tiles unavailable); nothing accepted, try again.
    Pending(String),
    /// Inconsistent: alert.
    Alert(Alert),
}

/// The witness's metrics (`bucket_witness_*`).
#[derive(Debug, Clone, Default)]
pub struct WitnessMetrics {
    /// Tree size of the accepted checkpoint, per partition.
    pub accepted_size: Family<PartitionLabel, Gauge>,
    /// Inconsistent checkpoints seen.
    pub alerts: Counter,
}

impl WitnessMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "bucket_witness_accepted_size",
            "Tree size of the last accepted checkpoint",
            self.accepted_size.clone(),
        );
        registry.register(
            "bucket_witness_alerts",
            "Checkpoints not consistent with the accepted one",
            self.alerts.clone(),
        );
    }
}

/// The witness: its keys and its state directory.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The gate's note verifier keys (several while keys rotate).
    pub keys: Vec<NoteVerifier>,
    /// Where accepted checkpoints are kept.
    pub state: PathBuf,
}

impl Witness {
    fn state_file(&self, partition: i32) -> PathBuf {
        self.state.join(format!("{partition}.checkpoint"))
    }

    /// The accepted note of `partition`, if any.
    pub fn accepted(&self, partition: i32) -> Result<Option<String>, WitnessError> {
        let p = self.state_file(partition);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(p.display().to_string())(e)),
        }
    }

    fn accept(&self, partition: i32, note: &str) -> Result<(), WitnessError> {
        let p = self.state_file(partition);
        fs::create_dir_all(&self.state).map_err(read_err(self.state.display().to_string()))?;
        let tmp = self.state.join(format!(".{partition}.checkpoint.tmp"));
        let r = (|| {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(note.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &p)
        })();
        r.map_err(read_err(format!("writing {}", p.display())))
    }

    /// Looks at every partition of `source` once.
    pub fn check_all(
        &self,
        source: &dyn CheckpointSource,
        metrics: &WitnessMetrics,
    ) -> Result<Vec<(i32, Outcome)>, WitnessError> {
        let mut out = Vec::new();
        for p in source.partitions()? {
            let outcome = self.check(source, p)?;
            match &outcome {
                Outcome::Alert(_) => {
                    metrics.alerts.inc();
                }
                Outcome::Accepted { to, .. } | Outcome::Unchanged(to) => {
                    metrics
                        .accepted_size
                        .get_or_create(&PartitionLabel { partition: p })
                        .set(*to as i64);
                }
                _ => {}
            }
            out.push((p, outcome));
        }
        Ok(out)
    }

    /// Looks at `partition`'s published checkpoint and accepts it or raises an alert.
    pub fn check(
        &self,
        source: &dyn CheckpointSource,
        partition: i32,
    ) -> Result<Outcome, WitnessError> {
        let Some(note) = source.checkpoint(partition)? else {
            return Ok(Outcome::Nothing);
        };
        let old = match self.accepted(partition)? {
            None => None,
            // Our own state: it was verified when accepted.
            Some(n) => Some(
                open(&n, &self.keys)
                    .and_then(|t| TreeHead::parse(&t))
                    .map_err(|e| WitnessError::Read {
                        context: format!("accepted checkpoint of partition {partition}"),
                        why: e.to_string(),
                    })?,
            ),
        };
        let accepted = old.as_ref().map(|h| (h.size, h.root.to_base64()));
        let alert = |offered: Option<&TreeHead>, why: String| {
            Outcome::Alert(Alert {
                partition,
                accepted: accepted.clone(),
                offered: offered.map(|h| (h.size, h.root.to_base64())),
                why,
            })
        };
        let new = match open(&note, &self.keys).and_then(|t| TreeHead::parse(&t)) {
            Ok(h) => h,
            Err(e) => return Ok(alert(None, format!("checkpoint does not verify: {e}"))),
        };
        if !new.origin.ends_with(&format!("/bucket.audit/{partition}")) {
            return Ok(alert(
                Some(&new),
                format!("origin {:?} is not partition {partition}'s", new.origin),
            ));
        }
        let tiles = PartitionTiles { source, partition };
        let reader = TileHashReader::new(new.size, &tiles);
        let unavailable =
            |e: &TlogError| matches!(e, TlogError::Io { .. } | TlogError::MissingHash(_));
        let from = match &old {
            None => {
                // First sight: the tiles must give the signed root.
                return Ok(match tree_hash(new.size, &reader) {
                    Ok(r) if r == new.root => {
                        self.accept(partition, &note)?;
                        Outcome::Accepted {
                            from: 0,
                            to: new.size,
                        }
                    }
                    Ok(_) => alert(Some(&new), "the tiles do not give the signed root".into()),
                    Err(e) if unavailable(&e) => Outcome::Pending(e.to_string()),
                    Err(e) => alert(Some(&new), format!("tiles: {e}")),
                });
            }
            Some(old) => old,
        };
        if new.origin != from.origin {
            return Ok(alert(
                Some(&new),
                format!("origin changed from {:?}", from.origin),
            ));
        }
        if new.size < from.size {
            return Ok(alert(
                Some(&new),
                format!("tree shrank from {} to {}", from.size, new.size),
            ));
        }
        if new.size == from.size {
            return Ok(if new.root == from.root {
                Outcome::Unchanged(new.size)
            } else {
                alert(
                    Some(&new),
                    format!("same size {} with another root: a forked log", new.size),
                )
            });
        }
        if from.size == 0 {
            self.accept(partition, &note)?;
            return Ok(Outcome::Accepted {
                from: 0,
                to: new.size,
            });
        }
        let proof = match prove_consistency(new.size, from.size, &reader) {
            Ok(p) => p,
            Err(e) if unavailable(&e) => return Ok(Outcome::Pending(e.to_string())),
            Err(e) => return Ok(alert(Some(&new), format!("consistency proof: {e}"))),
        };
        match verify_consistency(&proof, new.size, &new.root, from.size, &from.root) {
            Ok(()) => {
                self.accept(partition, &note)?;
                Ok(Outcome::Accepted {
                    from: from.size,
                    to: new.size,
                })
            }
            Err(e) => Ok(alert(
                Some(&new),
                format!(
                    "not consistent with the accepted tree of size {}: {e} (a rewritten log)",
                    from.size
                ),
            )),
        }
    }
}

/// The read API as a source: `GET {base}/v1/audit/tlog`, `…/{p}/checkpoint`, `…/{p}/tile/…`
/// with a bearer token. Blocking: call it from a thread outside the runtime `handle` runs.
#[derive(Debug, Clone)]
pub struct HttpSource {
    /// Base URL of the read API.
    pub base: String,
    /// Any valid API token (tiles and checkpoints are readable by every token).
    pub token: String,
    /// Runtime the requests run on.
    pub handle: tokio::runtime::Handle,
    /// HTTP client.
    pub client: reqwest::Client,
}

impl HttpSource {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let url = format!("{}/v1/audit/tlog{path}", self.base.trim_end_matches('/'));
        self.handle.block_on(async {
            let r = self
                .client
                .get(&url)
                .bearer_auth(&self.token)
                .timeout(std::time::Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if r.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !r.status().is_success() {
                return Err(format!("GET {url}: HTTP {}", r.status()));
            }
            r.bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| format!("GET {url}: {e}"))
        })
    }
}

impl CheckpointSource for HttpSource {
    fn partitions(&self) -> Result<Vec<i32>, WitnessError> {
        let err = |why: String| WitnessError::Read {
            context: "partitions".into(),
            why,
        };
        let body = self.get("")?.ok_or_else(|| err("not found".into()))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| err(e.to_string()))?;
        Ok(v["partitions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_i64().and_then(|p| i32::try_from(p).ok()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn checkpoint(&self, partition: i32) -> Result<Option<String>, WitnessError> {
        Ok(self
            .get(&format!("/{partition}/checkpoint"))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    fn tile(&self, partition: i32, id: &TileId) -> Result<Vec<u8>, TlogError> {
        let io = |why: String| TlogError::Io {
            context: format!("tile {} of partition {partition}", id.path()),
            source: std::io::Error::other(why),
        };
        self.get(&format!("/{partition}/{}", id.path()))
            .map_err(io)?
            .ok_or_else(|| io("not found".into()))
    }
}

impl From<String> for WitnessError {
    fn from(why: String) -> Self {
        WitnessError::Read {
            context: "read API".into(),
            why,
        }
    }
}

/// True when `path` looks like a URL rather than a directory.
pub fn is_url(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|s| s.starts_with("http://") || s.starts_with("https://"))
}
