//! Process plumbing shared by the command families: logging, signals, readiness on shutdown,
//! governance announcements and policy loading.

use anyhow::{Context, Result};
use bhiv_bucket::core::Policy;
use bhiv_bucket::gate::TopicNames;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::args::{KafkaArgs, TopicArgs};

/// The target of the binary's own log events, `bucket` as when all of it was `main.rs`, so log
/// lines and `RUST_LOG` filters stay as they were.
pub(crate) const LOG_TARGET: &str = "bucket";

/// Logs to stderr, human or JSON lines (`bucket-bench` logs to a file instead).
pub(crate) fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Publishes a governance event to `bucket.control` for the gate to fold into the audit chain.
/// The action already happened, so a failure to publish is an error the operator must see.
pub(crate) async fn announce(
    kafka: &KafkaArgs,
    topics: &TopicArgs,
    event_type: &str,
    source: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let topic = TopicNames::with_suffix(&topics.topic_suffix).control;
    let event = bhiv_bucket::control::stamped(event_type, source, detail);
    let mut client = bhiv_bucket::kafka::security::client_config();
    client.set("bootstrap.servers", &kafka.brokers);
    let offset = bhiv_bucket::control::publish(&client, &topic, &event)
        .await
        .with_context(|| {
            format!("{event_type} was done, but its audit event could not be published to {topic}; run the command again")
        })?;
    eprintln!("audit: {event_type} published to {topic} at offset {offset}");
    Ok(())
}

/// Loads and validates a policy file, dropping its text (the tools only need the rules).
pub(crate) fn load_policy(path: &std::path::Path) -> Result<Policy> {
    Ok(bhiv_bucket::policy_file::load(path)?.0)
}

/// Runs `f` once `shutdown` is cancelled (readiness goes false while the process winds down).
pub(crate) fn mark_stopping(
    rt: &tokio::runtime::Runtime,
    shutdown: CancellationToken,
    f: impl FnOnce() + Send + 'static,
) {
    rt.spawn(async move {
        shutdown.cancelled().await;
        f();
    });
}

/// Cancels the token on SIGINT or SIGTERM.
pub(crate) fn shutdown_on_signals(rt: &tokio::runtime::Runtime) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    rt.spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        info!(target: LOG_TARGET, "shutdown signal received");
        t.cancel();
    });
    token
}

/// A reader of `bucket.audit` that knows every approved audit version registered so far.
pub(crate) fn audit_reader(
    rt: &tokio::runtime::Runtime,
    registry: &super::args::RegistryArgs,
) -> Result<bhiv_bucket::wire::audit::AuditReader> {
    let client = bhiv_bucket::registry::Registry::new(&registry.registry_url)?;
    Ok(rt.block_on(client.audit_reader())?)
}
