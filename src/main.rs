//! `bucket`: one binary for the gate, the sink and the tools around them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bhiv_bucket::admin::auth::Token as AdminToken;
use bhiv_bucket::admin::{
    AdminConfig, AdminState, GateTelemetry, Role, SinkTelemetry, StorageProbe,
};
use bhiv_bucket::api::{ApiState, Reader, Tokens};
use bhiv_bucket::audit::tail::{TailOptions, tail};
use bhiv_bucket::bench::BenchOptions;
use bhiv_bucket::bench::sign::SigAlg;
use bhiv_bucket::config::{self, ConfigError};
use bhiv_bucket::core::Policy;
use bhiv_bucket::gate::{GateOptions, TopicNames};
use bhiv_bucket::produce::{IntentLine, IntentProducer, Planned};
use bhiv_bucket::registry::Registry;
use bhiv_bucket::sink::{FsStore, SinkOptions, Store, audit_index, purge, reconcile};
use bhiv_bucket::topics::{self, TopicStatus};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// BHIV Bucket governance gate: governs artifact intents on Kafka, exactly once.
#[derive(Parser)]
#[command(name = "bucket", version, about, long_about = None)]
struct Cli {
    /// Config file (TOML): one table per subcommand ([gate], [sink], [sink.purge], …) plus
    /// [common] for all; keys are long flag names. Flag > environment > file > default.
    #[arg(long, global = true, env = "BUCKET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: human or json.
    #[arg(
        long,
        global = true,
        env = "BUCKET_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: String,
    #[command(flatten)]
    kafka_security: bhiv_bucket::kafka_security::KafkaSecurityArgs,
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
    /// Storage sink (bucket.accepted → PostgreSQL) and its jobs: run (default), migrate, purge,
    /// hold, reconcile.
    Sink(SinkArgs),
    /// Read API over HTTP (artifacts, history, decisions, usage; product-scoped tokens).
    Api(ApiArgs),
    /// Topics as code.
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Kafka ACLs as code (deploy/acls.toml), applied with Kafka's kafka-acls tool.
    #[command(subcommand)]
    Acls(AclsCmd),
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
    /// Signing keys for integrations.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Gate state tools.
    #[command(subcommand)]
    State(StateCmd),
    /// Benchmark: the gate beside a transactional passthrough copier, same input, same run.
    Bench(BenchArgs),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the config file and print the effective settings of a subcommand, each with its
    /// source (cli, env, file, default); secrets are masked. Example:
    /// `bucket --config deploy/bucket.toml config check gate --gate-id g1`.
    Check {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// The subcommand and its flags, as they would be run (none: only validate the file).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "SUBCOMMAND"
        )]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum StateCmd {
    /// Rebuild the gate state (artifact index, usage) from bucket.audit alone, print per-product
    /// usage and republish it to Redis (repairs a Redis that lost data or fell behind).
    Rebuild {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Policy file (replay window, offender settings).
        #[arg(long, env = "BUCKET_POLICY", default_value = "deploy/policy.toml")]
        policy: PathBuf,
        /// Redis URL to republish usage to; "none" to only print.
        #[arg(
            long,
            env = "BUCKET_REDIS_URL",
            default_value = "redis://127.0.0.1:6379"
        )]
        redis_url: String,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Generate an Ed25519 key pair and an HMAC secret for an integration; prints the policy
    /// snippet. Private material goes to files in --out-dir, never to stdout.
    Generate {
        /// Integration id.
        #[arg(long)]
        integration: String,
        /// Directory for the private key files.
        #[arg(long)]
        out_dir: PathBuf,
        /// Ed25519 key id.
        #[arg(long, default_value = "ed1")]
        ed25519_id: String,
        /// HMAC key id.
        #[arg(long, default_value = "hm1")]
        hmac_id: String,
    },
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
    /// Instance id, unique and stable per running gate (forms the transactional id); defaults
    /// to the host name.
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
    /// Ed25519 seed file (base64) of the gate's audit checkpoint key; no checkpoints without it.
    #[arg(long, env = "BUCKET_AUDIT_KEY_FILE")]
    audit_key_file: Option<PathBuf>,
    /// Key id of the audit key (its public key is in the policy's [audit] section).
    #[arg(long, env = "BUCKET_AUDIT_KEY_ID", default_value = "audit1")]
    audit_key_id: String,
    /// Signed checkpoint after this many audit links per partition.
    #[arg(long, env = "BUCKET_CHECKPOINT_EVERY", default_value_t = 1000)]
    checkpoint_every: u64,
    /// Redis URL for cross-partition usage (global quotas); "none" disables sharing.
    #[arg(
        long,
        env = "BUCKET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Signed checkpoint at least this often (seconds) while a partition gets links.
    #[arg(long, env = "BUCKET_CHECKPOINT_INTERVAL_S", default_value_t = 10)]
    checkpoint_interval_s: u64,
    /// Admin HTTP address (/healthz, /readyz, /metrics, /policy, /threats, /status); "off"
    /// disables it.
    #[arg(long, env = "BUCKET_ADMIN_ADDR", default_value = bhiv_bucket::admin::config::GATE_DEFAULT_ADDR)]
    admin_addr: String,
    #[command(flatten)]
    admin: AdminTokenArgs,
}

