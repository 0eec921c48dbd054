//! The proof bundle: one decision's stored bytes, its index, its inclusion proof and the signed
//! checkpoint it is proven against, as one document a product hands to an auditor, who checks
//! it offline with the gate's verifier key ([`verify_bundle`]). Two encodings of the same
//! content: our JSON (`bhiv-bucket-proof/v1`, the first one handed out, read forever) and the
//! standard C2SP `tlog-proof@v1` text, which carries the record in its `extra` line and is the
//! smaller of the two ([`ProofBundle::to_tlog_proof`]); [`ProofBundle::parse`] reads either.

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

/// The first line of a C2SP `tlog-proof` (and the `format` of a bundle parsed from one).
pub const TLOG_PROOF_FORMAT: &str = "c2sp.org/tlog-proof@v1";

/// A self-contained inclusion proof of one audit link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofBundle {
    /// [`BUNDLE_FORMAT`] (or [`TLOG_PROOF_FORMAT`] when parsed from that text); a reader
    /// refuses formats it does not know.
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

    /// The bundle as a C2SP `tlog-proof@v1`: the record (the leaf's preimage) in the `extra`
    /// line, the index, one proof hash per line, an empty line, the checkpoint verbatim.
    pub fn to_tlog_proof(&self) -> String {
        let mut out = String::with_capacity(
            64 + self.record.len() + 45 * self.inclusion_proof.len() + self.checkpoint.len(),
        );
        out.push_str(TLOG_PROOF_FORMAT);
        out.push_str("\nextra ");
        out.push_str(&self.record);
        out.push_str(&format!("\nindex {}\n", self.index));
        for h in &self.inclusion_proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a bundle in either encoding: JSON (`{…}`) or a C2SP `tlog-proof@v1` text.
    pub fn parse(text: &str) -> Result<ProofBundle, TlogError> {
        if text.trim_start().starts_with('{') {
            ProofBundle::from_json(text)
        } else {
            ProofBundle::from_tlog_proof(text)
        }
    }

    /// Parses a C2SP `tlog-proof@v1` text. The `extra` line must carry the record: the
    /// checkpoint proves a leaf hash, and without its preimage there is no decision to show.
    pub fn from_tlog_proof(text: &str) -> Result<ProofBundle, TlogError> {
        let bad = |what: &str| TlogError::Malformed(format!("tlog-proof: {what}"));
        let (proof, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = proof.split('\n');
        if lines.next() != Some(TLOG_PROOF_FORMAT) {
            return Err(bad(&format!("the first line is not {TLOG_PROOF_FORMAT}")));
        }
        let record = lines
            .next()
            .and_then(|l| l.strip_prefix("extra "))
            .ok_or_else(|| {
                bad("no extra line: the record is not in this proof (bucket puts it there)")
            })?
            .to_string();
        let line = lines.next().ok_or_else(|| bad("no index line"))?;
        let index = line
            .strip_prefix("index ")
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad(&format!("{line:?} is not `index <decimal>`")))?;
        let inclusion_proof = lines
            .map(Hash::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProofBundle {
            format: TLOG_PROOF_FORMAT.to_string(),
            index,
            record,
            inclusion_proof,
            checkpoint: checkpoint.to_string(),
        })
    }
}

