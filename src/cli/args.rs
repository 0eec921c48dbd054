//! Argument groups shared by several commands, each defined once and flattened where needed.

use std::path::PathBuf;

use anyhow::Result;
use bhiv_bucket::sink::Backend;
use clap::Args;

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

/// The storage backend choice (pg or fs), shared by the sink run and reconcile.
#[derive(Args, Clone)]
pub(crate) struct BackendArgs {
    /// Storage backend: pg (PostgreSQL) or fs (local directory, laptop demo).
    #[arg(long, env = "BUCKET_SINK_BACKEND", default_value = "pg", value_parser = Backend::NAMES)]
    pub(crate) backend: String,
    /// Data directory of the fs backend.
    #[arg(long, env = "BUCKET_DATA_DIR", default_value = ".stack/data/bucket-fs")]
    pub(crate) data_dir: PathBuf,
}

impl BackendArgs {
    /// The backend these arguments name, with the PostgreSQL URL it uses when it is `pg`: parsed
    /// once, then matched on (never compared by name again).
    pub(crate) fn backend(&self, pg: &PgArgs) -> Result<Backend> {
        Ok(Backend::from_args(
            &self.backend,
            &pg.pg_url,
            &self.data_dir,
        )?)
    }
}
