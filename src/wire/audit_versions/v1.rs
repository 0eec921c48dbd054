//! Audit version 1: the original link. A decision record carries no state facts, so a restore
//! re-derives a version 1 decision's rate and offender state as the gate derived them then
//! (`core::rederive`), with the policy given to restore. Its hash is the original definition
//! (the body encoded with `hash` empty), so chains written before versions existed verify
//! unchanged (docs/audit.md, "Schema versions").

use super::{AuditVersion, FactsLayout};

/// The row of audit version 1.
pub const V1: AuditVersion = AuditVersion {
    version: 1,
    file: "audit_event.v1.avsc",
    text: include_str!("../../../schemas/audit_event.v1.avsc"),
    facts: FactsLayout::None,
};
