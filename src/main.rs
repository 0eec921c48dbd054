//! `bucket`: one binary for the gate, the sink and the tools around them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bhiv_bucket::audit::tail::{TailOptions, tail};
use bhiv_bucket::bench::BenchOptions;
use bhiv_bucket::bench::sign::SigAlg;
use bhiv_bucket::core::Policy;
use bhiv_bucket::gate::{GateOptions, TopicNames};
use bhiv_bucket::produce::{IntentLine, IntentProducer, Planned};
use bhiv_bucket::registry::Registry;
use bhiv_bucket::sink::{SinkOptions, Store};
use bhiv_bucket::topics::{self, TopicStatus};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// BHIV Bucket governance gate: governs artifact intents on Kafka, exactly once.
#[derive(Parser)]
#[command(name = "bucket", version, about, long_about = None)]
struct Cli {
    /// Log format: human or json.
    #[arg(
        long,
        global = true,
        env = "BUCKET_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "BUCKET_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
}

#[derive(Args, Clone)]
struct RegistryArgs {
    /// Confluent-compatible schema registry base URL.
    #[arg(
        long,
        env = "BUCKET_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081/apis/ccompat/v7"
    )]
    registry_url: String,
}

#[derive(Args, Clone)]
struct TopicArgs {
    /// Suffix appended to every topic name (isolated test or staging runs).
    #[arg(long, env = "BUCKET_TOPIC_SUFFIX", default_value = "")]
    topic_suffix: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the governance gate (consumer group on bucket.intents).
    Gate(GateArgs),
    /// Run the storage sink (bucket.accepted → PostgreSQL).
    Sink(SinkArgs),
    /// Topics as code.
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Avro schemas as code.
    #[command(subcommand)]
    Schemas(SchemasCmd),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Produce intents from JSON lines (file or stdin).
    Produce(ProduceArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Benchmark: the gate beside a transactional passthrough copier, same input, same run.
    Bench(BenchArgs),
}

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

#[derive(Args)]
struct GateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// Policy file.
    #[arg(long, env = "BUCKET_POLICY", default_value = "deploy/policy.toml")]
    policy: PathBuf,
    /// Consumer group shared by all gate instances.
    #[arg(long, env = "BUCKET_GATE_GROUP", default_value = "bucket-gate")]
    group: String,
    /// Instance id, unique per running gate (forms the transactional id).
    #[arg(long, env = "BUCKET_GATE_ID")]
    gate_id: Option<String>,
    /// Longest a transaction stays open, ms (end-to-end latency floor).
    #[arg(long, env = "BUCKET_COMMIT_INTERVAL_MS", default_value_t = 100)]
    commit_interval_ms: u64,
    /// Most intents per transaction.
    #[arg(long, env = "BUCKET_MAX_BATCH", default_value_t = 5000)]
    max_batch: usize,
    /// Route accepted artifacts to one topic per product (bucket.accepted.<product>).
    #[arg(long, env = "BUCKET_ACCEPTED_PER_PRODUCT")]
    accepted_per_product: bool,
}

#[derive(Args)]
struct SinkArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// PostgreSQL URL (the bucket_sink role in production).
    #[arg(
        long,
        env = "BUCKET_PG_URL",
        default_value = "postgres://bucket:bucket@127.0.0.1:5432/bucket"
    )]
    pg_url: String,
    /// Consumer group of the sink.
    #[arg(long, env = "BUCKET_SINK_GROUP", default_value = "bucket-sink")]
    group: String,
    /// Apply database migrations before starting (needs the owner role).
    #[arg(long)]
    migrate: bool,
}

#[derive(Subcommand)]
enum TopicsCmd {
    /// Create missing topics; report drift on existing ones without changing them.
    Apply {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Declaration file (defaults to the compiled-in topics/topics.toml).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Profile overriding replication (e.g. `local` for one broker).
        #[arg(long, env = "BUCKET_TOPICS_PROFILE")]
        profile: Option<String>,
        /// Exit non-zero when drift is found.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Subcommand)]
enum SchemasCmd {
    /// Register the approved schemas of schemas/ and print their ids and fingerprints.
    Apply {
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Validate a policy file and print its version.
    Check {
        /// Policy file.
        #[arg(default_value = "deploy/policy.toml")]
        file: PathBuf,
    },
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// JSON-lines file of intents ("-" for stdin); see docs/wire-contract.md.
    #[arg(long, default_value = "-")]
    file: String,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Follow the audit log (filters, human or JSON lines).
    Tail {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Start from the beginning of the log.
        #[arg(long)]
        from_beginning: bool,
        /// Stop at the current end of every partition.
        #[arg(long)]
        until_end: bool,
        /// JSON lines output.
        #[arg(long)]
        json: bool,
        /// Only this product.
        #[arg(long)]
        product: Option<String>,
        /// Only this artifact id.
        #[arg(long)]
        artifact: Option<String>,
        /// Only this integration.
        #[arg(long)]
        integration: Option<String>,
        /// Only ACCEPTED or REJECTED.
        #[arg(long)]
        outcome: Option<String>,
        /// Only decisions with this reason code.
        #[arg(long)]
        reason: Option<String>,
        /// Print counts by outcome and reason at the end.
        #[arg(long)]
        summary: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        // The bench runs the gate in-process with the gate's own log level; its logs go to a
        // file so the terminal keeps the progress bar and the table.
        Command::Bench(a) => init_tracing_to_file(&a.out.with_file_name("bench.log")),
        _ => init_tracing(&cli.log_format),
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn init_tracing_to_file(path: &std::path::Path) {
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
        Err(_) => init_tracing("human"),
    }
}

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

fn load_policy(path: &PathBuf) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy {}", path.display()))?;
    Policy::parse(&text).with_context(|| format!("policy {}", path.display()))
}

/// Cancels the token on SIGINT or SIGTERM.
fn shutdown_on_signals(rt: &tokio::runtime::Runtime) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    rt.spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        info!("shutdown signal received");
        t.cancel();
    });
    token
}

