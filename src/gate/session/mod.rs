//! The transactional loop. One session = one consumer + one transactional producer; a fatal
//! producer error or a failed rewind ends the session and a fresh one starts from the committed
//! offsets, with every partition task restored from the audit log.
//!
//! Order per batch (KIP-447): begin → produce outputs → send offsets (next to read, with the
//! consumer group metadata) → commit. On an abortable error: abort, forget the tasks the batch
//! touched, seek their partitions back to the batch's first offsets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::clients::{self, COMMIT_DEADLINE, TXN_TIMEOUT};
use super::decode::decode_intent;
use super::events::GovernanceEvent;
use super::kafka_records::Consumed;
use super::lifecycle::Phases;
use super::observe::LoopView;
use super::persist::{RestoreSources, RestoreStats, restore_task};
use super::policy_watch::{PolicyWatch, Reload, line_diff};
use super::rebalance::GateContext;
use super::records::{OutRecord, Writer};
use super::task::{AuditSource, Task};
use super::txn::{OpenTxn, fencing_offset};
use super::{GateError, GateOptions};
use crate::clock::now_ms;
use crate::core::{Envelope, SignatureCheck, decide_checked};
use crate::registry::{OutputSchemaIds, Registry, RegistryError};
use crate::wire::audit::AuditReader;
use positions::{FetchPositions, PollStamp};

mod positions;

