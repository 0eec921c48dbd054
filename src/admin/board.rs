//! The status board: a small snapshot behind `/status.json`, `/readyz` and `/threats`, updated by
//! the loops under a `Mutex`. Everything in it is bounded: the last [`RECENT`] events, one entry
//! per policy product (plus `other`), one per reason code, one per assigned partition.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::core::ReasonCode;

/// Decisions and governance events kept for the status page.
pub const RECENT: usize = 50;
/// Seconds of per-product history behind the decision rates.
const RATE_WINDOW: u64 = 60;
/// Rates are averaged over the last this many whole seconds.
const RATE_SPAN: u64 = 10;

/// One line of the recent-events list.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Server time, ms since the epoch.
    pub at_ms: i64,
    /// `decision` or `governance`.
    pub kind: &'static str,
    /// Intents partition.
    pub partition: i32,
    /// Source offset (-1 for governance events).
    pub offset: i64,
    /// Product label (decisions).
    pub product: String,
    /// Intent id, when it decoded.
    pub intent_id: String,
    /// `ACCEPTED`/`REJECTED`, or the governance event type.
    pub outcome: String,
    /// Reason codes in rule order.
    pub reasons: Vec<&'static str>,
    /// Policy version the decision was made under.
    pub policy_version: String,
}

/// Per-product counters and a per-second ring for rates.
#[derive(Debug, Clone, Default)]
pub struct ProductStats {
    accepted: u64,
    rejected: u64,
    /// (second, accepted, rejected) indexed by `second % RATE_WINDOW`.
    ring: Vec<(u64, u64, u64)>,
}

impl ProductStats {
    fn add(&mut self, now_s: u64, accepted: bool) {
        if self.ring.is_empty() {
            self.ring = vec![(0, 0, 0); RATE_WINDOW as usize];
        }
        let slot = &mut self.ring[(now_s % RATE_WINDOW) as usize];
        if slot.0 != now_s {
            *slot = (now_s, 0, 0);
        }
        if accepted {
            self.accepted += 1;
            slot.1 += 1;
        } else {
            self.rejected += 1;
            slot.2 += 1;
        }
    }

    /// (accepted/s, rejected/s) over the last [`RATE_SPAN`] seconds before `now_s`.
    fn rates(&self, now_s: u64) -> (f64, f64) {
        let from = now_s.saturating_sub(RATE_SPAN);
        let (a, r) = self
            .ring
            .iter()
            .filter(|(s, _, _)| *s >= from && *s < now_s)
            .fold((0, 0), |(a, r), (_, x, y)| (a + x, r + y));
        (a as f64 / RATE_SPAN as f64, r as f64 / RATE_SPAN as f64)
    }
}

/// One product's row on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct ProductRow {
    /// Product label.
    pub product: String,
    /// Accepted since start.
    pub accepted: u64,
    /// Rejected since start.
    pub rejected: u64,
    /// Accepted per second (last 10 s).
    pub accepted_per_s: f64,
    /// Rejected per second (last 10 s).
    pub rejected_per_s: f64,
}

/// Quota usage of one product homed on this instance.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Quota {
    /// Product.
    pub product: String,
    /// Stored bytes of live versions.
    pub used_bytes: u64,
    /// Quota, bytes.
    pub limit_bytes: u64,
    /// Live artifacts.
    pub artifacts: u64,
    /// Artifact quota.
    pub limit_artifacts: u64,
}

/// A dependency check as shown by `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// `up`, `down`, `unknown`, `disabled` or `degraded`.
    pub status: &'static str,
    /// Human detail (last error, when the status was set).
    pub detail: String,
}

impl Check {
    /// Not probed yet.
    pub fn unknown() -> Check {
        Check {
            status: "unknown",
            detail: String::new(),
        }
    }

    /// Up (with a detail).
    pub fn up(detail: impl Into<String>) -> Check {
        Check {
            status: "up",
            detail: detail.into(),
        }
    }

    /// Down, with why.
    pub fn down(detail: impl Into<String>) -> Check {
        Check {
            status: "down",
            detail: detail.into(),
        }
    }

    /// True when up.
    pub fn is_up(&self) -> bool {
        self.status == "up"
    }
}