#[derive(Args, Clone)]
struct AdminTokenArgs {
    /// Bearer token of the admin endpoints (all but /healthz, /readyz and the static /status
    /// page): the token itself, env:NAME or file:PATH. Without one the address must be loopback.
    #[arg(long, env = "BUCKET_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

#[derive(Args, Clone)]
struct PgArgs {
    /// PostgreSQL URL (the bucket_sink role in production; owner for --migrate).
    #[arg(
        long,
        env = "BUCKET_PG_URL",
        default_value = "postgres://bucket:bucket@127.0.0.1:5432/bucket"
    )]
    pg_url: String,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SinkArgs {
    #[command(flatten)]
    run: SinkRunArgs,
    #[command(subcommand)]
    cmd: Option<SinkCmd>,
}

#[derive(Args)]
struct SinkRunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    pg: PgArgs,
    /// Consumer group of the sink (the audit indexer uses `<group>.audit`).
    #[arg(long, env = "BUCKET_SINK_GROUP", default_value = "bucket-sink")]
    group: String,
    /// Apply database migrations before starting (needs the owner role).
    #[arg(long)]
    migrate: bool,
    /// Do not index bucket.audit into audit_decisions (another sink does it).
    #[arg(long, env = "BUCKET_SINK_NO_AUDIT_INDEX")]
    no_audit_index: bool,
    /// Most records per database transaction.
    #[arg(long, env = "BUCKET_SINK_BATCH_MAX", default_value_t = 500)]
    batch_max: usize,
    #[command(flatten)]
    backend: BackendArgs,
    /// Admin HTTP address (/healthz, /readyz, /metrics, /status); "off" disables it.
    #[arg(long, env = "BUCKET_ADMIN_ADDR", default_value = bhiv_bucket::admin::config::SINK_DEFAULT_ADDR)]
    admin_addr: String,
    #[command(flatten)]
    admin: AdminTokenArgs,
}

#[derive(Args, Clone)]
struct BackendArgs {
    /// Storage backend: pg (PostgreSQL) or fs (local directory, laptop demo).
    #[arg(long, env = "BUCKET_SINK_BACKEND", default_value = "pg", value_parser = ["pg", "fs"])]
    backend: String,
    /// Data directory of the fs backend.
    #[arg(long, env = "BUCKET_DATA_DIR", default_value = ".stack/data/bucket-fs")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum SinkCmd {
    /// Run the sink (same as `bucket sink` with no subcommand).
    Run(SinkRunArgs),
    /// Apply the database migrations (owner role) and exit.
    Migrate {
        #[command(flatten)]
        pg: PgArgs,
    },
    /// Purge prior versions and tombstones older than the window, except under legal hold.
    Purge {
        /// PostgreSQL URL of a role allowed to purge (bucket_purger or the owner).
        #[arg(
            long,
            env = "BUCKET_PURGE_PG_URL",
            default_value = "postgres://bucket_purger:bucket_purger@127.0.0.1:5432/bucket"
        )]
        pg_url: String,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Retention window: 90d, 12h, 30m, 45s.
        #[arg(long, env = "BUCKET_RETENTION_WINDOW", default_value = "90d")]
        window: String,
        /// Count and record only; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Place (or with --lift, remove) a legal hold on a product or one artifact (owner role).
    Hold {
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Product.
        #[arg(long)]
        product: String,
        /// One artifact (default: the whole product).
        #[arg(long)]
        artifact: Option<String>,
        /// Why (kept with the hold).
        #[arg(long, default_value = "legal hold")]
        reason: String,
        /// Remove the hold instead.
        #[arg(long)]
        lift: bool,
    },
    /// Compare storage with bucket.accepted (read_committed, from the beginning); exit 1 on any
    /// difference.
    Reconcile {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        backend: BackendArgs,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
        /// Longest time to read the topic to its end, seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
}

#[derive(Args)]
struct ApiArgs {
    /// Address to listen on.
    #[arg(long, env = "BUCKET_API_LISTEN", default_value = "127.0.0.1:8088")]
    listen: std::net::SocketAddr,
    /// PostgreSQL URL (the read-only bucket_reader role).
    #[arg(
        long,
        env = "BUCKET_API_PG_URL",
        default_value = "postgres://bucket_reader:bucket_reader@127.0.0.1:5432/bucket"
    )]
    pg_url: String,
    /// Tokens file (SHA-256 hashes of product-scoped bearer tokens).
    #[arg(
        long,
        env = "BUCKET_API_TOKENS",
        default_value = "deploy/api-tokens.toml"
    )]
    tokens: PathBuf,
    /// Print the SHA-256 line for a token (to add to the tokens file) and exit.
    #[arg(long, value_name = "TOKEN")]
    hash_token: Option<String>,
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
    /// Print Kubernetes manifests of the declared topics (Strimzi `KafkaTopic` resources);
    /// deploy/k8s/topics.yaml is this output with the defaults.
    Manifests {
        #[command(flatten)]
        topics: TopicArgs,
        /// Manifest format.
        #[arg(long, default_value = "strimzi", value_parser = ["strimzi"])]
        format: String,
        /// Declaration file (defaults to the compiled-in topics/topics.toml).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Profile overriding replication (e.g. `local` for one broker).
        #[arg(long)]
        profile: Option<String>,
        /// Strimzi cluster the topics belong to (the `strimzi.io/cluster` label).
        #[arg(long, default_value = "bucket")]
        cluster: String,
        /// Namespace of the resources ("" to leave it to kubectl).
        #[arg(long, default_value = "bhiv-bucket")]
        namespace: String,
        /// Write the manifests to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AclsCmd {
    /// Add every ACL of the declaration (idempotent), authenticated as the admin with the
    /// --kafka-* security flags; --brokers must be the listener those flags fit.
    Apply {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Declaration file.
        #[arg(long, env = "BUCKET_ACLS", default_value = "deploy/acls.toml")]
        file: PathBuf,
        /// The kafka-acls tool: program and leading arguments (any Kafka's bin/kafka-acls.sh).
        #[arg(
            long,
            env = "BUCKET_KAFKA_ACLS_CMD",
            default_value = "deploy/local/kafka-cli.sh acls"
        )]
        kafka_acls_cmd: String,
        /// Print the tool arguments instead of running them.
        #[arg(long)]
        dry_run: bool,
        /// Also remove the declared principals' ACLs that the declaration does not grant
        /// (without it they are only reported).
        #[arg(long)]
        prune: bool,
    },
}

