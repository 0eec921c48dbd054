//! `bucket`: one binary for the gate, the sink and the tools around them.

mod cli;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bhiv_bucket::audit::tail::{TailOptions, tail};
use bhiv_bucket::bench::BenchOptions;
use bhiv_bucket::bench::sign::SigAlg;
use bhiv_bucket::config::{self, ConfigError};
use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::produce::{IntentLine, IntentProducer, Planned};
use bhiv_bucket::registry::Registry;
use bhiv_bucket::topics::{self, TopicStatus};
use clap::{Args, CommandFactory, FromArgMatches, Subcommand};
use cli::args::{KafkaArgs, RegistryArgs, TopicArgs};
use cli::runtime::{announce, init_tracing, init_tracing_to_file, load_policy};
use cli::{Cli, Command};
use tracing::error;

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

fn run(cli: Cli) -> Result<ExitCode> {
    bhiv_bucket::kafka_security::install(cli.kafka_security.resolve()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Gate(a) => cli::gate::run(a, &rt),
        Command::Sink(a) => cli::sink::run(a, &rt),
        Command::Api(a) => cli::api::run(a, &rt),
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
