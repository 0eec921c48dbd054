use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use super::*;

/// A small tree shaped like `bucket`'s (fields are read through `settings()`, not by name).
#[allow(dead_code)]
#[derive(Parser, Debug)]
#[command(name = "bucket")]
struct TestCli {
    #[arg(long, global = true, env = "BUCKET_TEST_CONFIG_FILE_UNSET")]
    config: Option<PathBuf>,
    #[arg(long, global = true, default_value = "human")]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[allow(dead_code)]
#[derive(Subcommand, Debug)]
enum Cmd {
    Gate {
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        #[arg(long, default_value_t = 100)]
        commit_interval_ms: u64,
        #[arg(long)]
        accepted_per_product: bool,
        #[arg(long, value_delimiter = ',')]
        payloads: Option<Vec<usize>>,
        #[arg(long)]
        admin_token: Option<String>,
        #[arg(long, default_value = "postgres://bucket:bucket@db:5432/bucket")]
        pg_url: String,
    },
    Sink {
        #[arg(long)]
        migrate: bool,
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        #[command(subcommand)]
        cmd: Option<SinkCmd>,
    },
    Keys {
        #[arg(long)]
        integration: String,
    },
}

#[allow(dead_code)]
#[derive(Subcommand, Debug)]
enum SinkCmd {
    Migrate {
        #[arg(long, default_value = "postgres://owner@db/bucket")]
        pg_url: String,
    },
    Purge {
        #[arg(long, default_value = "90d")]
        window: String,
    },
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn run(cfg: Option<&tempfile::NamedTempFile>, args: &[&str]) -> Result<Layered, ConfigError> {
    let mut argv: Vec<String> = vec!["bucket".into()];
    if let Some(f) = cfg {
        argv.push("--config".into());
        argv.push(f.path().display().to_string());
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    parse(TestCli::command(), argv)
}

fn setting(l: &Layered, key: &str) -> Setting {
    l.settings()
        .into_iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no setting {key}"))
}

fn gate(l: &Layered) -> (String, u64, bool, Option<Vec<usize>>) {
    use clap::FromArgMatches;
    match TestCli::from_arg_matches(&l.matches).expect("matches").cmd {
        Cmd::Gate {
            brokers,
            commit_interval_ms,
            accepted_per_product,
            payloads,
            ..
        } => (brokers, commit_interval_ms, accepted_per_product, payloads),
        other => panic!("not gate: {other:?}"),
    }
}

#[test]
fn the_test_cli_is_well_formed() {
    TestCli::command().debug_assert();
}

#[test]
fn without_a_file_the_defaults_hold() {
    let l = run(None, &["gate"]).expect("parse");
    assert_eq!(gate(&l), ("127.0.0.1:9092".into(), 100, false, None));
    assert_eq!(setting(&l, "brokers").source, Source::Default);
    assert_eq!(setting(&l, "payloads").source, Source::Unset);
    assert_eq!(l.path, vec!["gate".to_string()]);
}

#[test]
fn file_beats_default_and_cli_beats_file() {
    let f = file(
        "[gate]\nbrokers = \"kafka:9092\"\ncommit-interval-ms = 250\n\
         accepted-per-product = true\npayloads = [10, 20]\n",
    );
    let l = run(Some(&f), &["gate"]).expect("parse");
    assert_eq!(
        gate(&l),
        ("kafka:9092".into(), 250, true, Some(vec![10, 20]))
    );
    assert_eq!(
        setting(&l, "brokers").source,
        Source::File("gate".to_string())
    );
    assert_eq!(setting(&l, "payloads").value.as_deref(), Some("10,20"));

    let l = run(
        Some(&f),
        &["gate", "--brokers", "cli:9092", "--commit-interval-ms=5"],
    )
    .expect("parse");
    assert_eq!(gate(&l).0, "cli:9092");
    assert_eq!(gate(&l).1, 5);
    assert_eq!(setting(&l, "brokers").source, Source::Cli);
    assert_eq!(
        setting(&l, "commit-interval-ms").source,
        Source::Cli,
        "the file must not override the command line"
    );
}

#[test]
fn the_paths_table_beats_common_and_common_skips_foreign_flags() {
    let f = file(
        "[common]\nbrokers = \"common:9092\"\nlog-format = \"json\"\nwindow = \"30d\"\n\
         [gate]\nbrokers = \"gate:9092\"\n",
    );
    let l = run(Some(&f), &["gate"]).expect("parse");
    assert_eq!(gate(&l).0, "gate:9092");
    assert_eq!(
        setting(&l, "log-format").source,
        Source::File("common".into())
    );
    assert_eq!(setting(&l, "log-format").value.as_deref(), Some("json"));
    // `window` is a flag of `sink purge` only: valid in [common], ignored for gate.
    assert!(l.settings().iter().all(|s| s.key != "window"));
    let l = run(Some(&f), &["sink", "purge"]).expect("parse");
    assert_eq!(setting(&l, "window").value.as_deref(), Some("30d"));
    assert_eq!(setting(&l, "window").source, Source::File("common".into()));
}

#[test]
fn nested_tables_configure_subcommands_and_do_not_leak_upwards() {
    // A flag named like a subcommand (`sink --migrate` beside `sink migrate`): the scalar is
    // the flag, a table the subcommand (TOML cannot hold both in one file).
    let f = file("[sink]\nmigrate = true\n");
    let l = run(Some(&f), &["sink"]).expect("parse");
    assert_eq!(setting(&l, "migrate").value.as_deref(), Some("true"));
    assert_eq!(setting(&l, "migrate").source, Source::File("sink".into()));
    let f = file(
        "[sink]\nbrokers = \"s:9092\"\n\
         [sink.migrate]\npg-url = \"postgres://owner:pw@db/bucket\"\n\
         [sink.purge]\nwindow = \"7d\"\n",
    );
    let l = run(Some(&f), &["sink"]).expect("parse");
    assert_eq!(setting(&l, "migrate").source, Source::Default);
    assert_eq!(setting(&l, "brokers").value.as_deref(), Some("s:9092"));
    let l = run(Some(&f), &["sink", "migrate"]).expect("parse");
    assert_eq!(
        setting(&l, "pg-url").value.as_deref(),
        Some("postgres://owner:****@db/bucket")
    );
    assert_eq!(
        setting(&l, "pg-url").source,
        Source::File("sink.migrate".into())
    );
    let l = run(Some(&f), &["sink", "purge"]).expect("parse");
    assert_eq!(setting(&l, "window").value.as_deref(), Some("7d"));
    assert!(l.settings().iter().all(|s| s.key != "brokers"));
}

#[test]
fn a_file_value_satisfies_a_required_flag() {
    let f = file("[keys]\nintegration = \"gurukul-backend\"\n");
    let l = run(Some(&f), &["keys"]).expect("parse");
    assert_eq!(
        setting(&l, "integration").value.as_deref(),
        Some("gurukul-backend")
    );
    assert!(matches!(run(None, &["keys"]), Err(ConfigError::Cli(_))));
}

#[test]
fn unknown_keys_are_refused_with_key_and_file_named() {
    let f = file("[gate]\nbrokerz = \"kafka:9092\"\n");
    let e = run(Some(&f), &["gate"]).expect_err("must refuse");
    let msg = e.to_string();
    assert!(
        matches!(&e, ConfigError::UnknownKey { key, table, .. } if key == "brokerz" && table == "gate"),
        "{e:?}"
    );
    assert!(msg.contains("brokerz") && msg.contains(&f.path().display().to_string()));
    assert!(msg.contains("brokers"), "lists the valid flags: {msg}");

    // Refused even when another command runs: the whole file is checked.
    let e = run(Some(&f), &["sink"]).expect_err("must refuse");
    assert!(matches!(e, ConfigError::UnknownKey { .. }));

    // A flag of another subcommand is not a flag of this one.
    let f = file("[sink.purge]\nbrokers = \"x\"\n");
    let e = run(Some(&f), &["sink", "purge"]).expect_err("must refuse");
    assert!(
        matches!(&e, ConfigError::UnknownKey { table, .. } if table == "sink.purge"),
        "{e:?}"
    );

    let f = file("[common]\nno-such-flag = 1\n");
    assert!(matches!(
        run(Some(&f), &["gate"]),
        Err(ConfigError::UnknownKey { .. })
    ));
    let f = file("[gat]\nbrokers = \"x\"\n");
    assert!(matches!(
        run(Some(&f), &["gate"]),
        Err(ConfigError::UnknownTable { .. })
    ));
    let f = file("[sink.purj]\nwindow = \"1d\"\n");
    assert!(matches!(
        run(Some(&f), &["gate"]),
        Err(ConfigError::UnknownTable { .. })
    ));
    let f = file("brokers = \"top-level\"\n");
    assert!(matches!(
        run(Some(&f), &["gate"]),
        Err(ConfigError::BadValue { .. })
    ));
    let f = file("[gate]\nconfig = \"other.toml\"\n");
    assert!(matches!(
        run(Some(&f), &["gate"]),
        Err(ConfigError::UnknownKey { .. })
    ));
}

#[test]
fn bad_values_name_the_file_and_key() {
    let f = file("[gate]\ncommit-interval-ms = \"soon\"\n");
    let e = run(Some(&f), &["gate"]).expect_err("must refuse");
    assert!(
        matches!(&e, ConfigError::BadValue { key, .. } if key == "commit-interval-ms"),
        "{e:?}"
    );
    // The same bad value on the command line is the command line's error.
    let e = run(None, &["gate", "--commit-interval-ms", "soon"]).expect_err("refuse");
    assert!(matches!(e, ConfigError::Cli(_)));
    // Overridden on the command line, the bad file value is never parsed.
    assert!(run(Some(&f), &["gate", "--commit-interval-ms", "1"]).is_ok());

    for bad in [
        "[gate]\naccepted-per-product = \"yes\"\n",
        "[gate]\nbrokers = [\"a\", \"b\"]\n",
        "[gate]\npayloads = [[1]]\n",
    ] {
        let f = file(bad);
        assert!(
            matches!(run(Some(&f), &["gate"]), Err(ConfigError::BadValue { .. })),
            "{bad}"
        );
    }
    let f = file("[gate\n");
    assert!(matches!(
        run(Some(&f), &["gate"]),
        Err(ConfigError::Toml { .. })
    ));
    let missing = tempfile::tempdir().expect("dir");
    let argv = [
        "bucket".to_string(),
        "--config".into(),
        missing.path().join("nope.toml").display().to_string(),
        "gate".into(),
    ];
    assert!(matches!(
        parse(TestCli::command(), argv),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn secrets_are_masked() {
    let f = file("[gate]\nadmin-token = \"s3cr3t\"\n");
    let l = run(Some(&f), &["gate"]).expect("parse");
    assert_eq!(setting(&l, "admin-token").value.as_deref(), Some("****"));
    assert_eq!(
        setting(&l, "pg-url").value.as_deref(),
        Some("postgres://bucket:****@db:5432/bucket")
    );
    assert_eq!(
        mask("redis-url", "redis://:pw@r:6379/0"),
        "redis://:****@r:6379/0"
    );
    assert_eq!(mask("redis-url", "redis://r:6379"), "redis://r:6379");
    assert_eq!(
        mask("pg-url", "postgres://user@db/x"),
        "postgres://user@db/x"
    );
    assert_eq!(mask("brokers", "a:1,b:2"), "a:1,b:2");
    assert_eq!(mask("sasl-password", "pw"), "****");
    assert_eq!(mask("client-secret", ""), "");
    assert_eq!(
        mask("registry-url", "https://u:p@reg/apis?x=y@z"),
        "https://u:****@reg/apis?x=y@z"
    );
}

#[test]
fn help_and_version_still_reach_clap() {
    let e = run(None, &["gate", "--help"]).expect_err("help is an error value");
    assert!(
        matches!(e, ConfigError::Cli(ref c) if c.kind() == clap::error::ErrorKind::DisplayHelp)
    );
}

/// `bucket-bench` in small: a program of its own that stands for `bucket bench`.
#[derive(Parser, Debug)]
#[command(name = "bucket-bench")]
struct OwnProgram {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    count: Option<u64>,
    #[arg(long)]
    quick: bool,
}

fn own(cfg: &tempfile::NamedTempFile, args: &[&str]) -> Result<OwnProgram, ConfigError> {
    use clap::FromArgMatches;
    let path = cfg.path().display().to_string();
    let mut argv = vec!["bucket-bench", "--config", path.as_str()];
    argv.extend_from_slice(args);
    let l = parse_as(OwnProgram::command(), "bench", argv)?;
    Ok(OwnProgram::from_arg_matches(&l.matches).expect("matches"))
}

#[test]
fn a_program_of_its_own_reads_common_then_its_table_and_leaves_the_rest_alone() {
    // [common] has keys of other commands and [gate] is not this program's: both are left to
    // `bucket`; [bench] beats [common], the command line beats both.
    let f = file(
        "[common]\nbrokers = \"common:1\"\npolicy = \"p.toml\"\n[gate]\ngroup = \"g\"\n\
         [bench]\ncount = 7\nquick = true\n",
    );
    let p = own(&f, &[]).expect("parse");
    assert_eq!(
        (p.brokers.as_str(), p.count, p.quick),
        ("common:1", Some(7), true)
    );
    assert!(p.config.is_some());
    let p = own(&f, &["--count", "9"]).expect("parse");
    assert_eq!(p.count, Some(9));
    let f = file("[common]\nbrokers = \"common:1\"\n[bench]\nbrokers = \"bench:2\"\n");
    assert_eq!(own(&f, &[]).expect("parse").brokers, "bench:2");
}

#[test]
fn a_program_of_its_own_refuses_unknown_keys_and_bad_values_in_its_table() {
    let f = file("[bench]\nnope = 1\n");
    match own(&f, &[]) {
        Err(ConfigError::UnknownKey {
            table,
            key,
            command,
            ..
        }) => {
            assert_eq!((table.as_str(), key.as_str()), ("bench", "nope"));
            assert_eq!(command, "bucket bench");
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    let f = file("[bench]\ncount = \"many\"\n");
    match own(&f, &[]) {
        Err(ConfigError::BadValue { table, key, .. }) => {
            assert_eq!((table.as_str(), key.as_str()), ("bench", "count"));
        }
        other => panic!("expected BadValue, got {other:?}"),
    }
}

/// `bucket` with a subcommand that forwards its arguments (as `bucket bench` does).
#[derive(Parser, Debug)]
#[command(name = "bucket")]
struct Forwarding {
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: ForwardingCmd,
}

#[derive(Subcommand, Debug)]
enum ForwardingCmd {
    Gate {
        #[arg(long, default_value = "g")]
        group: String,
    },
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

#[test]
fn the_table_of_a_forwarding_subcommand_is_left_to_its_program() {
    let f = file("[gate]\ngroup = \"x\"\n[bench]\ncount = 7\n");
    let path = f.path().display().to_string();
    for args in [["gate"], ["bench"]] {
        let mut argv = vec!["bucket", "--config", path.as_str()];
        argv.extend_from_slice(&args);
        parse(Forwarding::command(), argv).expect("the [bench] table is not checked here");
    }
    let f = file("[gate]\nnope = 1\n");
    let path = f.path().display().to_string();
    let e = parse(
        Forwarding::command(),
        ["bucket", "--config", path.as_str(), "gate"],
    );
    assert!(matches!(e, Err(ConfigError::UnknownKey { .. })));
}
