//! Provenance: the "why" is mandatory (T10), the owner cannot be forged on an existing artifact
//! and the client clock must be near server time (T2: back-dated or future intents).

use crate::core::decide::{Context, Finding};
use crate::core::intent::Operation;
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    if i.purpose.trim().is_empty() {
        out.push(Finding::new(
            ReasonCode::PurposeMissing,
            "purpose is empty; say why this change is made",
        ));
    }
    if i.operation != Operation::Create
        && let Some(current) = ctx.current
        && current.owner_id != i.owner_id
    {
        out.push(Finding::new(
            ReasonCode::OwnerMismatch,
            format!(
                "owner_id {:?} differs from the recorded owner {:?}",
                i.owner_id, current.owner_id
            ),
        ));
    }
    let skew = i.client_time.saturating_sub(ctx.now_ms);
    if skew.unsigned_abs() > ctx.policy.limits.max_clock_skew_ms.unsigned_abs() {
        let direction = if skew < 0 { "behind" } else { "ahead of" };
        out.push(Finding::new(
            ReasonCode::ClockSkew,
            format!(
                "client_time is {} ms {direction} server time (limit {} ms)",
                skew.unsigned_abs(),
                ctx.policy.limits.max_clock_skew_ms
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
    fn purpose_owner_and_clock() {
        let mut i = create();
        i.purpose = "  ".into();
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::PurposeMissing]
        );
        let mut i = create();
        i.client_time = NOW - 24 * 3600 * 1000;
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::ClockSkew]
        );
        i.client_time = NOW + 24 * 3600 * 1000;
        assert_eq!(
            decide_on(&i, &PartitionState::default()).reasons(),
            vec![ReasonCode::ClockSkew]
        );
        let mut s = PartitionState::default();
        accept(&create(), &mut s);
        let mut u = with_op(create(), Operation::Update, Some(1));
        u.owner_id = "mallory".into();
        assert_eq!(decide_on(&u, &s).reasons(), vec![ReasonCode::OwnerMismatch]);
    }
}
