//! Metadata bounds (T1 metadata explosion, docs/origins.md#t1) and server-owned fields a client
//! may not set (T2 metadata poisoning).

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let text = &ctx.intent.metadata;
    let limits = &ctx.policy.limits;
    if text.len() > limits.max_metadata_bytes {
        out.push(Finding::new(
            ReasonCode::MetadataTooLarge,
            format!(
                "metadata is {} bytes, limit is {}",
                text.len(),
                limits.max_metadata_bytes
            ),
        ));
        return;
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return; // empty or not an object: the fields rule reports it
    };
    let (depth, keys) = shape(&serde_json::Value::Object(map.clone()));
    if depth > limits.max_metadata_depth {
        out.push(Finding::new(
            ReasonCode::MetadataTooDeep,
            format!(
                "metadata nests {depth} levels, limit is {}",
                limits.max_metadata_depth
            ),
        ));
    }
    if keys > limits.max_metadata_keys {
        out.push(Finding::new(
            ReasonCode::MetadataTooManyKeys,
            format!(
                "metadata has {keys} keys, limit is {}",
                limits.max_metadata_keys
            ),
        ));
    }
    let reserved: Vec<&String> = map
        .keys()
        .filter(|k| {
            ctx.policy.threats.reserved_metadata_keys.contains(*k) || k.starts_with("bucket.")
        })
        .collect();
    if !reserved.is_empty() {
        out.push(Finding::new(
            ReasonCode::ReservedMetadataKey,
            format!("metadata sets server-owned field(s) {reserved:?}"),
        ));
    }
}

/// (depth, total key count) of a JSON value; an object or array adds one level.
fn shape(v: &serde_json::Value) -> (usize, usize) {
    match v {
        serde_json::Value::Object(m) => m.values().fold((1, m.len()), |(d, k), v| {
            let (cd, ck) = shape(v);
            (d.max(cd + 1), k + ck)
        }),
        serde_json::Value::Array(a) => a.iter().fold((1, 0), |(d, k), v| {
            let (cd, ck) = shape(v);
            (d.max(cd + 1), k + ck)
        }),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    fn reasons(metadata: String) -> Vec<ReasonCode> {
        let mut i = create();
        i.metadata = metadata;
        decide_on(&i, &PartitionState::default()).reasons()
    }

    #[test]
    fn bounds_and_reserved_keys() {
        let deep = format!("{}1{}", "{\"a\":".repeat(20), "}".repeat(20));
        assert_eq!(reasons(deep), vec![ReasonCode::MetadataTooDeep]);
        let many: Vec<String> = (0..300).map(|n| format!("\"k{n}\":1")).collect();
        assert_eq!(
            reasons(format!("{{{}}}", many.join(","))),
            vec![ReasonCode::MetadataTooManyKeys]
        );
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(70_000));
        assert_eq!(reasons(big), vec![ReasonCode::MetadataTooLarge]);
        assert_eq!(
            reasons("{\"version\": 99}".into()),
            vec![ReasonCode::ReservedMetadataKey]
        );
        assert_eq!(
            reasons("{\"bucket.accepted\": true}".into()),
            vec![ReasonCode::ReservedMetadataKey]
        );
        assert!(reasons("{\"lang\": \"en\", \"tags\": [1, 2]}".into()).is_empty());
    }
}
