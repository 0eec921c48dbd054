//! Audit indexer: copies `bucket.audit` (read_committed) into the `audit_decisions` table so the
//! read API can serve an artifact's decisions without Kafka. Same ordering as the artifact sink:
//! collect a batch, write it in one transaction (idempotent on `(topic, partition, offset)`),
//! then commit the offsets. An event that does not decode is quarantined in `sink_undecodable`.

use std::time::Duration;

use rdkafka::message::{BorrowedMessage, Message};
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

use super::consume::{BatchWriter, LogLines};
use super::store::pg::connect_until_up;
use super::store::{Store, StoreError};
use super::{SinkError, SinkOptions};
use crate::kafka::registry::Registry;
use crate::wire::WireError;
use crate::wire::audit::{AuditEvent, AuditReader};

const INSERT_AUDIT: &str = "INSERT INTO audit_decisions (topic, \"partition\", \"offset\", seq, \
     hash, prev_hash, recorded_at_ms, gate_id, policy_version, kind, outcome, reasons, threats, \
     detail, intent_id, product_id, integration_id, owner_id, requester_id, artifact_id, \
     artifact_class, operation, version, deleted, content_size, size_delta, content_sha256, \
     source_partition, source_offset, event_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, \
     $28, $29, $30) ON CONFLICT DO NOTHING";

const INSERT_UNDECODABLE: &str = "INSERT INTO sink_undecodable (topic, \"partition\", \"offset\", \
     raw, error) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// One record of the audit topic, decoded or not, with its coordinates.
#[derive(Debug, Clone)]
pub(crate) struct AuditRecord {
    topic: String,
    partition: i32,
    offset: i64,
    event: Decoded,
    /// The frame named a schema id the reader did not know (ask the registry, then decode).
    unknown_schema: bool,
}

/// PostgreSQL text cannot hold NUL; audit details may echo input bytes.
fn clean(s: &str) -> String {
    s.replace('\0', "\\0")
}

fn clean_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(clean)
}

/// Owned, NUL-free column values of one audit row.
struct AuditRow {
    topic: String,
    partition: i32,
    offset: i64,
    seq: i64,
    hash: String,
    prev_hash: String,
    recorded_at_ms: i64,
    gate_id: String,
    policy_version: String,
    kind: &'static str,
    outcome: Option<&'static str>,
    reasons: Vec<String>,
    threats: Vec<String>,
    detail: String,
    strings: [Option<String>; 8],
    version: Option<i64>,
    deleted: bool,
    content_size: i64,
    size_delta: i64,
    content_sha256: Option<String>,
    source_partition: Option<i32>,
    source_offset: Option<i64>,
    event_type: Option<String>,
}

