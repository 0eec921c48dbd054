//! Arbitrary audit records through `audit::verifier::Verifier::feed` and `finish`.
//!
//! Input layout: a sequence of records, each a 2-byte big-endian length, then a partition byte,
//! then that many value bytes (length 0xffff means a null value).
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bhiv_bucket_fuzz::audit::verifier::Verifier;
use bhiv_bucket_fuzz::core::signature::VerifyKey;
use bhiv_bucket_fuzz::wire::audit::AuditReader;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<BTreeMap<String, VerifyKey>> =
    LazyLock::new(|| bhiv_bucket_fuzz::shipped_policy().audit_keys);

fuzz_target!(|data: &[u8]| {
    // Schema ids 1 and 2 are audit versions 1 and 2: both writer schemas are exercised.
    let mut v = Verifier::new(
        KEYS.clone(),
        AuditReader::with_ids([(1, 1), (2, 2)]),
        BTreeMap::new(),
    );
    let mut rest = data;
    let mut offset = 0i64;
    while let [hi, lo, partition, tail @ ..] = rest {
        let len = u16::from_be_bytes([*hi, *lo]);
        let p = i32::from(*partition % 4);
        if len == u16::MAX {
            v.feed(p, offset, None);
            rest = tail;
        } else {
            let (value, tail) = tail.split_at((len as usize).min(tail.len()));
            v.feed(p, offset, Some(value));
            rest = tail;
        }
        offset += 1;
    }
    let _ = v.finish().ok();
});
