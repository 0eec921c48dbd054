//! `bucket topics`: topics as code (create missing, report drift) and their Strimzi manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bhiv_bucket::ops::topics::{self, TopicStatus};
use clap::Subcommand;

use super::args::{KafkaArgs, TopicArgs};
use super::runtime::announce;

/// `bucket topics`: apply the declaration, or print its Kubernetes manifests.
#[derive(Subcommand)]
pub(crate) enum TopicsCmd {
    /// Create missing topics; report drift on existing ones without changing them.
    Apply {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Declaration file (defaults to the compiled-in topics/topics.toml).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Profile overriding replication (e.g. `local` for one broker).
        #[arg(long, env = "BUCKET_TOPICS_PROFILE")]
        profile: Option<String>,
        /// Exit non-zero when drift is found.
        #[arg(long)]
        strict: bool,
    },
    /// Print Kubernetes manifests of the declared topics (Strimzi `KafkaTopic` resources);
    /// deploy/k8s/base/topics.yaml is this output with the defaults.
    Manifests {
        #[command(flatten)]
        topics: TopicArgs,
        /// Manifest format.
        #[arg(long, default_value = "strimzi", value_parser = ["strimzi"])]
        format: String,
        /// Declaration file (defaults to the compiled-in topics/topics.toml).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Profile overriding replication (e.g. `local` for one broker).
        #[arg(long)]
        profile: Option<String>,
        /// Strimzi cluster the topics belong to (the `strimzi.io/cluster` label).
        #[arg(long, default_value = "bucket")]
        cluster: String,
        /// Namespace of the resources ("" to leave it to kubectl).
        #[arg(long, default_value = "bhiv-bucket")]
        namespace: String,
        /// Write the manifests to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Applies the topic declaration to the cluster, or renders it as manifests.
pub(crate) fn run(cmd: TopicsCmd, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    match cmd {
        TopicsCmd::Apply {
            kafka,
            topics: suffix,
            file,
            profile,
            strict,
        } => rt.block_on(async {
            let text = match file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                None => topics::DEFAULT_DECLARATION.to_string(),
            };
            let mut specs = topics::parse(&text, profile.as_deref())?;
            for s in &mut specs {
                s.name.push_str(&suffix.topic_suffix);
            }
            let mut drift = false;
            let (mut created, mut drifted) = (Vec::new(), serde_json::Map::new());
            for (name, status) in topics::apply(&kafka.brokers, &specs).await? {
                match status {
                    TopicStatus::Created => {
                        println!("created    {name}");
                        created.push(name);
                    }
                    TopicStatus::UpToDate => println!("up to date {name}"),
                    TopicStatus::Drift(d) => {
                        drift = true;
                        println!("DRIFT      {name} (left unchanged)");
                        for line in &d {
                            println!("           - {line}");
                        }
                        drifted.insert(name, serde_json::json!(d));
                    }
                }
            }
            if !created.is_empty() {
                let detail = serde_json::json!({"created": created});
                announce(
                    &kafka,
                    &suffix,
                    "TOPICS_CREATED",
                    "bucket topics apply",
                    detail,
                )
                .await?;
            }
            if !drifted.is_empty() {
                let detail = serde_json::json!({"drift": drifted});
                announce(
                    &kafka,
                    &suffix,
                    "TOPIC_DRIFT",
                    "bucket topics apply",
                    detail,
                )
                .await?;
            }
            Ok(if drift && strict {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }),
        TopicsCmd::Manifests {
            topics: suffix,
            format: _,
            file,
            profile,
            cluster,
            namespace,
            out,
        } => {
            let text = match file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                None => topics::DEFAULT_DECLARATION.to_string(),
            };
            let mut specs = topics::parse(&text, profile.as_deref())?;
            for s in &mut specs {
                s.name.push_str(&suffix.topic_suffix);
            }
            let yaml = topics::strimzi_manifests(&specs, &cluster, &namespace);
            match out {
                Some(path) => {
                    std::fs::write(&path, yaml)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {} ({} topics)", path.display(), specs.len());
                }
                None => print!("{yaml}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
