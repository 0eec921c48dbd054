//! Version rules: CREATE needs a free id; UPDATE and DELETE need the current version
//! (optimistic concurrency).

use crate::core::decide::{Context, Finding};
use crate::core::intent::Operation;
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    if i.operation == Operation::Create && i.expected_version.is_some() {
        out.push(Finding::new(
            ReasonCode::InvalidField,
            "expected_version is server-owned on CREATE (the gate assigns version 1)",
        ));
    }
    match (i.operation, ctx.current) {
        (Operation::Create, None) => {}
        (Operation::Create, Some(c)) => out.push(Finding::new(
            ReasonCode::ArtifactExists,
            format!(
                "artifact {:?} exists at version {}{}",
                i.artifact_id,
                c.version,
                if c.deleted { " (deleted)" } else { "" }
            ),
        )),
        (Operation::Update | Operation::Delete, current) => {
            let live = current.filter(|c| !c.deleted);
            match (live, i.expected_version) {
                (None, _) => out.push(Finding::new(
                    ReasonCode::ArtifactNotFound,
                    format!("artifact {:?} does not exist", i.artifact_id),
                )),
                (Some(_), None) => out.push(Finding::new(
                    ReasonCode::ExpectedVersionMissing,
                    format!("{} requires expected_version", i.operation.as_str()),
                )),
                (Some(c), Some(expected)) if expected != c.version => out.push(Finding::new(
                    ReasonCode::VersionConflict,
                    format!("expected version {expected}, current is {}", c.version),
                )),
                (Some(_), Some(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::intent::Operation;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    #[test]
    fn versions_advance_and_conflicts_report_current() {
        let mut s = PartitionState::default();
        assert_eq!(accept(&create(), &mut s), 1);
        assert_eq!(
            decide_on(&with_op(create(), Operation::Create, None), &s).reasons(),
            vec![ReasonCode::ArtifactExists]
        );
        assert_eq!(
            accept(&with_op(create(), Operation::Update, Some(1)), &mut s),
            2
        );
        let stale = decide_on(&with_op(create(), Operation::Update, Some(1)), &s);
        assert_eq!(stale.reasons(), vec![ReasonCode::VersionConflict]);
        assert_eq!(stale.version, Some(2));
        assert_eq!(
            decide_on(&with_op(create(), Operation::Update, None), &s).reasons(),
            vec![ReasonCode::ExpectedVersionMissing]
        );
        assert_eq!(
            accept(&with_op(create(), Operation::Delete, Some(2)), &mut s),
            3
        );
        assert_eq!(
            decide_on(&with_op(create(), Operation::Update, Some(3)), &s).reasons(),
            vec![ReasonCode::ArtifactNotFound]
        );
    }
}
