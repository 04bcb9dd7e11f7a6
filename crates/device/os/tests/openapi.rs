//! The local device API's OpenAPI document (`openapi/device-local.json`) matches the handlers'
//! annotations, as the service's document does (`ferro-service`'s `tests/contract.rs`).
//!
//! `FERRO_BLESS=1 cargo test -p ferro-device --test openapi` rewrites the checked-in file.

use serde_json::Value;
use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../openapi/device-local.json")
}

#[test]
fn document_is_checked_in() {
    let actual = ferro_device::local_api::openapi_json();
    let path = checked_in();
    if std::env::var("FERRO_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &actual).expect("write the document");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} is out of date with the handlers (first difference at line {}: {:?} in the code). \
             If the change is intended, run `FERRO_BLESS=1 cargo test -p ferro-device --test openapi` \
             and review the diff.",
            path.display(),
            first + 1,
            actual.lines().nth(first).unwrap_or("<end>")
        );
    }
}

/// The sideload route (on its own sub-router for its body limit) is in the document, every
/// response says what it is, and every `$ref` resolves.
#[test]
fn document_is_complete() {
    let doc: Value =
        serde_json::from_str(&ferro_device::local_api::openapi_json()).expect("JSON document");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(
        paths["/v1/sideload"].get("post").is_some(),
        "routes: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path}: {status} has no description"
                );
            }
        }
    }
    let mut refs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let target = r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(&doc, |node, key| &node[key]));
        assert!(target.is_some_and(|t| !t.is_null()), "dangling {r}");
    }
}
