//! Sink integration tests against the real PostgreSQL (`BUCKET_PG_URL`, owner role) and the real
//! Kafka broker (`BUCKET_BROKERS`). Each test works in its own throwaway schema (selected with
//! `options=-csearch_path=...` on the URL) and its own random topic and group, so tests run in
//! parallel with each other and with the gate's tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bhiv_bucket::core::Operation;
use bhiv_bucket::sink::{self, Accepted, SinkOptions, Store, Undecodable};
use bhiv_bucket::wire::accepted::{AcceptedArtifact, encode};
use bhiv_bucket::wire::framing::frame;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Owner URL; by default the local stack over TLS verified against its CA (`verify-full`).
fn owner_url() -> String {
    std::env::var("BUCKET_PG_URL").unwrap_or_else(|_| {
        let stack = std::env::var("BUCKET_STACK_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.stack").to_string());
        format!(
            "postgres://bucket:bucket@127.0.0.1:5432/bucket?sslmode=verify-full&sslrootcert={stack}/kafka/tls/ca.crt"
        )
    })
}

fn brokers() -> String {
    std::env::var("BUCKET_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// A throwaway schema in the bucket database, with URLs for the owner and the sink role.
struct TestSchema {
    name: String,
    owner: tokio_postgres::Client,
}

impl TestSchema {
    async fn create() -> TestSchema {
        let name = format!("sinktest_{}", uuid::Uuid::new_v4().simple());
        let (owner, connection) = bhiv_bucket::sink::store::pg::tls::connect(&owner_url())
            .await
            .expect("owner connects");
        tokio::spawn(connection);
        owner
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        TestSchema { name, owner }
    }

    /// URL for `user:password` with this schema first on the search_path.
    fn url_as(&self, user: Option<(&str, &str)>) -> String {
        let parsed = bhiv_bucket::sink::store::pg::tls::PgConnectConfig::from_url(&owner_url())
            .expect("owner url parses");
        let config = parsed.config();
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().unwrap_or("bucket");
        let (user, password) = match user {
            Some(up) => (up.0.to_string(), up.1.to_string()),
            None => (
                config.get_user().unwrap_or("bucket").to_string(),
                config
                    .get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
            ),
        };
        // The owner URL's TLS settings carry over to every role.
        let mut tls = format!("&sslmode={}", parsed.ssl_mode().as_str());
        if let Some(ca) = parsed.root_cert() {
            tls.push_str("&sslrootcert=");
            tls.push_str(&ca.display().to_string().replace(' ', "%20"));
        }
        format!(
            "postgres://{user}:{password}@{host}:{port}/{db}?options=-csearch_path%3D{}{tls}",
            self.name
        )
    }

    fn owner_url(&self) -> String {
        self.url_as(None)
    }

    fn sink_url(&self) -> String {
        self.url_as(Some(("bucket_sink", "bucket_sink")))
    }

    async fn migrated_owner_store(&self) -> Store {
        let mut store = Store::connect(&self.owner_url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    async fn drop_schema(self) {
        self.owner
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}

fn artifact(product: &str, id: &str, version: i64, content: Option<Vec<u8>>) -> AcceptedArtifact {
    let (sha, size) = match &content {
        Some(c) => (hex::encode(Sha256::digest(c)), c.len() as i64),
        None => (String::new(), 0),
    };
    AcceptedArtifact {
        intent_id: uuid::Uuid::new_v4().to_string(),
        product_id: product.to_string(),
        integration_id: "it-backend".into(),
        owner_id: "alice".into(),
        requester_id: "alice".into(),
        artifact_id: id.to_string(),
        artifact_class: "document".into(),
        operation: if content.is_none() {
            Operation::Delete
        } else if version == 1 {
            Operation::Create
        } else {
            Operation::Update
        },
        version,
        deleted: content.is_none(),
        content,
        content_sha256: sha,
        content_size: size,
        content_type: "text/plain".into(),
        metadata: r#"{"k":"v"}"#.into(),
        purpose: "integration test".into(),
        client_time: 1_700_000_000_123,
        decided_at: 1_700_000_000_456,
        policy_version: "test-policy".into(),
        source_partition: 3,
        source_offset: version * 10,
    }
}

fn located(topic: &str, offset: i64, a: AcceptedArtifact) -> Accepted {
    Accepted {
        topic: topic.to_string(),
        partition: 0,
        offset,
        artifact: a,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_twice_is_a_no_op_even_when_racing() {
    init_tracing();
    let schema = TestSchema::create().await;
    let url = schema.owner_url();

    // Two processes racing on an empty schema: exactly one applies the migration.
    let (a, b) = tokio::join!(
        async {
            let mut s = Store::connect(&url).await.expect("connect a");
            s.migrate().await.expect("migrate a")
        },
        async {
            let mut s = Store::connect(&url).await.expect("connect b");
            s.migrate().await.expect("migrate b")
        }
    );
    assert_eq!(a + b, sink::store::MIGRATIONS.len());

    let mut store = Store::connect(&url).await.expect("connect");
    assert_eq!(store.migrate().await.expect("migrate again"), 0);
    assert_eq!(store.count_versions().await.expect("count"), 0);
    store.check_schema().await.expect("schema ready");
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_batch_twice_stores_each_version_once() {
    init_tracing();
    let schema = TestSchema::create().await;
    let mut store = schema.migrated_owner_store().await;

    let mut batch: Vec<Accepted> = (1..=5)
        .map(|v| {
            let content = format!("content of version {v}").into_bytes();
            located("t", v, artifact("p1", "doc", v, Some(content)))
        })
        .collect();
    batch.push(located("t", 6, artifact("p1", "doc", 6, None))); // tombstone
    let mut extreme = artifact("p1", "odd-clock", 1, Some(Vec::new()));
    extreme.client_time = i64::MAX; // out of timestamptz range: stored as NULL + raw ms
    batch.push(located("t", 7, extreme));
    let junk = vec![Undecodable {
        topic: "t".into(),
        partition: 0,
        offset: 8,
        raw: Some(b"\x01garbage".to_vec()),
        error: "bad magic".into(),
    }];

    let first = store.write_batch(&batch, &junk).await.expect("first write");
    assert_eq!(first.inserted, 7);
    assert_eq!(first.replayed, 0);
    assert_eq!(first.quarantined, 1);
    let second = store.write_batch(&batch, &junk).await.expect("replay");
    assert_eq!(second.inserted, 0);
    assert_eq!(second.replayed, 7);
    assert_eq!(store.count_versions().await.expect("count"), 7);
    assert_eq!(store.count_undecodable().await.expect("count"), 1);

    for a in &batch {
        let v = &a.artifact;
        let stored = store
            .get_version(&v.product_id, &v.artifact_id, v.version)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(&stored.artifact, v);
    }
    assert!(
        store
            .get_version("p1", "doc", 99)
            .await
            .expect("read")
            .is_none()
    );
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_and_refused_rows_are_quarantined_without_stalling() {
    init_tracing();
    let schema = TestSchema::create().await;
    let mut store = schema.migrated_owner_store().await;

    let good = artifact("p2", "a", 1, Some(b"one".to_vec()));
    store
        .write_batch(&[located("t", 0, good.clone())], &[])
        .await
        .expect("first");

    // Same key, different intent: a conflict, the stored version wins.
    let mut conflict = artifact("p2", "a", 1, Some(b"other".to_vec()));
    conflict.purpose = "conflict".into();
    // Text PostgreSQL refuses (NUL byte; the gate refuses it first, this is the sink's own
    // safety net): the batch falls back to row by row.
    let mut refused = artifact("p2", "b", 1, Some(b"x".to_vec()));
    refused.purpose = "nul\0byte".into();
    // Same intent id as a stored version but another key: stored. Intent ids are not unique in
    // storage (migration 0003): the gate's replay rule is per product and windowed.
    let mut dup_intent = artifact("p2", "c", 1, Some(b"y".to_vec()));
    dup_intent.intent_id = good.intent_id.clone();
    let fine = artifact("p2", "d", 1, Some(b"z".to_vec()));
    let batch = vec![
        located("t", 1, conflict),
        located("t", 2, refused),
        located("t", 3, dup_intent),
        located("t", 4, fine.clone()),
    ];

    let report = store.write_batch(&batch, &[]).await.expect("write");
    assert_eq!(report.inserted, 2);
    assert_eq!(report.quarantined, 2);
    assert_eq!(
        report.versions_quarantined, 2,
        "both are accepted versions not stored"
    );
    let again = store.write_batch(&batch, &[]).await.expect("replay");
    assert_eq!(again.inserted, 0);
    assert_eq!(again.replayed, 2);

    assert_eq!(store.count_versions().await.expect("count"), 3);
    let kept = store
        .get_version("p2", "a", 1)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.artifact, good);
    assert!(
        store
            .get_version("p2", "d", 1)
            .await
            .expect("read")
            .is_some()
    );
    let quarantined = store.undecodable("t").await.expect("quarantine");
    let offsets: Vec<i64> = quarantined.iter().map(|u| u.offset).collect();
    assert_eq!(offsets, vec![1, 2]);
    assert!(
        quarantined[0].error.contains("conflict"),
        "{:?}",
        quarantined[0]
    );
    assert!(quarantined.iter().all(|u| u.raw.is_some()));
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_cannot_be_rewritten_by_the_sink_role_or_the_owner() {
    init_tracing();
    let schema = TestSchema::create().await;
    let owner = schema.migrated_owner_store().await;
    drop(owner);

    // The sink role can insert and read...
    let mut sink_store = Store::connect(&schema.sink_url())
        .await
        .expect("sink connects");
    sink_store.check_schema().await.expect("sink can read");
    let a = artifact("p3", "a", 1, Some(b"v1".to_vec()));
    sink_store
        .write_batch(&[located("t", 0, a)], &[])
        .await
        .expect("sink inserts");

    // ...but UPDATE, DELETE and TRUNCATE are refused by the database.
    let (sink_client, connection) = bhiv_bucket::sink::store::pg::tls::connect(&schema.sink_url())
        .await
        .expect("sink connects");
    tokio::spawn(connection);
    for sql in [
        "UPDATE artifact_versions SET purpose = 'rewritten'",
        "DELETE FROM artifact_versions",
        "TRUNCATE artifact_versions",
        "UPDATE sink_undecodable SET error = 'x'",
        "DELETE FROM sink_undecodable",
    ] {
        let err = sink_client
            .batch_execute(sql)
            .await
            .expect_err("sink role must not rewrite history");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }

    // The reader role only reads.
    let reader_url = schema.url_as(Some(("bucket_reader", "bucket_reader")));
    let (reader, connection) = bhiv_bucket::sink::store::pg::tls::connect(&reader_url)
        .await
        .expect("reader connects");
    tokio::spawn(connection);
    reader
        .batch_execute("SELECT * FROM artifact_versions")
        .await
        .expect("reader reads");
    assert!(
        reader
            .batch_execute("INSERT INTO sink_undecodable (topic, \"partition\", \"offset\", error) VALUES ('t', 0, 99, 'x')")
            .await
            .is_err()
    );

    // Even the owner is stopped by the trigger.
    for sql in [
        "UPDATE artifact_versions SET purpose = 'rewritten'",
        "DELETE FROM artifact_versions",
        "TRUNCATE artifact_versions",
    ] {
        let err = schema
            .owner
            .batch_execute(&format!("SET search_path = {}; {sql}", schema.name))
            .await
            .expect_err("trigger must refuse");
        assert!(
            err.to_string().contains("append-only") || err.code().is_some(),
            "{err}"
        );
    }
    let stored = sink_store
        .get_version("p3", "a", 1)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.artifact.purpose, "integration test");
    schema.drop_schema().await;
}

async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("max.message.bytes", "20971520");
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

async fn delete_topic(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let _ = admin.delete_topics(&[topic], &AdminOptions::new()).await;
}

/// Committed offsets of `group` and end offsets of `topic`, per partition.
fn committed_and_end(
    group: &str,
    topic: &str,
    partitions: i32,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    let committed = committed
        .elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), o)
        })
        .collect();
    let end = (0..partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("watermarks");
            (p, high)
        })
        .collect();
    (committed, end)
}

async fn wait_for(store: &Store, versions: i64, undecodable: i64) {
    let start = Instant::now();
    loop {
        let v = store.count_versions().await.expect("count");
        let u = store.count_undecodable().await.expect("count");
        if v >= versions && u >= undecodable {
            assert_eq!((v, u), (versions, undecodable));
            return;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out: {v}/{versions} versions, {u}/{undecodable} undecodable"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end_consumes_stores_then_commits() {
    init_tracing();
    let schema = TestSchema::create().await;
    let store = schema.migrated_owner_store().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("sinktest.accepted.{id}");
    let group = format!("sinktest-{id}");
    let partitions = 3;
    create_topic(&topic, partitions).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "20971520")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let n: i64 = 40;
    let mut sent = Vec::new();
    for i in 0..n {
        let artifact_id = format!("doc-{}", i % 7);
        let a = artifact(
            "p-e2e",
            &artifact_id,
            i / 7 + 1,
            Some(format!("v{i}").into_bytes()),
        );
        sent.push(a);
    }
    // One artifact at the 16 MiB limit.
    sent.push(artifact(
        "p-e2e",
        "big",
        1,
        Some(vec![0xAB; 16 * 1024 * 1024]),
    ));
    for a in &sent {
        let value = frame(1, &encode(a).expect("encode"));
        let key = a.key();
        producer
            .send(FutureRecord::to(&topic).key(&key).payload(&value), TIMEOUT)
            .await
            .expect("produce");
    }
    // Garbage (bad magic byte) and a null value: both must be quarantined, neither may stall.
    producer
        .send(
            FutureRecord::to(&topic)
                .key("p-e2e/doc-0")
                .payload(&b"\x07not avro"[..]),
            TIMEOUT,
        )
        .await
        .expect("produce garbage");
    producer
        .send(
            FutureRecord::<str, [u8]>::to(&topic).key("p-e2e/doc-1"),
            TIMEOUT,
        )
        .await
        .expect("produce null");
    // A version after the bad records on their partitions.
    let after = artifact("p-e2e", "doc-0", 100, Some(b"after garbage".to_vec()));
    producer
        .send(
            FutureRecord::to(&topic)
                .key(&after.key())
                .payload(&frame(1, &encode(&after).expect("encode"))),
            TIMEOUT,
        )
        .await
        .expect("produce after");
    sent.push(after);

    let mut opts = SinkOptions::new(brokers(), group.clone(), schema.sink_url());
    opts.topic = topic.clone();
    opts.batch_max = 8;
    opts.batch_linger = Duration::from_millis(50);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sink::run(opts.clone(), shutdown.clone()));

    wait_for(&store, sent.len() as i64, 2).await;
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("sink stops in time")
        .expect("sink task")
        .expect("sink ran cleanly");

    for a in &sent {
        let stored = store
            .get_version(&a.product_id, &a.artifact_id, a.version)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(&stored.artifact, a);
    }
    let quarantined = store.undecodable(&topic).await.expect("quarantine");
    assert_eq!(quarantined.len(), 2);
    assert!(
        quarantined
            .iter()
            .any(|u| u.raw.as_deref() == Some(&b"\x07not avro"[..]))
    );
    assert!(quarantined.iter().any(|u| u.raw.is_none()));

    let (committed, end) = committed_and_end(&group, &topic, partitions);
    assert_eq!(committed, end, "committed offsets must equal end offsets");
    assert_eq!(end.values().sum::<i64>(), sent.len() as i64 + 2);

    // A new group replays the whole topic: the idempotent write stores nothing twice.
    let replay_group = format!("{group}-replay");
    let mut replay = opts;
    replay.group_id = replay_group.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sink::run(replay, shutdown.clone()));
    let start = Instant::now();
    loop {
        let (committed, end) = committed_and_end(&replay_group, &topic, partitions);
        if committed == end {
            break;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "replay did not catch up: {committed:?} vs {end:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("replay stops in time")
        .expect("replay task")
        .expect("replay ran cleanly");
    assert_eq!(
        store.count_versions().await.expect("count"),
        sent.len() as i64
    );
    assert_eq!(store.count_undecodable().await.expect("count"), 2);

    delete_topic(&topic).await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_refuses_an_unmigrated_database() {
    init_tracing();
    let schema = TestSchema::create().await;
    let opts = SinkOptions::new(brokers(), "sinktest-unmigrated", schema.owner_url());
    let err = sink::run(opts, CancellationToken::new())
        .await
        .expect_err("must refuse");
    assert!(matches!(err, sink::SinkError::Config(_)), "{err}");
    assert!(!err.is_retriable());
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_refusing_writes_stalls_without_committing_then_recovers() {
    init_tracing();
    let schema = TestSchema::create().await;
    let store = schema.migrated_owner_store().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("sinktest.outage.{id}");
    let group = format!("sinktest-outage-{id}");
    create_topic(&topic, 1).await;

    // The sink role loses INSERT: every batch write fails (not a data error) and is retried.
    schema
        .owner
        .batch_execute(&format!(
            "REVOKE INSERT ON {0}.artifact_versions, {0}.sink_undecodable FROM bucket_sink",
            schema.name
        ))
        .await
        .expect("revoke");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("producer");
    let sent: Vec<AcceptedArtifact> = (1..=5)
        .map(|v| artifact("p-outage", "doc", v, Some(vec![v as u8; 10])))
        .collect();
    for a in &sent {
        let value = frame(1, &encode(a).expect("encode"));
        producer
            .send(
                FutureRecord::to(&topic).key(&a.key()).payload(&value),
                TIMEOUT,
            )
            .await
            .expect("produce");
    }

    let mut opts = SinkOptions::new(brokers(), group.clone(), schema.sink_url());
    opts.topic = topic.clone();
    opts.batch_linger = Duration::from_millis(20);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sink::run(opts, shutdown.clone()));

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.count_versions().await.expect("count"), 0);
    let (committed, _) = committed_and_end(&group, &topic, 1);
    assert_eq!(
        committed.get(&0),
        Some(&-1),
        "nothing may be committed while the write fails"
    );

    // The database comes back: the same batch is written, then committed.
    schema
        .owner
        .batch_execute(&format!(
            "GRANT INSERT ON {0}.artifact_versions, {0}.sink_undecodable TO bucket_sink",
            schema.name
        ))
        .await
        .expect("grant");
    wait_for(&store, sent.len() as i64, 0).await;
    let start = Instant::now();
    loop {
        let (committed, end) = committed_and_end(&group, &topic, 1);
        if committed == end {
            break;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "not committed: {committed:?} vs {end:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("sink stops in time")
        .expect("sink task")
        .expect("sink ran cleanly");

    delete_topic(&topic).await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_database_is_unreachable_is_clean() {
    init_tracing();
    // Nothing listens on port 1: the sink keeps retrying the connection until shutdown.
    let opts = SinkOptions::new(
        brokers(),
        "sinktest-unreachable",
        "postgres://bucket_sink:bucket_sink@127.0.0.1:1/bucket?connect_timeout=1",
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sink::run(opts, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !task.is_finished(),
        "sink must wait for the database, not give up"
    );
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("sink stops in time")
        .expect("sink task")
        .expect("clean stop");
}

/// The database roles' passwords come from the operator (Secrets, `sink migrate
/// --*-role-password`), never from the migrations: a role logs in with the password
/// `set_role_password` gave it, not with another one, and a new password replaces the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_passwords_are_set_by_the_operator_not_the_migrations() {
    for (name, sql) in sink::store::MIGRATIONS {
        assert!(
            !sql.to_ascii_uppercase().contains("PASSWORD '"),
            "migration {name} fixes a password"
        );
    }
    let owner = Store::connect(&owner_url()).await.expect("owner connects");
    let role = format!("bucket_pwtest_{}", std::process::id());
    let (admin, conn) = bhiv_bucket::sink::store::pg::tls::connect(&owner_url())
        .await
        .expect("owner connects");
    let conn = tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN"
        ))
        .await
        .expect("create a throwaway role");
    let as_role =
        |password: &str| owner_url().replacen("bucket:bucket@", &format!("{role}:{password}@"), 1);
    let logs_in = |password: &'static str| {
        let url = as_role(password);
        async move {
            bhiv_bucket::sink::store::pg::tls::connect(&url)
                .await
                .is_ok()
        }
    };

    assert!(!logs_in("first-secret").await, "no password yet, no login");
    owner
        .set_role_password(&role, "first-secret")
        .await
        .expect("set");
    assert!(logs_in("first-secret").await, "the password set logs in");
    assert!(!logs_in("another").await, "another password does not");
    owner
        .set_role_password(&role, "second-secret")
        .await
        .expect("set again");
    assert!(logs_in("second-secret").await, "the new password logs in");
    assert!(!logs_in("first-secret").await, "the old one no longer does");
    assert!(
        owner.set_role_password(&role, "").await.is_err(),
        "empty refused"
    );

    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .expect("drop the throwaway role");
    drop(admin);
    let _ = conn.await;
}
