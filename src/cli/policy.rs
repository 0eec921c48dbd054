//! `bucket policy`: validate a policy file and print its version.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::runtime::load_policy;

/// `bucket policy`: check a policy file.
#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Validate a policy file and print its version.
    Check {
        /// Policy file.
        #[arg(default_value = "deploy/policy.toml")]
        file: PathBuf,
    },
}

/// Validates a policy file and prints its version and size.
pub(crate) fn run(cmd: PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Check { file } => {
            let p = load_policy(&file)?;
            println!(
                "policy {} is valid: version {}, {} products, {} classes",
                file.display(),
                p.version,
                p.products.len(),
                p.classes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