#[derive(Subcommand)]
enum SchemasCmd {
    /// Register the approved schemas of schemas/ and print their ids and fingerprints.
    Apply {
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
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
    /// Directory of integration key files to sign with (`bucket keys generate`).
    #[arg(long, env = "BUCKET_KEYS_DIR")]
    keys_dir: Option<PathBuf>,
    /// Sign with HMAC-SHA256 keys rather than Ed25519 when both exist.
    #[arg(long)]
    hmac: bool,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify every chain, checkpoint signature and completeness against bucket.intents;
    /// exits 1 and names the partition and offset of each break.
    Verify {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Policy file holding the gate audit public keys ([audit] keys).
        #[arg(long, env = "BUCKET_POLICY", default_value = "deploy/policy.toml")]
        policy: PathBuf,
        /// Gate consumer group (its committed offsets bound completeness).
        #[arg(long, env = "BUCKET_GATE_GROUP", default_value = "bucket-gate")]
        group: String,
        /// Skip the completeness check against bucket.intents.
        #[arg(long)]
        no_completeness: bool,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
        /// Resume from trusted heads saved by an earlier run (--save).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Save the verified heads for a later --resume.
        #[arg(long)]
        save: Option<PathBuf>,
    },
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
    let layered = match config::parse(Cli::command(), std::env::args_os()) {
        Ok(l) => l,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&layered.matches) {
        Ok(c) => c,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
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

/// Reads a base64 Ed25519 seed file.
fn read_seed(path: &std::path::Path) -> Result<bhiv_bucket::core::signature::SignKey> {
    use base64::Engine;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading audit key {}", path.display()))?;
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: not a base64 32-byte Ed25519 seed", path.display()))?;
    Ok(bhiv_bucket::core::signature::SignKey::ed25519_from_seed(
        &seed,
    ))
}

/// The host name, or "gate" when it cannot be read.
fn default_gate_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gate".to_string())
}

/// Publishes a governance event to `bucket.control` for the gate to fold into the audit chain.
/// The action already happened, so a failure to publish is an error the operator must see.
async fn announce(
    kafka: &KafkaArgs,
    topics: &TopicArgs,
    event_type: &str,
    source: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let topic = TopicNames::with_suffix(&topics.topic_suffix).control;
    let event = bhiv_bucket::control::ControlEvent::new(event_type, source, detail);
    let mut client = bhiv_bucket::kafka_security::client_config();
    client.set("bootstrap.servers", &kafka.brokers);
    let offset = bhiv_bucket::control::publish(&client, &topic, &event)
        .await
        .with_context(|| {
            format!("{event_type} was done, but its audit event could not be published to {topic}; run the command again")
        })?;
    eprintln!("audit: {event_type} published to {topic} at offset {offset}");
    Ok(())
}

/// `bucket acls apply`: parse the declaration, add every grant through kafka-acls, then report
/// (or with `--prune` remove) the declared principals' ACLs the declaration does not grant.
fn acls_apply(
    kafka: &KafkaArgs,
    suffix: &str,
    file: &std::path::Path,
    tool: &str,
    dry_run: bool,
    prune: bool,
) -> Result<ExitCode> {
    use bhiv_bucket::acls;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let grants = acls::parse(&text)?;
    if dry_run {
        for g in &grants {
            println!("{}", acls::add_args(g, suffix).join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tool = acls::AclTool {
        command: tool.split_whitespace().map(String::from).collect(),
        bootstrap: kafka.brokers.clone(),
        client_properties: bhiv_bucket::kafka_security::active()
            .and_then(|s| s.java_client_properties()),
    };
    for args in acls::apply(&tool, &grants, suffix)? {
        println!("applied  {}", args.join(" "));
    }
    let extra = acls::find_stale(&tool, &grants, suffix)?;
    const SHOWN: usize = 50;
    for b in extra.iter().take(SHOWN) {
        println!("not declared  {b}");
    }
    if extra.len() > SHOWN {
        println!("not declared  ... and {} more", extra.len() - SHOWN);
    }
    if extra.is_empty() {
        println!(
            "the declared principals hold no ACLs beyond {}",
            file.display()
        );
    } else if prune {
        for args in acls::remove(&tool, &extra)? {
            println!("removed  {}", args.join(" "));
        }
    } else {
        println!(
            "{} ACL(s) of declared principals are not in {}: review them, or re-run with --prune to remove them",
            extra.len(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn load_policy(path: &std::path::Path) -> Result<Policy> {
    Ok(bhiv_bucket::policy_file::load(path)?.0)
}

/// Runs `f` once `shutdown` is cancelled (readiness goes false while the process winds down).
fn mark_stopping(
    rt: &tokio::runtime::Runtime,
    shutdown: CancellationToken,
    f: impl FnOnce() + Send + 'static,
) {
    rt.spawn(async move {
        shutdown.cancelled().await;
        f();
    });
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
    bhiv_bucket::kafka_security::install(cli.kafka_security.resolve()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Gate(a) => {
            let (policy, policy_text) = bhiv_bucket::policy_file::load(&a.policy)?;
            let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = reload.clone();
            rt.spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                if let Ok(mut hup) = signal(SignalKind::hangup()) {
                    while hup.recv().await.is_some() {
                        info!("SIGHUP: policy reload requested");
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
            let mut topics = TopicNames::with_suffix(&a.topics.topic_suffix);
            topics.accepted_per_product = a.accepted_per_product;
            let admin = AdminConfig::parse(&a.admin_addr, a.admin.admin_token.as_deref())?;
            // A stable default (the host name, i.e. the pod name on Kubernetes) lets a
            // restarted instance fence its predecessor's open transaction at once.
            let gate_id = a.gate_id.unwrap_or_else(default_gate_id);
            let telemetry = match admin.addr {
                Some(_) => {
                    GateTelemetry::new(&policy, &policy_text, &topics.intents, &a.group, &gate_id)
                }
                None => GateTelemetry::default(),
            };
            let registry_url = a.registry.registry_url.clone();
            let opts = GateOptions {
                brokers: a.kafka.brokers,
                registry_url: a.registry.registry_url,
                group_id: a.group,
                gate_id,
                topics,
                policy: Arc::new(policy),
                policy_text,
                policy_path: Some(a.policy.clone()),
                reload,
                audit_key: match &a.audit_key_file {
                    None => None,
                    Some(f) => Some((a.audit_key_id.clone(), read_seed(f)?)),
                },
                checkpoint_every: a.checkpoint_every.max(1),
                redis_url: (a.redis_url != "none").then(|| a.redis_url.clone()),
                checkpoint_interval: Duration::from_secs(a.checkpoint_interval_s.max(1)),
                commit_interval: Duration::from_millis(a.commit_interval_ms),
                max_batch: a.max_batch.max(1),
                restore_timeout: Duration::from_secs(180),
                telemetry: telemetry.clone(),
            };
            let shutdown = shutdown_on_signals(&rt);
            if let Some(addr) = admin.addr {
                let state = AdminState {
                    role: Role::Gate(telemetry.clone()),
                    token: admin.token.as_deref().map(|t| Arc::new(AdminToken::new(t))),
                };
                rt.block_on(bhiv_bucket::admin::start(addr, state, shutdown.clone()))?;
                let _enter = rt.enter();
                bhiv_bucket::admin::probe::spawn_gate(
                    telemetry.clone(),
                    registry_url,
                    shutdown.clone(),
                );
                mark_stopping(&rt, shutdown.clone(), move || telemetry.stopping());
            }
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
        Command::Sink(SinkArgs { run: a, cmd }) => rt.block_on(sink(&rt, a, cmd)),
        Command::Api(a) => rt.block_on(api(&rt, a)),
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
            let (mut created, mut drifted) = (Vec::new(), serde_json::Map::new());
            for (name, status) in topics::apply(&kafka.brokers, &specs).await? {
                match status {
                    TopicStatus::Created => {
                        println!("created    {name}");
                        created.push(name);
                    }
                    TopicStatus::UpToDate => println!("up to date {name}"),
                    TopicStatus::Drift(d) => {
                        drift = true;
                        println!("DRIFT      {name} (left unchanged)");
                        for line in &d {
                            println!("           - {line}");
                        }
                        drifted.insert(name, serde_json::json!(d));
                    }
                }
            }
            if !created.is_empty() {
                let detail = serde_json::json!({"created": created});
                announce(
                    &kafka,
                    &suffix,
                    "TOPICS_CREATED",
                    "bucket topics apply",
                    detail,
                )
                .await?;
            }
            if !drifted.is_empty() {
                let detail = serde_json::json!({"drift": drifted});
                announce(
                    &kafka,
                    &suffix,
                    "TOPIC_DRIFT",
                    "bucket topics apply",
                    detail,
                )
                .await?;
            }
            Ok(if drift && strict {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }),
        Command::Acls(AclsCmd::Apply {
            kafka,
            topics,
            file,
            kafka_acls_cmd,
            dry_run,
            prune,
        }) => acls_apply(
            &kafka,
            &topics.topic_suffix,
            &file,
            &kafka_acls_cmd,
            dry_run,
            prune,
        ),
        Command::Topics(TopicsCmd::Manifests {
            topics: suffix,
            format: _,
            file,
            profile,
            cluster,
            namespace,
            out,
        }) => {
            let text = match file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                None => topics::DEFAULT_DECLARATION.to_string(),
            };
            let mut specs = topics::parse(&text, profile.as_deref())?;
            for s in &mut specs {
                s.name.push_str(&suffix.topic_suffix);
            }
            let yaml = topics::strimzi_manifests(&specs, &cluster, &namespace);
            match out {
                Some(path) => {
                    std::fs::write(&path, yaml)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {} ({} topics)", path.display(), specs.len());
                }
                None => print!("{yaml}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCmd::Check { json, command }) => {
            config_check(cli.config.as_deref(), json, command)
        }
        Command::Schemas(SchemasCmd::Apply {
            registry,
            kafka,
            topics,
        }) => rt.block_on(async {
            let reg = Registry::new(&registry.registry_url)?;
            let applied = reg.apply_all().await?;
            let mut listed = Vec::new();
            for (subject, id) in applied {
                let fp = bhiv_bucket::wire::schemas::APPROVED
                    .all()
                    .iter()
                    .find(|s| s.subject == subject)
                    .map(|s| s.fingerprint.clone())
                    .unwrap_or_default();
                println!("{subject:<24} id {id:<6} fingerprint {fp}");
                listed.push(serde_json::json!({"subject": subject, "id": id, "fingerprint": fp}));
            }
            let detail = serde_json::json!({"registry": registry.registry_url, "schemas": listed});
            announce(
                &kafka,
                &topics,
                "SCHEMAS_APPLIED",
                "bucket schemas apply",
                detail,
            )
            .await?;
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
        Command::State(StateCmd::Rebuild {
            kafka,
            topics: suffix,
            policy,
            redis_url,
        }) => {
            let names = TopicNames::with_suffix(&suffix.topic_suffix);
            let policy = load_policy(&policy)?;
            let started = std::time::Instant::now();
            let tasks = bhiv_bucket::gate::task::rebuild_all(
                &kafka.brokers,
                &names.audit,
                Duration::from_secs(600),
                &policy,
            )?;
            println!(
                "{:<24} {:>9} {:>12} {:>16}",
                "product", "partition", "artifacts", "bytes"
            );
            for (p, t) in &tasks {
                let mut rows: Vec<_> = t.state.usage_by_product().iter().collect();
                rows.sort_by(|a, b| a.0.cmp(b.0));
                for (product, u) in rows {
                    println!("{product:<24} {p:>9} {:>12} {:>16}", u.artifacts, u.bytes);
                }
            }
            let count = tasks.len() as i32;
            let usage: serde_json::Map<String, serde_json::Value> = tasks
                .values()
                .flat_map(|t| t.state.usage_by_product().iter())
                .map(|(p, u)| {
                    (
                        p.clone(),
                        serde_json::json!({"artifacts": u.artifacts, "bytes": u.bytes}),
                    )
                })
                .collect();
            let mut map: std::collections::HashMap<i32, _> = tasks.into_iter().collect();
            let redis = (redis_url != "none").then_some(redis_url.as_str());
            let mut share = bhiv_bucket::gate::usage_share::UsageShare::new(redis, &names.intents);
            share.tick(&mut map, count);
            let detail = serde_json::json!({
                "partitions": count, "usage": usage, "republished_to_redis": redis.is_some(),
                "seconds": started.elapsed().as_secs_f64(),
            });
            rt.block_on(announce(
                &kafka,
                &suffix,
                "STATE_REBUILT",
                "bucket state rebuild",
                detail,
            ))?;
            println!(
                "rebuilt {count} partitions from {} in {:.2}s{}",
                names.audit,
                started.elapsed().as_secs_f64(),
                if redis.is_some() {
                    "; usage republished to Redis"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCmd::Generate {
            integration,
            out_dir,
            ed25519_id,
            hmac_id,
        }) => {
            let (public, ed_path, hmac_path) =
                bhiv_bucket::keys::generate(&integration, &out_dir, &ed25519_id, &hmac_id)?;
            println!(
                "# policy snippet for {integration} (secrets stay in {})",
                out_dir.display()
            );
            println!("[integrations.{integration}]");
            println!("products = [\"...\"]");
            println!("keys = [");
            println!(
                "  {{ id = \"{ed25519_id}\", alg = \"ed25519\", public_key = \"{public}\" }},"
            );
            println!(
                "  {{ id = \"{hmac_id}\", alg = \"hmac-sha256\", secret = \"file:{}\" }},",
                hmac_path.display()
            );
            println!("]");
            eprintln!("wrote {} and {}", ed_path.display(), hmac_path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCmd::Verify {
            kafka,
            topics: suffix,
            policy,
            group,
            no_completeness,
            json,
            resume,
            save,
        }) => {
            let names = TopicNames::with_suffix(&suffix.topic_suffix);
            let keys = load_policy(&policy)?.audit_keys;
            let resume = match resume {
                None => Default::default(),
                Some(f) => serde_json::from_str(&std::fs::read_to_string(&f)?)
                    .with_context(|| format!("reading {}", f.display()))?,
            };
            let o = bhiv_bucket::audit::verify::VerifyOptions {
                brokers: kafka.brokers,
                audit_topic: names.audit,
                intents_topic: (!no_completeness).then(|| names.intents.clone()),
                control_topic: (!no_completeness).then(|| names.control.clone()),
                gate_group: group,
                keys,
                resume,
                progress: !json,
            };
            let (report, phases) = bhiv_bucket::audit::verify::verify_timed(&o)?;
            if let Some(f) = save {
                let heads: std::collections::BTreeMap<i32, _> = report
                    .partitions
                    .iter()
                    .map(|(p, s)| (*p, s.head.clone()))
                    .collect();
                std::fs::write(&f, serde_json::to_string_pretty(&heads)?)?;
            }
            let links: u64 = report.partitions.values().map(|p| p.links).sum();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for (p, s) in &report.partitions {
                    println!(
                        "partition {p}: {} links, {} decisions, {} signed checkpoints, head seq {}",
                        s.links,
                        s.decisions,
                        s.checkpoints,
                        s.head.next_seq - 1
                    );
                }
                println!(
                    "control: {} events folded into the audit chain, {} not folded yet",
                    report.control.folded, report.control.pending
                );
                for pr in &report.problems {
                    println!(
                        "FAIL partition {} offset {}: {} {}",
                        pr.partition, pr.offset, pr.kind, pr.detail
                    );
                }
                println!("{}", phases.summary(report.ok(), links));
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
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

async fn sink(
    rt: &tokio::runtime::Runtime,
    a: SinkRunArgs,
    cmd: Option<SinkCmd>,
) -> Result<ExitCode> {
    match cmd {
        None => sink_run(rt, a).await,
        Some(SinkCmd::Run(a)) => sink_run(rt, a).await,
        Some(SinkCmd::Migrate { pg }) => {
            let mut store = Store::connect(&pg.pg_url).await?;
            let applied = store.migrate().await?;
            println!("applied {applied} migration(s)");
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::Purge {
            pg_url,
            kafka,
            topics,
            window,
            dry_run,
        }) => {
            let window = purge::parse_window(&window).map_err(anyhow::Error::msg)?;
            let store = Store::connect(&pg_url).await?;
            let report = store.purge(window, dry_run).await?;
            println!(
                "purge run {}{}: cutoff {} ms, window {} s: purged {} versions and {} tombstones \
                 ({} bytes); {} eligible versions kept under legal hold",
                report.run_id,
                if report.dry_run { " (dry run)" } else { "" },
                report.cutoff_ms,
                report.window_seconds,
                report.purged_versions,
                report.purged_tombstones,
                report.purged_bytes,
                report.held_versions
            );
            let detail = serde_json::to_value(&report)?;
            announce(
                &kafka,
                &topics,
                "STORAGE_PURGED",
                "bucket sink purge",
                detail,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::Hold {
            pg,
            kafka,
            topics,
            product,
            artifact,
            reason,
            lift,
        }) => {
            let store = Store::connect(&pg.pg_url).await?;
            let what = match &artifact {
                Some(a) => format!("{product}/{a}"),
                None => format!("product {product}"),
            };
            let detail =
                serde_json::json!({"product": product, "artifact": artifact, "reason": reason});
            if lift {
                let existed = store.lift_hold(&product, artifact.as_deref()).await?;
                println!(
                    "legal hold on {what} {}",
                    if existed { "lifted" } else { "did not exist" }
                );
                if existed {
                    announce(
                        &kafka,
                        &topics,
                        "LEGAL_HOLD_LIFTED",
                        "bucket sink hold --lift",
                        detail,
                    )
                    .await?;
                }
            } else {
                store
                    .place_hold(&product, artifact.as_deref(), &reason)
                    .await?;
                println!("legal hold on {what} in place");
                announce(
                    &kafka,
                    &topics,
                    "LEGAL_HOLD_PLACED",
                    "bucket sink hold",
                    detail,
                )
                .await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::Reconcile {
            kafka,
            topics,
            pg,
            backend,
            json,
            timeout_secs,
        }) => {
            let topic = TopicNames::with_suffix(&topics.topic_suffix).accepted;
            let (brokers, t) = (kafka.brokers.clone(), topic.clone());
            let topic_side = tokio::task::spawn_blocking(move || {
                reconcile::read_topic(&brokers, &t, Duration::from_secs(timeout_secs))
            })
            .await??;
            let storage_side = if backend.backend == "fs" {
                let store = FsStore::open(&backend.data_dir)?;
                let t = topic.clone();
                tokio::task::spawn_blocking(move || store.storage_side(&t)).await??
            } else {
                Store::connect(&pg.pg_url)
                    .await?
                    .storage_side(&topic)
                    .await?
            };
            let report = reconcile::diff(&topic_side, &storage_side);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for d in &report.differences {
                    println!("DIFF {}", serde_json::to_string(d)?);
                }
                println!(
                    "reconcile {topic}: {} records, {} versions on the topic, {} stored, {} purged, \
                     {} quarantined, {} differences",
                    report.topic_records,
                    report.topic_versions,
                    report.stored_versions,
                    report.purged,
                    report.quarantined,
                    report.differences.len()
                );
            }
            Ok(if report.differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Starts the sink's admin server and probes; returns the telemetry handle for the loop.
async fn sink_admin(
    rt: &tokio::runtime::Runtime,
    a: &SinkRunArgs,
    shutdown: &CancellationToken,
) -> Result<SinkTelemetry> {
    let admin = AdminConfig::parse(&a.admin_addr, a.admin.admin_token.as_deref())?;
    let Some(addr) = admin.addr else {
        return Ok(SinkTelemetry::default());
    };
    let storage = if a.backend.backend == "fs" {
        StorageProbe::Fs(a.backend.data_dir.clone())
    } else {
        StorageProbe::Pg(a.pg.pg_url.clone())
    };
    let telemetry = SinkTelemetry::new(storage);
    let state = AdminState {
        role: Role::Sink(telemetry.clone()),
        token: admin.token.as_deref().map(|t| Arc::new(AdminToken::new(t))),
    };
    bhiv_bucket::admin::start(addr, state, shutdown.clone()).await?;
    bhiv_bucket::admin::probe::spawn_sink(telemetry.clone(), shutdown.clone());
    let t = telemetry.clone();
    mark_stopping(rt, shutdown.clone(), move || t.stopping());
    Ok(telemetry)
}

async fn sink_run(rt: &tokio::runtime::Runtime, a: SinkRunArgs) -> Result<ExitCode> {
    let shutdown = shutdown_on_signals(rt);
    let telemetry = sink_admin(rt, &a, &shutdown).await?;
    if a.backend.backend == "fs" {
        let names = TopicNames::with_suffix(&a.topics.topic_suffix);
        let mut opts = SinkOptions::new(a.kafka.brokers, a.group, "");
        opts.topic = names.accepted;
        opts.batch_max = a.batch_max;
        let store = FsStore::open(&a.backend.data_dir)
            .with_context(|| format!("opening {}", a.backend.data_dir.display()))?;
        info!(data_dir = %a.backend.data_dir.display(), "fs backend (no audit index, no read API)");
        opts.telemetry = telemetry;
        bhiv_bucket::sink::run_with(store, opts, shutdown).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.migrate {
        let mut store = Store::connect(&a.pg.pg_url).await?;
        let applied = store.migrate().await?;
        info!(applied, "database migrations applied");
    }
    let names = TopicNames::with_suffix(&a.topics.topic_suffix);
    let mut opts = SinkOptions::new(a.kafka.brokers, a.group, a.pg.pg_url);
    opts.topic = names.accepted;
    opts.batch_max = a.batch_max;
    opts.telemetry = telemetry;
    let indexer = if a.no_audit_index {
        None
    } else {
        let mut audit = opts.clone();
        audit.telemetry = Default::default();
        audit.topic = names.audit;
        audit.group_id = format!("{}.audit", opts.group_id);
        let stop = shutdown.clone();
        Some(tokio::spawn(async move {
            let r = audit_index::run(audit, stop.clone()).await;
            if r.is_err() {
                stop.cancel();
            }
            r
        }))
    };
    let result = bhiv_bucket::sink::run(opts, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(h) = indexer {
        h.await.context("audit indexer task")??;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn api(rt: &tokio::runtime::Runtime, a: ApiArgs) -> Result<ExitCode> {
    if let Some(token) = a.hash_token {
        println!("sha256 = \"{}\"", bhiv_bucket::api::hash_token(&token));
        return Ok(ExitCode::SUCCESS);
    }
    let tokens = Tokens::load(&a.tokens)?;
    if tokens.is_empty() {
        bail!(
            "tokens file {} has no tokens; every request would be refused",
            a.tokens.display()
        );
    }
    let reader = Reader::connect(&a.pg_url)
        .await
        .context("connecting the read API to PostgreSQL (is the schema migrated?)")?;
    let state = ApiState {
        reader,
        tokens: Arc::new(tokens),
    };
    let shutdown = shutdown_on_signals(rt);
    bhiv_bucket::api::serve(a.listen, state, shutdown, None).await?;
    Ok(ExitCode::SUCCESS)
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
    let mut signer = a
        .keys_dir
        .as_ref()
        .map(|d| bhiv_bucket::produce::Signer::new(d, a.hmac));
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
            Planned::Intent { key, intent, sign } => {
                let value = producer.encode(&intent)?;
                let header = match (&mut signer, sign.as_str()) {
                    (_, "none") | (None, _) => None,
                    // A forged intent: a well-formed signature over other bytes.
                    (Some(s), "corrupt") => s.header(&intent.integration_id, b"forged")?,
                    (Some(s), _) => s.header(&intent.integration_id, &value)?,
                };
                let headers: Vec<(&str, &[u8])> = header
                    .as_ref()
                    .map(|h| vec![(bhiv_bucket::wire::headers::SIGNATURE, h.as_bytes())])
                    .unwrap_or_default();
                producer
                    .send_raw(Some(key.as_bytes()), Some(&value), &headers)
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

/// `bucket config check`: parses `command` exactly as `bucket` would (same layering) and prints
/// each effective setting with its source.
fn config_check(
    file: Option<&std::path::Path>,
    json: bool,
    command: Vec<String>,
) -> Result<ExitCode> {
    let mut argv: Vec<std::ffi::OsString> = vec!["bucket".into()];
    if let Some(f) = file {
        argv.push("--config".into());
        argv.push(f.into());
    }
    let only_file = command.is_empty();
    argv.extend(command.into_iter().map(Into::into));
    if only_file {
        // Nothing to run: the file was already validated as a whole by the parse of this
        // command; report it.
        match file {
            Some(f) => println!("config file {}: valid", f.display()),
            None => println!("no config file (--config / BUCKET_CONFIG): nothing to check"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let layered = config::parse(Cli::command(), argv).map_err(|e| match e {
        ConfigError::Cli(c) => {
            let text = c.render().to_string();
            anyhow::anyhow!("{}", text.trim_start_matches("error: ").trim_end())
        }
        other => anyhow::Error::new(other),
    })?;
    let name = std::iter::once("bucket".to_string())
        .chain(layered.path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let settings = layered.settings();
    if json {
        let rows: Vec<serde_json::Value> = settings
            .iter()
            .map(|s| {
                serde_json::json!({
                    "key": s.key,
                    "value": s.value,
                    "source": s.source.kind(),
                    "from": s.source.to_string(),
                    "env": s.env,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "file": layered.file.as_ref().map(|f| f.display().to_string()),
            "command": name,
            "settings": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &layered.file {
        Some(f) => println!("config file {}: valid", f.display()),
        None => println!("no config file (--config / BUCKET_CONFIG)"),
    }
    println!("effective settings of `{name}` (flag > environment > file > default):");
    let kw = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let vw = settings
        .iter()
        .map(|s| s.value.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(0)
        .min(60);
    for s in &settings {
        println!(
            "  {:<kw$}  {:<vw$}  {}",
            s.key,
            match s.value.as_deref() {
                None => "-",
                Some("") => "\"\"",
                Some(v) => v,
            },
            s.source
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<config::Layered, ConfigError> {
        config::parse(Cli::command(), args.iter().copied())
    }

    #[test]
    fn the_shipped_config_file_checks_clean_for_every_table() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/bucket.toml");
        let doc: toml::Table = std::fs::read_to_string(file)
            .expect("deploy/bucket.toml")
            .parse()
            .expect("TOML");
        let mut paths = Vec::new();
        fn tables(t: &toml::Table, prefix: &[String], out: &mut Vec<Vec<String>>) {
            for (k, v) in t {
                if let Some(sub) = v.as_table() {
                    let mut p = prefix.to_vec();
                    p.push(k.clone());
                    if k != config::COMMON_TABLE && sub.values().any(|v| !v.is_table()) {
                        out.push(p.clone());
                    }
                    tables(sub, &p, out);
                }
            }
        }
        tables(&doc, &[], &mut paths);
        assert!(paths.len() > 3, "the example configures several commands");
        for path in paths {
            let mut argv = vec!["bucket", "--config", file];
            argv.extend(path.iter().map(String::as_str));
            // Required flags of tools are not the file's business.
            if path == ["keys", "generate"] {
                continue;
            }
            let l = parse(&argv).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            Cli::from_arg_matches(&l.matches).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(
                l.settings()
                    .iter()
                    .any(|s| matches!(s.source, config::Source::File(_))),
                "{path:?}: the file sets something"
            );
        }
    }

    #[test]
    fn file_values_reach_the_typed_arguments() {
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("b.toml");
        std::fs::write(
            &f,
            "[common]\nbrokers = \"common:9092\"\n\
             [gate]\ncommit-interval-ms = 7\naccepted-per-product = true\n\
             [sink.purge]\nwindow = \"30d\"\ndry-run = true\n",
        )
        .expect("write");
        let f = f.display().to_string();
        let l = parse(&["bucket", "--config", &f, "gate", "--max-batch", "9"]).expect("parse");
        let Command::Gate(g) = Cli::from_arg_matches(&l.matches).expect("cli").command else {
            panic!("not gate")
        };
        assert_eq!(g.kafka.brokers, "common:9092");
        assert_eq!(g.commit_interval_ms, 7);
        assert_eq!(g.max_batch, 9);
        assert!(g.accepted_per_product);
        assert_eq!(g.group, "bucket-gate");
        let l = parse(&["bucket", "--config", &f, "sink", "purge"]).expect("parse");
        let Command::Sink(SinkArgs {
            cmd: Some(SinkCmd::Purge {
                window, dry_run, ..
            }),
            ..
        }) = Cli::from_arg_matches(&l.matches).expect("cli").command
        else {
            panic!("not sink purge")
        };
        assert_eq!(window, "30d");
        assert!(dry_run);
    }

    #[test]
    fn config_check_takes_its_own_flags_before_the_command() {
        let l = parse(&[
            "bucket",
            "config",
            "check",
            "--json",
            "gate",
            "--brokers",
            "x:1",
        ])
        .expect("parse");
        let Command::Config(ConfigCmd::Check { json, command }) =
            Cli::from_arg_matches(&l.matches).expect("cli").command
        else {
            panic!("not config check")
        };
        assert!(json);
        assert_eq!(command, ["gate", "--brokers", "x:1"]);
    }
}
