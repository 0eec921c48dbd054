//! `bucket acls`: Kafka ACLs as code (deploy/acls.toml), applied with Kafka's kafka-acls tool or
//! rendered as Strimzi `KafkaUser` resources.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::args::{KafkaArgs, TopicArgs};

/// `bucket acls`: apply the ACL declaration, or print it as Strimzi manifests.
#[derive(Subcommand)]
pub(crate) enum AclsCmd {
    /// Print Strimzi `KafkaUser` resources (one per principal, with its ACLs) of the
    /// declaration; deploy/k8s/base/kafka-users.yaml is this output with the defaults.
    Manifests {
        #[command(flatten)]
        topics: TopicArgs,
        /// Declaration file.
        #[arg(long, env = "BUCKET_ACLS", default_value = "deploy/acls.toml")]
        file: PathBuf,
        /// How the users authenticate: scram-sha-512 (SASL_SSL) or tls (mTLS).
        #[arg(long, value_enum, default_value = "scram-sha-512")]
        authentication: bhiv_bucket::ops::kafka_users::Authentication,
        /// Strimzi cluster the users belong to (the `strimzi.io/cluster` label).
        #[arg(long, default_value = "bucket")]
        cluster: String,
        /// Namespace of the resources ("" to leave it to kubectl).
        #[arg(long, default_value = "bhiv-bucket")]
        namespace: String,
        /// Write the manifests to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add every ACL of the declaration (idempotent), authenticated as the admin with the
    /// --kafka-* security flags; --brokers must be the listener those flags fit.
    Apply {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
        /// Declaration file.
        #[arg(long, env = "BUCKET_ACLS", default_value = "deploy/acls.toml")]
        file: PathBuf,
        /// The kafka-acls tool: program and leading arguments (any Kafka's bin/kafka-acls.sh).
        #[arg(
            long,
            env = "BUCKET_KAFKA_ACLS_CMD",
            default_value = "deploy/local/kafka-cli.sh acls"
        )]
        kafka_acls_cmd: String,
        /// Print the tool arguments instead of running them.
        #[arg(long)]
        dry_run: bool,
        /// Also remove the declared principals' ACLs that the declaration does not grant
        /// (without it they are only reported).
        #[arg(long)]
        prune: bool,
    },
}

/// Applies the ACL declaration through the kafka-acls tool.
pub(crate) fn run(cmd: AclsCmd) -> Result<ExitCode> {
    match cmd {
        AclsCmd::Manifests {
            topics,
            file,
            authentication,
            cluster,
            namespace,
            out,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let grants = bhiv_bucket::ops::acls::parse(&text)?;
            let yaml = bhiv_bucket::ops::kafka_users::strimzi_manifests(
                &grants,
                &cluster,
                &namespace,
                authentication,
                &topics.topic_suffix,
            );
            match out {
                Some(path) => {
                    std::fs::write(&path, yaml)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{yaml}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AclsCmd::Apply {
            kafka,
            topics,
            file,
            kafka_acls_cmd,
            dry_run,
            prune,
        } => acls_apply(
            &kafka,
            &topics.topic_suffix,
            &file,
            &kafka_acls_cmd,
            dry_run,
            prune,
        ),
    }
}

/// `bucket acls apply`: parse the declaration, add every grant through kafka-acls, then report
/// (or with `--prune` remove) the declared principals' ACLs the declaration does not grant.
fn acls_apply(
    kafka: &KafkaArgs,
    suffix: &str,
    file: &std::path::Path,
    tool: &str,
    dry_run: bool,
    prune: bool,
) -> Result<ExitCode> {
    use bhiv_bucket::ops::acls;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let grants = acls::parse(&text)?;
    if dry_run {
        for g in &grants {
            println!("{}", acls::add_args(g, suffix).join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tool = acls::AclTool {
        command: tool.split_whitespace().map(String::from).collect(),
        bootstrap: kafka.brokers.clone(),
        client_properties: bhiv_bucket::kafka::security::active()
            .and_then(|s| s.java_client_properties()),
    };
    for args in acls::apply(&tool, &grants, suffix)? {
        println!("applied  {}", args.join(" "));
    }
    let extra = acls::find_stale(&tool, &grants, suffix)?;
    const SHOWN: usize = 50;
    for b in extra.iter().take(SHOWN) {
        println!("not declared  {b}");
    }
    if extra.len() > SHOWN {
        println!("not declared  ... and {} more", extra.len() - SHOWN);
    }
    if extra.is_empty() {
        println!(
            "the declared principals hold no ACLs beyond {}",
            file.display()
        );
    } else if prune {
        for args in acls::remove(&tool, &extra)? {
            println!("removed  {}", args.join(" "));
        }
    } else {
        println!(
            "{} ACL(s) of declared principals are not in {}: review them, or re-run with --prune to remove them",
            extra.len(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
