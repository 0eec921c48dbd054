//! Producer-side signatures for bench intents (`bucket-signature` header, docs/wire-contract.md),
//! verified by the gate against the bench integrations' keys in the generated policy.

use std::str::FromStr;

use base64::Engine;
use ed25519_dalek::Signer as _;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::BenchError;

/// Signature algorithm of the pre-filled intents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigAlg {
    /// No signature header.
    None,
    /// `hmac-sha256` over the value bytes.
    Hmac,
    /// `ed25519` over the value bytes.
    Ed25519,
}

impl FromStr for SigAlg {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(SigAlg::None),
            "hmac" | "hmac-sha256" => Ok(SigAlg::Hmac),
            "ed25519" => Ok(SigAlg::Ed25519),
            other => Err(BenchError::Options(format!(
                "--sig {other:?}: expected none, hmac or ed25519"
            ))),
        }
    }
}

impl SigAlg {
    /// Refuses algorithms the gate cannot verify yet: timing them would measure nothing.
    pub fn check(self) -> Result<(), BenchError> {
        // The gate verifies signatures (core/rules/authenticity.rs): every algorithm is
        // measurable.
        let _ = self;
        Ok(())
    }

    /// Spelling in the signature header.
    pub fn as_str(self) -> &'static str {
        match self {
            SigAlg::None => "none",
            SigAlg::Hmac => "hmac-sha256",
            SigAlg::Ed25519 => "ed25519",
        }
    }

    /// The signer of the bench integration for this algorithm.
    pub fn signer(self) -> Box<dyn Signer> {
        match self {
            SigAlg::None => Box::new(Unsigned),
            SigAlg::Hmac => Box::new(HmacSigner {
                key_id: "bench-hmac-1".into(),
                key: BENCH_HMAC_KEY.to_vec(),
            }),
            SigAlg::Ed25519 => Box::new(Ed25519Signer {
                key_id: "bench-ed25519-1".into(),
                key: ed25519_dalek::SigningKey::from_bytes(&BENCH_ED25519_SEED),
            }),
        }
    }
}

/// HMAC key of the bench integration (public test material, never a real secret).
pub const BENCH_HMAC_KEY: &[u8; 32] = b"bucket-bench-hmac-key-not-secret";
/// Ed25519 seed of the bench integration (public test material, never a real secret).
pub const BENCH_ED25519_SEED: [u8; 32] = [7; 32];

/// Signs a record value: returns the `bucket-signature` header value, if any.
pub trait Signer: Send + Sync {
    /// Header value for `value` sent by `integration_id`, or `None` for unsigned intents.
    fn header(&self, integration_id: &str, value: &[u8]) -> Option<Vec<u8>>;
}

/// No signature.
#[derive(Debug)]
pub struct Unsigned;

impl Signer for Unsigned {
    fn header(&self, _integration_id: &str, _value: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// HMAC-SHA256 signer.
#[derive(Debug)]
pub struct HmacSigner {
    /// Key id named in the header.
    pub key_id: String,
    /// Shared key.
    pub key: Vec<u8>,
}

impl Signer for HmacSigner {
    fn header(&self, integration_id: &str, value: &[u8]) -> Option<Vec<u8>> {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).ok()?;
        mac.update(value);
        let sig = mac.finalize().into_bytes();
        Some(header(integration_id, &self.key_id, "hmac-sha256", &sig))
    }
}

/// Ed25519 signer.
#[derive(Debug)]
pub struct Ed25519Signer {
    /// Key id named in the header.
    pub key_id: String,
    /// Private key.
    pub key: ed25519_dalek::SigningKey,
}

impl Signer for Ed25519Signer {
    fn header(&self, integration_id: &str, value: &[u8]) -> Option<Vec<u8>> {
        let sig = self.key.sign(value);
        Some(header(
            integration_id,
            &self.key_id,
            "ed25519",
            &sig.to_bytes(),
        ))
    }
}

fn header(integration_id: &str, key_id: &str, alg: &str, sig: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
    format!("v1:{integration_id}:{key_id}:{alg}:{b64}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_none_is_runnable_and_signers_produce_headers() {
        assert!(SigAlg::None.check().is_ok());
        assert!(SigAlg::Hmac.check().is_ok());
        assert!("rsa".parse::<SigAlg>().is_err());
        assert!(SigAlg::None.signer().header("i", b"v").is_none());
        let h = String::from_utf8(SigAlg::Hmac.signer().header("i", b"v").unwrap()).unwrap();
        assert!(h.starts_with("v1:i:bench-hmac-1:hmac-sha256:"), "{h}");
        let e = String::from_utf8(SigAlg::Ed25519.signer().header("i", b"v").unwrap()).unwrap();
        assert!(e.starts_with("v1:i:bench-ed25519-1:ed25519:"), "{e}");
    }
}
