//! The register map vectors (`test-vectors/register-maps/README.md`): every valid map parses,
//! every invalid one fails with exactly the issues its `.expected.txt` lists. `FERRO_BLESS=1`
//! rewrites the expected files (review the diff).

use std::fs;
use std::path::{Path, PathBuf};

use ferro_registermap::{Grants, RegisterMap};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../test-vectors/register-maps")
        .join(kind)
}

/// What the vectors' manifests grant.
fn grants() -> Grants {
    Grants {
        hosts: vec!["192.168.50.2".to_owned(), "10.0.0.2".to_owned()],
        uarts: vec!["ISU1".to_owned()],
    }
}

fn json_files(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir(kind))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors in {kind}");
    files
}

#[test]
fn valid_maps_parse() {
    for path in json_files("valid") {
        let bytes = fs::read(&path).unwrap();
        if let Err(errors) = RegisterMap::parse(&bytes, Some(&grants())) {
            panic!("{}: {errors}", path.display());
        }
    }
}

#[test]
fn invalid_maps_fail_with_every_expected_issue() {
    let bless = std::env::var_os("FERRO_BLESS").is_some();
    let mut failures = Vec::new();
    for path in json_files("invalid") {
        let bytes = fs::read(&path).unwrap();
        let actual = match RegisterMap::parse(&bytes, Some(&grants())) {
            Ok(_) => {
                failures.push(format!("{}: parsed", path.display()));
                continue;
            }
            Err(errors) => errors
                .0
                .iter()
                .map(|issue| format!("{issue}\n"))
                .collect::<String>(),
        };
        let expected_path = path.with_extension("expected.txt");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            )),
            Err(_) => failures.push(format!("{}: no .expected.txt", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The guardian's own map (apps/guardian/register_map.json) is valid against its manifest.
#[test]
fn the_guardians_shipped_map_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../apps/guardian");
    let manifest = fs::read(root.join("app_manifest.json")).unwrap();
    let grants = Grants::from_manifest_json(&manifest).unwrap();
    let map = fs::read(root.join("register_map.json")).unwrap();
    if let Err(errors) = RegisterMap::parse(&map, Some(&grants)) {
        panic!("apps/guardian/register_map.json: {errors}");
    }
}
