//! PostgreSQL storage for accepted artifact versions: schema migrations, the idempotent batch
//! write the sink commits offsets behind, and the read helpers tools and tests use.
//!
//! The write is one database transaction per batch. Its fast path is one multi-row
//! `INSERT ... SELECT * FROM UNNEST(<one array per column>) ON CONFLICT (product_id, artifact_id,
//! version) DO NOTHING` per chunk of up to 1,000 versions or 64 MiB of content; if the
//! database refuses a row's data (which the gate's rules rule out by construction: migration
//! 0003), the batch is retried row by row under savepoints and each refused row is quarantined
//! in `sink_undecodable` with its Avro body and the database's reason, so one bad record never
//! stalls a partition and is never lost. A quarantined accepted version is an incident
//! (`BatchReport::versions_quarantined`, alert BucketSinkVersionQuarantined).
//!
//! Longer than the 500 lines other files keep to: the 23-column write exists twice on purpose
//! (one array per column for the multi-row fast path, one parameter list per row for the
//! savepoint path), and both belong beside the SQL they bind and the classification of a row
//! that was not inserted (replay or conflict); split them apart and the column order, which
//! must match the statements exactly, would be checked across files.

mod storage;
pub mod tls;

pub(crate) use storage::connect_until_up;
pub use storage::{PgSink, PgStorage};

use std::collections::HashSet;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, Transaction};

use super::objects::ContentObjects;
use super::placement;
use super::row::{ArtifactRow, ROW_COLUMN_COUNT, ROW_COLUMNS};
use super::{Accepted, BatchReport, StoreError, StoredVersion, Undecodable};
use crate::wire::accepted::{self, AcceptedArtifact};

/// The SQL migrations, in order, embedded so the binary carries its own schema.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_artifacts",
        include_str!("../../../migrations/0001_artifacts.sql"),
    ),
    (
        "0002_audit_retention",
        include_str!("../../../migrations/0002_audit_retention.sql"),
    ),
    (
        "0003_intent_id_not_unique",
        include_str!("../../../migrations/0003_intent_id_not_unique.sql"),
    ),
    (
        "0004_decision_receipts",
        include_str!("../../../migrations/0004_decision_receipts.sql"),
    ),
    (
        "0005_content_objects",
        include_str!("../../../migrations/0005_content_objects.sql"),
    ),
    (
        "0006_usage_counters",
        include_str!("../../../migrations/0006_usage_counters.sql"),
    ),
    (
        "0007_deployment_identity",
        include_str!("../../../migrations/0007_deployment_identity.sql"),
    ),
];

/// Advisory lock key serialising concurrent `migrate` calls on one database ("bucketmg").
const MIGRATION_LOCK_KEY: i64 = 0x6275_636b_6574_6d67;

/// Earliest millisecond timestamp stored as `timestamptz` (about 4000 BC); earlier is NULL.
const MIN_TS_MS: i64 = -188_000_000_000_000;
/// Latest millisecond timestamp stored as `timestamptz` (about 200000 AD); later is NULL.
const MAX_TS_MS: i64 = 6_000_000_000_000_000;

const INSERT_VERSION: &str = "INSERT INTO artifact_versions (product_id, artifact_id, version, \
     intent_id, artifact_class, owner_id, requester_id, integration_id, operation, deleted, \
     content, content_sha256, content_size, content_type, metadata, purpose, client_time, \
     client_time_ms, decided_at, decided_at_ms, policy_version, source_partition, source_offset, \
     content_object) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24) \
     ON CONFLICT (product_id, artifact_id, version) DO NOTHING RETURNING 1";

/// Many versions in one statement: one array per column, unnested into rows.
const INSERT_VERSIONS: &str = "INSERT INTO artifact_versions (product_id, artifact_id, version, \
     intent_id, artifact_class, owner_id, requester_id, integration_id, operation, deleted, \
     content, content_sha256, content_size, content_type, metadata, purpose, client_time, \
     client_time_ms, decided_at, decided_at_ms, policy_version, source_partition, source_offset, \
     content_object) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[], $11::bytea[], $12::text[], \
     $13::int8[], $14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::int8[], \
     $19::timestamptz[], $20::int8[], $21::text[], $22::int4[], $23::int8[], $24::text[]) \
     ON CONFLICT (product_id, artifact_id, version) DO NOTHING \
     RETURNING product_id, artifact_id, version";

/// Most rows, and most content bytes, in one multi-row statement.
const MULTI_ROW_MAX: usize = 1000;
const MULTI_ROW_MAX_BYTES: usize = 64 << 20;

