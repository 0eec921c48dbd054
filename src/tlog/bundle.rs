//! The proof bundle: one decision's stored bytes, its index, its inclusion proof and the signed
//! checkpoint it is proven against, as one JSON document a product hands to an auditor, who
//! checks it offline with the gate's verifier key ([`verify_bundle`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::TlogError;
use super::checkpoint::TreeHead;
use super::hash::{Hash, leaf_hash};
use super::note::{NoteVerifier, open};
use super::proof::{HashReader, prove_inclusion, verify_inclusion};

/// The `format` value of this version of the bundle.
pub const BUNDLE_FORMAT: &str = "bhiv-bucket-proof/v1";

/// A self-contained inclusion proof of one audit link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofBundle {
    /// Always [`BUNDLE_FORMAT`]; a reader refuses formats it does not know.
    pub format: String,
    /// The leaf index: the link's chain `seq` in its partition.
    pub index: u64,
    /// Base64 of the link's stored bytes (the Avro body as written, the leaf's preimage).
    pub record: String,
    /// Sibling hashes from the leaf to the root (base64), RFC 6962 order.
    pub inclusion_proof: Vec<Hash>,
    /// The signed checkpoint note (C2SP `tlog-checkpoint`), verbatim.
    pub checkpoint: String,
}

/// What a verified bundle establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The log (audit partition) it is a member of.
    pub origin: String,
    /// The size of the signed tree it is proven in.
    pub tree_size: u64,
    /// Its index in that tree.
    pub index: u64,
    /// The record's bytes.
    pub record: Vec<u8>,
}

impl ProofBundle {
    /// The bundle for leaf `index` with bytes `record`, proven against `checkpoint` (a signed
    /// note of tree size `size`) from the stored hashes of that tree.
    pub fn build<R: HashReader + ?Sized>(
        index: u64,
        record: &[u8],
        size: u64,
        checkpoint: &str,
        reader: &R,
    ) -> Result<ProofBundle, TlogError> {
        Ok(ProofBundle {
            format: BUNDLE_FORMAT.to_string(),
            index,
            record: STANDARD.encode(record),
            inclusion_proof: prove_inclusion(size, index, reader)?,
            checkpoint: checkpoint.to_string(),
        })
    }

    /// Parses a bundle from its JSON text.
    pub fn from_json(text: &str) -> Result<ProofBundle, TlogError> {
        serde_json::from_str(text).map_err(|e| TlogError::Malformed(format!("proof bundle: {e}")))
    }

    /// The bundle as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and hashes cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Checks a bundle with the gate's verifier key (or any of `keys`, for rotation): the checkpoint
/// is signed, and the record is leaf `index` of the tree it names.
pub fn verify_bundle(bundle: &ProofBundle, keys: &[NoteVerifier]) -> Result<Verified, TlogError> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(TlogError::Malformed(format!(
            "unknown bundle format {:?} (this tool reads {BUNDLE_FORMAT})",
            bundle.format
        )));
    }
    let head = TreeHead::parse(&open(&bundle.checkpoint, keys)?)?;
    let record = STANDARD
        .decode(&bundle.record)
        .map_err(|e| TlogError::Malformed(format!("record is not base64: {e}")))?;
    verify_inclusion(
        &bundle.inclusion_proof,
        head.size,
        &head.root,
        bundle.index,
        &leaf_hash(&record),
    )?;
    Ok(Verified {
        origin: head.origin,
        tree_size: head.size,
        index: bundle.index,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::signature::SignKey;
    use crate::tlog::checkpoint::{key_name, origin};
    use crate::tlog::note::NoteSigner;
    use crate::tlog::proof::{MemoryHashes, tree_hash};

    #[test]
    fn a_bundle_verifies_and_tampering_fails_it() {
        let signer =
            NoteSigner::new(&key_name("test"), &SignKey::ed25519_from_seed(&[5; 32])).unwrap();
        let mut m = MemoryHashes::new();
        for i in 0..1000u32 {
            m.append(leaf_hash(format!("link {i}").as_bytes()));
        }
        let head = TreeHead::new(origin("test", 3), 1000, tree_hash(1000, &m).unwrap());
        let note = signer.sign(&head.to_text().unwrap()).unwrap();
        let b = ProofBundle::build(41, b"link 41", 1000, &note, &m).unwrap();
        let back = ProofBundle::from_json(&b.to_json()).unwrap();
        assert_eq!(back, b);
        assert!(b.to_json().len() < 2048);
        let keys = [signer.verifier()];
        let v = verify_bundle(&b, &keys).unwrap();
        assert_eq!(
            (v.origin.as_str(), v.tree_size, v.index),
            ("test/bucket.audit/3", 1000, 41)
        );

        let mut t = b.clone();
        t.record = STANDARD.encode(b"link 42");
        assert!(matches!(
            verify_bundle(&t, &keys),
            Err(TlogError::ProofFailed(_))
        ));
        let mut t = b.clone();
        t.index = 42;
        assert!(verify_bundle(&t, &keys).is_err());
        let mut t = b.clone();
        t.checkpoint = t.checkpoint.replacen("\n1000\n", "\n1001\n", 1);
        assert!(matches!(
            verify_bundle(&t, &keys),
            Err(TlogError::Signature(_))
        ));
        let other =
            NoteSigner::new(&key_name("test"), &SignKey::ed25519_from_seed(&[6; 32])).unwrap();
        assert!(verify_bundle(&b, &[other.verifier()]).is_err());
        let mut t = b.clone();
        t.format = "v0".into();
        assert!(verify_bundle(&t, &keys).is_err());
        assert!(ProofBundle::from_json("{").is_err());
    }
}
