//! Links appended to a partition's audit chain other than decisions: governance events (a
//! takeover, a policy change, a control event) and signed checkpoints, each built by the
//! session's [`super::super::records::OutputWriter`] and added to the open transaction.

use tracing::{debug, warn};

use super::Session;
use super::tasks::{ChainTip, CheckpointRule};
use crate::clock::now_ms;
use crate::gate::GateError;
use crate::gate::events::GovernanceEvent;
use crate::tlog::checkpoint::signed_note;
use crate::wire::audit::checkpoint::Checkpoint;

impl Session<'_> {
    /// Writes the takeover announcement of `partition`'s task if it is still pending.
    pub(super) fn announce_takeover(&mut self, partition: i32) -> Result<(), GateError> {
        let Some(event) = self.tasks.take_announcement(partition) else {
            return Ok(());
        };
        self.governance(partition, &event)
    }

    /// Appends a governance event to one partition's chain inside the open transaction.
    pub(super) fn governance(
        &mut self,
        partition: i32,
        event: &GovernanceEvent,
    ) -> Result<(), GateError> {
        self.announce_takeover(partition)?;
        let event_type = event.event_type();
        let detail = event.detail();
        let version = self.watch.current().version.clone();
        let Some(task) = self.tasks.get_mut(partition) else {
            return Ok(());
        };
        let (record, event) = self.writer.governance(
            partition,
            &task.chain,
            event_type,
            &detail,
            &version,
            now_ms(),
        )?;
        task.append_governance(
            &event,
            record.value.as_deref().unwrap_or_default(),
            &version,
        );
        debug!(partition, event_type, "governance event");
        self.opts
            .telemetry
            .governance(partition, event_type, &self.watch.current().version);
        // A transaction holding only governance events still rewinds correctly on abort: the
        // affected tasks are rolled back or restored from the committed log.
        self.eos.open()?.governance(partition);
        self.eos.send(&record)
    }

    /// Appends a signed checkpoint to every chain of the open transaction that is due one.
    pub(super) fn checkpoints(&mut self) -> Result<(), GateError> {
        let Some((key_id, key)) = self.opts.audit_key.clone() else {
            return Ok(());
        };
        let Some(txn) = self.eos.txn() else {
            return Ok(());
        };
        let rule = CheckpointRule {
            every: self.opts.checkpoint_every,
            interval: self.opts.checkpoint_interval,
        };
        for tip in self.tasks.checkpoints_due(txn.partitions(), rule) {
            self.checkpoint(&tip, &key_id, &key)?;
        }
        Ok(())
    }

    /// Appends a signed checkpoint (with its transparency-log note) of the chain head `tip`
    /// to its chain.
    pub(super) fn checkpoint(
        &mut self,
        tip: &ChainTip,
        key_id: &str,
        key: &crate::core::signature::SignKey,
    ) -> Result<(), GateError> {
        let p = tip.partition;
        let mut cp = Checkpoint::sign(key_id, key, p, tip.seq, &tip.hash);
        // The tree holds exactly the links 0..=seq now: the note commits to them.
        if let Some(t) = self.tasks.get(p) {
            match signed_note(&self.opts.deployment, key, p, &t.tree) {
                Ok(note) => cp.note = Some(note),
                Err(e) => {
                    warn!(partition = p, error = %e, "audit key cannot sign transparency-log notes; checkpoint without one");
                }
            }
        }
        self.governance(p, &GovernanceEvent::Checkpoint(cp))?;
        if let Some(t) = self.tasks.get_mut(p) {
            t.checkpointed();
        }
        Ok(())
    }

    /// With no transaction open: a chain whose last links are older than the checkpoint
    /// interval and not yet checkpointed gets its checkpoint in a transaction of its own, so
    /// that the last decisions of a partition that went quiet are signed (and provable from the
    /// transparency log) within one interval, not at its next intent.
    pub(super) fn idle_checkpoints(&mut self) -> Result<(), GateError> {
        if self.eos.txn().is_some() {
            return Ok(());
        }
        let Some((key_id, key)) = self.opts.audit_key.clone() else {
            return Ok(());
        };
        let due = self
            .tasks
            .idle_checkpoints_due(self.opts.checkpoint_interval);
        if due.is_empty() {
            return Ok(());
        }
        for tip in &due {
            self.checkpoint(tip, &key_id, &key)?;
        }
        self.commit()
    }

    /// Writes the same governance event into every chain this instance holds.
    pub(super) fn announce(&mut self, event: &GovernanceEvent) -> Result<(), GateError> {
        for p in self.tasks.partitions() {
            self.governance(p, event)?;
        }
        Ok(())
    }
}
