//! Background checks, off the decision path: consumer lag from positions and high watermarks,
//! the schema registry (gate), storage and Kafka (sink), every few seconds.

use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

use super::{GateTelemetry, SinkTelemetry};

/// How often the background probes run.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Lag (high watermark − next offset to read) of every partition assigned to `consumer`.
///
/// The next offset is the consumer's position; before the first record of a partition it is the
/// committed offset, and with none committed the low watermark (`auto.offset.reset=earliest`).
pub fn lags<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let positions = consumer.position()?;
    let mut committed = None;
    let mut out = Vec::new();
    for e in positions.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
        let next = match e.offset() {
            Offset::Offset(o) => o,
            _ => {
                if committed.is_none() {
                    committed = Some(consumer.committed(timeout)?);
                }
                committed
                    .as_ref()
                    .and_then(|c| c.find_partition(e.topic(), e.partition()))
                    .and_then(|c| match c.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(low)
            }
        };
        out.push((e.partition(), (high - next).max(0)));
    }
    out.sort_unstable();
    Ok(out)
}

/// Asks the registry for its subjects: Ok when it answers 2xx within 2 s.
pub async fn registry(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let url = format!("{}/subjects", base.trim_end_matches('/'));
    match client
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url}: HTTP {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// Probes the registry every [`PROBE_EVERY`] for the gate's readiness and `registry_up`.
pub fn spawn_gate(
    telemetry: GateTelemetry,
    registry_url: String,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder().no_proxy().build();
        let Ok(client) = client else {
            telemetry.registry_probe(Err("cannot build an HTTP client".into()));
            return;
        };
        loop {
            telemetry.registry_probe(registry(&client, &registry_url).await);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    })
}

/// Probes storage, Kafka and lag every [`PROBE_EVERY`] for the sink.
pub fn spawn_sink(
    telemetry: SinkTelemetry,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            telemetry.probe().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    })
}
