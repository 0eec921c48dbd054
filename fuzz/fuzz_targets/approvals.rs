//! Arbitrary bytes as a policy approval signature file (`core::approvals::evaluate` over the
//! shipped policy under its own approvers) and as an operator's pin (`allowed_signers` text).
//!
//! Nothing may panic; one file counts for at most one approver of the set, and a file either
//! counts or is refused with a reason. Seeds: real `ssh-keygen -Y sign` signatures of
//! `deploy/policy.toml` (Ed25519, ECDSA, another namespace) and the demo pin.
#![no_main]

use std::sync::LazyLock;

use bhiv_bucket_fuzz::core::approvals::{ApproverSet, SignatureFile, evaluate};
use libfuzzer_sys::fuzz_target;

const POLICY: &str = include_str!("../../deploy/policy.toml");

static SET: LazyLock<ApproverSet> = LazyLock::new(|| match ApproverSet::of_policy_text(POLICY) {
    Ok(Some(s)) => s,
    other => panic!("the shipped policy names no approvers: {other:?}"),
});

fuzz_target!(|data: &[u8]| {
    let files = [SignatureFile {
        name: "fuzz.sig".into(),
        bytes: data.to_vec(),
    }];
    let v = evaluate(&SET, POLICY.as_bytes(), &files);
    assert_eq!(v.counted.len() + v.failed.len(), 1);
    for c in &v.counted {
        assert!(SET.approvers.iter().any(|a| a.name == c.approver));
    }
    assert!(v.failed.iter().all(|f| !f.reason.is_empty()));
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(pin) = ApproverSet::parse_allowed_signers(text, 1)
    {
        assert!(pin.required >= 1 && pin.required <= pin.approvers.len());
    }
});
