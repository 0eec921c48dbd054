//! The audit contract's version table: every version the audit log may hold, oldest first. Each
//! version is one file here (`v1.rs`, `v2.rs`, ...: its schema file, how its decision record
//! ends, and what it changed) and one row of [`VERSIONS`]. The approved schema list
//! (`schemas`), their fingerprints, the facts layouts and the latest version (`audit`, which
//! re-exports it) are all read from this one table, so a new version is one schema file under
//! `schemas/`, one file here and one row (plus its layout variant if its facts differ); `tests`
//! fails when a schema file or a version file is missing from the table. It sits beside `audit`
//! rather than in it so that `schemas` can read it without depending on the codec that depends
//! on `schemas`.

mod v1;
mod v2;
mod v3;

/// What a version's decision record ends with; versions differ in nothing else so far (a
/// version that changes more needs its own encoder, and this type grows with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsLayout {
    /// Version 1: no `facts`.
    None,
    /// Version 2: `facts` last in `DecisionRecord`, as `["null", StateFacts]`, whose offender
    /// fact is the whole state after the decision (`offender`).
    WholeOffender,
    /// Version 3: the same, with the offender fact as the change (`offender_change`).
    OffenderChange,
}

/// One audit schema version.
#[derive(Debug)]
pub struct AuditVersion {
    /// The version number (1-based, consecutive).
    pub version: u8,
    /// File name under `schemas/`.
    pub file: &'static str,
    /// The schema text as committed.
    pub text: &'static str,
    /// How its decision record ends.
    pub facts: FactsLayout,
}

/// Every audit version, oldest first. The audit log keeps every version it was ever written
/// with: readers decode each record with the version that wrote it.
pub const VERSIONS: &[AuditVersion] = &[v1::V1, v2::V2, v3::V3];

/// The audit schema version this binary writes unless told otherwise: the table's last row.
pub const LATEST_VERSION: u8 = VERSIONS[VERSIONS.len() - 1].version;

/// The row of `version`, if it is in the table.
pub fn row(version: u8) -> Option<&'static AuditVersion> {
    VERSIONS.get(usize::from(version).checked_sub(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consecutive_from_one_and_names_its_own_files() {
        for (i, row) in VERSIONS.iter().enumerate() {
            assert_eq!(usize::from(row.version), i + 1, "versions are 1, 2, 3, ...");
            assert_eq!(row.file, format!("audit_event.v{}.avsc", row.version));
            assert!(
                row.text.contains("\"name\": \"AuditEvent\"")
                    || row.text.contains("\"name\":\"AuditEvent\""),
                "{} is an AuditEvent schema",
                row.file
            );
        }
        assert_eq!(row(LATEST_VERSION).map(|r| r.version), Some(LATEST_VERSION));
        assert!(row(0).is_none() && row(LATEST_VERSION + 1).is_none());
    }

    /// The sorted names of the files in `dir` (relative to the crate) that `keep` keeps.
    fn files_in(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok))
            .into_iter()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| keep(n))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} was read", dir.display());
        files
    }

    #[test]
    fn every_version_file_is_a_row() {
        let files = files_in("src/wire/audit_versions", |n| {
            n.starts_with('v') && n.ends_with(".rs")
        });
        let rows: Vec<String> = (VERSIONS.iter())
            .map(|r| format!("v{}.rs", r.version))
            .collect();
        assert_eq!(files, rows, "each vN.rs here is one row of VERSIONS");
    }

    #[test]
    fn every_audit_schema_file_has_a_row() {
        let files = files_in("schemas", |n| n.starts_with("audit_event."));
        let rows: Vec<&str> = VERSIONS.iter().map(|r| r.file).collect();
        assert_eq!(
            files, rows,
            "each schemas/audit_event.v*.avsc is one row of VERSIONS"
        );
    }
}
