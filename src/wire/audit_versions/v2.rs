//! Audit version 2: `DecisionRecord.facts` (`StateFacts`), the state changes of the decision
//! (artifact delta, counted rejection, the product's GCRA arrival time, and the integration's
//! whole repeat-offender window after it), so a restore folds a decision as recorded and never
//! re-applies today's policy to it (docs/audit.md, "Schema versions").

use super::{AuditVersion, FactsLayout};

/// The row of audit version 2.
pub const V2: AuditVersion = AuditVersion {
    version: 2,
    file: "audit_event.v2.avsc",
    text: include_str!("../../../schemas/audit_event.v2.avsc"),
    facts: FactsLayout::WholeOffender,
};
