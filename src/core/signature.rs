//! The `bucket-signature` header: `v1:<integration_id>:<key_id>:<alg>:<base64 signature>` over
//! the exact record value bytes. Parsing, verifying and signing; pure functions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, Verifier};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Supported signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// Ed25519 (RFC 8032), preferred: the gate holds only public keys.
    Ed25519,
    /// HMAC-SHA256 with a shared secret.
    HmacSha256,
}

impl Alg {
    /// Header spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Ed25519 => "ed25519",
            Alg::HmacSha256 => "hmac-sha256",
        }
    }

    /// Parses the header spelling.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "ed25519" => Some(Alg::Ed25519),
            "hmac-sha256" => Some(Alg::HmacSha256),
            _ => None,
        }
    }
}

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Integration claiming to have signed.
    pub integration_id: String,
    /// Key id within the integration.
    pub key_id: String,
    /// Algorithm.
    pub alg: Alg,
    /// Raw signature bytes.
    pub signature: Vec<u8>,
}

/// Key material the gate verifies with.
#[derive(Clone, PartialEq, Eq)]
pub enum VerifyKey {
    /// Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// HMAC secret (never printed).
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyKey::Ed25519(k) => write!(f, "Ed25519({})", STANDARD.encode(k.as_bytes())),
            VerifyKey::Hmac(_) => f.write_str("Hmac(<secret>)"),
        }
    }
}

impl VerifyKey {
    /// Algorithm of this key.
    pub fn alg(&self) -> Alg {
        match self {
            VerifyKey::Ed25519(_) => Alg::Ed25519,
            VerifyKey::Hmac(_) => Alg::HmacSha256,
        }
    }
}

/// Parses the header value; the error says what is wrong.
pub fn parse(value: &[u8]) -> Result<SignatureHeader, String> {
    let text = std::str::from_utf8(value).map_err(|_| "header is not UTF-8".to_string())?;
    let parts: Vec<&str> = text.split(':').collect();
    let [version, integration_id, key_id, alg, sig] = parts.as_slice() else {
        return Err(format!(
            "expected 5 ':'-separated parts (v1:<integration>:<key>:<alg>:<base64>), got {}",
            parts.len()
        ));
    };
    if *version != "v1" {
        return Err(format!("unsupported signature version {version:?}"));
    }
    let alg = Alg::parse(alg).ok_or_else(|| format!("unsupported algorithm {alg:?}"))?;
    let signature = STANDARD
        .decode(sig)
        .map_err(|e| format!("signature is not base64: {e}"))?;
    if integration_id.is_empty() || key_id.is_empty() {
        return Err("empty integration or key id".into());
    }
    Ok(SignatureHeader {
        integration_id: integration_id.to_string(),
        key_id: key_id.to_string(),
        alg,
        signature,
    })
}

/// True when `sig` is a valid signature of `message` under `key`.
pub fn verify(key: &VerifyKey, message: &[u8], sig: &[u8]) -> bool {
    match key {
        VerifyKey::Ed25519(k) => match ed25519_dalek::Signature::from_slice(sig) {
            Ok(s) => k.verify(message, &s).is_ok(),
            Err(_) => false,
        },
        VerifyKey::Hmac(secret) => match hmac::Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(message);
                mac.verify_slice(sig).is_ok()
            }
            Err(_) => false,
        },
    }
}

/// Verifies many `(key, message, signature)` items, with the same answer per item as
/// [`verify`] for every honestly made or forged signature: the Ed25519 ones in one batch
/// equation (about half the cost each), falling back to one by one when the batch fails, to
/// find the invalid ones; HMAC ones one by one. (A signature *crafted by the key's holder* with
/// a small-order component can pass a batch that single verification refuses: ADR 0014.)
pub fn verify_all(items: &[(&VerifyKey, &[u8], &[u8])]) -> Vec<bool> {
    let mut valid = vec![false; items.len()];
    let mut batch: Vec<(usize, ed25519_dalek::VerifyingKey, ed25519_dalek::Signature)> = Vec::new();
    for (i, (key, message, sig)) in items.iter().enumerate() {
        match key {
            VerifyKey::Ed25519(k) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => batch.push((i, *k, s)),
                Err(_) => valid[i] = false,
            },
            VerifyKey::Hmac(_) => valid[i] = verify(key, message, sig),
        }
    }
    let messages: Vec<&[u8]> = batch.iter().map(|(i, _, _)| items[*i].1).collect();
    let signatures: Vec<ed25519_dalek::Signature> = batch.iter().map(|(_, _, s)| *s).collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = batch.iter().map(|(_, k, _)| *k).collect();
    let all_valid =
        batch.len() > 1 && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
    for (i, key, sig) in &batch {
        valid[*i] = all_valid || key.verify(items[*i].1, sig).is_ok();
    }
    valid
}

