//! Policy approvals in the audit chain: the evidence a `POLICY_LOADED` link carries (the
//! approval record of the new policy and of the gate's start policy), and its re-check by
//! `bucket audit verify`. Pure: the verifier feeds the governance details in, and at the end the
//! approvals are re-verified against the approver set in force at the time, which the log
//! itself establishes (the operator's pin for a start policy, the `[approvals]` of the policy
//! named by `approved_under` for a reload).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::approvals::{ApproverSet, SignatureFile, Verdict, evaluate};
use crate::core::events::POLICY_LOADED;

/// `approved_under` of a policy the operator's pin approved (a gate's start policy).
pub const PIN: &str = "pin";

/// An approver of the set in force, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverEntry {
    /// Name.
    pub name: String,
    /// `SHA256:…` fingerprint.
    pub fingerprint: String,
}

/// A signature that counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEntry {
    /// Signature file name.
    pub file: String,
    /// Approver it counted for.
    pub approver: String,
    /// `SHA256:…` fingerprint of the signing key.
    pub fingerprint: String,
    /// The armored `sshsig`, as read.
    pub signature: String,
}

/// A signature file that did not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedEntry {
    /// Signature file name.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// The evidence of one approval check, as written in the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Always true for a record (`{"enforced": false, "why": …}` stands for no check).
    pub enforced: bool,
    /// Version (SHA-256) of the policy checked.
    pub version: String,
    /// `"pin"`, or the version of the policy whose approvers counted.
    pub approved_under: String,
    /// Distinct approvals that were needed.
    pub required: usize,
    /// The approver set in force.
    pub approvers: Vec<ApproverEntry>,
    /// Signatures that counted.
    pub signatures: Vec<SignatureEntry>,
    /// Signature files that did not count, and why.
    pub refused: Vec<RefusedEntry>,
    /// Whether the policy was approved.
    pub approved: bool,
    /// The exact policy text (on loads: what the signatures cover; absent on refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_text: Option<String>,
}

impl ApprovalRecord {
    /// The record of `verdict`, for the policy `text` checked under `set`.
    pub fn new(
        text: &str,
        approved_under: &str,
        set: &ApproverSet,
        verdict: &Verdict,
        keep_text: bool,
    ) -> ApprovalRecord {
        ApprovalRecord {
            enforced: true,
            version: hex::encode(Sha256::digest(text.as_bytes())),
            approved_under: approved_under.to_string(),
            required: set.required,
            approvers: set
                .approvers
                .iter()
                .map(|a| ApproverEntry {
                    name: a.name.clone(),
                    fingerprint: a.fingerprint(),
                })
                .collect(),
            signatures: verdict
                .counted
                .iter()
                .map(|c| SignatureEntry {
                    file: c.file.clone(),
                    approver: c.approver.clone(),
                    fingerprint: c.fingerprint.clone(),
                    signature: c.signature.clone(),
                })
                .collect(),
            refused: verdict
                .failed
                .iter()
                .map(|f| RefusedEntry {
                    file: f.file.clone(),
                    reason: f.reason.clone(),
                })
                .collect(),
            approved: verdict.approved(),
            policy_text: keep_text.then(|| text.to_string()),
        }
    }

    /// Re-checks the recorded signatures over the recorded text under `set`.
    fn recheck(&self, set: &ApproverSet) -> Result<(), String> {
        let Some(text) = &self.policy_text else {
            return Err("the record carries no policy text".into());
        };
        if hex::encode(Sha256::digest(text.as_bytes())) != self.version {
            return Err("the recorded policy text is not the recorded version".into());
        }
        let files: Vec<SignatureFile> = self
            .signatures
            .iter()
            .map(|s| SignatureFile {
                name: s.file.clone(),
                bytes: s.signature.as_bytes().to_vec(),
            })
            .collect();
        let verdict = evaluate(set, text.as_bytes(), &files);
        if verdict.approved() {
            Ok(())
        } else {
            Err(verdict.summary())
        }
    }
}