fn run(cli: Cli) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Gate(a) => {
            let policy = load_policy(&a.policy)?;
            let mut topics = TopicNames::with_suffix(&a.topics.topic_suffix);
            topics.accepted_per_product = a.accepted_per_product;
            let opts = GateOptions {
                brokers: a.kafka.brokers,
                registry_url: a.registry.registry_url,
                group_id: a.group,
                gate_id: a
                    .gate_id
                    .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
                topics,
                policy: Arc::new(policy),
                commit_interval: Duration::from_millis(a.commit_interval_ms),
                max_batch: a.max_batch.max(1),
                restore_timeout: Duration::from_secs(180),
            };
            let shutdown = shutdown_on_signals(&rt);
            let handle = rt.handle().clone();
            let gate = std::thread::Builder::new()
                .name("gate".into())
                .spawn(move || bhiv_bucket::gate::run(opts, shutdown, handle))?;
            match gate.join() {
                Ok(r) => r?,
                Err(_) => bail!("gate thread panicked"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sink(a) => rt.block_on(async {
            if a.migrate {
                let mut store = Store::connect(&a.pg_url).await?;
                let applied = store.migrate().await?;
                info!(applied, "database migrations applied");
            }
            let mut opts = SinkOptions::new(a.kafka.brokers, a.group, a.pg_url);
            opts.topic = TopicNames::with_suffix(&a.topics.topic_suffix).accepted;
            let shutdown = shutdown_on_signals(&rt);
            bhiv_bucket::sink::run(opts, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Topics(TopicsCmd::Apply {
            kafka,
            topics: suffix,
            file,
            profile,
            strict,
        }) => rt.block_on(async {
            let text = match file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                None => topics::DEFAULT_DECLARATION.to_string(),
            };
            let mut specs = topics::parse(&text, profile.as_deref())?;
            for s in &mut specs {
                s.name.push_str(&suffix.topic_suffix);
            }
            let mut drift = false;
            for (name, status) in topics::apply(&kafka.brokers, &specs).await? {
                match status {
                    TopicStatus::Created => println!("created    {name}"),
                    TopicStatus::UpToDate => println!("up to date {name}"),
                    TopicStatus::Drift(d) => {
                        drift = true;
                        println!("DRIFT      {name} (left unchanged)");
                        for line in d {
                            println!("           - {line}");
                        }
                    }
                }
            }
            Ok(if drift && strict {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }),
        Command::Schemas(SchemasCmd::Apply { registry }) => rt.block_on(async {
            let reg = Registry::new(&registry.registry_url)?;
            for (subject, id) in reg.apply_all().await? {
                let fp = bhiv_bucket::wire::schemas::APPROVED
                    .all()
                    .iter()
                    .find(|s| s.subject == subject)
                    .map(|s| s.fingerprint.clone())
                    .unwrap_or_default();
                println!("{subject:<24} id {id:<6} fingerprint {fp}");
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Policy(PolicyCmd::Check { file }) => {
            let p = load_policy(&file)?;
            println!(
                "policy {} is valid: version {}, {} products, {} classes",
                file.display(),
                p.version,
                p.products.len(),
                p.classes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce(a) => rt.block_on(produce(a)),
        Command::Bench(a) => {
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
        Command::Audit(AuditCmd::Tail {
            kafka,
            topics: suffix,
            from_beginning,
            until_end,
            json,
            product,
            artifact,
            integration,
            outcome,
            reason,
            summary,
        }) => {
            let o = TailOptions {
                brokers: kafka.brokers,
                topic: TopicNames::with_suffix(&suffix.topic_suffix).audit,
                from_beginning,
                until_end,
                json,
                product,
                artifact,
                integration,
                outcome,
                reason,
                summary,
            };
            tail(&o, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn produce(a: ProduceArgs) -> Result<ExitCode> {
    let registry = Registry::new(&a.registry.registry_url)?;
    let topic = TopicNames::with_suffix(&a.topics.topic_suffix).intents;
    let producer = IntentProducer::connect(&a.kafka.brokers, &registry, &topic).await?;
    let reader: Box<dyn BufRead> = if a.file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?,
        ))
    };
    let mut sent = 0usize;
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let parsed: IntentLine =
            serde_json::from_str(trimmed).with_context(|| format!("line {}", n + 1))?;
        let d = match parsed.plan(n + 1)? {
            Planned::Intent { key, intent } => {
                let value = producer.encode(&intent)?;
                producer
                    .send_raw(Some(key.as_bytes()), Some(&value), &[])
                    .await?
            }
            Planned::Raw { key, value } => {
                producer
                    .send_raw(key.as_deref().map(str::as_bytes), Some(&value), &[])
                    .await?
            }
        };
        sent += 1;
        println!(
            "line {} -> {topic} partition {} offset {}",
            n + 1,
            d.partition,
            d.offset
        );
    }
    eprintln!("produced {sent} records to {topic}");
    Ok(ExitCode::SUCCESS)
}
