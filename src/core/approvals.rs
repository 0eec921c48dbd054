//! Policy approvals, decided: who may approve the next policy (an [`ApproverSet`]: named SSH
//! keys and how many of them must sign), and whether a set of detached OpenSSH signatures
//! (`ssh-keygen -Y sign -n bucket-policy`, the `sshsig` format) approves exactly these policy
//! bytes ([`evaluate`]). Pure: the bytes of the policy and of each signature file come in, a
//! [`Verdict`] goes out. Reading the files is the shell's (`policy::approvals`).
//!
//! Signatures are parsed and verified by the RustCrypto `ssh-key` crate (ADR 0010), never by
//! hand. An approver is identified by the SHA-256 fingerprint of the key inside the signature;
//! the file name is only a label.

use std::collections::BTreeMap;

use serde::Deserialize;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, Fingerprint, HashAlg, PublicKey, SshSig};

/// The `sshsig` namespace every approval must be made in (`ssh-keygen -Y sign -n bucket-policy`).
pub const NAMESPACE: &str = "bucket-policy";

/// Largest signature file read; an armored `sshsig` is well under 2 KiB.
pub const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

/// Most signature files considered for one policy (more is refused as a whole).
pub const MAX_SIGNATURE_FILES: usize = 64;

/// Why an approver set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("approvals: {0}")]
pub struct ApprovalsError(pub String);

fn invalid<T>(m: impl Into<String>) -> Result<T, ApprovalsError> {
    Err(ApprovalsError(m.into()))
}

/// How an approver's key is known: the whole public key, or only its SHA-256 fingerprint (an
/// operator's pin may give fingerprints; the key itself then comes with the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverKey {
    /// An OpenSSH public key.
    Key(PublicKey),
    /// A `SHA256:…` fingerprint.
    Fingerprint(Fingerprint),
}

/// One approver: a name and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Name, as in the policy or the first principal of an `allowed_signers` line.
    pub name: String,
    /// The key (or its fingerprint).
    pub key: ApproverKey,
}

impl Approver {
    /// `SHA256:…` fingerprint of the approver's key.
    pub fn fingerprint(&self) -> String {
        match &self.key {
            ApproverKey::Key(k) => k.fingerprint(HashAlg::Sha256).to_string(),
            ApproverKey::Fingerprint(f) => f.to_string(),
        }
    }

    /// The key in `authorized_keys` form, or the fingerprint when only that is known.
    pub fn key_text(&self) -> String {
        match &self.key {
            ApproverKey::Key(k) => {
                let mut k = k.clone();
                k.set_comment("");
                k.to_openssh().unwrap_or_else(|_| self.fingerprint())
            }
            ApproverKey::Fingerprint(f) => f.to_string(),
        }
    }
}

/// Who may approve the next policy, and how many of them must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverSet {
    /// Distinct approvers whose valid signatures a new policy needs.
    pub required: usize,
    /// The approvers, in declaration order; names and keys are unique.
    pub approvers: Vec<Approver>,
}

/// The `[approvals]` table of a policy file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsFile {
    /// Approvals the next policy needs.
    pub required: usize,
    /// The approvers.
    pub approvers: Vec<ApproverFile>,
}

/// One approver of the `[approvals]` table, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverFile {
    /// Name.
    pub name: String,
    /// Public key in `authorized_keys` form (`ssh-ed25519 AAAA… comment`).
    pub key: String,
}

/// Key types that can approve: Ed25519 and ECDSA, hardware-backed (`sk-`) ones included.
fn supported(alg: &Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } | Algorithm::SkEd25519
    ) || *alg == Algorithm::SkEcdsaSha2NistP256
}

fn parse_key(what: &str, text: &str) -> Result<PublicKey, ApprovalsError> {
    let key = PublicKey::from_openssh(text.trim())
        .map_err(|e| ApprovalsError(format!("{what}: not an OpenSSH public key: {e}")))?;
    if !supported(&key.algorithm()) {
        return invalid(format!(
            "{what}: key type {} cannot approve (use ed25519, ecdsa or their sk- forms)",
            key.algorithm()
        ));
    }
    Ok(key)
}

