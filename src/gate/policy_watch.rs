//! Hot policy reload: on SIGHUP or when the file's bytes change, the policy is re-read and
//! validated; an invalid file is refused with a precise error and the old policy stays in force.
//! Every outcome becomes a governance event in the audit chains (see `session`). When approvals
//! are enforced (the gate was started with a pin), a valid file is loaded only if approvers of
//! the active policy signed its exact bytes (`policy_approvals`); SIGHUP and a change of the file
//! or of its signatures go through the same check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tracing::{error, info};

use crate::core::Policy;
use crate::policy::approvals::{Approvals, ReloadCheck, read_signatures};

/// What a reload check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// A new valid policy is in force.
    Loaded {
        /// Version before.
        from: String,
        /// Version now.
        to: String,
        /// Readable line diff of the file.
        diff: Vec<String>,
        /// Approval evidence for the audit detail (`approval`, `start_approval`).
        approval: Option<serde_json::Value>,
    },
    /// The file changed but is invalid; the old policy stays.
    Refused {
        /// Version still in force.
        kept: String,
        /// Why the new file was refused.
        error: String,
        /// Approval evidence (who signed, what did not count), when approvals refused it.
        approval: Option<serde_json::Value>,
    },
}

/// Watches the policy file and the SIGHUP flag.
pub struct PolicyWatch {
    path: Option<PathBuf>,
    sighup: Arc<AtomicBool>,
    last_check: Instant,
    /// SHA-256 of the bytes last looked at (valid or not), to react once per change.
    last_seen: String,
    /// Policy texts by version, for diffs.
    texts: BTreeMap<String, String>,
    current: Arc<Policy>,
    /// Whether changes need approvals, and the start policy's approval.
    approvals: Approvals,
}

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Line diff: removed lines with "- ", added lines with "+ ", in file order.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let mut out: Vec<String> = old_lines
        .iter()
        .filter(|l| !new_lines.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        new_lines
            .iter()
            .filter(|l| !old_lines.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}

impl PolicyWatch {
    /// Starts watching; `text` is the file content `current` was parsed from, `approvals` says
    /// whether changes need approvals.
    pub fn new(
        path: Option<PathBuf>,
        sighup: Arc<AtomicBool>,
        current: Arc<Policy>,
        text: String,
        approvals: Approvals,
    ) -> PolicyWatch {
        let mut texts = BTreeMap::new();
        texts.insert(current.version.clone(), text);
        PolicyWatch {
            path,
            sighup,
            last_check: Instant::now(),
            last_seen: current.version.clone(),
            texts,
            current,
            approvals,
        }
    }

    /// The policy in force.
    pub fn current(&self) -> &Arc<Policy> {
        &self.current
    }

    /// The file text of a version this process loaded, for diffs.
    pub fn text_of(&self, version: &str) -> Option<&str> {
        self.texts.get(version).map(String::as_str)
    }

    /// Checks for a change (at most once a second unless SIGHUP was received).
    pub fn poll(&mut self) -> Option<Reload> {
        let hup = self.sighup.swap(false, Ordering::SeqCst);
        if !hup && self.last_check.elapsed() < CHECK_EVERY {
            return None;
        }
        self.last_check = Instant::now();
        let path = self.path.clone()?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                if hup {
                    error!(path = %path.display(), error = %e, "policy reload: cannot read file");
                }
                return None;
            }
        };
        // The file and its signatures: a signature added later is a change too.
        let mut digest = Sha256::new();
        digest.update(&bytes);
        if self.approvals.enforced() {
            for f in read_signatures(&path).unwrap_or_default() {
                digest.update(f.name.as_bytes());
                digest.update(&f.bytes);
            }
        }
        let seen = hex::encode(digest.finalize());
        if seen == self.last_seen && !hup {
            return None;
        }
        self.last_seen = seen;
        match crate::policy::file::load(&path) {
            Ok((policy, text)) if policy.version == self.current.version => {
                let _ = text;
                None
            }
            Ok((policy, text)) => {
                let approval = match self.approvals.check_reload(&self.current, &path, &text) {
                    ReloadCheck::Load(evidence) => evidence,
                    ReloadCheck::Refuse(error, evidence) => {
                        error!(error = %error, kept = %self.current.version, "policy reload refused; old policy stays in force");
                        return Some(Reload::Refused {
                            kept: self.current.version.clone(),
                            error,
                            approval: Some(evidence),
                        });
                    }
                };
                let from = self.current.version.clone();
                let diff = self
                    .texts
                    .get(&from)
                    .map(|old| line_diff(old, &text))
                    .unwrap_or_default();
                info!(from = %from, to = %policy.version, changes = diff.len(), "policy reloaded");
                self.texts.insert(policy.version.clone(), text);
                self.current = Arc::new(policy);
                Some(Reload::Loaded {
                    from,
                    to: self.current.version.clone(),
                    diff,
                    approval: Some(approval),
                })
            }
            Err(e) => {
                error!(error = %e, kept = %self.current.version, "policy reload refused; old policy stays in force");
                Some(Reload::Refused {
                    kept: self.current.version.clone(),
                    error: e.to_string(),
                    approval: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_removed_and_added_lines() {
        let d = line_diff("a\nb\nc\n", "a\nc\nd\n");
        assert_eq!(d, vec!["- b".to_string(), "+ d".to_string()]);
    }

    #[test]
    fn reloads_valid_changes_and_refuses_invalid_ones() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        let text = std::fs::read_to_string(deploy.join("policy.toml")).unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, &text).unwrap();
        std::os::unix::fs::symlink(deploy.join("demo"), dir.path().join("demo")).unwrap();
        let (policy, text) = crate::policy::file::load(&path).unwrap();
        let hup = Arc::new(AtomicBool::new(false));
        let mut w = PolicyWatch::new(
            Some(path.clone()),
            hup.clone(),
            Arc::new(policy),
            text.clone(),
            Approvals::off(),
        );
        hup.store(true, Ordering::SeqCst);
        assert_eq!(w.poll(), None, "unchanged file: nothing to do");
        std::fs::write(
            &path,
            text.replace("max_clock_skew_ms = 300000", "max_clock_skew_ms = 60000"),
        )
        .unwrap();
        hup.store(true, Ordering::SeqCst);
        match w.poll() {
            Some(Reload::Loaded { diff, .. }) => {
                assert_eq!(
                    diff,
                    vec![
                        "- max_clock_skew_ms = 300000",
                        "+ max_clock_skew_ms = 60000"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.current().limits.max_clock_skew_ms, 60000);
        std::fs::write(&path, "not = [valid").unwrap();
        hup.store(true, Ordering::SeqCst);
        assert!(matches!(w.poll(), Some(Reload::Refused { .. })));
        assert_eq!(
            w.current().limits.max_clock_skew_ms,
            60000,
            "old policy stays"
        );
    }
}
