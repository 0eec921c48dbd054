//! C2SP `signed-note` with Ed25519: signing a checkpoint body with the gate's audit key, the
//! verifier key string auditors hold (`name+keyid+base64(0x01||pubkey)`, as Go's
//! `golang.org/x/mod/sumdb/note` reads it), and opening a signed note.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use super::TlogError;
use crate::core::signature::SignKey;

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// Opening a note stops at this many signature lines (as Go's `note` does).
const MAX_SIGNATURES: usize = 100;

/// The em dash (U+2014) and space that start every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// A note key name: non-empty, no whitespace, no `+`.
fn check_name(name: &str) -> Result<(), TlogError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(TlogError::Malformed(format!(
            "note key name {name:?} is empty or holds whitespace or '+'"
        )));
    }
    Ok(())
}

/// The key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || pubkey), big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Signs note texts under a key name with an Ed25519 key (the gate's audit key).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: u32,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

impl NoteSigner {
    /// A signer named `name` with `key`; refused for an HMAC key or an invalid name.
    pub fn new(name: &str, key: &SignKey) -> Result<NoteSigner, TlogError> {
        check_name(name)?;
        let SignKey::Ed25519(key) = key else {
            return Err(TlogError::Signature(
                "signed notes need an Ed25519 key, not HMAC".into(),
            ));
        };
        Ok(NoteSigner {
            name: name.to_string(),
            id: key_id(name, &key.verifying_key().to_bytes()),
            key: key.clone(),
        })
    }

    /// The verifier key string to hand to auditors: `name+<8 hex keyid>+base64(0x01||pubkey)`.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_vkey()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signed note: `text`, a blank line, `— name base64(keyid || signature)`. The text
    /// must end in a newline, have no blank line and no control character other than newline.
    pub fn sign(&self, text: &str) -> Result<String, TlogError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes()).to_bytes();
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig);
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

