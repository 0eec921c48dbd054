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
        /// The proof bundle (JSON).
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
            let o = bhiv_bucket::audit::verify::VerifyOptions {
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
    let verified = ProofBundle::from_json(&text).and_then(|b| verify_bundle(&b, &keys));
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
