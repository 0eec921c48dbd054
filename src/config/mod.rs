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

mod apply;
mod tree;
mod validate;

use apply::{assignments, blame_file, set_default};
use tree::{command_name, config_file, find, flags, long_of, read, subcommand_path};
use validate::{known, validate, values_of};

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

#[cfg(test)]
mod tests;
