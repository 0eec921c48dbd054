//! Signed checkpoints, part of the audit contract: every so often a partition's chain gets a
//! `CHECKPOINT` governance link whose detail is a [`Checkpoint`]: an Ed25519 signature by the
//! gate over the chain head before it, and the transparency-log note of the partition's tree
//! (signed by `tlog::checkpoint::signed_note`). With only the public key, an auditor can prove
//! the log up to that point was written by the gate. The event's name is declared with every
//! other governance event's, in `core::events`, and re-exported here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::core::signature::{SignKey, VerifyKey, verify};

/// Governance event type of a checkpoint link (its name is declared with the others).
pub use crate::core::events::CHECKPOINT;

/// The detail JSON of a checkpoint link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Audit partition.
    pub partition: i32,
    /// Sequence number of the link being attested (the one before the checkpoint).
    pub signed_seq: i64,
    /// Hash of that link.
    pub signed_hash: String,
    /// Id of the gate key (public key in the policy's `[audit]` section).
    pub key_id: String,
    /// Base64 Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
    /// The partition's transparency-log checkpoint at this point: a C2SP signed note over the
    /// Merkle tree of links `0..=signed_seq` (tree size `signed_seq + 1`), signed with the same
    /// key under the note key name `tlog::checkpoint::key_name(deployment)` (docs/audit.md,
    /// "Proofs"). Absent in links written before it existed, or when the key cannot sign notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Checkpoint {
    /// The exact bytes signed: `bucket-audit-checkpoint:v1:<partition>:<seq>:<hash>`.
    pub fn message(partition: i32, seq: i64, hash: &str) -> Vec<u8> {
        format!("bucket-audit-checkpoint:v1:{partition}:{seq}:{hash}").into_bytes()
    }

    /// Signs the head (`seq`, `hash`) of `partition`.
    pub fn sign(key_id: &str, key: &SignKey, partition: i32, seq: i64, hash: &str) -> Checkpoint {
        let header = key.header("gate", key_id, &Self::message(partition, seq, hash));
        let signature = header.rsplit(':').next().unwrap_or_default().to_string();
        Checkpoint {
            partition,
            signed_seq: seq,
            signed_hash: hash.to_string(),
            key_id: key_id.to_string(),
            signature,
            note: None,
        }
    }

    /// True when the signature verifies under `key`.
    pub fn verify(&self, key: &VerifyKey) -> bool {
        let Ok(sig) = STANDARD.decode(&self.signature) else {
            return false;
        };
        verify(
            key,
            &Self::message(self.partition, self.signed_seq, &self.signed_hash),
            &sig,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = SignKey::ed25519_from_seed(&[3; 32]);
        let pk = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key().unwrap()).unwrap();
        let c = Checkpoint::sign("audit1", &k, 2, 41, "abc");
        assert!(c.verify(&VerifyKey::Ed25519(pk)));
        let mut forged = c.clone();
        forged.signed_seq = 42;
        assert!(!forged.verify(&VerifyKey::Ed25519(pk)));
    }

    #[test]
    fn a_note_is_kept_through_json_and_omitted_when_absent() {
        let k = SignKey::ed25519_from_seed(&[3; 32]);
        let mut c = Checkpoint::sign("audit1", &k, 2, 41, "abc");
        assert!(!serde_json::to_string(&c).unwrap().contains("note"));
        c.note = Some("a note".into());
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), c);
    }
}
