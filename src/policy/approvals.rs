//! Policy approvals, the shell side: reads the detached signatures beside a policy
//! (`<policy>.approvals/*.sig`) and the operator's pin (an OpenSSH `allowed_signers` file), runs
//! the pure rule (`core::approvals::evaluate`) and builds the evidence written into the audit
//! chain (`audit::approvals::ApprovalRecord`). Used by the gate at start and on every reload,
//! and by `bucket policy check`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::audit::approvals::{ApprovalRecord, PIN};
use crate::core::Policy;
use crate::core::approvals::{ApproverSet, SignatureFile, Verdict, evaluate};

/// Approvals of pinned approvers a start policy needs when the operator says nothing else.
pub const DEFAULT_REQUIRED: usize = 2;

/// Why approvals could not be read or a start policy is not approved.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalFileError {
    /// A file or folder could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The pin is not a valid approver set.
    #[error("pin {path}: {source}")]
    Pin {
        /// The pin file.
        path: PathBuf,
        /// What is wrong.
        source: crate::core::approvals::ApprovalsError,
    },
    /// The start policy lacks the pinned approvals.
    #[error("policy {path} is not approved by the pinned approvers: {summary}")]
    NotApproved {
        /// The policy file.
        path: PathBuf,
        /// Who signed, and what did not count.
        summary: String,
    },
}

/// The folder of detached signatures of `policy`: `<policy>.approvals/`.
pub fn approvals_dir(policy: &Path) -> PathBuf {
    let mut name = policy.as_os_str().to_os_string();
    name.push(".approvals");
    PathBuf::from(name)
}

/// The `*.sig` files of `policy`'s approvals folder, by name (none when the folder is absent).
pub fn read_signatures(policy: &Path) -> Result<Vec<SignatureFile>, ApprovalFileError> {
    let dir = approvals_dir(policy);
    let io = |path: &Path, source| ApprovalFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io(&dir, e))?.path();
        if path.extension().is_none_or(|e| e != "sig") || !path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Bounded read: a signature is small; anything larger is refused by the rule.
        let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
        let bytes = if meta.len() > crate::core::approvals::MAX_SIGNATURE_BYTES as u64 {
            vec![0; crate::core::approvals::MAX_SIGNATURE_BYTES + 1]
        } else {
            std::fs::read(&path).map_err(|e| io(&path, e))?
        };
        files.push(SignatureFile { name, bytes });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Reads the operator's pin: an `allowed_signers` file, `required` approvals needed.
pub fn read_pin(path: &Path, required: usize) -> Result<ApproverSet, ApprovalFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ApprovalFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ApproverSet::parse_allowed_signers(&text, required).map_err(|source| ApprovalFileError::Pin {
        path: path.to_path_buf(),
        source,
    })
}

/// The signatures of `policy` (a file with content `text`) judged under `set`.
pub fn judge(set: &ApproverSet, policy: &Path, text: &str) -> Result<Verdict, ApprovalFileError> {
    Ok(evaluate(set, text.as_bytes(), &read_signatures(policy)?))
}

/// Whether approvals are enforced, and the approval of the policy the gate started with.
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    /// The operator's pin; None: approvals are not enforced (no `--approvers`).
    pin: Option<ApproverSet>,
    /// The start policy's approval record (under the pin), for the audit chain.
    start: Option<ApprovalRecord>,
}

/// What a reload check decided.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadCheck {
    /// Load it; the value is the approval evidence for the `POLICY_LOADED` detail.
    Load(Value),
    /// Refuse it: why, and the evidence for the `POLICY_REFUSED` detail.
    Refuse(String, Value),
}

impl Approvals {
    /// No enforcement: every valid policy loads, as before approvals existed.
    pub fn off() -> Approvals {
        Approvals::default()
    }

    /// Checks the start policy (file `path`, content `text`) against the operator's `pin`:
    /// approvals are enforced from here on, or the gate must not start.
    pub fn at_start(
        pin: ApproverSet,
        path: &Path,
        text: &str,
    ) -> Result<Approvals, ApprovalFileError> {
        let verdict = judge(&pin, path, text)?;
        if !verdict.approved() {
            return Err(ApprovalFileError::NotApproved {
                path: path.to_path_buf(),
                summary: verdict.summary(),
            });
        }
        let start = ApprovalRecord::new(text, PIN, &pin, &verdict, true);
        Ok(Approvals {
            pin: Some(pin),
            start: Some(start),
        })
    }

    /// True when policy changes need approvals (the gate was given a pin).
    pub fn enforced(&self) -> bool {
        self.pin.is_some()
    }

    /// The start policy's approval (under the pin), when enforced.
    pub fn start_record(&self) -> Option<&ApprovalRecord> {
        self.start.as_ref()
    }

    /// Decides whether the policy `text` read from `path` may replace `active`: it must carry
    /// valid signatures of at least `required` distinct approvers of `active`.
    pub fn check_reload(&self, active: &Policy, path: &Path, text: &str) -> ReloadCheck {
        if self.pin.is_none() {
            return ReloadCheck::Load(json!({"approval": {
                "enforced": false,
                "why": "approvals are not enforced: the gate was started without a pin (--approvers)",
            }}));
        }
        let start = self.start.clone();
        let Some(set) = &active.approvals else {
            return ReloadCheck::Load(json!({
                "approval": {
                    "enforced": false,
                    "why": format!("the active policy {} names no approvers: an approved policy \
                                    turned the requirement off", active.version),
                },
                "start_approval": start,
            }));
        };
        let verdict = match judge(set, path, text) {
            Ok(v) => v,
            Err(e) => {
                return ReloadCheck::Refuse(
                    format!("policy not approved: {e}"),
                    json!({"approval": {"enforced": true, "error": e.to_string()}}),
                );
            }
        };
        if verdict.approved() {
            let record = ApprovalRecord::new(text, &active.version, set, &verdict, true);
            ReloadCheck::Load(json!({"approval": record, "start_approval": start}))
        } else {
            let record = ApprovalRecord::new(text, &active.version, set, &verdict, false);
            ReloadCheck::Refuse(
                format!(
                    "policy not approved by the approvers of the active policy: {}",
                    verdict.summary()
                ),
                json!({"approval": record}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
    }

    /// The shipped policy carries the approvals the demo pin requires: after editing
    /// `deploy/policy.toml`, re-sign it with `deploy/demo/approvers/sign.sh` (demo keys).
    #[test]
    fn the_shipped_policy_is_approved_by_the_demo_pin() {
        let path = deploy().join("policy.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let pin = read_pin(&deploy().join("demo/approvers/allowed_signers"), 2).unwrap();
        let verdict = judge(&pin, &path, &text).unwrap();
        assert!(
            verdict.approved(),
            "deploy/policy.toml is not approved ({}): run deploy/demo/approvers/sign.sh",
            verdict.summary()
        );
        let (policy, _) = crate::policy::file::load(&path).unwrap();
        let own = policy
            .approvals
            .expect("the shipped policy names approvers");
        let ids = |s: &ApproverSet| -> Vec<(String, String)> {
            s.approvers
                .iter()
                .map(|a| (a.name.clone(), a.fingerprint()))
                .collect()
        };
        assert_eq!(
            ids(&own),
            ids(&pin),
            "the policy names the pinned demo approvers"
        );
        assert_eq!(own.required, 2);
    }
}
