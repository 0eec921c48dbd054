//! `GET /threats`: the threat catalogue (T1–T10, docs/origins.md#threats), each threat with the
//! reason codes that defend against it and a live count of findings since this process started.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{AdminState, Role};
use crate::core::ReasonCode;

/// The seeds' threats (docs/origins.md#threats): id, name, how the system answers when no
/// reason code does.
pub const CATALOGUE: [(&str, &str, &str); 10] = [
    ("T1", "Storage Exhaustion", "size limits, quotas"),
    (
        "T2",
        "Metadata Poisoning / forged provenance",
        "signatures, replay and metadata rules",
    ),
    ("T3", "Silent Schema Evolution", "approved schemas only"),
    ("T4", "Concurrent Write Collision", "optimistic versions"),
    (
        "T5",
        "Executor Override Attempt",
        "immutable classes, owner-only delete, secret scan",
    ),
    ("T6", "AI Escalation Cascade", "rate limits, cooling-off"),
    (
        "T7",
        "Cross-Product Data Contamination",
        "keys, partitions, integration scopes",
    ),
    (
        "T8",
        "Audit Trail Tampering",
        "hash-chained audit log with signed checkpoints (bucket audit verify)",
    ),
    (
        "T9",
        "Legal Ownership Challenge",
        "recorded owner per artifact, legal holds in the sink",
    ),
    ("T10", "Over-Trust in Provenance", "mandatory purpose"),
];

/// One reason code of a threat and its findings since start.
#[derive(Debug, Serialize)]
pub struct CodeCount {
    /// Reason code.
    pub code: &'static str,
    /// Findings with this code since start.
    pub findings: u64,
}

/// One threat of the catalogue.
#[derive(Debug, Serialize)]
pub struct Threat {
    /// Threat id (T1…T10).
    pub id: &'static str,
    /// Name from the seeds (docs/origins.md#threats).
    pub name: &'static str,
    /// How the system defends.
    pub defence: &'static str,
    /// Reason codes naming this threat.
    pub reason_codes: Vec<CodeCount>,
    /// Findings of all its codes since start.
    pub findings: u64,
}

/// The catalogue with counts taken from `count(code)`.
pub fn catalogue(count: impl Fn(ReasonCode) -> u64) -> Vec<Threat> {
    CATALOGUE
        .iter()
        .map(|&(id, name, defence)| {
            let reason_codes: Vec<CodeCount> = ReasonCode::ALL
                .iter()
                .filter(|c| c.threat() == Some(id))
                .map(|c| CodeCount {
                    code: c.as_str(),
                    findings: count(*c),
                })
                .collect();
            Threat {
                id,
                name,
                defence,
                findings: reason_codes.iter().map(|c| c.findings).sum(),
                reason_codes,
            }
        })
        .collect()
}

/// `GET /threats` (gate only).
pub async fn handler(State(state): State<AdminState>) -> Response {
    let Role::Gate(g) = &state.role else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not_found", "message": "threats are decided by the gate"})),
        )
            .into_response();
    };
    let findings = g.board().map(|b| b.findings.clone()).unwrap_or_default();
    let threats = catalogue(|c| findings.get(&c).copied().unwrap_or(0));
    Json(serde_json::json!({ "threats": threats })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threat_code_belongs_to_a_catalogue_entry_and_counts_add_up() {
        for c in ReasonCode::ALL {
            if let Some(t) = c.threat() {
                assert!(CATALOGUE.iter().any(|(id, _, _)| *id == t), "{c}: {t}");
            }
        }
        let cat = catalogue(|c| u64::from(c == ReasonCode::KeyMismatch) * 3);
        let t7 = cat.iter().find(|t| t.id == "T7").unwrap();
        assert_eq!(t7.findings, 3);
        assert!(t7.reason_codes.iter().any(|c| c.code == "WRONG_PARTITION"));
        assert_eq!(cat.iter().map(|t| t.findings).sum::<u64>(), 3);
    }
}
