//! `bucket-bench content`: the storage figures of docs/scale-readiness.md ("Content at the
//! seeds' scale"), PostgreSQL rows and S3 objects side by side in one run, against the local
//! stack (PostgreSQL, the S3 server) and the real `bucket api` binary:
//!
//! - the sink's storage write at several content sizes (versions/s, MiB/s), through the same
//!   `write_batch_placed` the sink calls, batches bounded at 64 MiB like its multi-row inserts;
//! - bytes kept for a workload of large artifacts edited by one byte and updated without a
//!   content change (whole-object deduplication), and PostgreSQL's size per million versions;
//! - the read API serving large contents to concurrent readers: latency, throughput and the
//!   API process's peak resident memory, beside the object store's own throughput;
//! - `/usage` latency for a product with a million versions, beside the scan it replaced.
//!
//! Each section works in a database of its own and a key prefix of its own: the storage sections
//! are in [`storage`], the API's in [`serving`].

mod serving;
mod storage;

use std::path::PathBuf;

use serde::Serialize;

use crate::core::Operation;
use crate::sink::Accepted;
use crate::sink::store::objects::sha256_hex;
use crate::sink::store::{ContentObjects, ObjectStoreConfig, Store, StoreError};
use crate::wire::accepted::AcceptedArtifact;

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct ContentBenchOptions {
    /// PostgreSQL owner URL (may create databases); each section makes its own database.
    pub pg_url: String,
    /// The object store with the sink's identity; each section adds its own prefix.
    pub objects: ObjectStoreConfig,
    /// The same store with the read API's identity.
    pub reader_objects: ObjectStoreConfig,
    /// Content sizes of the write section, bytes.
    pub sizes: Vec<usize>,
    /// Content written per size and backend, bytes (at least 4 versions).
    pub bytes_per_size: usize,
    /// Artifacts of the deduplication workload, and versions per artifact.
    pub dedup_artifacts: usize,
    /// Versions per artifact in the deduplication workload (half edit a byte, half keep it).
    pub dedup_versions: usize,
    /// Content size of the read section, bytes.
    pub read_size: usize,
    /// Concurrent readers.
    pub readers: usize,
    /// Requests per reader.
    pub requests_per_reader: usize,
    /// Versions of one product for the `/usage` section (0 skips it).
    pub usage_versions: i64,
    /// The `bucket` binary (its `api` command serves the read section).
    pub bucket_exe: PathBuf,
    /// The tokens file whose demo tokens the read section uses (limits are raised).
    pub tokens: PathBuf,
    /// Where temporary files go.
    pub work_dir: PathBuf,
}

/// One write figure.
#[derive(Debug, Clone, Serialize)]
pub struct WriteFigure {
    /// `pg` or `s3`.
    pub backend: &'static str,
    /// Content size, bytes.
    pub size: usize,
    /// Versions written.
    pub versions: usize,
    /// Versions per second.
    pub versions_per_sec: f64,
    /// Content MiB per second.
    pub mib_per_sec: f64,
    /// PostgreSQL's size of `artifact_versions` (heap, TOAST, indexes) after the run, bytes.
    pub pg_bytes: i64,
    /// Bytes in the object store after the run.
    pub object_bytes: u64,
}

/// The deduplication workload's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DedupFigure {
    /// `pg` or `s3`.
    pub backend: &'static str,
    /// Sum of every version's content size.
    pub logical_bytes: u64,
    /// PostgreSQL bytes plus object bytes.
    pub stored_bytes: u64,
    /// logical / stored.
    pub ratio: f64,
}

/// The read section's figures for one backend.
#[derive(Debug, Clone, Serialize)]
pub struct ReadFigure {
    /// `pg`, `s3`, or `s3-direct` (the object store read without the API).
    pub backend: &'static str,
    /// Requests answered in full.
    pub requests: usize,
    /// Median latency to the last byte, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// MiB per second across all readers.
    pub mib_per_sec: f64,
    /// Peak resident memory of the API process, MiB (0 for `s3-direct`).
    pub api_peak_rss_mib: f64,
}

