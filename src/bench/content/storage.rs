//! The storage sections: the sink's write by content size, and bytes kept for edits.

use std::time::Instant;

use super::*;

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

/// A fresh database named after `tag`, the sink's store on it, and for the `s3` backend a fresh
/// prefix of the object store: where one storage measurement writes.
async fn backend_under_test(
    opts: &ContentBenchOptions,
    backend: &str,
    tag: &str,
) -> Result<(String, Option<ContentObjects>, Store)> {
    let url = fresh_database(opts, tag).await?;
    let objects = match backend {
        "s3" => Some(ContentObjects::open(&prefixed(
            &opts.objects,
            &format!("bench-{}", uuid::Uuid::new_v4().simple()),
        ))?),
        _ => None,
    };
    let store = Store::connect(&as_role(&url, "bucket_sink")).await?;
    Ok((url, objects, store))
}

/// The storage write at one size on one backend.
pub(super) async fn write_at(
    opts: &ContentBenchOptions,
    backend: &'static str,
    size: usize,
) -> Result<WriteFigure> {
    let (url, objects, mut store) =
        backend_under_test(opts, backend, &format!("w{backend}{size}")).await?;
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
pub(super) async fn dedup_on(
    opts: &ContentBenchOptions,
    backend: &'static str,
) -> Result<DedupFigure> {
    let (url, objects, mut store) =
        backend_under_test(opts, backend, &format!("d{backend}")).await?;
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
