//! Layered configuration for any clap command tree: CLI flag > environment variable > config
//! file > built-in default.
//!
//! The file is TOML with one table per subcommand path (`[gate]`, `[sink]`, `[sink.purge]`, …)
//! and an optional `[common]` table applied to every command. Keys are the long flag names
//! (`brokers`, `commit-interval-ms`, …). Nothing here knows any particular flag: the file's
//! values become the clap defaults of the matching arguments before the real parse, so clap's
//! own precedence (command line, then `env`, then default) gives the layering, and every flag
//! added later is configurable with no extra code.
//!
//! Per run, the table of the exact subcommand path applies (`bucket sink purge` reads
//! `[sink.purge]`, not `[sink]`), and `[common]` fills what that table leaves unset; `[common]`
//! keys that are not flags of the running command are skipped. The whole file is validated on
//! every run: a table that names no subcommand, a key that is not a flag of its table's
//! subcommand (or, in `[common]`, of any subcommand), or a value of the wrong shape is refused
//! with the file and key named. Where a flag and a subcommand share a name (`bucket sink
//! --migrate` and `bucket sink migrate`), a scalar value is the flag and a table the subcommand.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The table applied to every command.
pub const COMMON_TABLE: &str = "common";

/// The id of the argument naming the config file (`--config`, env `BUCKET_CONFIG`).
pub const CONFIG_ARG: &str = "config";

/// Why a configuration could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line itself is wrong (or asks for help or the version).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The config file cannot be read.
    #[error("config file {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {file}: {message}")]
    Toml {
        /// The file.
        file: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A table names no subcommand.
    #[error("config file {file}: unknown table [{table}]: `{command}` has no subcommand {name:?}")]
    UnknownTable {
        /// The file.
        file: PathBuf,
        /// The dotted table name.
        table: String,
        /// The command whose subcommands were searched.
        command: String,
        /// The name that matched no subcommand.
        name: String,
    },
    /// A key is not a flag of its table's subcommand.
    #[error(
        "config file {file}: unknown key {key:?} in [{table}]: not a flag of `{command}` \
         (its flags: {known})"
    )]
    UnknownKey {
        /// The file.
        file: PathBuf,
        /// The dotted table name.
        table: String,
        /// The key.
        key: String,
        /// The command the table configures.
        command: String,
        /// The flags that command has, comma separated.
        known: String,
    },
    /// A value has the wrong shape or is refused by the flag's parser.
    #[error("config file {file}: [{table}] {key}: {reason}")]
    BadValue {
        /// The file.
        file: PathBuf,
        /// The dotted table name.
        table: String,
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given on the command line.
    Cli,
    /// Read from this environment variable.
    Env(String),
    /// Read from this table of the config file.
    File(String),
    /// The built-in default.
    Default,
    /// Not set at all (an optional flag).
    Unset,
}

impl Source {
    /// Short label: `cli`, `env`, `file`, `default` or `unset`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Env(_) => "env",
            Source::File(_) => "file",
            Source::Default => "default",
            Source::Unset => "unset",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(table) => write!(f, "file [{table}]"),
            other => f.write_str(other.kind()),
        }
    }
}

/// One effective setting of the command that runs, for `bucket config check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The long flag name (the config key).
    pub key: String,
    /// The value as text, secrets masked; several values are comma separated.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// The environment variable of the flag, if it has one.
    pub env: Option<String>,
}

/// The result of a layered parse.
#[derive(Debug)]
pub struct Layered {
    /// The matches: feed them to `FromArgMatches`.
    pub matches: ArgMatches,
    /// The subcommand path that runs (`["sink", "purge"]`).
    pub path: Vec<String>,
    /// The config file that was applied, if any.
    pub file: Option<PathBuf>,
    /// The command the matches were parsed with (file values set as defaults).
    command: Command,
    /// Argument id → table the file value came from.
    from_file: BTreeMap<String, String>,
}

