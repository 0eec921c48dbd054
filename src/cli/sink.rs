//! `bucket sink`: the storage sink (bucket.accepted → PostgreSQL or the filesystem) and its jobs:
//! migrate, purge, hold, reconcile.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bhiv_bucket::admin::auth::Token as AdminToken;
use bhiv_bucket::admin::{AdminConfig, AdminState, Role, SinkTelemetry};
use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::sink::{Backend, SinkOptions, Store, audit_index, purge, reconcile};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::args::{
    AdminTokenArgs, BackendArgs, ContentStoreArgs, InstanceArgs, KafkaArgs, PgArgs, RegistryArgs,
    TopicArgs,
};
use super::runtime::{LOG_TARGET, announce, mark_stopping, shutdown_on_signals};

/// `bucket sink`: the run flags, or one of the storage jobs as a subcommand (not both).
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SinkArgs {
    #[command(flatten)]
    run: SinkRunArgs,
    #[command(subcommand)]
    cmd: Option<SinkCmd>,
}

/// The flags of a sink run, shared by `bucket sink` and `bucket sink run`.
#[derive(Args)]
pub(crate) struct SinkRunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Registry resolving the writer schema of each audit link (audit index).
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    pg: PgArgs,
    #[command(flatten)]
    instance: InstanceArgs,
    /// Consumer group of the sink (the audit indexer uses `<group>.audit`).
    #[arg(long, env = "BUCKET_SINK_GROUP", default_value = "bucket-sink")]
    group: String,
    /// Apply database migrations before starting (needs the owner role).
    #[arg(long)]
    migrate: bool,
    /// With --migrate: the database roles' passwords to set.
    #[command(flatten)]
    roles: super::args::RolePasswordArgs,
    /// Do not index bucket.audit into audit_decisions (another sink does it).
    #[arg(long, env = "BUCKET_SINK_NO_AUDIT_INDEX")]
    no_audit_index: bool,
    /// Most records per database transaction.
    #[arg(long, env = "BUCKET_SINK_BATCH_MAX", default_value_t = 500)]
    batch_max: usize,
    #[command(flatten)]
    backend: BackendArgs,
    /// Admin HTTP address (/healthz, /readyz, /metrics, /status); "off" disables it.
    #[arg(long, env = "BUCKET_ADMIN_ADDR", default_value = bhiv_bucket::admin::config::SINK_DEFAULT_ADDR)]
    admin_addr: String,
    #[command(flatten)]
    admin: AdminTokenArgs,
    #[command(flatten)]
    otlp: super::args::OtlpArgs,
}

/// The sink's jobs beside the run: migrate, purge, legal holds, reconcile.
#[derive(Subcommand)]
pub(crate) enum SinkCmd {
    /// Run the sink (same as `bucket sink` with no subcommand).
    Run(Box<SinkRunArgs>),
    /// Apply the database migrations (owner role) and exit.
    Migrate {
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        roles: super::args::RolePasswordArgs,
    },
    /// Purge prior versions and tombstones older than the window, except under legal hold.
    Purge {
        /// PostgreSQL URL of a role allowed to purge (bucket_purger or the owner).
        #[arg(
            long,
            env = "BUCKET_PURGE_PG_URL",
            default_value = "postgres://bucket_purger:bucket_purger@127.0.0.1:5432/bucket"
        )]
        pg_url: String,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Retention window: 90d, 12h, 30m, 45s.
        #[arg(long, env = "BUCKET_RETENTION_WINDOW", default_value = "90d")]
        window: String,
        /// Count and record only; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The object store whose unreferenced content the purge deletes.
        #[command(flatten)]
        content: ContentStoreArgs,
    },
    /// Delete content objects that no stored version references (uploads whose row never
    /// committed); safe while sinks run. Schedule it (deploy/k8s: CronJob).
    GcObjects {
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        content: ContentStoreArgs,
    },
    /// Move content from PostgreSQL rows into the object store (owner role): resumable, each
    /// version checked against its digest; safe while sinks run.
    MigrateContent {
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        content: ContentStoreArgs,
        /// Versions per transaction.
        #[arg(long, default_value_t = 100)]
        batch: i64,
    },
    /// Place (or with --lift, remove) a legal hold on a product or one artifact (owner role).
    Hold {
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Product.
        #[arg(long)]
        product: String,
        /// One artifact (default: the whole product).
        #[arg(long)]
        artifact: Option<String>,
        /// Why (kept with the hold).
        #[arg(long, default_value = "legal hold")]
        reason: String,
        /// Remove the hold instead.
        #[arg(long)]
        lift: bool,
    },
    /// Compare storage with bucket.accepted (read_committed, from the beginning); exit 1 on any
    /// difference.
    Reconcile {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        #[command(flatten)]
        pg: PgArgs,
        #[command(flatten)]
        backend: BackendArgs,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
        /// Longest time to read the topic to its end, seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
}

