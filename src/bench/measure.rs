//! The timed runs: one processor (gate or copier) in this process, process CPU time around it,
//! throughput from the group's committed offsets, and open-loop end-to-end latency seen by a
//! read_committed consumer of the audit topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::kafka::{self, Progress};
use super::passthrough::{self, PassthroughOptions};
use super::sign::Signer;
use super::workload::Workload;
use super::{BenchError, Kind};
use crate::core::Policy;
use crate::gate::{self, GateOptions, TopicNames};

/// What every run shares.
pub struct RunContext {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Registry URL (the gate's).
    pub registry_url: String,
    /// Policy of the gate runs.
    pub policy: Arc<Policy>,
    /// Runtime for the gate's registry calls.
    pub rt: Handle,
    /// Most intents per transaction.
    pub max_batch: usize,
    /// Topic profile for created topics.
    pub profile: String,
    /// Partitions of every bench topic.
    pub partitions: i32,
    /// Id of this bench invocation (names topics and groups).
    pub bench_id: String,
    /// Every topic created, deleted at the end.
    pub created: Vec<String>,
    /// Counter naming runs.
    pub runs: u32,
    /// Reader of the gate's audit links (every approved version, as registered).
    pub audit_reader: crate::wire::audit::AuditReader,
    /// Local state stores of the gate runs (None: in memory).
    pub state_dir: Option<std::path::PathBuf>,
}

/// Process CPU time (user + system, all threads, live and exited) in seconds.
pub fn cpu_seconds() -> Result<f64, BenchError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| BenchError::Incomplete("/proc/self/stat has no ')'".into()))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, BenchError> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| BenchError::Incomplete(format!("/proc/self/stat field {i}")))
    };
    // Fields 14 (utime) and 15 (stime) of proc(5), counted from `state` = 3; USER_HZ = 100.
    Ok((tick(11)? + tick(12)?) / 100.0)
}

fn epoch_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A gate or copier running on its own thread.
struct Running {
    token: CancellationToken,
    thread: JoinHandle<Result<(), BenchError>>,
}

impl Running {
    fn stop(self) -> Result<(), BenchError> {
        self.token.cancel();
        self.thread
            .join()
            .map_err(|_| BenchError::Incomplete("processor thread panicked".into()))?
    }
}

impl RunContext {
    /// Fresh topic names for one run; `input` reuses an existing intents topic.
    fn names(&mut self, input: Option<&str>) -> TopicNames {
        self.runs += 1;
        let mut t = TopicNames::with_suffix(&format!(".bench{}r{}", self.bench_id, self.runs));
        if let Some(i) = input {
            t.intents = i.to_string();
        }
        t
    }

    /// Creates topics (outputs, and the input when `input_too`) and remembers them.
    fn create(&mut self, t: &TopicNames, input_too: bool) -> Result<(), BenchError> {
        self.rt.block_on(kafka::create_topics(
            &self.brokers,
            &self.profile,
            t,
            self.partitions,
            input_too,
        ))?;
        if input_too {
            self.created.push(t.intents.clone());
        }
        self.created.extend([
            t.accepted.clone(),
            t.rejected.clone(),
            t.audit.clone(),
            t.changelog.clone(),
        ]);
        Ok(())
    }