/// Parses `args` with `cmd`, layering the config file named by `--config` (or its env var)
/// under the command line and environment.
pub fn parse<I, T>(cmd: Command, args: I) -> Result<Layered, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let probe = probe(&cmd, &args)?;
    let path = subcommand_path(&probe);
    let file = config_file(&probe);

    let mut cmd = cmd;
    let mut from_file = BTreeMap::new();
    if let Some(file) = &file {
        let doc = read(file)?;
        validate(&cmd, file, &doc)?;
        for (id, table, values) in assignments(&cmd, &path, &doc) {
            cmd = set_default(cmd, &path, &id, &values);
            from_file.insert(id, table);
        }
    }
    layered(cmd, &args, path, file, from_file)
}

/// Pass 1, forgiving: parses only to learn the subcommand path and the config file. A required
/// flag the file is about to supply must not fail here.
fn probe(cmd: &Command, args: &[OsString]) -> Result<ArgMatches, ConfigError> {
    Ok(cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args.iter().cloned())?)
}

/// Pass 2: parses `args` with the file's values set as defaults of `cmd`; a parse error caused
/// by a file value names the file and the key.
fn layered(
    mut cmd: Command,
    args: &[OsString],
    path: Vec<String>,
    file: Option<PathBuf>,
    from_file: BTreeMap<String, String>,
) -> Result<Layered, ConfigError> {
    let matches = match cmd.try_get_matches_from_mut(args.iter().cloned()) {
        Ok(m) => m,
        Err(e) => return Err(blame_file(e, file.as_deref(), &from_file, &cmd, &path)),
    };
    Ok(Layered {
        matches,
        path,
        file,
        command: cmd,
        from_file,
    })
}

/// Parses `args` with `cmd`, a program of its own that stands for the subcommand `table` of
/// `bucket` (`bucket-bench` is `bucket bench`): the file's `[common]` and `[<table>]` apply as
/// they would to that subcommand, `[<table>]` over `[common]`. `[<table>]` is checked against
/// `cmd`'s flags; the file's other tables, and `[common]` keys that are not flags of `cmd`, belong
/// to `bucket`'s commands and are checked there (`bucket config check`), not here.
pub fn parse_as<I, T>(cmd: Command, table: &str, args: I) -> Result<Layered, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let file = config_file(&probe(&cmd, &args)?);

    let mut cmd = cmd;
    let mut from_file = BTreeMap::new();
    if let Some(file) = &file {
        let doc = read(file)?;
        let mut assigned: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        {
            let own = flags(&cmd, &[], &cmd);
            for name in [COMMON_TABLE, table] {
                let Some(value) = doc.get(name) else {
                    continue;
                };
                let layer = value.as_table().ok_or_else(|| ConfigError::BadValue {
                    file: file.to_path_buf(),
                    table: "top level".to_string(),
                    key: name.to_string(),
                    reason: "settings go in a table: [common] or [<subcommand>]".to_string(),
                })?;
                for (key, value) in layer {
                    match long_of(&own, key) {
                        Some(arg) => {
                            let values =
                                values_of(arg, value).map_err(|reason| ConfigError::BadValue {
                                    file: file.to_path_buf(),
                                    table: name.to_string(),
                                    key: key.clone(),
                                    reason,
                                })?;
                            assigned.insert(arg.get_id().to_string(), (name.to_string(), values));
                        }
                        None if name == COMMON_TABLE => {}
                        None => {
                            return Err(ConfigError::UnknownKey {
                                file: file.to_path_buf(),
                                table: name.to_string(),
                                key: key.clone(),
                                command: command_name(&[name.to_string()]),
                                known: known(&own, key == CONFIG_ARG),
                            });
                        }
                    }
                }
            }
        }
        for (id, (name, values)) in assigned {
            cmd = set_default(cmd, &[], &id, &values);
            from_file.insert(id, name);
        }
    }
    layered(cmd, &args, Vec::new(), file, from_file)
}

