//! The file's values applied as clap defaults of the running command, and a refusal traced back
//! to the file key that caused it.

use super::*;

/// (argument id, table name, values) to apply for the run of `path`: `[common]` first, then
/// the path's own table over it.
pub(super) fn assignments(
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
pub(super) fn set_default(cmd: Command, path: &[String], id: &str, values: &[String]) -> Command {
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
pub(super) fn blame_file(
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
