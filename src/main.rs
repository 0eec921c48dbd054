//! `bucket`: one binary for the gate, the sink and the tools around them. This file only parses
//! the command line (config file layered in) and dispatches; each command family lives in
//! `src/cli/`, with its arguments and its `run`.

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use bhiv_bucket::config::{self, ConfigError};
use clap::{CommandFactory, FromArgMatches};
use cli::runtime::init_tracing;
use cli::{Cli, Command};
use tracing::error;

fn main() -> ExitCode {
    let layered = match config::parse(Cli::command(), std::env::args_os()) {
        Ok(l) => l,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&layered.matches) {
        Ok(c) => c,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    if let Command::Bench(a) = &cli.command {
        // The benchmark is its own binary (`bucket-bench`, feature `bench`): this process is
        // replaced by it before it logs, reads secrets or starts a runtime.
        return cli::bench::forward(a, &layered.matches);
    }
    init_tracing(&cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    bhiv_bucket::kafka::security::install(cli.kafka_security.resolve()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Gate(a) => cli::gate::run(a, &rt),
        Command::Sink(a) => cli::sink::run(*a, &rt),
        Command::Api(a) => cli::api::run(a, &rt),
        Command::Topics(c) => cli::topics::run(c, &rt),
        Command::Acls(c) => cli::acls::run(c),
        Command::Schemas(c) => cli::schemas::run(c, &rt),
        Command::Policy(c) => cli::policy::run(c),
        Command::Produce(a) => cli::produce::run(a, &rt),
        Command::Audit(c) => cli::audit::run(c, &rt),
        Command::Keys(c) => cli::keys::run(c),
        Command::State(c) => cli::state::run(c, &rt),
        Command::Bench(_) => unreachable!("bucket bench is forwarded to bucket-bench in main"),
        Command::Config(c) => cli::config::run(c, cli.config.as_deref()),
    }
}
