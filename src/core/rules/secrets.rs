//! Threat detector: secrets and private keys in metadata (T2) or content (T5). High-precision
//! patterns only; the finding names the kind of secret, never the secret itself.

use std::sync::LazyLock;

use memchr::memmem;

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

/// A token kind: its prefix, how many characters of its charset must follow, and its name.
struct TokenKind {
    prefix: memmem::Finder<'static>,
    min: usize,
    charset: fn(u8) -> bool,
    kind: &'static str,
}

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn slack(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The searchers, built once: building a memmem searcher costs more than scanning 1 KiB.
struct Finders {
    pem_begin: memmem::Finder<'static>,
    pem_private: memmem::Finder<'static>,
    tokens: Vec<TokenKind>,
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| {
    let token = |prefix: &'static [u8], min, charset, kind| TokenKind {
        prefix: memmem::Finder::new(prefix),
        min,
        charset,
        kind,
    };
    Finders {
        pem_begin: memmem::Finder::new(b"-----BEGIN "),
        pem_private: memmem::Finder::new(b"PRIVATE KEY-----"),
        tokens: vec![
            token(b"AKIA", 16, upper_digit, "AWS access key id"),
            token(b"ghp_", 36, alnum, "GitHub token"),
            token(b"gho_", 36, alnum, "GitHub token"),
            token(b"ghs_", 36, alnum, "GitHub token"),
            token(b"ghu_", 36, alnum, "GitHub token"),
            token(b"xoxb-", 20, slack, "Slack token"),
            token(b"xoxp-", 20, slack, "Slack token"),
            token(b"xoxa-", 20, slack, "Slack token"),
        ],
    }
});

/// Names the first kind of secret found in `bytes`, if any.
pub fn find_secret(bytes: &[u8]) -> Option<&'static str> {
    let f = &*FINDERS;
    // Every PEM block, not only the first: a certificate followed by its private key is the
    // usual bundle.
    let private_pem = f.pem_begin.find_iter(bytes).any(|pos| {
        let window = &bytes[pos..bytes.len().min(pos + 64)];
        f.pem_private.find(window).is_some()
    });
    if private_pem {
        return Some("PEM private key");
    }
    f.tokens.iter().find_map(|t| {
        let found = t.prefix.find_iter(bytes).any(|pos| {
            let before_ok = pos == 0 || !bytes[pos - 1].is_ascii_alphanumeric();
            let tail = &bytes[pos + t.prefix.needle().len()..];
            before_ok && tail.iter().take_while(|b| (t.charset)(**b)).count() >= t.min
        });
        found.then_some(t.kind)
    })
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
        // A certificate first, then its key (a PEM bundle): the key is found.
        assert_eq!(
            find_secret(
                b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\
                  -----BEGIN EC PRIVATE KEY-----\nMHc"
            ),
            Some("PEM private key")
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
