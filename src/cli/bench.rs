//! `bucket bench`: the benchmark is a binary of its own, `bucket-bench` (Cargo feature `bench`),
//! so this binary and its image carry no plotting or benchmark code. The subcommand stays for
//! the people and scripts that type it: it runs `bucket-bench` from beside this executable with
//! the same arguments, or says how to build it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory};

use super::Cli;

/// The benchmark's binary, looked for beside `bucket`.
const BENCH_BIN: &str = "bucket-bench";

/// `bucket bench`: every argument goes to `bucket-bench` (`bucket-bench --help`).
#[derive(Args)]
#[command(disable_help_flag = true)]
pub(crate) struct BenchArgs {
    /// The arguments of `bucket-bench`, passed on as given (see `bucket-bench --help`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// Replaces this process with `bucket-bench` and the same arguments (the global flags given on
/// the command line, then the bench's own); without it, says how to build it and exits 2.
pub(crate) fn forward(a: &BenchArgs, matches: &ArgMatches) -> ExitCode {
    let mut argv = global_flags(matches);
    argv.extend(a.args.iter().cloned());
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BENCH_BIN)))
        .filter(|p| p.is_file());
    if let Some(bin) = beside {
        let err = std::process::Command::new(&bin).args(&argv).exec();
        eprintln!("error: cannot run {}: {err}", bin.display());
        return ExitCode::from(2);
    }
    let shown: Vec<String> = argv
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    eprintln!(
        "error: the benchmark is its own binary, {BENCH_BIN}, not built beside this one; run:\n  \
         cargo build --release --features bench --bin {BENCH_BIN} && target/release/{BENCH_BIN} {}",
        shown.join(" ")
    );
    ExitCode::from(2)
}

/// The global flags (`--config`, `--log-format`, the Kafka security flags) given on the command
/// line, as `--flag=value`. Values from the environment reach `bucket-bench` through the same
/// environment, and the config file is read there again.
fn global_flags(matches: &ArgMatches) -> Vec<OsString> {
    let mut out = Vec::new();
    for arg in Cli::command().get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else {
            continue;
        };
        if !arg.is_global_set()
            || !matches!(matches.value_source(id), Some(ValueSource::CommandLine))
        {
            continue;
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            out.push(OsString::from(format!("--{long}")));
            continue;
        }
        for value in matches.get_raw(id).into_iter().flatten() {
            let mut flag = OsString::from(format!("--{long}="));
            flag.push(value);
            out.push(flag);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::*;
    use crate::cli::Command;
    use crate::cli::tests::parse;

    /// The arguments `bucket <args>` hands to `bucket-bench`.
    fn forwarded(args: &[&str]) -> Vec<String> {
        let l = parse(args).expect("parse");
        let Command::Bench(a) = Cli::from_arg_matches(&l.matches).expect("cli").command else {
            panic!("not bench")
        };
        let mut argv = global_flags(&l.matches);
        argv.extend(a.args);
        argv.into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_argument_reaches_bucket_bench() {
        assert!(forwarded(&["bucket", "bench"]).is_empty());
        assert_eq!(
            forwarded(&["bucket", "bench", "--quick", "--out", "q/r.json", "--help"]),
            ["--quick", "--out", "q/r.json", "--help"]
        );
        assert_eq!(
            forwarded(&["bucket", "--log-format", "json", "bench", "--count", "5"]),
            ["--log-format=json", "--count", "5"]
        );
        assert_eq!(
            forwarded(&[
                "bucket",
                "bench",
                "--kafka-ssl-ca",
                "ca.pem",
                "--sig",
                "hmac"
            ]),
            ["--kafka-ssl-ca=ca.pem", "--sig", "hmac"]
        );
    }
}
