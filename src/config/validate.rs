//! The whole file checked on every run: tables that name subcommands, keys that are their
//! flags (or, in `[common]`, any command's), values of the right shape.

use super::*;

pub(super) fn validate(root: &Command, file: &Path, doc: &toml::Table) -> Result<(), ConfigError> {
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
pub(super) fn forwards(cmd: &Command) -> bool {
    cmd.get_arguments().any(Arg::is_trailing_var_arg_set)
        && !cmd
            .get_arguments()
            .any(|a| a.get_long().is_some_and(|l| l != "help"))
}

pub(super) fn validate_table(
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

pub(super) fn known(args: &[&Arg], asked_for_config: bool) -> String {
    let mut list: Vec<&str> = args.iter().filter_map(|a| a.get_long()).collect();
    list.sort_unstable();
    let mut s = list.join(", ");
    if asked_for_config {
        s.push_str("; the config file cannot name another config file");
    }
    s
}

/// Every (path, flag) of the tree, for `[common]`.
pub(super) fn all_flags(root: &Command) -> Vec<(Vec<String>, &Arg)> {
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

pub(super) fn validate_common(
    root: &Command,
    file: &Path,
    table: &toml::Table,
) -> Result<(), ConfigError> {
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
pub(super) fn is_multi(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_value_delimiter().is_some()
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1)
}

/// The file value as the strings clap would see on the command line.
pub(super) fn values_of(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
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
