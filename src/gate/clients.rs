//! Kafka client settings of the gate's transactional loop, in one place so that the benchmark's
//! passthrough copier (`bench::passthrough`) runs with exactly the same ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, TopicPartitionList};

/// Longest a transaction may stay open on the broker (`transaction.timeout.ms`). It bounds how
/// long an open transaction of a wedged or vanished instance can hold back read_committed readers
/// (the last stable offset) before the coordinator aborts it. Kafka Streams uses 10 s under EOS;
/// the gate's transactions last about one commit interval (100 ms), and it commits before every
/// slow partition restore.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest the gate waits for one commit (drain, offsets, commit) before it abandons its session.
/// Shorter than [`TXN_TIMEOUT`]: the next session re-initialises the transactional id, which
/// aborts the stuck transaction at once instead of when the coordinator times it out.
pub const COMMIT_DEADLINE: Duration = Duration::from_secs(10);

/// Transactional producer settings (`transactional.id` = `<group>-<instance>`).
pub fn producer_config(brokers: &str, transactional_id: &str) -> ClientConfig {
    let mut c = crate::kafka::security::client_config();
    c.set("bootstrap.servers", brokers)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set(
            "transaction.timeout.ms",
            TXN_TIMEOUT.as_millis().to_string(),
        )
        .set("message.max.bytes", "20971520")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("retry.backoff.ms", "20")
        .set("compression.type", "lz4");
    apply_tuning(&mut c, PRODUCER_TUNING_ENV, &PRODUCER_TUNABLE);
    c
}

/// Environment variable with librdkafka producer properties (`key=value,key=value`) applied
/// over the gate's defaults: what the client settings table in docs/scale-readiness.md varies.
pub const PRODUCER_TUNING_ENV: &str = "BUCKET_KAFKA_PRODUCER_TUNING";

/// Environment variable with librdkafka consumer fetch properties, as [`PRODUCER_TUNING_ENV`].
pub const CONSUMER_TUNING_ENV: &str = "BUCKET_KAFKA_CONSUMER_TUNING";

/// The consumer properties an operator may tune: fetch sizes and waits only.
const CONSUMER_TUNABLE: [&str; 5] = [
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "queued.max.messages.kbytes",
];

/// Applies the tuning named by `env` (if set and valid) over `c`'s defaults.
fn apply_tuning(c: &mut ClientConfig, env: &str, tunable: &[&str]) {
    let Ok(spec) = std::env::var(env) else {
        return;
    };
    match parse_tuning(&spec, tunable) {
        Ok(settings) => {
            for (k, v) in settings {
                c.set(k, v);
            }
        }
        Err(e) => tracing::warn!(error = %e, "{env} ignored"),
    }
}

/// The producer properties an operator may tune; the transactional guarantees are not among
/// them.
const PRODUCER_TUNABLE: [&str; 6] = [
    "linger.ms",
    "batch.size",
    "batch.num.messages",
    "compression.type",
    "compression.level",
    "queue.buffering.max.kbytes",
];

/// Parses `key=value,key=value` into properties among `tunable`, refusing anything else.
pub fn parse_tuning<'a>(
    spec: &'a str,
    tunable: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            if !tunable.contains(&k) {
                return Err(format!(
                    "{k:?} is not tunable (only {})",
                    tunable.join(", ")
                ));
            }
            Ok((k, v))
        })
        .collect()
}

/// Group consumer settings: manual offsets inside transactions, read_committed input.
pub fn consumer_config(brokers: &str, group_id: &str, client_id: &str) -> ClientConfig {
    let mut c = crate::kafka::security::client_config();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // Incremental rebalancing (KIP-429): a member joining or leaving moves only the
        // partitions that change owner; the others keep their tasks and restored state
        // (ADR 0011). Not mixable with the eager assignors in one group.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "session.timeout.ms",
            crate::kafka::membership::DEFAULT_SESSION_TIMEOUT
                .as_millis()
                .to_string(),
        )
        .set("max.poll.interval.ms", "600000")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "20971520");
    apply_tuning(&mut c, CONSUMER_TUNING_ENV, &CONSUMER_TUNABLE);
    c
}

/// Waits until every record produced so far is acknowledged, so that `commit_transaction` finds
/// nothing left to flush. Call it right before `send_offsets_to_transaction`.
///
/// Why: rust-rdkafka's `flush` (which `commit_transaction` calls first) waits for delivery events
/// with `poll(min(remaining, 100 ms))`, but on a `ThreadedProducer` the background thread takes
/// those events, so every commit with records still in flight paid a flat 100 ms (measured:
/// commit 101 ms at p50, docs/scale-readiness.md). Here `flush(0)` only asks librdkafka to send
/// now (linger ignored) and reports whether anything is still outstanding.
pub fn drain<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> KafkaResult<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.flush(Duration::ZERO) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// Commits the open transaction with `offsets` (drain, send offsets, commit) on a helper thread
/// and waits at most `deadline` for it. `None` means the call did not return in time.
///
/// Why: librdkafka (2.12) can block in `send_offsets_to_transaction` past its own timeout when
/// the group coordinator's broker is gone (librdkafka #5456, #5511), so a timeout argument is not
/// enough. Found by the three-broker fault (docs/reliability.md): a gate stayed wedged with its
/// transaction open, and read_committed readers stalled until the coordinator timed it out. The
/// caller abandons the session; the helper thread and the old producer end when librdkafka does.
pub fn commit_within<C: ProducerContext + 'static>(
    producer: &Arc<ThreadedProducer<C>>,
    offsets: TopicPartitionList,
    group: ConsumerGroupMetadata,
    deadline: Duration,
) -> Option<KafkaResult<()>> {
    let producer = Arc::clone(producer);
    let (done, outcome) = std::sync::mpsc::sync_channel(1);
    let until = Instant::now() + deadline;
    let left = move || until.saturating_duration_since(Instant::now());
    let spawned = std::thread::Builder::new()
        .name("gate-commit".into())
        .spawn(move || {
            let result = drain(&producer, left())
                .and_then(|()| producer.send_offsets_to_transaction(&offsets, &group, left()))
                .and_then(|()| producer.commit_transaction(left()));
            let _ = done.send(result);
        });
    if spawned.is_err() {
        return None;
    }
    outcome.recv_timeout(deadline).ok()
}

