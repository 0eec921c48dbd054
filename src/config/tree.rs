//! Walking the clap command tree and reading the file: which subcommand runs, which flags it
//! has, where the config file is and what it holds.

use super::*;

pub(super) fn subcommand_path(m: &ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut cur = m;
    while let Some((name, sub)) = cur.subcommand() {
        path.push(name.to_string());
        cur = sub;
    }
    path
}

/// The deepest value of the config argument (global args propagate to every level).
pub(super) fn config_file(m: &ArgMatches) -> Option<PathBuf> {
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

pub(super) fn read(file: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Toml {
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

pub(super) fn find<'a>(root: &'a Command, path: &[String]) -> Option<&'a Command> {
    let mut cur = root;
    for name in path {
        cur = cur.find_subcommand(name)?;
    }
    Some(cur)
}

/// The flags a table for `path` may set: the command's own long flags, then the global flags
/// of its ancestors, never the config file flag itself.
pub(super) fn flags<'a>(root: &'a Command, path: &[String], leaf: &'a Command) -> Vec<&'a Arg> {
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

pub(super) fn long_of<'a>(args: &[&'a Arg], key: &str) -> Option<&'a Arg> {
    args.iter().copied().find(|a| a.get_long() == Some(key))
}

pub(super) fn command_name(path: &[String]) -> String {
    let mut s = String::from("bucket");
    for p in path {
        s.push(' ');
        s.push_str(p);
    }
    s
}