/// Approvals seen while verifying, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApprovalSummary {
    /// Policy loads whose approvals were re-checked and hold.
    pub verified: u64,
    /// Policy loads made without approvals being enforced (no pin, or turned off).
    pub unenforced: u64,
    /// Loads approved under a policy whose own approval lies before the resumed heads.
    #[serde(default)]
    pub before_resume: u64,
}

/// One approval claim found in the chain, located.
#[derive(Debug, Clone)]
struct Claim {
    partition: i32,
    offset: i64,
    /// The version the event says was loaded (None for a start record).
    loaded: Option<(String, String)>,
    record: ApprovalRecord,
}

/// A problem found in the approvals: (partition, offset, kind, detail).
pub type ApprovalProblem = (i32, i64, &'static str, String);

/// The verifier's approvals state: claims collected in `observe`, settled in `finish`.
#[derive(Debug, Default)]
pub struct ApprovalAudit {
    pin: Option<ApproverSet>,
    /// Verification resumed from trusted heads: earlier approvals are not seen again.
    resumed: bool,
    claims: Vec<Claim>,
    problems: Vec<ApprovalProblem>,
    summary: ApprovalSummary,
}

fn detail_record(v: &Value) -> Result<Option<ApprovalRecord>, String> {
    match v {
        Value::Null => Ok(None),
        v if v.get("enforced") == Some(&Value::Bool(false)) => Ok(None),
        v => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

impl ApprovalAudit {
    /// Re-checks against `pin`, the operator's approvers of start policies (None: start records
    /// cannot be anchored and are reported).
    /// `resumed`: verification starts from trusted heads, so an approval that leans on one
    /// before them is counted, not reported.
    pub fn new(pin: Option<ApproverSet>, resumed: bool) -> ApprovalAudit {
        ApprovalAudit {
            pin,
            resumed,
            ..ApprovalAudit::default()
        }
    }

    /// Looks at one governance link.
    pub fn observe(&mut self, partition: i32, offset: i64, event_type: &str, detail: &str) {
        if event_type != POLICY_LOADED {
            return;
        }
        let d: Value = match serde_json::from_str(detail) {
            Ok(d) => d,
            Err(e) => {
                return self.problems.push((
                    partition,
                    offset,
                    "APPROVAL_UNREADABLE",
                    format!("POLICY_LOADED detail: {e}"),
                ));
            }
        };
        let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
        let loaded = (text("from").to_string(), text("to").to_string());
        for (key, loaded) in [("start_approval", None), ("approval", Some(loaded))] {
            match detail_record(d.get(key).unwrap_or(&Value::Null)) {
                Ok(Some(record)) => self.claims.push(Claim {
                    partition,
                    offset,
                    loaded,
                    record,
                }),
                Ok(None) if loaded.is_some() => self.summary.unenforced += 1,
                Ok(None) => {}
                Err(e) => self.problems.push((
                    partition,
                    offset,
                    "APPROVAL_UNREADABLE",
                    format!("{key}: {e}"),
                )),
            }
        }
    }

    /// Settles every claim: a start record under the pin, a reload under the approvers of the
    /// policy it names, once that policy's own approval is established. Returns the problems and
    /// the summary.
    pub fn finish(mut self) -> (Vec<ApprovalProblem>, ApprovalSummary) {
        // Versions whose approval holds → the approver set each puts in force (None: none).
        let mut known: BTreeMap<String, Option<ApproverSet>> = BTreeMap::new();
        let mut open: Vec<Claim> = Vec::new();
        for c in std::mem::take(&mut self.claims) {
            if let Some((from, to)) = &c.loaded
                && (c.record.version != *to || c.record.approved_under != *from)
            {
                self.problems.push((
                    c.partition,
                    c.offset,
                    "APPROVAL_MISMATCH",
                    format!(
                        "the approval is for {} under {}, the event loads {to} over {from}",
                        c.record.version, c.record.approved_under
                    ),
                ));
                continue;
            }
            if !c.record.approved {
                self.problems.push((
                    c.partition,
                    c.offset,
                    "APPROVAL_INVALID",
                    "a policy was loaded with an approval record that says not approved".into(),
                ));
                continue;
            }
            open.push(c);
        }
        loop {
            let before = open.len();
            let mut rest = Vec::new();
            for c in open {
                let set = if c.record.approved_under == PIN {
                    match &self.pin {
                        Some(p) => Some(p.clone()),
                        None => {
                            self.problems.push((
                                c.partition,
                                c.offset,
                                "APPROVAL_UNANCHORED",
                                format!(
                                    "policy {} was approved under the operator's pin; give the \
                                     pin (--approvers) to check it",
                                    c.record.version
                                ),
                            ));
                            continue;
                        }
                    }
                } else {
                    match known.get(&c.record.approved_under) {
                        Some(s) => s.clone(),
                        None => {
                            rest.push(c);
                            continue;
                        }
                    }
                };
                let outcome = match &set {
                    None => Err(format!(
                        "policy {} names no approvers",
                        c.record.approved_under
                    )),
                    Some(set) => c.record.recheck(set),
                };
                match outcome {
                    Ok(()) => {
                        let next = c
                            .record
                            .policy_text
                            .as_deref()
                            .map(ApproverSet::of_policy_text);
                        match next {
                            Some(Ok(next)) => {
                                if c.loaded.is_some() {
                                    self.summary.verified += 1;
                                }
                                known.insert(c.record.version.clone(), next);
                            }
                            Some(Err(e)) => self.problems.push((
                                c.partition,
                                c.offset,
                                "APPROVAL_INVALID",
                                format!("the loaded policy's [approvals]: {e}"),
                            )),
                            None => {}
                        }
                    }
                    Err(why) => self.problems.push((
                        c.partition,
                        c.offset,
                        "APPROVAL_INVALID",
                        format!(
                            "policy {} under {}: {why}",
                            c.record.version, c.record.approved_under
                        ),
                    )),
                }
            }
            let progress = rest.len() < before;
            open = rest;
            if open.is_empty() || !progress {
                break;
            }
        }
        for c in open {
            if self.resumed {
                self.summary.before_resume += 1;
                continue;
            }
            self.problems.push((
                c.partition,
                c.offset,
                "APPROVAL_UNANCHORED",
                format!(
                    "policy {} was approved under policy {}, whose own approval is not in the log",
                    c.record.version, c.record.approved_under
                ),
            ));
        }
        self.problems.sort_by_key(|p| (p.0, p.1));
        (self.problems, self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::approvals::{NAMESPACE, SignatureFile};
    use serde_json::json;

    const P0: &str = include_str!("../../deploy/policy.toml");

    fn pin() -> ApproverSet {
        let text = include_str!("../../deploy/demo/approvers/allowed_signers");
        ApproverSet::parse_allowed_signers(text, 2).unwrap()
    }

    /// A signature by a demo approver (DEMO ONLY keys in deploy/demo/approvers).
    fn sig(name: &str, msg: &str) -> SignatureFile {
        let pem = match name {
            "alice" => include_str!("../../deploy/demo/approvers/alice"),
            "bob" => include_str!("../../deploy/demo/approvers/bob"),
            _ => include_str!("../../deploy/demo/approvers/carol"),
        };
        let key = ssh_key::PrivateKey::from_openssh(pem).unwrap();
        let s = key
            .sign(NAMESPACE, ssh_key::HashAlg::Sha512, msg.as_bytes())
            .unwrap();
        SignatureFile {
            name: format!("{name}.sig"),
            bytes: s.to_pem(ssh_key::LineEnding::LF).unwrap().into_bytes(),
        }
    }

    fn record(text: &str, under: &str, set: &ApproverSet, signers: &[&str]) -> ApprovalRecord {
        let files: Vec<SignatureFile> = signers.iter().map(|n| sig(n, text)).collect();
        ApprovalRecord::new(
            text,
            under,
            set,
            &evaluate(set, text.as_bytes(), &files),
            true,
        )
    }

    fn version(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    fn loaded(
        from: &str,
        to: &str,
        approval: &ApprovalRecord,
        start: Option<&ApprovalRecord>,
    ) -> String {
        json!({"from": from, "to": to, "diff": [], "approval": approval, "start_approval": start})
            .to_string()
    }

    fn audit(
        pin: Option<ApproverSet>,
        events: &[String],
    ) -> (Vec<ApprovalProblem>, ApprovalSummary) {
        let mut a = ApprovalAudit::new(pin, false);
        for (o, d) in events.iter().enumerate() {
            a.observe(0, o as i64, POLICY_LOADED, d);
        }
        a.finish()
    }

    #[test]
    fn a_chain_of_loads_is_rechecked_against_the_approvers_then_in_force() {
        let p0_set = ApproverSet::of_policy_text(P0).unwrap().unwrap();
        let p1 = format!("{P0}\n# one change\n");
        // P2 drops carol from the approvers: signed by alice and carol (approvers of P1).
        let p2 = p1.replace("  { name = \"carol\"", "  # { name = \"carol\"");
        let start = record(P0, PIN, &pin(), &["alice", "bob"]);
        let r1 = record(&p1, &version(P0), &p0_set, &["alice", "carol"]);
        let r2 = record(&p2, &version(&p1), &p0_set, &["carol", "alice"]);
        let events = [
            loaded(&version(P0), &version(&p1), &r1, Some(&start)),
            loaded(&version(&p1), &version(&p2), &r2, Some(&start)),
        ];
        let (problems, summary) = audit(Some(pin()), &events);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(summary.verified, 2);
        // Carol is no approver of P2: a P3 she signed with alice is found wanting.
        let p2_set = ApproverSet::of_policy_text(&p2).unwrap().unwrap();
        let p3 = format!("{p2}\n# again\n");
        let mut forged = record(&p3, &version(&p2), &p2_set, &["alice"]);
        forged.signatures.push(SignatureEntry {
            file: "carol.sig".into(),
            approver: "carol".into(),
            fingerprint: String::new(),
            signature: String::from_utf8(sig("carol", &p3).bytes).unwrap(),
        });
        forged.approved = true;
        let mut all = events.to_vec();
        all.push(loaded(&version(&p2), &version(&p3), &forged, Some(&start)));
        let (problems, _) = audit(Some(pin()), &all);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].1, problems[0].2), (2, "APPROVAL_INVALID"));
        assert!(problems[0].3.contains("1 of 2"), "{}", problems[0].3);
    }

    #[test]
    fn unanchored_edited_or_mismatched_approvals_are_reported() {
        let p0_set = ApproverSet::of_policy_text(P0).unwrap().unwrap();
        let p1 = format!("{P0}\n# one change\n");
        let start = record(P0, PIN, &pin(), &["alice", "bob"]);
        let r1 = record(&p1, &version(P0), &p0_set, &["alice", "carol"]);
        // Without the pin the start cannot be checked, so neither can what leans on it.
        let (problems, _) = audit(
            None,
            &[loaded(&version(P0), &version(&p1), &r1, Some(&start))],
        );
        let kinds: Vec<&str> = problems.iter().map(|p| p.2).collect();
        assert_eq!(kinds, ["APPROVAL_UNANCHORED", "APPROVAL_UNANCHORED"]);
        // A load whose approver set is nowhere in the log.
        let (problems, _) = audit(
            Some(pin()),
            &[loaded(&version(P0), &version(&p1), &r1, None)],
        );
        assert_eq!(problems[0].2, "APPROVAL_UNANCHORED");
        // The policy text edited after the fact.
        let mut edited = r1.clone();
        edited.policy_text = Some(format!("{p1} "));
        let (problems, _) = audit(
            Some(pin()),
            &[loaded(&version(P0), &version(&p1), &edited, Some(&start))],
        );
        assert_eq!(problems[0].2, "APPROVAL_INVALID", "{problems:?}");
        // The record of another version than the event loads.
        let (problems, _) = audit(
            Some(pin()),
            &[loaded(&version(P0), "other", &r1, Some(&start))],
        );
        assert_eq!(problems[0].2, "APPROVAL_MISMATCH");
        // Unenforced loads are counted, not failed; other events are ignored.
        let mut a = ApprovalAudit::new(None, false);
        a.observe(
            0,
            0,
            POLICY_LOADED,
            &json!({"from": "a", "to": "b", "diff": []}).to_string(),
        );
        a.observe(0, 1, "POLICY_REFUSED", "not json");
        let (problems, summary) = a.finish();
        assert!(problems.is_empty());
        assert_eq!(summary.unenforced, 1);
    }
}
