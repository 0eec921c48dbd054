//! Docs that state a fact the code also states fail here when the two drift apart. No servers:
//! the test reads the docs and either the library or the built `bucket` binary's `--help`.
//!
//! - `readme_command_list_matches_the_cli`: every subcommand path of `bucket` (walked through
//!   `--help`, since the clap types live in the binary crate) is a command of README.md's list,
//!   and every command of that list is a subcommand path.
//! - `cited_adrs_exist`: every "ADR NNNN" / "ADR NN" in topics/, README.md and docs/ (with
//!   subfolders), and every link to docs/decisions/, names a file in docs/decisions/; the state
//!   changelog topic cites the ADR whose title is the state changelog.
//! - `reason_codes_match_their_page`: the `ReasonCode` enum (its source and `ReasonCode::ALL`)
//!   and the table of docs/reason-codes.md list the same codes.
//! - `flags_without_environment_variables_are_listed`: the runbook's table of flags without an
//!   environment variable is exactly what `--help` shows.
//! - `flag_tables_give_each_flag_its_variable`: in every docs table with a flag column and an
//!   environment column (README.md, deploy/local/README.md, docs/), each variable is the
//!   `[env: …]` of that row's flag in some command, and each flag that has one names it.
//! - `documented_environment_variables_are_read`: every `BUCKET_*` the docs name (`{a,b}` and
//!   `*` forms included) is read by something: a flag of the binary, code that reads it by name
//!   (`env::var("…")`, clap's `env = "…"`, the clients' `Getenv`/`getenv`/`environ`), or a
//!   script under deploy/ (the stack's ports, versions and directories, the demo and fault knobs).
//! - `rejection_headers_are_in_the_wire_contract`: every `bucket.errors.*` header the code
//!   names is in docs/wire-contract.md's header table, and every header there is the code's.
//! - `header_names_are_in_the_wire_contract`: every header name or prefix src/wire/headers.rs
//!   declares (signature, trace context, the gate's and the renamed producer prefix) is in
//!   docs/wire-contract.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bhiv_bucket::core::ReasonCode;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: impl AsRef<Path>) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} doc drift(s):\n- {}",
        problems.len(),
        problems.join("\n- ")
    );
}

// ---- the CLI, through --help ----------------------------------------------------------------

/// One option of a `--help` page: its long name and the environment variable it shows, if any.
struct Opt {
    name: String,
    env: Option<String>,
}

/// `bucket <path> --help`: the subcommands (clap's own `help` left out) and the options.
fn help(path: &[String]) -> (Vec<String>, Vec<Opt>) {
    // `bucket bench` forwards its arguments, --help included, to the bucket-bench binary when
    // one is built beside `bucket` (its flags are that binary's own): a leaf, whatever is built.
    if path == ["bench"] {
        return (Vec::new(), Vec::new());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bucket"))
        .args(path)
        .arg("--help")
        .env_remove("BUCKET_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run bucket --help");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut subs = Vec::new();
    let mut opts: Vec<Opt> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        match section {
            "Commands:" => {
                // "  name  description"; continuation lines are indented further.
                if let Some(rest) = line.strip_prefix("  ")
                    && !rest.starts_with(' ')
                    && let Some(name) = rest.split_whitespace().next()
                    && name != "help"
                {
                    subs.push(name.to_string());
                }
            }
            "Options:" => {
                // An option starts at 2 or 6 spaces; its description (and its `[env: …]`)
                // follows, further indented in the long help.
                let t = line.trim_start();
                let indent = line.len() - t.len();
                let t = t
                    .strip_prefix("-h, ")
                    .or(t.strip_prefix("-V, "))
                    .unwrap_or(t);
                if (2..=6).contains(&indent) && t.starts_with("--") {
                    let name: String = t[2..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    // clap's own --help and --version (a `--version <VERSION>` is a real flag).
                    let own = name == "help" || (name == "version" && !t.contains('<'));
                    opts.push(Opt {
                        name: if own { String::new() } else { name },
                        env: None,
                    });
                }
                // `[env: NAME=value]`, or `[env: NAME]` when the value is hidden.
                if let Some((_, rest)) = line.split_once("[env: ")
                    && let Some(o) = opts.last_mut()
                {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    o.env = Some(name);
                }
            }
            _ => {}
        }
    }
    opts.retain(|o| !o.name.is_empty());
    (subs, opts)
}

/// Every subcommand path of `bucket` (the root is the empty path), with its options.
fn cli_tree() -> Vec<(Vec<String>, Vec<Opt>)> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let (subs, opts) = help(&path);
        for s in subs {
            let mut p = path.clone();
            p.push(s);
            todo.push(p);
        }
        out.push((path, opts));
    }
    assert!(
        out.len() > 20,
        "the --help walk found only {} commands: is the help format still clap's?",
        out.len()
    );
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The command column of README.md's command list: the first ```text block of "## The binary",
/// each line that starts with `bucket ` up to the gap before its description.
fn readme_commands() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## The binary")
        .nth(1)
        .expect("README.md has a \"## The binary\" section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```text block in \"## The binary\"");
    block
        .lines()
        .filter(|l| l.starts_with("bucket "))
        .map(|l| l.split("  ").next().unwrap_or(l).trim().to_string())
        .collect()
}

