//! `bucket audit verify`: reads `bucket.audit` (read_committed) to its end, verifies every
//! chain and checkpoint, and checks completeness against `bucket.intents`: every intent below
//! the gate group's committed offset has exactly one decision.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

use sha2::{Digest, Sha256};

use super::verifier::{PartitionHead, Report, Verifier};
use crate::core::signature::VerifyKey;
use crate::kafka::errors::through_elections;
use crate::kafka::group::GroupOffsets;
use crate::kafka::read::{Elections, ReadError, Seen, Then, TopicRead};

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Audit topic.
    pub audit_topic: String,
    /// Intents topic (completeness); None skips completeness.
    pub intents_topic: Option<String>,
    /// Control topic whose records must all be folded into the chain; None skips the check.
    pub control_topic: Option<String>,
    /// Gate consumer group whose committed offsets bound completeness.
    pub gate_group: String,
    /// Trusted gate audit keys (id → public key).
    pub keys: BTreeMap<String, VerifyKey>,
    /// Trusted heads to resume from (per audit partition).
    pub resume: BTreeMap<i32, PartitionHead>,
    /// The operator's pin of policy approvals (start policies are re-checked against it).
    pub approvers: Option<crate::core::approvals::ApproverSet>,
    /// Writer schemas of the audit links (from the registry).
    pub reader: crate::wire::audit::AuditReader,
    /// Show a progress bar.
    pub progress: bool,
}

/// Kafka trouble while verifying (not a verdict on the log).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

fn reader(brokers: &str) -> Result<BaseConsumer<crate::kafka::EofQuietContext>, KafkaError> {
    crate::kafka::read::committed_reader_config(brokers, "bucket-audit-verify")
        .create_with_context(crate::kafka::EofQuietContext)
}

/// Reads `topic` from the given start offsets to the end, calling `f` for each record; a
/// partition with a `stop_before` offset ends there instead (and is not read when it starts
/// there).
fn read_to_end(
    brokers: &str,
    topic: &str,
    starts: &BTreeMap<i32, i64>,
    stop_before: Option<&BTreeMap<i32, i64>>,
    mut f: impl FnMut(i32, i64, Option<&[u8]>),
) -> Result<(), KafkaError> {
    let consumer = reader(brokers)?;
    let limit = |p: &i32| stop_before.and_then(|s| s.get(p)).copied();
    let starts: Vec<(i32, Offset)> = starts
        .iter()
        .filter(|(p, start)| limit(p).is_none_or(|l| l > **start))
        .map(|(p, start)| (*p, Offset::Offset(*start)))
        .collect();
    let read = TopicRead {
        topic,
        timeout: None,
        elections: Elections::RideWhileProgressing,
        follow: false,
    };
    let each = |seen: Seen<'_>| {
        let Seen::Record(m) = seen else {
            return Ok::<_, Infallible>(Then::Continue);
        };
        let (p, o) = (m.partition(), m.offset());
        if limit(&p).is_some_and(|l| o >= l) {
            return Ok(Then::PartitionDone);
        }
        f(p, o, m.payload());
        Ok(Then::Continue)
    };
    match read.run(&consumer, &starts, each) {
        Ok(_) => Ok(()),
        Err(ReadError::Kafka(e)) => Err(e),
        // Without a timeout the read waits for every end; Kafka's own word for giving up.
        Err(ReadError::Timeout(_)) => Err(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut)),
        Err(ReadError::Handler(never)) => match never {},
    }
}

fn partitions(brokers: &str, topic: &str) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    through_elections(|| {
        let consumer = reader(brokers)?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut out = Vec::new();
        for t in md.topics() {
            for p in t.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                out.push((p.id(), low, high));
            }
        }
        Ok(out)
    })
}

/// Where the time of a verification went, so a short run is not read as a slow verifier.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// Metadata and watermarks of the audit topic (client start-up included).
    pub connect: Duration,
    /// Reading the audit topic and verifying every link (the verifier's own speed).
    pub audit: Duration,
    /// Reading `bucket.intents` for completeness.
    pub intents: Duration,
    /// Reading `bucket.control` for folding.
    pub control: Duration,
}

/// Fewest records, and shortest audit read, for which a records/s figure means something:
/// below either, client start-up and the broker's fetch wait dominate.
const MIN_RECORDS_FOR_RATE: u64 = 10_000;
const MIN_SECONDS_FOR_RATE: f64 = 1.0;

impl Phases {
    /// Total wall time.
    pub fn total(&self) -> Duration {
        self.connect + self.audit + self.intents + self.control
    }

