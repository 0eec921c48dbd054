//! Storage guarantees against the real stack: a sink killed with SIGKILL mid-stream and
//! restarted leaves storage equal to the accepted topic (reconcile reports nothing); the sink
//! role cannot rewrite history; retention purges only what the window and legal holds allow.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bhiv_bucket::core::Operation;
use bhiv_bucket::produce::IntentProducer;
use bhiv_bucket::sink::{Accepted, Store};
use bhiv_bucket::wire::accepted::AcceptedArtifact;
use common::*;

const PARTITIONS: i32 = 3;

async fn count(url: &str, sql: &str) -> i64 {
    let (client, conn) = bhiv_bucket::sink::store::pg::tls::connect(url)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.map_or(-1, |r| r.get(0))
}

/// Creates of distinct artifacts across the seed products (all accepted), every fourth one
/// followed later by an update of an earlier artifact (accepted too): a long accepted backlog.
fn unique_workload(producer: &IntentProducer, n: usize) -> Vec<RawRecord> {
    use bhiv_bucket::core::ArtifactIntent;
    let products = [
        ("ai_assistant", "document"),
        ("ai_avatar", "media"),
        ("gurukul", "transcript"),
        ("workflow", "workflow_state"),
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (product, class) = products[i % products.len()];
        let update = i % 4 == 3 && i >= 400;
        let target = if update { i - 400 } else { i };
        let intent = ArtifactIntent {
            intent_id: uuid::Uuid::new_v4().to_string(),
            product_id: product.into(),
            integration_id: format!("{product}-backend"),
            owner_id: "owner".into(),
            requester_id: "owner".into(),
            artifact_id: format!("k{target}"),
            artifact_class: class.into(),
            operation: if update {
                Operation::Update
            } else {
                Operation::Create
            },
            expected_version: update.then_some(1),
            content: Some(format!("content {i} {}", "x".repeat(i % 300)).into_bytes()),
            content_type: "text/plain".into(),
            metadata: "{}".into(),
            purpose: "kill test".into(),
            client_time: bhiv_bucket::produce::now_ms(),
        };
        out.push(signed(producer, &intent));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_of_the_sink_mid_stream_then_restart_leaves_nothing_to_reconcile() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let db = fresh_database(&sfx).await;
    let gate_group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &gate_group, "g1");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = unique_workload(&producer, 12_000);
    let produced: HashMap<(i32, i64), Option<Vec<u8>>> = produce_all(&producer, records).await;
    wait_all_decided(&gate_group, &topics, PARTITIONS, Duration::from_secs(180));
    let accepted = read_committed(&topics.accepted).len() as i64;
    assert!(
        accepted > 5_000,
        "{accepted} accepted of {}",
        produced.len()
    );

    // Small batches so the backlog takes a while; kill as soon as some rows are stored.
    let sink_group = format!("sink{sfx}");
    let sink_args = [
        "sink",
        "--migrate",
        "--group",
        &sink_group,
        "--batch-max",
        "25",
    ];
    let env = [
        ("BUCKET_TOPIC_SUFFIX", sfx.clone()),
        ("BUCKET_PG_URL", db.clone()),
    ];
    let mut sink = spawn(&format!("sink{sfx}-1"), &sink_args, &env);
    let start = Instant::now();
    let mut stored_at_kill = 0;
    while stored_at_kill <= 0 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stored_at_kill = count(&db, "SELECT count(*) FROM artifact_versions").await;
    }
    sink.kill9();
    assert!(stored_at_kill > 0, "the sink never stored anything");
    let after_kill = count(&db, "SELECT count(*) FROM artifact_versions").await;
    assert!(
        after_kill < accepted,
        "sink finished the backlog before the kill; nothing was tested"
    );
    eprintln!("killed the sink with {after_kill} of {accepted} versions stored");

    // Restart with the default batch size.
    let _sink = spawn(&format!("sink{sfx}-2"), &sink_args[..4], &env);
    let start = Instant::now();
    while count(&db, "SELECT count(*) FROM artifact_versions").await < accepted
        && start.elapsed() < Duration::from_secs(180)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (ok, report) = reconcile(&sfx, &db);
    eprintln!("{report}");
    assert!(ok, "reconcile found differences:\n{report}");
    assert!(report.contains(", 0 differences"), "{report}");

    // A row the topic never carried is reported, and the exit status says so.
    let (owner, conn) = bhiv_bucket::sink::store::pg::tls::connect(&db)
        .await
        .unwrap();
    tokio::spawn(conn);
    owner
        .execute(
            "INSERT INTO artifact_versions SELECT product_id, artifact_id, version + 1000, \
             intent_id || '-forged', artifact_class, owner_id, requester_id, integration_id, \
             operation, deleted, content, content_sha256, content_size, content_type, metadata, \
             purpose, client_time, client_time_ms, decided_at, decided_at_ms, policy_version, \
             source_partition, source_offset FROM artifact_versions LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (ok, report) = reconcile(&sfx, &db);
    assert!(!ok, "reconcile should fail on a forged row:\n{report}");
    assert!(report.contains("extra_in_storage"), "{report}");
}

