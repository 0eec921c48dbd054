//! The state facts of a decision recorded before audit version 2, whose links keep none: how
//! it moved the product's rate and the integration's repeat-offender state, re-derived the way
//! `decide` derived them then. Restores fold version 1 links with this; typed by
//! [`ReasonCode`], so a renamed code cannot silently change what a restore rebuilds.

use super::decide::{advances_rate, counts_as_rejection, offender_change};
use super::intent::Operation;
use super::policy::Policy;
use super::reason::ReasonCode;
use super::rules::rate::gcra;
use super::state::{OffenderChange, PartitionState};

/// What a version 1 link says of its decision.
#[derive(Debug, Clone, Copy)]
pub struct PastDecision<'a> {
    /// The integration that sent the intent, when it was read.
    pub integration: Option<&'a str>,
    /// The product, when it was read.
    pub product: Option<&'a str>,
    /// The intent's signature was verified.
    pub authenticated: bool,
    /// The intent was accepted.
    pub accepted: bool,
    /// Its reason codes (codes this version does not know are left out).
    pub reasons: &'a [ReasonCode],
    /// Its operation, when it was read.
    pub operation: Option<Operation>,
    /// When it was decided, ms.
    pub decided_at: i64,
}

/// The facts a version 2 link would have recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedFacts {
    /// The integration's offender change, if any.
    pub offender: Option<OffenderChange>,
    /// The product's new rate arrival time (µs), when the decision advanced it.
    pub rate_tat: Option<i64>,
    /// Artifacts the product gained (1 on create, -1 on delete, else 0) if it was accepted.
    pub artifact_delta: i64,
}

/// Re-derives the facts of `past` against the partition's state before it.
pub fn rederive(state: &PartitionState, policy: &Policy, past: &PastDecision<'_>) -> DerivedFacts {
    let refused_for = |code: ReasonCode| past.reasons.contains(&code);
    let offender = past.integration.and_then(|integration| {
        let counted = counts_as_rejection(past.authenticated, !past.accepted, refused_for);
        offender_change(
            state,
            policy,
            integration,
            past.decided_at,
            counted,
            &mut Vec::new(),
        )
    });
    // Every decided intent of a known product that was not itself refused for its rate.
    let rate_tat = past
        .product
        .and_then(|product| Some((product, policy.products.get(product)?)))
        .filter(|_| advances_rate(refused_for))
        .and_then(|(product, p)| {
            gcra(
                state.rate_tat(product),
                past.decided_at,
                p.rate_per_sec,
                p.burst,
            )
            .ok()
        });
    let artifact_delta = match past.operation {
        Some(Operation::Create) => 1,
        Some(Operation::Delete) => -1,
        _ => 0,
    };
    DerivedFacts {
        offender,
        rate_tat,
        artifact_delta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::tests::shipped;

    fn past(reasons: &[ReasonCode], accepted: bool) -> PastDecision<'_> {
        PastDecision {
            integration: Some("gurukul-backend"),
            product: Some("gurukul"),
            authenticated: true,
            accepted,
            reasons,
            operation: Some(Operation::Create),
            decided_at: 1_000_000,
        }
    }

    #[test]
    fn an_accepted_create_advances_the_rate_and_counts_one_artifact() {
        let policy = shipped();
        let state = PartitionState::default();
        let facts = rederive(&state, &policy, &past(&[], true));
        assert!(facts.rate_tat.is_some_and(|t| t > 1_000_000_000));
        assert_eq!(facts.artifact_delta, 1);
        assert_eq!(
            facts.offender, None,
            "nothing to count against the integration"
        );
    }

    #[test]
    fn a_rate_refusal_neither_advances_the_rate_nor_counts_as_an_offence() {
        let policy = shipped();
        let state = PartitionState::default();
        let facts = rederive(&state, &policy, &past(&[ReasonCode::RateLimited], false));
        assert_eq!(facts.rate_tat, None);
        assert_eq!(facts.offender, None);
    }

    #[test]
    fn an_authenticated_rejection_counts_against_its_integration() {
        let policy = shipped();
        let state = PartitionState::default();
        let refused = [ReasonCode::QuotaExceeded];
        let facts = rederive(&state, &policy, &past(&refused, false));
        assert!(
            facts.offender.is_some(),
            "a counted rejection changes the window"
        );
        let unauthenticated = PastDecision {
            authenticated: false,
            ..past(&refused, false)
        };
        assert_eq!(rederive(&state, &policy, &unauthenticated).offender, None);
    }
}
