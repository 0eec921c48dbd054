//! Argument groups shared by several commands, each defined once and flattened where needed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bhiv_bucket::sink::Backend;
use bhiv_bucket::sink::store::{ContentObjects, ObjectStoreConfig};
use clap::Args;

/// A secret given as `env:NAME`, `file:PATH` or (from an environment variable) the value itself.
pub(crate) fn resolve_secret(value: &str) -> Result<String> {
    if value.starts_with("env:") || value.starts_with("file:") {
        Ok(bhiv_bucket::kafka::security::resolve_secret(value)?)
    } else {
        Ok(value.to_string())
    }
}

/// Where the Kafka brokers are: every command that talks to Kafka flattens this.
#[derive(Args, Clone)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "BUCKET_BROKERS", default_value = "127.0.0.1:9092")]
    pub(crate) brokers: String,
}

/// Where the schema registry is: the commands that encode or register Avro flatten this.
#[derive(Args, Clone)]
pub(crate) struct RegistryArgs {
    /// Confluent-compatible schema registry base URL.
    #[arg(
        long,
        env = "BUCKET_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081/apis/ccompat/v7"
    )]
    pub(crate) registry_url: String,
}

/// The topic-name suffix, so isolated runs share one cluster: flattened by every topic user.
#[derive(Args, Clone)]
pub(crate) struct TopicArgs {
    /// Suffix appended to every topic name (isolated test or staging runs).
    #[arg(long, env = "BUCKET_TOPIC_SUFFIX", default_value = "")]
    pub(crate) topic_suffix: String,
}

/// How to reach Redis (usage shared across partitions): the gate and `state rebuild` flatten this.
#[derive(Args, Clone)]
pub(crate) struct RedisArgs {
    /// Redis URL for cross-partition usage (global quotas): redis://[user@]host:port, or
    /// rediss:// for TLS; "none" disables sharing.
    #[arg(
        long,
        env = "BUCKET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub(crate) redis_url: String,
    /// Redis password as a reference (env:NAME or file:PATH), for the URL's user (or `default`).
    #[arg(long, env = "BUCKET_REDIS_PASSWORD", hide_env_values = true)]
    pub(crate) redis_password: Option<String>,
    /// PEM CA certificate(s) that verify a rediss:// server (the system roots if absent).
    #[arg(long, env = "BUCKET_REDIS_CA_FILE")]
    pub(crate) redis_ca_file: Option<std::path::PathBuf>,
}

impl RedisArgs {
    /// The Redis target, or None when sharing is off; the password and CA are read here.
    pub(crate) fn target(
        &self,
    ) -> anyhow::Result<Option<bhiv_bucket::gate::usage_share::RedisTarget>> {
        if self.redis_url == "none" {
            return Ok(None);
        }
        let password = match &self.redis_password {
            Some(reference) => Some(
                bhiv_bucket::kafka::security::resolve_secret(reference)
                    .context("--redis-password")?,
            ),
            None => None,
        };
        let ca_pem = match &self.redis_ca_file {
            Some(f) => {
                Some(std::fs::read(f).with_context(|| format!("redis CA file {}", f.display()))?)
            }
            None => None,
        };
        Ok(Some(bhiv_bucket::gate::usage_share::RedisTarget {
            url: self.redis_url.clone(),
            password,
            ca_pem,
        }))
    }
}

/// Where spans go (OpenTelemetry over OTLP/HTTP): the gate and the sink flatten this. Off
/// unless given.
#[derive(Args, Clone, Default)]
pub(crate) struct OtlpArgs {
    /// OTLP/HTTP collector base URL (e.g. http://otel-collector:4318; spans go to its
    /// /v1/traces): export a span per decision (gate) and per durable write (sink), children
    /// of the W3C `traceparent` the records carry. Off when absent.
    #[arg(long, env = "BUCKET_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
}

