//! Authenticity: the integration is approved, not revoked and allowed for the product; the
//! `bucket-signature` header verifies over the exact value bytes with an active key of that
//! integration; the intent id was not decided before (replay).

use crate::core::decide::{Context, Finding, SignatureCheck, SignatureHeaders};
use crate::core::policy::Policy;
use crate::core::policy::Status;
use crate::core::reason::ReasonCode;
use crate::core::signature;

/// Reason codes that mean "we cannot trust who sent this".
pub fn is_failure(reason: ReasonCode) -> bool {
    matches!(
        reason,
        ReasonCode::UnknownIntegration
            | ReasonCode::IntegrationRevoked
            | ReasonCode::IntegrationNotAllowed
            | ReasonCode::SignatureMissing
            | ReasonCode::SignatureMalformed
            | ReasonCode::SignatureRepeated
            | ReasonCode::SignatureMismatch
            | ReasonCode::UnknownKey
            | ReasonCode::KeyRevoked
            | ReasonCode::SignatureInvalid
    )
}

/// The key a signature header names within its integration, if it exists with that algorithm.
fn key_of<'p>(
    rule: &'p crate::core::policy::IntegrationRule,
    h: &signature::SignatureHeader,
) -> Option<&'p crate::core::policy::KeyRule> {
    rule.keys.get(&h.key_id).filter(|k| k.key.alg() == h.alg)
}

