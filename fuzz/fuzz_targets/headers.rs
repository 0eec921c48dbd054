//! Arbitrary record headers through the gate's header handling: the `bucket-signature` headers
//! are classified as the gate does (`SignatureHeaders::of`: exactly one is used; two or more are
//! refused `SIGNATURE_REPEATED` and none is verified), the one parsed by `core::signature::parse` and, when it
//! parses, verified under an Ed25519 and an HMAC key; the reason-code spelling read back from
//! `bucket.errors.*` headers and the audit log goes through `ReasonCode::parse`.
//!
//! Input layout: a sequence of headers, each a 1-byte name length, the name bytes, a 1-byte
//! value length and the value bytes; whatever follows the last complete header is the record
//! value the signature is checked against.
#![no_main]

use bhiv_bucket_fuzz::core::{ReasonCode, SignatureHeaders};
use bhiv_bucket_fuzz::core::signature::{self, Alg, SignKey, VerifyKey};
use bhiv_bucket_fuzz::wire::headers;
use libfuzzer_sys::fuzz_target;

/// Splits `data` into (headers, record value).
fn split(mut data: &[u8]) -> (Vec<(&[u8], &[u8])>, &[u8]) {
    let mut out = Vec::new();
    loop {
        let Some((&nl, rest)) = data.split_first() else {
            return (out, data);
        };
        if rest.len() < nl as usize {
            return (out, data);
        }
        let (name, rest) = rest.split_at(nl as usize);
        let Some((&vl, rest)) = rest.split_first() else {
            return (out, data);
        };
        if rest.len() < vl as usize {
            return (out, data);
        }
        let (value, rest) = rest.split_at(vl as usize);
        out.push((name, value));
        data = rest;
    }
}

fuzz_target!(|data: &[u8]| {
    let (hs, value) = split(data);
    let all = hs
        .iter()
        .filter(|(k, _)| *k == headers::SIGNATURE.as_bytes())
        .map(|(_, v)| *v);
    let count = all.clone().count();
    let classified = SignatureHeaders::of(all);
    match classified {
        SignatureHeaders::Absent => assert_eq!(count, 0),
        SignatureHeaders::One(_) => assert_eq!(count, 1),
        SignatureHeaders::Repeated(n) => assert!(n == count && n >= 2),
    }
    let signature = classified.only();
    for (name, v) in &hs {
        if *name == headers::ERROR_REASON.as_bytes() {
            if let Some(code) = std::str::from_utf8(v).ok().and_then(ReasonCode::parse) {
                assert_eq!(code.as_str().as_bytes(), *v, "reason code round trip");
            }
        }
    }
    let Some(raw) = signature else {
        return;
    };
    let Ok(h) = signature::parse(raw) else {
        return;
    };
    assert!(!h.integration_id.is_empty() && !h.key_id.is_empty());
    assert!(!h.integration_id.contains(':') && !h.key_id.contains(':'));
    assert_eq!(Alg::parse(h.alg.as_str()), Some(h.alg));
    let ed = SignKey::ed25519_from_seed(&[7; 32]);
    let Some(pk) = ed.public_key() else { return };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
        return;
    };
    // A forged signature must not verify; the keys' own signatures must.
    for (sk, key) in [
        (ed, VerifyKey::Ed25519(vk)),
        (SignKey::Hmac(vec![0x5a; 32]), VerifyKey::Hmac(vec![0x5a; 32])),
    ] {
        let own = sk.header(&h.integration_id, &h.key_id, value);
        let Ok(reparsed) = signature::parse(own.as_bytes()) else {
            panic!("own header does not parse: {own}");
        };
        assert_eq!(reparsed.integration_id, h.integration_id);
        assert_eq!(reparsed.key_id, h.key_id);
        assert!(signature::verify(&key, value, &reparsed.signature));
        if h.signature != reparsed.signature {
            assert!(!signature::verify(&key, value, &h.signature), "forged signature verified");
        }
    }
});