const SELECT_INTENT: &str = "SELECT intent_id FROM artifact_versions \
     WHERE product_id = $1 AND artifact_id = $2 AND version = $3";

const INSERT_UNDECODABLE: &str = "INSERT INTO sink_undecodable (topic, \"partition\", \"offset\", \
     raw, error) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// One stored version by its key: the row's columns, then content and stored_at.
fn select_version() -> String {
    format!(
        "SELECT {ROW_COLUMNS}, content, stored_at FROM artifact_versions \
         WHERE product_id = $1 AND artifact_id = $2 AND version = $3"
    )
}

/// A connection to the artifact database; owns its connection task.
pub struct Store {
    pub(in crate::sink) client: Client,
    connection: JoinHandle<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Store {
    /// Connects to PostgreSQL at `url` (libpq URL; `options=-csearch_path%3D...` picks a schema;
    /// `sslmode`/`sslrootcert` select TLS, see [`crate::sink::store::pg::tls`]).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let config = crate::sink::store::pg::tls::PgConnectConfig::from_url(url)
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let (client, connection) = config.connect().await?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "postgres connection ended");
            }
        });
        Ok(Store { client, connection })
    }

    /// True once the connection is gone; the caller reconnects.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Applies the embedded migrations not yet recorded in `schema_migrations`; returns how many
    /// ran. Idempotent, and safe when several processes race (one advisory-locked transaction).
    pub async fn migrate(&mut self) -> Result<usize, StoreError> {
        let tx = self.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
             name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let mut applied = 0;
        for (name, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[name])
                .await?;
            if done.is_some() {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|source| StoreError::Migration { name, source })?;
            tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])
                .await?;
            tracing::info!(migration = name, "applied migration");
            applied += 1;
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// Fails unless the sink's tables exist and are readable, so a missing migration is
    /// reported at start-up instead of as an endless write retry.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute(
                "SELECT 1 FROM artifact_versions LIMIT 0; SELECT 1 FROM sink_undecodable LIMIT 0",
            )
            .await?;
        Ok(())
    }

    /// Stores a batch in ONE transaction: versions idempotently (a replay is a no-op) and the
    /// undecodable, conflicting or refused records in `sink_undecodable`. When this returns Ok
    /// the whole batch is durable and its offsets may be committed.
    pub async fn write_batch(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
    ) -> Result<BatchReport, StoreError> {
        self.write_batch_placed(accepted, undecodable, None).await
    }

    /// [`Store::write_batch`] with content in `objects` when given: each version's content is
    /// uploaded under its product and digest inside the transaction, after a shared advisory
    /// lock on that object (see [`objects::lock_key`]), and the row names the object instead
    /// of holding the bytes.
    pub async fn write_batch_placed(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
        objects: Option<&ContentObjects>,
    ) -> Result<BatchReport, StoreError> {
        match self.write_fast(accepted, undecodable, objects).await {
            Err(e) if e.is_data_error() => {
                tracing::warn!(error = %e, records = accepted.len(),
                    "database refused a row; rewriting the batch row by row");
                self.write_row_by_row(accepted, undecodable, objects).await
            }
            other => other,
        }
    }

    /// Fast path: every insert pipelined on the connection inside one transaction.
    async fn write_fast(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
        objects: Option<&ContentObjects>,
    ) -> Result<BatchReport, StoreError> {
        let tx = self.client.transaction().await?;
        let keys = placement::place_content(&tx, objects, accepted).await?;
        let insert = tx.prepare(INSERT_VERSIONS).await?;
        let select = tx.prepare(SELECT_INTENT).await?;
        let quarantine = tx.prepare(INSERT_UNDECODABLE).await?;
        let mut report = BatchReport::default();

        let mut inserted: HashSet<(String, String, i64)> = HashSet::new();
        for chunk in multi_row_chunks(accepted, &keys) {
            let columns = Columns::of(&accepted[chunk.clone()], &keys[chunk]);
            for row in tx.query(&insert, &columns.params()).await? {
                inserted.insert((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
        }
        let not_inserted: Vec<&Accepted> = accepted
            .iter()
            .filter(|a| {
                let v = &a.artifact;
                !inserted.contains(&(v.product_id.clone(), v.artifact_id.clone(), v.version))
            })
            .collect();
        report.inserted = accepted.len() - not_inserted.len();

        let keys: Vec<[&(dyn ToSql + Sync); 3]> = not_inserted
            .iter()
            .map(|a| {
                let v = &a.artifact;
                [
                    &v.product_id as &(dyn ToSql + Sync),
                    &v.artifact_id,
                    &v.version,
                ]
            })
            .collect();
        let existing = try_join_all(keys.iter().map(|k| tx.query_opt(&select, k))).await?;
        let mut quarantined: Vec<Undecodable> = Vec::new();
        for (a, row) in not_inserted.iter().zip(existing) {
            match classify_existing(a, row)? {
                None => report.replayed += 1,
                Some(q) => quarantined.push(q),
            }
        }

        let all = undecodable.iter().chain(quarantined.iter());
        try_join_all(all.map(|u| insert_undecodable(&tx, &quarantine, u))).await?;
        report.quarantined = undecodable.len() + quarantined.len();
        report.versions_quarantined = quarantined.len();
        tx.commit().await?;
        Ok(report)
    }

    /// Slow path after a data error: each version under its own savepoint, refused rows
    /// quarantined with the database's reason, still one transaction for the whole batch.
    async fn write_row_by_row(
        &mut self,
        accepted: &[Accepted],
        undecodable: &[Undecodable],
        objects: Option<&ContentObjects>,
    ) -> Result<BatchReport, StoreError> {
        let tx = self.client.transaction().await?;
        let keys = placement::place_content(&tx, objects, accepted).await?;
        let insert = tx.prepare(INSERT_VERSION).await?;
        let select = tx.prepare(SELECT_INTENT).await?;
        let quarantine = tx.prepare(INSERT_UNDECODABLE).await?;
        let mut report = BatchReport::default();
        let mut quarantined: Vec<Undecodable> = Vec::new();

        for (a, key) in accepted.iter().zip(&keys) {
            let row = VersionRow::of(a, key.as_deref());
            let params = row.params();
            tx.batch_execute("SAVEPOINT sink_row").await?;
            let result = tx
                .query_opt(&insert, &params)
                .await
                .map_err(StoreError::from);
            match result {
                Ok(Some(_)) => report.inserted += 1,
                Ok(None) => {
                    let v = &a.artifact;
                    let existing = tx
                        .query_opt(&select, &[&v.product_id, &v.artifact_id, &v.version])
                        .await?;
                    match classify_existing(a, existing)? {
                        None => report.replayed += 1,
                        Some(q) => quarantined.push(q),
                    }
                }
                Err(e) if e.is_data_error() => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT sink_row").await?;
                    let v = &a.artifact;
                    tracing::warn!(partition = a.partition, offset = a.offset,
                        product = %v.product_id, artifact = %v.artifact_id, version = v.version,
                        error = %e, "database refused version; quarantined");
                    quarantined.push(quarantine_of(a, format!("database refused row: {e}")));
                }
                Err(e) => return Err(e),
            }
            tx.batch_execute("RELEASE SAVEPOINT sink_row").await?;
        }
        for u in undecodable.iter().chain(quarantined.iter()) {
            insert_undecodable(&tx, &quarantine, u).await?;
        }
        report.quarantined = undecodable.len() + quarantined.len();
        report.versions_quarantined = quarantined.len();
        tx.commit().await?;
        Ok(report)
    }

    /// This database's identity (migration 0007), which names it in the object store's
    /// `<prefix>/deployment` marker.
    pub async fn deployment_id(&self) -> Result<String, StoreError> {
        let row = self
            .client
            .query_one("SELECT id::text FROM deployment_identity", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Number of stored versions (tests, status).
    pub async fn count_versions(&self) -> Result<i64, StoreError> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM artifact_versions", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Number of quarantined records (tests, status).
    pub async fn count_undecodable(&self) -> Result<i64, StoreError> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM sink_undecodable", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The quarantined records of one topic, in (partition, offset) order (tests, operators).
    pub async fn undecodable(&self, topic: &str) -> Result<Vec<Undecodable>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT topic, \"partition\", \"offset\", raw, error FROM sink_undecodable \
                 WHERE topic = $1 ORDER BY \"partition\", \"offset\"",
                &[&topic],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Undecodable {
                    topic: r.try_get(0)?,
                    partition: r.try_get(1)?,
                    offset: r.try_get(2)?,
                    raw: r.try_get(3)?,
                    error: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// One stored version by its key, or None.
    pub async fn get_version(
        &self,
        product: &str,
        artifact: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row = self
            .client
            .query_opt(&select_version(), &[&product, &artifact, &version])
            .await?;
        row.map(|r| stored_version(&r)).transpose()
    }
}

/// Owned values computed per row so the pipelined inserts can borrow them.
struct VersionRow<'a> {
    a: &'a AcceptedArtifact,
    /// The content for the row: None when it is in an object (or a tombstone).
    content: Option<&'a [u8]>,
    content_object: Option<&'a str>,
    operation: &'static str,
    client_time: Option<SystemTime>,
    decided_at: Option<SystemTime>,
}

impl<'a> VersionRow<'a> {
    fn of(accepted: &'a Accepted, content_object: Option<&'a str>) -> Self {
        let a = &accepted.artifact;
        VersionRow {
            a,
            content: a.content.as_deref().filter(|_| content_object.is_none()),
            content_object,
            operation: a.operation.as_str(),
            client_time: ms_to_time(a.client_time),
            decided_at: ms_to_time(a.decided_at),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 24] {
        let a = self.a;
        [
            &a.product_id,
            &a.artifact_id,
            &a.version,
            &a.intent_id,
            &a.artifact_class,
            &a.owner_id,
            &a.requester_id,
            &a.integration_id,
            &self.operation,
            &a.deleted,
            &self.content,
            &a.content_sha256,
            &a.content_size,
            &a.content_type,
            &a.metadata,
            &a.purpose,
            &self.client_time,
            &a.client_time,
            &self.decided_at,
            &a.decided_at,
            &a.policy_version,
            &a.source_partition,
            &a.source_offset,
            &self.content_object,
        ]
    }
}

/// Splits a batch into statements of at most [`MULTI_ROW_MAX`] rows and about
/// [`MULTI_ROW_MAX_BYTES`] of in-row content (a 16 MiB artifact goes alone; content placed in
/// objects, `keys[i]` set, counts nothing).
fn multi_row_chunks(accepted: &[Accepted], keys: &[Option<String>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, a) in accepted.iter().enumerate() {
        let in_row = keys.get(i).is_none_or(Option::is_none);
        let size = if in_row {
            a.artifact.content.as_ref().map_or(0, Vec::len)
        } else {
            0
        };
        if i > start && (i - start >= MULTI_ROW_MAX || bytes + size > MULTI_ROW_MAX_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < accepted.len() {
        out.push(start..accepted.len());
    }
    out
}

/// A batch of versions as one array per column, for [`INSERT_VERSIONS`].
struct Columns<'a> {
    product_id: Vec<&'a str>,
    artifact_id: Vec<&'a str>,
    version: Vec<i64>,
    intent_id: Vec<&'a str>,
    artifact_class: Vec<&'a str>,
    owner_id: Vec<&'a str>,
    requester_id: Vec<&'a str>,
    integration_id: Vec<&'a str>,
    operation: Vec<&'static str>,
    deleted: Vec<bool>,
    content: Vec<Option<&'a [u8]>>,
    content_object: Vec<Option<&'a str>>,
    content_sha256: Vec<&'a str>,
    content_size: Vec<i64>,
    content_type: Vec<&'a str>,
    metadata: Vec<&'a str>,
    purpose: Vec<&'a str>,
    client_time: Vec<Option<SystemTime>>,
    client_time_ms: Vec<i64>,
    decided_at: Vec<Option<SystemTime>>,
    decided_at_ms: Vec<i64>,
    policy_version: Vec<&'a str>,
    source_partition: Vec<i32>,
    source_offset: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [Accepted], keys: &'a [Option<String>]) -> Self {
        let col = |f: fn(&'a AcceptedArtifact) -> &'a str| -> Vec<&'a str> {
            rows.iter().map(|r| f(&r.artifact)).collect()
        };
        let num = |f: fn(&AcceptedArtifact) -> i64| -> Vec<i64> {
            rows.iter().map(|r| f(&r.artifact)).collect()
        };
        Columns {
            product_id: col(|a| &a.product_id),
            artifact_id: col(|a| &a.artifact_id),
            version: num(|a| a.version),
            intent_id: col(|a| &a.intent_id),
            artifact_class: col(|a| &a.artifact_class),
            owner_id: col(|a| &a.owner_id),
            requester_id: col(|a| &a.requester_id),
            integration_id: col(|a| &a.integration_id),
            operation: rows.iter().map(|r| r.artifact.operation.as_str()).collect(),
            deleted: rows.iter().map(|r| r.artifact.deleted).collect(),
            content: rows
                .iter()
                .zip(keys)
                .map(|(r, key)| r.artifact.content.as_deref().filter(|_| key.is_none()))
                .collect(),
            content_object: keys.iter().map(Option::as_deref).collect(),
            content_sha256: col(|a| &a.content_sha256),
            content_size: num(|a| a.content_size),
            content_type: col(|a| &a.content_type),
            metadata: col(|a| &a.metadata),
            purpose: col(|a| &a.purpose),
            client_time: rows
                .iter()
                .map(|r| ms_to_time(r.artifact.client_time))
                .collect(),
            client_time_ms: num(|a| a.client_time),
            decided_at: rows
                .iter()
                .map(|r| ms_to_time(r.artifact.decided_at))
                .collect(),
            decided_at_ms: num(|a| a.decided_at),
            policy_version: col(|a| &a.policy_version),
            source_partition: rows.iter().map(|r| r.artifact.source_partition).collect(),
            source_offset: num(|a| a.source_offset),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 24] {
        [
            &self.product_id,
            &self.artifact_id,
            &self.version,
            &self.intent_id,
            &self.artifact_class,
            &self.owner_id,
            &self.requester_id,
            &self.integration_id,
            &self.operation,
            &self.deleted,
            &self.content,
            &self.content_sha256,
            &self.content_size,
            &self.content_type,
            &self.metadata,
            &self.purpose,
            &self.client_time,
            &self.client_time_ms,
            &self.decided_at,
            &self.decided_at_ms,
            &self.policy_version,
            &self.source_partition,
            &self.source_offset,
            &self.content_object,
        ]
    }
}

/// Decides what a not-inserted version is: a replay of the same intent (None) or a conflict
/// with another stored version (Some quarantine record).
fn classify_existing(
    a: &Accepted,
    existing: Option<Row>,
) -> Result<Option<Undecodable>, StoreError> {
    let v = &a.artifact;
    let stored_intent: Option<String> = existing.map(|r| r.try_get(0)).transpose()?;
    match stored_intent {
        Some(intent) if intent == v.intent_id => {
            tracing::debug!(partition = a.partition, offset = a.offset, product = %v.product_id,
                artifact = %v.artifact_id, version = v.version, "version already stored (replay)");
            Ok(None)
        }
        other => {
            let reason = match other {
                Some(intent) => format!(
                    "conflict: {}/{} version {} already stored from intent {intent}, not {}",
                    v.product_id, v.artifact_id, v.version, v.intent_id
                ),
                None => format!(
                    "conflict: {}/{} version {} was not stored and no row has its key",
                    v.product_id, v.artifact_id, v.version
                ),
            };
            tracing::warn!(partition = a.partition, offset = a.offset, product = %v.product_id,
                artifact = %v.artifact_id, version = v.version, %reason, "version quarantined");
            Ok(Some(quarantine_of(a, reason)))
        }
    }
}

/// A quarantine record for a decoded version: its Avro body (lossless re-encoding) and why.
fn quarantine_of(a: &Accepted, reason: String) -> Undecodable {
    let (raw, error) = match accepted::encode(&a.artifact) {
        Ok(body) => (
            Some(body),
            format!("{reason} (raw is the re-encoded Avro body)"),
        ),
        Err(e) => (None, format!("{reason} (could not re-encode: {e})")),
    };
    Undecodable {
        topic: a.topic.clone(),
        partition: a.partition,
        offset: a.offset,
        raw,
        error,
    }
}

async fn insert_undecodable(
    tx: &Transaction<'_>,
    statement: &Statement,
    u: &Undecodable,
) -> Result<u64, tokio_postgres::Error> {
    // PostgreSQL text cannot hold NUL; error text may echo input bytes.
    let topic = u.topic.replace('\0', "\\0");
    let error = u.error.replace('\0', "\\0");
    tx.execute(
        statement,
        &[&topic, &u.partition, &u.offset, &u.raw, &error],
    )
    .await
}

/// Milliseconds since the epoch as a time PostgreSQL can store, or None when out of range.
fn ms_to_time(ms: i64) -> Option<SystemTime> {
    if !(MIN_TS_MS..=MAX_TS_MS).contains(&ms) {
        return None;
    }
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

fn stored_version(r: &Row) -> Result<StoredVersion, StoreError> {
    let row = ArtifactRow::from_pg(r)?;
    let operation = row.operation.clone();
    let content = r.try_get(ROW_COLUMN_COUNT)?;
    Ok(StoredVersion {
        artifact: row
            .into_accepted(content)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown operation {operation:?}")))?,
        stored_at: r.try_get(ROW_COLUMN_COUNT + 1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_range_convert_and_extremes_become_null() {
        assert_eq!(ms_to_time(0), Some(UNIX_EPOCH));
        assert_eq!(
            ms_to_time(1_500),
            Some(UNIX_EPOCH + Duration::from_millis(1_500))
        );
        assert_eq!(
            ms_to_time(-1_500),
            UNIX_EPOCH.checked_sub(Duration::from_millis(1_500))
        );
        assert_eq!(ms_to_time(i64::MAX), None);
        assert_eq!(ms_to_time(i64::MIN), None);
    }

    #[test]
    fn migrations_are_named_in_order() {
        let names: Vec<_> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