/// The whole snapshot.
#[derive(Debug, Default)]
pub struct Board {
    /// Last decisions and governance events, newest last.
    pub recent: VecDeque<Event>,
    /// Counters per product label.
    pub products: BTreeMap<String, ProductStats>,
    /// Rejections by first reason code.
    pub primary: BTreeMap<&'static str, u64>,
    /// Every finding by reason code (a decision may have several).
    pub findings: BTreeMap<ReasonCode, u64>,
    /// Governance events by type.
    pub governance: BTreeMap<String, u64>,
    /// Quota usage rows.
    pub quotas: Vec<Quota>,
    /// Lag by assigned partition.
    pub lag: BTreeMap<i32, i64>,
    /// Assigned partitions.
    pub assigned: Vec<i32>,
    /// Named dependency checks (kafka, registry, redis, group, storage, loop).
    pub checks: BTreeMap<&'static str, Check>,
    /// Integrations cooling off.
    pub cooling_off: u64,
    /// Policy version in force and its file text.
    pub policy: Option<(String, String)>,
    /// Set on shutdown: readiness goes false at once.
    pub stopping: bool,
    /// Each assigned partition's task phase as the loop last reported it (gate only; None
    /// until the loop reports).
    pub phases: Option<crate::gate::lifecycle::Phases>,
}

impl Board {
    /// Appends an event, dropping the oldest beyond [`RECENT`].
    pub fn push(&mut self, e: Event) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(e);
    }

    /// Counts a decision for a product label.
    pub fn count(&mut self, product: &str, accepted: bool, now_s: u64) {
        if let Some(p) = self.products.get_mut(product) {
            p.add(now_s, accepted);
        } else {
            let mut p = ProductStats::default();
            p.add(now_s, accepted);
            self.products.insert(product.to_string(), p);
        }
    }

    /// Product rows with rates as of `now_s`.
    pub fn product_rows(&self, now_s: u64) -> Vec<ProductRow> {
        self.products
            .iter()
            .map(|(name, s)| {
                let (a, r) = s.rates(now_s);
                ProductRow {
                    product: name.clone(),
                    accepted: s.accepted,
                    rejected: s.rejected,
                    accepted_per_s: a,
                    rejected_per_s: r,
                }
            })
            .collect()
    }

    /// Rejection reasons, most frequent first.
    pub fn top_reasons(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self.primary.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: i64) -> Event {
        Event {
            at_ms: i,
            kind: "decision",
            partition: 0,
            offset: i,
            product: "p".into(),
            intent_id: String::new(),
            outcome: "ACCEPTED".into(),
            reasons: vec![],
            policy_version: String::new(),
        }
    }

    #[test]
    fn recent_events_are_bounded_and_keep_the_newest() {
        let mut b = Board::default();
        for i in 0..(RECENT as i64 + 7) {
            b.push(event(i));
        }
        assert_eq!(b.recent.len(), RECENT);
        assert_eq!(b.recent.front().map(|e| e.offset), Some(7));
        assert_eq!(b.recent.back().map(|e| e.offset), Some(RECENT as i64 + 6));
    }

    #[test]
    fn rates_cover_the_last_seconds_only() {
        let mut b = Board::default();
        for _ in 0..20 {
            b.count("p", true, 100);
        }
        for _ in 0..10 {
            b.count("p", false, 105);
        }
        let rows = b.product_rows(106);
        assert_eq!((rows[0].accepted, rows[0].rejected), (20, 10));
        assert!((rows[0].accepted_per_s - 2.0).abs() < 1e-9);
        assert!((rows[0].rejected_per_s - 1.0).abs() < 1e-9);
        // A minute later the old seconds no longer count.
        let rows = b.product_rows(200);
        assert_eq!(rows[0].accepted_per_s, 0.0);
    }

    #[test]
    fn top_reasons_are_sorted_by_count() {
        let mut b = Board::default();
        b.primary.insert("A", 1);
        b.primary.insert("B", 5);
        b.primary.insert("C", 3);
        assert_eq!(b.top_reasons(), vec![("B", 5), ("C", 3), ("A", 1)]);
    }
}
