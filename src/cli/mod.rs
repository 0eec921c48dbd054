//! The command line of `bucket`: the top-level parser and one module per command family, each
//! owning its arguments and its `run`. `main.rs` only parses and dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub(crate) mod acls;
pub(crate) mod api;
pub(crate) mod args;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod config;
pub(crate) mod gate;
pub(crate) mod keys;
pub(crate) mod policy;
pub(crate) mod produce;
pub(crate) mod runtime;
pub(crate) mod schemas;
pub(crate) mod sink;
pub(crate) mod state;
pub(crate) mod topics;

#[cfg(test)]
mod tests;

use acls::AclsCmd;
use api::ApiArgs;
use audit::AuditCmd;
use bench::BenchArgs;
use config::ConfigCmd;
use gate::GateArgs;
use keys::KeysCmd;
use policy::PolicyCmd;
use produce::ProduceArgs;
use schemas::SchemasCmd;
use sink::SinkArgs;
use state::StateCmd;
use topics::TopicsCmd;

/// BHIV Bucket governance gate: governs artifact intents on Kafka, exactly once.
#[derive(Parser)]
#[command(name = "bucket", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Config file (TOML): one table per subcommand ([gate], [sink], [sink.purge], …) plus
    /// [common] for all; keys are long flag names. Flag > environment > file > default.
    #[arg(long, global = true, env = "BUCKET_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Log format: human or json.
    #[arg(
        long,
        global = true,
        env = "BUCKET_LOG_FORMAT",
        default_value = "human"
    )]
    pub(crate) log_format: String,
    /// The Kafka security flags (SASL_SSL, SCRAM, TLS), global to every command.
    #[command(flatten)]
    pub(crate) kafka_security: bhiv_bucket::kafka::security::KafkaSecurityArgs,
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The command families, one variant per file of this module.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the governance gate (consumer group on bucket.intents).
    Gate(GateArgs),
    /// Storage sink (bucket.accepted → PostgreSQL and the object store) and its jobs: run
    /// (default), migrate, purge, hold, reconcile, gc-objects, migrate-content.
    Sink(Box<SinkArgs>),
    /// Read API over HTTP (artifacts, history, decisions, usage; product-scoped tokens).
    Api(ApiArgs),
    /// Topics as code.
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Kafka ACLs as code (deploy/acls.toml), applied with Kafka's kafka-acls tool or rendered as
    /// Strimzi KafkaUser resources.
    #[command(subcommand)]
    Acls(AclsCmd),
    /// Avro schemas as code.
    #[command(subcommand)]
    Schemas(SchemasCmd),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Produce intents from JSON lines (file or stdin).
    Produce(ProduceArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Signing keys for integrations.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Gate state tools.
    #[command(subcommand)]
    State(StateCmd),
    /// Benchmark: the gate beside a transactional passthrough copier, same input, same run
    /// (runs the `bucket-bench` binary).
    Bench(BenchArgs),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(ConfigCmd),
}
