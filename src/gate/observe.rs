//! What the gate reports while it runs. The loop calls a [`GateObserver`]; the admin surface
//! (metrics, status page) implements it. So the gate depends on nothing above it: dependencies
//! point down, and admin depends on this trait rather than the gate on admin.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;

use super::policy_watch::PolicyWatch;
use super::records::Consumed;
use super::session::GateContext;
use super::task::Task;
use super::usage_share::UsageShare;
use crate::core::{ArtifactIntent, Decision, Policy};

/// The loop's state as an observer may look at it, once per loop iteration.
pub struct LoopView<'a> {
    /// The group consumer (assignment, lag, group membership).
    pub consumer: &'a BaseConsumer<GateContext>,
    /// The partition tasks this instance holds.
    pub tasks: &'a HashMap<i32, Task>,
    /// Usage sharing through Redis (its state).
    pub share: &'a UsageShare,
    /// The policy in force and the texts of the policies seen.
    pub watch: &'a PolicyWatch,
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
