//! `bucket-bench`: the gate beside a transactional passthrough copier, same input, same run.
//!
//! A binary of its own (Cargo feature `bench`), so the production `bucket` binary and its image
//! carry no plotting or benchmark code; `bucket bench …` runs this binary from beside `bucket`.
//! Build: `cargo build --release --features bench --bin bucket-bench`. Its flags are those of the
//! former `bucket bench`, the global ones included, and the config file applies as it did to
//! `bucket bench`: `[common]`, then `[bench]`.

// The argument groups and process helpers of `bucket` (src/cli/), of which the bench uses a few.
#[allow(dead_code)]
#[path = "../cli/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../cli/runtime.rs"]
mod runtime;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use bhiv_bucket::bench::BenchOptions;
use bhiv_bucket::bench::sign::SigAlg;
use bhiv_bucket::config::{self, ConfigError};
use bhiv_bucket::kafka::security::KafkaSecurityArgs;
use clap::{Args, CommandFactory, FromArgMatches, Parser};
use tracing::error;

use args::{ContentStoreArgs, KafkaArgs, RegistryArgs};
use runtime::LOG_TARGET;

/// The config file table of the bench, as when it was the subcommand `bucket bench`.
const CONFIG_TABLE: &str = "bench";

/// Benchmark: the gate beside a transactional passthrough copier, same input, same run.
#[derive(Parser)]
#[command(name = "bucket-bench", long_about = None)]
struct BenchCli {
    /// The bench's own flags.
    #[command(flatten)]
    bench: BenchArgs,
    /// Config file (TOML): one table per subcommand ([gate], [sink], [sink.purge], …) plus
    /// [common] for all; keys are long flag names. Flag > environment > file > default.
    #[arg(long, env = "BUCKET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: human or json.
    // Accepted as by every `bucket` command; the bench logs to a file, in plain text.
    #[allow(dead_code)]
    #[arg(long, env = "BUCKET_LOG_FORMAT", default_value = "human")]
    log_format: String,
    /// The Kafka security flags (SASL_SSL, SCRAM, TLS), as for every `bucket` command.
    #[command(flatten)]
    kafka_security: KafkaSecurityArgs,
}

/// Workload, runs and output of the benchmark.
#[derive(Args)]
struct BenchArgs {
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
    /// Window (ms) of the bench policy's repeat-offender rule (default 1000). Its threshold is
    /// out of reach, so every counted rejection stays for the window (a version 2 audit link
    /// records them all, version 3 only the change): a smaller window is closer to a
    /// production policy's few entries.
    #[arg(long)]
    offender_window_ms: Option<u64>,
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
    /// Run the gate with local state stores under this directory (as `bucket gate
    /// --state-dir`); unset, its state is in memory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// JSON output; throughput.svg and latency.svg are written beside it.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Measure nothing: redraw the table and charts of an earlier results.json (into --out).
    #[arg(long)]
    replot: Option<PathBuf>,
}

/// The command, its options listed in the order `bucket bench --help` listed them: there the
/// global flags (`--config`, `--log-format`, the Kafka security flags) were numbered from 0 on
/// the parent command and the bench's own from 0 on the subcommand, ties in name order.
fn command() -> clap::Command {
    let mut cmd = BenchCli::command();
    let globals = KafkaSecurityArgs::augment_args(
        clap::Command::new("globals")
            .arg(clap::Arg::new("config"))
            .arg(clap::Arg::new("log_format")),
    );
    for (i, arg) in globals.get_arguments().enumerate() {
        let id = arg.get_id().clone();
        cmd = cmd.mut_arg(id, |a| a.display_order(i));
    }
    cmd
}