#[test]
fn readme_command_list_matches_the_cli() {
    let listed = readme_commands();
    let tree = cli_tree();
    let paths: BTreeSet<String> = tree
        .iter()
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, _)| format!("bucket {}", p.join(" ")))
        .collect();
    let mut problems = Vec::new();
    for p in &paths {
        let covered = listed.iter().any(|c| {
            c == p
                || c.strip_prefix(p.as_str())
                    .is_some_and(|r| r.starts_with(' '))
        });
        if !covered {
            problems.push(format!("`{p}` is missing from README.md's command list"));
        }
    }
    for c in &listed {
        if !paths.contains(c) {
            problems.push(format!(
                "README.md lists `{c}`, which is not a command of the binary"
            ));
        }
    }
    fail_on(problems);
}

#[test]
fn flags_without_environment_variables_are_listed() {
    let mut actual = BTreeSet::new();
    for (path, opts) in cli_tree() {
        for o in opts.iter().filter(|o| o.env.is_none()) {
            actual.insert((
                format!("bucket {}", path.join(" ")).trim().to_string(),
                o.name.clone(),
            ));
        }
    }
    let runbook = read("docs/runbook.md");
    let section = runbook
        .split("\n### Flags without an environment variable")
        .nth(1)
        .expect("docs/runbook.md has \"### Flags without an environment variable\"");
    let section = section.split("\n#").next().unwrap_or(section);
    let mut documented = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `bucket")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let cmd = cells[1].trim_matches('`').to_string();
        for flag in cells[2].split(',') {
            let flag = flag.trim().trim_matches('`').trim_start_matches("--");
            documented.insert((cmd.clone(), flag.to_string()));
        }
    }
    let mut problems = Vec::new();
    for (cmd, flag) in actual.difference(&documented) {
        problems.push(format!(
            "`{cmd} --{flag}` has no environment variable but is not in docs/runbook.md's table"
        ));
    }
    for (cmd, flag) in documented.difference(&actual) {
        problems.push(format!(
            "docs/runbook.md lists `{cmd} --{flag}` as having no environment variable; \
             the binary has no such flag or gives it one"
        ));
    }
    fail_on(problems);
}

/// Every flag of the binary (in any command) → the environment variables it shows (`None`: a
/// command where it has none).
fn flag_vars() -> BTreeMap<String, BTreeSet<Option<String>>> {
    let mut out: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    for (_, opts) in cli_tree() {
        for o in opts {
            out.entry(o.name).or_default().insert(o.env);
        }
    }
    out
}