impl ApproverSet {
    /// Validates a set: `required` in 1..=approvers, names non-empty and unique, keys unique.
    pub fn new(required: usize, approvers: Vec<Approver>) -> Result<ApproverSet, ApprovalsError> {
        if approvers.is_empty() {
            return invalid("at least one approver is required");
        }
        if required == 0 || required > approvers.len() {
            return invalid(format!(
                "required must be in 1..={} (the number of approvers), got {required}",
                approvers.len()
            ));
        }
        let mut names = BTreeMap::new();
        let mut prints = BTreeMap::new();
        for a in &approvers {
            if a.name.is_empty() || a.name.chars().any(|c| c.is_whitespace() || c == '/') {
                return invalid(format!(
                    "approver name {:?} must be non-empty, without spaces or '/'",
                    a.name
                ));
            }
            if names.insert(a.name.clone(), ()).is_some() {
                return invalid(format!("approver {:?} is named twice", a.name));
            }
            if let Some(other) = prints.insert(a.fingerprint(), a.name.clone()) {
                return invalid(format!(
                    "approvers {other:?} and {:?} have the same key",
                    a.name
                ));
            }
        }
        Ok(ApproverSet {
            required,
            approvers,
        })
    }

    /// The set a policy's `[approvals]` table names.
    pub fn from_file(file: &ApprovalsFile) -> Result<ApproverSet, ApprovalsError> {
        let mut approvers = Vec::with_capacity(file.approvers.len());
        for a in &file.approvers {
            approvers.push(Approver {
                name: a.name.clone(),
                key: ApproverKey::Key(parse_key(&format!("approver {:?}", a.name), &a.key)?),
            });
        }
        ApproverSet::new(file.required, approvers)
    }

    /// The `[approvals]` table of a policy text, read without validating the rest of the policy
    /// (the audit verifier has no HMAC secrets): `None` when the policy names no approvers.
    pub fn of_policy_text(text: &str) -> Result<Option<ApproverSet>, ApprovalsError> {
        #[derive(Deserialize)]
        struct Only {
            approvals: Option<ApprovalsFile>,
        }
        let only: Only =
            toml::from_str(text).map_err(|e| ApprovalsError(format!("policy text: {e}")))?;
        only.approvals.as_ref().map(Self::from_file).transpose()
    }

    /// An operator's pin: OpenSSH `allowed_signers` lines (`name[,…] [namespaces="…"] keytype
    /// base64 [comment]`) or `name SHA256:…` fingerprint lines; `#` comments and blank lines
    /// are skipped. The first principal names the approver.
    pub fn parse_allowed_signers(
        text: &str,
        required: usize,
    ) -> Result<ApproverSet, ApprovalsError> {
        let mut approvers = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let what = format!("allowed_signers line {}", n + 1);
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let Some((principals, rest)) = tokens.split_first() else {
                continue;
            };
            let name = principals.split(',').next().unwrap_or_default().to_string();
            if let [fp] = rest
                && fp.starts_with("SHA256:")
            {
                let f: Fingerprint = fp
                    .parse()
                    .map_err(|e| ApprovalsError(format!("{what}: bad fingerprint: {e}")))?;
                approvers.push(Approver {
                    name,
                    key: ApproverKey::Fingerprint(f),
                });
                continue;
            }
            let Some(at) = rest.iter().position(|t| t.parse::<Algorithm>().is_ok()) else {
                return invalid(format!("{what}: no public key"));
            };
            let options = rest[..at].join(" ");
            if !options.is_empty() {
                let ns = options
                    .strip_prefix("namespaces=")
                    .map(|v| v.trim_matches('"'));
                match ns {
                    Some(list) if list.split(',').any(|n| n == NAMESPACE) => {}
                    Some(_) => {
                        return invalid(format!("{what}: its namespaces exclude {NAMESPACE}"));
                    }
                    None => {
                        return invalid(format!(
                            "{what}: option {options:?} is not supported (only namespaces=)"
                        ));
                    }
                }
            }
            approvers.push(Approver {
                name,
                key: ApproverKey::Key(parse_key(&what, &rest[at..].join(" "))?),
            });
        }
        ApproverSet::new(required, approvers)
    }

    /// The approver whose key is `key`.
    fn approver_for(&self, key: &KeyData) -> Option<&Approver> {
        let print = key.fingerprint(HashAlg::Sha256);
        self.approvers.iter().find(|a| match &a.key {
            ApproverKey::Key(k) => k.key_data() == key,
            ApproverKey::Fingerprint(f) => *f == print,
        })
    }
}

