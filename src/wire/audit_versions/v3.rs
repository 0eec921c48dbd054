//! Audit version 3: the offender fact is the change (`offender_change`: rejections dropped,
//! the one added, the cooling-off after) instead of version 2's whole window, which made a
//! rejected intent's link grow with the window (ADR 0015, docs/audit.md "Why version 3").

use super::{AuditVersion, FactsLayout};

/// The row of audit version 3.
pub const V3: AuditVersion = AuditVersion {
    version: 3,
    file: "audit_event.v3.avsc",
    text: include_str!("../../../schemas/audit_event.v3.avsc"),
    facts: FactsLayout::OffenderChange,
};
