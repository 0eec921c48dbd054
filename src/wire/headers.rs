//! Header names of the wire contract: the producer's signature and the rejection context that
//! the gate adds on `bucket.rejected` (modelled on Kafka Connect's `__connect.errors.*`).

/// Producer signature header: `v1:<integration_id>:<key_id>:<alg>:<base64 sig>`.
pub const SIGNATURE: &str = "bucket-signature";
/// First reason code of the rejection.
pub const ERROR_REASON: &str = "bucket.errors.reason";
/// All reason codes, comma separated, in rule order.
pub const ERROR_REASONS: &str = "bucket.errors.reasons";
/// Human-readable detail of the first reason.
pub const ERROR_DETAIL: &str = "bucket.errors.detail";
/// Threat ids named by the findings, comma separated.
pub const ERROR_THREATS: &str = "bucket.errors.threats";
/// Source topic of the rejected record.
pub const ERROR_TOPIC: &str = "bucket.errors.topic";
/// Source partition of the rejected record.
pub const ERROR_PARTITION: &str = "bucket.errors.partition";
/// Source offset of the rejected record.
pub const ERROR_OFFSET: &str = "bucket.errors.offset";
/// Original record key bytes (the rejected record's own key is the product id or null).
pub const ERROR_ORIGINAL_KEY: &str = "bucket.errors.original.key";
/// Original record timestamp, ms.
pub const ERROR_ORIGINAL_TIMESTAMP: &str = "bucket.errors.original.timestamp";
/// Policy version the decision was made under.
pub const ERROR_POLICY_VERSION: &str = "bucket.errors.policy.version";
/// Intent id when the value decoded.
pub const ERROR_INTENT_ID: &str = "bucket.errors.intent.id";
/// Current artifact version on a version conflict, so the writer can rebase.
pub const ERROR_CURRENT_VERSION: &str = "bucket.errors.current.version";
/// On RATE_LIMITED: milliseconds to wait before the product's next intent conforms.
pub const ERROR_RETRY_AFTER_MS: &str = "bucket.errors.retry.after.ms";