fn version(product: &str, artifact: &str, v: i64, content: Option<&[u8]>) -> Accepted {
    Accepted {
        topic: "t".into(),
        partition: 0,
        offset: v,
        artifact: AcceptedArtifact {
            intent_id: uuid::Uuid::new_v4().to_string(),
            product_id: product.into(),
            integration_id: "i".into(),
            owner_id: "o".into(),
            requester_id: "o".into(),
            artifact_id: artifact.into(),
            artifact_class: "document".into(),
            operation: match (v, content) {
                (_, None) => Operation::Delete,
                (1, _) => Operation::Create,
                _ => Operation::Update,
            },
            version: v,
            deleted: content.is_none(),
            content: content.map(<[u8]>::to_vec),
            content_sha256: String::new(),
            content_size: content.map_or(0, |c| c.len() as i64),
            content_type: "text/plain".into(),
            metadata: "{}".into(),
            purpose: "retention test".into(),
            client_time: 1,
            decided_at: 2,
            policy_version: "p".into(),
            source_partition: 0,
            source_offset: v,
        },
    }
}

async fn refused(client: &tokio_postgres::Client, sql: &str) -> String {
    let e = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} should be refused"));
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_role_cannot_rewrite_history_and_purge_respects_window_and_holds() {
    let sfx = suffix();
    let db = fresh_database(&sfx).await;
    let mut owner = Store::connect(&db).await.unwrap();
    owner.migrate().await.unwrap();
    let mut batch = Vec::new();
    for (product, artifact) in [("p1", "kept"), ("p1", "held"), ("p2", "all-held")] {
        for v in 1..=3 {
            batch.push(version(
                product,
                artifact,
                v,
                Some(format!("{v}").as_bytes()),
            ));
        }
    }
    batch.push(version("p1", "gone", 1, Some(b"x")));
    batch.push(version("p1", "gone", 2, None)); // tombstone
    owner.write_batch(&batch, &[]).await.unwrap();

    // The sink role: INSERT + SELECT only, on history and on the audit index.
    let (sink, conn) = bhiv_bucket::sink::store::pg::tls::connect(&url_as_role(&db, "bucket_sink"))
        .await
        .unwrap();
    tokio::spawn(conn);
    for sql in [
        "UPDATE artifact_versions SET content = NULL",
        "DELETE FROM artifact_versions",
        "TRUNCATE artifact_versions",
        "UPDATE audit_decisions SET detail = ''",
        "DELETE FROM audit_decisions",
        "SELECT * FROM bucket_purge(0, false)",
        "INSERT INTO legal_holds (product_id, reason) VALUES ('p1', 'x')",
        "SET bucket.purging = 'on'; DELETE FROM artifact_versions",
    ] {
        assert_eq!(refused(&sink, sql).await, "42501", "{sql}");
    }
    // Even the owner cannot UPDATE or DELETE history directly: only bucket_purge() deletes.
    let (owner_sql, conn) = bhiv_bucket::sink::store::pg::tls::connect(&db)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        refused(&owner_sql, "DELETE FROM artifact_versions").await,
        "42501"
    );
    assert_eq!(
        refused(&owner_sql, "UPDATE artifact_versions SET purpose = ''").await,
        "42501"
    );

    owner
        .place_hold("p1", Some("held"), "litigation 42")
        .await
        .unwrap();
    owner
        .place_hold("p2", None, "regulator request")
        .await
        .unwrap();

    let purger = Store::connect(&url_as_role(&db, "bucket_purger"))
        .await
        .unwrap();
    // A 90-day window: everything is too young.
    let r = purger
        .purge(Duration::from_secs(90 * 86_400), false)
        .await
        .unwrap();
    assert_eq!(
        (r.purged_versions, r.purged_tombstones, r.held_versions),
        (0, 0, 0)
    );
    // Dry run with a zero window: counts, deletes nothing.
    let dry = purger.purge(Duration::ZERO, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        count(&db, "SELECT count(*) FROM artifact_versions").await,
        11
    );
    // Zero window: kept's v1, v2 go; gone's v1 and tombstone go; holds keep 4 eligible rows.
    let r = purger.purge(Duration::ZERO, false).await.unwrap();
    assert_eq!(r.purged_versions, 3, "{r:?}");
    assert_eq!(r.purged_tombstones, 1, "{r:?}");
    assert_eq!(r.held_versions, 4, "{r:?}");
    assert_eq!(r.purged_bytes, 3);
    let left =
        |a: &str| format!("SELECT count(*) FROM artifact_versions WHERE artifact_id = '{a}'");
    assert_eq!(count(&db, &left("kept")).await, 1);
    assert_eq!(count(&db, &left("held")).await, 3);
    assert_eq!(count(&db, &left("all-held")).await, 3);
    assert_eq!(count(&db, &left("gone")).await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM purged_versions").await, 4);
    assert_eq!(count(&db, "SELECT count(*) FROM purge_runs").await, 3);

    // Lifting the artifact hold lets the next run purge it; the product hold still holds.
    assert!(owner.lift_hold("p1", Some("held")).await.unwrap());
    let r = purger.purge(Duration::ZERO, false).await.unwrap();
    assert_eq!((r.purged_versions, r.held_versions), (2, 2), "{r:?}");
    // After the purge, history is immutable again, for the owner too.
    assert_eq!(
        refused(&owner_sql, "DELETE FROM artifact_versions").await,
        "42501"
    );

    // Through the CLI, every purge and hold is an audit event on bucket.control.
    let topics = create_topics(&sfx, 1).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bucket"))
            .args(args)
            .env("BUCKET_BROKERS", brokers())
            .env("BUCKET_TOPIC_SUFFIX", &sfx)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let purger_url = url_as_role(&db, "bucket_purger");
    cli(&["sink", "purge", "--pg-url", &purger_url, "--window", "0s"]);
    cli(&[
        "sink",
        "hold",
        "--pg-url",
        &db,
        "--product",
        "p3",
        "--reason",
        "audit 7",
    ]);
    let events: Vec<serde_json::Value> = read_committed(&topics.control)
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["STORAGE_PURGED", "LEGAL_HOLD_PLACED"], "{events:?}");
    assert!(events[0]["detail"]["run_id"].as_i64().unwrap() > 0);
    assert_eq!(events[1]["detail"]["reason"], "audit 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_backend_survives_kill9_and_reconciles_with_the_topic() {
    let sfx = suffix();
    let topics = create_topics(&sfx, PARTITIONS).await;
    let gate_group = format!("gate{sfx}");
    let _gate = spawn_gate(&sfx, &gate_group, "g1");
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    let records = unique_workload(&producer, 3_000);
    produce_all(&producer, records).await;
    wait_all_decided(&gate_group, &topics, PARTITIONS, Duration::from_secs(180));

    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_string();
    let group = format!("sink{sfx}");
    let args = [
        "sink",
        "--backend",
        "fs",
        "--data-dir",
        &dir,
        "--group",
        &group,
        "--batch-max",
        "25",
    ];
    let env = [("BUCKET_TOPIC_SUFFIX", sfx.clone())];
    let mut sink = spawn(&format!("sinkfs{sfx}-1"), &args, &env);
    let index = data.path().join("index");
    wait_until(Duration::from_secs(60), "first fs writes", || {
        std::fs::read_dir(&index).is_ok_and(|mut d| d.next().is_some())
    });
    sink.kill9();
    let _sink = spawn(&format!("sinkfs{sfx}-2"), &args[..7], &env);
    let reconcile_fs = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bucket"))
            .args(["sink", "reconcile", "--backend", "fs", "--data-dir", &dir])
            .env("BUCKET_BROKERS", brokers())
            .env("BUCKET_TOPIC_SUFFIX", &sfx)
            .output()
            .unwrap()
    };
    let start = Instant::now();
    let mut out = reconcile_fs();
    while !out.status.success() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(500));
        out = reconcile_fs();
    }
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "fs storage differs from the topic:\n{report}"
    );
    assert!(report.contains(", 0 differences"), "{report}");
}