/// `bucket-bench state`: restore time and memory against history length.
#[derive(Parser)]
#[command(name = "bucket-bench state")]
struct StateCli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// History lengths to measure, decisions (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<u64>,
    /// Products the history spreads over.
    #[arg(long, default_value_t = 100)]
    products: u32,
    /// Decisions appended after the cold restore, replayed by the warm one.
    #[arg(long, default_value_t = 10_000)]
    tail: u64,
    /// Where the restores keep local state.
    #[arg(long, default_value = "target/bench/state")]
    state_dir: PathBuf,
    /// Topic profile of topics/topics.toml for the throwaway audit topics.
    #[arg(long, default_value = "local")]
    topics_profile: String,
    /// Keep the throwaway topics.
    #[arg(long)]
    keep_topics: bool,
    /// JSON output.
    #[arg(long, default_value = "target/bench/state.json")]
    out: PathBuf,
}

/// `bucket-bench content`: storage figures, PostgreSQL rows and S3 objects side by side
/// (docs/scale-readiness.md, "Content at the seeds' scale").
#[derive(Parser)]
#[command(name = "bucket-bench content")]
struct ContentCli {
    /// PostgreSQL owner URL (creates one database per section).
    #[arg(long, env = "BUCKET_PG_URL")]
    pg_url: String,
    /// The object store, with the sink's identity (BUCKET_S3_* as for `bucket sink`).
    #[command(flatten)]
    content: ContentStoreArgs,
    /// The read API's identity: access key id (secret: --reader-secret-access-key).
    #[arg(long, env = "BUCKET_S3_READER_ACCESS_KEY_ID")]
    reader_access_key_id: String,
    /// The read API's identity: secret access key (value, env:NAME or file:PATH).
    #[arg(
        long,
        env = "BUCKET_S3_READER_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    reader_secret_access_key: String,
    /// Content sizes of the write section, bytes (comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1024,65536,1048576,16777216"
    )]
    sizes: Vec<usize>,
    /// Content written per size and backend, bytes.
    #[arg(long, default_value_t = 256 << 20)]
    bytes_per_size: usize,
    /// Artifacts in the edit (deduplication) workload.
    #[arg(long, default_value_t = 4)]
    dedup_artifacts: usize,
    /// Versions per artifact in that workload.
    #[arg(long, default_value_t = 8)]
    dedup_versions: usize,
    /// Content size of the read section and the edit workload, bytes.
    #[arg(long, default_value_t = 16 << 20)]
    read_size: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 32)]
    readers: usize,
    /// Requests per reader.
    #[arg(long, default_value_t = 4)]
    requests_per_reader: usize,
    /// Versions of one product for the /usage section (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    usage_versions: i64,
    /// JSON output.
    #[arg(long, default_value = "target/bench/content.json")]
    out: PathBuf,
}

