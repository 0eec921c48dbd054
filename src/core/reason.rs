//! Stable reason codes: the vocabulary of every rejection (documented in `docs/reason-codes.md`).

use std::fmt;

/// Why an intent was rejected. The string form is a stable public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// Value is not Confluent-framed (missing, too short, or magic byte not 0).
    MalformedRecord,
    /// Schema id in the frame is unknown to the registry.
    UnknownSchemaId,
    /// Schema id resolves to a schema that is not one of the approved schemas in `schemas/`.
    SchemaNotApproved,
    /// Avro body does not decode with its schema (truncated, trailing bytes, bad values).
    MalformedAvro,
    /// A decoded field breaks a format rule (intent_id not a UUID, empty ids, metadata not JSON).
    InvalidField,
    /// Record key differs from the intent's `product_id`.
    KeyMismatch,
    /// Intent is not on its product's home partition (Kafka's murmur2 of the key).
    WrongPartition,
    /// `product_id` is not in the policy.
    UnknownProduct,
    /// Artifact class is unknown or not allowed for this product.
    ClassNotAllowed,
    /// The class forbids this operation (immutable classes refuse UPDATE and DELETE).
    OperationNotAllowed,
    /// Only the artifact's owner may delete it.
    NotOwner,
    /// CREATE of an artifact id that already exists.
    ArtifactExists,
    /// UPDATE or DELETE of an artifact that does not exist (or is deleted).
    ArtifactNotFound,
    /// UPDATE or DELETE without `expected_version`.
    ExpectedVersionMissing,
    /// `expected_version` differs from the current version (optimistic concurrency).
    VersionConflict,
    /// CREATE or UPDATE without content.
    ContentMissing,
    /// DELETE carrying content.
    ContentNotAllowed,
    /// Content larger than the product's limit (16 MiB at most).
    ContentTooLarge,
    /// `integration_id` is not an approved integration.
    UnknownIntegration,
    /// The integration is revoked.
    IntegrationRevoked,
    /// The integration may not write for this product.
    IntegrationNotAllowed,
    /// No `bucket-signature` header while the policy requires one.
    SignatureMissing,
    /// The signature header does not parse.
    SignatureMalformed,
    /// More than one `bucket-signature` header: none is verified, whichever was meant.
    SignatureRepeated,
    /// The header names another integration than the intent.
    SignatureMismatch,
    /// The header's key id is not a key of the integration (or the algorithm differs).
    UnknownKey,
    /// The signing key is revoked.
    KeyRevoked,
    /// The signature does not verify over the value bytes.
    SignatureInvalid,
    /// This `intent_id` was already decided for the product.
    ReplayedIntent,
    /// `owner_id` differs from the artifact's recorded owner (forged ownership).
    OwnerMismatch,
    /// `client_time` is further from server time than the policy allows.
    ClockSkew,
    /// `purpose` is empty: the provenance "why" is mandatory.
    PurposeMissing,
    /// Metadata text is larger than allowed.
    MetadataTooLarge,
    /// Metadata nests deeper than allowed.
    MetadataTooDeep,
    /// Metadata has more keys than allowed.
    MetadataTooManyKeys,
    /// Metadata sets a server-owned field.
    ReservedMetadataKey,
    /// Metadata contains a secret or private key.
    SecretInMetadata,
    /// Content contains a secret or private key.
    SecretInContent,
    /// Accepting would push the product's stored bytes or live artifacts over its quota.
    QuotaExceeded,
    /// Accepting would push the total of all products over the global quota.
    GlobalQuotaExceeded,
    /// The product is over its intents-per-second rate (GCRA); retry after the header's delay.
    RateLimited,
    /// The integration is cooling off after too many rejections.
    CoolingOff,
}

