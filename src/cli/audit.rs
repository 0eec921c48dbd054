//! `bucket audit`: verify the audit chains and checkpoints; follow the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bhiv_bucket::audit::tail::{TailOptions, tail};
use bhiv_bucket::gate::TopicNames;
use clap::Subcommand;

use super::args::{KafkaArgs, RegistryArgs, TopicArgs};
use super::runtime::load_policy;

/// `bucket audit`: verify or tail the audit log.
#[derive(Subcommand)]
pub(crate) enum AuditCmd {
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
