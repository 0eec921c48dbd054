//! The C2SP `tlog-checkpoint` body (origin, tree size, base64 root, optional extension lines)
//! and the names this deployment uses: one log per audit partition, one key per deployment.

use super::TlogError;
use super::hash::Hash;

/// The origin of audit partition `partition`'s log: `<deployment>/bucket.audit/<partition>`.
/// Per C2SP a schema-less URL-like name, unique per log; the partition makes each chain its
/// own log, and `deployment` (e.g. `bucket.example.org`) keeps two installations apart.
pub fn origin(deployment: &str, partition: i32) -> String {
    format!("{deployment}/bucket.audit/{partition}")
}

/// The note key name of a deployment's audit key: `<deployment>/bucket.audit`. C2SP says the
/// key name SHOULD match the origin; one gate key signs every partition, so the name is the
/// origins' common prefix and an auditor needs one verifier key, not one per partition.
pub fn key_name(deployment: &str) -> String {
    format!("{deployment}/bucket.audit")
}

/// The signed C2SP note of audit partition `partition`'s tree (`tree`: the links written so
/// far) in `deployment`'s log, signed by `key` under [`key_name`]: what a `CHECKPOINT` link's
/// detail carries as its `note` (docs/audit.md, "Proofs").
pub fn signed_note(
    deployment: &str,
    key: &crate::core::signature::SignKey,
    partition: i32,
    tree: &super::Frontier,
) -> Result<String, TlogError> {
    let head = TreeHead::new(origin(deployment, partition), tree.size(), tree.root());
    let signer = super::NoteSigner::new(&key_name(deployment), key)?;
    signer.sign(&head.to_text()?)
}

/// A tree head: the body of a checkpoint before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The log's origin line (see [`origin`]).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash at `size`.
    pub root: Hash,
    /// Extension lines, each non-empty (NOT RECOMMENDED by C2SP; none written today).
    pub extensions: Vec<String>,
}

impl TreeHead {
    /// A head without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> TreeHead {
        TreeHead {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The note text: `origin\nsize\nbase64(root)\n[ext\n]*`; refused when a line would be
    /// empty or hold a newline (it would change the note's meaning).
    pub fn to_text(&self) -> Result<String, TlogError> {
        for line in std::iter::once(&self.origin).chain(&self.extensions) {
            if line.is_empty() || line.contains('\n') {
                return Err(TlogError::Malformed(format!(
                    "checkpoint line {line:?} is empty or holds a newline"
                )));
            }
        }
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, self.root);
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        Ok(s)
    }

    /// Parses a checkpoint body (the text of an opened note).
    pub fn parse(text: &str) -> Result<TreeHead, TlogError> {
        let bad = |why: &str| TlogError::Malformed(format!("checkpoint: {why}"));
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if origin.is_empty() || extensions.iter().any(String::is_empty) {
            return Err(bad("empty line"));
        }
        let digits_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !digits_ok {
            return Err(bad("tree size is not a decimal without leading zeroes"));
        }
        let size = size.parse().map_err(|_| bad("tree size out of range"))?;
        Ok(TreeHead {
            origin: origin.to_string(),
            size,
            root: Hash::from_base64(root)?,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::hash::leaf_hash;

    #[test]
    fn body_round_trips_and_matches_the_spec_layout() {
        let mut h = TreeHead::new(origin("bucket.example.org", 2), 1000, leaf_hash(b"r"));
        let t = h.to_text().unwrap();
        assert_eq!(
            t,
            format!("bucket.example.org/bucket.audit/2\n1000\n{}\n", h.root)
        );
        assert_eq!(TreeHead::parse(&t).unwrap(), h);
        h.extensions.push("seq 41".into());
        assert_eq!(TreeHead::parse(&h.to_text().unwrap()).unwrap(), h);
        h.extensions.push(String::new());
        assert!(h.to_text().is_err());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let r = leaf_hash(b"r").to_base64();
        for bad in [
            format!("o\n1\n{r}"),
            format!("\n1\n{r}\n"),
            format!("o\n01\n{r}\n"),
            format!("o\n-1\n{r}\n"),
            format!("o\n+1\n{r}\n"),
            format!("o\n99999999999999999999999\n{r}\n"),
            "o\n1\nAAAA\n".to_string(),
            "o\n1\n".to_string(),
            format!("o\n1\n{r}\n\n"),
        ] {
            assert!(TreeHead::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(TreeHead::parse(&format!("o\n0\n{r}\n")).is_ok());
    }

    #[test]
    fn the_signed_note_commits_to_the_tree_and_opens_with_the_key() {
        let k = crate::core::signature::SignKey::ed25519_from_seed(&[3; 32]);
        let mut tree = crate::tlog::Frontier::new();
        for i in 0..42u8 {
            tree.append_bytes(&[i; 10]);
        }
        let note = signed_note("bucket.test", &k, 2, &tree).unwrap();
        let signer = crate::tlog::NoteSigner::new(&key_name("bucket.test"), &k).unwrap();
        let text = crate::tlog::note::open(&note, &[signer.verifier()]).unwrap();
        let head = TreeHead::parse(&text).unwrap();
        assert_eq!((head.size, head.root), (42, tree.root()));
        assert_eq!(head.origin, "bucket.test/bucket.audit/2");
        let other = crate::core::signature::SignKey::ed25519_from_seed(&[4; 32]);
        let forged = signed_note("bucket.test", &other, 2, &tree).unwrap();
        assert!(crate::tlog::note::open(&forged, &[signer.verifier()]).is_err());
    }
}
