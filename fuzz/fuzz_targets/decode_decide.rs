//! Arbitrary bytes through the gate's decode path and, when they decode, `decide`.
//!
//! Input layout: byte 0 = signature header length `n`, byte 1 = partition, then `n` bytes of
//! `bucket-signature` header (absent when `n == 0`), then the record value.
#![no_main]

use std::sync::LazyLock;

use bhiv_bucket_fuzz::core::policy::Policy;
use bhiv_bucket_fuzz::core::{DecodeFailure, Envelope, Outcome, PartitionState, ReasonCode, decide};
use bhiv_bucket_fuzz::wire::{framing, intent};
use libfuzzer_sys::fuzz_target;

const PARTITIONS: i32 = 6;
static POLICY: LazyLock<Policy> = LazyLock::new(bhiv_bucket_fuzz::shipped_policy);

fuzz_target!(|data: &[u8]| {
    let [sig_len, partition, rest @ ..] = data else {
        return;
    };
    let (sig, value) = rest.split_at((*sig_len as usize).min(rest.len()));
    let signature = (*sig_len > 0).then_some(sig);
    let state = PartitionState::default();
    let decoded = framing::unframe(Some(value)).and_then(|(_, body)| intent::decode(body));
    match decoded {
        Ok(i) => {
            // Encoding what was decoded gives back the same intent.
            if let Ok(body) = intent::encode(&i) {
                assert_eq!(intent::decode(&body).ok().as_ref(), Some(&i), "round trip");
            }
            let env = Envelope {
                key: Some(i.product_id.as_bytes()),
                partition: i32::from(*partition) % PARTITIONS,
                partition_count: PARTITIONS,
                payload: Ok(&i),
                value,
                signature: signature.into(),
            };
            let d = decide(&env, &state, &POLICY, 1_700_000_000_000);
            assert_eq!(d.outcome == Outcome::Accepted, d.findings.is_empty());
            assert_eq!(d, decide(&env, &state, &POLICY, 1_700_000_000_000));
        }
        Err(e) => {
            let failure = DecodeFailure {
                reason: ReasonCode::MalformedAvro,
                detail: e.to_string(),
            };
            let env = Envelope {
                key: None,
                partition: 0,
                partition_count: PARTITIONS,
                payload: Err(&failure),
                value,
                signature: signature.into(),
            };
            let d = decide(&env, &state, &POLICY, 0);
            assert_eq!(d.outcome, Outcome::Rejected);
        }
    }
});
