//! The batch's commit and an abort's rollback: the changelog records of what the transaction
//! changed, the offsets it carries (`gate::txn`), the commit through the exactly-once path, then
//! each touched task's store checkpoint; on an abortable failure, the tasks roll back to their
//! last commit (or are forgotten, to be restored) and their partitions seek back.

use std::time::Instant;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, ConsumerGroupMetadata};
use tracing::{debug, error, warn};

use super::eos::CommitFailure;
use super::{OP_TIMEOUT, Session};
use crate::gate::GateError;

impl Session<'_> {
    /// Commits the open transaction with its offsets. Abortable failures abort and rewind;
    /// fatal ones end the session.
    pub(super) fn commit(&mut self) -> Result<(), GateError> {
        self.checkpoints()?;
        let Some(txn) = self.eos.txn() else {
            return Ok(());
        };
        let started = Instant::now();
        let touched: Vec<i32> = txn.partitions().collect();
        for p in &touched {
            let records = match self.tasks.stored_mut(*p) {
                Some(t) => t.changelog_records(&self.opts.topics.changelog, *p)?,
                None => continue,
            };
            for r in &records {
                self.eos.send(r)?;
            }
        }
        let Some(txn) = self.eos.txn() else {
            return Ok(());
        };
        // A chain written without a decision (governance only) still commits its partition's
        // unchanged offset, so that a zombie instance is fenced by the group generation.
        let offsets = txn.commit_offsets(|p| self.tasks.fencing(p));
        let intents = txn.intents();
        let cgm = self.group_metadata()?;
        match self.eos.commit(&offsets, cgm) {
            Ok(audit_offsets) => {
                for p in touched {
                    let Some(t) = self.tasks.stored_mut(p) else {
                        continue;
                    };
                    t.task.mark_committed();
                    let Some(offset) = audit_offsets.get(&p) else {
                        t.committed_unpersisted();
                        continue;
                    };
                    if let Err(e) = t.persist_committed(*offset) {
                        // The log has it; the store is behind: the next restore replays more.
                        warn!(partition = p, error = %e, "local state store write failed; the task restores again from its checkpoint");
                        self.tasks.forget(p);
                    }
                }
                self.recopy_changelogs()?;
                self.opts.telemetry.committed(started.elapsed());
                debug!(
                    intents,
                    commit_ms = started.elapsed().as_millis() as u64,
                    "transaction committed"
                );
                Ok(())
            }
            Err(CommitFailure::MustAbort(e)) => {
                warn!(error = %e, "transaction must abort");
                self.abort_and_rewind()
            }
            Err(failure) => {
                if let CommitFailure::Fatal(e) = &failure {
                    error!(error = %e, "transaction commit failed fatally");
                }
                self.tasks.clear();
                Err(failure.into())
            }
        }
    }

    /// Aborts the open transaction, rolls the tasks it touched back to their last commit (or
    /// forgets them, to be restored) and rewinds their partitions.
    pub(super) fn abort_and_rewind(&mut self) -> Result<(), GateError> {
        let txn = match self.eos.abort() {
            Ok(Some(txn)) => txn,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.tasks.clear();
                return Err(e);
            }
        };
        self.opts.telemetry.aborted();
        let assigned: Vec<i32> = self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        for (p, offset) in self.tasks.roll_back(&txn.rewinds(&assigned), &assigned) {
            self.seek_to(p, offset)?;
        }
        Ok(())
    }

    /// Seeks `partition` back to `offset`: its records polled before are stale now.
    pub(super) fn seek_to(&mut self, partition: i32, offset: i64) -> Result<(), GateError> {
        self.positions.moved(partition);
        self.consumer.seek(
            &self.opts.topics.intents,
            partition,
            Offset::Offset(offset),
            OP_TIMEOUT,
        )?;
        Ok(())
    }

    /// The consumer group's metadata, which every transaction's offsets are committed under.
    pub(super) fn group_metadata(&self) -> Result<ConsumerGroupMetadata, GateError> {
        self.consumer
            .group_metadata()
            .ok_or_else(|| GateError::Group("consumer has no group metadata".into()))
    }
}