fn content_main(_sub: &str) -> Result<ExitCode> {
    let cli = ContentCli::parse_from(std::env::args_os().skip(1));
    init_tracing_to_file(&cli.out.with_file_name("content-bench.log"));
    let objects = cli
        .content
        .config()?
        .ok_or_else(|| anyhow::anyhow!("--content-store is required"))?;
    let reader_objects = bhiv_bucket::sink::store::ObjectStoreConfig {
        access_key_id: cli.reader_access_key_id.clone(),
        secret_access_key: args::resolve_secret(&cli.reader_secret_access_key)?,
        ..objects.clone()
    };
    let exe = std::env::current_exe()?;
    let opts = bhiv_bucket::bench::content::ContentBenchOptions {
        pg_url: cli.pg_url,
        objects,
        reader_objects,
        sizes: cli.sizes,
        bytes_per_size: cli.bytes_per_size,
        dedup_artifacts: cli.dedup_artifacts,
        dedup_versions: cli.dedup_versions,
        read_size: cli.read_size,
        readers: cli.readers,
        requests_per_reader: cli.requests_per_reader,
        usage_versions: cli.usage_versions,
        bucket_exe: exe.with_file_name("bucket"),
        tokens: PathBuf::from("deploy/api-tokens.toml"),
        work_dir: cli.out.with_file_name("content-work"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(bhiv_bucket::bench::content::run(&opts))?;
    print!("{}", report.table());
    if let Some(dir) = cli.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("wrote {}", cli.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `bucket-bench state-restore` (internal): one restore in a process of its own, figures as
/// JSON on stdout.
#[derive(Parser)]
#[command(name = "bucket-bench state-restore")]
struct StateRestoreCli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Audit topic (partition 0 is restored).
    #[arg(long)]
    topic: String,
    /// State changelog topic.
    #[arg(long)]
    changelog_topic: String,
    /// After a restore from the audit log, copy the store into the changelog.
    #[arg(long)]
    copy_to_changelog: bool,
    /// Local state directory.
    #[arg(long)]
    state_dir: PathBuf,
}

/// Runs `bucket-bench state` or its child `state-restore`.
fn state_main(sub: &str) -> Result<ExitCode> {
    let args = std::env::args_os().skip(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if sub == "state-restore" {
        let cli = StateRestoreCli::parse_from(args);
        // The figures go to stdout; the restore's own log (where its time went) to stderr,
        // which the parent keeps in its log file.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
        let reader = runtime::audit_reader(&rt, &cli.registry)?;
        let run = bhiv_bucket::bench::state::restore_once(
            &cli.kafka.brokers,
            (&cli.topic, &cli.changelog_topic),
            &cli.state_dir,
            &reader,
            cli.copy_to_changelog,
        )?;
        println!("{}", serde_json::to_string(&run)?);
        return Ok(ExitCode::SUCCESS);
    }
    let cli = StateCli::parse_from(args);
    init_tracing_to_file(&cli.out.with_file_name("state-bench.log"));
    let opts = bhiv_bucket::bench::state::StateBenchOptions {
        brokers: cli.kafka.brokers,
        registry_url: cli.registry.registry_url,
        sizes: cli.sizes,
        products: cli.products,
        tail: cli.tail,
        state_dir: cli.state_dir,
        profile: cli.topics_profile,
        keep_topics: cli.keep_topics,
        exe: std::env::current_exe()?,
    };
    let report = bhiv_bucket::bench::state::run(&opts, rt.handle())?;
    print!("{}", report.table());
    if let Some(dir) = cli.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", cli.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `bucket-bench tlog`: proofs in a partition of 10 M links (issue 17, docs/audit.md).
#[derive(Parser)]
#[command(name = "bucket-bench tlog")]
struct TlogCli {
    /// The tiles directory built, and reused by later runs (about 7 GB at 10 M links).
    #[arg(long, default_value = "target/bench/tlog10m")]
    dir: PathBuf,
    /// Links in the partition.
    #[arg(long, default_value_t = 10_000_000)]
    links: u64,
    /// A signed CHECKPOINT link after this many links (the gate's default).
    #[arg(long, default_value_t = 1000)]
    checkpoint_every: u64,
    /// Decisions proven.
    #[arg(long, default_value_t = 200)]
    samples: u64,
    /// Deployment name in the notes.
    #[arg(long, default_value = "bucket.example.org")]
    deployment: String,
    /// Build the directory again even when one is there.
    #[arg(long)]
    rebuild: bool,
    /// Empty the page cache before each proof, so each reads from disk (Linux, root only).
    #[arg(long)]
    drop_caches: bool,
    /// JSON output.
    #[arg(long, default_value = "target/bench/tlog.json")]
    out: PathBuf,
}

/// `bucket-bench tiles-lag`: the tiles service following links produced at full speed.
#[derive(Parser)]
#[command(name = "bucket-bench tiles-lag")]
struct TilesLagCli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Links produced.
    #[arg(long, default_value_t = 1_000_000)]
    links: u64,
    /// The tiles directory (emptied first).
    #[arg(long, default_value = "target/bench/tiles-lag")]
    dir: PathBuf,
    /// Links a second to produce at (e.g. the gate's full speed in `bucket-bench`); unset, as
    /// fast as the client goes.
    #[arg(long)]
    rate: Option<f64>,
    /// Produce every link first, then time the service reading them alone.
    #[arg(long)]
    catch_up: bool,
    /// Topic profile of topics/topics.toml for the throwaway audit topic.
    #[arg(long, default_value = "local")]
    topics_profile: String,
    /// JSON output.
    #[arg(long, default_value = "target/bench/tiles-lag.json")]
    out: PathBuf,
}

/// Runs `bucket-bench tlog` or `tiles-lag`; prints the figures and writes them as JSON.
fn tlog_main(sub: &str) -> Result<ExitCode> {
    use bhiv_bucket::bench::tlog;
    let args = std::env::args_os().skip(1);
    let (json, out) = if sub == "tlog" {
        let cli = TlogCli::parse_from(args);
        init_tracing_to_file(&cli.out.with_file_name("tlog-bench.log"));
        let bar = indicatif::ProgressBar::new(cli.links);
        let opts = tlog::ProofBenchOptions {
            dir: cli.dir,
            links: cli.links,
            checkpoint_every: cli.checkpoint_every,
            samples: cli.samples,
            deployment: cli.deployment,
            rebuild: cli.rebuild,
            drop_caches: cli.drop_caches,
        };
        let report = tlog::proofs(&opts, &bar)?;
        bar.finish_and_clear();
        (serde_json::to_string_pretty(&report)?, cli.out)
    } else {
        let cli = TilesLagCli::parse_from(args);
        init_tracing_to_file(&cli.out.with_file_name("tiles-lag.log"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let opts = tlog::LagBenchOptions {
            brokers: cli.kafka.brokers,
            registry_url: cli.registry.registry_url,
            profile: cli.topics_profile,
            links: cli.links,
            dir: cli.dir,
            per_second: cli.rate,
            catch_up: cli.catch_up,
        };
        let report = tlog::tiles_lag(&opts, rt.handle())?;
        (serde_json::to_string_pretty(&report)?, cli.out)
    };
    println!("{json}");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, json)?;
    eprintln!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // The subcommands with flags of their own run before the main flags are parsed.
    let sub = std::env::args().nth(1).unwrap_or_default();
    let own: Option<fn(&str) -> Result<ExitCode>> = match sub.as_str() {
        "tlog" | "tiles-lag" => Some(tlog_main),
        "state" | "state-restore" => Some(state_main),
        "content" => Some(content_main),
        _ => None,
    };
    if let Some(run) = own {
        return match run(&sub) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let layered = match config::parse_as(command(), CONFIG_TABLE, std::env::args_os()) {
        Ok(l) => l,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match BenchCli::from_arg_matches(&layered.matches) {
        Ok(c) => c,
        Err(e) => e.format(&mut command()).exit(),
    };
    // The bench runs the gate in-process with the gate's own log level; its logs go to a file
    // so the terminal keeps the progress bar and the table.
    init_tracing_to_file(&cli.bench.out.with_file_name("bench.log"));
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            error!(target: LOG_TARGET, "{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark (or replots an earlier one) and writes its table and charts.
fn run(cli: BenchCli) -> Result<ExitCode> {
    bhiv_bucket::kafka::security::install(cli.kafka_security.resolve()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let replot = cli.bench.replot.clone();
    let opts = bench_options(cli.bench)?;
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

/// Logs to a file, so the bench's terminal keeps its progress bar and table.
fn init_tracing_to_file(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    match std::fs::File::create(path) {
        Ok(f) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        Err(_) => runtime::init_tracing("human"),
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
    o.offender_window_ms = a.offender_window_ms.unwrap_or(o.offender_window_ms);
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
    o.state_dir = a.state_dir;
    o.out = a.out;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn the_config_file_reaches_the_bench_flags() {
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("b.toml");
        std::fs::write(
            &f,
            "[common]\nbrokers = \"common:9092\"\npolicy = \"p.toml\"\n[gate]\ngroup = \"g\"\n\
             [bench]\ncount = 7\nquick = true\npayloads = [10, 20]\n",
        )
        .expect("write");
        let f = f.display().to_string();
        let l = config::parse_as(command(), CONFIG_TABLE, ["bucket-bench", "--config", &f])
            .expect("parse");
        let b = BenchCli::from_arg_matches(&l.matches).expect("cli").bench;
        assert_eq!(b.kafka.brokers, "common:9092");
        assert_eq!((b.count, b.quick), (Some(7), true));
        assert_eq!(b.payloads, Some(vec![10, 20]));
    }
}