/// The gate producer's context: notes the offset of every delivered record on the audit topic,
/// so that after a commit the gate knows where each chain's last committed link is (the
/// checkpoint of a partition's local state store). Sent and delivered links are counted per
/// partition: a commit returns when the broker acknowledged everything, but a delivery report
/// may still be on its way to this callback, so [`AuditDeliveries::settled`] waits for them.
#[derive(Debug, Default)]
pub struct AuditDeliveries {
    audit_topic: String,
    tally: std::sync::Mutex<DeliveryTally>,
}

/// Links sent and delivered per audit partition since the last settlement.
#[derive(Debug, Default)]
struct DeliveryTally {
    sent: std::collections::HashMap<i32, u64>,
    /// (reports received, highest offset).
    delivered: std::collections::HashMap<i32, (u64, i64)>,
}

impl DeliveryTally {
    fn complete(&self) -> bool {
        self.sent
            .iter()
            .all(|(p, n)| self.delivered.get(p).is_some_and(|(d, _)| d >= n))
    }
}

impl AuditDeliveries {
    /// Notes deliveries to `audit_topic`.
    pub fn new(audit_topic: &str) -> AuditDeliveries {
        AuditDeliveries {
            audit_topic: audit_topic.to_string(),
            tally: Default::default(),
        }
    }

    /// Counts a link handed to the producer for audit partition `partition`.
    pub fn sent(&self, partition: i32) {
        if let Ok(mut t) = self.tally.lock() {
            *t.sent.entry(partition).or_default() += 1;
        }
    }

    /// After a commit: waits (at most `within`) until every sent link's delivery report
    /// arrived, then takes the highest delivered offset of each audit partition and starts
    /// counting afresh. Partitions whose reports did not all arrive in time are left out.
    pub fn settled(&self, within: Duration) -> std::collections::HashMap<i32, i64> {
        let deadline = Instant::now() + within;
        loop {
            let Ok(mut t) = self.tally.lock() else {
                return Default::default();
            };
            if t.complete() || Instant::now() >= deadline {
                let t = std::mem::take(&mut *t);
                return t
                    .delivered
                    .into_iter()
                    .filter(|(p, (d, _))| t.sent.get(p).is_some_and(|n| d >= n))
                    .map(|(p, (_, offset))| (p, offset))
                    .collect();
            }
            drop(t);
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Forgets what was counted (after an abort: those links are gone).
    pub fn reset(&self) {
        if let Ok(mut t) = self.tally.lock() {
            *t = DeliveryTally::default();
        }
    }
}

impl rdkafka::ClientContext for AuditDeliveries {}

impl ProducerContext for AuditDeliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        if let Ok(m) = result
            && m.topic() == self.audit_topic
            && let Ok(mut t) = self.tally.lock()
        {
            let e = t.delivered.entry(m.partition()).or_insert((0, m.offset()));
            e.0 += 1;
            e.1 = e.1.max(m.offset());
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn producer_tuning_takes_only_the_tunable_properties() {
        assert_eq!(
            parse_tuning(" linger.ms=20, compression.type=zstd ,", &PRODUCER_TUNABLE).unwrap(),
            [("linger.ms", "20"), ("compression.type", "zstd")]
        );
        for refused in [
            "enable.idempotence=false",
            "transactional.id=x",
            "linger.ms",
        ] {
            assert!(
                parse_tuning(refused, &PRODUCER_TUNABLE).is_err(),
                "{refused}"
            );
        }
        assert!(parse_tuning("isolation.level=read_uncommitted", &CONSUMER_TUNABLE).is_err());
        assert!(parse_tuning("linger.ms=1", &CONSUMER_TUNABLE).is_err());
        assert_eq!(
            parse_tuning("fetch.wait.max.ms=5", &CONSUMER_TUNABLE).unwrap(),
            [("fetch.wait.max.ms", "5")]
        );
        assert_eq!(parse_tuning("", &PRODUCER_TUNABLE).unwrap(), []);
    }

    use super::*;

    #[test]
    fn settles_only_partitions_whose_reports_all_arrived() {
        let d = AuditDeliveries::new("a");
        d.sent(0);
        d.sent(0);
        d.sent(1);
        if let Ok(mut t) = d.tally.lock() {
            t.delivered.insert(0, (2, 41));
            t.delivered.insert(1, (0, 7));
        }
        let got = d.settled(Duration::from_millis(5));
        assert_eq!(got.get(&0), Some(&41));
        assert_eq!(got.get(&1), None, "a report still missing: no checkpoint");
        assert!(
            d.settled(Duration::ZERO).is_empty(),
            "counting starts afresh"
        );
    }
}