/// Checks a bundle with the gate's verifier key (or any of `keys`, for rotation): the checkpoint
/// is signed, and the record is leaf `index` of the tree it names.
pub fn verify_bundle(bundle: &ProofBundle, keys: &[NoteVerifier]) -> Result<Verified, TlogError> {
    if bundle.format != BUNDLE_FORMAT && bundle.format != TLOG_PROOF_FORMAT {
        return Err(TlogError::Malformed(format!(
            "unknown bundle format {:?} (this tool reads {BUNDLE_FORMAT} and {TLOG_PROOF_FORMAT})",
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
        let (b, signer) = signed_bundle(1000, 41, b"link 41");
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

    fn signed_bundle(size: u64, index: u64, record: &[u8]) -> (ProofBundle, NoteSigner) {
        let signer =
            NoteSigner::new(&key_name("test"), &SignKey::ed25519_from_seed(&[5; 32])).unwrap();
        let mut m = MemoryHashes::new();
        for i in 0..size {
            if i == index {
                m.append(leaf_hash(record));
            } else {
                m.append(leaf_hash(format!("link {i}").as_bytes()));
            }
        }
        let head = TreeHead::new(origin("test", 3), size, tree_hash(size, &m).unwrap());
        let note = signer.sign(&head.to_text().unwrap()).unwrap();
        (
            ProofBundle::build(index, record, size, &note, &m).unwrap(),
            signer,
        )
    }

    #[test]
    fn a_tlog_proof_carries_the_same_bundle_and_verifies() {
        let (b, signer) = signed_bundle(1000, 41, b"link 41");
        let keys = [signer.verifier()];
        let text = b.to_tlog_proof();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra bGluayA0MQ==\nindex 41\n"));
        assert_eq!(
            text.matches('\n').count(),
            3 + b.inclusion_proof.len() + 1 + 5
        );
        let back = ProofBundle::parse(&text).unwrap();
        assert_eq!(back.format, TLOG_PROOF_FORMAT);
        assert_eq!(
            (
                &back.record,
                back.index,
                &back.inclusion_proof,
                &back.checkpoint
            ),
            (&b.record, b.index, &b.inclusion_proof, &b.checkpoint)
        );
        let v = verify_bundle(&back, &keys).unwrap();
        assert_eq!((v.index, v.record.as_slice()), (41, &b"link 41"[..]));
        // The JSON form still parses through the same entry point.
        assert_eq!(ProofBundle::parse(&b.to_json()).unwrap(), b);

        // Tampering: another record, another index, a changed proof hash, a dropped hash.
        let other = text.replace("extra bGluayA0MQ==", "extra bGluayA0Mg==");
        assert!(matches!(
            verify_bundle(&ProofBundle::parse(&other).unwrap(), &keys),
            Err(TlogError::ProofFailed(_))
        ));
        let other = text.replace("index 41\n", "index 43\n");
        assert!(verify_bundle(&ProofBundle::parse(&other).unwrap(), &keys).is_err());
        let first = b.inclusion_proof[0].to_base64();
        let flipped = Hash([0x55; 32]).to_base64();
        let other = text.replacen(&first, &flipped, 1);
        assert!(verify_bundle(&ProofBundle::parse(&other).unwrap(), &keys).is_err());
        let other = text.replacen(&format!("{first}\n"), "", 1);
        assert!(verify_bundle(&ProofBundle::parse(&other).unwrap(), &keys).is_err());
    }

    #[test]
    fn a_malformed_tlog_proof_is_refused_with_its_reason() {
        let (b, _) = signed_bundle(8, 3, b"three");
        let text = b.to_tlog_proof();
        for (broken, why) in [
            (
                text.replace("c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v2\n"),
                "the first line is not",
            ),
            (text.replace("extra dGhyZWU=\n", ""), "no extra line"),
            (
                text.replace("index 3\n", "index 03\n"),
                "is not `index <decimal>`",
            ),
            (
                text.replace("index 3\n", "index -3\n"),
                "is not `index <decimal>`",
            ),
            (
                text.replace("index 3\n", "index3\n"),
                "is not `index <decimal>`",
            ),
            (text.replacen('=', "=x", 2), "base64"),
            (text.replace("\n\n", "\n"), "no empty line"),
        ] {
            let e = ProofBundle::parse(&broken).unwrap_err().to_string();
            assert!(e.contains(why), "{why:?} not in {e:?} for\n{broken}");
        }
    }

    /// Issue 17's size target: a typical decision link (519 bytes stored) in a partition of
    /// 10 M links (24 proof hashes), with a real signed note of that size.
    #[test]
    fn a_tlog_proof_at_ten_million_links_fits_in_two_kib() {
        let signer = NoteSigner::new(
            &key_name("bucket.example.org"),
            &SignKey::ed25519_from_seed(&[5; 32]),
        )
        .unwrap();
        let head = TreeHead::new(origin("bucket.example.org", 2), 10_000_000, Hash([7; 32]));
        // Leaf 8,388,607 is in the left subtree of 2^23 leaves, below the longest path: 23
        // hashes inside it plus the right subtree's root, the most any leaf of 10 M needs.
        let b = ProofBundle {
            format: TLOG_PROOF_FORMAT.into(),
            index: 8_388_607,
            record: STANDARD.encode([0xa5; 519]),
            inclusion_proof: vec![Hash([9; 32]); 24],
            checkpoint: signer.sign(&head.to_text().unwrap()).unwrap(),
        };
        let text = b.to_tlog_proof();
        assert!(text.len() <= 2048, "{} bytes", text.len());
        assert!(b.to_json().len() > 2048, "the JSON form is the larger one");
    }
}
