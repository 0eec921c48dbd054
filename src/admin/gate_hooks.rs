//! The gate's telemetry handle: what the transactional loop calls, one line per hook. Updates are
//! atomic metric operations plus one short `Mutex` section per decision; the periodic work (lag,
//! quotas, cooling-off, policy) runs at most once a second from the loop, off the record path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::board::{Board, Check, Event, Quota};
use super::metrics::{DecisionLabels, GateMetrics, ProductLabel, set_lags};
use crate::clock::now_ms;
use crate::core::{ArtifactIntent, Decision, Outcome, Policy, ReasonCode};
use crate::gate::consumed::Consumed;
use crate::gate::observe::{GateObserver, LoopView, Observer};

/// How often the loop's periodic hook does its light work (quotas, policy, Redis state).
const TICK_EVERY: Duration = Duration::from_secs(1);
/// How often lag, assignment and Kafka reachability are refreshed.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Broker round-trip bound of the periodic checks.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// The loop counts as stalled (unready) when its hook has not run for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(20);

/// Product label for metrics: a product of the active policy, else `other`.
pub fn product_label<'a>(policy: &Policy, product: Option<&'a str>) -> &'a str {
    match product {
        Some(p) if policy.products.contains_key(p) => p,
        _ => "other",
    }
}

/// Everything the gate shares with its admin server.
pub struct GateShared {
    /// Metric handles.
    pub metrics: GateMetrics,
    registry: Registry,
    board: Mutex<Board>,
    started: Instant,
    /// ms since `started` of the last periodic hook run.
    last_tick_ms: AtomicU64,
    /// ms since `started` of the last lag refresh (u64::MAX: never).
    last_lag_ms: AtomicU64,
    topic: String,
    group: String,
    client_id: String,
}

/// The handle the gate loop calls; a disabled handle (Default) does nothing.
#[derive(Clone, Default)]
pub struct GateTelemetry(Option<Arc<GateShared>>);

impl fmt::Debug for GateTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "GateTelemetry(on)"
        } else {
            "GateTelemetry(off)"
        })
    }
}

impl GateTelemetry {
    /// An enabled handle for the gate of `group`/`gate_id` on `intents_topic`, starting with
    /// `policy` (parsed from `text`).
    pub fn new(
        policy: &Policy,
        text: &str,
        intents_topic: &str,
        group: &str,
        gate_id: &str,
    ) -> GateTelemetry {
        let metrics = GateMetrics::default();
        let registry = metrics.registry();
        let mut board = Board {
            policy: Some((policy.version.clone(), text.to_string())),
            ..Board::default()
        };
        for name in ["kafka", "group", "registry", "redis", "loop"] {
            board.checks.insert(name, Check::unknown());
        }
        set_limits(&metrics, policy);
        GateTelemetry(Some(Arc::new(GateShared {
            metrics,
            registry,
            board: Mutex::new(board),
            started: Instant::now(),
            last_tick_ms: AtomicU64::new(u64::MAX),
            last_lag_ms: AtomicU64::new(u64::MAX),
            topic: intents_topic.to_string(),
            group: group.to_string(),
            client_id: format!("bucket-gate-{gate_id}"),
        })))
    }

    /// The shared state, when enabled.
    pub fn shared(&self) -> Option<&GateShared> {
        self.0.as_deref()
    }

    /// The metrics registry (an empty one when disabled).
    pub fn registry(&self) -> &Registry {
        static EMPTY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        match &self.0 {
            Some(s) => &s.registry,
            None => EMPTY.get_or_init(Registry::default),
        }
    }

