//! The approved schemas, compiled in from `schemas/`, and their canonical-form fingerprints.
//! A schema id is approved only if the registry's schema for it has one of these fingerprints.

use std::sync::LazyLock;

use apache_avro::Schema;
use sha2::{Digest, Sha256};

/// `ArtifactIntent` schema text (producers' contract).
pub const INTENT_AVSC: &str = include_str!("../../schemas/artifact_intent.avsc");
/// `AcceptedArtifact` schema text.
pub const ACCEPTED_AVSC: &str = include_str!("../../schemas/accepted_artifact.avsc");

/// One approved schema: where it is registered and what it is.
#[derive(Debug)]
pub struct ApprovedSchema {
    /// File name under `schemas/`.
    pub file: &'static str,
    /// Registry subject (TopicNameStrategy on the default topic name).
    pub subject: &'static str,
    /// Schema text as committed.
    pub text: &'static str,
    /// Parsed schema.
    pub schema: Schema,
    /// Hex SHA-256 of the Parsing Canonical Form.
    pub fingerprint: String,
}

/// All schemas the project owns.
#[derive(Debug)]
pub struct Approved {
    /// Intents (input).
    pub intent: ApprovedSchema,
    /// Accepted artifacts (output).
    pub accepted: ApprovedSchema,
    /// Audit events (output), every version, oldest first: `audit_versions[n - 1]` is version n.
    pub audit_versions: Vec<ApprovedSchema>,
}

impl Approved {
    /// Every approved schema in registration order (audit versions oldest first, so the
    /// registry checks each against the one before).
    pub fn all(&self) -> Vec<&ApprovedSchema> {
        let mut out = vec![&self.intent, &self.accepted];
        out.extend(self.audit_versions.iter());
        out
    }

    /// The audit schema of one version (1-based), if approved.
    pub fn audit(&self, version: u8) -> Option<&ApprovedSchema> {
        self.audit_versions
            .get(usize::from(version).checked_sub(1)?)
    }
}

/// Hex SHA-256 of a schema's Parsing Canonical Form.
pub fn fingerprint(schema: &Schema) -> String {
    hex::encode(Sha256::digest(schema.canonical_form().as_bytes()))
}

fn load(file: &'static str, subject: &'static str, text: &'static str) -> ApprovedSchema {
    // The schemas are compiled in and covered by a unit test; a parse failure is a build defect.
    #[allow(clippy::expect_used)]
    let schema = Schema::parse_str(text).expect("schemas/*.avsc parse (checked by unit test)");
    let fingerprint = fingerprint(&schema);
    ApprovedSchema {
        file,
        subject,
        text,
        schema,
        fingerprint,
    }
}

/// The approved schemas, parsed once.
pub static APPROVED: LazyLock<Approved> = LazyLock::new(|| {
    // Bound what a length prefix in untrusted bytes can make Avro allocate: no field may exceed
    // the largest record the topics accept.
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
    Approved {
        intent: load("artifact_intent.avsc", "bucket.intents-value", INTENT_AVSC),
        accepted: load(
            "accepted_artifact.avsc",
            "bucket.accepted-value",
            ACCEPTED_AVSC,
        ),
        // Every version of the audit table (`wire::audit_versions::VERSIONS`), oldest first.
        audit_versions: (super::audit_versions::VERSIONS.iter())
            .map(|v| load(v.file, "bucket.audit-value", v.text))
            .collect(),
    }
});

/// Largest single allocation Avro decoding may make (the largest record is 16 MiB plus fields).
pub const MAX_AVRO_ALLOCATION: usize = 20 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_and_fingerprints_differ() {
        let a = &*APPROVED;
        assert_ne!(a.intent.fingerprint, a.accepted.fingerprint);
        for v in &a.audit_versions {
            assert_ne!(a.intent.fingerprint, v.fingerprint);
        }
        for (n, v) in a.audit_versions.iter().enumerate() {
            for w in &a.audit_versions[n + 1..] {
                assert_ne!(v.fingerprint, w.fingerprint);
            }
        }
    }

    #[test]
    fn docs_do_not_change_fingerprint_but_fields_do() {
        let with_doc =
            INTENT_AVSC.replacen("\"doc\": \"A product", "\"doc\": \"Changed. A product", 1);
        let s = Schema::parse_str(&with_doc).unwrap();
        assert_eq!(fingerprint(&s), APPROVED.intent.fingerprint);
        let extra = INTENT_AVSC.replacen(
            "\"fields\": [",
            "\"fields\": [{\"name\": \"sneaky\", \"type\": \"string\", \"default\": \"\"},",
            1,
        );
        let s = Schema::parse_str(&extra).unwrap();
        assert_ne!(fingerprint(&s), APPROVED.intent.fingerprint);
    }
}