/// Private key material a producer signs with.
#[derive(Clone)]
pub enum SignKey {
    /// Ed25519 secret key (32-byte seed).
    Ed25519(ed25519_dalek::SigningKey),
    /// HMAC secret.
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for SignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignKey(<secret>)")
    }
}

impl SignKey {
    /// Ed25519 key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> SignKey {
        SignKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Public key of an Ed25519 key (None for HMAC).
    pub fn public_key(&self) -> Option<[u8; 32]> {
        match self {
            SignKey::Ed25519(k) => Some(k.verifying_key().to_bytes()),
            SignKey::Hmac(_) => None,
        }
    }

    /// The header value signing `value` as `integration`/`key_id`.
    pub fn header(&self, integration: &str, key_id: &str, value: &[u8]) -> String {
        let (alg, sig) = match self {
            SignKey::Ed25519(k) => (Alg::Ed25519, k.sign(value).to_bytes().to_vec()),
            SignKey::Hmac(secret) => {
                let sig = match hmac::Hmac::<Sha256>::new_from_slice(secret) {
                    Ok(mut mac) => {
                        mac.update(value);
                        mac.finalize().into_bytes().to_vec()
                    }
                    Err(_) => Vec::new(),
                };
                (Alg::HmacSha256, sig)
            }
        };
        format!(
            "v1:{integration}:{key_id}:{}:{}",
            alg.as_str(),
            STANDARD.encode(sig)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Mixed batches of valid, tampered, truncated and wrong-key signatures of both kinds:
        /// `verify_all` answers exactly as `verify` does, item by item.
        #[test]
        fn verify_all_answers_as_verify_one_by_one(
            items in proptest::collection::vec((0u8..4, 0u8..5, any::<[u8; 8]>()), 0..24)
        ) {
            let ed_sign = [SignKey::ed25519_from_seed(&[1; 32]), SignKey::ed25519_from_seed(&[2; 32])];
            let ed_verify: Vec<VerifyKey> = ed_sign
                .iter()
                .map(|k| VerifyKey::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&k.public_key().unwrap()).unwrap()))
                .collect();
            let hmac = (SignKey::Hmac(b"k1".to_vec()), VerifyKey::Hmac(b"k1".to_vec()));
            let mut owned: Vec<(VerifyKey, Vec<u8>, Vec<u8>)> = Vec::new();
            for (kind, damage, message) in &items {
                let (sk, vk) = match kind {
                    0 => (&ed_sign[0], ed_verify[0].clone()),
                    1 => (&ed_sign[1], ed_verify[1].clone()),
                    // Signed by one Ed25519 key, checked with the other.
                    2 => (&ed_sign[0], ed_verify[1].clone()),
                    _ => (&hmac.0, hmac.1.clone()),
                };
                let mut sig = parse(sk.header("i", "k", message).as_bytes()).unwrap().signature;
                let mut message = message.to_vec();
                match damage {
                    1 => message[0] ^= 1,
                    2 => sig[5] ^= 0x40,
                    3 => { sig.pop(); }
                    _ => {}
                }
                owned.push((vk, message, sig));
            }
            let borrowed: Vec<(&VerifyKey, &[u8], &[u8])> =
                owned.iter().map(|(k, m, s)| (k, m.as_slice(), s.as_slice())).collect();
            let one_by_one: Vec<bool> = borrowed.iter().map(|(k, m, s)| verify(k, m, s)).collect();
            prop_assert_eq!(verify_all(&borrowed), one_by_one);
        }
    }

    #[test]
    fn ed25519_and_hmac_round_trip_and_detect_tampering() {
        let ed = SignKey::ed25519_from_seed(&[7; 32]);
        let pk = ed25519_dalek::VerifyingKey::from_bytes(&ed.public_key().unwrap()).unwrap();
        let hm = SignKey::Hmac(b"s3cret".to_vec());
        for (sk, vk) in [
            (ed, VerifyKey::Ed25519(pk)),
            (hm, VerifyKey::Hmac(b"s3cret".to_vec())),
        ] {
            let h = parse(sk.header("i", "k", b"value").as_bytes()).unwrap();
            assert_eq!(h.alg, vk.alg());
            assert!(verify(&vk, b"value", &h.signature));
            assert!(!verify(&vk, b"valuE", &h.signature));
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &b"v1:i:k:ed25519"[..],
            b"v2:i:k:ed25519:AAAA",
            b"v1:i:k:rsa:AAAA",
            b"v1:i:k:ed25519:!!!",
            b"v1::k:ed25519:AAAA",
            b"\xff",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The worked example of docs/wire-contract.md, byte for byte.
    #[test]
    fn documented_hmac_example() {
        let h = SignKey::Hmac(b"demo-secret".to_vec()).header("gurukul-backend", "hm1", b"hello");
        assert_eq!(
            h,
            "v1:gurukul-backend:hm1:hmac-sha256:LSAv2JacO6NPoZVtZ0y+jLpCXPhrY8eGQf0ZnTUOCJ0="
        );
    }
}