/// What the rule below would verify for a record with this `bucket-signature` header under
/// `policy` (the key, by the header's own integration and key id, and the signature), so a
/// caller can verify a batch ahead and pass [`SignatureCheck::Verified`]. None when the rule
/// would refuse the header without verifying. The rule verifies only when the header's
/// integration is the intent's, so the key is the same.
pub fn key_to_verify<'p>(
    policy: &'p Policy,
    header: &[u8],
) -> Option<(&'p signature::VerifyKey, Vec<u8>)> {
    let h = signature::parse(header).ok()?;
    let rule = policy.integrations.get(&h.integration_id)?;
    let key = key_of(rule, &h)?;
    Some((&key.key, h.signature))
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    let integration = ctx.policy.integrations.get(&i.integration_id);
    match integration {
        None => out.push(Finding::new(
            ReasonCode::UnknownIntegration,
            format!("integration {:?} is not approved", i.integration_id),
        )),
        Some(rule) => {
            if rule.status == Status::Revoked {
                out.push(Finding::new(
                    ReasonCode::IntegrationRevoked,
                    format!("integration {:?} is revoked", i.integration_id),
                ));
            }
            if !rule.products.contains(&i.product_id) {
                out.push(Finding::new(
                    ReasonCode::IntegrationNotAllowed,
                    format!(
                        "integration {:?} may not write for product {:?}",
                        i.integration_id, i.product_id
                    ),
                ));
            }
        }
    }
    match ctx.envelope.signature {
        SignatureHeaders::Absent if ctx.policy.limits.require_signature => out.push(Finding::new(
            ReasonCode::SignatureMissing,
            "no bucket-signature header",
        )),
        SignatureHeaders::Absent => {}
        // Whatever the policy: one record, one signer. Which of several headers a reader takes
        // would otherwise decide what was verified (a proxy appending one, a producer signing
        // twice).
        SignatureHeaders::Repeated(n) => out.push(Finding::new(
            ReasonCode::SignatureRepeated,
            format!("{n} bucket-signature headers; exactly one is allowed"),
        )),
        SignatureHeaders::One(raw) => match signature::parse(raw) {
            Err(e) => out.push(Finding::new(ReasonCode::SignatureMalformed, e)),
            Ok(h) if h.integration_id != i.integration_id => out.push(Finding::new(
                ReasonCode::SignatureMismatch,
                format!(
                    "header signed by {:?}, intent claims {:?}",
                    h.integration_id, i.integration_id
                ),
            )),
            Ok(h) => {
                let Some(rule) = integration else { return };
                match key_of(rule, &h) {
                    None => out.push(Finding::new(
                        ReasonCode::UnknownKey,
                        format!(
                            "no {} key {:?} for this integration",
                            h.alg.as_str(),
                            h.key_id
                        ),
                    )),
                    Some(k) if k.status == Status::Revoked => out.push(Finding::new(
                        ReasonCode::KeyRevoked,
                        format!("key {:?} is revoked", h.key_id),
                    )),
                    Some(k) => {
                        let valid = match ctx.signature_check {
                            SignatureCheck::Verified(valid) => valid,
                            SignatureCheck::Pending => {
                                signature::verify(&k.key, ctx.envelope.value, &h.signature)
                            }
                        };
                        if !valid {
                            out.push(Finding::new(
                                ReasonCode::SignatureInvalid,
                                format!("signature by key {:?} does not verify", h.key_id),
                            ));
                        }
                    }
                }
            }
        },
    }
    if ctx.state.seen(&ctx.replay_key) {
        out.push(Finding::new(
            ReasonCode::ReplayedIntent,
            format!("intent {} was already decided", i.intent_id),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::core::decide::{Envelope, decide};
    use crate::core::partitioner::home_partition;
    use crate::core::policy::tests::shipped;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    fn decide_signed(intent_value: &[u8], header: Option<&str>) -> Vec<ReasonCode> {
        let i = create();
        let key = i.product_id.as_bytes();
        let env = Envelope {
            key: Some(key),
            partition: home_partition(key, PARTITIONS),
            partition_count: PARTITIONS,
            payload: Ok(&i),
            value: intent_value,
            signature: header.map(str::as_bytes).into(),
        };
        decide(&env, &PartitionState::default(), &shipped(), NOW).reasons()
    }

    #[test]
    fn valid_ed25519_and_hmac_signatures_pass() {
        for alg in ["ed25519", "hmac-sha256"] {
            let h = sign_as("ai_assistant-backend", alg, VALUE);
            assert!(decide_signed(VALUE, Some(&h)).is_empty(), "{alg}");
        }
    }

    #[test]
    fn each_signature_failure_has_its_code() {
        let good = sign_as("ai_assistant-backend", "ed25519", VALUE);
        assert_eq!(
            decide_signed(VALUE, None),
            vec![ReasonCode::SignatureMissing]
        );
        assert_eq!(
            decide_signed(VALUE, Some("v1:x")),
            vec![ReasonCode::SignatureMalformed]
        );
        assert_eq!(
            decide_signed(b"tampered", Some(&good)),
            vec![ReasonCode::SignatureInvalid]
        );
        let other = sign_as("gurukul-backend", "ed25519", VALUE);
        assert_eq!(
            decide_signed(VALUE, Some(&other)),
            vec![ReasonCode::SignatureMismatch]
        );
        let unknown = good.replacen(":ed1:", ":nope:", 1);
        assert_eq!(
            decide_signed(VALUE, Some(&unknown)),
            vec![ReasonCode::UnknownKey]
        );
        let revoked = sign_with_key_id("ai_assistant-backend", "old", VALUE);
        assert_eq!(
            decide_signed(VALUE, Some(&revoked)),
            vec![ReasonCode::KeyRevoked]
        );
    }

    /// Two headers are refused whatever they hold, even two copies of one valid signature;
    /// exactly one valid header passes (`SignatureHeaders::of` counts them).
    #[test]
    fn repeated_signature_headers_are_refused() {
        use crate::core::decide::SignatureHeaders;
        let i = create();
        let key = i.product_id.as_bytes();
        let good = sign_as("ai_assistant-backend", "ed25519", VALUE);
        let decide_with = |headers: &[&str]| {
            let env = Envelope {
                key: Some(key),
                partition: home_partition(key, PARTITIONS),
                partition_count: PARTITIONS,
                payload: Ok(&i),
                value: VALUE,
                signature: SignatureHeaders::of(headers.iter().map(|h| h.as_bytes())),
            };
            decide(&env, &PartitionState::default(), &shipped(), NOW)
        };
        assert!(decide_with(&[&good]).findings.is_empty());
        for headers in [
            vec![&*good, &*good],
            vec![&*good, "v1:x"],
            vec!["a", "b", &*good],
        ] {
            let d = decide_with(&headers);
            assert_eq!(
                d.reasons(),
                vec![ReasonCode::SignatureRepeated],
                "{headers:?}"
            );
            assert!(
                d.replay_key.is_none(),
                "a refused header does not burn the id"
            );
            assert!(d.detail().starts_with(&format!("{} ", headers.len())));
        }
    }

    #[test]
    fn integration_rules() {
        let mut i = create();
        i.integration_id = "nobody".into();
        assert!(
            decide_on(&i, &PartitionState::default())
                .reasons()
                .contains(&ReasonCode::UnknownIntegration)
        );
        let mut i = create();
        i.integration_id = "gurukul-backend".into();
        assert!(
            decide_on(&i, &PartitionState::default())
                .reasons()
                .contains(&ReasonCode::IntegrationNotAllowed)
        );
        let mut i = create();
        i.integration_id = "legacy-importer".into();
        assert!(
            decide_on(&i, &PartitionState::default())
                .reasons()
                .contains(&ReasonCode::IntegrationRevoked)
        );
    }

    #[test]
    fn replays_are_refused_but_forgeries_do_not_burn_ids() {
        let mut s = PartitionState::default();
        accept(&create(), &mut s);
        let mut again = create();
        again.artifact_id = "other".into();
        assert_eq!(
            decide_on(&again, &s).reasons(),
            vec![ReasonCode::ReplayedIntent]
        );
        // A forged (unsigned) intent with a fresh id is rejected and does not burn the id.
        let mut forged = create();
        forged.intent_id = "11111111-2222-4333-8444-555555555555".into();
        forged.integration_id = "nobody".into();
        let d = decide_on(&forged, &s);
        assert!(d.replay_key.is_none());
    }

    #[test]
    fn an_absurdly_long_intent_id_is_remembered_cut_and_still_replays() {
        let mut s = PartitionState::default();
        let mut i = create();
        i.intent_id = "z".repeat(5000);
        let d = decide_on(&i, &s);
        let (_, remembered) = d.replay_key.clone().unwrap();
        assert_eq!(remembered, crate::core::recorded(&i.intent_id));
        assert!(remembered.len() < 400);
        s.record(&d, 1000);
        assert!(
            decide_on(&i, &s)
                .reasons()
                .contains(&ReasonCode::ReplayedIntent)
        );
        i.intent_id.push('z');
        assert!(
            !decide_on(&i, &s)
                .reasons()
                .contains(&ReasonCode::ReplayedIntent)
        );
    }
}
