//! Content rules: CREATE/UPDATE carry content, DELETE does not, size within the product's limit.

use crate::core::decide::{Context, Finding};
use crate::core::intent::Operation;
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    match (i.operation, &i.content) {
        (Operation::Delete, Some(_)) => out.push(Finding::new(
            ReasonCode::ContentNotAllowed,
            "DELETE must not carry content",
        )),
        (Operation::Create | Operation::Update, None) => out.push(Finding::new(
            ReasonCode::ContentMissing,
            format!("{} requires content", i.operation.as_str()),
        )),
        _ => {}
    }
    let limit = ctx
        .policy
        .products
        .get(&i.product_id)
        .map_or(ctx.policy.max_content_bytes, |p| p.max_content_bytes);
    if i.content_len() > limit {
        out.push(Finding::new(
            ReasonCode::ContentTooLarge,
            format!("content is {} bytes, limit is {limit}", i.content_len()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::core::intent::Operation;
    use crate::core::policy::MAX_CONTENT_BYTES;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    #[test]
    fn sixteen_mib_fits_one_more_byte_does_not() {
        let mut i = create();
        i.content = Some(vec![0; MAX_CONTENT_BYTES as usize]);
        assert!(
            decide_on(&i, &PartitionState::default())
                .findings
                .is_empty()
        );
        i.content = Some(vec![0; MAX_CONTENT_BYTES as usize + 1]);
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::ContentTooLarge]
        );
    }

    #[test]
    fn per_product_limit_applies() {
        let mut i = create();
        i.product_id = "enforcement_engine".into();
        i.integration_id = "enforcement_engine-backend".into();
        i.content = Some(vec![0; 1024 * 1024 + 1]);
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::ContentTooLarge]
        );
    }

    #[test]
    fn create_without_content_and_delete_with_content_are_refused() {
        let mut i = create();
        i.content = None;
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::ContentMissing]
        );
        let mut s = PartitionState::default();
        accept(&create(), &mut s);
        let mut d = with_op(create(), Operation::Delete, Some(1));
        d.content = Some(b"x".to_vec());
        assert_eq!(
            decide_on(&d, &s).reasons(),
            vec![ReasonCode::ContentNotAllowed]
        );
    }
}
