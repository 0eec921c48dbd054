//! Fault injection against the real stack (issue #9): a mixed workload (good and bad intents,
//! five products) is produced at a steady rate while a gate group and the sink run; a fault is
//! injected under that load; then every invariant is checked: exactly one committed decision per
//! intent, versions 1..n per artifact, Redis usage equal to a recomputation from the accepted
//! artifacts, `bucket audit verify` (chains, signatures, completeness) and `bucket sink
//! reconcile` (PostgreSQL equal to the accepted topic) both clean.
//!
//! Every scenario stops and starts services of the stack it runs against, so each is
//! `#[ignore]`d: the normal parallel `cargo test` never runs them. `deploy/faults.sh` runs them
//! one at a time (`--ignored --test-threads 1`; a lock serialises them anyway). Knobs:
//! `BUCKET_FAULTS_INTENTS` (per repetition), `BUCKET_FAULTS_REPS`, `BUCKET_FAULTS_RATE`
//! (intents/s), `BUCKET_FAULTS_KILLS` (kill rounds per repetition), `BUCKET_FAULTS_OUTAGE_S`
//! (seconds a service stays down), `BUCKET_FAULTS_RESULTS` (JSON lines, one per repetition).

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::ops::topics;
use bhiv_bucket::produce::IntentProducer;
use bhiv_bucket::wire::{accepted, headers};
use common::*;

const PARTITIONS: i32 = 4;

#[path = "faults/instances.rs"]
mod instances;

#[path = "faults/objects.rs"]
mod objects;

/// Gate instance ids a scenario may use (`g0`..): two in the group, a third joins and leaves.
const GATE_IDS: usize = 3;

/// Longest a committed decision may stay invisible to read_committed readers once the gate group
/// has committed its offset: a stuck transaction of an abandoned session is aborted when the next
/// session re-initialises its transactional id, at the latest by the coordinator after the gate's
/// transaction.timeout.ms (15 s) plus the broker's abort scan interval (10 s by default).
const VISIBILITY_BOUND: Duration = Duration::from_secs(30);

/// How long `finish` keeps looking for hidden decisions before it counts them as lost.
const VISIBILITY_WAIT: Duration = Duration::from_secs(90);

type Produced = HashMap<(i32, i64), Option<Vec<u8>>>;

/// One scenario at a time, whatever the test thread count: they share the stack.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    install_harness_identity();
    SERIAL.lock().await
}

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Scale of a run, from the environment.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    intents: usize,
    reps: usize,
    rate: usize,
    kills: usize,
    outage: Duration,
    timeout: Duration,
}

fn knobs() -> Knobs {
    Knobs {
        intents: knob("BUCKET_FAULTS_INTENTS", 2000),
        reps: knob("BUCKET_FAULTS_REPS", 1),
        rate: knob("BUCKET_FAULTS_RATE", 500).max(10),
        kills: knob("BUCKET_FAULTS_KILLS", 3),
        outage: Duration::from_secs(knob("BUCKET_FAULTS_OUTAGE_S", 5)),
        timeout: Duration::from_secs(knob("BUCKET_FAULTS_TIMEOUT_S", 240)),
    }
}

