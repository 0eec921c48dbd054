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

/// The span exporter of a process run with `--otlp-endpoint`: flushes what it holds when
/// dropped, at the end of the command.
pub(crate) struct TraceExport(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TraceExport {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "spans not all exported at shutdown");
        }
    }
}

/// Installs the OTLP/HTTP span exporter for `service` when `args` names an endpoint (batched
/// on its own thread; a collector that is down costs dropped spans, never a decision).
pub(crate) fn export_traces(args: &super::args::OtlpArgs, service: &str) -> Result<TraceExport> {
    use opentelemetry_otlp::WithExportConfig;
    let Some(endpoint) = &args.otlp_endpoint else {
        return Ok(TraceExport(None));
    };
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .build()
        .with_context(|| format!("OTLP exporter for {url}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    bhiv_bucket::kafka::trace::enable();
    info!(target: LOG_TARGET, %url, "exporting spans over OTLP/HTTP");
    Ok(TraceExport(Some(provider)))
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
    Ok(bhiv_bucket::policy::file::load(path)?.0)
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
    let client = bhiv_bucket::kafka::registry::Registry::new(&registry.registry_url)?;
    Ok(rt.block_on(client.audit_reader())?)
}
