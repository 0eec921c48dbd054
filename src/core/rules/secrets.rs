//! Threat detector: secrets and private keys in metadata (T2) or content (T5). High-precision
//! patterns only; the finding names the kind of secret, never the secret itself.

use std::sync::LazyLock;

use memchr::memmem;

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

/// A family of tokens that share a prefix (the `gh?_` GitHub tokens, the `xox?-` Slack
/// tokens): the shared part is searched once, then one byte of `variants` (if any) and
/// `separator` must follow, then at least `min` characters of `charset`. One pass per family
/// instead of one per token: the scan is most of what this rule costs.
struct TokenFamily {
    prefix: memmem::Finder<'static>,
    variants: &'static [u8],
    separator: Option<u8>,
    min: usize,
    charset: fn(u8) -> bool,
    kind: &'static str,
}

impl TokenFamily {
    /// Whether a token of this family starts at every occurrence of the prefix, overlapping
    /// ones included (`xoxoxb-…` holds `xox` at 0 and at 2).
    fn found_in(&self, bytes: &[u8]) -> bool {
        let mut from = 0;
        while let Some(found) = bytes.get(from..).and_then(|rest| self.prefix.find(rest)) {
            let pos = from + found;
            if self.starts_at(bytes, pos) {
                return true;
            }
            from = pos + 1;
        }
        false
    }

    fn starts_at(&self, bytes: &[u8], pos: usize) -> bool {
        if pos > 0 && bytes[pos - 1].is_ascii_alphanumeric() {
            return false;
        }
        let mut at = pos + self.prefix.needle().len();
        if !self.variants.is_empty() {
            if !bytes.get(at).is_some_and(|b| self.variants.contains(b)) {
                return false;
            }
            at += 1;
        }
        if let Some(separator) = self.separator {
            if bytes.get(at) != Some(&separator) {
                return false;
            }
            at += 1;
        }
        let tail = bytes.get(at..).unwrap_or_default();
        tail.iter().take_while(|b| (self.charset)(**b)).count() >= self.min
    }
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
    /// In the order their kinds are reported.
    families: Vec<TokenFamily>,
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| {
    let family = |prefix: &'static [u8], variants, separator, min, charset, kind| TokenFamily {
        prefix: memmem::Finder::new(prefix),
        variants,
        separator,
        min,
        charset,
        kind,
    };
    Finders {
        pem_begin: memmem::Finder::new(b"-----BEGIN "),
        pem_private: memmem::Finder::new(b"PRIVATE KEY-----"),
        families: vec![
            family(b"AKIA", b"", None, 16, upper_digit, "AWS access key id"),
            // ghp_, gho_, ghs_, ghu_
            family(b"gh", b"posu", Some(b'_'), 36, alnum, "GitHub token"),
            // xoxb-, xoxp-, xoxa-
            family(b"xox", b"bpa", Some(b'-'), 20, slack, "Slack token"),
        ],
    }
});

/// Names the first kind of secret found in `bytes`, if any: a PEM private key, an AWS access
/// key id, a GitHub token, a Slack token, in that order.
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
    f.families
        .iter()
        .find(|family| family.found_in(bytes))
        .map(|family| family.kind)
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

    /// The patterns one by one, each searched on its own (the scan before token families).
    fn one_pass_per_token(bytes: &[u8]) -> Option<&'static str> {
        let pem = memchr::memmem::find_iter(bytes, b"-----BEGIN ").any(|pos| {
            let window = &bytes[pos..bytes.len().min(pos + 64)];
            memchr::memmem::find(window, b"PRIVATE KEY-----").is_some()
        });
        if pem {
            return Some("PEM private key");
        }
        let upper_digit = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
        let alnum = |b: u8| b.is_ascii_alphanumeric();
        let slack = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
        let tokens: [(&[u8], usize, &dyn Fn(u8) -> bool, &str); 8] = [
            (b"AKIA", 16, &upper_digit, "AWS access key id"),
            (b"ghp_", 36, &alnum, "GitHub token"),
            (b"gho_", 36, &alnum, "GitHub token"),
            (b"ghs_", 36, &alnum, "GitHub token"),
            (b"ghu_", 36, &alnum, "GitHub token"),
            (b"xoxb-", 20, &slack, "Slack token"),
            (b"xoxp-", 20, &slack, "Slack token"),
            (b"xoxa-", 20, &slack, "Slack token"),
        ];
        tokens.iter().find_map(|(prefix, min, charset, kind)| {
            let found = memchr::memmem::find_iter(bytes, prefix).any(|pos| {
                let before_ok = pos == 0 || !bytes[pos - 1].is_ascii_alphanumeric();
                let tail = &bytes[pos + prefix.len()..];
                before_ok && tail.iter().take_while(|b| charset(**b)).count() >= *min
            });
            found.then_some(*kind)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Token families find exactly what one pass per token found, on texts stitched from
        /// the patterns' fragments (overlapping prefixes, cut tokens, neighbours).
        #[test]
        fn token_families_find_what_one_pass_per_token_found(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "xox", "xo", "b-", "p-", "a-", "gh", "p_", "o_", "s_", "u_", "g", "AKIA",
                "ABCDEFGHIJKLMNOP", "abcdefghij", "0123456789", "-", "_", " ", "\n", "x",
                "-----BEGIN ", "EC ", "PRIVATE KEY-----", "CERTIFICATE-----",
            ]), 0..24),
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(
                find_secret(text.as_bytes()),
                one_pass_per_token(text.as_bytes()),
                "{:?}", text
            );
        }
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
