//! `bucket gate`: run the governance gate (consumer group on bucket.intents).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bhiv_bucket::admin::auth::Token as AdminToken;
use bhiv_bucket::admin::{AdminConfig, AdminState, GateTelemetry, Role};
use bhiv_bucket::gate::{GateOptions, TopicNames};
use clap::Args;
use tracing::info;

use super::args::{AdminTokenArgs, InstanceArgs, KafkaArgs, RegistryArgs, TopicArgs};
use super::runtime::{LOG_TARGET, mark_stopping, shutdown_on_signals};

/// `bucket gate`: the gate's own flags beside the shared Kafka, registry and topic groups.
#[derive(Args)]
pub(crate) struct GateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// Policy file.
    #[arg(long, env = "BUCKET_POLICY", default_value = "deploy/policy.toml")]
    policy: PathBuf,
    /// Consumer group shared by all gate instances.
    #[arg(long, env = "BUCKET_GATE_GROUP", default_value = "bucket-gate")]
    group: String,
    #[command(flatten)]
    instance: InstanceArgs,
    /// Longest a transaction stays open, ms (end-to-end latency floor).
    #[arg(long, env = "BUCKET_COMMIT_INTERVAL_MS", default_value_t = 100)]
    commit_interval_ms: u64,
    /// Most intents per transaction.
    #[arg(long, env = "BUCKET_MAX_BATCH", default_value_t = 5000)]
    max_batch: usize,
    /// Route accepted artifacts to one topic per product (bucket.accepted.<product>).
    #[arg(long, env = "BUCKET_ACCEPTED_PER_PRODUCT")]
    accepted_per_product: bool,
    /// Ed25519 seed file (base64) of the gate's audit checkpoint key; no checkpoints without it.
    #[arg(long, env = "BUCKET_AUDIT_KEY_FILE")]
    audit_key_file: Option<PathBuf>,
    /// Key id of the audit key (its public key is in the policy's [audit] section).
    #[arg(long, env = "BUCKET_AUDIT_KEY_ID", default_value = "audit1")]
    audit_key_id: String,
    /// Names this installation in the audit transparency log: checkpoint origins are
    /// `<deployment>/bucket.audit/<partition>`, the note key name `<deployment>/bucket.audit`
    /// (docs/audit.md, "Proofs"). Keep it stable: auditors pin it with the public key.
    #[arg(long, env = "BUCKET_DEPLOYMENT", default_value = "bhiv-bucket")]
    deployment: String,
    /// Signed checkpoint after this many audit links per partition.
    #[arg(long, env = "BUCKET_CHECKPOINT_EVERY", default_value_t = 1000)]
    checkpoint_every: u64,
    #[command(flatten)]
    redis: super::args::RedisArgs,
    /// Signed checkpoint at least this often (seconds) while a partition gets links.
    #[arg(long, env = "BUCKET_CHECKPOINT_INTERVAL_S", default_value_t = 10)]
    checkpoint_interval_s: u64,
    /// Admin HTTP address (/healthz, /readyz, /metrics, /policy, /threats, /status); "off"
    /// disables it.
    #[arg(long, env = "BUCKET_ADMIN_ADDR", default_value = bhiv_bucket::admin::config::GATE_DEFAULT_ADDR)]
    admin_addr: String,
    /// Audit schema version to write links with (schemas/audit_event.vN.avsc). Keep the older
    /// one during a rolling upgrade until every reader of bucket.audit knows the newer one.
    #[arg(
        long,
        env = "BUCKET_AUDIT_SCHEMA_VERSION",
        default_value_t = bhiv_bucket::wire::audit::LATEST_VERSION,
        value_parser = clap::value_parser!(u8).range(1..=i64::from(bhiv_bucket::wire::audit::LATEST_VERSION))
    )]
    audit_schema_version: u8,
    /// Directory for the partition tasks' local state stores: the instance's own (one store
    /// per partition; keep it on a persistent volume). Locked while the gate runs: a second
    /// process on the same directory is refused. Unset: every task's state is in memory,
    /// restored from the whole audit log on every assignment.
    #[arg(long, env = "BUCKET_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Block cache of each partition's state store, MiB.
    #[arg(long, env = "BUCKET_STATE_CACHE_MB", default_value_t = 32)]
    state_cache_mb: u64,
    /// Standby tasks: how many other instances keep a warm store of each partition, following
    /// its state changelog, so that a partition whose owner is lost for good is taken over
    /// without reading its whole changelog. Needs --state-dir (refused without it). 0: none.
    #[arg(long, env = "BUCKET_STANDBY_REPLICAS", default_value_t = 0)]
    standby_replicas: usize,
    #[command(flatten)]
    admin: AdminTokenArgs,
    #[command(flatten)]
    approvals: super::policy::ApprovalArgs,
    #[command(flatten)]
    otlp: super::args::OtlpArgs,
}

