//! Dependencies point down: the decision core and the wire contract at the bottom, the shell
//! (gate, sink, audit, API) above them, operator surfaces (admin, CLI, bench) on top. This test
//! reads the sources and fails on an import that points the wrong way, so the layering is kept
//! by the build rather than by review. Known debts are listed with their counts: the test fails
//! when one grows, and also when one shrinks, so that the list is kept exact (a ratchet).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Crates that do I/O or run an executor: the pure layers must not name them.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio_util",
    "rdkafka",
    "redis",
    "axum",
    "tokio_postgres",
    "reqwest",
    "hyper",
    "schema_registry_converter",
];

/// Modules above the shell: nothing below them may import them.
const TOP: &[&str] = &["admin", "bench", "cli"];

/// Upward imports that exist today, as (importing module, imported module, occurrences): none
/// since issue 19 point 3, where admin implements the trait each component reports to
/// (`gate::observe::GateObserver`, `sink::observe::SinkObserver`). Keep it empty.
const KNOWN_UPWARD: &[(&str, &str, usize)] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file: comment lines and everything from a `#[cfg(test)]` module on are
/// left out (tests may use what they like).
fn code_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read source");
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push(line.to_string());
    }
    out
}

/// Top-level crate modules a line names (`crate::gate::…` → "gate").
fn crate_modules(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(i, _)| {
            // `bhiv_bucket::` is not `crate::`; a preceding identifier character means another
            // path such as `foo_crate::`.
            !line[..*i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            line[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// External crates a line names as a path root (`tokio::spawn`, `use rdkafka::…`).
fn io_crates(line: &str) -> Vec<&'static str> {
    IO_CRATES
        .iter()
        .copied()
        .filter(|krate| {
            line.match_indices(&format!("{krate}::")).any(|(i, _)| {
                !line[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            })
        })
        .collect()
}

/// (module, imported crate module) → occurrences, over the library's sources.
fn imports() -> BTreeMap<(String, String), usize> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let module = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|m| m.trim_end_matches(".rs").to_string())
            .expect("module name");
        for line in code_lines(&f) {
            for m in crate_modules(&line) {
                if m != module {
                    *out.entry((module.clone(), m)).or_insert(0) += 1;
                }
            }
            for k in io_crates(&line) {
                *out.entry((module.clone(), format!("extern {k}")))
                    .or_insert(0) += 1;
            }
        }
    }
    out
}

#[test]
fn the_core_and_the_wire_contract_do_no_io_and_import_only_downwards() {
    let mut problems = Vec::new();
    for ((module, imported), n) in imports() {
        let allowed: &[&str] = match module.as_str() {
            "core" => &[],
            "wire" => &["core"],
            _ => continue,
        };
        if !allowed.contains(&imported.as_str()) {
            problems.push(format!("src/{module} names {imported} ({n}×)"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn nothing_below_the_operator_surfaces_imports_them() {
    let mut upward: BTreeMap<(String, String), usize> = BTreeMap::new();
    for ((module, imported), n) in imports() {
        if TOP.contains(&imported.as_str()) && !TOP.contains(&module.as_str()) {
            upward.insert((module, imported), n);
        }
    }
    let known: BTreeMap<(String, String), usize> = KNOWN_UPWARD
        .iter()
        .map(|(m, i, n)| ((m.to_string(), i.to_string()), *n))
        .collect();
    assert_eq!(
        upward, known,
        "upward imports changed: remove them, or (if one was removed) shrink KNOWN_UPWARD"
    );
}

#[test]
fn the_scanner_sees_what_it_must() {
    assert_eq!(crate_modules("use crate::gate::task::Task;"), vec!["gate"]);
    assert_eq!(
        crate_modules("x(crate::admin::A, crate::core::B)"),
        vec!["admin", "core"]
    );
    assert!(crate_modules("use my_crate::gate;").is_empty());
    assert_eq!(io_crates("use rdkafka::Message;"), vec!["rdkafka"]);
    assert_eq!(io_crates("    tokio::spawn(f);"), vec!["tokio"]);
    assert!(io_crates("use crate::wire::tokio_like;").is_empty());
    assert!(io_crates("let x = a::tokio::b;").is_empty());
}
