//! Storage quotas (T1, docs/origins.md#t1): accepting never pushes a product's stored bytes or
//! live artifacts over its quota (exact: the product's state lives on this partition), nor the
//! global totals (as known from all partitions, lagging by the publish interval). Deletes free
//! quota.

use crate::core::decide::{Context, Finding, candidate_change};
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    let Some(product) = ctx.policy.products.get(&i.product_id) else {
        return;
    };
    let (bytes, artifacts) = candidate_change(i, ctx.current);
    if bytes <= 0 && artifacts <= 0 {
        return; // shrinking never breaks a quota
    }
    let now = ctx.state.usage(&i.product_id);
    let after = now.plus(bytes, artifacts);
    if after.bytes > product.max_bytes || after.artifacts > product.max_artifacts {
        out.push(Finding::new(
            ReasonCode::QuotaExceeded,
            format!(
                "product {:?} would hold {} bytes / {} artifacts; quota is {} / {}",
                i.product_id,
                after.bytes,
                after.artifacts,
                product.max_bytes,
                product.max_artifacts
            ),
        ));
    }
    let global = ctx.state.global_total().plus(bytes, artifacts);
    let q = &ctx.policy.quotas;
    if global.bytes > q.global_max_bytes || global.artifacts > q.global_max_artifacts {
        out.push(Finding::new(
            ReasonCode::GlobalQuotaExceeded,
            format!(
                "all products would hold {} bytes / {} artifacts; global quota is {} / {}",
                global.bytes, global.artifacts, q.global_max_bytes, q.global_max_artifacts
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::core::intent::Operation;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::{PartitionState, Usage};

    #[test]
    fn quota_edge_one_byte() {
        let max = crate::core::policy::tests::shipped().products["ai_assistant"].max_bytes;
        let mut s = PartitionState::default();
        // Pretend the product already holds max - 6 bytes.
        s.add_usage("ai_assistant", max as i64 - 6, 1);
        let mut i = create();
        i.content = Some(b"123456".to_vec());
        assert!(
            decide_on(&i, &s).findings.is_empty(),
            "exactly at quota is fine"
        );
        i.content = Some(b"1234567".to_vec());
        assert_eq!(decide_on(&i, &s).reasons(), vec![ReasonCode::QuotaExceeded]);
    }

    #[test]
    fn deletes_free_quota_and_are_never_refused_for_it() {
        let max = crate::core::policy::tests::shipped().products["ai_assistant"].max_bytes;
        let mut s = PartitionState::default();
        accept(&create(), &mut s);
        s.add_usage("ai_assistant", max as i64, 0);
        let d = decide_on(&with_op(create(), Operation::Delete, Some(1)), &s);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!((d.size_delta, d.artifact_delta), (-5, -1));
    }

    #[test]
    fn global_quota_counts_other_partitions() {
        let q = crate::core::policy::tests::shipped().quotas;
        let mut s = PartitionState::default();
        s.set_others(Usage {
            bytes: q.global_max_bytes - 2,
            artifacts: 0,
        });
        assert_eq!(
            decide_on(&create(), &s).reasons(),
            vec![ReasonCode::GlobalQuotaExceeded]
        );
    }
}
