//! Dependencies point down: the decision core and the wire contract at the bottom, the shell
//! (gate, sink, audit, API) above them, operator surfaces (admin, CLI, bench) on top; every
//! module has its layer ([`LAYERS`]), and the core and the wire contract do no I/O, neither
//! through the I/O crates nor through the standard library's file system, environment,
//! processes, network, threads or clocks. This test
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

/// Every top-level module of the library with its layer: a module may import only modules of a
/// lower layer. The decision core at the bottom; the wire contract, the transparency log and
/// the pure file formats on it; the clients of the outside world (Kafka, the registry,
/// PostgreSQL over TLS); the components built from them (audit tooling, the control topic,
/// topics and ACLs as code, policy approvals, the sink); the gate, the producer library and the
/// read API; the operator surfaces on top. A new module fails the test until it is placed.
const LAYERS: &[(&str, u8)] = &[
    ("core", 0),
    ("wire", 1),
    ("tlog", 1),
    ("clock", 1),
    ("kafka", 2),
    ("audit", 3),
    ("control", 3),
    ("ops", 3),
    ("config", 3),
    ("policy", 4),
    ("sink", 4),
    ("gate", 5),
    ("produce", 5),
    ("api", 5),
    ("admin", 6),
    ("bench", 6),
];

/// What "no I/O" means beyond the crates: the standard library's file system, environment,
/// processes, network, threads and clocks. The core and the wire contract name none of them
/// (their callers pass time and configuration in).
const STD_IO: &[&str] = &[
    "std::fs",
    "std::env",
    "std::process",
    "std::net",
    "std::thread",
    "SystemTime",
    "Instant::now",
];

/// Upward imports that exist today, as (importing module, imported module, occurrences): none
/// since issue 19 point 3, where admin implements the trait each component reports to
/// (`gate::observe::GateObserver`, `sink::observe::SinkObserver`). Keep it empty.
const KNOWN_UPWARD: &[(&str, &str, usize)] = &[];

/// Import circles among the submodules of one top-level module, as (module, its submodules in
/// the circle, sorted): only the decision rules' own (`decide` ↔ `rules` ↔ `state` in `core`:
/// the rules are `decide`'s steps over `state`). Another circle fails the test; a circle removed
/// must be removed here too (a ratchet).
const KNOWN_CIRCLES: &[(&str, &[&str])] = &[("core", &["decide", "rules", "state"])];

/// The library's source files under `dir`, leaving out test modules kept in files of their
/// own (`tests.rs`, a `tests/` folder: each declared `#[cfg(test)] mod tests;`, checked below).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "tests" || name == "tests.rs" {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file: comment lines and every item under `#[cfg(test)]` (a `mod tests`
/// block, a test-only function or import) are left out; tests may use what they like. The
/// item ends at its `;` or where its braces balance.
fn code_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read source");
    code_lines_of(&text)
}

fn code_lines_of(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("#[cfg(test)]") {
            i = end_of_item(&lines, i + 1);
            continue;
        }
        if !t.starts_with("//") {
            out.push(lines[i].to_string());
        }
        i += 1;
    }
    out
}

/// The line after the item starting at `lines[start]` (its own attributes included).
fn end_of_item(lines: &[&str], start: usize) -> usize {
    let mut i = start;
    while i < lines.len() && lines[i].trim_start().starts_with("#[") {
        i += 1;
    }
    let mut depth = 0i64;
    let mut opened = false;
    while i < lines.len() {
        let line = lines[i];
        depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
        opened |= line.contains('{');
        i += 1;
        if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
            break;
        }
    }
    i
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

/// The top-level module a source file belongs to (`src/gate/txn.rs` → "gate").
fn module_of(src: &Path, file: &Path) -> String {
    file.strip_prefix(src)
        .expect("under src")
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .map(|m| m.trim_end_matches(".rs").to_string())
        .expect("module name")
}

/// Every code line of the library's sources with the top-level module it belongs to.
fn library_code() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let module = module_of(&src, &f);
        out.extend(code_lines(&f).into_iter().map(|l| (module.clone(), l)));
    }
    out
}

/// (module, imported crate module) → occurrences, over the library's sources.
fn imports() -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (module, line) in library_code() {
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
    out
}

