//! Signatures of a poll batch verified ahead of deciding: **the Ed25519 ones together** (one
//! batch equation, half of them on a worker thread), so the loop thread does not verify them one
//! at a time inside the rule. Pure apart from the scoped thread; the decisions are the rule's own
//! (`core::properties::signatures_verified_ahead_in_a_batch_decide_the_same`).

use crate::core::rules::key_to_verify;
use crate::core::signature::{VerifyKey, verify, verify_all};
use crate::core::{Policy, SignatureCheck};

use super::consumed::Consumed;

/// Ed25519 signatures below which the batch is verified on the loop thread alone.
const PARALLEL_MIN: usize = 16;

/// One [`SignatureCheck`] per record of `batch`, in order: `Verified` for Ed25519 signatures the
/// authenticity rule would verify under `policy`, `Pending` (left to the rule) for everything
/// else: HMAC (a microsecond in the rule), missing or malformed headers, unknown keys, and a
/// batch with a single Ed25519 signature.
pub fn ahead(batch: &[Consumed], policy: &Policy) -> Vec<SignatureCheck> {
    let mut checks = vec![SignatureCheck::Pending; batch.len()];
    let pending: Vec<(usize, &VerifyKey, Vec<u8>)> = batch
        .iter()
        .enumerate()
        .filter_map(|(n, c)| {
            // Only headers naming Ed25519 are parsed here; the rule parses every header anyway.
            let header = c.signature_header().filter(|h| names_ed25519(h))?;
            let (key, sig) = key_to_verify(policy, header)?;
            matches!(key, VerifyKey::Ed25519(_)).then_some((n, key, sig))
        })
        .collect();
    if pending.len() < 2 {
        return checks;
    }
    let items: Vec<(&VerifyKey, &[u8], &[u8])> = pending
        .iter()
        .map(|(n, key, sig)| (*key, batch[*n].value_bytes(), sig.as_slice()))
        .collect();
    for ((n, _, _), valid) in pending.iter().zip(verify_split(&items)) {
        checks[*n] = SignatureCheck::Verified(valid);
    }
    checks
}

/// True when a `v1:<integration>:<key>:<alg>:<sig>` header's algorithm field is `ed25519`
/// (the only spelling `signature::parse` accepts for it): a check without allocating.
fn names_ed25519(header: &[u8]) -> bool {
    header.split(|b| *b == b':').nth(3) == Some(b"ed25519".as_slice())
}

/// [`verify_all`] with the second half on a scoped worker thread when the batch is large
/// enough to pay for it; a worker that fails is redone here, one by one.
fn verify_split(items: &[(&VerifyKey, &[u8], &[u8])]) -> Vec<bool> {
    if items.len() < PARALLEL_MIN {
        return verify_all(items);
    }
    let (here, there) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let worker = s.spawn(|| verify_all(there));
        let mut valid = verify_all(here);
        match worker.join() {
            Ok(v) => valid.extend(v),
            Err(_) => valid.extend(there.iter().map(|(k, m, sig)| verify(k, m, sig))),
        }
        valid
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::tests::shipped;
    use crate::core::rules::test_support::sign_as;

    fn record(value: &[u8], header: Option<String>) -> Consumed {
        Consumed {
            partition: 0,
            offset: 0,
            key: None,
            value: Some(value.to_vec()),
            timestamp: None,
            headers: header
                .map(|h| vec![(crate::wire::headers::SIGNATURE.to_string(), h.into_bytes())])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn ed25519_signatures_are_verified_ahead_and_the_rest_left_to_the_rule() {
        let policy = shipped();
        let integration = "ai_assistant-backend";
        for size in [3, PARALLEL_MIN + 5] {
            let mut batch = Vec::new();
            let mut want = Vec::new();
            for n in 0..size {
                let value = format!("value {n}").into_bytes();
                let header = sign_as(integration, "ed25519", &value);
                // Every third one signs other bytes: invalid.
                let signed = if n % 3 == 2 {
                    b"other".to_vec()
                } else {
                    value.clone()
                };
                let header = if signed == value {
                    header
                } else {
                    sign_as(integration, "ed25519", &signed)
                };
                batch.push(record(&value, Some(header)));
                want.push(SignatureCheck::Verified(n % 3 != 2));
            }
            batch.push(record(
                b"hmac",
                Some(sign_as(integration, "hmac-sha256", b"hmac")),
            ));
            want.push(SignatureCheck::Pending);
            batch.push(record(b"unsigned", None));
            want.push(SignatureCheck::Pending);
            batch.push(record(b"garbled", Some("v1:nope".into())));
            want.push(SignatureCheck::Pending);
            assert_eq!(ahead(&batch, &policy), want, "batch of {size}");
        }
    }

    #[test]
    fn only_headers_naming_ed25519_are_parsed_ahead() {
        assert!(names_ed25519(b"v1:i:k:ed25519:AAAA"));
        assert!(!names_ed25519(b"v1:i:k:hmac-sha256:AAAA"));
        assert!(!names_ed25519(b"v1:i:ed25519"));
        assert!(!names_ed25519(b"v1:ed25519:k:ed2551:AAAA"));
    }

    #[test]
    fn a_single_ed25519_signature_is_left_to_the_rule() {
        let policy = shipped();
        let header = sign_as("ai_assistant-backend", "ed25519", b"v");
        assert_eq!(
            ahead(&[record(b"v", Some(header))], &policy),
            [SignatureCheck::Pending]
        );
    }
}