    fn start(
        &self,
        kind: Kind,
        topics: TopicNames,
        group: String,
        commit_interval: Duration,
    ) -> Result<Running, BenchError> {
        let token = CancellationToken::new();
        let t = token.clone();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let thread = match kind {
            Kind::Gate => {
                let opts = GateOptions {
                    brokers: self.brokers.clone(),
                    registry_url: self.registry_url.clone(),
                    group_id: group,
                    gate_id: id.clone(),
                    static_membership: false,
                    session_timeout: crate::kafka::membership::DEFAULT_SESSION_TIMEOUT,
                    standby_replicas: 0,
                    topics,
                    policy: self.policy.clone(),
                    policy_text: String::new(),
                    policy_path: None,
                    reload: Default::default(),
                    audit_key: None,
                    deployment: "bhiv-bucket".into(),
                    checkpoint_every: 1000,
                    checkpoint_interval: Duration::from_secs(10),
                    redis: None,
                    commit_interval,
                    max_batch: self.max_batch,
                    restore_timeout: Duration::from_secs(60),
                    approvals: Default::default(),
                    audit_version: crate::wire::audit::LATEST_VERSION,
                    store: self
                        .state_dir
                        .as_ref()
                        .map(|dir| crate::gate::persist::StoreOptions {
                            state_dir: dir.join(&id),
                            cache_bytes: 32 << 20,
                            cluster: String::new(),
                            intents_topic: String::new(),
                        }),
                    telemetry: Default::default(),
                };
                let rt = self.rt.clone();
                std::thread::Builder::new()
                    .name("bench-gate".into())
                    .spawn(move || gate::run(opts, t, rt).map_err(BenchError::from))?
            }
            Kind::Passthrough => {
                let opts = PassthroughOptions {
                    brokers: self.brokers.clone(),
                    group_id: group,
                    instance_id: id,
                    topics,
                    commit_interval,
                    max_batch: self.max_batch,
                };
                std::thread::Builder::new()
                    .name("bench-copier".into())
                    .spawn(move || passthrough::run(opts, t).map(|_| ()))?
            }
        };
        Ok(Running { token, thread })
    }
}

/// One throughput run over a pre-filled input.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ThroughputRun {
    /// gate or passthrough.
    pub kind: Kind,
    /// Content bytes per intent.
    pub payload: usize,
    /// Repetition number.
    pub rep: u32,
    /// Intents processed.
    pub intents: u64,
    /// Wall time from start (incl. group join and restore) to the last commit, s.
    pub total_s: f64,
    /// Seconds from the first observed commit to the last.
    pub steady_s: f64,
    /// Intents/s between the first and the last observed commit.
    pub intents_per_s: f64,
    /// Intents/s including start-up.
    pub intents_per_s_total: f64,
    /// Input MB/s (10^6 bytes of record values) at the steady rate.
    pub mb_per_s: f64,
    /// Process CPU time per intent, µs (start-up included).
    pub cpu_us_per_intent: f64,
    /// Average cores busy in this process during the run.
    pub cpu_cores: f64,
}

/// Inputs of a throughput run.
pub struct ThroughputInput<'a> {
    /// Pre-filled intents topic.
    pub topic: &'a str,
    /// End offsets of the input.
    pub ends: &'a HashMap<i32, i64>,
    /// Total value bytes of the input.
    pub bytes: u64,
    /// Content bytes per intent.
    pub payload: usize,
    /// Repetition number.
    pub rep: u32,
    /// Commit interval of the processor.
    pub commit_interval: Duration,
}

