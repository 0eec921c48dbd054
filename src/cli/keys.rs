//! `bucket keys`: signing keys for integrations.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

/// `bucket keys`: generate an integration's keys.
#[derive(Subcommand)]
pub(crate) enum KeysCmd {
    /// Generate an Ed25519 key pair and an HMAC secret for an integration; prints the policy
    /// snippet. Private material goes to files in --out-dir, never to stdout.
    Generate {
        /// Integration id.
        #[arg(long)]
        integration: String,
        /// Directory for the private key files.
        #[arg(long)]
        out_dir: PathBuf,
        /// Ed25519 key id.
        #[arg(long, default_value = "ed1")]
        ed25519_id: String,
        /// HMAC key id.
        #[arg(long, default_value = "hm1")]
        hmac_id: String,
    },
}

/// Writes an integration's key files and prints its policy snippet.
pub(crate) fn run(cmd: KeysCmd) -> Result<ExitCode> {
    match cmd {
        KeysCmd::Generate {
            integration,
            out_dir,
            ed25519_id,
            hmac_id,
        } => {
            let (public, ed_path, hmac_path) =
                bhiv_bucket::ops::keys::generate(&integration, &out_dir, &ed25519_id, &hmac_id)?;
            println!(
                "# policy snippet for {integration} (secrets stay in {})",
                out_dir.display()
            );
            println!("[integrations.{integration}]");
            println!("products = [\"...\"]");
            println!("keys = [");
            println!(
                "  {{ id = \"{ed25519_id}\", alg = \"ed25519\", public_key = \"{public}\" }},"
            );
            println!(
                "  {{ id = \"{hmac_id}\", alg = \"hmac-sha256\", secret = \"file:{}\" }},",
                hmac_path.display()
            );
            println!("]");
            eprintln!("wrote {} and {}", ed_path.display(), hmac_path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