fn check_text(text: &str) -> Result<(), TlogError> {
    if !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
        return Err(TlogError::Malformed(
            "note text must end in a newline and hold no blank line".into(),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(TlogError::Malformed(
            "note text holds a control character".into(),
        ));
    }
    Ok(())
}

/// A public key that opens notes: parsed from the verifier key string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl NoteVerifier {
    /// Parses `name+<8 hex keyid>+base64(0x01||pubkey)`; refused when the id is not the one the
    /// name and key give (a key string edited by hand or mixed up).
    pub fn parse(vkey: &str) -> Result<NoteVerifier, TlogError> {
        let bad = |why: &str| TlogError::Malformed(format!("verifier key: {why}"));
        let vkey = vkey.trim();
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+keyid+base64key"));
        };
        check_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("key id is not 8 hex digits"));
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("key id is not hex"))?;
        let data = STANDARD
            .decode(data)
            .map_err(|_| bad("key is not base64"))?;
        let Some((&ALG_ED25519, pk)) = data.split_first() else {
            return Err(bad("not an Ed25519 key (algorithm byte 0x01)"));
        };
        let pk: [u8; 32] = pk
            .try_into()
            .map_err(|_| bad("Ed25519 key is not 32 bytes"))?;
        if key_id(name, &pk) != id {
            return Err(bad("key id does not match the name and key"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .map_err(|_| bad("not a valid Ed25519 public key"))?;
        Ok(NoteVerifier {
            name: name.to_string(),
            id,
            key,
        })
    }

    /// The verifier of an Ed25519 public key under `name` (e.g. the gate's audit key from the
    /// policy's `[audit] keys`, named by [`super::checkpoint::key_name`]).
    pub fn from_ed25519(name: &str, public_key: &[u8; 32]) -> Result<NoteVerifier, TlogError> {
        check_name(name)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
            .map_err(|_| TlogError::Malformed("not a valid Ed25519 public key".into()))?;
        Ok(NoteVerifier {
            name: name.to_string(),
            id: key_id(name, public_key),
            key,
        })
    }

    /// The verifier key string, `name+<8 hex keyid>+base64(0x01||pubkey)`.
    pub fn to_vkey(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(data))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// The text of a signed note *without* checking any signature: for locating things (the tree
/// size a stored checkpoint names), never for trusting them; [`open`] is the check.
pub fn unverified_text(note: &str) -> Result<String, TlogError> {
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| TlogError::Malformed("signed note: no blank line".into()))?;
    let text = &note[..split + 1];
    check_text(text)?;
    Ok(text.to_string())
}

/// Opens a signed note: returns its text when at least one signature line is by one of
/// `verifiers` and verifies. Signatures by other keys are ignored (witnesses, rotated keys), a
/// bad signature by a known key fails the note.
pub fn open(note: &str, verifiers: &[NoteVerifier]) -> Result<String, TlogError> {
    let bad = |why: &str| TlogError::Malformed(format!("signed note: {why}"));
    let split = note.rfind("\n\n").ok_or_else(|| bad("no blank line"))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    check_text(text)?;
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or_else(|| bad("signatures do not end in a newline"))?;
    let mut verified = 0;
    for (i, line) in sigs.split('\n').enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(bad("too many signatures"));
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| bad("signature line does not start with an em dash"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| bad("signature line is not '— name signature'"))?;
        check_name(name)?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| bad("signature is not base64"))?;
        let Some((id, sig)) = blob.split_first_chunk::<4>() else {
            return Err(bad("signature shorter than its key id"));
        };
        let id = u32::from_be_bytes(*id);
        let Some(v) = verifiers.iter().find(|v| v.name == name && v.id == id) else {
            continue;
        };
        let ok = ed25519_dalek::Signature::from_slice(sig)
            .map(|s| v.key.verify(text.as_bytes(), &s).is_ok())
            .unwrap_or(false);
        if !ok {
            return Err(TlogError::Signature(format!(
                "invalid signature by {name}+{id:08x}"
            )));
        }
        verified += 1;
    }
    if verified == 0 {
        return Err(TlogError::Signature(
            "no signature by a known key (check the key name and key id)".into(),
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, &SignKey::ed25519_from_seed(&[seed; 32])).unwrap()
    }

    #[test]
    fn sign_then_open_with_the_verifier_key_string() {
        let s = signer("bucket.example.org/bucket.audit", 9);
        let v = NoteVerifier::parse(&s.verifier_key()).unwrap();
        assert_eq!(v, s.verifier());
        let pk = SignKey::ed25519_from_seed(&[9; 32]).public_key().unwrap();
        let from_pk = NoteVerifier::from_ed25519("bucket.example.org/bucket.audit", &pk).unwrap();
        assert_eq!(from_pk.to_vkey(), s.verifier_key());
        let note = s.sign("o\n1\nabc=\n").unwrap();
        assert!(note.starts_with("o\n1\nabc=\n\n\u{2014} bucket.example.org/bucket.audit "));
        assert_eq!(
            open(&note, std::slice::from_ref(&v)).unwrap(),
            "o\n1\nabc=\n"
        );
        // Tampered text, wrong key, unknown key only.
        let forged = note.replacen("1\n", "2\n", 1);
        assert!(matches!(
            open(&forged, std::slice::from_ref(&v)),
            Err(TlogError::Signature(_))
        ));
        let other = signer("bucket.example.org/bucket.audit", 8).verifier();
        assert!(open(&note, &[other]).is_err());
        // A second, unknown signature (a witness) is ignored.
        let witnessed = format!("{note}\u{2014} witness.example AAAAAAAA\n");
        assert!(open(&witnessed, &[v]).is_ok());
    }

    #[test]
    fn go_compatible_key_id_and_string() {
        // Key string layout and id as golang.org/x/mod/sumdb/note computes them; the Go test in
        // tests/tlog_go.rs checks the real thing.
        let s = signer("example.com/log", 1);
        let vk = s.verifier_key();
        let parts: Vec<&str> = vk.split('+').collect();
        assert_eq!(parts[0], "example.com/log");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(STANDARD.decode(parts[2]).unwrap().len(), 33);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(NoteSigner::new("a b", &SignKey::ed25519_from_seed(&[1; 32])).is_err());
        assert!(NoteSigner::new("a+b", &SignKey::ed25519_from_seed(&[1; 32])).is_err());
        assert!(NoteSigner::new("ok", &SignKey::Hmac(b"k".to_vec())).is_err());
        let s = signer("n", 1);
        assert!(s.sign("no newline").is_err());
        assert!(s.sign("a\n\nb\n").is_err());
        assert!(s.sign("a\tb\n").is_err());
        let vk = s.verifier_key();
        for bad in [
            "n",
            "n+zzzzzzzz+AQ==",
            "n+0000000+AQ==",
            &vk.replace("n+", "m+"),
            &format!("{}x", &vk[..vk.len() - 1]),
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad}");
        }
        let v = s.verifier();
        for bad in [
            "a\n",
            "a\n\nno dash\n",
            "a\n\n\u{2014} n !!!\n",
            "a\n\n\u{2014} n AAA=\n",
            "a\n\n\u{2014} n AAAAAAAA",
        ] {
            assert!(open(bad, std::slice::from_ref(&v)).is_err(), "{bad:?}");
        }
    }
}
