//! `bucket-bench tlog`: the verifiable audit log at the seeds' scale (issue 17, docs/audit.md).
//!
//! - [`proofs`]: a partition of 10 M links built by the tiles service's own step (no Kafka),
//!   then proofs of sampled decisions timed through the index, as `bucket audit prove` and the
//!   read API make them;
//! - [`tiles_lag`]: links produced to a throwaway audit topic as fast as the client can while
//!   the tiles service follows it in the same process; how far behind it falls.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use tokio::runtime::Handle;

use super::BenchError;
use super::history::HistoryWriter;
use crate::audit::prove::prove_key;
use crate::audit::tiles::{PartitionTiles, TilesMetrics, TilesOptions, lock_dir};
use crate::audit::tlog_index::Key;
use crate::core::signature::SignKey;
use crate::kafka::registry::Registry;
use crate::tlog::checkpoint::{key_name, origin};
use crate::tlog::{NoteSigner, TreeHead};
use crate::wire::audit::{AuditReader, LATEST_VERSION};
use crate::wire::framing;

/// Schema id the offline links are framed with (no registry involved).
const OFFLINE_SCHEMA_ID: u32 = 9;

/// What `bucket-bench tlog` is asked to do.
#[derive(Debug, Clone)]
pub struct ProofBenchOptions {
    /// The tiles directory built (kept for reruns with `rebuild` false).
    pub dir: PathBuf,
    /// Links in the partition.
    pub links: u64,
    /// A CHECKPOINT link after this many links, as the gate's `--checkpoint-every`.
    pub checkpoint_every: u64,
    /// Decisions proven.
    pub samples: u64,
    /// Deployment name in the notes (its length counts in a bundle's size).
    pub deployment: String,
    /// Build the directory again even when one is there.
    pub rebuild: bool,
    /// Empty the page cache before each proof (Linux, root): every proof reads from disk.
    pub drop_caches: bool,
}

/// Percentiles of a set of figures.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `v` (empty: zeros).
    pub fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Spread {
            median: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

/// The figures of [`proofs`].
#[derive(Debug, Clone, Serialize)]
pub struct ProofReport {
    /// Leaves in the partition's published tree.
    pub tree_size: u64,
    /// Seconds the build took (0 when an existing directory was used).
    pub build_s: f64,
    /// Proofs by intent id, ms each (index lookup, entry bundle, hash tiles, check).
    pub by_intent_ms: Spread,
    /// Proofs by product + artifact + accepted version, ms each.
    pub by_version_ms: Spread,
    /// Size of the C2SP tlog-proof, bytes.
    pub tlog_proof_bytes: Spread,
    /// Size of the JSON bundle as `prove` prints it, bytes.
    pub json_bytes: Spread,
    /// Size of the proven records, bytes.
    pub record_bytes: Spread,
    /// Hashes in the inclusion proofs.
    pub proof_hashes: Spread,
}

/// Builds (or reuses) a partition of `links` links and proves sampled decisions from it.
pub fn proofs(o: &ProofBenchOptions, bar: &ProgressBar) -> Result<ProofReport, BenchError> {
    let state = o.dir.join("state").join("0.json");
    let mut build_s = 0.0;
    let keys = if o.rebuild || !state.exists() {
        let _ = std::fs::remove_dir_all(&o.dir);
        let start = Instant::now();
        let keys = build_partition(o, bar)?;
        build_s = start.elapsed().as_secs_f64();
        std::fs::write(o.dir.join("samples.json"), serde_json::to_vec(&keys)?)?;
        keys
    } else {
        serde_json::from_slice(&std::fs::read(o.dir.join("samples.json"))?)?
    };
    let mut by_intent = Vec::new();
    let mut by_version = Vec::new();
    let (mut text, mut json, mut record, mut hashes) = (vec![], vec![], vec![], vec![]);
    for key in keys {
        if o.drop_caches {
            // `sync` first, so that dirty pages can be dropped too.
            std::process::Command::new("sync").status()?;
            std::fs::write("/proc/sys/vm/drop_caches", "3\n")?;
        }
        let start = Instant::now();
        let (bundle, _, _) = prove_key(&o.dir, &key, None)
            .map_err(|e| BenchError::Incomplete(format!("proof of {key:?}: {e}")))?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match key {
            Key::Intent(_) => by_intent.push(ms),
            Key::Version { .. } => by_version.push(ms),
        }
        text.push(bundle.to_tlog_proof().len() as f64);
        json.push(bundle.to_json().len() as f64);
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&bundle.record)
            .map_err(|e| BenchError::Incomplete(format!("record: {e}")))?;
        record.push(raw.len() as f64);
        hashes.push(bundle.inclusion_proof.len() as f64);
    }
    let tree_size =
        crate::audit::tiles::published_checkpoint(&crate::tlog::FsTileStore::new(o.dir.join("0")))
            .map_err(|e| BenchError::Incomplete(format!("checkpoint: {e}")))?
            .map_or(0, |(_, h)| h.size);
    Ok(ProofReport {
        tree_size,
        build_s,
        by_intent_ms: Spread::of(by_intent),
        by_version_ms: Spread::of(by_version),
        tlog_proof_bytes: Spread::of(text),
        json_bytes: Spread::of(json),
        record_bytes: Spread::of(record),
        proof_hashes: Spread::of(hashes),
    })
}

