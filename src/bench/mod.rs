//! `bucket bench`: the gate measured side by side with a transactional passthrough copier
//! (same topology, same client settings, no governance) on the same input, in the same run.
//!
//! - [`workload`]: generated policy and intents (size, products, invalid share);
//! - [`sign`]: producer-side signatures (only `none` runs until the gate verifies);
//! - [`kafka`]: throwaway topics, pre-fill and open-loop producers, progress from offsets;
//! - [`passthrough`]: the baseline copier;
//! - [`measure`]: throughput and latency runs, process CPU time;
//! - [`report`]: medians, ratio, table, JSON, SVG charts;
//! - [`state`], [`history`]: restore time and memory against history length;
//! - [`tlog`]: proofs at 10 M links, and the tiles service's lag behind links at full speed.

pub mod content;
pub mod history;
pub mod kafka;
pub mod measure;
pub mod passthrough;
pub mod report;
pub mod sign;
pub mod state;
pub mod tlog;
pub mod workload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::runtime::Handle;

use crate::core::Policy;
use crate::kafka::registry::Registry;
use crate::produce::now_ms;
use crate::wire::schemas::APPROVED;
use measure::{LatencyInput, RunContext, ThroughputInput};
use report::{Machine, Report};
use sign::SigAlg;
use workload::Workload;

/// Which processor a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The transactional passthrough copier.
    Passthrough,
    /// The governance gate.
    Gate,
}

impl Kind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Passthrough => "passthrough",
            Kind::Gate => "gate",
        }
    }
}