/// One detached signature file found next to a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFile {
    /// File name (a label: the approver is the key inside).
    pub name: String,
    /// Its bytes (an armored `-----BEGIN SSH SIGNATURE-----` block).
    pub bytes: Vec<u8>,
}

/// A valid signature of an approver, counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Signature file name.
    pub file: String,
    /// Approver name.
    pub approver: String,
    /// `SHA256:…` fingerprint of the signing key.
    pub fingerprint: String,
    /// The armored signature, as read.
    pub signature: String,
}

/// A signature file that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Signature file name.
    pub file: String,
    /// Why it does not count.
    pub reason: String,
}

/// What the signatures of a policy amount to under an approver set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Distinct approvers needed.
    pub required: usize,
    /// Valid signatures, one per distinct approver, in file order.
    pub counted: Vec<Counted>,
    /// Files that do not count (unreadable, other namespace, not an approver, not these bytes,
    /// a second signature of an approver already counted).
    pub failed: Vec<Failed>,
}

impl Verdict {
    /// True when at least `required` distinct approvers signed.
    pub fn approved(&self) -> bool {
        self.counted.len() >= self.required
    }

    /// One line: the count, who signed, and every file that did not count with its reason.
    pub fn summary(&self) -> String {
        let who: Vec<String> = self
            .counted
            .iter()
            .map(|c| format!("{} ({})", c.approver, c.fingerprint))
            .collect();
        let mut s = format!(
            "{} of {} required approvals{}{}",
            self.counted.len(),
            self.required,
            if who.is_empty() { "" } else { ": " },
            who.join(", ")
        );
        for f in &self.failed {
            s.push_str(&format!("; {} does not count: {}", f.file, f.reason));
        }
        s
    }
}

/// The user-presence flag of a security-key (`sk-`) signature.
const SK_USER_PRESENT: u8 = 0x01;
/// Flags (1 byte) and counter (4 bytes) end an `sk-` signature.
const SK_TRAILER: usize = 5;

/// Checks one signature file against `set` over `policy`: the approver it counts for, or why
/// it does not count.
pub fn check_one(set: &ApproverSet, policy: &[u8], bytes: &[u8]) -> Result<Counted, String> {
    if bytes.len() > MAX_SIGNATURE_BYTES {
        return Err(format!("larger than {MAX_SIGNATURE_BYTES} bytes"));
    }
    let sig = SshSig::from_pem(bytes)
        .map_err(|e| format!("not an SSH signature (ssh-keygen -Y sign): {e}"))?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "made in namespace {:?}, not {NAMESPACE:?} (sign with -n {NAMESPACE})",
            sig.namespace()
        ));
    }
    let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let Some(approver) = set.approver_for(sig.public_key()) else {
        return Err(format!(
            "signed by key {fingerprint}, which is not an approver of the active policy"
        ));
    };
    if !supported(&sig.public_key().algorithm()) {
        return Err(format!(
            "key type {} cannot approve",
            sig.public_key().algorithm()
        ));
    }
    PublicKey::from(sig.public_key().clone())
        .verify(NAMESPACE, policy, &sig)
        .map_err(|e| {
            format!(
                "{}'s signature does not verify over these policy bytes (signed another version, \
                 or the file changed after signing): {e}",
                approver.name
            )
        })?;
    if matches!(
        sig.algorithm(),
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256
    ) {
        let raw = sig.signature_bytes();
        let flags = raw
            .len()
            .checked_sub(SK_TRAILER)
            .and_then(|i| raw.get(i))
            .copied()
            .unwrap_or(0);
        if flags & SK_USER_PRESENT == 0 {
            return Err(format!(
                "{}'s security key signed without user presence (no touch)",
                approver.name
            ));
        }
    }
    Ok(Counted {
        file: String::new(),
        approver: approver.name.clone(),
        fingerprint,
        signature: String::from_utf8_lossy(bytes).trim().to_string(),
    })
}

