//! Tests of the whole command line: its shape, and the config file layered onto it. The
//! families' own tests (file values reaching their typed arguments) use the helpers here.

use bhiv_bucket::config::{self, ConfigError};
use clap::{CommandFactory, FromArgMatches};

use super::config::ConfigCmd;
use super::{Cli, Command};

#[test]
fn the_cli_is_well_formed() {
    Cli::command().debug_assert();
}

/// Parses `args` exactly as `bucket` does (config layering included).
pub(super) fn parse(args: &[&str]) -> Result<config::Layered, ConfigError> {
    config::parse(Cli::command(), args.iter().copied())
}

/// The command `bucket --config F <args>` parses to, F setting [common] brokers, two [gate]
/// keys and two [sink.purge] keys.
pub(super) fn command_with_file(args: &[&str]) -> Command {
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path().join("b.toml");
    std::fs::write(
        &f,
        "[common]\nbrokers = \"common:9092\"\n\
         [gate]\ncommit-interval-ms = 7\naccepted-per-product = true\n\
         [sink.purge]\nwindow = \"30d\"\ndry-run = true\n",
    )
    .expect("write");
    let f = f.display().to_string();
    let mut argv = vec!["bucket", "--config", &f];
    argv.extend_from_slice(args);
    let l = parse(&argv).expect("parse");
    Cli::from_arg_matches(&l.matches).expect("cli").command
}

#[test]
fn the_shipped_config_file_checks_clean_for_every_table() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/bucket.toml");
    let doc: toml::Table = std::fs::read_to_string(file)
        .expect("deploy/bucket.toml")
        .parse()
        .expect("TOML");
    let mut paths = Vec::new();
    fn tables(t: &toml::Table, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for (k, v) in t {
            if let Some(sub) = v.as_table() {
                let mut p = prefix.to_vec();
                p.push(k.clone());
                if k != config::COMMON_TABLE && sub.values().any(|v| !v.is_table()) {
                    out.push(p.clone());
                }
                tables(sub, &p, out);
            }
        }
    }
    tables(&doc, &[], &mut paths);
    assert!(paths.len() > 3, "the example configures several commands");
    for path in paths {
        let mut argv = vec!["bucket", "--config", file];
        argv.extend(path.iter().map(String::as_str));
        // Required flags of tools are not the file's business.
        if path == ["keys", "generate"] {
            continue;
        }
        let l = parse(&argv).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        Cli::from_arg_matches(&l.matches).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(
            l.settings()
                .iter()
                .any(|s| matches!(s.source, config::Source::File(_))),
            "{path:?}: the file sets something"
        );
    }
}

#[test]
fn config_check_takes_its_own_flags_before_the_command() {
    let l = parse(&[
        "bucket",
        "config",
        "check",
        "--json",
        "gate",
        "--brokers",
        "x:1",
    ])
    .expect("parse");
    let Command::Config(ConfigCmd::Check { json, command }) =
        Cli::from_arg_matches(&l.matches).expect("cli").command
    else {
        panic!("not config check")
    };
    assert!(json);
    assert_eq!(command, ["gate", "--brokers", "x:1"]);
}