/// Writes the partition link by link through [`PartitionTiles`], a signed CHECKPOINT every
/// `checkpoint_every` links and one at the end; returns the sampled keys.
fn build_partition(o: &ProofBenchOptions, bar: &ProgressBar) -> Result<Vec<Key>, BenchError> {
    let tlog = |e: crate::audit::tiles::TilesError| BenchError::Incomplete(format!("tiles: {e}"));
    let _lock = lock_dir(&o.dir).map_err(tlog)?;
    let signer = NoteSigner::new(
        &key_name(&o.deployment),
        &SignKey::ed25519_from_seed(&[0x17; 32]),
    )
    .map_err(|e| BenchError::Options(format!("note signer: {e}")))?;
    let options = TilesOptions {
        brokers: String::new(),
        topic: String::new(),
        dir: o.dir.clone(),
        follow: false,
        keys: vec![signer.verifier()],
        save_every: Duration::from_secs(1),
    };
    let metrics = TilesMetrics::default();
    let reader = AuditReader::with_ids([(OFFLINE_SCHEMA_ID, LATEST_VERSION)]);
    let mut tiles = PartitionTiles::open(&o.dir, 0).map_err(tlog)?;
    let mut history = HistoryWriter::new(100, 0x7106);
    let stride = (o.links / o.samples.max(1)).max(1);
    let mut keys = Vec::new();
    let every = o.checkpoint_every.max(1);
    while tiles.size() < o.links {
        let seq = history.next_seq();
        let last = seq as u64 + 1 == o.links;
        let body = if (seq as u64 + 1).is_multiple_of(every) || last {
            let head = TreeHead::new(origin(&o.deployment, 0), tiles.size(), tiles.root());
            let text = head
                .to_text()
                .map_err(|e| BenchError::Options(format!("tree head: {e}")))?;
            let note = signer
                .sign(&text)
                .map_err(|e| BenchError::Options(format!("signing: {e}")))?;
            history
                .governance_link(
                    crate::wire::audit::checkpoint::CHECKPOINT,
                    &serde_json::json!({ "partition": 0, "note": note }),
                )?
                .1
        } else {
            history.link()?.1
        };
        let value = framing::frame(OFFLINE_SCHEMA_ID, &body);
        let link = reader.read(Some(&value))?;
        if seq as u64 % stride == stride / 2
            && let Some(d) = &link.event.decision
        {
            match (d.accepted, &d.product_id, &d.artifact_id, d.version) {
                (true, Some(p), Some(a), Some(v)) if keys.len() % 2 == 1 => {
                    keys.push(Key::Version {
                        product: p.clone(),
                        artifact: a.clone(),
                        version: v,
                    })
                }
                _ => {
                    if let Some(id) = &d.intent_id {
                        keys.push(Key::Intent(id.clone()))
                    }
                }
            }
        }
        tiles
            .apply(&options, &metrics, seq, &value, link)
            .map_err(tlog)?;
        bar.inc(1);
    }
    tiles.save().map_err(tlog)?;
    Ok(keys)
}

/// What `bucket-bench tiles-lag` is asked to do.
#[derive(Debug, Clone)]
pub struct LagBenchOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Registry URL (the audit schema's id).
    pub registry_url: String,
    /// Topic profile for the throwaway audit topic.
    pub profile: String,
    /// Links produced.
    pub links: u64,
    /// The tiles directory (emptied first).
    pub dir: PathBuf,
    /// Links a second the producer keeps to (`None`: as fast as it can).
    pub per_second: Option<f64>,
    /// Produce everything first, then time the service reading it (its own pace, no producer
    /// beside it).
    pub catch_up: bool,
}

