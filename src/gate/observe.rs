//! What the gate reports while it runs. The loop calls a [`GateObserver`]; the admin surface
//! (metrics, status page) implements it. So the gate depends on nothing above it: dependencies
//! point down, and admin depends on this trait rather than the gate on admin.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;

use super::consumed::Consumed;
use super::persist::StoredTask;
use super::policy_watch::PolicyWatch;
use super::rebalance::GateContext;
use super::usage_share::UsageShare;
use crate::core::state::Usage;
use crate::core::{ArtifactIntent, Decision, Policy};

/// The loop's state as an observer may look at it, once per loop iteration: a few questions,
/// not the gate's internals.
pub struct LoopView<'a> {
    pub(super) consumer: &'a BaseConsumer<GateContext>,
    pub(super) tasks: &'a HashMap<i32, StoredTask>,
    pub(super) share: &'a UsageShare,
    pub(super) watch: &'a PolicyWatch,
}

impl<'a> LoopView<'a> {
    /// The group consumer (assignment, lag, group membership, metadata).
    pub fn consumer(&self) -> &'a BaseConsumer<GateContext> {
        self.consumer
    }

    /// The policy in force.
    pub fn policy(&self) -> &'a Policy {
        self.watch.current()
    }

    /// The text of a policy version this gate has seen.
    pub fn policy_text(&self, version: &str) -> Option<&'a str> {
        self.watch.text_of(version)
    }

    /// Exact usage of every product homed on a partition this instance holds.
    pub fn usage_by_product(&self) -> Vec<(String, Usage)> {
        self.tasks
            .values()
            .flat_map(|t| t.task.state.usage_by_product().iter())
            .map(|(p, u)| (p.clone(), *u))
            .collect()
    }

    /// True when `integration` is cooling off at `now_ms` on a partition held here.
    pub fn is_cooling_off(&self, integration: &str, now_ms: i64) -> bool {
        self.tasks.values().any(|t| {
            t.task
                .state
                .offender(integration)
                .and_then(|o| o.cooling_until)
                .is_some_and(|until| until > now_ms)
        })
    }

    /// Usage sharing through Redis: "disabled", "unknown", "up" or "down".
    pub fn redis_state(&self) -> &'static str {
        self.share.state()
    }
}

/// Hooks the gate loop calls. Every method has a no-op default; implementations must be cheap
/// (they run on the loop thread) and rate-limit their own periodic work.
pub trait GateObserver: fmt::Debug + Send + Sync {
    /// An intent was decided; `started` is when its handling began.
    fn decided(
        &self,
        _consumed: &Consumed,
        _intent: Option<&ArtifactIntent>,
        _decision: &Decision,
        _policy: &Policy,
        _started: Instant,
    ) {
    }

    /// A governance event was appended to `partition`'s chain.
    fn governance(&self, _partition: i32, _event_type: &str, _policy_version: &str) {}

    /// A transaction committed after `took`.
    fn committed(&self, _took: Duration) {}

    /// A transaction was aborted.
    fn aborted(&self) {}

    /// Called every loop iteration.
    fn tick(&self, _view: &LoopView<'_>) {}

    /// The assigned partitions' phases changed (a task restored, partitions assigned or
    /// revoked): what readiness and `/status` say.
    fn phases(&self, _phases: &super::lifecycle::Phases) {}
}

/// An observer that reports nothing (no admin server; the bench's in-process gate).
#[derive(Debug, Default)]
pub struct Silent;

impl GateObserver for Silent {}

/// The observer a gate runs with: cheap to clone, [`Silent`] by default.
#[derive(Clone)]
pub struct Observer(Arc<dyn GateObserver>);

impl Observer {
    /// Wraps an observer.
    pub fn new(observer: impl GateObserver + 'static) -> Observer {
        Observer(Arc::new(observer))
    }
}

impl Default for Observer {
    fn default() -> Self {
        Observer::new(Silent)
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Deref for Observer {
    type Target = dyn GateObserver;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
