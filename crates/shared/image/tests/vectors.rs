//! Golden test vectors in test-vectors/packages/: regenerated in memory and compared byte for
//! byte (set FERRO_BLESS=1 to rewrite them), then each file is verified and its outcome checked
//! against expected.json.

mod common;

use std::collections::BTreeMap;

fn vectors_dir() -> std::path::PathBuf {
    common::repo_root().join("test-vectors/packages")
}

fn expected_json(vectors: &[common::Vector]) -> String {
    let mut map = serde_json::Map::new();
    for v in vectors {
        let mut o = serde_json::Map::new();
        match v.expected {
            None => o.insert("result".into(), "valid".into()),
            Some(code) => {
                o.insert("result".into(), "error".into());
                o.insert("code".into(), code.into())
            }
        };
        o.insert("description".into(), v.description.into());
        map.insert(v.name.into(), serde_json::Value::Object(o));
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(map)).unwrap() + "\n"
}

#[test]
fn checked_in_vectors_match_the_generator() {
    let vectors = common::generate_vectors();
    let dir = vectors_dir();
    let expected = expected_json(&vectors);
    if std::env::var_os("FERRO_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for v in &vectors {
            std::fs::write(dir.join(v.name), &v.bytes).unwrap();
        }
        std::fs::write(dir.join("expected.json"), &expected).unwrap();
    }
    for v in &vectors {
        let on_disk = std::fs::read(dir.join(v.name))
            .unwrap_or_else(|e| panic!("{}: {e} (run with FERRO_BLESS=1 to create)", v.name));
        assert!(
            on_disk == v.bytes,
            "{} differs from the generator (FERRO_BLESS=1 to rewrite)",
            v.name
        );
    }
    let on_disk = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    assert_eq!(
        on_disk, expected,
        "expected.json is stale (FERRO_BLESS=1 to rewrite)"
    );
    // No stray .fsimg files.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".fsimg"))
        .collect();
    assert_eq!(names.len(), vectors.len(), "stray vector files: {names:?}");
}

#[test]
fn every_checked_in_vector_has_its_expected_outcome() {
    let dir = vectors_dir();
    let expected: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert!(expected.len() >= 30);
    let trusted = common::trusted();
    for (name, want) in &expected {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let got = ferro_image::verify(&bytes[..], &trusted, &mut std::io::sink());
        match want["result"].as_str().unwrap() {
            "valid" => {
                let v = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(v.signer(), common::key().key_id());
            }
            "error" => {
                let e = match got {
                    Ok(_) => panic!("{name} verified but must fail"),
                    Err(e) => e,
                };
                assert_eq!(e.code(), want["code"].as_str().unwrap(), "{name}: {e}");
            }
            other => panic!("{name}: bad result {other}"),
        }
    }
}
