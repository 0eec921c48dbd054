//! Schema registry edge: registers the approved schemas and classifies a record's schema id as
//! approved, not approved or unknown. Any Confluent-compatible registry works (configuration is
//! a URL); network trouble is reported as `Unavailable`, never as a verdict on the record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_all_versions, get_schema_by_subject_and_version, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

use crate::wire::audit::AuditReader;
use crate::wire::schemas::{APPROVED, ApprovedSchema, fingerprint};

/// Registry failures that are nobody's verdict: retry or stop, never reject.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Could not reach the registry or it answered with a server error.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry refused a registration (incompatible, unauthorised, ...).
    #[error("schema registry refused {subject}: {detail}")]
    Refused {
        /// Subject being registered.
        subject: String,
        /// Registry's answer.
        detail: String,
    },
    /// Client could not be built from the configuration.
    #[error("schema registry client: {0}")]
    Config(String),
}

/// What a schema id turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaVerdict {
    /// The id's schema is the approved intent schema.
    ApprovedIntent,
    /// The id exists but its schema is not approved for intents (fingerprint given).
    NotApproved(String),
    /// The registry has no such id.
    Unknown,
}

/// Ids of the gate's output schemas, as registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSchemaIds {
    /// Id of `AcceptedArtifact`.
    pub accepted: u32,
    /// Id of `AuditEvent`.
    pub audit: u32,
}

/// Registry client with a per-id verdict cache.
pub struct Registry {
    settings: SrSettings,
    decoder: AvroDecoder,
    verdicts: Mutex<HashMap<u32, SchemaVerdict>>,
}

/// Most ids whose definitive verdict is cached (unknown ids are never cached here).
const VERDICT_CACHE_MAX: usize = 10_000;

impl Registry {
    /// Builds a client for a Confluent-compatible registry base URL (e.g. `.../apis/ccompat/v7`).
    pub fn new(url: &str) -> Result<Registry, RegistryError> {
        let settings = SrSettings::new_builder(url.trim_end_matches('/').to_string())
            .set_timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(Registry {
            decoder: AvroDecoder::new(settings.clone()),
            settings,
            verdicts: Mutex::new(HashMap::new()),
        })
    }

    /// Registers one approved schema under its subject and returns its id (idempotent).
    pub async fn register(&self, s: &ApprovedSchema) -> Result<u32, RegistryError> {
        self.register_as(s.subject, s.text).await
    }

    /// Registers schema text under a subject and returns its id (idempotent in the registry).
    pub async fn register_as(&self, subject: &str, text: &str) -> Result<u32, RegistryError> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, text.to_string());
        match post_schema(&self.settings, subject.to_string(), supplied).await {
            Ok(r) => Ok(r.id),
            Err(e) if is_unavailable(&e) => Err(RegistryError::Unavailable(e.to_string())),
            Err(e) => Err(RegistryError::Refused {
                subject: subject.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// Registers every approved schema (audit versions oldest first); returns each with its id.
    pub async fn apply_all(&self) -> Result<Vec<(&'static ApprovedSchema, u32)>, RegistryError> {
        let mut out = Vec::new();
        for s in APPROVED.all() {
            out.push((s, self.register(s).await?));
        }
        Ok(out)
    }

    /// Registers the gate's output schemas (every audit version, oldest first) and returns the
    /// ids it writes with, `audit_version` naming the audit version, and a reader of them all.
    pub async fn output_ids(
        &self,
        audit_version: u8,
    ) -> Result<(OutputSchemaIds, AuditReader), RegistryError> {
        let mut reader = AuditReader::default();
        let mut audit = None;
        for (i, s) in APPROVED.audit_versions.iter().enumerate() {
            let id = self.register(s).await?;
            reader.learn(id, &s.fingerprint);
            if i + 1 == usize::from(audit_version) {
                audit = Some(id);
            }
        }
        let audit = audit.ok_or_else(|| {
            RegistryError::Config(format!(
                "audit schema version {audit_version} is not one of the {} approved",
                APPROVED.audit_versions.len()
            ))
        })?;
        let ids = OutputSchemaIds {
            accepted: self.register(&APPROVED.accepted).await?,
            audit,
        };
        Ok((ids, reader))
    }

    /// A reader of `bucket.audit` records: every version registered under the audit subject
    /// whose schema is an approved audit version. Read-only (nothing is registered); readers
    /// that meet an id it does not know ask again, since a newer gate may have registered it.
    pub async fn audit_reader(&self) -> Result<AuditReader, RegistryError> {
        let subject = APPROVED
            .audit_versions
            .first()
            .map(|s| s.subject)
            .unwrap_or("bucket.audit-value");
        let unavailable = |e: SRCError| RegistryError::Unavailable(e.to_string());
        let versions = match get_all_versions(&self.settings, subject.to_string()).await {
            Ok(v) => v,
            // Nothing registered yet: no audit record can exist either.
            Err(e) if is_not_found(&e) => return Ok(AuditReader::default()),
            Err(e) => return Err(unavailable(e)),
        };
        let mut reader = AuditReader::default();
        for v in versions {
            let registered = get_schema_by_subject_and_version(&self.settings, subject, Some(v))
                .await
                .map_err(unavailable)?;
            if let Ok(schema) = apache_avro::Schema::parse_str(&registered.schema) {
                reader.learn(registered.id, &fingerprint(&schema));
            }
        }
        Ok(reader)
    }

    /// Classifies a schema id. Definitive answers are cached; `Unavailable` means "ask again".
    pub async fn verdict(&self, id: u32) -> Result<SchemaVerdict, RegistryError> {
        if let Some(v) = self.cached(id) {
            return Ok(v);
        }
        let verdict = match self.decoder.get_schema(id).await {
            Ok(schema) => {
                let fp = fingerprint(&schema.parsed);
                if fp == APPROVED.intent.fingerprint {
                    SchemaVerdict::ApprovedIntent
                } else {
                    SchemaVerdict::NotApproved(fp)
                }
            }
            Err(e) if is_not_found(&e) => {
                // The decoder caches non-retriable errors; an id unknown now may be registered
                // later, and unbounded garbage ids must not grow its cache.
                self.decoder.remove_errors_from_cache();
                return Ok(SchemaVerdict::Unknown);
            }
            Err(e) if is_unavailable(&e) => {
                self.decoder.remove_errors_from_cache();
                return Err(RegistryError::Unavailable(e.to_string()));
            }
            // The id exists but is not an Avro schema we can parse: not approved.
            Err(e) => {
                self.decoder.remove_errors_from_cache();
                SchemaVerdict::NotApproved(format!("unparseable: {}", e.error))
            }
        };
        if let Ok(mut cache) = self.verdicts.lock()
            && cache.len() < VERDICT_CACHE_MAX
        {
            cache.insert(id, verdict.clone());
        }
        Ok(verdict)
    }

    /// The verdict on `id` if already known, without asking the registry (the hot path).
    pub fn cached(&self, id: u32) -> Option<SchemaVerdict> {
        self.verdicts.lock().ok()?.get(&id).cloned()
    }
}

fn is_not_found(e: &SRCError) -> bool {
    e.error.contains("status 404")
}

/// Transport failures, timeouts and any HTTP status other than 404 or a client refusal are the
/// registry's problem, not the record's.
fn is_unavailable(e: &SRCError) -> bool {
    if e.retriable {
        return true;
    }
    match e.error.split("status ").nth(1) {
        Some(rest) => {
            let code: u16 = rest
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(500);
            code >= 500 || code == 408 || code == 429
        }
        None => e.error.contains("http call") || e.error.contains("timed out"),
    }
}
