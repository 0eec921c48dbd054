//! The transactional loop. One session = one consumer + one transactional producer; a fatal
//! producer error or a failed rewind ends the session and a fresh one starts from the committed
//! offsets, with every partition task restored from the audit log.
//!
//! Order per batch (KIP-447): begin → produce outputs → send offsets (next to read, with the
//! consumer group metadata) → commit. On an abortable error: abort, forget the tasks the batch
//! touched, seek their partitions back to the batch's first offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn};

use super::clients::{self, TXN_TIMEOUT};
use super::decode::decode_intent;
use super::records::{Consumed, OutRecord, Writer};
use super::task::{Task, restore};
use super::{GateError, GateOptions};
use crate::core::{Envelope, Outcome, decide};
use crate::registry::{OutputSchemaIds, Registry, RegistryError};

const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the gate until `shutdown` is cancelled. Blocking: call from a dedicated thread.
pub fn run(opts: GateOptions, shutdown: CancellationToken, rt: Handle) -> Result<(), GateError> {
    let registry = Registry::new(&opts.registry_url)?;
    let ids = match retry_registry(&shutdown, || rt.block_on(registry.output_ids()))? {
        Some(ids) => ids,
        None => return Ok(()),
    };
    info!(
        accepted_schema = ids.accepted,
        audit_schema = ids.audit,
        "output schemas registered"
    );
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = Session::start(&opts, &registry, ids, &rt).and_then(|mut s| s.run(&shutdown));
        match result {
            Ok(()) => return Ok(()),
            Err(e @ (GateError::Layout(_) | GateError::Encode(_))) => return Err(e),
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

/// Records partitions revoked during `poll`, so the loop can abort before giving them up.
#[derive(Default)]
struct GateContext {
    revoked: Mutex<Vec<i32>>,
}

impl ClientContext for GateContext {}

impl ConsumerContext for GateContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?parts, "partitions revoked");
                if let Ok(mut r) = self.revoked.lock() {
                    r.extend(parts);
                }
            }
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?parts, "partitions assigned");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

/// The open transaction's bookkeeping.
struct Txn {
    started: Instant,
    intents: usize,
    /// First offset consumed per partition in this transaction (where to rewind on abort).
    first: BTreeMap<i32, i64>,
    /// Next offset to read per partition (what to commit).
    next: BTreeMap<i32, i64>,
}

