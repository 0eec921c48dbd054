//! `bucket audit`: verify the audit chains and checkpoints; follow the audit log; check a proof
//! bundle offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bhiv_bucket::audit::tail::{TailOptions, tail};
use bhiv_bucket::gate::TopicNames;
use clap::Subcommand;

use super::args::{KafkaArgs, RegistryArgs, TopicArgs};
use super::runtime::load_policy;

/// `bucket audit`: verify or tail the audit log, or check a proof bundle.
#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Keep every audit partition's transparency log as C2SP tiles under DIR/<partition>/,
    /// publishing the gate's signed checkpoints once the tiles agree (docs/audit.md, "Proofs").
    Tiles {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        #[command(flatten)]
        registry: RegistryArgs,
        /// The tiles directory (tiles, checkpoints, decision index, resume state).
        #[arg(long, env = "BUCKET_TLOG_DIR")]
        dir: PathBuf,
        /// Keep following the audit topic (else stop at the end of every partition).
        #[arg(long)]
        follow: bool,
        /// The gate's note verifier key(s): when given, a checkpoint must be signed by one.
        #[arg(
            long = "key",
            value_name = "PUBKEY",
            env = "BUCKET_AUDIT_VERIFIER_KEY",
            value_delimiter = ','
        )]
        keys: Vec<String>,
        /// Serve Prometheus metrics (bucket_tlog_*) on this address.
        #[arg(long, env = "BUCKET_TLOG_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Save the resume point at least this often while links keep coming (ms).
        #[arg(long, env = "BUCKET_TLOG_SAVE_EVERY_MS", default_value_t = 1000)]
        save_every_ms: u64,
    },
    /// Print the proof bundle of one decision (by intent id, or product + artifact + accepted
    /// version) from a tiles directory: the record, its inclusion proof, the checkpoint.
    Prove {
        /// The tiles directory kept by `bucket audit tiles`.
        #[arg(long, env = "BUCKET_TLOG_DIR")]
        dir: PathBuf,
        /// The decision's intent id.
        #[arg(long, conflicts_with_all = ["product", "artifact", "version"])]
        intent_id: Option<String>,
        /// Product id (with --artifact and --version: the decision that accepted that version).
        #[arg(long, requires_all = ["artifact", "version"])]
        product: Option<String>,
        /// Artifact id.
        #[arg(long, requires_all = ["product", "version"])]
        artifact: Option<String>,
        /// Accepted version.
        #[arg(long, requires_all = ["product", "artifact"])]
        version: Option<i64>,
        /// Write the bundle to this file (else stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `json` (bhiv-bucket-proof/v1) or `tlog-proof` (the C2SP text, record in `extra`;
        /// the smaller). check-proof reads both.
        #[arg(long, value_enum, default_value_t = ProofFormat::Json)]
        format: ProofFormat,
    },
    /// Follow the published checkpoints and alert (exit 1, error line, metric, TLOG_INCONSISTENT
    /// on bucket.control with --announce) on one not consistent with the last accepted.
    Witness {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// The witness's state: the last accepted checkpoint of each partition.
        #[arg(long, env = "BUCKET_WITNESS_DIR")]
        dir: PathBuf,
        /// Where checkpoints and tiles are published: a tiles directory, or the read API's
        /// base URL (http://host:port).
        #[arg(long, env = "BUCKET_TLOG_DIR")]
        tiles: PathBuf,
        /// Bearer token for the read API (any product's).
        #[arg(long, env = "BUCKET_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The gate's note verifier key(s).
        #[arg(
            long = "key",
            value_name = "PUBKEY",
            env = "BUCKET_AUDIT_VERIFIER_KEY",
            value_delimiter = ',',
            required = true
        )]
        keys: Vec<String>,
        /// Keep looking every --interval-ms (else look once).
        #[arg(long)]
        follow: bool,
        /// Pause between looks with --follow (ms).
        #[arg(long, env = "BUCKET_WITNESS_INTERVAL_MS", default_value_t = 2000)]
        interval_ms: u64,
        /// Publish a TLOG_INCONSISTENT governance event to bucket.control on an alert.
        #[arg(long)]
        announce: bool,
        /// Serve Prometheus metrics (bucket_witness_*) on this address.
        #[arg(long, env = "BUCKET_WITNESS_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Print the note verifier key (`--key` of check-proof) of the gate's audit key, from its
    /// public key as in the policy's [audit] keys.
    VerifierKey {
        /// Deployment name: the key name is `<deployment>/bucket.audit` (docs/audit.md).
        #[arg(long, env = "BUCKET_DEPLOYMENT")]
        deployment: String,
        /// Base64 Ed25519 public key (`public_key` of the policy's [audit] keys).
        #[arg(long, env = "BUCKET_AUDIT_PUBLIC_KEY")]
        public_key: String,
    },
    /// Check a proof bundle offline, with no Kafka: the checkpoint is signed by the gate's key
    /// and the record is in the tree it names (docs/audit.md, "Proofs"); exits 1 if not.
    CheckProof {
        /// The proof bundle (JSON, or a C2SP tlog-proof as `prove --format tlog-proof` writes).
        bundle: PathBuf,
        /// The gate's note verifier key, `name+keyid+base64(0x01||pubkey)`; several, comma
        /// separated or repeated, while keys rotate.
        #[arg(
            long = "key",
            value_name = "PUBKEY",
            env = "BUCKET_AUDIT_VERIFIER_KEY",
            value_delimiter = ',',
            required = true
        )]
        keys: Vec<String>,
        /// Print the verified facts as JSON (origin, tree size, index, record in base64).
        #[arg(long)]
        json: bool,
    },
    /// Verify every chain, checkpoint signature and completeness against bucket.intents;
    /// exits 1 and names the partition and offset of each break.
    Verify {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        #[command(flatten)]
        registry: RegistryArgs,
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
        /// The gate's pin of policy approvals: start policies are re-checked against it.
        #[command(flatten)]
        approvals: super::policy::ApprovalArgs,
    },
    /// Follow the audit log (filters, human or JSON lines).
    Tail {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        #[command(flatten)]
        registry: RegistryArgs,
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

/// Verifies the audit log (exit 1 on any break) or follows it.
pub(crate) fn run(cmd: AuditCmd, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    match cmd {
        AuditCmd::CheckProof { bundle, keys, json } => check_proof(&bundle, &keys, json),
        AuditCmd::Tiles {
            kafka,
            topics: suffix,
            registry,
            dir,
            follow,
            keys,
            metrics_addr,
            save_every_ms,
        } => {
            use bhiv_bucket::audit::tiles::{TilesError, TilesMetrics, TilesOptions, run};
            let o = TilesOptions {
                brokers: kafka.brokers,
                topic: TopicNames::with_suffix(&suffix.topic_suffix).audit,
                dir,
                follow,
                keys: parse_keys(&keys)?,
                save_every: std::time::Duration::from_millis(save_every_ms.max(1)),
            };
            let metrics = TilesMetrics::default();
            if let Some(addr) = metrics_addr {
                let mut r = prometheus_client::registry::Registry::default();
                metrics.register(&mut r);
                serve_metrics(rt, addr, r)?;
            }
            let shutdown = super::runtime::shutdown_on_signals(rt);
            let mut relearn = || super::runtime::audit_reader(rt, &registry).ok();
            let reader = super::runtime::audit_reader(rt, &registry)?;
            match run(&o, reader, &mut relearn, &metrics, &|| {
                shutdown.is_cancelled()
            }) {
                Ok(summary) => {
                    for (p, s) in summary {
                        println!(
                            "partition {p}: {} leaves ({} appended), checkpoint published at {}",
                            s.size, s.appended, s.published
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ (TilesError::Mismatch { .. } | TilesError::BadNote { .. })) => {
                    eprintln!("ERROR: {e}");
                    Ok(ExitCode::from(3))
                }
                Err(e) => Err(e.into()),
            }
        }
        AuditCmd::Prove {
            dir,
            intent_id,
            product,
            artifact,
            version,
            out,
            format,
        } => {
            let key = decision_key(intent_id, product, artifact, version)?;
            prove(&dir, &key, out.as_deref(), format)
        }
        AuditCmd::Witness {
            kafka,
            topics,
            dir,
            tiles,
            token,
            keys,
            follow,
            interval_ms,
            announce,
            metrics_addr,
        } => {
            let w = WitnessRun {
                dir,
                tiles,
                token,
                keys: parse_keys(&keys)?,
                follow,
                interval: std::time::Duration::from_millis(interval_ms.max(10)),
                announce: announce.then_some((kafka, topics)),
                metrics_addr,
            };
            witness(rt, w)
        }
        AuditCmd::VerifierKey {
            deployment,
            public_key,
        } => {
            use base64::Engine;
            let pk: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(public_key.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--public-key is not a base64 32-byte Ed25519 key")?;
            let name = bhiv_bucket::tlog::checkpoint::key_name(&deployment);
            let v = bhiv_bucket::tlog::NoteVerifier::from_ed25519(&name, &pk)?;
            println!("{}", v.to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Verify {
            kafka,
            topics: suffix,
            registry,
            policy,
            group,
            no_completeness,
            json,
            resume,
            save,
            approvals,
        } => {
            let names = TopicNames::with_suffix(&suffix.topic_suffix);
            let keys = load_policy(&policy)?.audit_keys;
            let resume = match resume {
                None => Default::default(),
                Some(f) => serde_json::from_str(&std::fs::read_to_string(&f)?)
                    .with_context(|| format!("reading {}", f.display()))?,
            };
            let o = bhiv_bucket::audit::verify_log::VerifyOptions {
                brokers: kafka.brokers,
                audit_topic: names.audit,
                intents_topic: (!no_completeness).then(|| names.intents.clone()),
                control_topic: (!no_completeness).then(|| names.control.clone()),
                gate_group: group,
                keys,
                resume,
                reader: super::runtime::audit_reader(rt, &registry)?,
                progress: !json,
                approvers: approvals.pin()?,
            };
            let (report, phases) = bhiv_bucket::audit::verify_log::verify_timed(&o)?;
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
                println!(
                    "approvals: {} policy loads re-checked against the approvers then in force, \
                     {} loaded without approvals enforced, {} not traceable before --resume",
                    report.approvals.verified,
                    report.approvals.unenforced,
                    report.approvals.before_resume
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
        AuditCmd::Tail {
            kafka,
            topics: suffix,
            registry,
            from_beginning,
            until_end,
            json,
            product,
            artifact,
            integration,
            outcome,
            reason,
            summary,
        } => {
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
            let mut relearn = || super::runtime::audit_reader(rt, &registry).ok();
            tail(
                &o,
                super::runtime::audit_reader(rt, &registry)?,
                &mut relearn,
                &mut std::io::stdout().lock(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `bucket audit check-proof`: the check is `tlog::verify_bundle`; this reads the files and
/// says what was proven, or why not.
fn check_proof(bundle: &std::path::Path, keys: &[String], json: bool) -> Result<ExitCode> {
    use bhiv_bucket::tlog::{NoteVerifier, ProofBundle, verify_bundle};
    let keys = keys
        .iter()
        .map(|k| NoteVerifier::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .context("--key")?;
    let text =
        std::fs::read_to_string(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let verified = ProofBundle::parse(&text).and_then(|b| verify_bundle(&b, &keys));
    match verified {
        Ok(v) if json => {
            use base64::Engine;
            let record = base64::engine::general_purpose::STANDARD.encode(&v.record);
            let out = serde_json::json!({
                "ok": true, "origin": v.origin, "tree_size": v.tree_size,
                "index": v.index, "record": record,
            });
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(v) => {
            println!(
                "OK: record {} ({} bytes) is in {} at tree size {}; checkpoint signed by {}",
                v.index,
                v.record.len(),
                v.origin,
                v.tree_size,
                keys.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            } else {
                eprintln!("FAIL: {}: {e}", bundle.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Parses note verifier keys.
fn parse_keys(keys: &[String]) -> Result<Vec<bhiv_bucket::tlog::NoteVerifier>> {
    keys.iter()
        .map(|k| bhiv_bucket::tlog::NoteVerifier::parse(k.trim()))
        .collect::<Result<Vec<_>, _>>()
        .context("--key")
}

/// Serves `registry` at `GET /metrics` on `addr`, on the runtime, for the life of the process.
fn serve_metrics(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    registry: prometheus_client::registry::Registry,
) -> Result<()> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("binding the metrics address {addr}"))?;
    let registry = std::sync::Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

/// The two encodings `bucket audit prove` writes (docs/audit.md, "A proof bundle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProofFormat {
    /// `bhiv-bucket-proof/v1` JSON.
    Json,
    /// C2SP `tlog-proof@v1` text with the record in its `extra` line.
    TlogProof,
}

/// The index key `prove` was given: an intent id, or product + artifact + accepted version.
fn decision_key(
    intent_id: Option<String>,
    product: Option<String>,
    artifact: Option<String>,
    version: Option<i64>,
) -> Result<bhiv_bucket::audit::tlog_index::Key> {
    use bhiv_bucket::audit::tlog_index::Key;
    match (intent_id, product, artifact, version) {
        (Some(id), None, None, None) => Ok(Key::Intent(id)),
        (None, Some(product), Some(artifact), Some(version)) => Ok(Key::Version {
            product,
            artifact,
            version,
        }),
        _ => anyhow::bail!("give --intent-id, or --product, --artifact and --version"),
    }
}

/// `bucket audit prove`: looks the decision up in the tiles service's index and prints its
/// bundle (stdout or --out), with where it is and what it cost on stderr.
fn prove(
    dir: &std::path::Path,
    key: &bhiv_bucket::audit::tlog_index::Key,
    out: Option<&std::path::Path>,
    format: ProofFormat,
) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let (bundle, hit, others) = match bhiv_bucket::audit::prove::prove_key(dir, key, None) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("FAIL: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let took = start.elapsed();
    let text = match format {
        ProofFormat::Json => bundle.to_json(),
        ProofFormat::TlogProof => bundle.to_tlog_proof(),
    };
    match out {
        Some(f) => std::fs::write(f, &text).with_context(|| format!("writing {}", f.display()))?,
        None if text.ends_with('\n') => print!("{text}"),
        None => println!("{text}"),
    }
    eprintln!(
        "proof: partition {} seq {} against tree size {}: {} bytes, {} proof hashes, {:.1} ms",
        hit.partition,
        hit.seq,
        bhiv_bucket::tlog::TreeHead::parse(&bhiv_bucket::tlog::note::unverified_text(
            &bundle.checkpoint
        )?)?
        .size,
        text.len(),
        bundle.inclusion_proof.len(),
        took.as_secs_f64() * 1000.0
    );
    for o in others {
        eprintln!(
            "note: another decision with this key at partition {} seq {} (prove it with the \
             API or by its own key)",
            o.partition, o.seq
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `bucket audit witness` was asked to do.
struct WitnessRun {
    dir: PathBuf,
    tiles: PathBuf,
    token: Option<String>,
    keys: Vec<bhiv_bucket::tlog::NoteVerifier>,
    follow: bool,
    interval: std::time::Duration,
    announce: Option<(KafkaArgs, TopicArgs)>,
    metrics_addr: Option<std::net::SocketAddr>,
}

/// `bucket audit witness`: looks once (or every interval with --follow); exit 1 on an alert,
/// after the error line, the metric and (--announce) the control event.
fn witness(rt: &tokio::runtime::Runtime, w: WitnessRun) -> Result<ExitCode> {
    use bhiv_bucket::audit::witness::{
        CheckpointSource, DirSource, HttpSource, Outcome, Witness, WitnessMetrics, is_url,
    };
    let source: Box<dyn CheckpointSource> = if is_url(&w.tiles) {
        Box::new(HttpSource {
            base: w.tiles.display().to_string(),
            token: w
                .token
                .clone()
                .context("--token (BUCKET_API_TOKEN) is needed to read the API")?,
            handle: rt.handle().clone(),
            client: reqwest::Client::builder().build()?,
        })
    } else {
        Box::new(DirSource {
            dir: w.tiles.clone(),
        })
    };
    let metrics = WitnessMetrics::default();
    if let Some(addr) = w.metrics_addr {
        let mut r = prometheus_client::registry::Registry::default();
        metrics.register(&mut r);
        serve_metrics(rt, addr, r)?;
    }
    let witness = Witness {
        keys: w.keys,
        state: w.dir,
    };
    let shutdown = super::runtime::shutdown_on_signals(rt);
    loop {
        let mut pending = false;
        for (p, outcome) in witness.check_all(source.as_ref(), &metrics)? {
            match outcome {
                Outcome::Nothing => {}
                Outcome::Unchanged(n) if !w.follow => println!("partition {p}: unchanged at {n}"),
                Outcome::Unchanged(_) => {}
                Outcome::Accepted { from, to } => {
                    println!("partition {p}: accepted {from} -> {to}");
                }
                Outcome::Pending(why) => {
                    pending = true;
                    eprintln!("partition {p}: cannot check yet: {why}");
                }
                Outcome::Alert(a) => {
                    eprintln!(
                        "ALERT partition {p}: {} (accepted {:?}, offered {:?})",
                        a.why, a.accepted, a.offered
                    );
                    if let Some((kafka, topics)) = &w.announce {
                        rt.block_on(super::runtime::announce(
                            kafka,
                            topics,
                            "TLOG_INCONSISTENT",
                            "bucket audit witness",
                            serde_json::to_value(&a)?,
                        ))?;
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        if !w.follow {
            return Ok(if pending {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
        let until = std::time::Instant::now() + w.interval;
        while std::time::Instant::now() < until {
            if shutdown.is_cancelled() {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