impl ReasonCode {
    /// Every code, in rule order; used by docs and tests.
    pub const ALL: [ReasonCode; 42] = [
        ReasonCode::MalformedRecord,
        ReasonCode::UnknownSchemaId,
        ReasonCode::SchemaNotApproved,
        ReasonCode::MalformedAvro,
        ReasonCode::InvalidField,
        ReasonCode::KeyMismatch,
        ReasonCode::WrongPartition,
        ReasonCode::UnknownProduct,
        ReasonCode::ClassNotAllowed,
        ReasonCode::OperationNotAllowed,
        ReasonCode::NotOwner,
        ReasonCode::ArtifactExists,
        ReasonCode::ArtifactNotFound,
        ReasonCode::ExpectedVersionMissing,
        ReasonCode::VersionConflict,
        ReasonCode::ContentMissing,
        ReasonCode::ContentNotAllowed,
        ReasonCode::ContentTooLarge,
        ReasonCode::UnknownIntegration,
        ReasonCode::IntegrationRevoked,
        ReasonCode::IntegrationNotAllowed,
        ReasonCode::SignatureMissing,
        ReasonCode::SignatureMalformed,
        ReasonCode::SignatureRepeated,
        ReasonCode::SignatureMismatch,
        ReasonCode::UnknownKey,
        ReasonCode::KeyRevoked,
        ReasonCode::SignatureInvalid,
        ReasonCode::ReplayedIntent,
        ReasonCode::OwnerMismatch,
        ReasonCode::ClockSkew,
        ReasonCode::PurposeMissing,
        ReasonCode::MetadataTooLarge,
        ReasonCode::MetadataTooDeep,
        ReasonCode::MetadataTooManyKeys,
        ReasonCode::ReservedMetadataKey,
        ReasonCode::SecretInMetadata,
        ReasonCode::SecretInContent,
        ReasonCode::QuotaExceeded,
        ReasonCode::GlobalQuotaExceeded,
        ReasonCode::RateLimited,
        ReasonCode::CoolingOff,
    ];

