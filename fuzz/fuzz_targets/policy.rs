//! Arbitrary text through the policy parser (`core::policy::Policy::parse_with`, TOML).
//!
//! Parsing must never panic; an accepted policy respects the hard ceilings whatever the file
//! says, and its version is the SHA-256 of exactly the bytes given (parsing is deterministic).
#![no_main]

use bhiv_bucket_fuzz::FuzzSecrets;
use bhiv_bucket_fuzz::core::policy::{MAX_CONTENT_BYTES, MAX_PRODUCTS, Policy};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Policy::parse_with(text, &FuzzSecrets) else {
        return;
    };
    assert_eq!(p.version, hex::encode(Sha256::digest(data)));
    assert!(p.max_content_bytes >= 1 && p.max_content_bytes <= MAX_CONTENT_BYTES);
    assert!(p.products.len() <= MAX_PRODUCTS);
    if let Ok(again) = Policy::parse_with(text, &FuzzSecrets) {
        assert_eq!(again, p, "parsing is deterministic");
    } else {
        panic!("second parse of the same text failed");
    }
});