/// (module, what it names) → occurrences of the standard library's I/O in the library's code.
fn std_io() -> BTreeMap<(String, &'static str), usize> {
    let mut out = BTreeMap::new();
    for (module, line) in library_code() {
        for what in STD_IO.iter().filter(|w| line.contains(*w)) {
            *out.entry((module.clone(), *what)).or_insert(0) += 1;
        }
    }
    out
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
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
    for ((module, what), n) in std_io() {
        if module == "core" || module == "wire" {
            problems.push(format!("src/{module} names {what} ({n}×)"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_module_has_a_layer_and_imports_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        let module = name.trim_end_matches(".rs");
        let skip = ["lib", "main", "bin", "cli"];
        if !skip.contains(&module) && layer(module).is_none() {
            problems.push(format!("src/{module} has no layer in LAYERS"));
        }
    }
    for ((module, imported), n) in imports() {
        if imported.starts_with("extern ") || TOP.contains(&imported.as_str()) {
            continue; // the I/O crates and the operator surfaces have their own tests
        }
        match (layer(&module), layer(&imported)) {
            (Some(from), Some(to)) if to < from => {}
            (Some(from), Some(to)) => problems.push(format!(
                "src/{module} (layer {from}) imports {imported} (layer {to}) {n}×: not below it"
            )),
            (Some(_), None) => problems.push(format!(
                "src/{module} names crate::{imported} {n}×: not a layered module (a crate-root item? import it from its module)"
            )),
            (None, _) => {}
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

#[test]
fn only_the_items_under_cfg_test_are_left_out() {
    let text = "use a::b;\n#[cfg(test)]\nuse std::fs;\nfn f() {}\n#[cfg(test)]\n#[allow(x)]\nmod tests {\n    fn g() {\n        std::env::var(\"X\");\n    }\n}\npub use c::d;\n// std::fs in a comment\n";
    assert_eq!(
        code_lines_of(text),
        vec!["use a::b;", "fn f() {}", "pub use c::d;"]
    );
}

/// The submodules of top-level `module` that `line` (in a file `depth` folders below
/// `src/<module>/`) names: `crate::<module>::x`, `super::x` climbing to the module's root, and
/// the members of `use crate::<module>::{x, y}` / `use super::{x, y}` at that level.
fn submodules_named(line: &str, module: &str, depth: usize) -> Vec<String> {
    let ident = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut roots = vec![format!("crate::{module}::")];
    roots.push("super::".repeat(depth + 1));
    let mut out = Vec::new();
    for root in &roots {
        for (i, _) in line.match_indices(root.as_str()) {
            if line[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue; // part of a longer path (`super::super::x` seen from `super::x`)
            }
            let rest = &line[i + root.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or_default();
                out.extend(group.split(',').map(|m| ident(m.trim())));
            } else {
                out.push(ident(rest));
            }
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// Every circle of imports among the submodules of each top-level module, as in
/// [`KNOWN_CIRCLES`].
fn circles() -> Vec<(String, Vec<String>)> {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // module -> submodule -> submodules it names
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let parts: Vec<String> = rel
            .components()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .collect();
        if parts.len() < 2 || parts[1] == "mod" {
            continue; // a loose top-level file, or a module's own root
        }
        let (module, sub) = (&parts[0], &parts[1]);
        let depth = parts.len() - 2;
        let named: BTreeSet<String> = code_lines(&f)
            .iter()
            .flat_map(|l| submodules_named(l, module, depth))
            .filter(|m| m != sub)
            .collect();
        graph
            .entry(module.clone())
            .or_default()
            .entry(sub.clone())
            .or_default()
            .extend(named);
    }
    let mut out = Vec::new();
    for (module, edges) in &graph {
        // Strongly connected components: a submodule is in a circle with those it reaches and
        // that reach it back.
        let reach = |from: &String| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from.clone()];
            while let Some(m) = stack.pop() {
                for n in edges.get(&m).into_iter().flatten() {
                    if edges.contains_key(n) && seen.insert(n.clone()) {
                        stack.push(n.clone());
                    }
                }
            }
            seen
        };
        let mut placed = BTreeSet::new();
        for sub in edges.keys() {
            if placed.contains(sub) {
                continue;
            }
            let from = reach(sub);
            let mut circle: Vec<String> = from
                .iter()
                .filter(|m| *m == sub || reach(m).contains(sub))
                .cloned()
                .collect();
            if circle.iter().any(|m| m == sub) && circle.len() > 1 {
                circle.sort();
                placed.extend(circle.iter().cloned());
                out.push((module.clone(), circle));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_import_circles_among_a_modules_files_but_the_known_ones() {
    let found = circles();
    let mut known: Vec<(String, Vec<String>)> = KNOWN_CIRCLES
        .iter()
        .map(|(m, c)| (m.to_string(), c.iter().map(|s| s.to_string()).collect()))
        .collect();
    known.sort();
    assert_eq!(
        found, known,
        "import circles changed: break the new one, or (if one was broken) remove it from KNOWN_CIRCLES"
    );
}

#[test]
fn the_circle_scanner_resolves_super_and_groups() {
    assert_eq!(
        submodules_named("use super::task::Task;", "gate", 0),
        vec!["task"]
    );
    assert_eq!(
        submodules_named("use super::super::{records, txn::OpenTxn};", "gate", 1),
        vec!["records", "txn"]
    );
    assert!(
        submodules_named("use super::positions::PollStamp;", "gate", 1).is_empty(),
        "one level up from a nested file is its own folder, not the module's root"
    );
    assert_eq!(
        submodules_named("let x = crate::gate::txn::fencing_offset(a);", "gate", 2),
        vec!["txn"]
    );
}

#[test]
fn test_module_files_are_compiled_only_for_tests() {
    // `sources` leaves `tests.rs` files and `tests/` folders out: each must be a test module.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    walk(&src, &mut all);
    let mut problems = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == "mod tests;" {
                let guarded = i > 0 && lines[i - 1].trim() == "#[cfg(test)]";
                if !guarded {
                    problems.push(format!(
                        "{}: `mod tests;` without #[cfg(test)]",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
