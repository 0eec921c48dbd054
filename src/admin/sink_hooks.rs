//! The sink's telemetry handle: the consume loop reports each durable batch and hands over its
//! consumer once; storage, Kafka and lag are probed in the background ([`super::probe`]).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::registry::Registry;
use rdkafka::consumer::{Consumer, StreamConsumer};

use super::board::{Board, Check};
use super::metrics::{SinkMetrics, set_lags};
pub use crate::sink::observe::BatchOutcome;
use crate::sink::observe::{Observer, SinkObserver};
pub use crate::sink::store::StorageProbe;

/// Everything the sink shares with its admin server.
pub struct SinkShared {
    /// Metric handles.
    pub metrics: SinkMetrics,
    registry: Registry,
    board: Mutex<Board>,
    consumer: Mutex<Option<Arc<StreamConsumer>>>,
    storage: StorageProbe,
}

/// The handle the sink loop calls; a disabled handle (Default) does nothing.
#[derive(Clone, Default)]
pub struct SinkTelemetry(Option<Arc<SinkShared>>);

impl fmt::Debug for SinkTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "SinkTelemetry(on)"
        } else {
            "SinkTelemetry(off)"
        })
    }
}

/// Two handles are equal when they share the same state (options stay comparable).
impl PartialEq for SinkTelemetry {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for SinkTelemetry {}

impl SinkTelemetry {
    /// An enabled handle probing `storage`.
    pub fn new(storage: StorageProbe) -> SinkTelemetry {
        let metrics = SinkMetrics::default();
        let registry = metrics.registry();
        let mut board = Board::default();
        for name in ["kafka", "storage", "consumer"] {
            board.checks.insert(name, Check::unknown());
        }
        SinkTelemetry(Some(Arc::new(SinkShared {
            metrics,
            registry,
            board: Mutex::new(board),
            consumer: Mutex::new(None),
            storage,
        })))
    }

    /// The metrics registry (an empty one when disabled).
    pub fn registry(&self) -> &Registry {
        static EMPTY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        match &self.0 {
            Some(s) => &s.registry,
            None => EMPTY.get_or_init(Registry::default),
        }
    }

    /// Locks the board.
    pub fn board(&self) -> Option<MutexGuard<'_, Board>> {
        let s = self.0.as_ref()?;
        Some(s.board.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Hook: the loop's consumer, for lag and Kafka checks.
    pub fn attach(&self, consumer: &Arc<StreamConsumer>) {
        if let Some(s) = &self.0 {
            *s.consumer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(consumer));
            if let Some(mut b) = self.board() {
                b.checks.insert("consumer", Check::up("subscribed"));
            }
        }
    }

    /// Hook: a batch of `records` became durable in `took`: `outcome` says what became of them.
    pub fn batch_written(&self, records: usize, outcome: BatchOutcome, took: Duration) {
        let Some(s) = &self.0 else {
            return;
        };
        let inserted = outcome.inserted;
        s.metrics.written.inc_by(inserted as u64);
        s.metrics
            .versions_quarantined
            .inc_by(outcome.versions_quarantined as u64);
        s.metrics.undecodable.inc_by(outcome.undecodable as u64);
        s.metrics.batch_size.observe(records as f64);
        s.metrics.write_duration.0.observe(took.as_secs_f64());
        if let Some(mut b) = self.board() {
            b.checks.insert("storage", Check::up("last batch written"));
            *b.governance.entry("batches".into()).or_default() += 1;
            *b.governance.entry("records".into()).or_default() += records as u64;
            *b.governance.entry("inserted".into()).or_default() += inserted as u64;
            *b.governance.entry("quarantined".into()).or_default() +=
                (outcome.versions_quarantined + outcome.undecodable) as u64;
        }
    }

    /// Hook: a batch write failed (it is retried).
    pub fn write_failed(&self, error: &str) {
        if let Some(mut b) = self.board() {
            b.checks.insert("storage", Check::down(error));
        }
    }

    /// Marks the process as stopping: readiness fails from now on.
    pub fn stopping(&self) {
        if let Some(mut b) = self.board() {
            b.stopping = true;
        }
    }

    /// One round of background checks: storage, Kafka reachability and lag.
    pub async fn probe(&self) {
        let Some(s) = &self.0 else {
            return;
        };
        let storage = s.storage.check().await;
        let consumer = s.consumer.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let kafka = match consumer {
            None => None,
            Some(c) => tokio::task::spawn_blocking(move || {
                let timeout = Duration::from_millis(1500);
                let reach = c.fetch_metadata(None, timeout).map(|_| ());
                reach.and_then(|()| super::probe::lags(&*c, timeout))
            })
            .await
            .ok(),
        };
        let mut b = s.board.lock().unwrap_or_else(|p| p.into_inner());
        b.checks.insert(
            "storage",
            match storage {
                Ok(()) => Check::up(""),
                Err(e) => Check::down(e),
            },
        );
        match kafka {
            None => {}
            Some(Ok(lags)) => {
                let old: Vec<i32> = b.lag.keys().copied().collect();
                set_lags(&s.metrics.lag, &old, &lags);
                b.assigned = lags.iter().map(|(p, _)| *p).collect();
                b.lag = lags.into_iter().collect();
                b.checks.insert("kafka", Check::up(""));
            }
            Some(Err(e)) => {
                b.checks.insert("kafka", Check::down(e.to_string()));
            }
        }
    }
}

/// The sink's hooks land in the admin telemetry (a disabled handle reports nothing).
impl SinkObserver for SinkTelemetry {
    fn attached(&self, consumer: &Arc<StreamConsumer>) {
        SinkTelemetry::attach(self, consumer);
    }

    fn batch_written(&self, records: usize, outcome: BatchOutcome, took: Duration) {
        SinkTelemetry::batch_written(self, records, outcome, took);
    }

    fn write_failed(&self, error: &str) {
        SinkTelemetry::write_failed(self, error);
    }

    fn stopping(&self) {
        SinkTelemetry::stopping(self);
    }
}

/// The sink's observer is the admin telemetry.
impl From<SinkTelemetry> for Observer {
    fn from(t: SinkTelemetry) -> Observer {
        Observer::new(t)
    }
}