/// Runs `kind` over the whole input once with a fresh group and fresh output topics.
pub fn throughput(
    ctx: &mut RunContext,
    kind: Kind,
    input: &ThroughputInput<'_>,
    pb: &ProgressBar,
) -> Result<ThroughputRun, BenchError> {
    let topics = ctx.names(Some(input.topic));
    ctx.create(&topics, false)?;
    let group = format!(
        "bucket-bench-{}-{}-{}",
        kind.as_str(),
        ctx.bench_id,
        ctx.runs
    );
    let count: u64 = input.ends.values().map(|e| *e as u64).sum();
    let parts: Vec<i32> = input.ends.keys().copied().collect();
    let progress = Progress::new(&ctx.brokers, &group, input.topic, &parts)?;
    let zero = HashMap::new();
    let timeout = Duration::from_secs(120 + count / 500);
    let cpu0 = cpu_seconds()?;
    let t0 = Instant::now();
    let running = ctx.start(kind, topics, group, input.commit_interval)?;
    let mut first: Option<(Instant, u64)> = None;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let done = progress.done(&zero);
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        pb.set_message(format!(
            "{} {} B rep {}: {done}/{count}",
            kind.as_str(),
            input.payload,
            input.rep
        ));
        if done >= count {
            break;
        }
        if running.thread.is_finished() || t0.elapsed() > timeout {
            let why = format!(
                "{} stopped or timed out after {:?} with {done}/{count} decided",
                kind.as_str(),
                t0.elapsed()
            );
            running.stop()?;
            return Err(BenchError::Incomplete(why));
        }
    }
    let total = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu0;
    running.stop()?;
    // Steady rate: from the first observed commit to the last, so that group join and task
    // restore (paid once per instance, not per intent) do not dilute it.
    let (steady_s, steady_n) = match first {
        Some((at, n)) if n < count => (
            (total - at.duration_since(t0).as_secs_f64()).max(1e-6),
            count - n,
        ),
        _ => (total, count),
    };
    let rate = steady_n as f64 / steady_s;
    let per_intent_bytes = input.bytes as f64 / count.max(1) as f64;
    Ok(ThroughputRun {
        kind,
        payload: input.payload,
        rep: input.rep,
        intents: count,
        total_s: total,
        steady_s,
        intents_per_s: rate,
        intents_per_s_total: count as f64 / total,
        mb_per_s: rate * per_intent_bytes / 1e6,
        cpu_us_per_intent: cpu * 1e6 / count.max(1) as f64,
        cpu_cores: cpu / total,
    })
}

/// One open-loop latency run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LatencyRun {
    /// gate or passthrough.
    pub kind: Kind,
    /// Commit interval, ms.
    pub commit_interval_ms: u64,
    /// Offered rate, intents/s.
    pub offered_per_s: f64,
    /// Rate the producer achieved, intents/s.
    pub achieved_per_s: f64,
    /// Intents produced (warm-up included).
    pub produced: u64,
    /// Intents measured (after the warm-up).
    pub measured: u64,
    /// Produced intents never seen decided before the drain timeout.
    pub missing: u64,
    /// Median end-to-end latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
}

/// Inputs of a latency run.
pub struct LatencyInput<'a> {
    /// Intents to generate.
    pub workload: Workload,
    /// Signer of the intents.
    pub signer: &'a dyn Signer,
    /// Registry id of the intent schema.
    pub schema_id: u32,
    /// Offered rate, intents/s.
    pub rate: f64,
    /// Warm-up (not measured).
    pub warmup: Duration,
    /// Measured period after the warm-up.
    pub duration: Duration,
    /// Commit interval of the processor.
    pub commit_interval: Duration,
}

