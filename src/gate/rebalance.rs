//! The gate's consumer context: **what a rebalance hands the loop.** Under the cooperative
//! protocol a revocation is not acted on inside librdkafka's callback: the partitions stay
//! assigned until the loop has committed the open transaction (so the partitions it keeps
//! keep their tasks and their uncommitted work) and then gives them up itself. The eager
//! protocol gives them up at once, as librdkafka's default handler does.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{info, warn};

/// How long a failed session's consumer is served after it unsubscribes, so that librdkafka
/// completes the revocation and sends LeaveGroup before the consumer closes (a static member
/// closing sends none).
const LEAVE_SERVE: Duration = Duration::from_millis(500);

/// Longest a failed session waits for its partitions to be released before it closes anyway.
const LEAVE_WAIT: Duration = Duration::from_secs(3);

/// Partitions revoked during `poll`, waiting for the loop to finish its transaction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked partitions (of the one subscribed topic).
    pub partitions: Vec<i32>,
    /// The partitions are still assigned: the loop must call [`GateContext::give_up`] once it
    /// has committed or aborted the transaction that touches them.
    pub deferred: bool,
    /// The topic they belong to (for the incremental unassign).
    topic: String,
}

/// Consumer context shared between librdkafka's rebalance callback and the gate's loop.
#[derive(Default)]
pub struct GateContext {
    revoked: Mutex<Revocation>,
    owns_control_chain: AtomicBool,
    /// The loop will not run again: a revocation (the one `close` makes) is applied at once.
    closing: AtomicBool,
    /// Partitions the group gave this instance and has not taken back (a deferred revocation
    /// takes them out at once: they are on their way out).
    assigned: Mutex<BTreeSet<i32>>,
}

impl GateContext {
    /// Whether this instance owns the control chain's partition (and so folds control records).
    pub fn owns_control_chain(&self) -> bool {
        self.owns_control_chain.load(Ordering::SeqCst)
    }

    /// Tells the callback the loop is gone: the consumer's close must not wait for it.
    pub fn closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// The partitions assigned to this instance now, in order.
    pub fn assigned(&self) -> Vec<i32> {
        match self.assigned.lock() {
            Ok(a) => a.iter().copied().collect(),
            Err(p) => p.into_inner().iter().copied().collect(),
        }
    }

    fn note_assigned(&self, parts: &[i32], added: bool) {
        let mut a = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        for p in parts {
            if added {
                a.insert(*p);
            } else {
                a.remove(p);
            }
        }
    }

    /// Takes the revocation recorded since the last call (empty if none).
    pub fn take_revocation(&self) -> Revocation {
        match self.revoked.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(_) => Revocation::default(),
        }
    }

    /// Completes a deferred revocation: removes its partitions from the assignment, which lets
    /// the group's rebalance go on.
    pub fn give_up(consumer: &BaseConsumer<Self>, revocation: &Revocation) -> KafkaResult<()> {
        if !revocation.deferred || revocation.partitions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in &revocation.partitions {
            tpl.add_partition(&revocation.topic, *p);
        }
        consumer.incremental_unassign(&tpl)
    }

    /// Takes this member out of the group after its session failed, before the next session
    /// joins with the same instance id. A static member that comes back to a stable group gets
    /// its last assignment with no rebalance, so the partitions a cooperative rebalance was
    /// taking from the failed session (a revocation deferred to commit first) would stay with
    /// no owner until the group's next rebalance. Completes a pending revocation, unsubscribes
    /// (which gives up the rest; librdkafka then sends LeaveGroup, bounded by
    /// its own 5 s timeout) and serves the consumer for [`LEAVE_SERVE`], longer while
    /// something is still assigned, at most [`LEAVE_WAIT`].
    pub fn leave_after_failure(consumer: &BaseConsumer<Self>) {
        let context = consumer.context();
        context.closing();
        // Partitions librdkafka still counts as ours but the loop had let go of: a revocation
        // deferred until the loop's commit, which failed. The rebalance waits for them.
        let kept = context.assigned();
        if let Ok(held) = consumer.assignment() {
            let mut deferred = TopicPartitionList::new();
            for e in held.elements() {
                if !kept.contains(&e.partition()) {
                    deferred.add_partition(e.topic(), e.partition());
                }
            }
            if deferred.count() > 0
                && let Err(e) = consumer.incremental_unassign(&deferred)
            {
                warn!(error = %e, "giving up the deferred revocation of a failed session");
            }
        }
        consumer.unsubscribe();
        let started = Instant::now();
        while started.elapsed() < LEAVE_WAIT {
            // Serves the revocation and the leave; nothing is consumed after unsubscribe.
            let _ = consumer.poll(Duration::from_millis(50));
            let released = consumer.assignment().map_or(true, |a| a.count() == 0);
            if released && started.elapsed() >= LEAVE_SERVE {
                break;
            }
        }
        info!("failed session left the group; the next one joins as a new member");
    }

    fn set_control_chain(&self, parts: &[i32], owned: bool) {
        if parts.contains(&crate::control::CHAIN_PARTITION) {
            self.owns_control_chain.store(owned, Ordering::SeqCst);
        }
    }

    fn record_revocation(&self, tpl: &TopicPartitionList, deferred: bool) {
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        info!(partitions = ?parts, deferred, "partitions revoked");
        self.set_control_chain(&parts, false);
        self.note_assigned(&parts, false);
        if let Ok(mut r) = self.revoked.lock() {
            if let Some(e) = tpl.elements().first() {
                r.topic = e.topic().to_string();
            }
            r.partitions.extend(parts);
            r.deferred |= deferred;
        }
    }
}

impl ClientContext for GateContext {}

impl ConsumerContext for GateContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?parts, "partitions assigned");
                self.set_control_chain(&parts, true);
                self.note_assigned(&parts, true);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if cooperative
                    && !consumer.assignment_lost()
                    && !self.closing.load(Ordering::SeqCst) =>
            {
                // Kept assigned until the loop has finished the transaction (`give_up`). A lost
                // assignment (session timeout) cannot commit any more: it is given up at once.
                self.record_revocation(tpl, true);
                Ok(())
            }
            other => {
                // Eager, lost or closing revocation, or a rebalance error: give the partitions
                // up at once, as librdkafka's default handler does; the loop aborts what
                // touches them.
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    warn!(error = ?other, "rebalance error: giving the partitions up");
                }
                self.record_revocation(tpl, false);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = outcome {
            warn!(error = %e, "applying a rebalance failed");
        }
    }
}