impl Layered {
    /// The effective setting of every flag of the command that runs (its own flags, then the
    /// global ones), with sources and secrets masked.
    pub fn settings(&self) -> Vec<Setting> {
        let Some(leaf) = find(&self.command, &self.path) else {
            return Vec::new();
        };
        let mut m = &self.matches;
        for name in &self.path {
            match m.subcommand_matches(name) {
                Some(sub) => m = sub,
                None => break,
            }
        }
        let mut args = flags(&self.command, &self.path, leaf);
        // The command's own flags by name, then the global ones.
        args.sort_by_key(|a| (a.is_global_set(), a.get_long().unwrap_or_default()));
        args.into_iter()
            .map(|arg| {
                let id = arg.get_id().as_str();
                let key = arg.get_long().unwrap_or(id).to_string();
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let raw: Option<Vec<String>> = m.try_get_raw(id).ok().flatten().map(|vals| {
                    vals.map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                });
                let source = match m.value_source(id) {
                    Some(ValueSource::CommandLine) => Source::Cli,
                    Some(ValueSource::EnvVariable) => Source::Env(env.clone().unwrap_or_default()),
                    Some(ValueSource::DefaultValue) => match self.from_file.get(id) {
                        Some(table) => Source::File(table.clone()),
                        None => Source::Default,
                    },
                    _ => Source::Unset,
                };
                let value = raw.map(|v| mask(&key, &v.join(",")));
                Setting {
                    key,
                    value,
                    source,
                    env,
                }
            })
            .collect()
    }
}

/// Masks secrets for display: the whole value when the key names a token, password or secret,
/// otherwise the password of any `scheme://user:password@host` URL in it.
pub fn mask(key: &str, value: &str) -> String {
    let k = key.to_ascii_lowercase();
    if ["token", "password", "secret"]
        .iter()
        .any(|s| k.contains(s))
        && !value.is_empty()
    {
        return "****".to_string();
    }
    value
        .split(',')
        .map(mask_url_password)
        .collect::<Vec<_>>()
        .join(",")
}

fn mask_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) if colon + 1 < userinfo.len() => format!(
            "{}://{}:****{}",
            &value[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        _ => value.to_string(),
    }
}

fn subcommand_path(m: &ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut cur = m;
    while let Some((name, sub)) = cur.subcommand() {
        path.push(name.to_string());
        cur = sub;
    }
    path
}

/// The deepest value of the config argument (global args propagate to every level).
fn config_file(m: &ArgMatches) -> Option<PathBuf> {
    let mut found = None;
    let mut cur = Some(m);
    while let Some(level) = cur {
        if let Ok(Some(mut vals)) = level.try_get_raw(CONFIG_ARG)
            && let Some(v) = vals.next()
        {
            found = Some(PathBuf::from(v));
        }
        cur = level.subcommand().map(|(_, sub)| sub);
    }
    found
}

fn read(file: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Toml {
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

fn find<'a>(root: &'a Command, path: &[String]) -> Option<&'a Command> {
    let mut cur = root;
    for name in path {
        cur = cur.find_subcommand(name)?;
    }
    Some(cur)
}

/// The flags a table for `path` may set: the command's own long flags, then the global flags
/// of its ancestors, never the config file flag itself.
fn flags<'a>(root: &'a Command, path: &[String], leaf: &'a Command) -> Vec<&'a Arg> {
    let mut out: Vec<&Arg> = leaf
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .collect();
    let mut cur = root;
    let mut ancestors = vec![root];
    for name in path {
        match cur.find_subcommand(name) {
            Some(c) => {
                ancestors.push(c);
                cur = c;
            }
            None => break,
        }
    }
    ancestors.pop();
    for a in ancestors {
        for arg in a.get_arguments() {
            if arg.is_global_set()
                && arg.get_long().is_some()
                && !out.iter().any(|o| o.get_id() == arg.get_id())
            {
                out.push(arg);
            }
        }
    }
    out.retain(|a| !matches!(a.get_id().as_str(), CONFIG_ARG | "help" | "version"));
    out
}

fn long_of<'a>(args: &[&'a Arg], key: &str) -> Option<&'a Arg> {
    args.iter().copied().find(|a| a.get_long() == Some(key))
}

fn command_name(path: &[String]) -> String {
    let mut s = String::from("bucket");
    for p in path {
        s.push(' ');
        s.push_str(p);
    }
    s
}