/// Produces at a fixed rate while `kind` runs; latency = audit record visible to a
/// read_committed consumer minus the input record's timestamp, which is the *intended* send time
/// (open loop: a stalled producer or gate still counts against the latency).
pub fn latency(
    ctx: &mut RunContext,
    kind: Kind,
    input: &LatencyInput<'_>,
    pb: &ProgressBar,
) -> Result<LatencyRun, BenchError> {
    let topics = ctx.names(None);
    ctx.create(&topics, true)?;
    let group = format!(
        "bucket-bench-{}-{}-{}",
        kind.as_str(),
        ctx.bench_id,
        ctx.runs
    );
    let running = ctx.start(kind, topics.clone(), group, input.commit_interval)?;
    let t0 = Instant::now();
    let base_us = epoch_us();
    let observer = Observer::start(
        &ctx.brokers,
        &topics.audit,
        ctx.partitions,
        kind,
        ctx.audit_reader.clone(),
        t0,
    )?;
    let producer = kafka::producer(&ctx.brokers, true)?;
    let total = ((input.warmup + input.duration).as_secs_f64() * input.rate) as u64;
    let run_id = format!("{}r{}", ctx.bench_id, ctx.runs);
    let label = format!(
        "latency {} {} ms commit",
        kind.as_str(),
        input.commit_interval.as_millis()
    );
    for n in 0..total {
        let intended = Duration::from_secs_f64(n as f64 / input.rate);
        let now = t0.elapsed();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        let ts_ms = (base_us + intended.as_micros() as i64) / 1000;
        let r = input
            .workload
            .record(&run_id, n, ts_ms, input.schema_id, input.signer)?;
        kafka::send(&producer, &topics.intents, &r, Some(ts_ms))?;
        if n % 500 == 0 {
            pb.set_message(format!("{label}: {n}/{total} offered"));
        }
    }
    let produce_s = t0.elapsed().as_secs_f64();
    let delivered = kafka::flush(&producer)?;
    let drain = Duration::from_secs(30) + input.commit_interval * 3;
    kafka::wait_for(drain, Duration::from_millis(50), || {
        observer.count() >= delivered
    });
    let seen = observer.stop()?;
    running.stop()?;
    let landed = producer
        .context()
        .landed
        .as_ref()
        .and_then(|l| l.lock().ok().map(|l| l.clone()))
        .unwrap_or_default();
    let warm_end_ms = (base_us + input.warmup.as_micros() as i64) / 1000;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| BenchError::Incomplete(e.to_string()))?;
    let mut matched = 0u64;
    for (src, visible) in &seen {
        let Some(ts_ms) = landed.get(src) else {
            continue;
        };
        matched += 1;
        if *ts_ms < warm_end_ms {
            continue;
        }
        let visible_us = base_us + visible.as_micros() as i64;
        let lat = (visible_us - ts_ms * 1000).max(1) as u64;
        hist.saturating_record(lat);
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(LatencyRun {
        kind,
        commit_interval_ms: input.commit_interval.as_millis() as u64,
        offered_per_s: input.rate,
        achieved_per_s: total as f64 / produce_s.max(1e-6),
        produced: delivered,
        measured: hist.len(),
        missing: delivered.saturating_sub(matched),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        mean_ms: hist.mean() / 1000.0,
    })
}

/// When each decided (source partition, offset) became visible, since the run's start.
type Seen = HashMap<(i32, i64), Duration>;

/// A read_committed consumer of the audit topic noting when each decision became visible.
struct Observer {
    token: CancellationToken,
    count: Arc<std::sync::atomic::AtomicU64>,
    thread: JoinHandle<Result<Seen, BenchError>>,
}

impl Observer {
    fn start(
        brokers: &str,
        audit_topic: &str,
        partitions: i32,
        kind: Kind,
        reader: crate::wire::audit::AuditReader,
        t0: Instant,
    ) -> Result<Observer, BenchError> {
        let consumer: BaseConsumer = crate::kafka::security::client_config()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bucket-bench-observer")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "5")
            .set("max.partition.fetch.bytes", "20971520")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(audit_topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let token = CancellationToken::new();
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (t, c) = (token.clone(), count.clone());
        let thread = std::thread::Builder::new()
            .name("bench-observer".into())
            .spawn(move || {
                let mut seen = HashMap::new();
                while !t.is_cancelled() {
                    let Some(m) = consumer.poll(Duration::from_millis(20)) else {
                        continue;
                    };
                    let m = m?;
                    let at = t0.elapsed();
                    let src = match kind {
                        Kind::Passthrough => m.payload().and_then(passthrough::parse_audit_value),
                        Kind::Gate => reader
                            .decode_framed(m.payload())
                            .ok()
                            .and_then(|e| e.decision)
                            .map(|d| (d.source_partition, d.source_offset)),
                    };
                    if let Some(src) = src {
                        seen.entry(src).or_insert(at);
                        c.store(seen.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Ok(seen)
            })?;
        Ok(Observer {
            token,
            count,
            thread,
        })
    }

    fn count(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn stop(self) -> Result<Seen, BenchError> {
        self.token.cancel();
        self.thread
            .join()
            .map_err(|_| BenchError::Incomplete("observer thread panicked".into()))?
    }
}
