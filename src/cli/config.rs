//! `bucket config`: validate the config file; print a command's effective settings and their
//! sources.

use std::process::ExitCode;

use anyhow::Result;
use bhiv_bucket::config::{self, ConfigError};
use clap::{CommandFactory, Subcommand};

use super::Cli;

/// `bucket config`: check the config file and a command's settings.
#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Validate the config file and print the effective settings of a subcommand, each with its
    /// source (cli, env, file, default); secrets are masked. Example:
    /// `bucket --config deploy/bucket.toml config check gate --gate-id g1`.
    Check {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// The subcommand and its flags, as they would be run (none: only validate the file).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "SUBCOMMAND"
        )]
        command: Vec<String>,
    },
}

/// Checks the config file (`file`, the global --config) and prints a command's settings.
pub(crate) fn run(cmd: ConfigCmd, file: Option<&std::path::Path>) -> Result<ExitCode> {
    match cmd {
        ConfigCmd::Check { json, command } => config_check(file, json, command),
    }
}

/// `bucket config check`: parses `command` exactly as `bucket` would (same layering) and prints
/// each effective setting with its source.
fn config_check(
    file: Option<&std::path::Path>,
    json: bool,
    command: Vec<String>,
) -> Result<ExitCode> {
    let mut argv: Vec<std::ffi::OsString> = vec!["bucket".into()];
    if let Some(f) = file {
        argv.push("--config".into());
        argv.push(f.into());
    }
    let only_file = command.is_empty();
    argv.extend(command.into_iter().map(Into::into));
    if only_file {
        // Nothing to run: the file was already validated as a whole by the parse of this
        // command; report it.
        match file {
            Some(f) => println!("config file {}: valid", f.display()),
            None => println!("no config file (--config / BUCKET_CONFIG): nothing to check"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let layered = config::parse(Cli::command(), argv).map_err(|e| match e {
        ConfigError::Cli(c) => {
            let text = c.render().to_string();
            anyhow::anyhow!("{}", text.trim_start_matches("error: ").trim_end())
        }
        other => anyhow::Error::new(other),
    })?;
    let name = std::iter::once("bucket".to_string())
        .chain(layered.path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let settings = layered.settings();
    if json {
        let rows: Vec<serde_json::Value> = settings
            .iter()
            .map(|s| {
                serde_json::json!({
                    "key": s.key,
                    "value": s.value,
                    "source": s.source.kind(),
                    "from": s.source.to_string(),
                    "env": s.env,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "file": layered.file.as_ref().map(|f| f.display().to_string()),
            "command": name,
            "settings": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &layered.file {
        Some(f) => println!("config file {}: valid", f.display()),
        None => println!("no config file (--config / BUCKET_CONFIG)"),
    }
    println!("effective settings of `{name}` (flag > environment > file > default):");
    let kw = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let vw = settings
        .iter()
        .map(|s| s.value.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(0)
        .min(60);
    for s in &settings {
        println!(
            "  {:<kw$}  {:<vw$}  {}",
            s.key,
            match s.value.as_deref() {
                None => "-",
                Some("") => "\"\"",
                Some(v) => v,
            },
            s.source
        );
    }
    Ok(ExitCode::SUCCESS)
}