/// Whether the signature `files` approve exactly the bytes `policy` under `set`: each distinct
/// approver of `set` with a valid signature counts once.
pub fn evaluate(set: &ApproverSet, policy: &[u8], files: &[SignatureFile]) -> Verdict {
    let mut verdict = Verdict {
        required: set.required,
        counted: Vec::new(),
        failed: Vec::new(),
    };
    for (i, f) in files.iter().enumerate() {
        if i >= MAX_SIGNATURE_FILES {
            verdict.failed.push(Failed {
                file: f.name.clone(),
                reason: format!("more than {MAX_SIGNATURE_FILES} signature files"),
            });
            continue;
        }
        match check_one(set, policy, &f.bytes) {
            Ok(c) => {
                if let Some(first) = verdict.counted.iter().find(|x| x.approver == c.approver) {
                    verdict.failed.push(Failed {
                        file: f.name.clone(),
                        reason: format!(
                            "duplicate: {} is already counted ({})",
                            c.approver, first.file
                        ),
                    });
                } else {
                    verdict.counted.push(Counted {
                        file: f.name.clone(),
                        ..c
                    });
                }
            }
            Err(reason) => verdict.failed.push(Failed {
                file: f.name.clone(),
                reason,
            }),
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    use ed25519_dalek::Signer;
    use ssh_key::Signature;
    use ssh_key::public::{Ed25519PublicKey, SkEd25519};

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn public(seed: u8) -> PublicKey {
        let pk = Ed25519PublicKey(key(seed).verifying_key().to_bytes());
        PublicKey::new(KeyData::Ed25519(pk), "")
    }

    /// An `sshsig` by `seed`'s key in `namespace`, made as `ssh-keygen -Y sign` makes it.
    fn sign(seed: u8, namespace: &str, msg: &[u8]) -> Vec<u8> {
        let data = SshSig::signed_data(namespace, HashAlg::Sha512, msg).unwrap();
        let raw = key(seed).sign(&data).to_bytes();
        let sig = Signature::new(Algorithm::Ed25519, raw.to_vec()).unwrap();
        SshSig::new(
            public(seed).key_data().clone(),
            namespace,
            HashAlg::Sha512,
            sig,
        )
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap()
        .into_bytes()
    }

    fn set(required: usize, seeds: &[u8]) -> ApproverSet {
        ApproverSet::new(
            required,
            seeds
                .iter()
                .map(|s| Approver {
                    name: format!("a{s}"),
                    key: ApproverKey::Key(public(*s)),
                })
                .collect(),
        )
        .unwrap()
    }

    fn file(name: &str, bytes: Vec<u8>) -> SignatureFile {
        SignatureFile {
            name: name.into(),
            bytes,
        }
    }

    #[test]
    fn k_distinct_approvers_approve_and_duplicates_count_once() {
        let s = set(2, &[1, 2, 3]);
        let p = b"policy bytes";
        let one = [file("a1.sig", sign(1, NAMESPACE, p))];
        assert!(!evaluate(&s, p, &one).approved());
        let dup = [
            file("a1.sig", sign(1, NAMESPACE, p)),
            file("again.sig", sign(1, NAMESPACE, p)),
        ];
        let v = evaluate(&s, p, &dup);
        assert!(!v.approved(), "{}", v.summary());
        assert!(v.failed[0].reason.starts_with("duplicate"), "{v:?}");
        let two = [
            file("a1.sig", sign(1, NAMESPACE, p)),
            file("a3.sig", sign(3, NAMESPACE, p)),
        ];
        let v = evaluate(&s, p, &two);
        assert!(v.approved(), "{}", v.summary());
        assert_eq!(v.counted[1].approver, "a3");
    }

    #[test]
    fn other_bytes_namespace_or_signer_do_not_count() {
        let s = set(1, &[1]);
        let p = b"policy bytes";
        let reason = |bytes: Vec<u8>| {
            evaluate(&s, p, &[file("x", bytes)]).failed[0]
                .reason
                .clone()
        };
        assert!(reason(sign(1, NAMESPACE, b"policy bytez")).contains("does not verify"));
        assert!(reason(sign(1, "file", p)).contains("namespace \"file\""));
        assert!(reason(sign(9, NAMESPACE, p)).contains("not an approver"));
        assert!(reason(b"hello".to_vec()).contains("not an SSH signature"));
        assert!(reason(vec![b'x'; MAX_SIGNATURE_BYTES + 1]).contains("larger"));
    }

    #[test]
    fn a_security_key_signature_needs_user_presence() {
        let sk = SkEd25519::new(Ed25519PublicKey(key(4).verifying_key().to_bytes()), "ssh:");
        let data_key = KeyData::SkEd25519(sk);
        let approvers = ApproverSet::new(
            1,
            vec![Approver {
                name: "yubi".into(),
                key: ApproverKey::Key(PublicKey::new(data_key.clone(), "")),
            }],
        )
        .unwrap();
        let p = b"policy";
        let make = |flags: u8| {
            use sha2::{Digest, Sha256};
            let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, p).unwrap();
            let mut signed = Sha256::digest(b"ssh:").to_vec();
            signed.push(flags);
            signed.extend([0, 0, 0, 7]);
            signed.extend(Sha256::digest(&data));
            let mut raw = key(4).sign(&signed).to_bytes().to_vec();
            raw.push(flags);
            raw.extend([0, 0, 0, 7]);
            let sig = Signature::new(Algorithm::SkEd25519, raw).unwrap();
            SshSig::new(data_key.clone(), NAMESPACE, HashAlg::Sha512, sig)
                .unwrap()
                .to_pem(ssh_key::LineEnding::LF)
                .unwrap()
                .into_bytes()
        };
        assert!(evaluate(&approvers, p, &[file("t", make(SK_USER_PRESENT))]).approved());
        let v = evaluate(&approvers, p, &[file("t", make(0))]);
        assert!(v.failed[0].reason.contains("user presence"), "{v:?}");
    }

    #[test]
    fn sets_are_validated() {
        let a = |name: &str, seed: u8| Approver {
            name: name.into(),
            key: ApproverKey::Key(public(seed)),
        };
        assert!(ApproverSet::new(0, vec![a("x", 1)]).is_err());
        assert!(ApproverSet::new(2, vec![a("x", 1)]).is_err());
        assert!(ApproverSet::new(1, vec![a("x", 1), a("x", 2)]).is_err());
        assert!(ApproverSet::new(1, vec![a("x", 1), a("y", 1)]).is_err());
        assert!(ApproverSet::new(1, vec![a("x y", 1)]).is_err());
    }

    #[test]
    fn allowed_signers_lines_and_fingerprint_pins() {
        let k1 = public(1).to_openssh().unwrap();
        let k2 = public(2);
        let text = format!(
            "# demo\n\nalice,alice@example {k1} alice laptop\nbob {}\ncarol namespaces=\"git,{NAMESPACE}\" {}\n",
            k2.fingerprint(HashAlg::Sha256),
            public(3).to_openssh().unwrap()
        );
        let s = ApproverSet::parse_allowed_signers(&text, 2).unwrap();
        let names: Vec<&str> = s.approvers.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        let p = b"first policy";
        let v = evaluate(
            &s,
            p,
            &[
                file("b", sign(2, NAMESPACE, p)),
                file("c", sign(3, NAMESPACE, p)),
            ],
        );
        assert!(v.approved(), "a fingerprint pin counts: {}", v.summary());
        let bad = format!("dave namespaces=\"git\" {k1}\n");
        assert!(ApproverSet::parse_allowed_signers(&bad, 1).is_err());
        let bad = format!("dave cert-authority {k1}\n");
        assert!(ApproverSet::parse_allowed_signers(&bad, 1).is_err());
    }

    #[test]
    fn the_approvals_table_is_read_from_policy_text_alone() {
        let text = format!(
            "[limits]\nwhatever = 1\n[approvals]\nrequired = 1\napprovers = [{{ name = \"a\", key = \"{}\" }}]\n",
            public(1).to_openssh().unwrap()
        );
        let s = ApproverSet::of_policy_text(&text).unwrap().unwrap();
        assert_eq!(s.approvers[0].name, "a");
        assert_eq!(ApproverSet::of_policy_text("[limits]\n").unwrap(), None);
    }
}