/// Runs `deploy/local/<script> <args>` with this process's environment (stack dir, ports).
fn stack(script: &str, args: &[&str]) {
    let path = format!("{}/deploy/local/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .expect("running a stack script");
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn redis_url() -> String {
    std::env::var("BUCKET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Creates the four topics on a replicated cluster: replication 3, min.insync.replicas 2 (the
/// production defaults of topics/topics.toml).
async fn create_replicated_topics(sfx: &str, partitions: i32) -> TopicNames {
    let mut specs = topics::parse(topics::DEFAULT_DECLARATION, None).expect("declaration parses");
    for s in &mut specs {
        s.name.push_str(sfx);
        s.partitions = partitions;
        assert_eq!(s.replication_factor, 3);
        assert_eq!(
            s.config.get("min.insync.replicas").map(String::as_str),
            Some("2")
        );
    }
    let mut attempt = 0;
    loop {
        match topics::apply(&brokers(), &specs).await {
            Ok(_) => break,
            Err(e) if attempt < 30 => {
                eprintln!("creating replicated topics: {e}; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("creating replicated topics: {e}"),
        }
    }
    TopicNames::with_suffix(sfx)
}

/// A producer task sending the workload at a steady rate.
struct Feeder {
    sent: Arc<AtomicUsize>,
    total: usize,
    /// What was produced, and how long producing it took.
    handle: tokio::task::JoinHandle<(Produced, Duration)>,
}

impl Feeder {
    fn start(producer: Arc<IntentProducer>, records: Vec<RawRecord>, rate: usize) -> Feeder {
        let sent = Arc::new(AtomicUsize::new(0));
        let total = records.len();
        let counter = sent.clone();
        let handle = tokio::spawn(async move {
            let chunk = (rate / 10).max(1);
            let mut produced = Produced::new();
            let start = Instant::now();
            for (i, c) in records.chunks(chunk).enumerate() {
                let due = start + Duration::from_millis(100 * i as u64);
                tokio::time::sleep_until(due.into()).await;
                produced.extend(produce_all(&producer, c.to_vec()).await);
                counter.fetch_add(c.len(), Ordering::SeqCst);
            }
            (produced, start.elapsed())
        });
        Feeder {
            sent,
            total,
            handle,
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    async fn finish(self) -> (Produced, Duration) {
        self.handle.await.expect("feeder task")
    }
}

/// What one repetition measured.
#[derive(Debug, Default)]
struct Figures {
    intents: usize,
    /// Intents per second the feeder actually produced at (the offered rate is the knob).
    achieved_rate: f64,
    backlog_at_fault: i64,
    lost: usize,
    /// Intents whose outcome was committed but not yet visible to read_committed readers at the
    /// first look (an open transaction pinning the last stable offset).
    hidden: usize,
    /// How long after the first look the hidden ones took to become visible.
    visibility_stall: Duration,
    duplicates: usize,
    gate_recovery: Duration,
    sink_recovery: Duration,
    invariants_ok: bool,
    audit_verify_ok: bool,
    reconcile_ok: bool,
    usage_ok: bool,
    /// Every gate's local stores and the state changelog equal the audit log's recomputation.
    state_ok: bool,
    /// After `bucket sink gc-objects`, the content objects are exactly those rows reference
    /// (true when content stays in PostgreSQL).
    objects_ok: bool,
    note: String,
    /// Scenario-specific figures (the instance scenarios' recovery times), merged into the
    /// results line.
    extra: serde_json::Map<String, serde_json::Value>,
}

/// One repetition of a scenario: its topics, database, gate instances and sink.
struct Run {
    fault: &'static str,
    rep: usize,
    knobs: Knobs,
    sfx: String,
    topics: TopicNames,
    group: String,
    sink_group: String,
    db: String,
    /// Database URL the sink is given (a proxy in the latency scenario).
    sink_db: String,
    gates: Vec<Proc>,
    sink: Option<Proc>,
    /// More sink instances (`s1`, …) beside `sink` (`s0`), each with its own id, as a
    /// multi-instance deployment runs them; they are checked and stopped with the rest.
    more_sinks: Vec<Proc>,
    /// Sink instances `load` starts (at least one).
    sink_count: usize,
    spawned: usize,
    producer: Arc<IntentProducer>,
    fault_start: Option<Instant>,
    figures: Figures,
    /// Gate instances `load` starts.
    gate_count: usize,
    /// Extra environment of the gates (proxied Redis and registry in the latency fallback).
    gate_env: Vec<(&'static str, String)>,
    /// Admin port of gate `i` (the instance scenarios read `/readyz`); none: admin off.
    admin_ports: Vec<u16>,
    /// Where the sink keeps content (`s3://bucket/prefix`); None: in PostgreSQL rows.
    content_store: Option<String>,
}

impl Run {
    async fn start(fault: &'static str, rep: usize, gates: usize, replicated: bool) -> Run {
        let knobs = knobs();
        let sfx = suffix();
        let topics = if replicated {
            create_replicated_topics(&sfx, PARTITIONS).await
        } else {
            create_topics(&sfx, PARTITIONS).await
        };
        let db = fresh_database(&sfx).await;
        let registry = registry();
        let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
            .await
            .expect("intent producer connects");
        let mut run = Run {
            fault,
            rep,
            knobs,
            // The prefixes deploy/acls.toml grants the gate and sink principals.
            group: format!("bucket-gate{sfx}"),
            sink_group: format!("bucket-sink{sfx}"),
            sink_db: db.clone(),
            db,
            sfx,
            topics,
            gates: Vec::new(),
            sink: None,
            more_sinks: Vec::new(),
            sink_count: 1,
            spawned: 0,
            producer: Arc::new(producer),
            fault_start: None,
            figures: Figures::default(),
            gate_count: 0,
            gate_env: Vec::new(),
            admin_ports: Vec::new(),
            content_store: None,
        };
        run.gate_count = gates;
        eprintln!(
            "[{fault} #{rep}] topics *{} ({PARTITIONS} partitions), {gates} gate(s), sink, {} intents at {}/s",
            run.sfx, knobs.intents, knobs.rate
        );
        run
    }

    fn spawn_gate(&mut self, i: usize) -> Proc {
        self.spawned += 1;
        let id = format!("g{i}");
        let mut env = vec![
            ("BUCKET_TOPIC_SUFFIX", self.sfx.clone()),
            ("BUCKET_REDIS_URL", redis_url()),
            (
                "RUST_LOG",
                std::env::var("BUCKET_FAULTS_GATE_LOG")
                    .unwrap_or_else(|_| "info,rdkafka=warn".into()),
            ),
            // Each instance keeps its local state stores across its restarts (kill -9 too).
            (
                "BUCKET_STATE_DIR",
                state_dir(&self.sfx, &id).display().to_string(),
            ),
        ];
        env.extend(self.gate_env.iter().cloned());
        if let Some(port) = self.admin_ports.get(i) {
            env.push(("BUCKET_ADMIN_ADDR", format!("127.0.0.1:{port}")));
        }
        spawn(
            &format!("faults-{}{}-{id}-{}", self.fault, self.sfx, self.spawned),
            &[
                "gate",
                "--instance-id",
                &id,
                "--group",
                &self.group,
                "--commit-interval-ms",
                "100",
            ],
            &env,
        )
    }

    fn spawn_sink(&mut self) -> Proc {
        self.spawn_sink_as("s0")
    }

    /// Starts a sink instance with id `id`.
    fn spawn_sink_as(&mut self, id: &str) -> Proc {
        self.spawned += 1;
        let mut env = vec![
            ("BUCKET_TOPIC_SUFFIX", self.sfx.clone()),
            ("BUCKET_PG_URL", self.sink_db.clone()),
            ("RUST_LOG", "info,rdkafka=warn".into()),
        ];
        if let Some(url) = &self.content_store {
            env.extend(content_store_env(url, "sink"));
        }
        spawn(
            &format!("faults-{}{}-sink-{}", self.fault, self.sfx, self.spawned),
            &[
                "sink",
                "--migrate",
                "--group",
                &self.sink_group,
                "--instance-id",
                id,
            ],
            &env,
        )
    }

    /// Starts the gates, the sink and the feeder, and waits until the gate group has committed
    /// decisions and a quarter of the workload is out: the fault then hits a loaded pipeline.
    async fn load(&mut self, seed: u64) -> Feeder {
        for i in 0..self.gate_count {
            let g = self.spawn_gate(i);
            self.gates.push(g);
        }
        let sink = self.spawn_sink();
        self.sink = Some(sink);
        for i in 1..self.sink_count {
            let more = self.spawn_sink_as(&format!("s{i}"));
            self.more_sinks.push(more);
        }
        let records = mixed_workload(&self.producer, self.knobs.intents, seed);
        let feeder = Feeder::start(self.producer.clone(), records, self.knobs.rate);
        let quarter = feeder.total / 4;
        let deadline = Instant::now() + self.knobs.timeout;
        loop {
            let decided: i64 = committed(&self.group, &self.topics.intents, PARTITIONS)
                .values()
                .sum();
            if decided > 0 && feeder.sent() >= quarter {
                break;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "the pipeline never got going ({decided} decided)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        feeder
    }

    /// Marks the fault's start and notes how many sent intents were still undecided.
    fn fault_begins(&mut self, feeder: &Feeder) {
        let decided: i64 = committed(&self.group, &self.topics.intents, PARTITIONS)
            .values()
            .sum();
        self.figures.backlog_at_fault = (feeder.sent() as i64 - decided).max(0);
        self.fault_start = Some(Instant::now());
        eprintln!(
            "[{} #{}] fault begins: {} sent, {} undecided",
            self.fault,
            self.rep,
            feeder.sent(),
            self.figures.backlog_at_fault
        );
    }

    /// The last lines of every gate's and the sink's log, without librdkafka's connection
    /// noise: what a failure report needs to say which process stood still and why.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for p in self
            .gates
            .iter()
            .chain(self.sink.as_ref())
            .chain(&self.more_sinks)
        {
            let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("logs")
                .join(format!("{}.log", p.name));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("Connect to") && !l.contains("Global error"))
                .collect();
            out.push_str(&format!("--- {} (last 15 lines)\n", p.name));
            for l in &kept[kept.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Panics (with the log's tail) if a gate or the sink exited on its own: not recovering is a
    /// failure of the scenario.
    fn check_alive(&mut self) {
        let procs = (self.gates.iter_mut())
            .chain(self.sink.as_mut())
            .chain(self.more_sinks.iter_mut());
        for p in procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("logs")
                    .join(format!("{}.log", p.name));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "{} exited on its own ({status}); last lines of {}:\n{}",
                    p.name,
                    log.display(),
                    tail.join("\n")
                );
            }
        }
    }

    /// From `since` (the end of the fault), waits until the gate group has decided everything
    /// sent by then and the sink has stored every version accepted by then.
    async fn catch_up(&mut self, since: Instant) {
        let ends = settled_end_offsets(&self.topics.intents).await;
        let deadline = since + self.knobs.timeout;
        loop {
            let c = committed(&self.group, &self.topics.intents, PARTITIONS);
            if ends
                .iter()
                .all(|(p, end)| *end == 0 || c.get(p).copied().unwrap_or(-1) >= *end)
            {
                break;
            }
            self.check_alive();
            if Instant::now() >= deadline {
                panic!(
                    "the gate did not catch up: committed {c:?}, end offsets {ends:?}\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.figures.gate_recovery = since.elapsed();
        let want = read_committed(&self.topics.accepted).len() as i64;
        while pg_count(&self.db, "SELECT count(*) FROM artifact_versions").await < want {
            self.check_alive();
            assert!(Instant::now() < deadline, "the sink did not catch up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.figures.sink_recovery = since.elapsed();
        eprintln!(
            "[{} #{}] caught up: gate {:.1}s, sink {:.1}s after the fault ended",
            self.fault,
            self.rep,
            self.figures.gate_recovery.as_secs_f64(),
            self.figures.sink_recovery.as_secs_f64()
        );
    }

    /// Waits for the whole workload to be decided and stored, checks every invariant, records
    /// the figures, then asserts them.
    async fn finish(mut self, feeder: Feeder) {
        let (produced, fed_in) = feeder.finish().await;
        self.figures.intents = produced.len();
        self.figures.achieved_rate = produced.len() as f64 / fed_in.as_secs_f64().max(1e-3);
        wait_all_decided(&self.group, &self.topics, PARTITIONS, self.knobs.timeout);
        let want = read_committed(&self.topics.accepted).len() as i64;
        let deadline = Instant::now() + self.knobs.timeout;
        while pg_count(&self.db, "SELECT count(*) FROM artifact_versions").await < want
            && Instant::now() < deadline
        {
            self.check_alive();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (mut lost, duplicates) = tally(&produced, &self.topics);
        if lost > 0 {
            // Not visible is not yet lost: an open transaction pins the last stable offset until
            // its producer's next session re-initialises it or the coordinator times it out. Show
            // where each partition stands, then measure how long until everything is visible.
            eprintln!(
                "[{} #{}] {lost} intents without a visible outcome or decision; output partitions:\n{}",
                self.fault,
                self.rep,
                visibility_report(&self.topics)
            );
            self.figures.hidden = lost;
            let looked = Instant::now();
            while lost > 0 && looked.elapsed() < VISIBILITY_WAIT {
                tokio::time::sleep(Duration::from_secs(2)).await;
                lost = tally(&produced, &self.topics).0;
            }
            self.figures.visibility_stall = looked.elapsed();
            if lost > 0 {
                eprintln!(
                    "[{} #{}] {lost} still not visible after {VISIBILITY_WAIT:?}:\n{}",
                    self.fault,
                    self.rep,
                    visibility_report(&self.topics)
                );
            }
            self.figures.note.push_str(&format!(
                "; {} not visible to read_committed readers at first, all visible {:.1}s later",
                self.figures.hidden,
                self.figures.visibility_stall.as_secs_f64()
            ));
        }
        self.figures.lost = lost;
        self.figures.duplicates = duplicates;
        let topics = self.topics.clone();
        self.figures.invariants_ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_invariants(&produced, &topics)
        }))
        .is_ok();
        let (ok, report) = self.bucket(&["audit", "verify", "--group", &self.group]);
        self.figures.audit_verify_ok = ok;
        if !ok {
            eprintln!("audit verify:\n{report}");
        }
        let (ok, report) = self.bucket(&["sink", "reconcile"]);
        self.figures.reconcile_ok = ok && report.contains(", 0 differences");
        if !self.figures.reconcile_ok {
            eprintln!("reconcile:\n{report}");
        }
        // Everything is stored: what the collector leaves must be exactly what rows name.
        self.figures.objects_ok = match self.content_store.is_some() {
            true => objects::no_orphans_after_collection(&mut self).await,
            false => true,
        };
        self.figures.usage_ok = usage_matches(&self.topics, Duration::from_secs(20)).await;
        // The stores are open while their gates run: stop the gates, then compare every
        // gate's stores and the changelog with the state recomputed from the audit log.
        for g in &mut self.gates {
            g.terminate(Duration::from_secs(20));
        }
        self.figures.state_ok = match self.state_matches() {
            Ok(stores) => {
                eprintln!(
                    "[{} #{}] {stores} local stores and the changelog equal the audit log's recomputation",
                    self.fault, self.rep
                );
                true
            }
            Err(e) => {
                eprintln!("[{} #{}] state differs: {e}", self.fault, self.rep);
                false
            }
        };
        self.record();
        let f = &self.figures;
        assert_eq!(f.lost, 0, "lost decisions: {f:?}");
        assert!(
            f.visibility_stall <= VISIBILITY_BOUND,
            "decisions hidden from read_committed readers for longer than {VISIBILITY_BOUND:?} after the gate group committed them: {f:?}"
        );
        assert_eq!(f.duplicates, 0, "duplicated decisions: {f:?}");
        assert!(f.invariants_ok, "exactly-once invariants broken: {f:?}");
        assert!(f.audit_verify_ok, "bucket audit verify failed: {f:?}");
        assert!(
            f.reconcile_ok,
            "bucket sink reconcile found differences: {f:?}"
        );
        assert!(
            f.objects_ok,
            "content objects differ from what the rows reference after gc-objects: {f:?}"
        );
        assert!(
            f.usage_ok,
            "Redis usage differs from the recomputation: {f:?}"
        );
        assert!(
            f.state_ok,
            "a local store or the state changelog differs from the audit log's recomputation: {f:?}"
        );
        for g in &mut self.gates {
            g.terminate(Duration::from_secs(20));
        }
        if let Some(s) = self.sink.as_mut() {
            s.terminate(Duration::from_secs(20));
        }
        for s in &mut self.more_sinks {
            s.terminate(Duration::from_secs(20));
        }
    }

    /// Store == changelog == recomputation: every store any gate instance of this run left
    /// (up to its checkpoint) and the changelog (at the log's end) equal the audit log's fold.
    /// A partition whose changelog was lost and that got no intent since has no changelog to
    /// compare (its next restore reads the audit log); at least one partition must have one.
    /// Returns how many stores were compared.
    fn state_matches(&self) -> Result<usize, String> {
        let mut stores = 0;
        for i in 0..GATE_IDS {
            let dir = state_dir(&self.sfx, &format!("g{i}"));
            if dir.exists() {
                stores += state::stores_match_the_log(
                    &dir,
                    &self.topics,
                    PARTITIONS,
                    state::Expect::UpToItsCheckpoint,
                )?;
            }
        }
        let partitions = state::changelog_matches_the_log(&self.topics, PARTITIONS, false)?;
        if partitions == 0 {
            return Err("no partition's changelog has a head".into());
        }
        Ok(stores)
    }

    /// Runs a `bucket` subcommand against this run's topics and database (and its content
    /// store, as the sink's identity, when it has one).
    fn bucket(&self, args: &[&str]) -> (bool, String) {
        self.bucket_as("sink", args)
    }

    /// [`Run::bucket`] with the content store's identity `role`.
    fn bucket_as(&self, role: &str, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucket"));
        if let Some(url) = &self.content_store {
            cmd.envs(content_store_env(url, role));
        }
        let out = cmd
            .args(args)
            .env("BUCKET_BROKERS", brokers())
            .envs(identity(role_of(args)))
            .env("BUCKET_TOPIC_SUFFIX", &self.sfx)
            .env("BUCKET_PG_URL", &self.db)
            .env(
                "BUCKET_POLICY",
                concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml"),
            )
            .output()
            .expect("running bucket");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Appends this repetition's figures to the results file (JSON lines).
    fn record(&self) {
        let f = &self.figures;
        let line = serde_json::json!({
            "fault": self.fault,
            "rep": self.rep,
            "intents": f.intents,
            "offered_rate": self.knobs.rate,
            "achieved_rate": f.achieved_rate.round(),
            "backlog_at_fault": f.backlog_at_fault,
            "lost": f.lost,
            "hidden": f.hidden,
            "visibility_stall_s": (f.visibility_stall.as_secs_f64() * 10.0).round() / 10.0,
            "duplicates": f.duplicates,
            "gate_recovery_s": (f.gate_recovery.as_secs_f64() * 10.0).round() / 10.0,
            "sink_recovery_s": (f.sink_recovery.as_secs_f64() * 10.0).round() / 10.0,
            "invariants_ok": f.invariants_ok,
            "audit_verify_ok": f.audit_verify_ok,
            "reconcile_ok": f.reconcile_ok,
            "usage_ok": f.usage_ok,
            "state_ok": f.state_ok,
            "objects_ok": f.objects_ok,
            "note": f.note,
        });
        let mut line = line;
        if let Some(o) = line.as_object_mut() {
            o.extend(f.extra.clone());
        }
        eprintln!("[{} #{}] {line}", self.fault, self.rep);
        let path = std::env::var("BUCKET_FAULTS_RESULTS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/faults/results.jsonl").into()
        });
        let path = std::path::PathBuf::from(path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("results file opens");
        writeln!(file, "{line}").expect("results line written");
    }
}

/// Per output partition: the last stable offset (where read_committed readers stop) against the
/// high watermark, and for partitions where they differ, the broker's view of the producers with
/// an open transaction there (`kafka-transactions.sh describe-producers`).
fn visibility_report(topics: &TopicNames) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut out = String::new();
    for topic in [&topics.accepted, &topics.rejected, &topics.audit] {
        let consumer: BaseConsumer = bhiv_bucket::kafka::security::client_config()
            .set("bootstrap.servers", brokers())
            .set("group.id", "bucket-faults-visibility")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("visibility consumer");
        for p in 0..PARTITIONS {
            let high = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(-1, |(_, h)| h);
            // With read_committed, "end" resolves to the last stable offset.
            let mut tpl = rdkafka::TopicPartitionList::new();
            let _ = tpl.add_partition_offset(topic, p, rdkafka::Offset::End);
            let stable = consumer
                .assign(&tpl)
                .ok()
                .and_then(|()| {
                    let _ = consumer.poll(Duration::from_secs(2));
                    consumer.position().ok()
                })
                .and_then(|pos| pos.find_partition(topic, p)?.offset().to_raw())
                .unwrap_or(-1);
            out.push_str(&format!(
                "  {topic}/{p}: last stable offset {stable}, high watermark {high}\n"
            ));
            if stable != high {
                let cli = format!("{}/deploy/local/kafka-cli.sh", env!("CARGO_MANIFEST_DIR"));
                let first = brokers().split(',').next().unwrap_or_default().to_string();
                let partition = p.to_string();
                if let Ok(o) = Command::new("bash")
                    .args([
                        cli.as_str(),
                        "transactions",
                        "--bootstrap-server",
                        first.as_str(),
                    ])
                    .args(["describe-producers", "--topic", topic.as_str()])
                    .args(["--partition", partition.as_str()])
                    .output()
                {
                    out.push_str(&String::from_utf8_lossy(&o.stdout));
                    out.push_str(&String::from_utf8_lossy(&o.stderr));
                }
            }
        }
    }
    out
}

/// End offsets of `topic`, retried while the cluster settles (leaders move after a restart).
async fn settled_end_offsets(topic: &str) -> HashMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = HashMap::new();
    for p in 0..PARTITIONS {
        loop {
            // A fresh client per attempt: no metadata cached from before the fault.
            let consumer: BaseConsumer = bhiv_bucket::kafka::security::client_config()
                .set("bootstrap.servers", brokers())
                .create()
                .expect("watermark consumer");
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((_, high)) => {
                    out.insert(p, high);
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("end offset of {topic}/{p}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("end offset of {topic}/{p}: {e}"),
            }
        }
    }
    out
}

/// Counts produced intents without a committed outcome or audit decision (lost), and extra
/// outcomes, extra decisions, repeated versions and outcomes for unknown sources (duplicates).
fn tally(produced: &Produced, topics: &TopicNames) -> (usize, usize) {
    let mut outcomes: HashMap<(i32, i64), usize> = HashMap::new();
    let mut decisions: HashMap<(i32, i64), usize> = HashMap::new();
    let mut versions: HashMap<(String, String, i64), usize> = HashMap::new();
    for r in read_committed(&topics.accepted) {
        if let Ok(a) = accepted::decode_framed(r.value.as_deref()) {
            *outcomes
                .entry((a.source_partition, a.source_offset))
                .or_default() += 1;
            *versions
                .entry((a.product_id, a.artifact_id, a.version))
                .or_default() += 1;
        }
    }
    for r in read_committed(&topics.rejected) {
        let num =
            |k: &str| -> Option<i64> { String::from_utf8_lossy(r.headers.get(k)?).parse().ok() };
        if let (Some(p), Some(o)) = (num(headers::ERROR_PARTITION), num(headers::ERROR_OFFSET)) {
            *outcomes.entry((p as i32, o)).or_default() += 1;
        }
    }
    for r in read_committed(&topics.audit) {
        if let Some(d) = common::decode_audit(r.value.as_deref())
            .ok()
            .and_then(|e| e.decision)
        {
            *decisions
                .entry((d.source_partition, d.source_offset))
                .or_default() += 1;
        }
    }
    let lost = produced
        .keys()
        .filter(|k| !outcomes.contains_key(k) || !decisions.contains_key(k))
        .count();
    fn extra<K>(m: &HashMap<K, usize>) -> usize {
        m.values().map(|n| n - 1).sum()
    }
    let phantom = outcomes
        .keys()
        .chain(decisions.keys())
        .filter(|k| !produced.contains_key(k))
        .count();
    (
        lost,
        extra(&outcomes) + extra(&decisions) + extra(&versions) + phantom,
    )
}

/// True once the per-product usage the gates published to Redis equals a recomputation from
/// the accepted artifacts (latest version of each artifact, deletes excluded).
async fn usage_matches(topics: &TopicNames, within: Duration) -> bool {
    let want = usage_from_accepted(&topics.accepted);
    // The gates' Redis as the gates reach it (TLS and the gate user on the production profile).
    let target = bhiv_bucket::gate::usage_share::RedisTarget {
        url: redis_url(),
        password: std::env::var("BUCKET_REDIS_PASSWORD")
            .ok()
            .map(|r| bhiv_bucket::kafka::security::resolve_secret(&r).expect("redis password")),
        ca_pem: std::env::var("BUCKET_REDIS_CA_FILE")
            .ok()
            .map(|f| std::fs::read(f).expect("redis CA file")),
    };
    let Ok(client) = target.client() else {
        return false;
    };
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut con) = client.get_connection() {
            let all = want.iter().all(|(product, (bytes, artifacts))| {
                let got: Result<(Option<u64>, Option<u64>), _> = redis::cmd("HMGET")
                    .arg(format!("bucket:{}:product:{product}", topics.intents))
                    .arg("bytes")
                    .arg("artifacts")
                    .query(&mut con);
                matches!(got, Ok(g) if g == (Some(*bytes), Some(*artifacts)))
            });
            if all {
                return true;
            }
        }
        if Instant::now() >= deadline {
            eprintln!("redis usage differs from the recomputation: want {want:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Stops a stack component for the outage, then starts it again; returns when it is healthy.
async fn outage(component: &str, down_for: Duration) {
    stack(component, &["stop"]);
    tokio::time::sleep(down_for).await;
    stack(component, &["start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops and starts stack services: run deploy/faults.sh"]
async fn fault_kill9_loops() {
    let _serial = serial().await;
    let k = knobs();
    for rep in 0..k.reps {
        let mut run = Run::start("kill9", rep, 2, false).await;
        let feeder = run.load(100 + rep as u64).await;
        run.fault_begins(&feeder);
        let mut seed = 0x5eed_u64 ^ ((rep as u64 + 1) << 8);
        for round in 0..k.kills {
            let wait = 300 + xorshift(&mut seed) % 1500;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let victim = (xorshift(&mut seed) % 2) as usize;
            run.gates[victim].kill9();
            if let Some(s) = run.sink.as_mut() {
                s.kill9();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            run.gates[victim] = run.spawn_gate(victim);
            run.sink = Some(run.spawn_sink());
            eprintln!(
                "[kill9 #{rep}] round {round}: gate g{victim} and the sink killed, restarted"
            );
        }
        run.figures.note = format!("{} rounds, kill -9 of one of 2 gates + the sink", k.kills);
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

/// The local-state faults of issue 15, in turn under load: `kill -9` at random points
/// (store writes and checkpoints included), a gate's stores deleted, a gate's stores replaced
/// by another gate's (stale or foreign for the partitions it gets, possibly torn: copied
/// while in use), the changelog topic deleted and created again (with one gate's stores lost,
/// so one restore folds the audit log and one copies its warm store), and a third instance
/// joining and leaving. `finish` then compares every store and the changelog with the audit
/// log's recomputation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "kills gates and deletes their state: run deploy/faults.sh"]
async fn fault_state_restart() {
    let _serial = serial().await;
    let k = knobs();
    // The changelog's loss first: the load that follows writes it again.
    const KINDS: [&str; 5] = [
        "changelog-deleted",
        "kill9",
        "store-deleted",
        "store-of-another-gate",
        "join-leave",
    ];
    for rep in 0..k.reps {
        let mut run = Run::start("state", rep, 2, false).await;
        let feeder = run.load(500 + rep as u64).await;
        run.fault_begins(&feeder);
        let mut seed = 0x57a7e_u64 ^ ((rep as u64 + 1) << 8);
        let rounds = k.kills.max(KINDS.len());
        for (round, kind) in KINDS.iter().cycle().take(rounds).enumerate() {
            let wait = 300 + xorshift(&mut seed) % 1200;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let victim = (xorshift(&mut seed) % 2) as usize;
            let other = 1 - victim;
            let dir = |i: usize| state_dir(&run.sfx, &format!("g{i}"));
            match *kind {
                "kill9" => run.gates[victim].kill9(),
                "store-deleted" => {
                    run.gates[victim].kill9();
                    let _ = std::fs::remove_dir_all(dir(victim));
                }
                "store-of-another-gate" => {
                    run.gates[victim].kill9();
                    let _ = std::fs::remove_dir_all(dir(victim));
                    // The stores only: the other gate's LOCK file (held while it runs) is
                    // not part of a store.
                    for entry in std::fs::read_dir(dir(other))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter(|e| e.path().is_dir())
                    {
                        state::copy_dir(&entry.path(), &dir(victim).join(entry.file_name()));
                    }
                }
                "changelog-deleted" => {
                    run.gates[victim].kill9();
                    run.gates[other].kill9();
                    state::recreate_topic(&run.topics.changelog, PARTITIONS).await;
                    let _ = std::fs::remove_dir_all(dir(victim));
                    run.gates[other] = run.spawn_gate(other);
                }
                _ => {
                    let joined = run.spawn_gate(2);
                    run.gates.push(joined);
                    tokio::time::sleep(Duration::from_millis(1500 + xorshift(&mut seed) % 1500))
                        .await;
                    if let Some(mut left) = run.gates.pop() {
                        left.terminate(Duration::from_secs(20));
                    }
                    eprintln!("[state #{rep}] round {round}: g2 joined and left");
                    continue;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            run.gates[victim] = run.spawn_gate(victim);
            eprintln!("[state #{rep}] round {round}: {kind} (gate g{victim})");
        }
        run.figures.note = format!("{rounds} rounds of {} on 2 gates", KINDS.join(", "));
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops and starts stack services: run deploy/faults.sh"]
async fn fault_broker_restart() {
    let _serial = serial().await;
    let k = knobs();
    for rep in 0..k.reps {
        let mut run = Run::start("broker-restart", rep, 1, false).await;
        let feeder = run.load(200 + rep as u64).await;
        run.fault_begins(&feeder);
        outage("kafka.sh", k.outage).await;
        run.figures.note = format!("kafka.sh stop, {}s down, start", k.outage.as_secs());
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

/// Node ids stopped by this process, started again on drop (the cluster stays whole).
struct ClusterGuard {
    old_brokers: Option<String>,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        for n in ["1", "2", "3"] {
            let _ = Command::new("bash")
                .arg(format!(
                    "{}/deploy/local/cluster3.sh",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .args(["start", n])
                .output();
        }
        // SAFETY: scenarios are serialised by SERIAL; no other thread reads the environment.
        unsafe {
            match &self.old_brokers {
                Some(b) => std::env::set_var("BUCKET_BROKERS", b),
                None => std::env::remove_var("BUCKET_BROKERS"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts a three-node Kafka cluster and kills its nodes: run deploy/faults.sh"]
async fn fault_cluster3_node_lost() {
    // The three-node cluster (deploy/local/cluster3.sh) has PLAINTEXT listeners on either
    // profile: this scenario's processes use them, not the stack's identities.
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("BUCKET_PROFILE", "plain") };
    let _serial = serial().await;
    let k = knobs();
    stack("cluster3.sh", &["up"]);
    let script = format!("{}/deploy/local/cluster3.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .args([script.as_str(), "bootstrap"])
        .output()
        .expect("cluster3.sh bootstrap");
    let bootstrap = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _guard = ClusterGuard {
        old_brokers: std::env::var("BUCKET_BROKERS").ok(),
    };
    // SAFETY: scenarios are serialised by SERIAL; no other thread reads the environment now.
    unsafe { std::env::set_var("BUCKET_BROKERS", &bootstrap) };
    for rep in 0..k.reps {
        let mut run = Run::start("cluster3-node-lost", rep, 2, true).await;
        let feeder = run.load(300 + rep as u64).await;
        run.fault_begins(&feeder);
        let victim = (rep % 3 + 1).to_string();
        stack("cluster3.sh", &["kill", &victim]);
        // The pipeline must go on with two of three nodes: recovery is measured from the kill,
        // with the node still down.
        let killed = Instant::now();
        run.catch_up(killed).await;
        let remaining = feeder.total.saturating_sub(feeder.sent());
        run.figures.note = format!(
            "node {victim} of 3 SIGKILLed (RF 3, min ISR 2); recovery measured from the kill, node still down; {remaining} intents still to send"
        );
        stack("cluster3.sh", &["start", &victim]);
        run.finish(feeder).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops and starts stack services: run deploy/faults.sh"]
async fn fault_redis_restart() {
    let _serial = serial().await;
    let k = knobs();
    for rep in 0..k.reps {
        let mut run = Run::start("redis-restart", rep, 2, false).await;
        let feeder = run.load(400 + rep as u64).await;
        run.fault_begins(&feeder);
        outage("redis.sh", k.outage).await;
        run.figures.note = format!("redis.sh stop, {}s down, start", k.outage.as_secs());
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops and starts stack services: run deploy/faults.sh"]
async fn fault_registry_restart() {
    let _serial = serial().await;
    let k = knobs();
    for rep in 0..k.reps {
        let mut run = Run::start("registry-restart", rep, 1, false).await;
        let feeder = run.load(500 + rep as u64).await;
        run.fault_begins(&feeder);
        stack("registry.sh", &["stop"]);
        // A gate that starts while the registry is down must wait for it, not reject.
        run.gates[0].kill9();
        run.gates[0] = run.spawn_gate(0);
        tokio::time::sleep(k.outage).await;
        stack("registry.sh", &["start"]);
        run.figures.note = format!(
            "registry.sh stop, gate kill -9 + restart during the outage, {}s down, start",
            k.outage.as_secs()
        );
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops and starts stack services: run deploy/faults.sh"]
async fn fault_postgres_restart() {
    let _serial = serial().await;
    let k = knobs();
    for rep in 0..k.reps {
        let mut run = Run::start("postgres-restart", rep, 1, false).await;
        let feeder = run.load(600 + rep as u64).await;
        run.fault_begins(&feeder);
        outage("postgres.sh", k.outage).await;
        // The registry keeps its schemas in PostgreSQL: make sure it is healthy again.
        stack("registry.sh", &["start"]);
        run.figures.note = format!("postgres.sh stop, {}s down, start", k.outage.as_secs());
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

/// Removes the loopback qdisc on drop, whatever happened.
struct QdiscGuard;

impl Drop for QdiscGuard {
    fn drop(&mut self) {
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", "lo", "root"])
            .output();
    }
}

/// Adds `delay` to every packet on loopback; Err(reason) when the machine does not allow it.
fn netem(delay: &str) -> Result<QdiscGuard, String> {
    let out = Command::new("tc")
        .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", delay])
        .output()
        .map_err(|e| format!("tc not runnable: {e}"))?;
    if out.status.success() {
        Ok(QdiscGuard)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A TCP proxy that delays every chunk by a switchable delay in each direction, pipelined (a
/// chunk read at t is written at t + delay): loopback latency where netem is not available.
struct DelayProxy {
    port: u16,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl DelayProxy {
    async fn start(target: String) -> DelayProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(Self::pipe(ri, wo, delay.clone()));
                tokio::spawn(Self::pipe(ro, wi, delay.clone()));
            }
        });
        DelayProxy { port, delay_ms }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Arc<std::sync::atomic::AtomicU64>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let writer = tokio::spawn(async move {
            while let Some((due, chunk)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        });
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let d = Duration::from_millis(delay.load(Ordering::SeqCst));
                    if tx
                        .send((tokio::time::Instant::now() + d, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        drop(tx);
        let _ = writer.await;
    }

    fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// `url` with its host:port replaced by this proxy's.
    fn rewrite(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("url has a scheme");
        let (userinfo, hostpath) = match rest.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
        format!("{scheme}://{userinfo}127.0.0.1:{}{path}", self.port)
    }
}

/// host:port of a URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    rest.split('/').next().unwrap_or(rest).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "adds latency to loopback: run deploy/faults.sh"]
async fn fault_netem_latency() {
    let _serial = serial().await;
    let k = knobs();
    let refused = match netem("20ms") {
        Ok(probe) => {
            drop(probe);
            None
        }
        Err(reason) => {
            eprintln!(
                "netem refused ({reason}): falling back to 20 ms userspace proxies in front of PostgreSQL, Redis and the registry"
            );
            Some(reason)
        }
    };
    for rep in 0..k.reps {
        let mut run = Run::start("latency-20ms", rep, 1, false).await;
        let mut proxies = Vec::new();
        if refused.is_some() {
            let pg = DelayProxy::start(host_port(&run.db)).await;
            let redis = DelayProxy::start(host_port(&redis_url())).await;
            let reg = DelayProxy::start(host_port(&registry_url())).await;
            run.sink_db = pg.rewrite(&run.db);
            run.gate_env = vec![
                ("BUCKET_REDIS_URL", redis.rewrite(&redis_url())),
                ("BUCKET_REGISTRY_URL", reg.rewrite(&registry_url())),
            ];
            proxies = vec![pg, redis, reg];
        }
        let feeder = run.load(700 + rep as u64).await;
        run.fault_begins(&feeder);
        let window = k.outage * 2;
        match &refused {
            None => {
                let _qdisc = netem("20ms").expect("netem worked a moment ago");
                tokio::time::sleep(window).await;
                run.figures.note = format!(
                    "tc netem delay 20ms on every loopback packet for {}s",
                    window.as_secs()
                );
            }
            Some(reason) => {
                for p in &proxies {
                    p.set_delay(Duration::from_millis(20));
                }
                tokio::time::sleep(window).await;
                for p in &proxies {
                    p.set_delay(Duration::ZERO);
                }
                run.figures.note = format!(
                    "netem refused by the kernel ({reason}); 20 ms each way on PostgreSQL, Redis and registry traffic through userspace proxies for {}s (Kafka not delayed)",
                    window.as_secs()
                );
            }
        }
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}
