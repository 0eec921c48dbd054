//! Operation rules: immutable classes refuse UPDATE and DELETE; only the owner deletes.

use crate::core::decide::{Context, Finding};
use crate::core::intent::Operation;
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    let class_name = ctx.current.map_or(&i.artifact_class, |c| &c.artifact_class);
    if let Some(class) = ctx.policy.classes.get(class_name)
        && !class.operations.contains(&i.operation)
    {
        out.push(Finding::new(
            ReasonCode::OperationNotAllowed,
            format!(
                "class {class_name:?} does not permit {}",
                i.operation.as_str()
            ),
        ));
    }
    if i.operation == Operation::Delete
        && let Some(current) = ctx.current
        && current.owner_id != i.requester_id
    {
        out.push(Finding::new(
            ReasonCode::NotOwner,
            format!(
                "requester {:?} is not the owner of {:?}",
                i.requester_id, i.artifact_id
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
    fn immutable_classes_refuse_update_and_delete() {
        for class in ["model_checkpoint", "audit_entry"] {
            let mut s = PartitionState::default();
            let mut c = create();
            c.artifact_class = class.into();
            accept(&c, &mut s);
            for op in [Operation::Update, Operation::Delete] {
                let d = decide_on(&with_op(c.clone(), op, Some(1)), &s);
                assert_eq!(
                    d.reasons(),
                    vec![ReasonCode::OperationNotAllowed],
                    "{class} {op:?}"
                );
            }
        }
    }

    #[test]
    fn only_owner_deletes() {
        let mut s = PartitionState::default();
        accept(&create(), &mut s);
        let mut d = with_op(create(), Operation::Delete, Some(1));
        d.requester_id = "mallory".into();
        assert_eq!(decide_on(&d, &s).reasons(), vec![ReasonCode::NotOwner]);
        d.requester_id = "alice".into();
        assert!(decide_on(&d, &s).findings.is_empty());
    }
}