/// The `/usage` section's figures.
#[derive(Debug, Clone, Serialize)]
pub struct UsageFigure {
    /// Versions of the product.
    pub versions: i64,
    /// `/usage` through the API (counters), median and 99th percentile, ms.
    pub api_p50_ms: f64,
    /// See `api_p50_ms`.
    pub api_p99_ms: f64,
    /// The scan the API used before the counters (one query, median of 3), ms.
    pub scan_ms: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ContentReport {
    /// Write figures.
    pub writes: Vec<WriteFigure>,
    /// Deduplication figures.
    pub dedup: Vec<DedupFigure>,
    /// PostgreSQL bytes per million versions of 1 KiB (or the smallest size), per backend.
    pub pg_bytes_per_million_versions: Vec<(String, f64)>,
    /// Read figures.
    pub reads: Vec<ReadFigure>,
    /// `/usage` figures.
    pub usage: Option<UsageFigure>,
}

/// Why the bench failed.
#[derive(Debug, thiserror::Error)]
pub enum ContentBenchError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Pg(#[from] tokio_postgres::Error),
    /// The object store failed.
    #[error(transparent)]
    Object(#[from] crate::sink::store::ObjectError),
    /// HTTP to the API failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// Anything else (API start, files).
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, ContentBenchError>;

const MIB: f64 = 1024.0 * 1024.0;
/// Content bytes per write call, as the sink's multi-row inserts bound them.
const BATCH_BYTES: usize = 64 << 20;

/// `url` with its database replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// `url` signed in as `role` (password = role name, as the local stack's roles are).
fn as_role(url: &str, role: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(s, r)| Some((s, r.split_once('@')?.1)))
    {
        Some((scheme, host)) => format!("{scheme}://{role}:{role}@{host}"),
        None => url.to_string(),
    }
}

/// A plain connection (the bench's own queries).
async fn pg(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = crate::sink::store::pg::tls::connect(url)
        .await
        .map_err(|e| ContentBenchError::Other(e.to_string()))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A fresh migrated database; returns its owner URL.
async fn fresh_database(opts: &ContentBenchOptions, name: &str) -> Result<String> {
    let db = format!(
        "bench_{name}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    pg(&opts.pg_url)
        .await?
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let url = with_db(&opts.pg_url, &db);
    Store::connect(&url).await?.migrate().await?;
    Ok(url)
}

/// The store config with a prefix of this section's own.
fn prefixed(config: &ObjectStoreConfig, prefix: &str) -> ObjectStoreConfig {
    ObjectStoreConfig {
        url: format!("{}/{prefix}", config.url.trim_end_matches('/')),
        ..config.clone()
    }
}

/// A version of `product`/`artifact` with `content`.
fn version(product: &str, artifact: &str, v: i64, content: Vec<u8>) -> Accepted {
    Accepted {
        topic: "bucket.accepted".into(),
        partition: 0,
        offset: v,
        artifact: AcceptedArtifact {
            product_id: product.into(),
            integration_id: "bench".into(),
            intent_id: uuid::Uuid::new_v4().to_string(),
            owner_id: "bench".into(),
            requester_id: "bench".into(),
            artifact_id: artifact.into(),
            artifact_class: "document".into(),
            operation: if v == 1 {
                Operation::Create
            } else {
                Operation::Update
            },
            version: v,
            deleted: false,
            content_sha256: sha256_hex(&content),
            content_size: content.len() as i64,
            content: Some(content),
            content_type: "application/octet-stream".into(),
            metadata: "{}".into(),
            purpose: "bench".into(),
            client_time: 1,
            decided_at: 2,
            policy_version: "bench".into(),
            source_partition: 0,
            source_offset: v,
        },
    }
}

/// Incompressible bytes (xorshift), the same for a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs every section.
pub async fn run(opts: &ContentBenchOptions) -> Result<ContentReport> {
    let mut writes = Vec::new();
    for &size in &opts.sizes {
        for backend in ["pg", "s3"] {
            let figure = storage::write_at(opts, backend, size).await?;
            tracing::info!(?figure, "write");
            writes.push(figure);
        }
    }
    let smallest = opts.sizes.iter().copied().min().unwrap_or(1024);
    let pg_bytes_per_million_versions = writes
        .iter()
        .filter(|w| w.size == smallest)
        .map(|w| {
            (
                format!("{} ({} B contents)", w.backend, w.size),
                w.pg_bytes as f64 / w.versions as f64 * 1e6,
            )
        })
        .collect();
    let mut dedup = Vec::new();
    if opts.dedup_artifacts > 0 {
        for backend in ["pg", "s3"] {
            dedup.push(storage::dedup_on(opts, backend).await?);
        }
    }
    let reads = if opts.readers > 0 {
        serving::reads(opts).await?
    } else {
        Vec::new()
    };
    let usage = if opts.usage_versions > 0 {
        Some(serving::usage(opts).await?)
    } else {
        None
    };
    Ok(ContentReport {
        writes,
        dedup,
        pg_bytes_per_million_versions,
        reads,
        usage,
    })
}

impl ContentReport {
    /// The figures as a text table.
    pub fn table(&self) -> String {
        let mut t = String::from("write: backend size versions/s MiB/s pg_bytes object_bytes\n");
        for w in &self.writes {
            t += &format!(
                "  {:<4} {:>9} {:>10.1} {:>8.1} {:>12} {:>12}\n",
                w.backend, w.size, w.versions_per_sec, w.mib_per_sec, w.pg_bytes, w.object_bytes
            );
        }
        t += "dedup: backend logical stored ratio\n";
        for d in &self.dedup {
            t += &format!(
                "  {:<4} {:>12} {:>12} {:>6.2}\n",
                d.backend, d.logical_bytes, d.stored_bytes, d.ratio
            );
        }
        for (what, bytes) in &self.pg_bytes_per_million_versions {
            t += &format!(
                "pg bytes per million versions, {what}: {:.0} MB\n",
                bytes / 1e6
            );
        }
        t += "read: backend requests p50_ms p99_ms MiB/s api_peak_rss_mib\n";
        for r in &self.reads {
            t += &format!(
                "  {:<9} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1}\n",
                r.backend, r.requests, r.p50_ms, r.p99_ms, r.mib_per_sec, r.api_peak_rss_mib
            );
        }
        if let Some(u) = &self.usage {
            t += &format!(
                "usage at {} versions: api p50 {:.2} ms, p99 {:.2} ms; the former scan {:.0} ms\n",
                u.versions, u.api_p50_ms, u.api_p99_ms, u.scan_ms
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_change_database_and_role_and_keep_tls() {
        let url = "postgres://bucket:bucket@127.0.0.1:5432/bucket?sslmode=verify-full";
        assert_eq!(
            with_db(url, "x"),
            "postgres://bucket:bucket@127.0.0.1:5432/x?sslmode=verify-full"
        );
        assert_eq!(
            as_role(url, "bucket_sink"),
            "postgres://bucket_sink:bucket_sink@127.0.0.1:5432/bucket?sslmode=verify-full"
        );
        assert_eq!(noise(100, 3), noise(100, 3));
        assert_ne!(noise(100, 3), noise(100, 4));
        assert_eq!(serving::percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