    /// The stable wire spelling, e.g. `SCHEMA_NOT_APPROVED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::MalformedRecord => "MALFORMED_RECORD",
            ReasonCode::UnknownSchemaId => "UNKNOWN_SCHEMA_ID",
            ReasonCode::SchemaNotApproved => "SCHEMA_NOT_APPROVED",
            ReasonCode::MalformedAvro => "MALFORMED_AVRO",
            ReasonCode::InvalidField => "INVALID_FIELD",
            ReasonCode::KeyMismatch => "KEY_MISMATCH",
            ReasonCode::WrongPartition => "WRONG_PARTITION",
            ReasonCode::UnknownProduct => "UNKNOWN_PRODUCT",
            ReasonCode::ClassNotAllowed => "CLASS_NOT_ALLOWED",
            ReasonCode::OperationNotAllowed => "OPERATION_NOT_ALLOWED",
            ReasonCode::NotOwner => "NOT_OWNER",
            ReasonCode::ArtifactExists => "ARTIFACT_EXISTS",
            ReasonCode::ArtifactNotFound => "ARTIFACT_NOT_FOUND",
            ReasonCode::ExpectedVersionMissing => "EXPECTED_VERSION_MISSING",
            ReasonCode::VersionConflict => "VERSION_CONFLICT",
            ReasonCode::ContentMissing => "CONTENT_MISSING",
            ReasonCode::ContentNotAllowed => "CONTENT_NOT_ALLOWED",
            ReasonCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReasonCode::UnknownIntegration => "UNKNOWN_INTEGRATION",
            ReasonCode::IntegrationRevoked => "INTEGRATION_REVOKED",
            ReasonCode::IntegrationNotAllowed => "INTEGRATION_NOT_ALLOWED",
            ReasonCode::SignatureMissing => "SIGNATURE_MISSING",
            ReasonCode::SignatureMalformed => "SIGNATURE_MALFORMED",
            ReasonCode::SignatureRepeated => "SIGNATURE_REPEATED",
            ReasonCode::SignatureMismatch => "SIGNATURE_MISMATCH",
            ReasonCode::UnknownKey => "UNKNOWN_KEY",
            ReasonCode::KeyRevoked => "KEY_REVOKED",
            ReasonCode::SignatureInvalid => "SIGNATURE_INVALID",
            ReasonCode::ReplayedIntent => "REPLAYED_INTENT",
            ReasonCode::OwnerMismatch => "OWNER_MISMATCH",
            ReasonCode::ClockSkew => "CLOCK_SKEW",
            ReasonCode::PurposeMissing => "PURPOSE_MISSING",
            ReasonCode::MetadataTooLarge => "METADATA_TOO_LARGE",
            ReasonCode::MetadataTooDeep => "METADATA_TOO_DEEP",
            ReasonCode::MetadataTooManyKeys => "METADATA_TOO_MANY_KEYS",
            ReasonCode::ReservedMetadataKey => "RESERVED_METADATA_KEY",
            ReasonCode::SecretInMetadata => "SECRET_IN_METADATA",
            ReasonCode::SecretInContent => "SECRET_IN_CONTENT",
            ReasonCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ReasonCode::GlobalQuotaExceeded => "GLOBAL_QUOTA_EXCEEDED",
            ReasonCode::RateLimited => "RATE_LIMITED",
            ReasonCode::CoolingOff => "COOLING_OFF",
        }
    }

    /// Parses the wire spelling back (used when reading the audit log).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// Seeds' threat id this rule defends against, if any.
    pub fn threat(self) -> Option<&'static str> {
        match self {
            ReasonCode::SchemaNotApproved | ReasonCode::UnknownSchemaId => Some("T3"),
            ReasonCode::KeyMismatch | ReasonCode::WrongPartition => Some("T7"),
            ReasonCode::UnknownProduct | ReasonCode::ClassNotAllowed => Some("T7"),
            ReasonCode::OperationNotAllowed | ReasonCode::NotOwner => Some("T5"),
            ReasonCode::VersionConflict | ReasonCode::ArtifactExists => Some("T4"),
            ReasonCode::ContentTooLarge => Some("T1"),
            ReasonCode::QuotaExceeded | ReasonCode::GlobalQuotaExceeded => Some("T1"),
            ReasonCode::RateLimited | ReasonCode::CoolingOff => Some("T6"),
            ReasonCode::UnknownIntegration
            | ReasonCode::IntegrationRevoked
            | ReasonCode::SignatureMissing
            | ReasonCode::SignatureMalformed
            | ReasonCode::SignatureRepeated
            | ReasonCode::SignatureMismatch
            | ReasonCode::UnknownKey
            | ReasonCode::KeyRevoked
            | ReasonCode::SignatureInvalid
            | ReasonCode::ReplayedIntent
            | ReasonCode::OwnerMismatch
            | ReasonCode::ClockSkew
            | ReasonCode::ReservedMetadataKey
            | ReasonCode::SecretInMetadata => Some("T2"),
            ReasonCode::IntegrationNotAllowed => Some("T7"),
            ReasonCode::PurposeMissing => Some("T10"),
            ReasonCode::MetadataTooLarge
            | ReasonCode::MetadataTooDeep
            | ReasonCode::MetadataTooManyKeys => Some("T1"),
            ReasonCode::SecretInContent => Some("T5"),
            _ => None,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(c.as_str()), Some(c));
            assert!(seen.insert(c.as_str()), "duplicate spelling {c}");
        }
    }

    /// docs/reason-codes.md lists every code with its threat id and the producer's fix.
    #[test]
    fn every_code_is_documented_with_its_threat() {
        let doc = include_str!("../../docs/reason-codes.md");
        for c in ReasonCode::ALL {
            let prefix = format!("| `{}` |", c.as_str());
            let row = doc
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("{c} is missing from docs/reason-codes.md"));
            let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 5, "{c}: row must have 5 columns: {row}");
            assert_eq!(cells[3], c.threat().unwrap_or("—"), "{c}: threat column");
            assert!(cells[4].len() > 10, "{c}: say what the producer should do");
        }
    }
}
