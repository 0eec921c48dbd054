//! The gate's session, shaped like Kafka Streams' stream thread. One session = one consumer +
//! one transactional producer; a fatal producer error or a failed rewind ends the session and a
//! fresh one starts from the committed offsets, with every partition task restored.
//!
//! - `stream`: the loop (poll, revocations, restores, dispatch of each record to `decide`);
//! - `restore`: a task's restore, takeover and changelog copy (the I/O around [`tasks`]);
//! - `chain`: links appended to a partition's audit chain (governance events, checkpoints);
//! - `commit`: the batch's commit and an abort's rollback and rewind;
//! - plain state, unit-tested: [`tasks`] (the task manager), [`positions`] (which polled
//!   records may still be decided), [`backoff`] (the wait before a new session), `gate::txn`
//!   (the open transaction's offsets);
//! - [`eos`]: the exactly-once path (begin, send, commit, abort), written once.
//!
//! Order per batch (KIP-447): begin → produce outputs → send offsets (next to read, with the
//! consumer group metadata) → commit. On an abortable error: abort, roll the touched tasks back
//! (or forget them), seek their partitions back to the batch's first offsets.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{Producer, ThreadedProducer};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::clients;
use super::policy_watch::PolicyWatch;
use super::rebalance::GateContext;
use super::records::OutputWriter;
use super::{GateError, GateOptions};
use crate::kafka::registry::{OutputSchemaIds, Registry, RegistryError};
use crate::wire::audit::AuditReader;
use eos::ExactlyOnce;
use positions::FetchPositions;
use tasks::TaskManager;

pub mod backoff;
mod chain;
mod commit;
pub mod eos;
pub mod positions;
mod restore;
mod stream;
pub mod tasks;

const OP_TIMEOUT: Duration = Duration::from_secs(30);

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
    let mut backoff = backoff::SessionBackoff::default();
    loop {
        let started = Instant::now();
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
                let wait = backoff.after_failure(started.elapsed());
                error!(error = %e, backoff_ms = wait.as_millis() as u64, "gate session failed; starting a new one");
                if sleep_or_shutdown(&shutdown, wait) {
                    return Err(e);
                }
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

/// One session's parts: the clients, the task manager and the exactly-once path.
struct Session<'a> {
    opts: &'a GateOptions,
    watch: &'a mut PolicyWatch,
    share: super::usage_share::UsageShare,
    registry: &'a Registry,
    rt: &'a Handle,
    /// Builds the output records and audit links (topics, schema ids, instance id).
    writer: OutputWriter<'a>,
    audit_reader: &'a AuditReader,
    /// Local state stores, named after this cluster and these topics.
    store: Option<super::persist::StoreOptions>,
    consumer: BaseConsumer<GateContext>,
    eos: ExactlyOnce,
    partition_count: i32,
    tasks: TaskManager,
    control: Option<crate::control::feed::ControlFeed>,
    last_control_poll: Instant,
    /// Moves of each partition's position (rewinds, pauses, revocations): a polled record of
    /// a partition that moved since its poll is not decided (it comes again).
    positions: FetchPositions,
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
        let standbys = super::standby::Standbys::start(
            opts,
            store.as_ref(),
            std::sync::Arc::clone(consumer.context()),
        );
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
            writer: OutputWriter {
                topics: &opts.topics,
                ids,
                gate_id: &opts.gate_id,
                audit_version: opts.audit_version,
            },
            audit_reader,
            store,
            consumer,
            eos: ExactlyOnce::new(producer, &opts.topics.intents, &opts.topics.audit),
            partition_count,
            tasks: TaskManager::default(),
            control: crate::control::feed::ControlFeed::new(&opts.brokers, &opts.topics.control)
                .inspect_err(|e| warn!(error = %e, "control feed unavailable"))
                .ok(),
            last_control_poll: Instant::now(),
            positions: FetchPositions::default(),
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
            .eos
            .producer()
            .client()
            .fatal_error()
            .filter(|(code, _)| crate::kafka::membership::is_fencing(*code))?;
        Some(GateError::InstanceTaken(format!(
            "instance id {:?} is in use by another process ({}: {})",
            self.opts.gate_id, fenced.0, fenced.1
        )))
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
