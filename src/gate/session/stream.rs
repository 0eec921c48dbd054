//! The session's loop, the stream thread proper: poll a batch, hand revocations and restores to
//! the task manager, then decide each record that is still current and add its outputs to the
//! open transaction, committing when it is due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::positions::PollStamp;
use super::{Session, sleep_or_shutdown};
use crate::clock::now_ms;
use crate::core::{Envelope, SignatureCheck, decide_checked};
use crate::gate::GateError;
use crate::gate::consumed::Consumed;
use crate::gate::decode::decode_intent;
use crate::gate::events::GovernanceEvent;
use crate::gate::observe::LoopView;
use crate::gate::policy_watch::{Reload, line_diff};
use crate::gate::rebalance::GateContext;
use crate::kafka::registry::RegistryError;

/// Most records decided per poll batch (their Ed25519 signatures are verified together).
const POLL_BATCH: usize = 256;

/// How often the control chain's owner looks for new control records.
const CONTROL_POLL: Duration = Duration::from_millis(200);

impl Session<'_> {
    pub(super) fn run(&mut self, shutdown: &CancellationToken) -> Result<(), GateError> {
        loop {
            if shutdown.is_cancelled() {
                self.announce(&GovernanceEvent::GateStopped {
                    gate_id: self.opts.gate_id.clone(),
                })?;
                self.commit()?;
                if self.opts.static_membership {
                    // A static member keeps its place: restarted within the session timeout
                    // (a rolling update) it gets the same partitions back with no rebalance.
                    // An explicit unsubscribe would make librdkafka send LeaveGroup.
                    info!(
                        "gate shutting down: transaction committed; static member, not leaving the group"
                    );
                } else {
                    info!("gate shutting down: transaction committed, leaving the group");
                    self.consumer.unsubscribe();
                }
                return Ok(());
            }
            if self.orphans.heal_requested() {
                return Err(GateError::Orphaned(crate::gate::orphans::GRACE));
            }
            if let Some(change) = self.watch.poll() {
                self.on_policy_change(change)?;
            }
            self.share
                .tick(self.tasks.tasks_mut(), self.partition_count);
            self.fold_control()?;
            self.opts.telemetry.tick(&LoopView {
                consumer: &self.consumer,
                tasks: self.tasks.all(),
                share: &self.share,
                watch: self.watch,
            });
            let batch = self.poll_batch()?;
            // Anything from here on can move a partition under the batch (a revocation, the
            // abort of a commit that a restore or a pause forces): its records are then stale.
            let polled = self.positions.polled();
            self.on_revocations()?;
            self.restore_assigned()?;
            let policy = Arc::clone(self.watch.current());
            let checks = crate::gate::verify::ahead(&batch, &policy);
            for (consumed, check) in batch.into_iter().zip(checks) {
                if !self.positions.is_current(consumed.partition, polled) {
                    continue;
                }
                if shutdown.is_cancelled() {
                    break;
                }
                let check = if Arc::ptr_eq(&policy, self.watch.current()) {
                    check
                } else {
                    SignatureCheck::Pending
                };
                self.handle(consumed, check, polled, shutdown)?;
                self.commit_if_due()?;
            }
            self.commit_if_due()?;
            self.idle_checkpoints()?;
        }
    }

    /// The records of one poll: waits up to 50 ms for the first, then takes what is already
    /// fetched, up to [`POLL_BATCH`].
    /// A fatal consumer error (the group fenced this member) ends the session.
    pub(super) fn poll_batch(&mut self) -> Result<Vec<Consumed>, GateError> {
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(50);
        while batch.len() < POLL_BATCH {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    if self.consumer.client().fatal_error().is_some() {
                        return Err(e.into());
                    }
                    warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => batch.push(Consumed::from_message(&m)),
            }
            wait = Duration::ZERO;
        }
        Ok(batch)
    }

    /// Commits the open transaction once it holds enough intents or is old enough.
    pub(super) fn commit_if_due(&mut self) -> Result<(), GateError> {
        if let Some(t) = self.eos.txn()
            && t.is_due(self.opts.max_batch, self.opts.commit_interval)
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Finishes the open transaction before revoked partitions are given up, and forgets their
    /// tasks (their next owner restores them). Under the cooperative protocol the partitions
    /// are still ours: the transaction commits, so the partitions this instance keeps keep
    /// their tasks. Otherwise (eager, lost, closing) it aborts, as it cannot commit any more.
    /// Revoked partitions count as moved: records of theirs polled since are not decided here.
    pub(super) fn on_revocations(&mut self) -> Result<(), GateError> {
        let revocation = self.consumer.context().take_revocation();
        let revoked = &revocation.partitions;
        if revoked.is_empty() {
            return Ok(());
        }
        if self.eos.txn().is_some_and(|t| t.touches_any(revoked)) {
            if revocation.deferred {
                info!(partitions = ?revoked, "revoked during an open transaction: committing it first");
                self.commit()?;
            } else {
                warn!(partitions = ?revoked, "revoked during an open transaction: aborting it");
                self.abort_and_rewind()?;
            }
        }
        for p in revoked {
            self.tasks.forget(*p);
            self.positions.moved(*p);
        }
        GateContext::give_up(&self.consumer, &revocation)?;
        Ok(())
    }

    /// Restores the first assigned partition that has no task yet (one per loop turn, so the
    /// status stays fresh during long restores), then reports every partition's phase.
    pub(super) fn restore_assigned(&mut self) -> Result<(), GateError> {
        let assigned = self.consumer.context().assigned();
        if let Some(p) = self.tasks.next_to_restore(&assigned) {
            self.ensure_task(p)?;
        }
        let warm = self.standbys.warm();
        if let Some(phases) = self.tasks.phases_changed(&assigned, &warm) {
            self.opts.telemetry.phases(phases);
        }
        Ok(())
    }

    /// Decides one consumed intent (polled at `polled`) and adds its outputs to the
    /// transaction. On shutdown while the registry is down, the record is left undecided and
    /// its partition rewound to it. A commit on the way (a restore, a registry pause) can abort
    /// and rewind the record's partition: the record is then left to come again.
    pub(super) fn handle(
        &mut self,
        c: Consumed,
        check: SignatureCheck,
        polled: PollStamp,
        shutdown: &CancellationToken,
    ) -> Result<(), GateError> {
        let started = Instant::now();
        self.ensure_task(c.partition)?;
        if self.moved_since(&c, polled) {
            return Ok(());
        }
        self.announce_takeover(c.partition)?;
        let already = self
            .tasks
            .get(c.partition)
            .is_some_and(|t| c.offset <= t.last_decided_offset);
        if already {
            warn!(
                partition = c.partition,
                offset = c.offset,
                "intent already has a committed decision; skipping"
            );
            return self.note(c.partition, c.offset);
        }
        let registry = self.registry;
        let rt = self.rt;
        let decoded = loop {
            match decode_intent(rt, registry, c.value.as_deref()) {
                Ok(d) => break d,
                Err(RegistryError::Unavailable(e)) => {
                    // Infrastructure failure: commit what is decided, then wait. The record
                    // stays undecided and its offset uncommitted until the registry answers.
                    warn!(error = %e, "schema registry unavailable; pausing decisions");
                    self.commit()?;
                    if sleep_or_shutdown(shutdown, Duration::from_millis(500)) {
                        return self.seek_to(c.partition, c.offset);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        if self.moved_since(&c, polled) {
            return Ok(());
        }
        let policy = self.watch.current().clone();
        let stale_policy = self
            .tasks
            .get(c.partition)
            .filter(|t| t.policy_version != policy.version)
            .map(|t| t.policy_version.clone());
        if let Some(from) = stale_policy {
            // The chain attests under which policy its decisions are made.
            let diff = self
                .watch
                .text_of(&from)
                .zip(self.watch.text_of(&policy.version))
                .map(|(old, new)| line_diff(old, new));
            let event = GovernanceEvent::PolicyApplied {
                from,
                to: policy.version.clone(),
                diff,
                products: policy.products.len(),
                integrations: policy.integrations.len(),
            };
            self.governance(c.partition, &event)?;
        }
        let Some(stored) = self.tasks.stored_mut(c.partition) else {
            return Ok(());
        };
        let envelope = Envelope {
            key: c.key.as_deref(),
            partition: c.partition,
            partition_count: self.partition_count,
            payload: decoded.as_ref(),
            value: c.value_bytes(),
            signature: c.signatures(),
        };
        if let Ok(i) = decoded.as_ref() {
            stored.prefetch(i)?;
        }
        let task = &stored.task;
        let decision = decide_checked(&envelope, &task.state, &policy, now_ms(), check);
        let offender_before = (decision.offender.as_ref())
            .and_then(|change| task.state.offender(&change.integration));
        let mut outputs = self.writer.outputs(
            &c,
            decoded.as_ref().ok(),
            &decision,
            offender_before,
            &task.chain,
        )?;
        crate::gate::trace::decision_span(
            &c,
            decoded.as_ref().ok(),
            &decision,
            started,
            &mut outputs,
        );
        stored.record_decision(&decision, policy.limits.replay_window);
        stored
            .task
            .append_decision(&outputs.audit, outputs.audit_value(), c.offset);
        self.opts
            .telemetry
            .decided(&c, decoded.as_ref().ok(), &decision, &policy, started);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let intent = decoded.as_ref().ok();
            debug!(
                partition = c.partition,
                offset = c.offset,
                product = intent.map(|i| i.product_id.as_str()),
                intent_id = intent.map(|i| i.intent_id.as_str()),
                policy_version = decision.policy_version.as_str(),
                outcome = decision.outcome.as_str(),
                reasons = ?decision.reasons(),
                version = decision.version,
                "decided"
            );
        }
        self.eos.open()?;
        for r in &outputs.records {
            self.eos.send(r)?;
        }
        for event in &decision.events {
            self.governance(c.partition, &GovernanceEvent::Decision(event.clone()))?;
        }
        self.note(c.partition, c.offset)
    }

    /// True when `c`'s partition moved (an abort's rewind) since `c` was polled at `polled`:
    /// it is not decided now, as it comes again from where its partition stands.
    pub(super) fn moved_since(&self, c: &Consumed, polled: PollStamp) -> bool {
        let moved = !self.positions.is_current(c.partition, polled);
        if moved {
            debug!(
                partition = c.partition,
                offset = c.offset,
                "partition rewound while the record waited; it comes again"
            );
        }
        moved
    }

    /// Records that `offset` of `partition` is decided in the open transaction.
    pub(super) fn note(&mut self, partition: i32, offset: i64) -> Result<(), GateError> {
        self.eos.open()?.decided(partition, offset);
        Ok(())
    }

    /// Folds new `bucket.control` records into the control chain, when this instance owns it.
    pub(super) fn fold_control(&mut self) -> Result<(), GateError> {
        if self.control.is_none() || self.last_control_poll.elapsed() < CONTROL_POLL {
            return Ok(());
        }
        self.last_control_poll = Instant::now();
        let p = crate::control::CHAIN_PARTITION;
        let owned = self.consumer.context().owns_control_chain();
        if !owned {
            if let Some(feed) = self.control.as_mut() {
                feed.release();
            }
            return Ok(());
        }
        self.ensure_task(p)?;
        let Some(from) = self.tasks.get(p).map(|t| t.control_next) else {
            return Ok(());
        };
        let records = match self.control.as_mut() {
            Some(feed) => feed.read_from(from, 100),
            None => Vec::new(),
        };
        for (offset, value) in records {
            let (event_type, detail) = crate::control::fold_detail(offset, value.as_deref());
            info!(
                offset,
                event_type, "control event folded into the audit chain"
            );
            self.governance(p, &GovernanceEvent::Control { event_type, detail })?;
            if let Some(t) = self.tasks.get_mut(p) {
                t.folded_control(offset);
            }
        }
        Ok(())
    }

    pub(super) fn on_policy_change(&mut self, change: Reload) -> Result<(), GateError> {
        // Decisions so far were made (and stamped) under the old policy: commit them first.
        self.commit()?;
        match change {
            Reload::Loaded {
                from,
                to,
                diff,
                approval,
            } => self.announce(&GovernanceEvent::PolicyLoaded {
                from,
                to,
                diff,
                approval,
            }),
            Reload::Refused {
                kept,
                error,
                approval,
            } => self.announce(&GovernanceEvent::PolicyRefused {
                kept,
                error,
                approval,
            }),
        }
    }
}
