//! What the sink reports while it runs. The consume loop ([`super::consume`]) calls a
//! [`SinkObserver`]; the admin surface (metrics, status page, readiness) implements it. So the
//! sink depends on nothing above it: admin depends on this trait, not the sink on admin.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;

/// What became of one durable batch, as the metrics count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Versions newly stored.
    pub inserted: usize,
    /// Accepted versions quarantined instead of stored (an incident).
    pub versions_quarantined: usize,
    /// Records of the accepted topic that did not decode.
    pub undecodable: usize,
}

/// Hooks the sink calls. Every method has a no-op default; implementations must be cheap (they
/// run on the consume loop).
pub trait SinkObserver: fmt::Debug + Send + Sync {
    /// The loop subscribed with this consumer (for lag and Kafka checks).
    fn attached(&self, _consumer: &Arc<StreamConsumer>) {}

    /// A batch of `records` became durable in `took`; `outcome` says what became of them.
    fn batch_written(&self, _records: usize, _outcome: BatchOutcome, _took: Duration) {}

    /// A batch write failed (it is retried).
    fn write_failed(&self, _error: &str) {}

    /// Shutdown began: readiness fails from now on.
    fn stopping(&self) {}
}

/// An observer that reports nothing (no admin server; the audit indexer).
#[derive(Debug, Default)]
pub struct Silent;

impl SinkObserver for Silent {}

/// The observer a sink runs with: cheap to clone, [`Silent`] by default. Two handles are equal
/// when they share the same observer (so options stay comparable).
#[derive(Clone)]
pub struct Observer(Arc<dyn SinkObserver>);

impl Observer {
    /// Wraps an observer.
    pub fn new(observer: impl SinkObserver + 'static) -> Observer {
        Observer(Arc::new(observer))
    }
}

impl Default for Observer {
    fn default() -> Self {
        static SILENT: OnceLock<Observer> = OnceLock::new();
        SILENT.get_or_init(|| Observer::new(Silent)).clone()
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Observer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for Observer {}

impl std::ops::Deref for Observer {
    type Target = dyn SinkObserver;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_handles_are_equal_and_distinct_observers_are_not() {
        assert_eq!(Observer::default(), Observer::default());
        let one = Observer::new(Silent);
        assert_eq!(one, one.clone());
        assert_ne!(one, Observer::new(Silent));
    }
}
