//! `bucket api`: the read API over HTTP (docs/api.md, docs/openapi.json), product-scoped tokens.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bhiv_bucket::admin::config::AdminConfig;
use bhiv_bucket::api::{ApiConfig, ApiState, Reader};
use clap::Args;

use super::args::{AdminTokenArgs, ContentStoreArgs};
use super::runtime::shutdown_on_signals;

/// `bucket api`: where to listen, the reader role's URL and the tokens file.
#[derive(Args)]
pub(crate) struct ApiArgs {
    /// Address to listen on.
    #[arg(long, env = "BUCKET_API_LISTEN", default_value = "127.0.0.1:8088")]
    listen: std::net::SocketAddr,
    /// PostgreSQL URL (the read-only bucket_reader role).
    #[arg(
        long,
        env = "BUCKET_API_PG_URL",
        default_value = "postgres://bucket_reader:bucket_reader@127.0.0.1:5432/bucket"
    )]
    pg_url: String,
    /// Tokens file: SHA-256 hashes of product-scoped bearer tokens, their limits and the
    /// server's request bounds (docs/api.md, "Limits").
    #[arg(
        long,
        env = "BUCKET_API_TOKENS",
        default_value = "deploy/api-tokens.toml"
    )]
    tokens: PathBuf,
    /// The tiles directory of `bucket audit tiles`: serves checkpoints, hash tiles and
    /// product-scoped proof bundles (docs/api.md); without it those routes answer 404.
    #[arg(long, env = "BUCKET_API_TLOG_DIR")]
    tlog_dir: Option<PathBuf>,
    /// Bearer token of `/metrics` (without one, only loopback clients may read it).
    #[command(flatten)]
    admin: AdminTokenArgs,
    /// The object store versions keep their content in (read-only credentials suffice).
    #[command(flatten)]
    content: ContentStoreArgs,
    /// Print the SHA-256 line for a token (to add to the tokens file) and exit.
    #[arg(long, value_name = "TOKEN")]
    hash_token: Option<String>,
}

/// Serves the read API until SIGINT/SIGTERM (or prints a token hash with --hash-token).
pub(crate) fn run(a: ApiArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    rt.block_on(api(rt, a))
}

async fn api(rt: &tokio::runtime::Runtime, a: ApiArgs) -> Result<ExitCode> {
    if let Some(token) = a.hash_token {
        println!("sha256 = \"{}\"", bhiv_bucket::api::hash_token(&token));
        return Ok(ExitCode::SUCCESS);
    }
    let config = ApiConfig::load(&a.tokens)?;
    if config.tokens.is_empty() {
        bail!(
            "tokens file {} has no tokens; every request would be refused",
            a.tokens.display()
        );
    }
    let reader = Reader::connect(&a.pg_url)
        .await
        .context("connecting the read API to PostgreSQL (is the schema migrated?)")?;
    // The token may be a literal, env:NAME or file:PATH, like the admin servers'.
    let metrics_token = AdminConfig::parse("off", a.admin.admin_token.as_deref())?.token;
    let mut state = ApiState::new(reader, config, a.tlog_dir);
    state.metrics_token = metrics_token.map(Arc::from);
    state.objects = a.content.open()?;
    let shutdown = shutdown_on_signals(rt);
    bhiv_bucket::api::serve(a.listen, state, shutdown, None).await?;
    Ok(ExitCode::SUCCESS)
}