/// Why the bench failed (slowness is never a failure).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Options make no sense or ask for what is not implemented.
    #[error("bench options: {0}")]
    Options(String),
    /// Kafka client failure.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] crate::kafka::registry::RegistryError),
    /// Topic creation failed.
    #[error(transparent)]
    Topics(#[from] crate::ops::topics::TopicsError),
    /// Encoding intents failed.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// The generated policy was refused.
    #[error(transparent)]
    Policy(#[from] crate::core::policy::PolicyError),
    /// The gate stopped with an error.
    #[error("gate: {0}")]
    Gate(#[from] crate::gate::GateError),
    /// A run did not finish or lost records.
    #[error("incomplete run: {0}")]
    Incomplete(String),
    /// Local file trouble.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// JSON output failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing a chart failed.
    #[error("chart: {0}")]
    Chart(String),
}

/// Everything `bucket bench` can be told.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Confluent-compatible registry URL.
    pub registry_url: String,
    /// Topic profile of `topics/topics.toml` for the created topics (`local` = one broker).
    pub topics_profile: String,
    /// Partitions of every bench topic.
    pub partitions: i32,
    /// Products (keys) in the workload, at most 100.
    pub products: usize,
    /// Content sizes to measure, bytes.
    pub payloads: Vec<usize>,
    /// Intents per throughput input.
    pub count: u64,
    /// Cap on input value bytes per payload size (large payloads get fewer intents).
    pub max_input_bytes: u64,
    /// Share of invalid intents.
    pub invalid: f64,
    /// The bench policy's offenders `window_ms` (see [`workload::DEFAULT_OFFENDER_WINDOW_MS`]).
    pub offender_window_ms: u64,
    /// Signature algorithm.
    pub sig: SigAlg,
    /// Repetitions of each throughput pair (order alternates).
    pub reps: u32,
    /// Commit interval of throughput runs.
    pub commit_interval: Duration,
    /// Commit intervals of latency runs.
    pub latency_intervals: Vec<Duration>,
    /// Offered rate of latency runs, intents/s.
    pub rate: f64,
    /// Payload of latency runs.
    pub latency_payload: usize,
    /// Warm-up of each latency run.
    pub warmup: Duration,
    /// Measured period of each latency run.
    pub latency_duration: Duration,
    /// Most intents per transaction.
    pub max_batch: usize,
    /// Skip throughput runs.
    pub no_throughput: bool,
    /// Skip latency runs.
    pub no_latency: bool,
    /// Keep the created topics.
    pub keep_topics: bool,
    /// Run the gate with local state stores under this directory (else in memory).
    pub state_dir: Option<PathBuf>,
    /// JSON output path (charts are written beside it).
    pub out: PathBuf,
}

impl BenchOptions {
    /// Defaults for a full run against the local stack.
    pub fn full() -> BenchOptions {
        BenchOptions {
            brokers: "127.0.0.1:9092".into(),
            registry_url: "http://127.0.0.1:8081/apis/ccompat/v7".into(),
            topics_profile: "local".into(),
            partitions: 6,
            products: 20,
            payloads: vec![100, 1024, 65536],
            count: 100_000,
            max_input_bytes: 512 << 20,
            invalid: 0.1,
            offender_window_ms: workload::DEFAULT_OFFENDER_WINDOW_MS,
            sig: SigAlg::None,
            reps: 3,
            commit_interval: Duration::from_millis(100),
            latency_intervals: [10, 100, 1000].map(Duration::from_millis).to_vec(),
            rate: 2000.0,
            latency_payload: 1024,
            warmup: Duration::from_secs(5),
            latency_duration: Duration::from_secs(20),
            max_batch: 5000,
            no_throughput: false,
            no_latency: false,
            keep_topics: false,
            state_dir: None,
            out: PathBuf::from("target/bench/results.json"),
        }
    }

    /// Shrinks a run to well under a minute: proves the bench works, measures little.
    pub fn quick(mut self) -> BenchOptions {
        self.payloads = vec![1024];
        self.count = 2000;
        self.reps = 1;
        self.latency_intervals = vec![Duration::from_millis(100)];
        self.rate = 500.0;
        self.warmup = Duration::from_secs(1);
        self.latency_duration = Duration::from_secs(3);
        self
    }

    fn validate(&self) -> Result<(), BenchError> {
        self.sig.check()?;
        let bad = |m: &str| Err(BenchError::Options(m.to_string()));
        if self.products == 0 || self.products > crate::core::policy::MAX_PRODUCTS {
            return bad("--products must be in 1..=100");
        }
        if !(0.0..=1.0).contains(&self.invalid) {
            return bad("--invalid must be in 0..=1");
        }
        if self.partitions < 1 || self.count == 0 || self.reps == 0 || self.rate <= 0.0 {
            return bad("--partitions, --count, --reps and --rate must be positive");
        }
        if self
            .payloads
            .iter()
            .any(|p| *p as u64 > crate::core::policy::MAX_CONTENT_BYTES)
        {
            return bad("payloads must be at most 16 MiB");
        }
        Ok(())
    }
}

/// Runs the whole bench: pre-fill, alternate passthrough and gate, latency runs, report.
/// Blocking; `rt` serves the registry and admin calls and the in-process gate.
pub fn run(opts: &BenchOptions, rt: Handle) -> Result<Report, BenchError> {
    opts.validate()?;
    let policy_text = workload::policy_text_with(
        opts.products,
        opts.sig != SigAlg::None,
        opts.offender_window_ms,
    );
    let policy = Arc::new(Policy::parse_with(&policy_text, &workload::BenchSecrets)?);
    let registry = Registry::new(&opts.registry_url)?;
    let schema_id = rt.block_on(registry.register(&APPROVED.intent))?;
    let (_, audit_reader) = rt.block_on(registry.output_ids(crate::wire::audit::LATEST_VERSION))?;
    let signer = opts.sig.signer();
    let mut ctx = RunContext {
        brokers: opts.brokers.clone(),
        registry_url: opts.registry_url.clone(),
        policy,
        rt: rt.clone(),
        max_batch: opts.max_batch,
        profile: opts.topics_profile.clone(),
        partitions: opts.partitions,
        bench_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        created: Vec::new(),
        runs: 0,
        audit_reader,
        state_dir: opts.state_dir.clone(),
    };
    let steps = if opts.no_throughput {
        0
    } else {
        opts.payloads.len() as u64 * (1 + 2 * u64::from(opts.reps))
    } + if opts.no_latency {
        0
    } else {
        2 * opts.latency_intervals.len() as u64
    };
    let pb = ProgressBar::new(steps);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    let result = measure_all(opts, &mut ctx, schema_id, signer.as_ref(), &pb);
    pb.finish_and_clear();
    if !opts.keep_topics
        && let Err(e) = rt.block_on(kafka::delete_topics(&opts.brokers, &ctx.created))
    {
        tracing::warn!(error = %e, "could not delete the bench topics");
    }
    let (throughput, latency) = result?;
    let notes = vec![
        "processor, bench producer/observer and progress polling share this process; the \
         broker, registry and other tenants of the machine do not count in CPU µs/intent"
            .into(),
        format!(
            "signatures: {} (the gate verifies every signature; the copier does not)",
            opts.sig.as_str()
        ),
    ];
    Ok(Report {
        machine: Machine::detect(),
        settings: serde_json::to_value(opts)?,
        summary: report::summarize(&throughput),
        throughput,
        latency,
        notes,
    })
}

type Measured = (Vec<measure::ThroughputRun>, Vec<measure::LatencyRun>);

fn measure_all(
    opts: &BenchOptions,
    ctx: &mut RunContext,
    schema_id: u32,
    signer: &dyn sign::Signer,
    pb: &ProgressBar,
) -> Result<Measured, BenchError> {
    let mut throughput = Vec::new();
    if !opts.no_throughput {
        for &payload in &opts.payloads {
            let w = Workload {
                products: opts.products,
                payload,
                invalid: opts.invalid,
            };
            let count = opts
                .count
                .min((opts.max_input_bytes / payload.max(1) as u64).max(100));
            pb.set_message(format!(
                "pre-filling {count} × {}",
                report::size_label(payload)
            ));
            let (topic, ends, bytes) = prefill(ctx, &w, count, schema_id, signer)?;
            pb.inc(1);
            for rep in 0..opts.reps {
                let order = if rep % 2 == 0 {
                    [Kind::Passthrough, Kind::Gate]
                } else {
                    [Kind::Gate, Kind::Passthrough]
                };
                for kind in order {
                    let input = ThroughputInput {
                        topic: &topic,
                        ends: &ends,
                        bytes,
                        payload,
                        rep,
                        commit_interval: opts.commit_interval,
                    };
                    throughput.push(measure::throughput(ctx, kind, &input, pb)?);
                    pb.inc(1);
                }
            }
        }
    }
    let mut latency = Vec::new();
    if !opts.no_latency {
        let w = Workload {
            products: opts.products,
            payload: opts.latency_payload,
            invalid: opts.invalid,
        };
        for (i, &ci) in opts.latency_intervals.iter().enumerate() {
            let order = if i % 2 == 0 {
                [Kind::Passthrough, Kind::Gate]
            } else {
                [Kind::Gate, Kind::Passthrough]
            };
            for kind in order {
                let input = LatencyInput {
                    workload: w,
                    signer,
                    schema_id,
                    rate: opts.rate,
                    warmup: opts.warmup,
                    duration: opts.latency_duration,
                    commit_interval: ci,
                };
                let r = measure::latency(ctx, kind, &input, pb)?;
                if r.missing > 0 {
                    return Err(BenchError::Incomplete(format!(
                        "{} latency run at {} ms: {} intents produced but never seen decided",
                        kind.as_str(),
                        r.commit_interval_ms,
                        r.missing
                    )));
                }
                latency.push(r);
                pb.inc(1);
            }
        }
    }
    Ok((throughput, latency))
}

/// Creates an input topic and fills it with `count` intents; returns it, its end offsets and
/// its total value bytes.
fn prefill(
    ctx: &mut RunContext,
    w: &Workload,
    count: u64,
    schema_id: u32,
    signer: &dyn sign::Signer,
) -> Result<(String, HashMap<i32, i64>, u64), BenchError> {
    let names =
        crate::gate::TopicNames::with_suffix(&format!(".bench{}in{}", ctx.bench_id, w.payload));
    ctx.rt.block_on(kafka::create_topics(
        &ctx.brokers,
        &ctx.profile,
        &names,
        ctx.partitions,
        true,
    ))?;
    ctx.created.extend([
        names.intents.clone(),
        names.accepted.clone(),
        names.rejected.clone(),
        names.audit.clone(),
    ]);
    let producer = kafka::producer(&ctx.brokers, false)?;
    let run_id = format!("{}in{}", ctx.bench_id, w.payload);
    let mut bytes = 0u64;
    for n in 0..count {
        let r = w.record(&run_id, n, now_ms(), schema_id, signer)?;
        bytes += r.value.len() as u64;
        kafka::send(&producer, &names.intents, &r, None)?;
    }
    let delivered = kafka::flush(&producer)?;
    let ends = kafka::end_offsets(&ctx.brokers, &names.intents)?;
    let total: i64 = ends.values().sum();
    if delivered != count || total != count as i64 {
        return Err(BenchError::Incomplete(format!(
            "pre-fill: {count} intents sent, {delivered} acknowledged, {total} in the topic"
        )));
    }
    Ok((names.intents, ends, bytes))
}