impl AuditRow {
    fn of(topic: &str, partition: i32, offset: i64, e: &AuditEvent) -> AuditRow {
        let d = e.decision.as_ref();
        let g = e.governance.as_ref();
        let opt = |f: fn(&crate::wire::audit::DecisionRecord) -> &Option<String>| {
            d.and_then(|d| clean_opt(f(d)))
        };
        AuditRow {
            topic: clean(topic),
            partition,
            offset,
            seq: e.seq,
            hash: clean(&e.hash),
            prev_hash: clean(&e.prev_hash),
            recorded_at_ms: e.recorded_at,
            gate_id: clean(&e.gate_id),
            policy_version: clean(&e.policy_version),
            kind: if d.is_some() {
                "DECISION"
            } else {
                "GOVERNANCE"
            },
            outcome: d.map(|d| if d.accepted { "ACCEPTED" } else { "REJECTED" }),
            reasons: d
                .map(|d| d.reasons.iter().map(|s| clean(s)).collect())
                .unwrap_or_default(),
            threats: d
                .map(|d| d.threats.iter().map(|s| clean(s)).collect())
                .unwrap_or_default(),
            detail: clean(
                d.map(|d| d.detail.as_str())
                    .or(g.map(|g| g.detail.as_str()))
                    .unwrap_or(""),
            ),
            strings: [
                opt(|d| &d.intent_id),
                opt(|d| &d.product_id),
                opt(|d| &d.integration_id),
                opt(|d| &d.owner_id),
                opt(|d| &d.requester_id),
                opt(|d| &d.artifact_id),
                opt(|d| &d.artifact_class),
                opt(|d| &d.operation),
            ],
            version: d.and_then(|d| d.version),
            deleted: d.is_some_and(|d| d.deleted),
            content_size: d.map_or(0, |d| d.content_size),
            size_delta: d.map_or(0, |d| d.size_delta),
            content_sha256: d.and_then(|d| clean_opt(&d.content_sha256)),
            source_partition: d.map(|d| d.source_partition),
            source_offset: d.map(|d| d.source_offset),
            event_type: g.map(|g| clean(&g.event_type)),
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let [a, b, c, d, e, f, g, h] = &self.strings;
        vec![
            &self.topic,
            &self.partition,
            &self.offset,
            &self.seq,
            &self.hash,
            &self.prev_hash,
            &self.recorded_at_ms,
            &self.gate_id,
            &self.policy_version,
            &self.kind,
            &self.outcome,
            &self.reasons,
            &self.threats,
            &self.detail,
            a,
            b,
            c,
            d,
            e,
            f,
            g,
            h,
            &self.version,
            &self.deleted,
            &self.content_size,
            &self.size_delta,
            &self.content_sha256,
            &self.source_partition,
            &self.source_offset,
            &self.event_type,
        ]
    }
}

impl Store {
    /// Writes decoded audit events to `audit_decisions` and undecodable ones to
    /// `sink_undecodable`, in one transaction; replays are no-ops. Returns rows newly inserted.
    async fn write_audit(&mut self, records: &[AuditRecord]) -> Result<u64, StoreError> {
        let tx = self.client.transaction().await?;
        let insert = tx.prepare(INSERT_AUDIT).await?;
        let quarantine = tx.prepare(INSERT_UNDECODABLE).await?;
        let rows: Vec<AuditRow> = records
            .iter()
            .filter_map(|r| match &r.event {
                Ok(e) => Some(AuditRow::of(&r.topic, r.partition, r.offset, e)),
                Err(_) => None,
            })
            .collect();
        let params: Vec<_> = rows.iter().map(AuditRow::params).collect();
        let inserted =
            futures::future::try_join_all(params.iter().map(|p| tx.execute(&insert, p))).await?;
        for r in records {
            if let Err((raw, error)) = &r.event {
                let topic = clean(&r.topic);
                let error = clean(error);
                tx.execute(&quarantine, &[&topic, &r.partition, &r.offset, raw, &error])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(inserted.iter().sum())
    }

    /// Fails unless `audit_decisions` exists (migration 0002 applied).
    async fn check_audit_schema(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute("SELECT 1 FROM audit_decisions LIMIT 0")
            .await?;
        Ok(())
    }
}

/// Runs the audit indexer on `opts.topic` (the audit topic) until `shutdown` is cancelled;
/// each link is decoded with its writer's schema, resolved through the registry at
/// `registry_url`.
pub async fn run(
    opts: SinkOptions,
    registry_url: &str,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    opts.validate()?;
    let Some(store) = connect_until_up(&opts.postgres_url, &shutdown).await? else {
        return Ok(());
    };
    store.check_audit_schema().await.map_err(|e| {
        SinkError::Config(format!(
            "audit_decisions missing ({e}); run the migrations as the owner role first"
        ))
    })?;
    let url = opts.postgres_url.clone();
    let registry = Registry::new(registry_url).map_err(|e| SinkError::Config(e.to_string()))?;
    let writer = AuditWriter {
        store,
        url,
        reader: AuditReader::default(),
        registry,
    };
    super::consume::drive(writer, &opts, &shutdown).await
}

/// The audit indexer's side of the loop: audit events into `audit_decisions`.
struct AuditWriter {
    store: Store,
    url: String,
    /// Writer schemas known so far; relearned from the registry when a link names another.
    reader: AuditReader,
    registry: Registry,
}

impl AuditWriter {
    /// Asks the registry again and decodes the records whose schema id was unknown; a record
    /// still unknown after that is quarantined like any undecodable one.
    async fn resolve(&mut self, batch: &[AuditRecord]) -> Result<Vec<AuditRecord>, StoreError> {
        self.reader = self.registry.audit_reader().await?;
        Ok(batch
            .iter()
            .map(|r| match (&r.event, r.unknown_schema) {
                (Err((bytes, _)), true) => {
                    let (event, unknown_schema) = decode_with(&self.reader, bytes.as_deref());
                    AuditRecord {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        offset: r.offset,
                        event,
                        unknown_schema,
                    }
                }
                _ => r.clone(),
            })
            .collect())
    }
}

/// A decoded audit event, or the raw value and why it did not decode (kept for quarantine).
type Decoded = Result<AuditEvent, (Option<Vec<u8>>, String)>;

/// Decodes one audit value with its writer's schema; the flag says the schema id was unknown.
fn decode_with(reader: &AuditReader, value: Option<&[u8]>) -> (Decoded, bool) {
    match reader.decode_framed(value) {
        Ok(e) => (Ok(e), false),
        Err(e) => (
            Err((value.map(<[u8]>::to_vec), e.to_string())),
            matches!(e, WireError::UnknownWriterSchema(_)),
        ),
    }
}

impl BatchWriter for AuditWriter {
    type Batch = Vec<AuditRecord>;
    type Report = u64;
    const LOG: LogLines = LogLines {
        consuming: "audit indexer consuming",
        write_failed: "audit batch write failed; retrying",
        commit_failed: "audit offset commit failed; will retry",
        stopping: "audit indexer shutting down after its last batch",
    };
    /// Audit events are small: only `batch_max` bounds a batch.
    const MAX_BATCH_BYTES: usize = usize::MAX;

    fn decode(&self, batch: &mut Vec<AuditRecord>, m: &BorrowedMessage<'_>) {
        let (event, unknown_schema) = decode_with(&self.reader, m.payload());
        if let Err((_, e)) = &event
            && !unknown_schema
        {
            tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e,
                "undecodable audit record; quarantining");
        }
        batch.push(AuditRecord {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            event,
            unknown_schema,
        });
    }

    fn len(batch: &Vec<AuditRecord>) -> usize {
        batch.len()
    }

    /// Reconnects first when the connection is gone (a failed reconnect is logged and the
    /// write then fails, to be retried), before every attempt.
    async fn write(&mut self, batch: &Vec<AuditRecord>) -> Result<u64, StoreError> {
        if self.store.is_closed() {
            match Store::connect(&self.url).await {
                Ok(fresh) => self.store = fresh,
                Err(error) => tracing::warn!(%error, "audit indexer reconnect failed"),
            }
        }
        if batch.iter().any(|r| r.unknown_schema) {
            let resolved = self.resolve(batch).await?;
            return self.store.write_audit(&resolved).await;
        }
        self.store.write_audit(batch).await
    }

    async fn recover(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn written(&self, batch: &Vec<AuditRecord>, inserted: &u64, _: Duration, _: &SinkOptions) {
        tracing::debug!(records = batch.len(), inserted, "audit batch durable");
    }
}