fn validate(root: &Command, file: &Path, doc: &toml::Table) -> Result<(), ConfigError> {
    for (name, value) in doc {
        let table = value.as_table().ok_or_else(|| ConfigError::BadValue {
            file: file.to_path_buf(),
            table: "top level".to_string(),
            key: name.clone(),
            reason: "settings go in a table: [common] or [<subcommand>]".to_string(),
        })?;
        if name == COMMON_TABLE {
            validate_common(root, file, table)?;
        } else if let Some(sub) = root.find_subcommand(name) {
            // A subcommand that forwards its arguments to a program of its own (`bucket bench`
            // runs `bucket-bench`): that program checks its table (`parse_as`).
            if !forwards(sub) {
                validate_table(root, file, std::slice::from_ref(name), table)?;
            }
        } else {
            return Err(ConfigError::UnknownTable {
                file: file.to_path_buf(),
                table: name.clone(),
                command: "bucket".to_string(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// Whether a subcommand only forwards its arguments to another program: it has no flags of its
/// own, only a trailing list of arguments.
fn forwards(cmd: &Command) -> bool {
    cmd.get_arguments().any(Arg::is_trailing_var_arg_set)
        && !cmd
            .get_arguments()
            .any(|a| a.get_long().is_some_and(|l| l != "help"))
}

fn validate_table(
    root: &Command,
    file: &Path,
    path: &[String],
    table: &toml::Table,
) -> Result<(), ConfigError> {
    let Some(cmd) = find(root, path) else {
        return Ok(());
    };
    let args = flags(root, path, cmd);
    let dotted = path.join(".");
    for (key, value) in table {
        if let toml::Value::Table(sub) = value {
            if cmd.find_subcommand(key).is_some() {
                let mut p = path.to_vec();
                p.push(key.clone());
                validate_table(root, file, &p, sub)?;
                continue;
            }
            if long_of(&args, key).is_none() {
                return Err(ConfigError::UnknownTable {
                    file: file.to_path_buf(),
                    table: format!("{dotted}.{key}"),
                    command: command_name(path),
                    name: key.clone(),
                });
            }
        }
        match long_of(&args, key) {
            Some(arg) => {
                values_of(arg, value).map_err(|reason| ConfigError::BadValue {
                    file: file.to_path_buf(),
                    table: dotted.clone(),
                    key: key.clone(),
                    reason,
                })?;
            }
            None => {
                return Err(ConfigError::UnknownKey {
                    file: file.to_path_buf(),
                    table: dotted.clone(),
                    key: key.clone(),
                    command: command_name(path),
                    known: known(&args, key == CONFIG_ARG),
                });
            }
        }
    }
    Ok(())
}

fn known(args: &[&Arg], asked_for_config: bool) -> String {
    let mut list: Vec<&str> = args.iter().filter_map(|a| a.get_long()).collect();
    list.sort_unstable();
    let mut s = list.join(", ");
    if asked_for_config {
        s.push_str("; the config file cannot name another config file");
    }
    s
}

/// Every (path, flag) of the tree, for `[common]`.
fn all_flags(root: &Command) -> Vec<(Vec<String>, &Arg)> {
    fn walk<'a>(
        root: &'a Command,
        cmd: &'a Command,
        path: Vec<String>,
        out: &mut Vec<(Vec<String>, &'a Arg)>,
    ) {
        for a in flags(root, &path, cmd) {
            out.push((path.clone(), a));
        }
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(root, sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(root, root, Vec::new(), &mut out);
    out
}

fn validate_common(root: &Command, file: &Path, table: &toml::Table) -> Result<(), ConfigError> {
    let all = all_flags(root);
    for (key, value) in table {
        let mut found = false;
        for (_, arg) in all
            .iter()
            .filter(|(_, a)| a.get_long() == Some(key.as_str()))
        {
            found = true;
            values_of(arg, value).map_err(|reason| ConfigError::BadValue {
                file: file.to_path_buf(),
                table: COMMON_TABLE.to_string(),
                key: key.clone(),
                reason,
            })?;
        }
        if !found {
            let mut names: Vec<&str> = all.iter().filter_map(|(_, a)| a.get_long()).collect();
            names.sort_unstable();
            names.dedup();
            return Err(ConfigError::UnknownKey {
                file: file.to_path_buf(),
                table: COMMON_TABLE.to_string(),
                key: key.clone(),
                command: "any bucket subcommand".to_string(),
                known: names.join(", "),
            });
        }
    }
    Ok(())
}

/// Whether a flag takes more than one value (an array in the file).
fn is_multi(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_value_delimiter().is_some()
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1)
}

/// The file value as the strings clap would see on the command line.
fn values_of(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    fn scalar(v: &toml::Value) -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            toml::Value::Datetime(d) => Some(d.to_string()),
            toml::Value::Array(_) | toml::Value::Table(_) => None,
        }
    }
    let is_flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    if is_flag && !value.is_bool() {
        return Err(format!("a switch: true or false, not {value}"));
    }
    match value {
        toml::Value::Array(items) => {
            if !is_multi(arg) {
                return Err("takes one value, not an array".to_string());
            }
            items
                .iter()
                .map(|v| scalar(v).ok_or_else(|| format!("array items must be scalars, not {v}")))
                .collect()
        }
        toml::Value::Table(_) => Err("takes a value, not a table".to_string()),
        v => Ok(scalar(v).into_iter().collect()),
    }
}

/// (argument id, table name, values) to apply for the run of `path`: `[common]` first, then
/// the path's own table over it.
fn assignments(
    root: &Command,
    path: &[String],
    doc: &toml::Table,
) -> Vec<(String, String, Vec<String>)> {
    let Some(leaf) = find(root, path) else {
        return Vec::new();
    };
    let args = flags(root, path, leaf);
    let mut out: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut layer = |table: &toml::Table, name: &str| {
        for (key, value) in table {
            if value.is_table() && leaf.find_subcommand(key).is_some() {
                continue;
            }
            if let Some(arg) = long_of(&args, key)
                && let Ok(values) = values_of(arg, value)
            {
                out.insert(
                    arg.get_id().as_str().to_string(),
                    (name.to_string(), values),
                );
            }
        }
    };
    if let Some(common) = doc.get(COMMON_TABLE).and_then(toml::Value::as_table) {
        layer(common, COMMON_TABLE);
    }
    if !path.is_empty() {
        let mut t = Some(doc);
        for name in path {
            t = t.and_then(|t| t.get(name)).and_then(toml::Value::as_table);
        }
        if let Some(table) = t {
            layer(table, &path.join("."));
        }
    }
    out.into_iter().map(|(id, (t, v))| (id, t, v)).collect()
}

/// Sets `values` as the default of argument `id`, which lives on the command at `path` or, for
/// a global flag, on one of its ancestors.
fn set_default(cmd: Command, path: &[String], id: &str, values: &[String]) -> Command {
    let apply = |a: Arg| -> Arg {
        // A value from the file satisfies a required flag (clap would still ask for it).
        a.required(false).default_values(values.to_vec())
    };
    fn descend(
        cmd: Command,
        path: &[String],
        id: &str,
        apply: &dyn Fn(Arg) -> Arg,
    ) -> (Command, bool) {
        let own = cmd.get_arguments().any(|a| a.get_id() == id);
        if let Some((first, rest)) = path.split_first() {
            let mut done = false;
            let cmd = cmd.mut_subcommand(first, |sub| {
                let (sub, d) = descend(sub, rest, id, apply);
                done = d;
                sub
            });
            if done {
                return (cmd, true);
            }
            if own {
                return (cmd.mut_arg(id, apply), true);
            }
            (cmd, false)
        } else if own {
            (cmd.mut_arg(id, apply), true)
        } else {
            (cmd, false)
        }
    }
    descend(cmd, path, id, &apply).0
}

/// Rewrites a parse error caused by a file value so that it names the file and key.
fn blame_file(
    e: clap::Error,
    file: Option<&Path>,
    from_file: &BTreeMap<String, String>,
    cmd: &Command,
    path: &[String],
) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let (Some(file), Some(leaf)) = (file, find(cmd, path)) else {
        return ConfigError::Cli(e);
    };
    let Some(ContextValue::String(invalid)) = e.get(ContextKind::InvalidArg) else {
        return ConfigError::Cli(e);
    };
    let long = invalid
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_string();
    for arg in flags(cmd, path, leaf) {
        if arg.get_long() == Some(long.as_str())
            && let Some(table) = from_file.get(arg.get_id().as_str())
        {
            let rendered = e.to_string();
            let reason = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            return ConfigError::BadValue {
                file: file.to_path_buf(),
                table: table.clone(),
                key: long,
                reason,
            };
        }
    }
    ConfigError::Cli(e)
}

#[cfg(test)]
mod tests {
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
}
