//! `bucket produce`: produce intents from JSON lines (see docs/wire-contract.md).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bhiv_bucket::gate::TopicNames;
use bhiv_bucket::kafka::registry::Registry;
use bhiv_bucket::produce::{IntentLine, IntentProducer, Planned};
use clap::Args;

use super::args::{KafkaArgs, RegistryArgs, TopicArgs};

/// `bucket produce`: where to produce, what from, and how to sign.
#[derive(Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// JSON-lines file of intents ("-" for stdin); see docs/wire-contract.md.
    #[arg(long, default_value = "-")]
    file: String,
    /// Directory of integration key files to sign with (`bucket keys generate`).
    #[arg(long, env = "BUCKET_KEYS_DIR")]
    keys_dir: Option<PathBuf>,
    /// Sign with HMAC-SHA256 keys rather than Ed25519 when both exist.
    #[arg(long)]
    hmac: bool,
}

/// Produces every intent line of the file (or stdin), signed when keys are given.
pub(crate) fn run(a: ProduceArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    rt.block_on(produce(a))
}

async fn produce(a: ProduceArgs) -> Result<ExitCode> {
    let registry = Registry::new(&a.registry.registry_url)?;
    let topic = TopicNames::with_suffix(&a.topics.topic_suffix).intents;
    let producer = IntentProducer::connect(&a.kafka.brokers, &registry, &topic).await?;
    let reader: Box<dyn BufRead> = if a.file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?,
        ))
    };
    let mut signer = a
        .keys_dir
        .as_ref()
        .map(|d| bhiv_bucket::produce::Signer::new(d, a.hmac));
    let mut sent = 0usize;
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let parsed: IntentLine =
            serde_json::from_str(trimmed).with_context(|| format!("line {}", n + 1))?;
        let d = match parsed.plan(n + 1)? {
            Planned::Intent { key, intent, sign } => {
                let value = producer.encode(&intent)?;
                let header = match (&mut signer, sign.as_str()) {
                    (_, "none") | (None, _) => None,
                    // A forged intent: a well-formed signature over other bytes.
                    (Some(s), "corrupt") => s.header(&intent.integration_id, b"forged")?,
                    (Some(s), _) => s.header(&intent.integration_id, &value)?,
                };
                let headers: Vec<(&str, &[u8])> = header
                    .as_ref()
                    .map(|h| vec![(bhiv_bucket::wire::headers::SIGNATURE, h.as_bytes())])
                    .unwrap_or_default();
                producer
                    .send_raw(Some(key.as_bytes()), Some(&value), &headers)
                    .await?
            }
            Planned::Raw { key, value } => {
                producer
                    .send_raw(key.as_deref().map(str::as_bytes), Some(&value), &[])
                    .await?
            }
        };
        sent += 1;
        println!(
            "line {} -> {topic} partition {} offset {}",
            n + 1,
            d.partition,
            d.offset
        );
    }
    eprintln!("produced {sent} records to {topic}");
    Ok(ExitCode::SUCCESS)
}
