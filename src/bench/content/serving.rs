//! The API sections: large contents to concurrent readers (and the object store read
//! directly), and `/usage` at a million versions.

use std::time::{Duration, Instant};

use super::*;

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
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

/// `readers` tasks, each calling `fetch` `requests` times (one whole content, its byte count);
/// the sorted latencies in ms, the bytes and the wall time.
async fn timed<F, Fut>(readers: usize, requests: usize, fetch: F) -> Result<(Vec<f64>, u64, f64)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<u64>> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let fetch = fetch.clone();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(requests);
                let mut bytes = 0u64;
                for _ in 0..requests {
                    let t = Instant::now();
                    bytes += fetch().await?;
                    out.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, ContentBenchError>((out, bytes))
            })
        })
        .collect();
    let (mut latencies, mut bytes) = (Vec::new(), 0);
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

/// [`timed`] GETs of `url` with `token`, each read to the last byte.
async fn read_load(
    url: &str,
    token: &str,
    readers: usize,
    requests: usize,
) -> Result<(Vec<f64>, u64, f64)> {
    let (http, url, token) = (reqwest::Client::new(), url.to_string(), token.to_string());
    timed(readers, requests, move || {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let mut r = http.get(&url).bearer_auth(&token).send().await?;
            if !r.status().is_success() {
                return Err(ContentBenchError::Other(format!(
                    "GET {url}: {}",
                    r.status()
                )));
            }
            let mut bytes = 0u64;
            while let Some(chunk) = r.chunk().await? {
                bytes += chunk.len() as u64;
            }
            Ok(bytes)
        }
    })
    .await
}

/// The read section: one large content per backend served by its own API process, then the
/// object store read directly with the same concurrency.
pub(super) async fn reads(opts: &ContentBenchOptions) -> Result<Vec<ReadFigure>> {
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
    let (lat, bytes, wall) = timed(opts.readers, opts.requests_per_reader, move || {
        let (reader, key) = (reader.clone(), key.clone());
        async move {
            use futures::TryStreamExt;
            let mut stream = reader.get(&key, None).await?.into_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(crate::sink::store::ObjectError::Store)?
            {
                bytes += chunk.len() as u64;
            }
            Ok(bytes)
        }
    })
    .await?;
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
pub(super) async fn usage(opts: &ContentBenchOptions) -> Result<UsageFigure> {
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
