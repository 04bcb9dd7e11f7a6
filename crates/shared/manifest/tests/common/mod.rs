//! Paths shared by the integration tests.
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Azure Sphere's real files (MIT-licensed sample data, `test-vectors/azure-sphere`).
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("test-vectors/azure-sphere")
}

/// Sorted `*.json` files directly in `dir`, skipping nothing; panics (test failure) if unreadable.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

/// Sorted subdirectories of `dir`.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Reads `name.expected.txt` next to `name.json`: one `code path` per line (`#` comments allowed).
pub fn expected_issues(vector: &Path) -> Vec<(String, String)> {
    let expected_path = vector.with_extension("expected.txt");
    let text = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
        panic!(
            "{} has no {}: every invalid vector needs expectations",
            vector.display(),
            expected_path.display()
        )
    });
    let mut expected: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once(' ') {
            Some((code, path)) => (code.to_owned(), path.trim().to_owned()),
            None => (line.to_owned(), "(document)".to_owned()),
        })
        .collect();
    assert!(
        !expected.is_empty(),
        "{} lists no expected issue",
        expected_path.display()
    );
    expected.sort();
    expected
}

/// The issues of a failed manifest as sorted `(code, path)` pairs.
pub fn actual_issues(errors: &ferro_manifest::ManifestErrors) -> Vec<(String, String)> {
    let mut actual: Vec<(String, String)> = errors
        .issues()
        .iter()
        .map(|issue| {
            let path = if issue.path.is_empty() {
                "(document)".to_owned()
            } else {
                issue.path.clone()
            };
            (issue.code.as_str().to_owned(), path)
        })
        .collect();
    actual.sort();
    actual
}
