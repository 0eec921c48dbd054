//! `/healthz` (the process answers) and `/readyz` (it can do its job now). Readiness of the
//! gate: decision loop running, Kafka reachable, group joined (partitions assigned, or waiting
//! as a spare member), registry reachable; Redis is reported but only degrades (it is off the
//! hot path). Of the sink: Kafka and storage reachable, consumer subscribed.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::board::Check;
use super::gate_hooks::STALL_AFTER;
use super::{AdminState, Role};

/// `GET /healthz`: 200 while the process serves HTTP.
pub async fn healthz() -> Response {
    Json(serde_json::json!({"status": "alive"})).into_response()
}

/// The readiness answer.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// True when every required check is up.
    pub ready: bool,
    /// `gate` or `sink`.
    pub role: &'static str,
    /// Each check with its status and detail.
    pub checks: BTreeMap<&'static str, Check>,
    /// Lag by assigned partition, records.
    pub lag: BTreeMap<i32, i64>,
    /// Assigned partitions.
    pub assigned: Vec<i32>,
    /// True once shutdown began.
    pub stopping: bool,
}

/// Computes readiness from the board.
pub fn readiness(state: &AdminState) -> Readiness {
    match &state.role {
        Role::Gate(g) => {
            let since = g.since_tick();
            let Some(b) = g.board() else {
                return empty("gate");
            };
            let mut checks = b.checks.clone();
            match since {
                Some(d) if d > STALL_AFTER => {
                    checks.insert(
                        "loop",
                        Check::down(format!("decision loop silent for {} s", d.as_secs())),
                    );
                }
                None => {
                    checks.insert("loop", Check::down("decision loop not started"));
                }
                _ => {}
            }
            // Ready means deciding: every assigned partition restored and running. With none
            // assigned, only a spare member of a stable group is ready (not one still joining).
            let tasks = match &b.phases {
                Some(p) if !p.is_empty() && p.all_running() => Check::up(p.summary()),
                Some(p) if !p.is_empty() => Check::down(p.summary()),
                Some(_) => match checks.get("group") {
                    Some(g) if g.is_up() => Check::up(g.detail.clone()),
                    _ => Check::down("no partitions assigned yet (joining the group)"),
                },
                None => Check::down("the decision loop has not reported its partitions yet"),
            };
            checks.insert("tasks", tasks);
            let required = ["loop", "kafka", "registry", "tasks"];
            let ready = !b.stopping
                && required
                    .iter()
                    .all(|n| checks.get(n).is_some_and(Check::is_up));
            Readiness {
                ready,
                role: "gate",
                checks,
                lag: b.lag.clone(),
                assigned: b.assigned.clone(),
                stopping: b.stopping,
            }
        }
        Role::Sink(s) => {
            let Some(b) = s.board() else {
                return empty("sink");
            };
            let ready = !b.stopping
                && ["kafka", "storage", "consumer"]
                    .iter()
                    .all(|n| b.checks.get(n).is_some_and(Check::is_up));
            Readiness {
                ready,
                role: "sink",
                checks: b.checks.clone(),
                lag: b.lag.clone(),
                assigned: b.assigned.clone(),
                stopping: b.stopping,
            }
        }
    }
}

fn empty(role: &'static str) -> Readiness {
    Readiness {
        ready: false,
        role,
        checks: BTreeMap::new(),
        lag: BTreeMap::new(),
        assigned: Vec::new(),
        stopping: false,
    }
}

/// `GET /readyz`: 200 when ready, 503 otherwise; the body lists every check.
pub async fn readyz(State(state): State<AdminState>) -> Response {
    let r = readiness(&state);
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}