const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait after a commit for the delivery reports of its audit links (they are
/// acknowledged already; only the callbacks may lag). A partition still missing one gets no
/// store checkpoint this time: its changes are kept and written with the next commit.
const DELIVERY_REPORTS_WAIT: Duration = Duration::from_secs(2);

/// Runs the gate until `shutdown` is cancelled. Blocking: call from a dedicated thread.
pub fn run(opts: GateOptions, shutdown: CancellationToken, rt: Handle) -> Result<(), GateError> {
    let registry = Registry::new(&opts.registry_url)?;
    let registered = retry_registry(&shutdown, || {
        rt.block_on(registry.output_ids(opts.audit_version))
    })?;
    let Some((ids, audit_reader)) = registered else {
        return Ok(());
    };
    info!(
        accepted_schema = ids.accepted,
        audit_schema = ids.audit,
        audit_version = opts.audit_version,
        audit_readable = ?audit_reader.ids(),
        "output schemas registered"
    );
    let mut watch = PolicyWatch::new(
        opts.policy_path.clone(),
        opts.reload.clone(),
        opts.policy.clone(),
        opts.policy_text.clone(),
        opts.approvals.clone(),
    );
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = Session::start(&opts, &registry, ids, &audit_reader, &rt, &mut watch)
            .and_then(|mut s| s.run(&shutdown).map_err(|e| s.failed(e, &shutdown)));
        match result {
            Ok(()) => return Ok(()),
            Err(
                e @ (GateError::Layout(_) | GateError::Encode(_) | GateError::InstanceTaken(_)),
            ) => return Err(e),
            Err(e) => {
                if shutdown.is_cancelled() {
                    return Err(e);
                }
                error!(error = %e, backoff_ms = backoff.as_millis() as u64, "gate session failed; starting a new one");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Calls `f` until the registry answers; `None` when shut down first.
fn retry_registry<T>(
    shutdown: &CancellationToken,
    mut f: impl FnMut() -> Result<T, RegistryError>,
) -> Result<Option<T>, GateError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match f() {
            Ok(v) => return Ok(Some(v)),
            Err(RegistryError::Unavailable(e)) => {
                warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "schema registry unavailable; waiting");
                if sleep_or_shutdown(shutdown, backoff) {
                    return Ok(None);
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sleeps; true if shutdown was requested meanwhile.
fn sleep_or_shutdown(shutdown: &CancellationToken, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shutdown.is_cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(d));
    }
    shutdown.is_cancelled()
}

struct Session<'a> {
    opts: &'a GateOptions,
    watch: &'a mut PolicyWatch,
    share: super::usage_share::UsageShare,
    registry: &'a Registry,
    rt: &'a Handle,
    ids: OutputSchemaIds,
    audit_reader: &'a AuditReader,
    /// Local state stores, named after this cluster and these topics.
    store: Option<super::persist::StoreOptions>,
    consumer: BaseConsumer<GateContext>,
    producer: Arc<ThreadedProducer<clients::AuditDeliveries>>,
    partition_count: i32,
    tasks: HashMap<i32, Task>,
    /// Group offset of each task's partition when the task was created (fencing offsets).
    resume: HashMap<i32, i64>,
    control: Option<crate::control::feed::ControlFeed>,
    last_control_poll: Instant,
    txn: Option<OpenTxn>,
    /// Moves of each partition's position (rewinds, pauses, revocations): a polled record of
    /// a partition that moved since its poll is not decided (it comes again).
    positions: FetchPositions,
    /// Takeover announcements (`GATE_STARTED`) of tasks restored ahead of their first link:
    /// written just before the chain's next link, so an idle partition's chain is unchanged.
    unannounced: HashMap<i32, GovernanceEvent>,
    /// The phases last reported to the observer (readiness, `/status`); None before the first
    /// report (readiness waits for it).
    phases: Option<Phases>,
    /// Standby tasks (`--standby-replicas`): their worker, stopped with the session, and the
    /// store locks the loop's restores share with it.
    standbys: super::standby::Standbys,
    /// Watches the group for partitions no member owns (`gate::orphans`).
    orphans: super::orphans::Orphans,
}

impl Drop for Session<'_> {
    /// The consumer closes right after: its last revocation must not wait for this loop.
    fn drop(&mut self) {
        self.consumer.context().closing();
    }
}

/// Most records decided per poll batch (their Ed25519 signatures are verified together).
const POLL_BATCH: usize = 256;

/// Records per transaction when a partition's state is copied into the changelog.
const COPY_CHUNK: usize = 20_000;

/// How often the control chain's owner looks for new control records.
const CONTROL_POLL: Duration = Duration::from_millis(200);

impl<'a> Session<'a> {
    fn start(
        opts: &'a GateOptions,
        registry: &'a Registry,
        ids: OutputSchemaIds,
        audit_reader: &'a AuditReader,
        rt: &'a Handle,
        watch: &'a mut PolicyWatch,
    ) -> Result<Session<'a>, GateError> {
        let producer: ThreadedProducer<clients::AuditDeliveries> = clients::producer_config(
            &opts.brokers,
            &format!("{}-{}", opts.group_id, opts.gate_id),
        )
        .create_with_context(clients::AuditDeliveries::new(&opts.topics.audit))?;
        producer.init_transactions(OP_TIMEOUT)?;
        let mut config = clients::consumer_config(
            &opts.brokers,
            &opts.group_id,
            &format!("bucket-gate-{}", opts.gate_id),
        );
        crate::kafka::membership::apply(
            &mut config,
            opts.static_membership.then_some(opts.gate_id.as_str()),
            opts.session_timeout,
        );
        let consumer: BaseConsumer<GateContext> =
            config.create_with_context(GateContext::default())?;
        let partition_count = partition_count_of(&consumer, &opts.topics.intents)?;
        let audit_count = partition_count_of(&consumer, &opts.topics.audit)?;
        if audit_count != partition_count {
            return Err(GateError::Layout(format!(
                "{} has {audit_count} partitions, {} has {partition_count}: they must be equal",
                opts.topics.audit, opts.topics.intents
            )));
        }
        if opts.store.is_some() {
            let changelog_count = partition_count_of(&consumer, &opts.topics.changelog)?;
            if changelog_count != partition_count {
                return Err(GateError::Layout(format!(
                    "{} has {changelog_count} partitions, {} has {partition_count}: they must be equal (bucket topics apply)",
                    opts.topics.changelog, opts.topics.intents
                )));
            }
        }
        consumer.subscribe(&[&opts.topics.intents])?;
        let store = opts.store.clone().map(|mut s| {
            s.cluster = consumer
                .client()
                .fetch_cluster_id(OP_TIMEOUT)
                .unwrap_or_else(|| opts.brokers.clone());
            s.intents_topic = opts.topics.intents.clone();
            s
        });
        let standbys =
            super::standby::Standbys::start(opts, store.as_ref(), Arc::clone(consumer.context()));
        let orphans = super::orphans::Orphans::start(
            &opts.brokers,
            &opts.group_id,
            &opts.topics.intents,
            partition_count,
            &format!("bucket-gate-{}", opts.gate_id),
        );
        info!(
            group = %opts.group_id,
            gate = %opts.gate_id,
            partitions = partition_count,
            policy_version = %watch.current().version,
            "gate session started"
        );
        Ok(Session {
            opts,
            watch,
            share: super::usage_share::UsageShare::new(opts.redis.as_ref(), &opts.topics.intents),
            registry,
            rt,
            ids,
            audit_reader,
            store,
            consumer,
            producer: Arc::new(producer),
            partition_count,
            tasks: HashMap::new(),
            resume: HashMap::new(),
            control: crate::control::feed::ControlFeed::new(&opts.brokers, &opts.topics.control)
                .inspect_err(|e| warn!(error = %e, "control feed unavailable"))
                .ok(),
            last_control_poll: Instant::now(),
            txn: None,
            positions: FetchPositions::default(),
            unannounced: HashMap::new(),
            phases: None,
            standbys,
            orphans,
        })
    }

    /// Ends a failed session: the error to report (the instance taken over by another process,
    /// else `e`) and, unless the instance stops, leaving the group so that the next session
    /// joins as a new member ([`GateContext::leave_after_failure`]).
    fn failed(&mut self, e: GateError, shutdown: &CancellationToken) -> GateError {
        if let Some(taken) = self.taken_over() {
            return taken;
        }
        let stops = matches!(e, GateError::Layout(_) | GateError::Encode(_));
        if !stops && !shutdown.is_cancelled() {
            GateContext::leave_after_failure(&self.consumer);
        }
        e
    }

    /// After a failed session: whether Kafka fenced this instance because another process runs
    /// with the same instance id (a static member of the same `group.instance.id` joined, or a
    /// producer initialised the same transactional id). Then retrying would fence that process
    /// in turn, and the two would take the partitions from each other forever: stop instead.
    fn taken_over(&self) -> Option<GateError> {
        // Only the producer's fencing counts: librdkafka also raises the consumer's
        // FENCED_INSTANCE_ID when a static member's own session timed out (a broker outage
        // longer than the session timeout), and a new session then rejoins as it should. A
        // second process with this id initialises the same transactional id, which fences this
        // producer at its next transaction.
        let fenced = self
            .producer
            .client()
            .fatal_error()
            .filter(|(code, _)| crate::kafka::membership::is_fencing(*code))?;
        Some(GateError::InstanceTaken(format!(
            "instance id {:?} is in use by another process ({}: {})",
            self.opts.gate_id, fenced.0, fenced.1
        )))
    }

    /// Restores the first assigned partition that has no task yet (one per loop turn, so the
    /// status stays fresh during long restores), then reports every partition's phase.
    fn restore_assigned(&mut self) -> Result<(), GateError> {
        let assigned = self.consumer.context().assigned();
        if let Some(p) = assigned.iter().find(|p| !self.tasks.contains_key(p)) {
            self.ensure_task(*p)?;
        }
        let warm = self.standbys.warm();
        let phases = Phases::of(&assigned, |p| self.tasks.contains_key(&p), &warm);
        if self.phases.as_ref() != Some(&phases) {
            self.opts.telemetry.phases(&phases);
            self.phases = Some(phases);
        }
        Ok(())
    }

    /// Writes the takeover announcement of `partition`'s task if it is still pending.
    fn announce_takeover(&mut self, partition: i32) -> Result<(), GateError> {
        let Some(event) = self.unannounced.remove(&partition) else {
            return Ok(());
        };
        let Some(task) = self.tasks.get_mut(&partition) else {
            return Ok(());
        };
        task.announced_at = Some(task.chain.next_seq);
        self.governance(partition, &event)
    }

    fn run(&mut self, shutdown: &CancellationToken) -> Result<(), GateError> {
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
                return Err(GateError::Orphaned(super::orphans::GRACE));
            }
            if let Some(change) = self.watch.poll() {
                self.on_policy_change(change)?;
            }
            self.share.tick(&mut self.tasks, self.partition_count);
            self.fold_control()?;
            self.opts.telemetry.tick(&LoopView {
                consumer: &self.consumer,
                tasks: &self.tasks,
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
            let checks = super::verify::ahead(&batch, &policy);
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
    fn poll_batch(&mut self) -> Result<Vec<Consumed>, GateError> {
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
    fn commit_if_due(&mut self) -> Result<(), GateError> {
        if let Some(t) = &self.txn
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
    fn on_revocations(&mut self) -> Result<(), GateError> {
        let revocation = self.consumer.context().take_revocation();
        let revoked = &revocation.partitions;
        if revoked.is_empty() {
            return Ok(());
        }
        if self.txn.as_ref().is_some_and(|t| t.touches_any(revoked)) {
            if revocation.deferred {
                info!(partitions = ?revoked, "revoked during an open transaction: committing it first");
                self.commit()?;
            } else {
                warn!(partitions = ?revoked, "revoked during an open transaction: aborting it");
                self.abort_and_rewind()?;
            }
        }
        for p in revoked {
            self.tasks.remove(p);
            self.resume.remove(p);
            self.positions.moved(*p);
        }
        GateContext::give_up(&self.consumer, &revocation)?;
        Ok(())
    }

    /// Decides one consumed intent (polled at `polled`) and adds its outputs to the
    /// transaction. On shutdown while the registry is down, the record is left undecided and
    /// its partition rewound to it. A commit on the way (a restore, a registry pause) can abort
    /// and rewind the record's partition: the record is then left to come again.
    fn handle(
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
            .get(&c.partition)
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
            .get(&c.partition)
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
        let Some(task) = self.tasks.get_mut(&c.partition) else {
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
            task.prefetch(i)?;
        }
        let decision = decide_checked(&envelope, &task.state, &policy, now_ms(), check);
        let writer = Writer {
            topics: &self.opts.topics,
            ids: self.ids,
            gate_id: &self.opts.gate_id,
            audit_version: self.opts.audit_version,
        };
        let offender_before = (decision.offender.as_ref())
            .and_then(|change| task.state.offender(&change.integration));
        let mut outputs = writer.outputs(
            &c,
            decoded.as_ref().ok(),
            &decision,
            offender_before,
            &task.chain,
        )?;
        super::trace::decision_span(&c, decoded.as_ref().ok(), &decision, started, &mut outputs);
        task.record_decision(&decision, policy.limits.replay_window);
        let stored = outputs
            .records
            .iter()
            .rev()
            .find(|r| r.topic == self.opts.topics.audit)
            .and_then(|r| r.value.as_deref())
            .unwrap_or_default();
        task.advance(&outputs.audit, stored);
        task.links_since_checkpoint += 1;
        task.last_decided_offset = c.offset;
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
        self.ensure_txn()?;
        for r in &outputs.records {
            self.send(r)?;
        }
        for event in &decision.events {
            self.governance(c.partition, &GovernanceEvent::Decision(event.clone()))?;
        }
        self.note(c.partition, c.offset)
    }

    /// True when `c`'s partition moved (an abort's rewind) since `c` was polled at `polled`:
    /// it is not decided now, as it comes again from where its partition stands.
    fn moved_since(&self, c: &Consumed, polled: PollStamp) -> bool {
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

    /// Restores the task of `partition` from the audit log if this instance has none, records
    /// where the group stands on it, and announces the takeover in its chain (`GATE_STARTED`).
    fn ensure_task(&mut self, partition: i32) -> Result<(), GateError> {
        if self.tasks.contains_key(&partition) {
            return Ok(());
        }
        // A restore can take long: do not hold the open transaction (and the readers behind the
        // last stable offset) across it, nor let it run into the transaction timeout.
        if self.txn.is_some() {
            self.commit()?;
        }
        let started = Instant::now();
        super::lifecycle::RESTORE_PROGRESS.begin(partition, now_ms());
        let restored = self.restore_locked(partition);
        super::lifecycle::RESTORE_PROGRESS.end();
        let (mut task, stats) = restored?;
        debug!(partition, "task restored; reading the group's position");
        let resume = self.group_position(partition)?;
        debug!(
            partition,
            resume, "group position read; announcing the takeover"
        );
        if !task.changelog_current() {
            let epoch = self.copy_to_changelog(partition, &task, resume)?;
            task.changelog_written(epoch);
        }
        let event = GovernanceEvent::GateStarted {
            gate_id: self.opts.gate_id.clone(),
            gate_version: env!("CARGO_PKG_VERSION"),
            partition,
            restored_links: task.chain.next_seq,
            replayed_links: stats.links_read,
            warm: stats.warm,
            restored_from: stats.source(self.store.is_some()),
            artifacts: task.artifact_count(),
            last_decided_offset: task.last_decided_offset,
            restore_ms: started.elapsed().as_millis() as u64,
        };
        self.resume.insert(partition, resume);
        self.tasks.insert(partition, task);
        self.unannounced.insert(partition, event);
        Ok(())
    }

    /// Restores `partition`'s task (`persist::restore_task`) once no standby round holds its
    /// store: what [`Session::ensure_task`] announces.
    fn restore_locked(&self, partition: i32) -> Result<(Task, RestoreStats), GateError> {
        let src = AuditSource {
            brokers: &self.opts.brokers,
            topic: &self.opts.topics.audit,
            timeout: self.opts.restore_timeout,
            reader: self.audit_reader,
        };
        let sources = RestoreSources {
            audit: src,
            changelog_topic: &self.opts.topics.changelog,
        };
        // Waits for a standby round on this partition's store to finish.
        let lock = self.standbys.store_lock(partition);
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        let store = self.store.as_ref();
        Ok(restore_task(
            sources,
            partition,
            self.watch.current(),
            store,
        )?)
    }

    /// Writes a restored task's whole state into the changelog under a new epoch, in
    /// transactions of [`COPY_CHUNK`] records that carry the partition's unchanged group offset
    /// (so a zombie instance is fenced), the head last. Until that head commits, a cold restore
    /// does not use the copy (it finds no head of its epoch).
    fn copy_to_changelog(
        &self,
        partition: i32,
        task: &Task,
        resume: i64,
    ) -> Result<super::changelog::Epoch, GateError> {
        let epoch = task.new_changelog_epoch();
        let topic = &self.opts.topics.changelog;
        let started = Instant::now();
        let mut cursor = super::store::ExportCursor::default();
        let mut copied = 0u64;
        loop {
            let chunk = task.changelog_copy(&mut cursor, epoch, topic, partition, COPY_CHUNK)?;
            let last = chunk.is_empty();
            self.producer.begin_transaction()?;
            for r in &chunk {
                self.send(r)?;
            }
            if last {
                self.send(&task.changelog_copy_head(epoch, topic, partition)?)?;
            }
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(
                &self.opts.topics.intents,
                partition,
                Offset::Offset(resume),
            )?;
            let Some(cgm) = self.consumer.group_metadata() else {
                return Err(GateError::Group("consumer has no group metadata".into()));
            };
            match clients::commit_within(&self.producer, offsets, cgm, COMMIT_DEADLINE) {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(GateError::CommitStuck(COMMIT_DEADLINE)),
            }
            copied += chunk.len() as u64;
            if last {
                break;
            }
        }
        info!(
            partition,
            records = copied,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state changelog written from the local store (new epoch)"
        );
        Ok(epoch)
    }

    /// Copies into the changelog, under a new epoch, the state of every task whose epoch can no
    /// longer hold it (its replay window outgrew the ring). Between the commit and the copy the
    /// changelog's head is behind the audit log, so a restore then would not use it.
    fn recopy_changelogs(&mut self) -> Result<(), GateError> {
        let stale: Vec<i32> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.changelog_current())
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            let Some(mut task) = self.tasks.remove(&p) else {
                continue;
            };
            let at = fencing_offset(Some(task.last_decided_offset), self.resume.get(&p).copied());
            let epoch = self.copy_to_changelog(p, &task, at.unwrap_or(0))?;
            task.changelog_written(epoch);
            self.tasks.insert(p, task);
        }
        Ok(())
    }

    /// The group's committed offset of `partition`, or the log start when none is committed.
    fn group_position(&self, partition: i32) -> Result<i64, GateError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.opts.topics.intents, partition);
        let committed = self.consumer.committed_offsets(tpl, OP_TIMEOUT)?;
        let offset = committed
            .find_partition(&self.opts.topics.intents, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        match offset {
            Some(o) => Ok(o),
            None => Ok(self
                .consumer
                .fetch_watermarks(&self.opts.topics.intents, partition, OP_TIMEOUT)?
                .0),
        }
    }

    /// Folds new `bucket.control` records into the control chain, when this instance owns it.
    fn fold_control(&mut self) -> Result<(), GateError> {
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
        let Some(from) = self.tasks.get(&p).map(|t| t.control_next) else {
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
            if let Some(t) = self.tasks.get_mut(&p) {
                t.control_next = offset + 1;
            }
        }
        Ok(())
    }

    fn ensure_txn(&mut self) -> Result<(), GateError> {
        if self.txn.is_none() {
            self.producer.begin_transaction()?;
            self.txn = Some(OpenTxn::new(Instant::now()));
        }
        Ok(())
    }

    /// Appends a governance event to one partition's chain inside the open transaction.
    fn governance(&mut self, partition: i32, event: &GovernanceEvent) -> Result<(), GateError> {
        self.announce_takeover(partition)?;
        let event_type = event.event_type();
        let detail = event.detail();
        let version = self.watch.current().version.clone();
        let Some(task) = self.tasks.get_mut(&partition) else {
            return Ok(());
        };
        let writer = Writer {
            topics: &self.opts.topics,
            ids: self.ids,
            gate_id: &self.opts.gate_id,
            audit_version: self.opts.audit_version,
        };
        let (record, event) = writer.governance(
            partition,
            &task.chain,
            event_type,
            &detail,
            &version,
            now_ms(),
        )?;
        task.advance(&event, record.value.as_deref().unwrap_or_default());
        task.policy_version = version;
        task.links_since_checkpoint += 1;
        debug!(partition, event_type, "governance event");
        self.opts
            .telemetry
            .governance(partition, event_type, &self.watch.current().version);
        self.ensure_txn()?;
        if let Some(t) = self.txn.as_mut() {
            // A transaction holding only governance events still rewinds correctly on abort:
            // the affected tasks are forgotten and restored from the committed log.
            t.governance(partition);
        }
        self.send(&record)
    }

    /// Appends a signed checkpoint to every chain of the open transaction that is due one.
    fn checkpoints(&mut self) -> Result<(), GateError> {
        let Some((key_id, key)) = self.opts.audit_key.clone() else {
            return Ok(());
        };
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let due: Vec<(i32, i64, String)> = txn
            .partitions()
            .filter_map(|p| {
                let t = self.tasks.get(&p)?;
                let old = t
                    .last_checkpoint
                    .is_none_or(|at| at.elapsed() >= self.opts.checkpoint_interval);
                let due = t.links_since_checkpoint >= self.opts.checkpoint_every
                    || (t.links_since_checkpoint > 0 && old);
                due.then(|| (p, t.chain.next_seq - 1, t.chain.hash.clone()))
            })
            .collect();
        for (p, seq, hash) in due {
            self.checkpoint(p, seq, &hash, &key_id, &key)?;
        }
        Ok(())
    }

    /// Appends a signed checkpoint (with its transparency-log note) of the chain head `seq`,
    /// `hash` to partition `p`'s chain.
    fn checkpoint(
        &mut self,
        p: i32,
        seq: i64,
        hash: &str,
        key_id: &str,
        key: &crate::core::signature::SignKey,
    ) -> Result<(), GateError> {
        let cp = crate::audit::checkpoint::Checkpoint::sign(key_id, key, p, seq, hash);
        // The tree holds exactly the links 0..=seq now: the note commits to them.
        let cp = match self.tasks.get(&p) {
            Some(t) => match cp.clone().with_note(&self.opts.deployment, key, &t.tree) {
                Ok(with_note) => with_note,
                Err(e) => {
                    warn!(partition = p, error = %e, "audit key cannot sign transparency-log notes; checkpoint without one");
                    cp
                }
            },
            None => cp,
        };
        self.governance(p, &GovernanceEvent::Checkpoint(cp))?;
        if let Some(t) = self.tasks.get_mut(&p) {
            t.links_since_checkpoint = 0;
            t.last_checkpoint = Some(Instant::now());
        }
        Ok(())
    }

    /// With no transaction open: a chain whose last links are older than the checkpoint
    /// interval and not yet checkpointed gets its checkpoint in a transaction of its own, so
    /// that the last decisions of a partition that went quiet are signed (and provable from the
    /// transparency log) within one interval, not at its next intent.
    fn idle_checkpoints(&mut self) -> Result<(), GateError> {
        if self.txn.is_some() {
            return Ok(());
        }
        let Some((key_id, key)) = self.opts.audit_key.clone() else {
            return Ok(());
        };
        let due: Vec<(i32, i64, String)> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                t.links_since_checkpoint > 0
                    && t.last_checkpoint
                        .is_some_and(|at| at.elapsed() >= self.opts.checkpoint_interval)
            })
            .map(|(p, t)| (*p, t.chain.next_seq - 1, t.chain.hash.clone()))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for (p, seq, hash) in due {
            self.checkpoint(p, seq, &hash, &key_id, &key)?;
        }
        self.commit()
    }

    /// Writes the same governance event into every chain this instance holds.
    fn announce(&mut self, event: &GovernanceEvent) -> Result<(), GateError> {
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for p in partitions {
            self.governance(p, event)?;
        }
        Ok(())
    }

    fn on_policy_change(&mut self, change: Reload) -> Result<(), GateError> {
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

    /// Records that `offset` of `partition` is decided in the open transaction.
    fn note(&mut self, partition: i32, offset: i64) -> Result<(), GateError> {
        self.ensure_txn()?;
        if let Some(t) = self.txn.as_mut() {
            t.decided(partition, offset);
        }
        Ok(())
    }

    fn send(&self, r: &OutRecord) -> Result<(), GateError> {
        let mut record = super::kafka_records::base_record(r);
        let audit_partition = r.partition.filter(|_| r.topic == self.opts.topics.audit);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    if let Some(p) = audit_partition {
                        self.producer.context().sent(p);
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Commits the open transaction with its offsets. Abortable failures abort and rewind;
    /// fatal ones end the session.
    fn commit(&mut self) -> Result<(), GateError> {
        self.checkpoints()?;
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let started = Instant::now();
        let touched: Vec<i32> = txn.partitions().collect();
        for p in &touched {
            let records = match self.tasks.get_mut(p) {
                Some(t) => t.changelog_records(&self.opts.topics.changelog, *p)?,
                None => continue,
            };
            for r in &records {
                self.send(r)?;
            }
        }
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let mut offsets = TopicPartitionList::new();
        // A chain written without a decision (governance only) still commits its partition's
        // unchanged offset, so that a zombie instance is fenced by the group generation.
        let fencing = |p: i32| {
            fencing_offset(
                self.tasks.get(&p).map(|t| t.last_decided_offset),
                self.resume.get(&p).copied(),
            )
        };
        for (p, at) in txn.commit_offsets(fencing) {
            offsets.add_partition_offset(&self.opts.topics.intents, p, Offset::Offset(at))?;
        }
        let intents = txn.intents();
        let Some(cgm) = self.consumer.group_metadata() else {
            return Err(GateError::Group("consumer has no group metadata".into()));
        };
        let Some(result) = clients::commit_within(&self.producer, offsets, cgm, COMMIT_DEADLINE)
        else {
            error!(
                deadline_ms = COMMIT_DEADLINE.as_millis() as u64,
                "transaction commit did not return in time: abandoning this session; the next one re-initialises the transactional id, which aborts the transaction"
            );
            self.txn = None;
            self.tasks.clear();
            return Err(GateError::CommitStuck(COMMIT_DEADLINE));
        };
        match result {
            Ok(()) => {
                self.txn = None;
                let audit_offsets = self.producer.context().settled(DELIVERY_REPORTS_WAIT);
                for p in touched {
                    let Some(t) = self.tasks.get_mut(&p) else {
                        continue;
                    };
                    t.mark_committed();
                    let Some(offset) = audit_offsets.get(&p) else {
                        continue;
                    };
                    if let Err(e) = t.persist_committed(*offset) {
                        // The log has it; the store is behind: the next restore replays more.
                        warn!(partition = p, error = %e, "local state store write failed; the task restores again from its checkpoint");
                        self.tasks.remove(&p);
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
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                warn!(error = %e, "transaction must abort");
                self.abort_and_rewind()
            }
            Err(e) => {
                error!(error = %e, "transaction commit failed fatally");
                self.txn = None;
                self.tasks.clear();
                Err(e.into())
            }
        }
    }

    /// Aborts the open transaction, rolls the tasks it touched back to their last commit (or
    /// forgets them, to be restored) and rewinds their partitions.
    fn abort_and_rewind(&mut self) -> Result<(), GateError> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            self.tasks.clear();
            return Err(e.into());
        }
        self.producer.context().reset();
        self.opts.telemetry.aborted();
        let assigned: Vec<i32> = self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        for rewind in txn.rewinds(&assigned) {
            let kept = self
                .tasks
                .remove(&rewind.partition)
                .filter(|_| assigned.contains(&rewind.partition));
            match kept.map(Task::rolled_back).transpose() {
                Ok(Some(Some(task))) => {
                    debug!(
                        partition = rewind.partition,
                        "task rolled back to its last commit"
                    );
                    self.tasks.insert(rewind.partition, task);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(partition = rewind.partition, error = %e, "rolling a task back failed; it restores again")
                }
            }
            if let Some(offset) = rewind.seek_to {
                self.seek_to(rewind.partition, offset)?;
            }
        }
        Ok(())
    }

    fn seek_to(&mut self, partition: i32, offset: i64) -> Result<(), GateError> {
        self.positions.moved(partition);
        self.consumer.seek(
            &self.opts.topics.intents,
            partition,
            Offset::Offset(offset),
            OP_TIMEOUT,
        )?;
        Ok(())
    }
}

fn partition_count_of(consumer: &BaseConsumer<GateContext>, topic: &str) -> Result<i32, GateError> {
    let md = consumer.fetch_metadata(Some(topic), OP_TIMEOUT)?;
    let n = md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32);
    if n == 0 {
        return Err(GateError::Layout(format!("topic {topic} does not exist")));
    }
    Ok(n)
}
