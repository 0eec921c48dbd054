//! `bucket policy`: validate a policy file, print its version, and show its approvals: who
//! signed it and whether it would be loaded over a given active policy (or by the operator's pin
//! at start). Also the approval flags `bucket gate` and `bucket audit verify` share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use bhiv_bucket::core::approvals::{ApproverSet, Verdict};
use bhiv_bucket::policy::approvals::{self, Approvals};
use clap::{Args, Subcommand};
use tracing::warn;

use super::runtime::{LOG_TARGET, load_policy};

/// `bucket policy`: check a policy file.
#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Validate a policy file, print its version and its approvals (<FILE>.approvals/*.sig);
    /// with --active or --approvers, exit 1 unless it would be loaded.
    Check {
        /// Policy file.
        #[arg(default_value = "deploy/policy.toml")]
        file: PathBuf,
        /// The policy in force: would FILE be loaded over it (k of its approvers signed)?
        #[arg(long, conflicts_with = "approvers")]
        active: Option<PathBuf>,
        #[command(flatten)]
        pin: ApprovalArgs,
    },
}

/// The operator's pin of policy approvals (docs/policy.md, "Approvals").
#[derive(Args, Clone, Debug)]
pub(crate) struct ApprovalArgs {
    /// Operator's pin: an OpenSSH allowed_signers file (or `name SHA256:…` lines) naming who
    /// must have signed the start policy. Given, policy changes need approvals (k of the active
    /// policy's [approvals]); absent, approvals are not enforced.
    #[arg(long, env = "BUCKET_POLICY_APPROVERS")]
    pub(crate) approvers: Option<PathBuf>,
    /// Distinct pinned approvers whose signatures the start policy needs.
    #[arg(long, env = "BUCKET_POLICY_APPROVALS_REQUIRED", default_value_t = approvals::DEFAULT_REQUIRED)]
    pub(crate) approvals_required: usize,
}

impl ApprovalArgs {
    /// The pinned approver set, when a pin is given.
    pub(crate) fn pin(&self) -> Result<Option<ApproverSet>> {
        self.approvers
            .as_deref()
            .map(|p| approvals::read_pin(p, self.approvals_required))
            .transpose()
            .map_err(Into::into)
    }

    /// What the gate enforces, after checking its start policy (`path`, content `text`) against
    /// the pin; an unapproved start policy is an error (the gate does not start).
    pub(crate) fn at_start(&self, path: &Path, text: &str) -> Result<Approvals> {
        match self.pin()? {
            None => {
                warn!(target: LOG_TARGET, "policy approvals are NOT enforced: no pin (--approvers); any valid policy file loads");
                Ok(Approvals::off())
            }
            Some(pin) => {
                let a = Approvals::at_start(pin, path, text)?;
                if let Some(r) = a.start_record() {
                    let who: Vec<&str> = r.signatures.iter().map(|s| s.approver.as_str()).collect();
                    tracing::info!(target: LOG_TARGET, approved_by = ?who, required = r.required, "start policy approved by the pinned approvers");
                }
                Ok(a)
            }
        }
    }
}

fn print_verdict(v: &Verdict) {
    for c in &v.counted {
        println!("  ok    {}: {} ({})", c.file, c.approver, c.fingerprint);
    }
    for f in &v.failed {
        println!("  FAIL  {}: {}", f.file, f.reason);
    }
    println!(
        "  {} of {} required distinct approvals",
        v.counted.len(),
        v.required
    );
}

/// Validates a policy file and prints its version, size and approvals.
pub(crate) fn run(cmd: PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Check { file, active, pin } => {
            let p = load_policy(&file)?;
            println!(
                "policy {} is valid: version {}, {} products, {} classes",
                file.display(),
                p.version,
                p.products.len(),
                p.classes.len()
            );
            match &p.approvals {
                Some(s) => println!(
                    "it names {} approvers for the next policy, {} required: {}",
                    s.approvers.len(),
                    s.required,
                    s.approvers
                        .iter()
                        .map(|a| format!("{} ({})", a.name, a.fingerprint()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => println!("it names no approvers: the policy after it needs no approvals"),
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (set, under) = match (&active, pin.pin()?) {
                (Some(a), _) => {
                    let active = load_policy(a)?;
                    match active.approvals {
                        Some(s) => (s, format!("the active policy {}", a.display())),
                        None => {
                            println!(
                                "would be loaded over {}: it names no approvers",
                                a.display()
                            );
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                }
                (None, Some(s)) => (s, "the operator's pin (start policy)".to_string()),
                (None, None) => {
                    println!(
                        "signatures in {} (checked against its own approvers, for information \
                         only: a policy is never approved by itself; use --active or --approvers):",
                        approvals::approvals_dir(&file).display()
                    );
                    if let Some(s) = &p.approvals {
                        print_verdict(&approvals::judge(s, &file, &text)?);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            println!(
                "signatures in {} under {under}:",
                approvals::approvals_dir(&file).display()
            );
            let verdict = approvals::judge(&set, &file, &text)?;
            print_verdict(&verdict);
            if verdict.approved() {
                println!("APPROVED: it would be loaded");
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "NOT APPROVED: it would be refused (POLICY_REFUSED), the old policy stays"
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