    /// Locks the board (a poisoned lock is still usable: the data is plain counters).
    pub fn board(&self) -> Option<MutexGuard<'_, Board>> {
        let s = self.0.as_ref()?;
        Some(s.board.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Time since the loop's periodic hook last ran (None: never, or disabled).
    pub fn since_tick(&self) -> Option<Duration> {
        let s = self.0.as_ref()?;
        let at = s.last_tick_ms.load(Ordering::Relaxed);
        (at != u64::MAX).then(|| {
            s.started
                .elapsed()
                .saturating_sub(Duration::from_millis(at))
        })
    }

    /// Marks the process as stopping: readiness fails from now on.
    pub fn stopping(&self) {
        if let Some(mut b) = self.board() {
            b.stopping = true;
        }
    }

    /// Records the registry probe's result.
    pub fn registry_probe(&self, result: Result<(), String>) {
        let Some(s) = &self.0 else {
            return;
        };
        s.metrics.registry_up.set(i64::from(result.is_ok()));
        let check = match result {
            Ok(()) => Check::up(""),
            Err(e) => Check::down(e),
        };
        if let Some(mut b) = self.board() {
            b.checks.insert("registry", check);
        }
    }

    fn light(&self, s: &GateShared, view: &LoopView<'_>, policy: &Policy) {
        let now = now_ms();
        let mut quotas = Vec::new();
        for (product, usage) in view.usage_by_product() {
            let rule = policy.products.get(&product);
            s.metrics
                .quota_used
                .get_or_create(&ProductLabel {
                    product: product_label(policy, Some(&product)).to_string(),
                })
                .set(i64::try_from(usage.bytes).unwrap_or(i64::MAX));
            quotas.push(Quota {
                product,
                used_bytes: usage.bytes,
                limit_bytes: rule.map_or(0, |r| r.max_bytes),
                artifacts: usage.artifacts,
                limit_artifacts: rule.map_or(0, |r| r.max_artifacts),
            });
        }
        quotas.sort_by(|a, b| a.product.cmp(&b.product));
        let cooling = policy
            .integrations
            .keys()
            .filter(|i| view.is_cooling_off(i, now))
            .count() as i64;
        s.metrics.cooling_off.set(cooling);
        let redis = view.redis_state();
        s.metrics.redis_up.set(i64::from(redis == "up"));
        s.metrics.redis_enabled.set(i64::from(redis != "disabled"));
        let mut b = s.board.lock().unwrap_or_else(|p| p.into_inner());
        if b.policy.as_ref().is_none_or(|(v, _)| *v != policy.version) {
            let text = view.policy_text(&policy.version).unwrap_or_default();
            b.policy = Some((policy.version.clone(), text.to_string()));
            s.metrics.quota_limit.clear();
            set_limits(&s.metrics, policy);
        }
        // Products whose partitions moved to another instance are no longer reported here.
        for gone in b
            .quotas
            .iter()
            .filter(|o| !quotas.iter().any(|q| q.product == o.product))
        {
            s.metrics.quota_used.remove(&ProductLabel {
                product: product_label(policy, Some(&gone.product)).to_string(),
            });
        }
        b.quotas = quotas;
        b.cooling_off = cooling as u64;
        b.checks.insert(
            "redis",
            Check {
                status: match redis {
                    "down" => "degraded",
                    other => other,
                },
                detail: "off the hot path: global quotas use the last known totals while down"
                    .into(),
            },
        );
        b.checks.insert("loop", Check::up("decision loop running"));
    }

    fn heavy<C: ConsumerContext>(&self, s: &GateShared, consumer: &BaseConsumer<C>) {
        let kafka = consumer
            .fetch_metadata(Some(s.topic.as_str()), PROBE_TIMEOUT)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let lags = super::probe::lags(consumer, PROBE_TIMEOUT);
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|t| t.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        let group = if !assigned.is_empty() {
            Check::up(format!("{} partitions assigned", assigned.len()))
        } else {
            match consumer.fetch_group_list(Some(s.group.as_str()), PROBE_TIMEOUT) {
                // A spare is in a stable group with an empty assignment. A static member's
                // entry that still holds partitions is this instance's predecessor (same client
                // id), about to hand them over: not a spare.
                Ok(list)
                    if list.groups().iter().any(|g| {
                        g.state() == "Stable"
                            && g.members().iter().any(|m| {
                                m.client_id() == s.client_id
                                    && m.assignment().is_none_or(|a| {
                                        a.is_empty()
                                            || crate::gate::assignment::parse_assignment(
                                                a, &s.topic,
                                            )
                                            .is_some_and(|parts| parts.is_empty())
                                    })
                            })
                    }) =>
                {
                    Check::up(
                        "a spare member: no partitions assigned (more members than partitions)",
                    )
                }
                Ok(_) => Check::down("not a member of the group yet (joining)"),
                Err(e) => Check::down(e.to_string()),
            }
        };
        s.metrics.assigned.set(assigned.len() as i64);
        let mut b = s.board.lock().unwrap_or_else(|p| p.into_inner());
        let assigned = match &b.phases {
            // The loop's own report is newer than this 5-second probe.
            Some(phases) => phases.assigned(),
            None => assigned,
        };
        let old: Vec<i32> = b.lag.keys().copied().collect();
        match lags {
            Ok(l) => {
                set_lags(&s.metrics.lag, &old, &l);
                b.lag = l.into_iter().collect();
            }
            Err(e) => tracing::debug!(error = %e, "lag refresh failed"),
        }
        b.assigned = assigned;
        b.checks.insert("group", group);
        b.checks.insert(
            "kafka",
            match kafka {
                Ok(()) => Check::up(""),
                Err(e) => Check::down(e),
            },
        );
    }
}

/// The gate loop reports to the admin surface through these hooks.
impl GateObserver for GateTelemetry {
    /// Hook: an intent was decided (`started` is when its handling began).
    fn decided(
        &self,
        c: &Consumed,
        intent: Option<&ArtifactIntent>,
        decision: &Decision,
        policy: &Policy,
        started: Instant,
    ) {
        let Some(s) = &self.0 else {
            return;
        };
        let product = product_label(policy, intent.map(|i| i.product_id.as_str()));
        let accepted = decision.outcome == Outcome::Accepted;
        let first = decision.findings.first().map(|f| f.reason);
        s.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                product: product.to_string(),
                outcome: if accepted { "accepted" } else { "rejected" },
                reason: first.map_or("none", ReasonCode::as_str),
            })
            .inc();
        s.metrics
            .decision_duration
            .0
            .observe(started.elapsed().as_secs_f64());
        if decision
            .findings
            .iter()
            .any(|f| f.reason == ReasonCode::RateLimited)
        {
            s.metrics
                .rate_limited
                .get_or_create(&ProductLabel {
                    product: product.to_string(),
                })
                .inc();
        }
        let at_ms = now_ms();
        let mut b = s.board.lock().unwrap_or_else(|p| p.into_inner());
        b.count(product, accepted, (at_ms / 1000) as u64);
        if let Some(r) = first {
            *b.primary.entry(r.as_str()).or_default() += 1;
        }
        for f in &decision.findings {
            *b.findings.entry(f.reason).or_default() += 1;
        }
        b.push(Event {
            at_ms,
            kind: "decision",
            partition: c.partition,
            offset: c.offset,
            product: product.to_string(),
            intent_id: intent.map(|i| i.intent_id.clone()).unwrap_or_default(),
            outcome: decision.outcome.as_str().to_string(),
            reasons: decision
                .findings
                .iter()
                .map(|f| f.reason.as_str())
                .collect(),
            policy_version: decision.policy_version.clone(),
        });
    }

    /// Hook: a governance event was appended to a chain.
    fn governance(&self, partition: i32, event_type: &str, policy_version: &str) {
        let Some(s) = &self.0 else {
            return;
        };
        s.metrics
            .governance
            .get_or_create(&crate::admin::metrics::EventTypeLabel {
                event_type: event_type.to_string(),
            })
            .inc();
        let mut b = s.board.lock().unwrap_or_else(|p| p.into_inner());
        *b.governance.entry(event_type.to_string()).or_default() += 1;
        if event_type == crate::wire::audit::checkpoint::CHECKPOINT {
            return; // frequent and routine: counted, not listed
        }
        b.push(Event {
            at_ms: now_ms(),
            kind: "governance",
            partition,
            offset: -1,
            product: String::new(),
            intent_id: String::new(),
            outcome: event_type.to_string(),
            reasons: Vec::new(),
            policy_version: policy_version.to_string(),
        });
    }

    /// Hook: a transaction committed after `took`.
    fn committed(&self, took: Duration) {
        if let Some(s) = &self.0 {
            s.metrics.commit_duration.0.observe(took.as_secs_f64());
        }
    }

    /// Hook: a transaction was aborted.
    fn aborted(&self) {
        if let Some(s) = &self.0 {
            s.metrics.aborted.inc();
        }
    }

    /// Hook: the assigned partitions' phases changed; readiness follows at once.
    fn phases(&self, phases: &crate::gate::lifecycle::Phases) {
        let Some(s) = &self.0 else {
            return;
        };
        let mut b = s.board.lock().unwrap_or_else(|p| p.into_inner());
        b.assigned = phases.assigned();
        b.phases = Some(phases.clone());
    }

    /// Hook, called every loop iteration: at most once a second refreshes quotas, cooling-off,
    /// the policy in force and Redis state; every 5 s lag, assignment and Kafka reachability.
    fn tick(&self, view: &LoopView<'_>) {
        let Some(s) = &self.0 else {
            return;
        };
        let now = s.started.elapsed();
        let last = s.last_tick_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now.saturating_sub(Duration::from_millis(last)) < TICK_EVERY {
            return;
        }
        s.last_tick_ms
            .store(now.as_millis() as u64, Ordering::Relaxed);
        let policy = view.policy();
        self.light(s, view, policy);
        let last_lag = s.last_lag_ms.load(Ordering::Relaxed);
        if last_lag == u64::MAX || now.saturating_sub(Duration::from_millis(last_lag)) >= LAG_EVERY
        {
            s.last_lag_ms
                .store(now.as_millis() as u64, Ordering::Relaxed);
            self.heavy(s, view.consumer());
        }
    }
}

/// The loop's observer is the admin telemetry (a disabled handle reports nothing).
impl From<GateTelemetry> for Observer {
    fn from(t: GateTelemetry) -> Observer {
        Observer::new(t)
    }
}

/// Sets `bucket_gate_quota_limit_bytes` for every product of the policy.
fn set_limits(m: &GateMetrics, policy: &Policy) {
    for (product, rule) in &policy.products {
        m.quota_limit
            .get_or_create(&ProductLabel {
                product: product.clone(),
            })
            .set(i64::try_from(rule.max_bytes).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_outside_the_policy_share_one_label() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml");
        let (p, _) = crate::policy::file::load(std::path::Path::new(path)).unwrap();
        assert_eq!(product_label(&p, Some("ai_assistant")), "ai_assistant");
        assert_eq!(product_label(&p, Some("made_up_product")), "other");
        assert_eq!(product_label(&p, None), "other");
    }
}