/// Runs the sink, or the job named by the subcommand, on the process runtime.
pub(crate) fn run(args: SinkArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let SinkArgs { run: a, cmd } = args;
    rt.block_on(sink(rt, a, cmd))
}

async fn sink(
    rt: &tokio::runtime::Runtime,
    a: SinkRunArgs,
    cmd: Option<SinkCmd>,
) -> Result<ExitCode> {
    match cmd {
        None => sink_run(rt, a).await,
        Some(SinkCmd::Run(a)) => sink_run(rt, *a).await,
        Some(SinkCmd::Migrate { pg, roles }) => {
            let mut store = Store::connect(&pg.pg_url).await?;
            let applied = store.migrate().await?;
            println!("applied {applied} migration(s)");
            for role in roles.apply(&store).await? {
                println!("password of {role} set");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::Purge {
            pg_url,
            kafka,
            topics,
            window,
            dry_run,
            content,
        }) => {
            let window = purge::parse_window(&window).map_err(anyhow::Error::msg)?;
            let objects = content.open()?;
            let mut store = Store::connect(&pg_url).await?;
            let report = store.purge(window, dry_run).await?;
            println!(
                "purge run {}{}: cutoff {} ms, window {} s: purged {} versions and {} tombstones \
                 ({} bytes); {} eligible versions kept under legal hold",
                report.run_id,
                if report.dry_run { " (dry run)" } else { "" },
                report.cutoff_ms,
                report.window_seconds,
                report.purged_versions,
                report.purged_tombstones,
                report.purged_bytes,
                report.held_versions
            );
            if let (Some(objects), false) = (&objects, report.dry_run) {
                let collected = store.collect_purged(objects, report.run_id).await?;
                println!(
                    "content objects: {} examined, {} deleted (no version references them)",
                    collected.examined, collected.deleted
                );
            }
            let detail = serde_json::to_value(&report)?;
            announce(
                &kafka,
                &topics,
                "STORAGE_PURGED",
                "bucket sink purge",
                detail,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::GcObjects { pg, content }) => {
            let objects = content
                .open()?
                .context("gc-objects needs --content-store")?;
            let mut store = Store::connect(&pg.pg_url).await?;
            let report = store.collect_orphans(&objects).await?;
            println!(
                "gc-objects {}: {} objects examined, {} deleted, {} not content keys (kept)",
                objects.url(),
                report.examined,
                report.deleted,
                report.foreign
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::MigrateContent { pg, content, batch }) => {
            let objects = content
                .open()?
                .context("migrate-content needs --content-store")?;
            let mut store = Store::connect(&pg.pg_url).await?;
            let (mut moved, mut bytes, mut mismatches) = (0usize, 0u64, Vec::new());
            let mut after = None;
            loop {
                let r = store
                    .migrate_content_batch(&objects, batch.max(1), &mut after)
                    .await?;
                moved += r.moved;
                bytes += r.moved_bytes;
                mismatches.extend(r.digest_mismatches);
                if r.scanned == 0 {
                    break;
                }
                info!(target: LOG_TARGET, moved, bytes, "content moved so far");
            }
            for m in &mismatches {
                println!("DIGEST MISMATCH {m} (left in its row)");
            }
            println!(
                "migrate-content {}: {moved} versions ({bytes} bytes) moved, {} left in their rows",
                objects.url(),
                mismatches.len()
            );
            Ok(if mismatches.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(SinkCmd::Hold {
            pg,
            kafka,
            topics,
            product,
            artifact,
            reason,
            lift,
        }) => {
            let store = Store::connect(&pg.pg_url).await?;
            let what = match &artifact {
                Some(a) => format!("{product}/{a}"),
                None => format!("product {product}"),
            };
            let detail =
                serde_json::json!({"product": product, "artifact": artifact, "reason": reason});
            if lift {
                let existed = store.lift_hold(&product, artifact.as_deref()).await?;
                println!(
                    "legal hold on {what} {}",
                    if existed { "lifted" } else { "did not exist" }
                );
                if existed {
                    announce(
                        &kafka,
                        &topics,
                        "LEGAL_HOLD_LIFTED",
                        "bucket sink hold --lift",
                        detail,
                    )
                    .await?;
                }
            } else {
                store
                    .place_hold(&product, artifact.as_deref(), &reason)
                    .await?;
                println!("legal hold on {what} in place");
                announce(
                    &kafka,
                    &topics,
                    "LEGAL_HOLD_PLACED",
                    "bucket sink hold",
                    detail,
                )
                .await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(SinkCmd::Reconcile {
            kafka,
            topics,
            pg,
            backend,
            json,
            timeout_secs,
        }) => {
            let backend = backend.backend(&pg)?;
            let topic = TopicNames::with_suffix(&topics.topic_suffix).accepted;
            let (brokers, t) = (kafka.brokers.clone(), topic.clone());
            let topic_side = tokio::task::spawn_blocking(move || {
                reconcile::read_topic(&brokers, &t, Duration::from_secs(timeout_secs))
            })
            .await??;
            let storage_side = backend.storage_side(&topic).await?;
            let report = reconcile::diff(&topic_side, &storage_side);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for d in &report.differences {
                    println!("DIFF {}", serde_json::to_string(d)?);
                }
                println!(
                    "reconcile {topic}: {} records, {} versions on the topic, {} stored, {} purged, \
                     {} quarantined, {} differences",
                    report.topic_records,
                    report.topic_versions,
                    report.stored_versions,
                    report.purged,
                    report.quarantined,
                    report.differences.len()
                );
            }
            Ok(if report.differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Starts the sink's admin server and probes; returns the telemetry handle for the loop.
async fn sink_admin(
    rt: &tokio::runtime::Runtime,
    a: &SinkRunArgs,
    backend: &Backend,
    shutdown: &CancellationToken,
) -> Result<SinkTelemetry> {
    let admin = AdminConfig::parse(&a.admin_addr, a.admin.admin_token.as_deref())?;
    let Some(addr) = admin.addr else {
        return Ok(SinkTelemetry::default());
    };
    let telemetry = SinkTelemetry::new(backend.probe());
    let state = AdminState {
        role: Role::Sink(telemetry.clone()),
        token: admin.token.as_deref().map(|t| Arc::new(AdminToken::new(t))),
    };
    bhiv_bucket::admin::start(addr, state, shutdown.clone()).await?;
    bhiv_bucket::admin::probe::spawn_sink(telemetry.clone(), shutdown.clone());
    let t = telemetry.clone();
    mark_stopping(rt, shutdown.clone(), move || t.stopping());
    Ok(telemetry)
}

async fn sink_run(rt: &tokio::runtime::Runtime, a: SinkRunArgs) -> Result<ExitCode> {
    let backend = a.backend.backend(&a.pg)?;
    let _spans = super::runtime::export_traces(&a.otlp, "bucket-sink")?;
    let shutdown = shutdown_on_signals(rt);
    let telemetry = sink_admin(rt, &a, &backend, &shutdown).await?;
    if let Backend::Fs { dir } = &backend {
        let names = TopicNames::with_suffix(&a.topics.topic_suffix);
        let mut opts = SinkOptions::new(a.kafka.brokers, a.group, "");
        a.instance.apply_to(&mut opts)?;
        opts.topic = names.accepted;
        opts.batch_max = a.batch_max;
        let store = backend
            .connect(&shutdown)
            .await
            .with_context(|| format!("opening {}", dir.display()))?;
        let Some(store) = store else {
            return Ok(ExitCode::SUCCESS);
        };
        info!(target: LOG_TARGET, data_dir = %dir.display(), "fs backend (no audit index, no read API)");
        opts.telemetry = telemetry.into();
        bhiv_bucket::sink::run_with(store, opts, shutdown).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.migrate {
        let mut store = Store::connect(&a.pg.pg_url).await?;
        let applied = store.migrate().await?;
        let roles = a.roles.apply(&store).await?;
        info!(target: LOG_TARGET, applied, ?roles, "database migrations applied");
    }
    let names = TopicNames::with_suffix(&a.topics.topic_suffix);
    let mut opts = SinkOptions::new(a.kafka.brokers, a.group, a.pg.pg_url);
    a.instance.apply_to(&mut opts)?;
    opts.objects = a.backend.content.config()?;
    opts.topic = names.accepted;
    opts.batch_max = a.batch_max;
    opts.telemetry = telemetry.into();
    let indexer = if a.no_audit_index {
        None
    } else {
        let mut audit = opts.clone();
        audit.telemetry = Default::default();
        audit.topic = names.audit;
        audit.group_id = format!("{}.audit", opts.group_id);
        let stop = shutdown.clone();
        let registry_url = a.registry.registry_url.clone();
        Some(tokio::spawn(async move {
            let r = audit_index::run(audit, &registry_url, stop.clone()).await;
            if r.is_err() {
                stop.cancel();
            }
            r
        }))
    };
    let result = bhiv_bucket::sink::run(opts, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(h) = indexer {
        h.await.context("audit indexer task")??;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{SinkArgs, SinkCmd};
    use crate::cli::Command;
    use crate::cli::tests::command_with_file;

    #[test]
    fn file_values_reach_the_typed_arguments() {
        let Command::Sink(sink) = command_with_file(&["sink", "purge"]) else {
            panic!("not sink")
        };
        let SinkArgs {
            cmd: Some(SinkCmd::Purge {
                window, dry_run, ..
            }),
            ..
        } = *sink
        else {
            panic!("not sink purge")
        };
        assert_eq!(window, "30d");
        assert!(dry_run);
    }
}