    /// The closing line of `bucket audit verify`: verdict, records, time and where it went,
    /// and the audit read rate only when it means something.
    pub fn summary(&self, ok: bool, records: u64) -> String {
        let secs = |d: Duration| d.as_secs_f64();
        let mut line = format!(
            "{}: {records} records in {:.2}s (connect {:.2}s, audit read and verify {:.2}s, \
             completeness {:.2}s, control {:.2}s)",
            if ok { "OK" } else { "FAILED" },
            secs(self.total()),
            secs(self.connect),
            secs(self.audit),
            secs(self.intents),
            secs(self.control),
        );
        if records >= MIN_RECORDS_FOR_RATE && secs(self.audit) >= MIN_SECONDS_FOR_RATE {
            line.push_str(&format!(
                "; {:.0} records/s verified",
                records as f64 / secs(self.audit)
            ));
        }
        line
    }
}

/// Verifies the audit log; the report lists every problem with its partition and offset.
pub fn verify(o: &VerifyOptions) -> Result<Report, VerifyError> {
    verify_timed(o).map(|(report, _)| report)
}

/// [`verify`], also saying where the time went.
pub fn verify_timed(o: &VerifyOptions) -> Result<(Report, Phases), VerifyError> {
    let mut phases = Phases::default();
    let mut clock = std::time::Instant::now();
    let mut lap = |slot: &mut Duration| {
        *slot = clock.elapsed();
        clock = std::time::Instant::now();
    };
    let audit_parts = partitions(&o.brokers, &o.audit_topic)?;
    lap(&mut phases.connect);
    let total: i64 = audit_parts.iter().map(|(_, l, h)| h - l).sum();
    let bar = if o.progress {
        let b = ProgressBar::new(total.max(0) as u64);
        b.set_style(
            ProgressStyle::with_template(
                "verifying audit {bar:40} {pos}/{len} records ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut verifier = Verifier::new(o.keys.clone(), o.reader.clone(), o.resume.clone())
        .with_approvers(o.approvers.clone());
    let starts: BTreeMap<i32, i64> = audit_parts
        .iter()
        .map(|(p, low, _)| {
            let resume = o.resume.get(p).map(|h| h.next_offset);
            (*p, resume.unwrap_or(*low).max(*low))
        })
        .collect();
    read_to_end(&o.brokers, &o.audit_topic, &starts, None, |p, off, v| {
        verifier.feed(p, off, v);
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    lap(&mut phases.audit);
    if let Some(intents) = &o.intents_topic {
        let committed = committed_offsets(&o.brokers, &o.gate_group, intents)?;
        let intent_parts = partitions(&o.brokers, intents)?;
        let starts: BTreeMap<i32, i64> = intent_parts
            .iter()
            .map(|(p, low, _)| {
                let floor = o.resume.get(p).map_or(-1, |h| h.max_source_offset);
                (*p, (floor + 1).max(*low))
            })
            .collect();
        let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        read_to_end(
            &o.brokers,
            intents,
            &starts,
            Some(&committed),
            |p, off, _| {
                offsets.entry(p).or_default().push(off);
            },
        )?;
        for (p, list) in offsets {
            verifier.expect_decided(p, list);
        }
    }
    lap(&mut phases.intents);
    if let Some(control) = &o.control_topic {
        let parts = partitions(&o.brokers, control).unwrap_or_default();
        let starts: BTreeMap<i32, i64> = parts.iter().map(|(p, low, _)| (*p, *low)).collect();
        let mut records = Vec::new();
        read_to_end(&o.brokers, control, &starts, None, |_, off, v| {
            records.push((off, hex::encode(Sha256::digest(v.unwrap_or_default()))));
        })?;
        verifier.expect_control(records);
    }
    lap(&mut phases.control);
    Ok((verifier.finish(), phases))
}

/// The gate group's committed offset of every partition of `topic` (0 where it has none).
fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let ids: Vec<i32> = partitions(brokers, topic)?
        .iter()
        .map(|(p, _, _)| *p)
        .collect();
    let group = GroupOffsets::new(brokers, group, topic, &ids)?;
    let committed = through_elections(|| group.read(Duration::from_secs(30)))?;
    Ok(ids
        .iter()
        .map(|p| (*p, committed.get(p).copied().unwrap_or(0)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(audit_ms: u64) -> Phases {
        Phases {
            connect: Duration::from_millis(300),
            audit: Duration::from_millis(audit_ms),
            intents: Duration::from_millis(1_900),
            control: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_rate_is_shown_only_when_it_means_something() {
        // 32 records in 2.4 s, mostly start-up and completeness: no rate, the split instead.
        let small = phases(100).summary(true, 32);
        assert_eq!(
            small,
            "OK: 32 records in 2.40s (connect 0.30s, audit read and verify 0.10s, \
             completeness 1.90s, control 0.10s)"
        );
        // Many records but read in under a second: still no rate.
        assert!(!phases(500).summary(true, 50_000).contains("records/s"));
        // A real run: the rate is that of the audit read alone.
        let big = phases(4_000).summary(false, 1_000_000);
        assert!(big.starts_with("FAILED: 1000000 records in 6.30s"), "{big}");
        assert!(big.ends_with("; 250000 records/s verified"), "{big}");
    }
}
