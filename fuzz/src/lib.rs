//! The pure part of the gate, compiled by path for fuzzing (no Kafka, no tokio, no I/O).
#![allow(dead_code, unused_imports)]

#[path = "../../src/core/mod.rs"]
pub mod core;
#[path = "../../src/wire/mod.rs"]
pub mod wire;

/// The transparency log (Merkle tree, signed notes) the audit checkpoints commit to.
#[path = "../../src/tlog/mod.rs"]
pub mod tlog;

/// Audit verification (chains, checkpoints) from `src/audit`.
#[path = "../../src/audit"]
pub mod audit {
    pub mod approvals;
    pub mod verifier;
}

use crate::core::policy::{Policy, SecretSource};

/// Resolves every HMAC secret reference of the policy to a fixed 32-byte secret.
pub struct FuzzSecrets;

impl SecretSource for FuzzSecrets {
    fn resolve(&self, _reference: &str) -> Result<Vec<u8>, String> {
        Ok(vec![0x5a; 32])
    }
}

/// The shipped policy (`deploy/policy.toml`) with stub HMAC secrets.
pub fn shipped_policy() -> Policy {
    match Policy::parse_with(include_str!("../../deploy/policy.toml"), &FuzzSecrets) {
        Ok(p) => p,
        Err(e) => panic!("shipped policy does not parse: {e}"),
    }
}