struct Session<'a> {
    opts: &'a GateOptions,
    registry: &'a Registry,
    rt: &'a Handle,
    ids: OutputSchemaIds,
    consumer: BaseConsumer<GateContext>,
    producer: ThreadedProducer<DefaultProducerContext>,
    partition_count: i32,
    tasks: HashMap<i32, Task>,
    txn: Option<Txn>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<'a> Session<'a> {
    fn start(
        opts: &'a GateOptions,
        registry: &'a Registry,
        ids: OutputSchemaIds,
        rt: &'a Handle,
    ) -> Result<Session<'a>, GateError> {
        let producer: ThreadedProducer<DefaultProducerContext> = clients::producer_config(
            &opts.brokers,
            &format!("{}-{}", opts.group_id, opts.gate_id),
        )
        .create()?;
        producer.init_transactions(OP_TIMEOUT)?;
        let consumer: BaseConsumer<GateContext> = clients::consumer_config(
            &opts.brokers,
            &opts.group_id,
            &format!("bucket-gate-{}", opts.gate_id),
        )
        .create_with_context(GateContext::default())?;
        let partition_count = partition_count(&consumer, &opts.topics.intents)?;
        let audit_count = partition_count_of(&consumer, &opts.topics.audit)?;
        if audit_count != partition_count {
            return Err(GateError::Layout(format!(
                "{} has {audit_count} partitions, {} has {partition_count}: they must be equal",
                opts.topics.audit, opts.topics.intents
            )));
        }
        consumer.subscribe(&[&opts.topics.intents])?;
        info!(
            group = %opts.group_id,
            gate = %opts.gate_id,
            partitions = partition_count,
            policy_version = %opts.policy.version,
            "gate session started"
        );
        Ok(Session {
            opts,
            registry,
            rt,
            ids,
            consumer,
            producer,
            partition_count,
            tasks: HashMap::new(),
            txn: None,
        })
    }

    fn run(&mut self, shutdown: &CancellationToken) -> Result<(), GateError> {
        loop {
            if shutdown.is_cancelled() {
                self.commit()?;
                info!("gate shutting down: transaction committed, leaving the group");
                self.consumer.unsubscribe();
                return Ok(());
            }
            let polled = self
                .consumer
                .poll(Duration::from_millis(50))
                .map(|r| r.map(|m| to_consumed(&m)));
            self.on_revocations()?;
            match polled {
                None => {}
                Some(Err(e)) => warn!(error = %e, "consumer error"),
                Some(Ok(consumed)) => self.handle(consumed, shutdown)?,
            }
            if let Some(t) = &self.txn
                && (t.intents >= self.opts.max_batch
                    || t.started.elapsed() >= self.opts.commit_interval)
            {
                self.commit()?;
            }
        }
    }

    /// Aborts the open transaction if any of its partitions was revoked, and forgets the tasks
    /// of revoked partitions (their next owner restores them from the audit log).
    fn on_revocations(&mut self) -> Result<(), GateError> {
        let revoked: Vec<i32> = match self.consumer.context().revoked.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(_) => Vec::new(),
        };
        if revoked.is_empty() {
            return Ok(());
        }
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.first.keys().any(|p| revoked.contains(p)))
        {
            warn!(partitions = ?revoked, "revoked during an open transaction: aborting it");
            self.abort_and_rewind()?;
        }
        for p in revoked {
            self.tasks.remove(&p);
        }
        Ok(())
    }

    /// Decides one consumed intent and adds its outputs to the transaction. On shutdown while
    /// the registry is down, the record is left undecided and its partition rewound to it.
    fn handle(&mut self, c: Consumed, shutdown: &CancellationToken) -> Result<(), GateError> {
        let span = info_span!("intent", partition = c.partition, offset = c.offset);
        let _enter = span.enter();
        if !self.tasks.contains_key(&c.partition) {
            let task = restore(
                &self.opts.brokers,
                &self.opts.topics.audit,
                c.partition,
                self.opts.restore_timeout,
            )?;
            self.tasks.insert(c.partition, task);
        }
        let already = self
            .tasks
            .get(&c.partition)
            .is_some_and(|t| c.offset <= t.last_decided_offset);
        if already {
            warn!("intent already has a committed decision; skipping");
            return self.note(c.partition, c.offset);
        }
        let registry = self.registry;
        let rt = self.rt;
        let decoded = loop {
            match rt.block_on(decode_intent(registry, c.value.as_deref())) {
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
        let Some(task) = self.tasks.get_mut(&c.partition) else {
            return Ok(());
        };
        let envelope = Envelope {
            key: c.key.as_deref(),
            partition: c.partition,
            partition_count: self.partition_count,
            payload: decoded.as_ref(),
        };
        let decision = decide(&envelope, &task.state, &self.opts.policy, now_ms());
        let writer = Writer {
            topics: &self.opts.topics,
            ids: self.ids,
            gate_id: &self.opts.gate_id,
        };
        let outputs = writer.outputs(&c, decoded.as_ref().ok(), &decision, &task.chain)?;
        if decision.outcome == Outcome::Accepted
            && let Some(effect) = &decision.effect
        {
            task.state.apply(effect);
        }
        task.chain.next_seq = outputs.audit.seq + 1;
        task.chain.hash = outputs.audit.hash.clone();
        task.last_decided_offset = c.offset;
        debug!(
            outcome = decision.outcome.as_str(),
            reasons = ?decision.reasons(),
            version = decision.version,
            "decided"
        );
        if self.txn.is_none() {
            self.producer.begin_transaction()?;
            self.txn = Some(Txn {
                started: Instant::now(),
                intents: 0,
                first: BTreeMap::new(),
                next: BTreeMap::new(),
            });
        }
        for r in &outputs.records {
            self.send(r)?;
        }
        self.note(c.partition, c.offset)
    }

    /// Records that `offset` of `partition` is decided in the open transaction.
    fn note(&mut self, partition: i32, offset: i64) -> Result<(), GateError> {
        if self.txn.is_none() {
            self.producer.begin_transaction()?;
            self.txn = Some(Txn {
                started: Instant::now(),
                intents: 0,
                first: BTreeMap::new(),
                next: BTreeMap::new(),
            });
        }
        if let Some(t) = self.txn.as_mut() {
            t.intents += 1;
            t.first.entry(partition).or_insert(offset);
            t.next.insert(partition, offset + 1);
        }
        Ok(())
    }

    fn send(&self, r: &OutRecord) -> Result<(), GateError> {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic).headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
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
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let started = Instant::now();
        let mut offsets = TopicPartitionList::new();
        for (p, next) in &txn.next {
            offsets.add_partition_offset(&self.opts.topics.intents, *p, Offset::Offset(*next))?;
        }
        let intents = txn.intents;
        let Some(cgm) = self.consumer.group_metadata() else {
            return Err(GateError::Group("consumer has no group metadata".into()));
        };
        let result = clients::drain(&self.producer, TXN_TIMEOUT)
            .and_then(|()| {
                self.producer
                    .send_offsets_to_transaction(&offsets, &cgm, OP_TIMEOUT)
            })
            .and_then(|()| self.producer.commit_transaction(TXN_TIMEOUT));
        match result {
            Ok(()) => {
                self.txn = None;
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

    /// Aborts the open transaction, forgets the tasks it touched and rewinds their partitions.
    fn abort_and_rewind(&mut self) -> Result<(), GateError> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            self.tasks.clear();
            return Err(e.into());
        }
        let assigned: Vec<i32> = self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        for (p, first) in txn.first {
            self.tasks.remove(&p);
            if assigned.contains(&p) {
                self.seek_to(p, first)?;
            }
        }
        Ok(())
    }

    fn seek_to(&self, partition: i32, offset: i64) -> Result<(), GateError> {
        self.consumer.seek(
            &self.opts.topics.intents,
            partition,
            Offset::Offset(offset),
            OP_TIMEOUT,
        )?;
        Ok(())
    }
}

fn to_consumed(m: &BorrowedMessage<'_>) -> Consumed {
    Consumed {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        timestamp: m.timestamp().to_millis(),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn partition_count(consumer: &BaseConsumer<GateContext>, topic: &str) -> Result<i32, GateError> {
    partition_count_of(consumer, topic)
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
