//! `bucket state`: rebuild the gate state from bucket.audit alone; republish usage to Redis.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use bhiv_bucket::gate::TopicNames;
use clap::Subcommand;

use super::args::{KafkaArgs, RegistryArgs, TopicArgs};
use super::runtime::{announce, load_policy};

/// `bucket state`: rebuild the gate state.
#[derive(Subcommand)]
pub(crate) enum StateCmd {
    /// Rebuild the gate state (artifact index, usage) from bucket.audit alone, print per-product
    /// usage and republish it to Redis (repairs a Redis that lost data or fell behind).
    Rebuild {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Policy file (replay window, offender settings).
        #[arg(long, env = "BUCKET_POLICY", default_value = "deploy/policy.toml")]
        policy: PathBuf,
        /// Redis to republish usage to (--redis-url none: only print).
        #[command(flatten)]
        redis: super::args::RedisArgs,
    },
}

/// Rebuilds every partition's state from the audit log, prints and republishes usage.
pub(crate) fn run(cmd: StateCmd, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    match cmd {
        StateCmd::Rebuild {
            kafka,
            topics: suffix,
            registry,
            policy,
            redis,
        } => {
            let reader = super::runtime::audit_reader(rt, &registry)?;
            let names = TopicNames::with_suffix(&suffix.topic_suffix);
            let policy = load_policy(&policy)?;
            let started = std::time::Instant::now();
            let src = bhiv_bucket::gate::task::AuditSource {
                brokers: &kafka.brokers,
                topic: &names.audit,
                timeout: Duration::from_secs(600),
                reader: &reader,
            };
            let mut tasks = bhiv_bucket::gate::task::rebuild_all(src, &policy)?;
            println!(
                "{:<24} {:>9} {:>12} {:>16}",
                "product", "partition", "artifacts", "bytes"
            );
            for (p, t) in &tasks {
                let mut rows: Vec<_> = t.state.usage_by_product().iter().collect();
                rows.sort_by(|a, b| a.0.cmp(b.0));
                for (product, u) in rows {
                    println!("{product:<24} {p:>9} {:>12} {:>16}", u.artifacts, u.bytes);
                }
            }
            let count = tasks.len() as i32;
            let usage: serde_json::Map<String, serde_json::Value> = tasks
                .values()
                .flat_map(|t| t.state.usage_by_product().iter())
                .map(|(p, u)| {
                    (
                        p.clone(),
                        serde_json::json!({"artifacts": u.artifacts, "bytes": u.bytes}),
                    )
                })
                .collect();
            let redis = redis.target()?;
            let mut share =
                bhiv_bucket::gate::usage_share::UsageShare::new(redis.as_ref(), &names.intents);
            share.tick(tasks.iter_mut(), count);
            let detail = serde_json::json!({
                "partitions": count, "usage": usage, "republished_to_redis": redis.is_some(),
                "seconds": started.elapsed().as_secs_f64(),
            });
            rt.block_on(announce(
                &kafka,
                &suffix,
                "STATE_REBUILT",
                "bucket state rebuild",
                detail,
            ))?;
            println!(
                "rebuilt {count} partitions from {} in {:.2}s{}",
                names.audit,
                started.elapsed().as_secs_f64(),
                if redis.is_some() {
                    "; usage republished to Redis"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
