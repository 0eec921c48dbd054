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
//! Each section works in a database of its own and a key prefix of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    let (client, connection) = crate::pg_tls::connect(url)
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

async fn table_bytes(url: &str) -> Result<i64> {
    let row = pg(url)
        .await?
        .query_one("SELECT pg_total_relation_size('artifact_versions')", &[])
        .await?;
    Ok(row.try_get(0)?)
}

async fn object_bytes(objects: &ContentObjects) -> Result<u64> {
    use futures::TryStreamExt;
    let mut total = 0;
    let mut listing = objects.list();
    while let Some(meta) = listing.try_next().await? {
        total += meta.size;
    }
    Ok(total)
}

/// The storage write at one size on one backend.
async fn write_at(
    opts: &ContentBenchOptions,
    backend: &'static str,
    size: usize,
) -> Result<WriteFigure> {
    let url = fresh_database(opts, &format!("w{backend}{size}")).await?;
    let objects = match backend {
        "s3" => Some(ContentObjects::open(&prefixed(
            &opts.objects,
            &format!("bench-{}", uuid::Uuid::new_v4().simple()),
        ))?),
        _ => None,
    };
    let mut store = Store::connect(&as_role(&url, "bucket_sink")).await?;
    let versions = (opts.bytes_per_size / size.max(1)).clamp(4, 20_000);
    let per_batch = (BATCH_BYTES / size.max(1)).clamp(1, 500);
    let base = noise(size, size as u64);
    let started = Instant::now();
    let mut written = 0;
    while written < versions {
        let n = per_batch.min(versions - written);
        let batch: Vec<Accepted> = (written..written + n)
            .map(|i| {
                let mut content = base.clone();
                let stamp = (i as u64).to_le_bytes();
                let at = stamp.len().min(content.len());
                content[..at].copy_from_slice(&stamp[..at]);
                version("bench", &format!("a{i}"), 1, content)
            })
            .collect();
        store
            .write_batch_placed(&batch, &[], objects.as_ref())
            .await?;
        written += n;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(WriteFigure {
        backend,
        size,
        versions,
        versions_per_sec: versions as f64 / secs,
        mib_per_sec: (versions * size) as f64 / MIB / secs,
        pg_bytes: table_bytes(&url).await?,
        object_bytes: match &objects {
            Some(o) => object_bytes(o).await?,
            None => 0,
        },
    })
}

/// The edit workload on one backend: each artifact's versions alternate a one-byte edit and
/// an update that keeps the content.
async fn dedup_on(opts: &ContentBenchOptions, backend: &'static str) -> Result<DedupFigure> {
    let url = fresh_database(opts, &format!("d{backend}")).await?;
    let objects = match backend {
        "s3" => Some(ContentObjects::open(&prefixed(
            &opts.objects,
            &format!("bench-{}", uuid::Uuid::new_v4().simple()),
        ))?),
        _ => None,
    };
    let mut store = Store::connect(&as_role(&url, "bucket_sink")).await?;
    let before = table_bytes(&url).await?;
    let mut logical = 0u64;
    for a in 0..opts.dedup_artifacts {
        let mut content = noise(opts.read_size, 1000 + a as u64);
        for v in 1..=opts.dedup_versions as i64 {
            if v % 2 == 0 {
                let at = (v as usize * 4099) % content.len().max(1);
                content[at] ^= 0xff;
            }
            logical += content.len() as u64;
            let batch = [version("bench", &format!("big{a}"), v, content.clone())];
            store
                .write_batch_placed(&batch, &[], objects.as_ref())
                .await?;
        }
    }
    let pg = (table_bytes(&url).await? - before).max(0) as u64;
    let stored = pg
        + match &objects {
            Some(o) => object_bytes(o).await?,
            None => 0,
        };
    Ok(DedupFigure {
        backend,
        logical_bytes: logical,
        stored_bytes: stored,
        ratio: logical as f64 / stored.max(1) as f64,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A running `bucket api` (killed on drop).
struct Api {
    child: std::process::Child,
    base: String,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Api {
    /// Peak resident memory so far, MiB (VmHWM).
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

/// Starts `bucket api` on a free port against `url` (reader role), with high limits.
async fn start_api(opts: &ContentBenchOptions, url: &str, prefix: &str) -> Result<Api> {
    let shipped = std::fs::read_to_string(&opts.tokens)
        .map_err(|e| ContentBenchError::Other(format!("{}: {e}", opts.tokens.display())))?;
    let shipped: toml::Table =
        toml::from_str(&shipped).map_err(|e| ContentBenchError::Other(e.to_string()))?;
    let tokens = toml::Table::from_iter([("tokens".to_string(), shipped["tokens"].clone())]);
    let text = format!(
        "[server]\nmax_connections = 4096\nrequest_timeout_ms = 600000\n\
         [limits.default]\nrequests_per_sec = 100000\nburst = 100000\n\
         content_bytes_per_sec = 4000000000\ncontent_burst_bytes = 4000000000\n\
         max_content_streams = 1024\n{}",
        toml::to_string(&tokens).map_err(|e| ContentBenchError::Other(e.to_string()))?
    );
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| ContentBenchError::Other(e.to_string()))?;
    let tokens_path = opts.work_dir.join("bench-tokens.toml");
    std::fs::write(&tokens_path, text).map_err(|e| ContentBenchError::Other(e.to_string()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| ContentBenchError::Other(e.to_string()))?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let reader = prefixed(&opts.reader_objects, prefix);
    let mut cmd = std::process::Command::new(&opts.bucket_exe);
    cmd.args(["api", "--listen", &listen])
        .arg("--tokens")
        .arg(&tokens_path)
        .args([
            "--content-store",
            &reader.url,
            "--s3-region",
            &reader.region,
        ])
        .env("BUCKET_API_PG_URL", as_role(url, "bucket_reader"))
        .env("BUCKET_S3_ACCESS_KEY_ID", &reader.access_key_id)
        .env("BUCKET_S3_SECRET_ACCESS_KEY", &reader.secret_access_key)
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(opts.work_dir.join("api.log"))
                .map_err(|e| ContentBenchError::Other(e.to_string()))?,
        );
    if let Some(endpoint) = &reader.endpoint {
        cmd.args(["--s3-endpoint", endpoint]);
    }
    if let Some(ca) = &reader.ca_file {
        cmd.arg("--s3-ca-file").arg(ca);
    }
    let child = cmd
        .spawn()
        .map_err(|e| ContentBenchError::Other(format!("{}: {e}", opts.bucket_exe.display())))?;
    let api = Api {
        child,
        base: format!("http://{listen}"),
    };
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return Ok(api);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ContentBenchError::Other("bucket api did not listen".into()))
}

/// `readers` tasks, each fetching `url` `requests` times to the last byte; latencies in ms and
/// the wall time.
async fn read_load(
    url: &str,
    token: &str,
    readers: usize,
    requests: usize,
) -> Result<(Vec<f64>, u64, f64)> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.to_string(), token.to_string());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(requests);
                let mut bytes = 0u64;
                for _ in 0..requests {
                    let t = Instant::now();
                    let mut r = http.get(&url).bearer_auth(&token).send().await?;
                    if !r.status().is_success() {
                        return Err(ContentBenchError::Other(format!(
                            "GET {url}: {}",
                            r.status()
                        )));
                    }
                    while let Some(chunk) = r.chunk().await? {
                        bytes += chunk.len() as u64;
                    }
                    out.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, ContentBenchError>((out, bytes))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        let (l, b) = t
            .await
            .map_err(|e| ContentBenchError::Other(e.to_string()))??;
        latencies.extend(l);
        bytes += b;
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, bytes, wall))
}

/// The read section: one large content per backend served by its own API process, then the
/// object store read directly with the same concurrency.
async fn reads(opts: &ContentBenchOptions) -> Result<Vec<ReadFigure>> {
    let url = fresh_database(opts, "read").await?;
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let objects = ContentObjects::open(&prefixed(&opts.objects, &prefix))?;
    let mut store = Store::connect(&as_role(&url, "bucket_sink")).await?;
    let content = noise(opts.read_size, 7);
    let in_objects = version("ai_assistant", "big", 1, content.clone());
    store
        .write_batch_placed(std::slice::from_ref(&in_objects), &[], Some(&objects))
        .await?;
    let in_rows = version("ai_avatar", "big", 1, content);
    store
        .write_batch(std::slice::from_ref(&in_rows), &[])
        .await?;
    let mut figures = Vec::new();
    for (backend, product, token) in [
        ("s3", "ai_assistant", "demo-ai-assistant-token"),
        ("pg", "ai_avatar", "demo-ai-avatar-token"),
    ] {
        let api = start_api(opts, &url, &prefix).await?;
        let target = format!("{}/v1/products/{product}/artifacts/big/content", api.base);
        let (lat, bytes, wall) =
            read_load(&target, token, opts.readers, opts.requests_per_reader).await?;
        figures.push(ReadFigure {
            backend,
            requests: lat.len(),
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            mib_per_sec: bytes as f64 / MIB / wall,
            api_peak_rss_mib: api.peak_rss_mib(),
        });
    }
    // The object store's own: the same GETs without the API.
    let reader = ContentObjects::open(&prefixed(&opts.reader_objects, &prefix))?;
    let key = reader.key("ai_assistant", &in_objects.artifact.content_sha256);
    let started = Instant::now();
    let tasks: Vec<_> = (0..opts.readers)
        .map(|_| {
            let (reader, key, n) = (reader.clone(), key.clone(), opts.requests_per_reader);
            tokio::spawn(async move {
                use futures::TryStreamExt;
                let mut out = Vec::with_capacity(n);
                let mut bytes = 0u64;
                for _ in 0..n {
                    let t = Instant::now();
                    let mut stream = reader.get(&key, None).await?.into_stream();
                    while let Some(chunk) = stream.try_next().await.map_err(|e| {
                        ContentBenchError::Object(crate::sink::store::ObjectError::Store(e))
                    })? {
                        bytes += chunk.len() as u64;
                    }
                    out.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, ContentBenchError>((out, bytes))
            })
        })
        .collect();
    let (mut lat, mut bytes) = (Vec::new(), 0);
    for t in tasks {
        let (l, b) = t
            .await
            .map_err(|e| ContentBenchError::Other(e.to_string()))??;
        lat.extend(l);
        bytes += b;
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    figures.push(ReadFigure {
        backend: "s3-direct",
        requests: lat.len(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        mib_per_sec: bytes as f64 / MIB / wall,
        api_peak_rss_mib: 0.0,
    });
    Ok(figures)
}

/// The `/usage` section: `versions` rows of one product inserted in statements of 100,000
/// (the counters' triggers run per statement), then `/usage` timed through the API.
async fn usage(opts: &ContentBenchOptions) -> Result<UsageFigure> {
    let url = fresh_database(opts, "usage").await?;
    let owner = pg(&url).await?;
    let mut done = 0i64;
    while done < opts.usage_versions {
        let n = (opts.usage_versions - done).min(100_000);
        owner
            .execute(
                "INSERT INTO artifact_versions (product_id, artifact_id, version, intent_id, \
                 artifact_class, owner_id, requester_id, integration_id, operation, deleted, \
                 content_sha256, content_size, content_type, metadata, purpose, client_time_ms, \
                 decided_at_ms, policy_version, source_partition, source_offset, content_object) \
                 SELECT 'workflow', 'a' || (i / 4), 1 + i % 4, 'i' || i, 'document', 'o', 'o', \
                 'i', CASE WHEN i % 4 = 0 THEN 'CREATE' ELSE 'UPDATE' END, false, \
                 md5(i::text) || md5(i::text), 1024, 'application/octet-stream', '{}', 'bench', \
                 1, 2, 'bench', (i / 4) % 12, i, 'content/workflow/sha256/' || md5(i::text) \
                 FROM generate_series($1::bigint, $2::bigint - 1) AS i",
                &[&done, &(done + n)],
            )
            .await?;
        done += n;
    }
    let mut scans = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        owner
            .query_one(
                "WITH latest AS (SELECT DISTINCT ON (artifact_id) deleted, content_size \
                 FROM artifact_versions WHERE product_id = $1 ORDER BY artifact_id, version DESC) \
                 SELECT (SELECT count(*) FROM latest WHERE NOT deleted), \
                 (SELECT coalesce(sum(content_size), 0)::bigint FROM latest WHERE NOT deleted), \
                 count(*), coalesce(sum(content_size), 0)::bigint \
                 FROM artifact_versions WHERE product_id = $1",
                &[&"workflow"],
            )
            .await?;
        scans.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    scans.sort_by(f64::total_cmp);
    let api = start_api(opts, &url, "usage").await?;
    let target = format!("{}/v1/products/workflow/usage", api.base);
    let (lat, _, _) = read_load(&target, "demo-workflow-token", 1, 50).await?;
    Ok(UsageFigure {
        versions: opts.usage_versions,
        api_p50_ms: percentile(&lat, 0.5),
        api_p99_ms: percentile(&lat, 0.99),
        scan_ms: percentile(&scans, 0.5),
    })
}

/// Runs every section.
pub async fn run(opts: &ContentBenchOptions) -> Result<ContentReport> {
    let mut writes = Vec::new();
    for &size in &opts.sizes {
        for backend in ["pg", "s3"] {
            let figure = write_at(opts, backend, size).await?;
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
            dedup.push(dedup_on(opts, backend).await?);
        }
    }
    let reads = if opts.readers > 0 {
        reads(opts).await?
    } else {
        Vec::new()
    };
    let usage = if opts.usage_versions > 0 {
        Some(usage(opts).await?)
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
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
