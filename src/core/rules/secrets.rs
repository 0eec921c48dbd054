//! Threat detector: secrets and private keys in metadata (T2) or content (T5). High-precision
//! patterns only; the finding names the kind of secret, never the secret itself.

use memchr::memmem;

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

/// Names the first kind of secret found in `bytes`, if any.
pub fn find_secret(bytes: &[u8]) -> Option<&'static str> {
    if let Some(pos) = memmem::find(bytes, b"-----BEGIN ") {
        let window = &bytes[pos..bytes.len().min(pos + 64)];
        if memmem::find(window, b"PRIVATE KEY-----").is_some() {
            return Some("PEM private key");
        }
    }
    let token = |prefix: &[u8], min: usize, charset: fn(u8) -> bool| {
        memmem::find_iter(bytes, prefix).any(|pos| {
            let before_ok = pos == 0 || !bytes[pos - 1].is_ascii_alphanumeric();
            let tail = &bytes[pos + prefix.len()..];
            before_ok && tail.iter().take_while(|b| charset(**b)).count() >= min
        })
    };
    let upper_digit = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let slack = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    if token(b"AKIA", 16, upper_digit) {
        return Some("AWS access key id");
    }
    for prefix in [&b"ghp_"[..], b"gho_", b"ghs_", b"ghu_"] {
        if token(prefix, 36, alnum) {
            return Some("GitHub token");
        }
    }
    for prefix in [&b"xoxb-"[..], b"xoxp-", b"xoxa-"] {
        if token(prefix, 20, slack) {
            return Some("Slack token");
        }
    }
    None
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if !ctx.policy.threats.secret_scan {
        return;
    }
    if let Some(kind) = find_secret(ctx.intent.metadata.as_bytes()) {
        out.push(Finding::new(
            ReasonCode::SecretInMetadata,
            format!("metadata contains a {kind}"),
        ));
    }
    if let Some(content) = &ctx.intent.content {
        let scanned = &content[..content.len().min(ctx.policy.threats.secret_scan_max_bytes)];
        if let Some(kind) = find_secret(scanned) {
            out.push(Finding::new(
                ReasonCode::SecretInContent,
                format!("content contains a {kind}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find_secret;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    #[test]
    fn detects_kinds_without_false_alarms_on_prose() {
        assert_eq!(
            find_secret(b"x -----BEGIN RSA PRIVATE KEY-----\nMII"),
            Some("PEM private key")
        );
        assert_eq!(
            find_secret(b"key=AKIAIOSFODNN7EXAMPLE"),
            Some("AWS access key id")
        );
        assert_eq!(
            find_secret(b"ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            Some("GitHub token")
        );
        assert_eq!(
            find_secret(b"BEGIN the AKIA talk; -----BEGIN CERTIFICATE-----"),
            None
        );
    }

    #[test]
    fn rule_reports_content_and_metadata() {
        let mut i = create();
        i.content = Some(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn".to_vec());
        i.metadata = "{\"token\": \"xoxb-123456789012-abcdefghijkl\"}".into();
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::SecretInMetadata, ReasonCode::SecretInContent]
        );
    }
}