/// The admin endpoints' bearer token, shared by the gate and the sink.
#[derive(Args, Clone)]
pub(crate) struct AdminTokenArgs {
    /// Bearer token of the admin endpoints (all but /healthz, /readyz and the static /status
    /// page): the token itself, env:NAME or file:PATH. Without one the address must be loopback.
    #[arg(long, env = "BUCKET_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
}

/// The PostgreSQL URL of the sink role, shared by the sink and its storage jobs.
#[derive(Args, Clone)]
pub(crate) struct PgArgs {
    /// PostgreSQL URL (the bucket_sink role in production; owner for --migrate).
    #[arg(
        long,
        env = "BUCKET_PG_URL",
        default_value = "postgres://bucket:bucket@127.0.0.1:5432/bucket"
    )]
    pub(crate) pg_url: String,
}

/// Login passwords of the database roles the migrations create, set by `sink migrate` (and
/// `sink --migrate`) from Secrets; each is a reference (env:NAME or file:PATH). Absent: that
/// role's password is left as it is.
#[derive(Args, Clone, Default)]
pub(crate) struct RolePasswordArgs {
    /// Password of bucket_sink (the sink's append-only role).
    #[arg(long, env = "BUCKET_PG_SINK_ROLE_PASSWORD", hide_env_values = true)]
    pub(crate) sink_role_password: Option<String>,
    /// Password of bucket_reader (the read API's read-only role).
    #[arg(long, env = "BUCKET_PG_READER_ROLE_PASSWORD", hide_env_values = true)]
    pub(crate) reader_role_password: Option<String>,
    /// Password of bucket_purger (`sink purge`).
    #[arg(long, env = "BUCKET_PG_PURGER_ROLE_PASSWORD", hide_env_values = true)]
    pub(crate) purger_role_password: Option<String>,
}

impl RolePasswordArgs {
    /// Sets the passwords given (after the migrations created the roles); returns the roles set.
    pub(crate) async fn apply(
        &self,
        store: &bhiv_bucket::sink::store::pg::Store,
    ) -> anyhow::Result<Vec<&'static str>> {
        let mut set = Vec::new();
        for (role, reference) in [
            ("bucket_sink", &self.sink_role_password),
            ("bucket_reader", &self.reader_role_password),
            ("bucket_purger", &self.purger_role_password),
        ] {
            let Some(reference) = reference else { continue };
            let password = bhiv_bucket::kafka::security::resolve_secret(reference)
                .with_context(|| format!("the password of {role}"))?;
            store.set_role_password(role, &password).await?;
            set.push(role);
        }
        Ok(set)
    }
}

/// The storage backend choice (pg or fs), shared by the sink run and reconcile.
#[derive(Args, Clone)]
pub(crate) struct BackendArgs {
    /// Storage backend: pg (PostgreSQL) or fs (local directory, laptop demo).
    #[arg(long, env = "BUCKET_SINK_BACKEND", default_value = "pg", value_parser = Backend::NAMES)]
    pub(crate) backend: String,
    /// Data directory of the fs backend.
    #[arg(long, env = "BUCKET_DATA_DIR", default_value = ".stack/data/bucket-fs")]
    pub(crate) data_dir: PathBuf,
    #[command(flatten)]
    pub(crate) content: ContentStoreArgs,
}

/// Where artifact content lives when it is not in PostgreSQL's `content` column: an S3 bucket
/// (docs/decisions/0018), shared by the sink, its jobs and the read API.
#[derive(Args, Clone)]
pub(crate) struct ContentStoreArgs {
    /// Object store for artifact content, `s3://bucket[/prefix]`; unset keeps content in
    /// PostgreSQL (pg backend only).
    #[arg(long, env = "BUCKET_CONTENT_STORE")]
    pub(crate) content_store: Option<String>,
    /// S3 endpoint, https only (unset: AWS S3 for the region).
    #[arg(long, env = "BUCKET_S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// Region requests are signed for.
    #[arg(long, env = "BUCKET_S3_REGION", default_value = "us-east-1")]
    pub(crate) s3_region: String,
    /// S3 access key id.
    #[arg(long, env = "BUCKET_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub(crate) s3_access_key_id: Option<String>,
    /// S3 secret access key: the key itself, env:NAME or file:PATH.
    #[arg(long, env = "BUCKET_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub(crate) s3_secret_access_key: Option<String>,
    /// PEM file of the CA that signed the S3 endpoint's certificate (beside the system roots).
    #[arg(long, env = "BUCKET_S3_CA_FILE")]
    pub(crate) s3_ca_file: Option<PathBuf>,
}