/// The text of each backticked span of `cell` outside parentheses (a remark such as "(`--gate-id`
/// still accepted)" is not the row's flag).
fn code_spans(cell: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The leading characters of `s` that `ok` accepts.
fn word(s: &str, ok: impl Fn(char) -> bool) -> String {
    s.chars().take_while(|c| ok(*c)).collect()
}

/// One body row of a table with a flag column and an environment column.
struct FlagRow {
    file: String,
    flags: Vec<String>,
    vars: Vec<String>,
}

/// The rows of every table in `file` whose header has a `flag` column and an `env` or
/// `environment` column.
fn flag_rows(file: &str) -> Vec<FlagRow> {
    let text = read(file);
    let lines: Vec<&str> = text.lines().collect();
    let cells = |l: &str| -> Vec<String> {
        let l = l.trim().replace("\\|", "\u{1}");
        let l = l.trim_start_matches('|').trim_end_matches('|');
        l.split('|')
            .map(|c| c.trim().replace('\u{1}', "|"))
            .collect()
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < lines.len() {
        let header = cells(lines[i]);
        let is_table = lines[i].starts_with('|') && lines[i + 1].starts_with("| ---");
        let flag_col = header.iter().position(|c| c == "flag");
        let env_col = header.iter().position(|c| c == "env" || c == "environment");
        let (true, Some(f), Some(e)) = (is_table, flag_col, env_col) else {
            i += 1;
            continue;
        };
        i += 2;
        while i < lines.len() && lines[i].starts_with('|') {
            let row = cells(lines[i]);
            let span = |col: usize| code_spans(row.get(col).map_or("", String::as_str));
            out.push(FlagRow {
                file: file.to_string(),
                flags: span(f)
                    .iter()
                    .filter_map(|s| s.strip_prefix("--"))
                    .map(|s| word(s, |c| c.is_ascii_alphanumeric() || c == '-'))
                    .collect(),
                vars: span(e)
                    .iter()
                    .filter(|s| s.starts_with("BUCKET_"))
                    .map(|s| word(s, |c| c.is_ascii_alphanumeric() || c == '_'))
                    .collect(),
            });
            i += 1;
        }
    }
    out
}

/// The documents that name environment variables.
fn doc_pages() -> Vec<String> {
    let mut files = vec![
        "README.md".to_string(),
        "deploy/local/README.md".to_string(),
    ];
    files.extend(files_under("docs", &|n| n.ends_with(".md")));
    files
}

#[test]
fn flag_tables_give_each_flag_its_variable() {
    let cli = flag_vars();
    let rows: Vec<FlagRow> = doc_pages().iter().flat_map(|f| flag_rows(f)).collect();
    assert!(
        rows.len() >= 30,
        "found only {} rows of flag/environment tables in the docs",
        rows.len()
    );
    let mut problems = Vec::new();
    for r in &rows {
        let flags: Vec<String> = r.flags.iter().map(|f| format!("`--{f}`")).collect();
        for f in &r.flags {
            let Some(vars) = cli.get(f) else {
                problems.push(format!("{}: `--{f}` is not a flag of any command", r.file));
                continue;
            };
            let has: Vec<&String> = vars.iter().flatten().collect();
            if !has.is_empty() && !has.iter().any(|v| r.vars.contains(v)) {
                problems.push(format!(
                    "{}: the row of `--{f}` does not name its variable ({})",
                    r.file,
                    has.iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for v in &r.vars {
            let read_by_row = r
                .flags
                .iter()
                .any(|f| cli.get(f).is_some_and(|vs| vs.contains(&Some(v.clone()))));
            if !read_by_row {
                problems.push(format!(
                    "{}: `{v}` is not the variable of {} in any command",
                    r.file,
                    if flags.is_empty() {
                        "a flag (the row names none)".to_string()
                    } else {
                        flags.join(", ")
                    }
                ));
            }
        }
    }
    fail_on(problems);
}

/// The `BUCKET_*` names in `text`: `BUCKET_{PG,S3}_PORT` gives both names, and a `*` is kept as
/// a wildcard (`BUCKET_LOCAL_PG_*_PASSWORD`). A bare prefix (`BUCKET_`) is not a name.
fn bucket_vars(text: &str) -> Vec<String> {
    fn expand(t: &str) -> Vec<String> {
        let Some(open) = t.find('{') else {
            return vec![t.to_string()];
        };
        let Some(close) = t[open..].find('}').map(|c| open + c) else {
            return vec![t[..open].to_string()];
        };
        t[open + 1..close]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{alt}{}", &t[..open], &t[close + 1..])))
            .collect()
    }
    let mut out = Vec::new();
    for (i, _) in text.match_indices("BUCKET_") {
        if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let mut end = i;
        let mut depth = 0;
        for c in text[i..].chars() {
            match c {
                'A'..='Z' | '0'..='9' | '_' | '*' => {}
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                ',' if depth > 0 => {}
                _ => break,
            }
            end += c.len_utf8();
        }
        out.extend(
            expand(&text[i..end])
                .into_iter()
                .filter(|n| !n.ends_with('_')),
        );
    }
    out
}

/// `*` in `pattern` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == name;
    }
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// How code reads a variable whose name is the string literal that follows: Rust, Go, Java,
/// Python, and clap's `env = "…"` and a named constant (`const …_ENV: &str = "…"`).
const READERS: [&str; 10] = [
    "env::var(",
    "env::var_os(",
    "env = ",
    "&str = ",
    "Getenv(",
    "getenv(",
    "getOrDefault(",
    "env.get(",
    "environ.get(",
    "environ[",
];

/// The variables something reads: the binary's `[env: …]`, a string literal read by the code
/// (src/, benches/, tests/, clients/), or a name used on a non-comment line of a script under
/// deploy/ (the local stack, demo, tests and faults scripts have variables of their own).
fn read_vars() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = flag_vars().into_values().flatten().flatten().collect();
    let code = |n: &str| {
        [".rs", ".go", ".py", ".java"]
            .iter()
            .any(|e| n.ends_with(e))
    };
    for dir in ["src", "benches", "tests", "clients"] {
        for f in files_under(dir, &code) {
            if f == "tests/doc_drift.rs" {
                continue;
            }
            for line in read(&f).lines() {
                for (i, _) in line.match_indices("\"BUCKET_") {
                    let before = &line[..i];
                    // Go's `env("NAME", default)` helper, not Rust's `Command::env` setter.
                    let go_helper = before.ends_with("env(")
                        && !before[..before.len() - 4]
                            .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_');
                    if go_helper || READERS.iter().any(|r| before.ends_with(r)) {
                        out.insert(word(&line[i + 1..], |c| {
                            c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
                        }));
                    }
                }
            }
        }
    }
    for f in files_under("deploy", &|n| n.ends_with(".sh")) {
        for line in read(&f).lines() {
            if !line.trim_start().starts_with('#') {
                out.extend(bucket_vars(line));
            }
        }
    }
    out
}

#[test]
fn documented_environment_variables_are_read() {
    let known = read_vars();
    assert!(
        known.len() >= 100,
        "found only {} variables that the binary, code or scripts read",
        known.len()
    );
    let mut problems = BTreeSet::new();
    let mut named = 0;
    for f in doc_pages() {
        for v in bucket_vars(&read(&f)) {
            named += 1;
            if !known.iter().any(|k| glob(&v, k)) {
                problems.insert(format!(
                    "{f} names `{v}`, which no flag of the binary, code or script under deploy/ reads"
                ));
            }
        }
    }
    assert!(
        named >= 200,
        "the docs name only {named} BUCKET_* variables"
    );
    fail_on(problems.into_iter().collect());
}

// ---- ADR citations ---------------------------------------------------------------------------

/// The ADRs: number → title (the first line of docs/decisions/NNNN-*.md).
fn adrs() -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root().join("docs/decisions")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .split('-')
            .next()
            .filter(|n| n.len() == 4)
            .and_then(|n| n.parse().ok())
            && name.ends_with(".md")
        {
            let text = read(format!("docs/decisions/{name}"));
            out.insert(n, text.lines().next().unwrap_or_default().to_string());
        }
    }
    out
}

/// The numbers cited as "ADR 0013" / "ADR 13" (any whitespace, line breaks included, between).
fn cited(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("ADR") {
        let after = &rest[i + 3..];
        let digits = after.trim_start();
        let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
        let boundary = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
        if boundary && after.len() > digits.len() && !n.is_empty() && n.len() <= 4 {
            out.push(n.parse().unwrap());
        }
        rest = after;
    }
    out
}

/// Links into docs/decisions/ by file name (`decisions/0013-state-changelog.md`).
fn linked(text: &str) -> Vec<String> {
    text.match_indices("decisions/")
        .filter_map(|(i, _)| {
            let name: String = text[i + "decisions/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            let name = name.trim_end_matches('.');
            (name.ends_with(".md") && name.as_bytes().first().is_some_and(u8::is_ascii_digit))
                .then(|| name.to_string())
        })
        .collect()
}

/// The files under `dir` (relative to the repository, subdirectories included, build output
/// left out) whose name passes `keep`.
fn files_under(dir: &str, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_string()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(root().join(&d)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = format!("{d}/{name}");
            if e.file_type().unwrap().is_dir() {
                if !["target", "node_modules", ".git"].contains(&name.as_str()) {
                    todo.push(rel);
                }
            } else if keep(&name) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

fn md_files(dir: &str) -> Vec<String> {
    files_under(dir, &|n| n.ends_with(".md") || n.ends_with(".toml"))
}

#[test]
fn cited_adrs_exist() {
    let adrs = adrs();
    assert!(
        adrs.len() >= 17,
        "docs/decisions/ holds {} ADRs",
        adrs.len()
    );
    let mut files = vec!["README.md".to_string()];
    files.extend(md_files("topics"));
    files.extend(md_files("docs"));
    let mut problems = Vec::new();
    for f in &files {
        let text = read(f);
        for n in cited(&text) {
            if !adrs.contains_key(&n) {
                problems.push(format!(
                    "{f} cites ADR {n:04}, which is not in docs/decisions/"
                ));
            }
        }
        for name in linked(&text) {
            if !root().join("docs/decisions").join(&name).exists() {
                problems.push(format!("{f} links decisions/{name}, which does not exist"));
            }
        }
    }
    // The state changelog topic cites the ADR that decided it.
    let topics: toml::Table = read("topics/topics.toml")
        .parse()
        .expect("topics.toml parses");
    let changelog = topics["topic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str() == Some("bucket.state-changelog"))
        .expect("topics.toml declares bucket.state-changelog");
    let doc = changelog["doc"].as_str().unwrap_or_default();
    let cites = cited(doc);
    if cites.is_empty() {
        problems.push("topics.toml: the bucket.state-changelog doc cites no ADR".into());
    }
    for n in cites {
        let title = adrs.get(&n).map(String::as_str).unwrap_or_default();
        if !title.to_lowercase().contains("state changelog") {
            problems.push(format!(
                "topics.toml: bucket.state-changelog cites ADR {n:04} ({title:?}), \
                 whose title is not the state changelog"
            ));
        }
    }
    fail_on(problems);
}

// ---- reason codes ------------------------------------------------------------------------------

/// `SchemaNotApproved` → `SCHEMA_NOT_APPROVED`.
fn screaming(variant: &str) -> String {
    let mut out = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[test]
fn reason_codes_match_their_page() {
    // The enum as written (a variant missing from `ALL` still counts) and as the library lists it.
    let src = read("src/core/reason.rs");
    let body = src
        .split("pub enum ReasonCode {")
        .nth(1)
        .and_then(|b| b.split("\n}").next())
        .expect("src/core/reason.rs declares `pub enum ReasonCode`");
    let variants: BTreeSet<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with('#') && l.ends_with(','))
        .map(|l| screaming(l.trim_end_matches(',')))
        .collect();
    let all: BTreeSet<String> = ReasonCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    let mut problems = Vec::new();
    for v in variants.symmetric_difference(&all) {
        problems.push(format!(
            "{v}: the ReasonCode enum and ReasonCode::ALL disagree (or its spelling is not \
             the variant's name in SCREAMING_SNAKE_CASE)"
        ));
    }
    let page = read("docs/reason-codes.md");
    let documented: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
        .map(str::to_string)
        .collect();
    let code: BTreeSet<String> = variants.union(&all).cloned().collect();
    for c in code.difference(&documented) {
        problems.push(format!(
            "{c} is a reason code but has no row in docs/reason-codes.md"
        ));
    }
    for c in documented.difference(&code) {
        problems.push(format!(
            "docs/reason-codes.md has a row for {c}, which is not a reason code"
        ));
    }
    fail_on(problems);
}

// ---- rejection headers -----------------------------------------------------------------------

#[test]
fn rejection_headers_are_in_the_wire_contract() {
    let src = read("src/wire/headers.rs");
    let code: BTreeSet<String> = src
        .lines()
        .filter(|l| l.starts_with("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|h| h.starts_with("bucket.errors."))
        .map(str::to_string)
        .collect();
    assert!(
        code.len() >= 10,
        "src/wire/headers.rs names {} headers",
        code.len()
    );
    let contract = read("docs/wire-contract.md");
    let documented: BTreeSet<String> = contract
        .lines()
        .filter_map(|l| l.strip_prefix("| `bucket.errors."))
        .filter_map(|l| l.split('`').next())
        .map(|h| format!("bucket.errors.{h}"))
        .collect();
    let mut problems = Vec::new();
    for h in code.difference(&documented) {
        problems.push(format!(
            "{h} is written by the gate but has no row in docs/wire-contract.md"
        ));
    }
    for h in documented.difference(&code) {
        problems.push(format!(
            "docs/wire-contract.md has a row for {h}, which src/wire/headers.rs does not name"
        ));
    }
    fail_on(problems);
}

#[test]
fn header_names_are_in_the_wire_contract() {
    // Every header name (or prefix) src/wire/headers.rs declares, not only the rejection ones:
    // the signature header, the trace context, the gate's prefix and the renamed producer prefix.
    let src = read("src/wire/headers.rs");
    let names: Vec<&str> = src
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(
        names.len() >= 17,
        "src/wire/headers.rs declares {} header names",
        names.len()
    );
    let contract = read("docs/wire-contract.md");
    let problems = names
        .iter()
        .filter(|n| !contract.contains(&format!("`{n}")))
        .map(|n| {
            format!("docs/wire-contract.md never names the header `{n}` (src/wire/headers.rs)")
        })
        .collect();
    fail_on(problems);
}
