//! The `bucket.control` record format: governance events that happen outside the gate (schemas
//! applied, topics created or drifted, state rebuilt, storage purged, legal holds), and how the
//! gate folds one into the audit chain. Pure; publishing lives in `crate::control`.
//!
//! The audit chains have one writer each (the gate task owning the partition), so an operator
//! tool cannot append to them. It publishes a [`ControlEvent`] (JSON) to the one-partition
//! control topic instead; the gate instance that owns intents partition [`CHAIN_PARTITION`]
//! folds each control record into that partition's chain inside its Kafka transaction, and
//! records the control offset in the link, so every control record is folded exactly once and
//! `bucket audit verify` can prove that none was skipped (docs/audit.md).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The audit chain (= intents partition) whose owner folds control events.
pub const CHAIN_PARTITION: i32 = 0;

/// Event types an operator tool may publish; anything else is folded as `CONTROL_REJECTED`.
pub const EVENT_TYPES: &[&str] = &[
    "SCHEMAS_APPLIED",
    "TOPICS_CREATED",
    "TOPIC_DRIFT",
    "STATE_REBUILT",
    "STORAGE_PURGED",
    "LEGAL_HOLD_PLACED",
    "LEGAL_HOLD_LIFTED",
    "TLOG_INCONSISTENT",
];

/// One governance event published by an operator tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlEvent {
    /// One of [`EVENT_TYPES`].
    pub event_type: String,
    /// The tool that published it, e.g. `bucket schemas apply`.
    pub source: String,
    /// Who ran it (user@host), as the tool saw it.
    pub actor: String,
    /// Tool clock, ms since the epoch.
    pub at_ms: i64,
    /// Event-specific fields.
    pub detail: serde_json::Value,
}

impl ControlEvent {
    /// A new event by `actor` (`user@host`) at `at_ms` (the shell stamps both:
    /// `crate::control::stamped`).
    pub fn new(
        event_type: &str,
        source: &str,
        actor: String,
        at_ms: i64,
        detail: serde_json::Value,
    ) -> Self {
        ControlEvent {
            event_type: event_type.to_string(),
            source: source.to_string(),
            actor,
            at_ms,
            detail,
        }
    }
}

/// What the gate writes into the chain for one control record (the governance detail).
pub fn fold_detail(offset: i64, bytes: Option<&[u8]>) -> (String, serde_json::Value) {
    let bytes = bytes.unwrap_or_default();
    let sha = hex::encode(Sha256::digest(bytes));
    let parsed = serde_json::from_slice::<ControlEvent>(bytes)
        .map_err(|e| e.to_string())
        .and_then(|e| {
            if EVENT_TYPES.contains(&e.event_type.as_str()) {
                Ok(e)
            } else {
                Err(format!("unknown event type {:?}", e.event_type))
            }
        });
    match parsed {
        Ok(e) => (
            e.event_type.clone(),
            serde_json::json!({
                "control_offset": offset, "control_sha256": sha,
                "source": e.source, "actor": e.actor, "at_ms": e.at_ms, "detail": e.detail,
            }),
        ),
        Err(error) => (
            "CONTROL_REJECTED".to_string(),
            serde_json::json!({
                "control_offset": offset, "control_sha256": sha, "error": error,
                "bytes": bytes.len(),
            }),
        ),
    }
}

/// The control offset a governance detail records, if it is a folded control record.
pub fn folded_offset(detail: &str) -> Option<i64> {
    folded_record(detail).map(|(offset, _)| offset)
}

/// The control offset and control record SHA-256 a governance detail records, if it is a folded
/// control record (one parse for the verifier, which needs both).
pub fn folded_record(detail: &str) -> Option<(i64, String)> {
    if !detail.contains("\"control_offset\"") {
        return None;
    }
    let v = serde_json::from_str::<serde_json::Value>(detail).ok()?;
    let offset = v.get("control_offset")?.as_i64()?;
    let sha = v
        .get("control_sha256")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    Some((offset, sha.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_event_is_folded_with_its_offset_and_hash() {
        let e = ControlEvent::new(
            "SCHEMAS_APPLIED",
            "bucket schemas apply",
            "ops@host".into(),
            1_700_000_000_000,
            serde_json::json!({"ids": [1]}),
        );
        let bytes = serde_json::to_vec(&e).unwrap();
        let (ty, detail) = fold_detail(7, Some(&bytes));
        assert_eq!(ty, "SCHEMAS_APPLIED");
        assert_eq!(detail["control_offset"], 7);
        assert_eq!(detail["detail"]["ids"][0], 1);
        assert_eq!(folded_offset(&detail.to_string()), Some(7));
    }

    #[test]
    fn garbage_and_unknown_types_are_folded_as_rejected_never_dropped() {
        let (ty, detail) = fold_detail(3, Some(b"\xff not json"));
        assert_eq!(ty, "CONTROL_REJECTED");
        assert_eq!(folded_offset(&detail.to_string()), Some(3));
        let forged =
            ControlEvent::new("POLICY_LOADED", "x", "a@b".into(), 0, serde_json::json!({}));
        let (ty, _) = fold_detail(4, Some(&serde_json::to_vec(&forged).unwrap()));
        assert_eq!(
            ty, "CONTROL_REJECTED",
            "gate-only event types cannot be injected"
        );
        let (ty, _) = fold_detail(5, None);
        assert_eq!(ty, "CONTROL_REJECTED");
    }

    #[test]
    fn details_without_a_control_offset_are_not_folded_records() {
        assert_eq!(folded_offset(r#"{"from":"a","to":"b"}"#), None);
        assert_eq!(folded_offset("not json \"control_offset\""), None);
    }
}
