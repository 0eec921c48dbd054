//! Format rules on decoded fields: ids present, intent_id a UUID, metadata a JSON object, and no
//! text storage cannot hold (every accepted version must be storable).

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

/// Longest id accepted for product, artifact, owner, requester and integration ids.
pub const MAX_ID_LEN: usize = 256;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    if uuid::Uuid::parse_str(&i.intent_id).is_err() {
        out.push(Finding::new(
            ReasonCode::InvalidField,
            format!("intent_id {:?} is not a UUID", truncate(&i.intent_id)),
        ));
    }
    for (name, value) in [
        ("product_id", &i.product_id),
        ("integration_id", &i.integration_id),
        ("owner_id", &i.owner_id),
        ("requester_id", &i.requester_id),
        ("artifact_id", &i.artifact_id),
        ("artifact_class", &i.artifact_class),
    ] {
        if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
            out.push(Finding::new(
                ReasonCode::InvalidField,
                format!("{name} must be 1..={MAX_ID_LEN} printable characters"),
            ));
        }
    }
    // Storage keeps these as text, which cannot hold NUL: an accepted version must be storable.
    if i.content_type.len() > MAX_ID_LEN || i.content_type.chars().any(char::is_control) {
        out.push(Finding::new(
            ReasonCode::InvalidField,
            format!("content_type must be at most {MAX_ID_LEN} printable characters"),
        ));
    }
    if i.purpose.contains('\0') {
        out.push(Finding::new(
            ReasonCode::InvalidField,
            "purpose must not contain NUL characters",
        ));
    }
    match serde_json::from_str::<serde_json::Value>(&i.metadata) {
        _ if i.metadata.is_empty() => {}
        Ok(serde_json::Value::Object(_)) => {}
        _ => out.push(Finding::new(
            ReasonCode::InvalidField,
            "metadata must be a JSON object",
        )),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    #[test]
    fn bad_uuid_empty_id_and_non_object_metadata_are_each_reported() {
        let mut i = create();
        i.intent_id = "not-a-uuid".into();
        i.owner_id = String::new();
        i.metadata = "[1,2]".into();
        let d = decide_on(&i, &PartitionState::default());
        assert_eq!(d.reasons(), vec![ReasonCode::InvalidField; 3]);
    }

    #[test]
    fn text_storage_cannot_hold_is_refused() {
        let mut i = create();
        i.content_type = "text/plain\0".into();
        i.purpose = "why\0not".into();
        let d = decide_on(&i, &PartitionState::default());
        assert_eq!(d.reasons(), vec![ReasonCode::InvalidField; 2]);
        // Newlines in a purpose are prose, not a storage hazard.
        i.content_type = "application/vnd.example+json; charset=utf-8".into();
        i.purpose = "line one\nline two".into();
        assert!(
            decide_on(&i, &PartitionState::default())
                .findings
                .is_empty()
        );
    }

    #[test]
    fn valid_intent_passes() {
        let d = decide_on(&create(), &PartitionState::default());
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }
}
