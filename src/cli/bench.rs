//! `bucket bench`: the gate beside a transactional passthrough copier, same input, same run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use bhiv_bucket::bench::BenchOptions;
use bhiv_bucket::bench::sign::SigAlg;
use clap::Args;

use super::args::{KafkaArgs, RegistryArgs};

/// `bucket bench`: workload, runs and output of the benchmark.
#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Small sizes, one repetition, one latency run: finishes well under a minute (CI).
    #[arg(long)]
    quick: bool,
    /// Intents per throughput input.
    #[arg(long)]
    count: Option<u64>,
    /// Content sizes per intent, bytes (comma separated; default 100,1024,65536).
    #[arg(long, value_delimiter = ',')]
    payloads: Option<Vec<usize>>,
    /// Products (keys) in the workload, 1..=100.
    #[arg(long)]
    products: Option<usize>,
    /// Share of invalid intents (rejected by a rule), 0..=1.
    #[arg(long)]
    invalid: Option<f64>,
    /// Signature algorithm of the intents: none, hmac or ed25519 (only none until the gate
    /// verifies signatures).
    #[arg(long, default_value = "none")]
    sig: String,
    /// Partitions of every bench topic.
    #[arg(long)]
    partitions: Option<i32>,
    /// Repetitions of each passthrough/gate pair (the order alternates).
    #[arg(long)]
    reps: Option<u32>,
    /// Commit interval of throughput runs, ms.
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// Commit intervals of latency runs, ms (comma separated; default 10,100,1000).
    #[arg(long, value_delimiter = ',')]
    latency_intervals_ms: Option<Vec<u64>>,
    /// Offered rate of latency runs, intents/s (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds per latency run (after the warm-up).
    #[arg(long)]
    latency_secs: Option<u64>,
    /// Warm-up seconds per latency run.
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// Topic profile of topics/topics.toml for the throwaway topics (`local` = one broker).
    #[arg(long, default_value = "local")]
    topics_profile: String,
    /// Skip the throughput runs.
    #[arg(long)]
    no_throughput: bool,
    /// Skip the latency runs.
    #[arg(long)]
    no_latency: bool,
    /// Keep the throwaway topics.
    #[arg(long)]
    keep_topics: bool,
    /// JSON output; throughput.svg and latency.svg are written beside it.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Measure nothing: redraw the table and charts of an earlier results.json (into --out).
    #[arg(long)]
    replot: Option<PathBuf>,
}

/// Runs the benchmark (or replots an earlier one) and writes its table and charts.
pub(crate) fn run(a: BenchArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let replot = a.replot.clone();
    let opts = bench_options(a)?;
    let report = match replot {
        Some(from) => bhiv_bucket::bench::report::Report::read(&from)?,
        None => bhiv_bucket::bench::run(&opts, rt.handle().clone())?,
    };
    print!("{}", report.table());
    for p in report.write(&opts.out)? {
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

impl BenchArgs {
    /// Where the bench logs: beside its results, so the terminal keeps the progress bar.
    pub(crate) fn log_file(&self) -> PathBuf {
        self.out.with_file_name("bench.log")
    }
}

/// The bench options: the full (or --quick) defaults, overridden by every flag given.
fn bench_options(a: BenchArgs) -> Result<BenchOptions> {
    let mut o = BenchOptions::full();
    if a.quick {
        o = o.quick();
    }
    o.brokers = a.kafka.brokers;
    o.registry_url = a.registry.registry_url;
    o.topics_profile = a.topics_profile;
    o.sig = a.sig.parse::<SigAlg>()?;
    o.count = a.count.unwrap_or(o.count);
    o.payloads = a.payloads.unwrap_or(o.payloads);
    o.products = a.products.unwrap_or(o.products);
    o.invalid = a.invalid.unwrap_or(o.invalid);
    o.partitions = a.partitions.unwrap_or(o.partitions);
    o.reps = a.reps.unwrap_or(o.reps);
    if let Some(ms) = a.commit_interval_ms {
        o.commit_interval = Duration::from_millis(ms);
    }
    if let Some(v) = a.latency_intervals_ms {
        o.latency_intervals = v.into_iter().map(Duration::from_millis).collect();
    }
    o.rate = a.rate.unwrap_or(o.rate);
    if let Some(s) = a.latency_secs {
        o.latency_duration = Duration::from_secs(s);
    }
    if let Some(s) = a.warmup_secs {
        o.warmup = Duration::from_secs(s);
    }
    o.no_throughput = a.no_throughput;
    o.no_latency = a.no_latency;
    o.keep_topics = a.keep_topics;
    o.out = a.out;
    Ok(o)
}
