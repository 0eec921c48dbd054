//! Sink throughput into PostgreSQL for 1 KiB artifacts (issue 6 "Speed").
//! Short form runs in the default test run; the full campaign is
//! `BUCKET_BENCH_N=100000 cargo test --release --test sink_throughput -- --nocapture`.
//! (`BUCKET_BENCH_N`, `BUCKET_BENCH_BATCH` override the record count and the batch size).

mod common;

use std::time::{Duration, Instant};

use bhiv_bucket::core::Operation;
use bhiv_bucket::sink::{self, SinkOptions};
use bhiv_bucket::wire::accepted::{AcceptedArtifact, encode};
use bhiv_bucket::wire::framing::frame;
use common::*;
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_throughput_1kib() {
    let n: usize = std::env::var("BUCKET_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let batch: usize = std::env::var("BUCKET_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let sfx = suffix();
    let topics = create_topics(&sfx, 6).await;
    let db = fresh_database(&sfx).await;
    let mut store = sink::Store::connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    let content = vec![b'x'; 1024];
    let records: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let a = AcceptedArtifact {
                intent_id: uuid::Uuid::new_v4().to_string(),
                product_id: "ai_assistant".into(),
                integration_id: "bench".into(),
                owner_id: "o".into(),
                requester_id: "o".into(),
                artifact_id: format!("a{i}"),
                artifact_class: "document".into(),
                operation: Operation::Create,
                version: 1,
                deleted: false,
                content: Some(content.clone()),
                content_sha256: String::new(),
                content_size: 1024,
                content_type: "text/plain".into(),
                metadata: "{}".into(),
                purpose: "bench".into(),
                client_time: 1,
                decided_at: 2,
                policy_version: "p".into(),
                source_partition: 0,
                source_offset: i as i64,
            };
            (a.key(), frame(1, &encode(&a).unwrap()))
        })
        .collect();
    let topic = topics.accepted.clone();
    futures::stream::iter(records.iter())
        .map(|(k, v)| {
            let p = &producer;
            let t = &topic;
            async move {
                p.send(
                    FutureRecord::to(t).key(k).payload(v),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(20_000)
        .collect::<Vec<()>>()
        .await;
    let mut opts = SinkOptions::new(brokers(), format!("bench{sfx}"), db.clone());
    opts.topic = topics.accepted.clone();
    opts.batch_max = batch;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(sink::run(opts, shutdown.clone()));
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut stored = 0;
    while stored < n as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored = store.count_versions().await.unwrap();
        if stored > 0 && first.is_none() {
            first = Some(Instant::now());
        }
    }
    let elapsed = first.unwrap().elapsed();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(stored, n as i64);
    eprintln!(
        "sink throughput: {n} x 1 KiB artifacts in {:.2} s = {:.0} artifacts/s (batch_max {batch})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
