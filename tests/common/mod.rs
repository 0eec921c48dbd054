//! Shared harness for integration tests against the real local stack (started by
//! `deploy/local/up.sh`): random topics, groups and databases per test, the `bucket` binary run
//! as a real process, and read_committed readers of the output topics.

#![allow(dead_code)]

pub mod state;
pub mod tlog;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::kafka::registry::Registry;
use bhiv_bucket::ops::topics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Kafka bootstrap servers of the local stack.
pub fn brokers() -> String {
    std::env::var("BUCKET_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// True on the local stack's production profile (`deploy/local/up.sh --profile production`):
/// Kafka only on SASL_SSL and mTLS with ACLs, Redis over TLS. `deploy/faults.sh` exports it.
pub fn production() -> bool {
    std::env::var("BUCKET_PROFILE").is_ok_and(|p| p == "production")
}

/// A role's environment: (name, value) pairs.
type Identity = Vec<(String, String)>;

/// The environment of a `bucket` process acting as `role` (admin, gate, sink, auditor, product)
/// on the production profile, from `deploy/local/identity.sh`: its own principal and secrets.
/// Empty on the plain profile, where every process uses the PLAINTEXT listener.
pub fn identity(role: &str) -> Vec<(String, String)> {
    static CACHE: std::sync::Mutex<Option<HashMap<String, Identity>>> = std::sync::Mutex::new(None);
    if !production() {
        return Vec::new();
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(role.to_string())
        .or_insert_with(|| {
            let out = Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/deploy/local/identity.sh"
                ))
                .arg(role)
                .output()
                .expect("deploy/local/identity.sh runs");
            assert!(out.status.success(), "identity.sh {role} failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .clone()
}

/// The role a `bucket` command runs as: the gate, the sink (and its storage jobs), compliance
/// tooling (`audit ...`), the admin for everything else.
pub fn role_of(args: &[&str]) -> &'static str {
    match args.first().copied() {
        Some("gate") => "gate",
        Some("sink") => "sink",
        Some("audit") => "auditor",
        _ => "admin",
    }
}

/// On the production profile, installs the admin's Kafka identity for this test process's own
/// clients (topic set-up, readers that check outcomes, the feeder): the harness observes as
/// the cluster admin while the gates and sinks it starts run as their own principals.
pub fn install_harness_identity() {
    let env: HashMap<String, String> = identity("admin").into_iter().collect();
    if env.is_empty() {
        return;
    }
    let args = bhiv_bucket::kafka::security::KafkaSecurityArgs {
        kafka_security_protocol: env["BUCKET_KAFKA_SECURITY_PROTOCOL"].clone(),
        kafka_sasl_mechanism: "SCRAM-SHA-512".into(),
        kafka_sasl_username: env.get("BUCKET_KAFKA_SASL_USERNAME").cloned(),
        kafka_sasl_password: env.get("BUCKET_KAFKA_SASL_PASSWORD").cloned(),
        kafka_ssl_ca: env.get("BUCKET_KAFKA_SSL_CA").map(Into::into),
        kafka_ssl_cert: None,
        kafka_ssl_key: None,
    };
    let security = args.resolve().expect("the admin's Kafka settings resolve");
    let _ = bhiv_bucket::kafka::security::install(security);
}

/// Registry URL of the local stack.
pub fn registry_url() -> String {
    std::env::var("BUCKET_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// Owner URL of the local PostgreSQL (database `bucket`), over TLS verified against the stack's
/// local CA (`sslmode=verify-full`, as `deploy/local/env.sh` sets `BUCKET_DATABASE_URL`).
pub fn pg_owner_url() -> String {
    std::env::var("BUCKET_PG_URL").unwrap_or_else(|_| {
        format!(
            "postgres://bucket:bucket@127.0.0.1:5432/bucket?sslmode=verify-full&sslrootcert={}",
            local_ca().display()
        )
    })
}

/// The local stack's CA certificate (signs the Kafka SASL_SSL and PostgreSQL server
/// certificates; `deploy/local/kafka.sh`, `deploy/local/postgres.sh`).
pub fn local_ca() -> std::path::PathBuf {
    std::env::var_os("BUCKET_STACK_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".stack"))
        .join("kafka/tls/ca.crt")
}

/// `url` with its database replaced by `db`, query (TLS settings, options) kept.
pub fn pg_url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// Connects to `url` the way the binary does (TLS per `sslmode`/`sslrootcert`), spawning the
/// connection; panics on failure.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = bhiv_bucket::sink::store::pg::tls::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}"));
    tokio::spawn(conn);
    client
}

/// A random lowercase suffix for topic, group and database names.
pub fn suffix() -> String {
    format!(".t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Creates the four topics with `suffix` and `partitions` partitions each.
pub async fn create_topics(suffix: &str, partitions: i32) -> TopicNames {
    let mut specs = topics::parse(topics::DEFAULT_DECLARATION, Some("local")).unwrap();
    for s in &mut specs {
        s.name.push_str(suffix);
        if !s.name.starts_with("bucket.control") {
            s.partitions = partitions;
        }
    }
    topics::apply(&brokers(), &specs).await.unwrap();
    TopicNames::with_suffix(suffix)
}

/// Registry client for the local stack.
pub fn registry() -> Registry {
    Registry::new(&registry_url()).unwrap()
}

/// A running `bucket` process, killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for exit; returns the exit status success.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn log_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("logs");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{name}.log"))
}

/// Starts `bucket <args>` with the stack's environment; output goes to a log file.
pub fn spawn(name: &str, args: &[&str], env: &[(&str, String)]) -> Proc {
    let log = std::fs::File::create(log_path(name)).unwrap();
    let err = log.try_clone().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucket"));
    cmd.args(args)
        .env("BUCKET_BROKERS", brokers())
        .envs(identity(role_of(args)))
        .env("BUCKET_REGISTRY_URL", registry_url())
        .env(
            "BUCKET_POLICY",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
        )
        .env(
            "BUCKET_AUDIT_KEY_FILE",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/demo/keys/gate.audit1.ed25519"
            ),
        )
        .env("BUCKET_CHECKPOINT_EVERY", "200")
        // Tests run many gates and sinks at once: no admin server unless a test asks for one.
        .env("BUCKET_ADMIN_ADDR", "off")
        .env("RUST_LOG", "info,bhiv_bucket=debug,rdkafka=warn")
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().unwrap(),
        name: name.to_string(),
    }
}

/// Starts a gate on the suffixed topics, with local state stores in a directory of its own
/// (kept across restarts of the same gate id, as a pod's volume is).
pub fn spawn_gate(suffix: &str, group: &str, gate_id: &str) -> Proc {
    spawn(
        &format!("gate{suffix}-{gate_id}"),
        &[
            "gate",
            "--instance-id",
            gate_id,
            "--group",
            group,
            "--commit-interval-ms",
            "100",
        ],
        &[
            ("BUCKET_TOPIC_SUFFIX", suffix.to_string()),
            (
                "BUCKET_STATE_DIR",
                state_dir(suffix, gate_id).display().to_string(),
            ),
        ],
    )
}

/// The local state directory of gate `gate_id` on the suffixed topics.
pub fn state_dir(suffix: &str, gate_id: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("state")
        .join(format!("{}-{gate_id}", suffix.trim_start_matches('.')))
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: HashMap<String, Vec<u8>>,
    /// Every header in record order, duplicates kept.
    pub header_list: Vec<(String, Vec<u8>)>,
}

/// Reads every committed record of `topic` from the beginning to the current end.
pub fn read_committed(topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = bhiv_bucket::kafka::security::client_config()
        .set("bootstrap.servers", brokers())
        .set("group.id", "bucket-tests-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("max.partition.fetch.bytes", "20971520")
        .set("fetch.max.bytes", "52428800")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut pending = std::collections::HashSet::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
        pending.insert(p.id());
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            // A lost broker connection (a broker fault scenario): librdkafka carries on.
            Some(Err(e)) if bhiv_bucket::kafka::errors::is_transient(&e) => {
                eprintln!("reading {topic}: {e} (continuing)");
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: header_list(&m).into_iter().collect(),
                header_list: header_list(&m),
            }),
        }
    }
    assert!(pending.is_empty(), "did not reach the end of {topic}");
    out
}

/// A record's headers in order, duplicates kept.
fn header_list(m: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a `bucket` command to completion on the suffixed topics of the local stack, with the
/// shipped policy.
pub fn run_bucket(suffix: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(args)
        .env("BUCKET_BROKERS", brokers())
        .envs(identity(role_of(args)))
        .env("BUCKET_REGISTRY_URL", registry_url())
        .env("BUCKET_TOPIC_SUFFIX", suffix)
        .env(
            "BUCKET_POLICY",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
        )
        .output()
        .unwrap()
}

/// Runs `bucket sink reconcile` on the suffixed topics against `db`: (clean, report).
pub fn reconcile(sfx: &str, db: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(["sink", "reconcile"])
        .env("BUCKET_BROKERS", brokers())
        .envs(identity("sink"))
        .env("BUCKET_TOPIC_SUFFIX", sfx)
        .env("BUCKET_PG_URL", db)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success() && report.contains(", 0 differences"),
        report,
    )
}

/// Committed offsets of `group` on `topic`, by partition.
pub fn committed(group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = bhiv_bucket::kafka::security::client_config()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // While a transaction with offsets is pending (e.g. its gate was just killed), the broker
    // answers "unstable offset" until it resolves: report nothing rather than fail.
    let Ok(c) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else {
        return HashMap::new();
    };
    c.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// End offsets (high watermarks) of `topic`, by partition.
pub fn end_offsets(topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = bhiv_bucket::kafka::security::client_config()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Waits until the gate group has committed every produced intent offset.
pub fn wait_all_decided(group: &str, topics: &TopicNames, partitions: i32, timeout: Duration) {
    let ends = end_offsets(&topics.intents, partitions);
    wait_until(timeout, "all intents decided", || {
        let c = committed(group, &topics.intents, partitions);
        ends.iter()
            .all(|(p, end)| *end == 0 || c.get(p).copied().unwrap_or(-1) >= *end)
    });
}

/// Creates a fresh database for a test and returns its owner URL.
pub async fn fresh_database(suffix: &str) -> String {
    let name = format!("bucket_{}", suffix.trim_start_matches('.'));
    let client = pg_connect(&pg_owner_url()).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    pg_url_with_db(&pg_owner_url(), &name)
}

/// A TCP proxy to the registry that the test can switch off and on (registry outages).
pub struct FlakyProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl FlakyProxy {
    /// Starts a proxy to `target` (host:port), initially up.
    pub async fn start(target: String) -> FlakyProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(h);
            }
        });
        FlakyProxy { port, up, conns }
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Forwards again.
    pub fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Registry URL through the proxy.
    pub fn url(&self) -> String {
        let real = registry_url();
        let path = real
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("", |(_, p)| p);
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

/// A record to produce as is.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Signs with the demo keys in deploy/demo/keys.
pub fn demo_signer() -> bhiv_bucket::produce::Signer {
    bhiv_bucket::produce::Signer::new(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo/keys"),
        false,
    )
}

/// Encodes and signs an intent with its integration's demo key.
pub fn signed(
    producer: &bhiv_bucket::produce::IntentProducer,
    intent: &bhiv_bucket::core::ArtifactIntent,
) -> RawRecord {
    let value = producer.encode(intent).unwrap();
    let header = demo_signer()
        .header(&intent.integration_id, &value)
        .unwrap();
    RawRecord {
        key: Some(intent.product_id.clone().into_bytes()),
        value: Some(value),
        headers: header
            .map(|h| vec![("bucket-signature".to_string(), h.into_bytes())])
            .unwrap_or_default(),
    }
}

/// Produces one intent signed with its integration's demo key, in order.
pub async fn send_signed(
    producer: &bhiv_bucket::produce::IntentProducer,
    intent: &bhiv_bucket::core::ArtifactIntent,
) -> bhiv_bucket::produce::Delivered {
    let r = signed(producer, intent);
    let headers: Vec<(&str, &[u8])> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    producer
        .send_raw(r.key.as_deref(), r.value.as_deref(), &headers)
        .await
        .unwrap()
}

/// Produces records concurrently; returns what landed where.
pub async fn produce_all(
    producer: &bhiv_bucket::produce::IntentProducer,
    records: Vec<RawRecord>,
) -> HashMap<(i32, i64), Option<Vec<u8>>> {
    use futures::StreamExt;
    let delivered: Vec<_> = futures::stream::iter(records)
        .map(|r| async move {
            let headers: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            let d = producer
                .send_raw(r.key.as_deref(), r.value.as_deref(), &headers)
                .await
                .unwrap();
            ((d.partition, d.offset), r.value)
        })
        .buffer_unordered(500)
        .collect()
        .await;
    delivered.into_iter().collect()
}

/// What the output topics say, checked against what was produced.
#[derive(Debug, Default)]
pub struct Checked {
    pub accepted: usize,
    pub rejected: usize,
    pub audit: usize,
    /// (product, artifact, version) of every accepted record.
    pub versions: std::collections::BTreeSet<(String, String, i64)>,
    /// Reason header of each rejected record by source (partition, offset).
    pub reasons: HashMap<(i32, i64), String>,
}

/// Checks the exactly-once invariants: every produced intent offset has exactly one committed
/// outcome and exactly one audit decision; rejected records carry the original bytes; each
/// partition's audit chain links and hashes correctly; versions per artifact are 1..n.
pub fn check_invariants(
    produced: &HashMap<(i32, i64), Option<Vec<u8>>>,
    topics: &TopicNames,
) -> Checked {
    use bhiv_bucket::wire::audit::GENESIS_HASH;
    use bhiv_bucket::wire::{accepted, headers};
    let mut out = Checked::default();
    let mut outcome: HashMap<(i32, i64), &'static str> = HashMap::new();
    for r in read_committed(&topics.accepted) {
        let a = accepted::decode_framed(r.value.as_deref()).unwrap();
        let src = (a.source_partition, a.source_offset);
        assert!(
            produced.contains_key(&src),
            "accepted record for unknown source {src:?}"
        );
        assert!(
            outcome.insert(src, "accepted").is_none(),
            "second outcome for {src:?}"
        );
        assert!(
            out.versions
                .insert((a.product_id.clone(), a.artifact_id.clone(), a.version)),
            "duplicate version {a:?}"
        );
        out.accepted += 1;
    }
    for r in read_committed(&topics.rejected) {
        let num = |k: &str| -> i64 { String::from_utf8_lossy(&r.headers[k]).parse().unwrap() };
        let src = (
            num(headers::ERROR_PARTITION) as i32,
            num(headers::ERROR_OFFSET),
        );
        let original = produced
            .get(&src)
            .unwrap_or_else(|| panic!("rejected record for unknown source {src:?}"));
        assert_eq!(
            &r.value, original,
            "rejected bytes differ from the original at {src:?}"
        );
        assert!(
            outcome.insert(src, "rejected").is_none(),
            "second outcome for {src:?}"
        );
        out.reasons.insert(
            src,
            String::from_utf8_lossy(&r.headers[headers::ERROR_REASON]).to_string(),
        );
        out.rejected += 1;
    }
    let mut decided: HashMap<(i32, i64), bool> = HashMap::new();
    let mut by_partition: HashMap<i32, Vec<Read>> = HashMap::new();
    for r in read_committed(&topics.audit) {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (p, mut records) in by_partition {
        records.sort_by_key(|r| r.offset);
        let mut prev = GENESIS_HASH.to_string();
        for (i, r) in records.iter().enumerate() {
            let link = read_audit_link(r.value.as_deref()).unwrap();
            assert!(link.hash_ok(), "audit p{p}@{} bad hash", r.offset);
            let e = link.event;
            assert_eq!(e.seq, i as i64, "audit p{p}@{} sequence gap", r.offset);
            assert_eq!(e.prev_hash, prev, "audit p{p}@{} chain break", r.offset);
            prev = e.hash.clone();
            if let Some(d) = e.decision {
                assert_eq!(
                    d.source_partition, p,
                    "audit written to the wrong partition"
                );
                let src = (d.source_partition, d.source_offset);
                assert!(
                    decided.insert(src, d.accepted).is_none(),
                    "two decisions for {src:?}"
                );
                let want = if d.accepted { "accepted" } else { "rejected" };
                assert_eq!(
                    outcome.get(&src).copied(),
                    Some(want),
                    "audit/outcome mismatch at {src:?}"
                );
                out.audit += 1;
            }
        }
    }
    for src in produced.keys() {
        assert!(
            decided.contains_key(src),
            "intent {src:?} has no audit decision"
        );
        assert!(outcome.contains_key(src), "intent {src:?} has no outcome");
    }
    // Versions are contiguous from 1 per artifact: no fork, no gap.
    let mut per_artifact: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for (p, a, v) in &out.versions {
        per_artifact
            .entry((p.clone(), a.clone()))
            .or_default()
            .push(*v);
    }
    for (k, mut vs) in per_artifact {
        vs.sort();
        let want: Vec<i64> = (1..=vs.len() as i64).collect();
        assert_eq!(vs, want, "versions of {k:?} are not 1..n");
    }
    out
}

/// A deterministic mix of good and bad intents over the seed products; returns
/// (key, value) pairs ready to produce. `bad_bytes` adds non-Avro records.
pub fn mixed_workload(
    producer: &bhiv_bucket::produce::IntentProducer,
    n: usize,
    seed: u64,
) -> Vec<RawRecord> {
    use bhiv_bucket::core::{ArtifactIntent, Operation};
    let products = [
        ("ai_assistant", "document"),
        ("ai_avatar", "media"),
        ("gurukul", "transcript"),
        ("enforcement_engine", "config"),
        ("workflow", "workflow_state"),
    ];
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Expected versions as a writer would track them (may go stale: that is the point).
    let mut known: HashMap<(usize, u64), i64> = HashMap::new();
    let mut out = Vec::with_capacity(n);
    let mut signer = demo_signer();
    let mut sign = |value: &[u8], integration: &str| -> Vec<(String, Vec<u8>)> {
        signer
            .header(integration, value)
            .unwrap()
            .map(|h| vec![("bucket-signature".to_string(), h.into_bytes())])
            .unwrap_or_default()
    };
    for i in 0..n {
        let roll = next() % 100;
        let pi = (next() % products.len() as u64) as usize;
        let (product, class) = products[pi];
        let artifact = next() % 40;
        let mut intent = ArtifactIntent {
            intent_id: uuid::Uuid::new_v4().to_string(),
            product_id: product.into(),
            integration_id: format!("{product}-backend"),
            owner_id: "owner".into(),
            requester_id: "owner".into(),
            artifact_id: format!("a{artifact}"),
            artifact_class: class.into(),
            operation: Operation::Create,
            expected_version: None,
            content: Some(format!("content {i}").into_bytes()),
            content_type: "text/plain".into(),
            metadata: "{}".into(),
            purpose: "test".into(),
            client_time: bhiv_bucket::produce::now_ms(),
        };
        let mut key = Some(product.as_bytes().to_vec());
        match roll {
            0..=39 => {}
            40..=64 => {
                intent.operation = Operation::Update;
                intent.expected_version = Some(*known.get(&(pi, artifact)).unwrap_or(&1));
            }
            65..=69 => {
                intent.operation = Operation::Delete;
                intent.content = None;
                intent.expected_version = Some(*known.get(&(pi, artifact)).unwrap_or(&1));
            }
            70..=74 => intent.product_id = "unknown_product".into(),
            75..=79 => intent.artifact_class = "model_checkpoint_typo".into(),
            80..=84 => key = Some(b"someone_else".to_vec()),
            85..=87 => {
                out.push(RawRecord {
                    key,
                    value: Some(format!("garbage {i}").into_bytes()),
                    headers: Vec::new(),
                });
                continue;
            }
            88..=89 => {
                // Forged: signed over other bytes.
                let value = producer.encode(&intent).unwrap();
                let headers = sign(b"other bytes", &intent.integration_id);
                out.push(RawRecord {
                    key,
                    value: Some(value),
                    headers,
                });
                continue;
            }
            90..=94 => {
                let full = producer.encode(&intent).unwrap();
                out.push(RawRecord {
                    key,
                    value: Some(full[..full.len() / 2].to_vec()),
                    headers: Vec::new(),
                });
                continue;
            }
            _ => {
                intent.operation = Operation::Update;
                intent.expected_version = Some(999);
            }
        }
        if matches!(intent.operation, Operation::Create | Operation::Update) {
            let v = known.entry((pi, artifact)).or_insert(0);
            *v += 1;
        }
        let value = producer.encode(&intent).unwrap();
        let headers = sign(&value, &intent.integration_id);
        out.push(RawRecord {
            key,
            value: Some(value),
            headers,
        });
    }
    out
}

/// The same database URL with another role (e.g. `bucket_reader`, password = role name).
pub fn url_as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    format!("{scheme}://{role}:{role}@{host}")
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `bucket api` on a free port against `pg_url` with the shipped demo tokens and waits
/// until it answers; returns the process and its base URL.
pub fn spawn_api(name: &str, pg_url: &str) -> (Proc, String) {
    let tokens = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/api-tokens.toml");
    spawn_api_with(name, pg_url, std::path::Path::new(tokens), &[])
}

/// Starts `bucket api` with the tokens file `tokens` and extra arguments `args`, and waits until
/// it listens; returns the process and its base URL.
pub fn spawn_api_with(
    name: &str,
    pg_url: &str,
    tokens: &std::path::Path,
    args: &[&str],
) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let tokens = tokens.to_str().unwrap();
    let mut all = vec!["api", "--listen", &listen, "--tokens", tokens];
    all.extend_from_slice(args);
    let mut p = spawn(name, &all, &[("BUCKET_API_PG_URL", pg_url.to_string())]);
    let base = format!("http://{listen}");
    wait_until(Duration::from_secs(30), "the read API to listen", || {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("bucket api exited early: {status}; see its log");
        }
        std::net::TcpStream::connect(&listen).is_ok()
    });
    (p, base)
}

/// A tokens file under the test's temporary directory: the shipped demo tokens with `limits`
/// (TOML text: `[server]`, `[limits.*]` tables) in place of the shipped limits, plus `extra`
/// `[[tokens]]` entries.
pub fn tokens_file(name: &str, limits: &str, extra: &str) -> std::path::PathBuf {
    let shipped: toml::Table =
        toml::from_str(include_str!("../../deploy/api-tokens.toml")).unwrap();
    let tokens = toml::Table::from_iter([("tokens".to_string(), shipped["tokens"].clone())]);
    let text = format!("{limits}\n{}\n{extra}", toml::to_string(&tokens).unwrap());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A gate on the suffixed topics with its admin server on `admin` (ip:port) and `token`
/// (None: no token).
pub fn spawn_gate_admin(
    suffix: &str,
    group: &str,
    gate_id: &str,
    admin: &str,
    token: Option<&str>,
) -> Proc {
    let mut env = vec![("BUCKET_ADMIN_ADDR", admin.to_string())];
    if let Some(t) = token {
        env.push(("BUCKET_ADMIN_TOKEN", t.to_string()));
    }
    spawn_gate_env(suffix, group, gate_id, &env)
}

/// Starts a gate on the suffixed topics with `extra` environment (state kept in memory).
pub fn spawn_gate_env(suffix: &str, group: &str, gate_id: &str, extra: &[(&str, String)]) -> Proc {
    let mut env = vec![("BUCKET_TOPIC_SUFFIX", suffix.to_string())];
    env.extend(extra.iter().cloned());
    spawn(
        &format!("gate{suffix}-{gate_id}"),
        &[
            "gate",
            "--instance-id",
            gate_id,
            "--group",
            group,
            "--commit-interval-ms",
            "100",
        ],
        &env,
    )
}

/// An intent of `product` (class `class`) creating `artifact`, with the integration
/// `<product>-backend`.
pub fn create_intent(
    product: &str,
    class: &str,
    artifact: &str,
) -> bhiv_bucket::core::ArtifactIntent {
    bhiv_bucket::core::ArtifactIntent {
        intent_id: uuid::Uuid::new_v4().to_string(),
        product_id: product.into(),
        integration_id: format!("{product}-backend"),
        owner_id: "owner".into(),
        requester_id: "owner".into(),
        artifact_id: artifact.into(),
        artifact_class: class.into(),
        operation: bhiv_bucket::core::Operation::Create,
        expected_version: None,
        content: Some(format!("content of {artifact}").into_bytes()),
        content_type: "text/plain".into(),
        metadata: "{}".into(),
        purpose: "test".into(),
        client_time: bhiv_bucket::produce::now_ms(),
    }
}

/// GET `url` with an optional bearer token; returns (status, body).
pub async fn http_get(url: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client.get(url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `GET url` until `ok(status, body)` holds or `timeout` passes; returns the last answer.
pub async fn http_until(
    url: &str,
    token: Option<&str>,
    timeout: Duration,
    ok: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, body) = http_get(url, token).await;
        if ok(status, &body) || start.elapsed() > timeout {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The value of a Prometheus sample line `name{labels} value` (exact match of `series`).
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Governance event types in an audit topic, in partition then offset order.
pub fn governance_events(audit_topic: &str) -> Vec<(i32, String)> {
    let mut records = read_committed(audit_topic);
    records.sort_by_key(|r| (r.partition, r.offset));
    records
        .iter()
        .filter_map(|r| {
            let e = decode_audit(r.value.as_deref()).ok()?;
            Some((r.partition, e.governance?.event_type))
        })
        .collect()
}

/// Count of `sql` (a `SELECT count(*)`) in the database at `url`; -1 while it is unreachable.
pub async fn pg_count(url: &str, sql: &str) -> i64 {
    let Ok((client, conn)) = bhiv_bucket::sink::store::pg::tls::connect(url).await else {
        return -1;
    };
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.map_or(-1, |r| r.get(0))
}

/// Per-product usage (bytes, live artifacts) recomputed from the accepted topic: the latest
/// version of each artifact, deletes excluded. What the gates' published usage must equal.
pub fn usage_from_accepted(accepted_topic: &str) -> HashMap<String, (u64, u64)> {
    let mut latest: HashMap<(String, String), (i64, i64, bool)> = HashMap::new();
    for r in read_committed(accepted_topic) {
        let a = bhiv_bucket::wire::accepted::decode_framed(r.value.as_deref())
            .expect("an accepted record decodes");
        let e = latest
            .entry((a.product_id.clone(), a.artifact_id.clone()))
            .or_insert((0, 0, true));
        if a.version > e.0 {
            *e = (a.version, a.content_size, a.deleted);
        }
    }
    let mut want: HashMap<String, (u64, u64)> = HashMap::new();
    for ((product, _), (_, size, deleted)) in latest {
        if !deleted {
            let w = want.entry(product).or_default();
            w.0 += size as u64;
            w.1 += 1;
        }
    }
    want
}

/// The audit versions registered so far, relearned when a link names an id not yet known.
static AUDIT_READER: std::sync::Mutex<Option<bhiv_bucket::wire::audit::AuditReader>> =
    std::sync::Mutex::new(None);

/// Asks the registry which approved audit versions it holds (own thread and runtime, so it
/// works from sync and async tests alike).
pub fn fresh_audit_reader() -> bhiv_bucket::wire::audit::AuditReader {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(registry().audit_reader()).unwrap()
    })
    .join()
    .unwrap()
}

/// Reads a `bucket.audit` value with its writer's schema, as every real reader does.
pub fn read_audit_link(
    value: Option<&[u8]>,
) -> Result<bhiv_bucket::wire::audit::StoredLink, bhiv_bucket::wire::WireError> {
    use bhiv_bucket::wire::WireError;
    let mut guard = AUDIT_READER.lock().unwrap_or_else(|p| p.into_inner());
    let reader = guard.get_or_insert_with(fresh_audit_reader);
    match reader.read(value) {
        Err(WireError::UnknownWriterSchema(_)) => {
            *reader = fresh_audit_reader();
            reader.read(value)
        }
        other => other,
    }
}

/// Decodes a `bucket.audit` value with its writer's schema.
pub fn decode_audit(
    value: Option<&[u8]>,
) -> Result<bhiv_bucket::wire::audit::AuditEvent, bhiv_bucket::wire::WireError> {
    read_audit_link(value).map(|l| l.event)
}

/// The S3 endpoint of the local stack (versitygw, `deploy/local/s3.sh`).
pub fn s3_endpoint() -> String {
    std::env::var("BUCKET_S3_ENDPOINT").unwrap_or_else(|_| "https://127.0.0.1:8333".into())
}

/// `s3://<the stack's bucket>/<prefix>`: a key prefix of the caller's own.
pub fn content_store_url(prefix: &str) -> String {
    let bucket = std::env::var("BUCKET_S3_BUCKET").unwrap_or_else(|_| "bucket-content".into());
    format!("s3://{bucket}/{}", prefix.trim_start_matches('.'))
}

/// The stack's S3 identity `role` (sink, janitor, reader): access key id and secret.
pub fn s3_credentials(role: &str) -> (String, String) {
    let upper = role.to_ascii_uppercase();
    let key = std::env::var(format!("BUCKET_S3_{upper}_ACCESS_KEY_ID"))
        .unwrap_or_else(|_| format!("bucket-{role}"));
    let secret = std::env::var(format!("BUCKET_S3_{upper}_SECRET_ACCESS_KEY"))
        .unwrap_or_else(|_| format!("bucket-{role}-secret"));
    (key, secret)
}

/// The environment a `bucket` process needs to keep content at `url` as identity `role`.
pub fn content_store_env(url: &str, role: &str) -> Vec<(&'static str, String)> {
    let (key, secret) = s3_credentials(role);
    vec![
        ("BUCKET_CONTENT_STORE", url.to_string()),
        ("BUCKET_S3_ENDPOINT", s3_endpoint()),
        ("BUCKET_S3_CA_FILE", local_ca().display().to_string()),
        ("BUCKET_S3_ACCESS_KEY_ID", key),
        ("BUCKET_S3_SECRET_ACCESS_KEY", secret),
    ]
}

/// The content objects at `url`, opened as the stack's identity `role` through the crate's own
/// client (HTTPS, the stack's CA).
pub fn content_objects(url: &str, role: &str) -> bhiv_bucket::sink::store::ContentObjects {
    let (access_key_id, secret_access_key) = s3_credentials(role);
    bhiv_bucket::sink::store::ContentObjects::open(&bhiv_bucket::sink::store::ObjectStoreConfig {
        url: url.to_string(),
        endpoint: Some(s3_endpoint()),
        region: "us-east-1".into(),
        access_key_id,
        secret_access_key,
        ca_file: Some(local_ca()),
    })
    .expect("object store opens")
}