/// The figures of [`tiles_lag`].
#[derive(Debug, Clone, Serialize)]
pub struct LagReport {
    /// Links produced.
    pub links: u64,
    /// Links per second the producer wrote (the pace the service had to keep).
    pub produced_per_s: f64,
    /// Links behind the high watermark, sampled every 50 ms while producing.
    pub lag_links: Spread,
    /// Milliseconds from the producer's last link to the tiles holding every link.
    pub drain_ms: f64,
    /// Links per second the service built over the whole run.
    pub tiles_per_s: f64,
}

/// Produces `links` links while the tiles service follows them; samples its lag.
pub fn tiles_lag(o: &LagBenchOptions, rt: &Handle) -> Result<LagReport, BenchError> {
    let registry = Registry::new(&o.registry_url)?;
    let (ids, _) = rt.block_on(registry.output_ids(LATEST_VERSION))?;
    let topic = format!(
        "bucket.audit.tileslag-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    rt.block_on(super::state::create_bench_topics(
        &o.brokers, &o.profile, &topic, None,
    ))?;
    let _ = std::fs::remove_dir_all(&o.dir);
    let options = TilesOptions {
        brokers: o.brokers.clone(),
        topic: topic.clone(),
        dir: o.dir.clone(),
        follow: true,
        keys: Vec::new(),
        save_every: Duration::from_secs(1),
    };
    let metrics = TilesMetrics::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = std::sync::Barrier::new(2);
    let result = std::thread::scope(|s| {
        let tiles = s.spawn(|| {
            ready.wait();
            let reader = AuditReader::with_ids([(ids.audit, LATEST_VERSION)]);
            crate::audit::tiles::run(&options, reader, &mut || None, &metrics, &|| {
                stop.load(Ordering::Relaxed)
            })
        });
        if !o.catch_up {
            ready.wait();
            // The service reads the (empty) topic's end before the first link comes.
            std::thread::sleep(Duration::from_secs(2));
        }
        let start = Instant::now();
        let topic = topic.as_str();
        let producer = s.spawn(move || {
            let mut w = HistoryWriter::new(100, 0x1a9);
            let r = w.append_paced(
                &o.brokers,
                topic,
                ids.audit,
                o.links,
                o.per_second,
                &ProgressBar::hidden(),
            );
            (r, start.elapsed())
        });
        let watch: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &o.brokers)
            .create()?;
        let label = crate::audit::tiles::PartitionLabel { partition: 0 };
        let mut lags = Vec::new();
        let mut produced_in = None;
        let mut start = start;
        if o.catch_up {
            while !producer.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
            }
            produced_in = Some(start.elapsed());
            start = Instant::now();
            ready.wait();
        }
        let drained = loop {
            std::thread::sleep(Duration::from_millis(50));
            let high = watch
                .fetch_watermarks(topic, 0, Duration::from_secs(5))
                .map(|(_, h)| h)
                .unwrap_or(0);
            let built = metrics.tree_size.get_or_create(&label).get();
            if produced_in.is_none() {
                lags.push((high - built).max(0) as f64);
                if producer.is_finished() {
                    produced_in = Some(start.elapsed());
                }
            } else if built as u64 >= o.links {
                break start.elapsed();
            }
            if start.elapsed() > Duration::from_secs(600) || tiles.is_finished() {
                stop.store(true, Ordering::Relaxed);
                return Err(BenchError::Incomplete(format!(
                    "the tiles service built {built} of {} links",
                    o.links
                )));
            }
        };
        stop.store(true, Ordering::Relaxed);
        let (written, producing) = producer
            .join()
            .map_err(|_| BenchError::Incomplete("producer panicked".into()))?;
        written?;
        tiles
            .join()
            .map_err(|_| BenchError::Incomplete("tiles service panicked".into()))?
            .map_err(|e| BenchError::Incomplete(format!("tiles service: {e}")))?;
        let produced_in = produced_in.unwrap_or(producing);
        Ok(LagReport {
            links: o.links,
            produced_per_s: o.links as f64 / producing.as_secs_f64(),
            lag_links: Spread::of(lags),
            drain_ms: if o.catch_up {
                drained.as_secs_f64() * 1000.0
            } else {
                drained.saturating_sub(produced_in).as_secs_f64() * 1000.0
            },
            tiles_per_s: o.links as f64 / drained.as_secs_f64(),
        })
    });
    let _ = rt.block_on(super::kafka::delete_topics(&o.brokers, &[topic]));
    result
}
