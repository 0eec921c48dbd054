//! `bucket schemas`: register the approved Avro schemas of schemas/.

use std::process::ExitCode;

use anyhow::Result;
use bhiv_bucket::kafka::registry::Registry;
use clap::Subcommand;

use super::args::{KafkaArgs, RegistryArgs, TopicArgs};
use super::runtime::announce;

/// `bucket schemas`: register the approved schemas.
#[derive(Subcommand)]
pub(crate) enum SchemasCmd {
    /// Register the approved schemas of schemas/ and print their ids and fingerprints.
    Apply {
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        topics: TopicArgs,
    },
}

/// Registers the approved schemas and announces them on bucket.control.
pub(crate) fn run(cmd: SchemasCmd, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    match cmd {
        SchemasCmd::Apply {
            registry,
            kafka,
            topics,
        } => rt.block_on(async {
            let reg = Registry::new(&registry.registry_url)?;
            let applied = reg.apply_all().await?;
            let mut listed = Vec::new();
            for (schema, id) in applied {
                let (subject, file, fp) = (schema.subject, schema.file, &schema.fingerprint);
                println!("{subject:<24} id {id:<6} {file:<24} fingerprint {fp}");
                listed.push(serde_json::json!({
                    "subject": subject, "file": file, "id": id, "fingerprint": fp,
                }));
            }
            let detail = serde_json::json!({"registry": registry.registry_url, "schemas": listed});
            announce(
                &kafka,
                &topics,
                "SCHEMAS_APPLIED",
                "bucket schemas apply",
                detail,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}
