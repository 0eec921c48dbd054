//! The fuzz crate (`fuzz/`) compiles the project's pure modules by path rather than as a
//! dependency, so a file moved in `src/` breaks only the fuzzing step, the last of the test run.
//! This checks the same paths in seconds: every `#[path]` module of `fuzz/src/lib.rs`, and every
//! submodule declared inside one, names a file that exists.

use std::path::{Path, PathBuf};

/// The module files `fuzz/src/lib.rs` names, resolved as rustc resolves them.
fn named_files(lib: &str, base: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dir: Option<PathBuf> = None;
    let mut pending: Option<PathBuf> = None;
    for line in lib.lines().map(str::trim) {
        if let Some(path) = line
            .strip_prefix("#[path = \"")
            .and_then(|rest| rest.strip_suffix("\"]"))
        {
            pending = Some(base.join(path));
        } else if let Some(path) = pending.take() {
            if line.ends_with('{') {
                // `#[path = "dir"] pub mod x { pub mod a; }`: a, b, ... are files in dir.
                dir = Some(path);
            } else {
                files.push(path);
            }
        } else if line == "}" {
            dir = None;
        } else if let (Some(d), Some(name)) = (
            &dir,
            line.strip_prefix("pub mod ")
                .and_then(|r| r.strip_suffix(';')),
        ) {
            let file = d.join(format!("{name}.rs"));
            let folder = d.join(name).join("mod.rs");
            files.push(if folder.exists() { folder } else { file });
        }
    }
    files
}

#[test]
fn every_module_the_fuzz_crate_compiles_by_path_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("fuzz/src");
    let lib = std::fs::read_to_string(base.join("lib.rs")).expect("fuzz/src/lib.rs");
    let files = named_files(&lib, &base);
    assert!(files.len() >= 5, "read the #[path] modules: {files:?}");
    let missing: Vec<&PathBuf> = files.iter().filter(|f| !f.exists()).collect();
    assert!(
        missing.is_empty(),
        "fuzz/src/lib.rs names files that do not exist (moved in src/?): {missing:?}"
    );
}

#[test]
fn a_moved_file_is_reported() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/src");
    let lib = "#[path = \"../../src/audit\"]\npub mod audit {\n    pub mod no_such_file;\n}\n";
    let files = named_files(lib, &base);
    assert_eq!(files.len(), 1);
    assert!(!files[0].exists());
}