impl ContentStoreArgs {
    /// The object store these arguments name, or None when content stays in PostgreSQL.
    pub(crate) fn config(&self) -> Result<Option<ObjectStoreConfig>> {
        let Some(url) = &self.content_store else {
            return Ok(None);
        };
        let access_key_id = self
            .s3_access_key_id
            .clone()
            .context("--content-store needs --s3-access-key-id (BUCKET_S3_ACCESS_KEY_ID)")?;
        let secret = self.s3_secret_access_key.as_deref().context(
            "--content-store needs --s3-secret-access-key (BUCKET_S3_SECRET_ACCESS_KEY)",
        )?;
        Ok(Some(ObjectStoreConfig {
            url: url.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id,
            secret_access_key: resolve_secret(secret)?,
            ca_file: self.s3_ca_file.clone(),
        }))
    }

    /// The opened store, or None when content stays in PostgreSQL.
    pub(crate) fn open(&self) -> Result<Option<ContentObjects>> {
        Ok(self
            .config()?
            .as_ref()
            .map(ContentObjects::open)
            .transpose()?)
    }
}

impl BackendArgs {
    /// The backend these arguments name, with the PostgreSQL URL it uses when it is `pg`: parsed
    /// once, then matched on (never compared by name again).
    pub(crate) fn backend(&self, pg: &PgArgs) -> Result<Backend> {
        Ok(Backend::from_args(
            &self.backend,
            &pg.pg_url,
            &self.data_dir,
            self.content.config()?,
        )?)
    }
}

/// Who this running instance is, and how it belongs to its consumer group (gate and sink).
#[derive(Args, Clone)]
pub(crate) struct InstanceArgs {
    /// Instance id, unique and stable per running instance (a StatefulSet's pod name): the
    /// static group member's id, part of the transactional id and the state directory's name;
    /// defaults to the host name. Two live processes must never share one (docs/runbook.md).
    #[arg(long, alias = "gate-id", env = "BUCKET_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Join the consumer group as a static member named by the instance id (KIP-345): a
    /// restart within the session timeout gets its partitions back with no rebalance, and a
    /// stopping instance does not leave the group. `false`: a dynamic member that leaves on
    /// stop (its partitions move at once).
    #[arg(
        long,
        env = "BUCKET_STATIC_MEMBERSHIP",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub static_membership: bool,
    /// How long the group waits for a silent member (crashed, or stopped as a static member)
    /// before it moves the member's partitions, ms.
    #[arg(long, env = "BUCKET_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
}

impl InstanceArgs {
    /// The instance id: the flag, else the host name, else `fallback`.
    pub fn id(&self, fallback: &str) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| fallback.to_string())
        })
    }

    /// Sets the sink's membership from these flags.
    pub fn apply_to(&self, opts: &mut bhiv_bucket::sink::SinkOptions) -> Result<()> {
        let id = self.id("sink");
        bhiv_bucket::gate::instance::check_id(&id)?;
        opts.instance_id = self.static_membership.then_some(id);
        opts.session_timeout = self.session_timeout();
        Ok(())
    }

    /// The session timeout (at least Kafka's minimum of 6 s is the broker's business: it
    /// refuses values outside `group.min/max.session.timeout.ms`).
    pub fn session_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.session_timeout_ms.max(1))
    }
}
