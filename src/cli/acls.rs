//! `bucket acls`: Kafka ACLs as code (deploy/acls.toml), applied with Kafka's kafka-acls tool.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::args::{KafkaArgs, TopicArgs};

/// `bucket acls`: apply the ACL declaration.
#[derive(Subcommand)]
pub(crate) enum AclsCmd {
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
