//! Docs that state a fact the code also states fail here when the two drift apart. No servers:
//! the test reads the docs and either the library or the built `bucket` binary's `--help`.
//!
//! - `readme_command_list_matches_the_cli`: every subcommand path of `bucket` (walked through
//!   `--help`, since the clap types live in the binary crate) is a command of README.md's list,
//!   and every command of that list is a subcommand path.
//! - `cited_adrs_exist`: every "ADR NNNN" / "ADR NN" in topics/*.toml, README.md and docs/ (and
//!   every link to docs/decisions/) names a file in docs/decisions/; the state changelog topic
//!   cites the ADR whose title is the state changelog.
//! - `reason_codes_match_their_page`: the `ReasonCode` enum (its source and `ReasonCode::ALL`)
//!   and the table of docs/reason-codes.md list the same codes.
//! - `flags_without_environment_variables_are_listed`: the runbook's table of flags without an
//!   environment variable is exactly what `--help` shows.
//! - `rejection_headers_are_in_the_wire_contract`: every `bucket.errors.*` header the code
//!   names is in docs/wire-contract.md's header table, and every header there is the code's.

use std::collections::BTreeSet;
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

/// One option of a `--help` page: its long name and whether it shows an environment variable.
struct Opt {
    name: String,
    env: bool,
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
                        env: false,
                    });
                }
                if line.contains("[env: ")
                    && let Some(o) = opts.last_mut()
                {
                    o.env = true;
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
        for o in opts.iter().filter(|o| !o.env) {
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

// ---- ADR citations ---------------------------------------------------------------------------

/// The ADRs: number → title (the first line of docs/decisions/NNNN-*.md).
fn adrs() -> std::collections::BTreeMap<u32, String> {
    let mut out = std::collections::BTreeMap::new();
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

fn md_files(dir: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") || n.ends_with(".toml"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
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
    files.extend(md_files("docs/decisions"));
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
