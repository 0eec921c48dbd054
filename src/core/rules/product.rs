//! Product rules: the product is known and may write this artifact class; a class never changes.

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    let Some(product) = ctx.policy.products.get(&i.product_id) else {
        out.push(Finding::new(
            ReasonCode::UnknownProduct,
            format!("product {:?} is not in the policy", i.product_id),
        ));
        return;
    };
    if !product.classes.contains(&i.artifact_class) {
        out.push(Finding::new(
            ReasonCode::ClassNotAllowed,
            format!(
                "class {:?} is not allowed for product {:?}",
                i.artifact_class, i.product_id
            ),
        ));
    } else if let Some(current) = ctx.current.filter(|c| c.artifact_class != i.artifact_class) {
        out.push(Finding::new(
            ReasonCode::ClassNotAllowed,
            format!(
                "artifact is of class {:?}; a class cannot change",
                current.artifact_class
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::core::intent::Operation;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    #[test]
    fn unknown_product_is_rejected() {
        let mut i = create();
        i.product_id = "nope".into();
        let d = decide_on(&i, &PartitionState::default());
        // No integration may write for a product the policy does not know.
        assert_eq!(
            d.reasons(),
            vec![
                ReasonCode::IntegrationNotAllowed,
                ReasonCode::UnknownProduct
            ]
        );
    }

    #[test]
    fn class_must_be_allowed_for_product() {
        let mut i = create();
        i.product_id = "ai_avatar".into();
        i.integration_id = "ai_avatar-backend".into();
        let d = decide_on(&i, &PartitionState::default());
        assert_eq!(d.reasons(), vec![ReasonCode::ClassNotAllowed]);
    }

    #[test]
    fn class_cannot_change_on_update() {
        let mut s = PartitionState::default();
        accept(&create(), &mut s);
        let mut u = with_op(create(), Operation::Update, Some(1));
        u.artifact_class = "transcript".into();
        let d = decide_on(&u, &s);
        assert_eq!(d.reasons(), vec![ReasonCode::ClassNotAllowed]);
    }
}
