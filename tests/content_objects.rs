//! Content in object storage against the real stack: the local S3 server (versitygw over HTTPS,
//! `deploy/local/s3.sh`, each part with the identity it runs as) and PostgreSQL. Each test
//! writes under its own key prefix in the stack's bucket and its own database.
//!
//! - the sink stores each product's content once per digest, rows name the object;
//! - reconcile reads every referenced object and reports a missing one;
//! - purge and the orphan collector delete exactly the objects no version references;
//! - `migrate-content` moves rows' content into objects, resumably and checked by digest;
//! - the read API streams content from the object store with ETag, Range and 304/416 answers,
//!   with read-only credentials;
//! - the usage counters match a scan of the versions.

mod common;

use std::time::Duration;

use bhiv_bucket::core::Operation;
use bhiv_bucket::sink::store::{ContentObjects, PgSink, VersionStore};
use bhiv_bucket::sink::{Accepted, Store};
use bhiv_bucket::wire::accepted::AcceptedArtifact;
use common::*;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

const TOKEN_A: &str = "demo-ai-assistant-token";

fn objects(sfx: &str, role: &str) -> ContentObjects {
    content_objects(&content_store_url(sfx), role)
}

fn sha(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

fn version(product: &str, artifact: &str, v: i64, content: &[u8]) -> Accepted {
    Accepted {
        topic: "bucket.accepted".into(),
        partition: 0,
        offset: v,
        artifact: AcceptedArtifact {
            product_id: product.into(),
            integration_id: "i".into(),
            intent_id: uuid::Uuid::new_v4().to_string(),
            owner_id: "o".into(),
            requester_id: "o".into(),
            artifact_id: artifact.into(),
            artifact_class: "document".into(),
            operation: if v == 1 {
                Operation::Create
            } else {
                Operation::Update
            },
            version: v,
            deleted: false,
            content: Some(content.to_vec()),
            content_sha256: sha(content),
            content_size: content.len() as i64,
            content_type: "application/octet-stream".into(),
            metadata: "{}".into(),
            purpose: "content objects test".into(),
            client_time: 1,
            decided_at: 2,
            policy_version: "p".into(),
            source_partition: 0,
            source_offset: v,
        },
    }
}

/// Keys of every object under the test's prefix.
async fn listed(o: &ContentObjects) -> Vec<String> {
    let mut keys: Vec<String> = o
        .list()
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn sink(db: &str, sfx: &str) -> PgSink {
    let mut store = Store::connect(db).await.unwrap();
    store.migrate().await.unwrap();
    // What the sink does at start: the prefix is this database's.
    objects(sfx, "sink")
        .claim(&store.deployment_id().await.unwrap())
        .await
        .unwrap();
    PgSink {
        store: Store::connect(&url_as_role(db, "bucket_sink"))
            .await
            .unwrap(),
        url: url_as_role(db, "bucket_sink"),
        objects: Some(objects(sfx, "sink")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_stored_once_per_product_and_digest_and_reconciled_object_by_object() {
    let sfx = suffix();
    let db = fresh_database(&sfx).await;
    let mut sink = sink(&db, &sfx).await;
    let o = objects(&sfx, "sink");
    let (x, y) = (b"the same bytes".to_vec(), vec![7u8; 300_000]);
    let batch = vec![
        version("p1", "a", 1, &x),
        version("p1", "b", 1, &x),
        version("p2", "a", 1, &x),
        version("p1", "a", 2, &y),
    ];
    let report = sink.write_batch(&batch, &[]).await.unwrap();
    assert_eq!(report.inserted, 4);
    let want = vec![
        o.key("p1", &sha(&x)).to_string(),
        o.key("p1", &sha(&y)).to_string(),
        o.key("p2", &sha(&x)).to_string(),
    ];
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(
        listed(&o).await,
        sorted,
        "one object per product and digest"
    );

    // Rows name their object and hold no bytes.
    let owner = pg_connect(&db).await;
    let rows = owner
        .query(
            "SELECT product_id, content IS NULL, content_object FROM artifact_versions \
             ORDER BY product_id, artifact_id, version",
            &[],
        )
        .await
        .unwrap();
    for r in &rows {
        let in_row_is_null: bool = r.get(1);
        let key: Option<String> = r.get(2);
        assert!(in_row_is_null);
        assert!(key.is_some_and(|k| want.contains(&k)));
    }

    // A replay stores nothing new; content that does not hash to its digest is quarantined
    // and never uploaded.
    let again = sink.write_batch(&batch, &[]).await.unwrap();
    assert_eq!((again.inserted, again.replayed), (0, 4));
    let mut forged = version("p1", "c", 1, b"forged");
    forged.artifact.content_sha256 = sha(b"something else");
    let report = sink.write_batch(&[forged], &[]).await.unwrap();
    assert_eq!(report.versions_quarantined, 1);
    assert_eq!(listed(&o).await.len(), 3);

    // Reconcile's storage side reads each object: equal digests, then a deleted object shows.
    let side = sink
        .store
        .storage_side("bucket.accepted", Some(&o))
        .await
        .unwrap();
    for a in &batch {
        let v = &a.artifact;
        let f = &side.versions[&(v.product_id.clone(), v.artifact_id.clone(), v.version)];
        assert_eq!(f.content_sha256, v.content_sha256);
    }
    // The sink's identity may not delete; the janitor's may.
    assert!(o.delete(&o.key("p2", &sha(&x))).await.is_err());
    let janitor = objects(&sfx, "janitor");
    janitor.delete(&o.key("p2", &sha(&x))).await.unwrap();
    let side = sink
        .store
        .storage_side("bucket.accepted", Some(&o))
        .await
        .unwrap();
    let f = &side.versions[&("p2".to_string(), "a".to_string(), 1)];
    assert!(f.content_sha256.starts_with("missing object"), "{f:?}");
    let without = sink.store.storage_side("bucket.accepted", None).await;
    assert!(without.is_err(), "rows in objects need --content-store");

    // The usage counters the triggers keep equal a scan of the versions.
    let scan = owner
        .query_one(
            "WITH latest AS (SELECT DISTINCT ON (artifact_id) deleted, content_size \
             FROM artifact_versions WHERE product_id = 'p1' ORDER BY artifact_id, version DESC) \
             SELECT (SELECT count(*) FROM latest WHERE NOT deleted), \
             (SELECT coalesce(sum(content_size), 0)::bigint FROM latest WHERE NOT deleted), \
             count(*), coalesce(sum(content_size), 0)::bigint \
             FROM artifact_versions WHERE product_id = 'p1'",
            &[],
        )
        .await
        .unwrap();
    let counters = owner
        .query_one(
            "SELECT sum(live_artifacts)::bigint, sum(live_bytes)::bigint, \
             sum(stored_versions)::bigint, sum(stored_bytes)::bigint \
             FROM product_usage WHERE product_id = 'p1'",
            &[],
        )
        .await
        .unwrap();
    for i in 0..4 {
        assert_eq!(
            scan.get::<_, i64>(i),
            counters.get::<_, i64>(i),
            "column {i}"
        );
    }
    assert_eq!(counters.get::<_, i64>(0), 2);
    assert_eq!(counters.get::<_, i64>(1), (x.len() + y.len()) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_and_the_collector_delete_only_unreferenced_objects() {
    let sfx = suffix();
    let db = fresh_database(&sfx).await;
    let mut sink = sink(&db, &sfx).await;
    let o = objects(&sfx, "sink");
    let (w, v, shared) = (b"old".to_vec(), b"new".to_vec(), b"shared".to_vec());
    sink.write_batch(
        &[
            version("p1", "d", 1, &w),
            version("p1", "d", 2, &v),
            version("p1", "e", 1, &shared),
            version("p1", "e", 2, &v),
            version("p1", "f", 1, &shared),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(listed(&o).await.len(), 3);

    // An upload whose row never committed (a sink killed between the two).
    let orphan = o.key("p1", &sha(b"orphan"));
    o.put(&orphan, bytes::Bytes::from_static(b"orphan"))
        .await
        .unwrap();
    let janitor = objects(&sfx, "janitor");
    let mut owner = Store::connect(&db).await.unwrap();
    let report = owner.collect_orphans(&janitor).await.unwrap();
    assert_eq!((report.examined, report.deleted), (4, 1));
    assert_eq!(o.size(&orphan).await.unwrap(), None);

    // Purge with a zero window removes both superseded versions: "old" goes, "shared" stays
    // (p1/f still references it).
    let mut purger = Store::connect(&url_as_role(&db, "bucket_purger"))
        .await
        .unwrap();
    let run = purger.purge(Duration::ZERO, false).await.unwrap();
    assert_eq!(run.purged_versions, 2);
    let collected = purger.collect_purged(&janitor, run.run_id).await.unwrap();
    assert_eq!((collected.examined, collected.deleted), (2, 1));
    assert_eq!(o.size(&o.key("p1", &sha(&w))).await.unwrap(), None);
    assert_eq!(
        o.size(&o.key("p1", &sha(&shared))).await.unwrap(),
        Some(shared.len() as u64)
    );
    assert!(o.size(&o.key("p1", &sha(&v))).await.unwrap().is_some());
    // Stored counters follow the purge; live ones do not move.
    let usage = pg_connect(&db)
        .await
        .query_one(
            "SELECT sum(live_artifacts)::bigint, sum(stored_versions)::bigint \
             FROM product_usage WHERE product_id = 'p1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((usage.get::<_, i64>(0), usage.get::<_, i64>(1)), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_content_moves_rows_into_objects_resumably_and_checks_digests() {
    let sfx = suffix();
    let db = fresh_database(&sfx).await;
    let mut owner = Store::connect(&db).await.unwrap();
    owner.migrate().await.unwrap();
    let mut batch: Vec<Accepted> = (1..=5)
        .map(|i| version("p1", &format!("a{i}"), 1, format!("content {i}").as_bytes()))
        .collect();
    let mut bad = version("p1", "z", 1, b"bytes");
    bad.artifact.content_sha256 = sha(b"not these bytes");
    batch.push(bad);
    owner.write_batch(&batch, &[]).await.unwrap();

    let o = objects(&sfx, "sink");
    let (mut moved, mut mismatches, mut after) = (0, Vec::new(), None);
    loop {
        let r = owner
            .migrate_content_batch(&o, 2, &mut after)
            .await
            .unwrap();
        moved += r.moved;
        mismatches.extend(r.digest_mismatches);
        if r.scanned == 0 {
            break;
        }
    }
    assert_eq!(moved, 5);
    assert_eq!(mismatches, vec!["p1/z version 1".to_string()]);
    // A second run finds only the mismatched version, still in its row.
    let mut after = None;
    let r = owner
        .migrate_content_batch(&o, 100, &mut after)
        .await
        .unwrap();
    assert_eq!((r.scanned, r.moved), (1, 0));
    for a in &batch[..5] {
        let v = &a.artifact;
        let bytes = o.read_all(&o.key("p1", &v.content_sha256)).await.unwrap();
        assert_eq!(bytes.as_ref(), v.content.as_deref().unwrap());
    }
    // History stays immutable otherwise: the owner cannot touch a moved row.
    let client = pg_connect(&db).await;
    let err = client
        .batch_execute(
            "BEGIN; SELECT set_config('bucket.moving_content', 'on', true); \
             UPDATE artifact_versions SET purpose = 'rewritten' WHERE artifact_id = 'a1'; COMMIT",
        )
        .await
        .expect_err("only the move is allowed");
    assert!(err.to_string().contains("append-only") || err.code().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_streams_content_from_objects_with_etags_and_ranges() {
    let sfx = suffix();
    let db = fresh_database(&sfx).await;
    let mut sink = sink(&db, &sfx).await;
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let a = version("ai_assistant", "doc", 1, &content);
    sink.write_batch(std::slice::from_ref(&a), &[])
        .await
        .unwrap();

    // The reader identity may read but not write.
    let reader = objects(&sfx, "reader");
    assert!(
        reader
            .put(
                &reader.key("ai_assistant", "x"),
                bytes::Bytes::from_static(b"x")
            )
            .await
            .is_err(),
        "the reader identity must not write"
    );

    let (key, secret) = s3_credentials("reader");
    let ca = local_ca();
    let url = content_store_url(&sfx);
    let endpoint = s3_endpoint();
    // The secret is passed by reference to a file, as deployments mount it.
    let secret_file =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("s3-secret{sfx}"));
    std::fs::write(&secret_file, &secret).unwrap();
    let secret_ref = format!("file:{}", secret_file.display());
    let (_api, base) = {
        let tokens = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/api-tokens.toml");
        let args = [
            "--s3-secret-access-key",
            secret_ref.as_str(),
            "--content-store",
            url.as_str(),
            "--s3-endpoint",
            endpoint.as_str(),
            "--s3-access-key-id",
            key.as_str(),
            "--s3-ca-file",
            ca.to_str().unwrap(),
        ];
        spawn_api_with(
            &format!("api-objects{sfx}"),
            &url_as_role(&db, "bucket_reader"),
            std::path::Path::new(tokens),
            &args,
        )
    };
    let http = reqwest::Client::new();
    let art = format!("{base}/v1/products/ai_assistant/artifacts/doc");
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut req = http.get(format!("{art}{path}")).bearer_auth(TOKEN_A);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let r = get("/content", &[]).await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha(&content)));
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().as_ref(), content.as_slice());

    let r = get("/versions/1/content", &[("range", "bytes=1000-1999")])
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/1000000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &content[1000..2000]);

    let r = get("/content", &[("if-none-match", etag.as_str())])
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = get("/content", &[("range", "bytes=2000000-")])
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */1000000");

    let json: serde_json::Value = get("", &[]).await.unwrap().json().await.unwrap();
    let b64 = json["content_base64"].as_str().unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(decoded, content);

    let usage: serde_json::Value = http
        .get(format!("{base}/v1/products/ai_assistant/usage"))
        .bearer_auth(TOKEN_A)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["live_bytes"], 1_000_000);
    assert_eq!(usage["stored_versions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_serves_one_database_and_deleters_refuse_another() {
    let sfx = suffix();
    let first = fresh_database(&sfx).await;
    let _sink = sink(&first, &sfx).await;
    let second = fresh_database(&format!("{sfx}b")).await;
    let mut other = Store::connect(&second).await.unwrap();
    other.migrate().await.unwrap();
    let janitor = objects(&sfx, "janitor");
    let err = other.collect_orphans(&janitor).await.unwrap_err();
    assert!(err.to_string().contains("belongs to database"), "{err}");
    let run = other.purge(Duration::ZERO, false).await.unwrap();
    assert!(other.collect_purged(&janitor, run.run_id).await.is_err());
    let claim = objects(&sfx, "sink")
        .claim(&other.deployment_id().await.unwrap())
        .await;
    assert!(
        claim.is_err(),
        "a second database must not claim the prefix"
    );
    // A prefix no sink has used: nothing is deleted there either.
    let unused = objects(&format!("{sfx}-unused"), "janitor");
    let err = other.collect_orphans(&unused).await.unwrap_err();
    assert!(err.to_string().contains("no deployment marker"), "{err}");
}