/// Runs the gate on its own thread until SIGINT/SIGTERM, with SIGHUP reloading the policy.
pub(crate) fn run(a: GateArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    if a.standby_replicas > 0 && a.state_dir.is_none() {
        anyhow::bail!("--standby-replicas needs --state-dir: standby tasks are local state stores");
    }
    let (policy, policy_text) = bhiv_bucket::policy::file::load(&a.policy)?;
    let approvals = a.approvals.at_start(&a.policy, &policy_text)?;
    let _spans = super::runtime::export_traces(&a.otlp, "bucket-gate")?;
    let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = reload.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                info!(target: LOG_TARGET, "SIGHUP: policy reload requested");
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let mut topics = TopicNames::with_suffix(&a.topics.topic_suffix);
    topics.accepted_per_product = a.accepted_per_product;
    let admin = AdminConfig::parse(&a.admin_addr, a.admin.admin_token.as_deref())?;
    // A stable default (the host name, i.e. the pod name on Kubernetes) lets a
    // restarted instance fence its predecessor's open transaction at once and take its
    // partitions back as the same static member.
    let gate_id = a.instance.id("gate");
    bhiv_bucket::gate::instance::check_id(&gate_id)?;
    let state_dir = a.state_dir.clone();
    // Held until the process ends: one live process per state directory (an instance's own
    // volume), so a second process started with the same id and volume is refused.
    let _lock = match &state_dir {
        Some(dir) => Some(bhiv_bucket::gate::instance::InstanceLock::acquire(
            dir, &gate_id,
        )?),
        None => None,
    };
    let telemetry = match admin.addr {
        Some(_) => GateTelemetry::new(&policy, &policy_text, &topics.intents, &a.group, &gate_id),
        None => GateTelemetry::default(),
    };
    let registry_url = a.registry.registry_url.clone();
    let opts = GateOptions {
        brokers: a.kafka.brokers,
        registry_url: a.registry.registry_url,
        group_id: a.group,
        gate_id,
        static_membership: a.instance.static_membership,
        session_timeout: a.instance.session_timeout(),
        standby_replicas: a.standby_replicas,
        topics,
        policy: Arc::new(policy),
        policy_text,
        policy_path: Some(a.policy.clone()),
        reload,
        approvals,
        audit_key: match &a.audit_key_file {
            None => None,
            Some(f) => Some((a.audit_key_id.clone(), read_seed(f)?)),
        },
        deployment: a.deployment.clone(),
        checkpoint_every: a.checkpoint_every.max(1),
        redis: a.redis.target()?,
        checkpoint_interval: Duration::from_secs(a.checkpoint_interval_s.max(1)),
        commit_interval: Duration::from_millis(a.commit_interval_ms),
        max_batch: a.max_batch.max(1),
        restore_timeout: Duration::from_secs(180),
        audit_version: a.audit_schema_version,
        store: state_dir.map(|state_dir| bhiv_bucket::gate::persist::StoreOptions {
            state_dir,
            cache_bytes: a.state_cache_mb.max(1) * 1024 * 1024,
            cluster: String::new(),
            intents_topic: String::new(),
        }),
        telemetry: telemetry.clone().into(),
    };
    let shutdown = shutdown_on_signals(rt);
    if let Some(addr) = admin.addr {
        let state = AdminState {
            role: Role::Gate(telemetry.clone()),
            token: admin.token.as_deref().map(|t| Arc::new(AdminToken::new(t))),
        };
        rt.block_on(bhiv_bucket::admin::start(addr, state, shutdown.clone()))?;
        let _enter = rt.enter();
        bhiv_bucket::admin::probe::spawn_gate(telemetry.clone(), registry_url, shutdown.clone());
        mark_stopping(rt, shutdown.clone(), move || telemetry.stopping());
    }
    let handle = rt.handle().clone();
    let gate = std::thread::Builder::new()
        .name("gate".into())
        .spawn(move || bhiv_bucket::gate::run(opts, shutdown, handle))?;
    match gate.join() {
        Ok(r) => r?,
        Err(_) => bail!("gate thread panicked"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a base64 Ed25519 seed file.
fn read_seed(path: &std::path::Path) -> Result<bhiv_bucket::core::signature::SignKey> {
    use base64::Engine;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading audit key {}", path.display()))?;
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: not a base64 32-byte Ed25519 seed", path.display()))?;
    Ok(bhiv_bucket::core::signature::SignKey::ed25519_from_seed(
        &seed,
    ))
}

#[cfg(test)]
mod tests {
    use crate::cli::Command;
    use crate::cli::tests::command_with_file;

    #[test]
    fn file_values_reach_the_typed_arguments() {
        let Command::Gate(g) = command_with_file(&["gate", "--max-batch", "9"]) else {
            panic!("not gate")
        };
        assert_eq!(g.kafka.brokers, "common:9092");
        assert_eq!(g.commit_interval_ms, 7);
        assert_eq!(g.max_batch, 9);
        assert!(g.accepted_per_product);
        assert_eq!(g.group, "bucket-gate");
    }
}
