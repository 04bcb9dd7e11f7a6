//! `ferro telemetry verify` over the vectors of `test-vectors/provenance/`: the valid batch
//! prints what verified (table and JSON), every other one fails with its reason's code.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../test-vectors/provenance")
}

fn verify(file: &str, output: &str, cases: &serde_json::Value) -> std::process::Output {
    let now = time::OffsetDateTime::from_unix_timestamp(cases["now"].as_i64().unwrap()).unwrap();
    let now = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferro"));
    command
        .env_remove("RUST_LOG")
        .args(["telemetry", "verify", "--output", output, "--at", &now])
        .arg("--tenant-ca")
        .arg(vectors().join("tenant-ca.pem"))
        .args(["--component-id", cases["componentId"].as_str().unwrap()]);
    for image in cases["imageIds"].as_array().unwrap() {
        command.args(["--image-id", image.as_str().unwrap()]);
    }
    command
        .arg(vectors().join(file))
        .output()
        .expect("run ferro")
}

#[test]
fn every_vector_verifies_or_fails_with_its_code() {
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors().join("cases.json")).unwrap()).unwrap();
    for case in cases["cases"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let verdict = case["verdict"].as_str().unwrap();
        let run = verify(file, "json", &cases);
        let stderr = String::from_utf8_lossy(&run.stderr);
        if verdict == "ok" {
            assert!(run.status.success(), "{file}: {stderr}");
            let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
            assert_eq!(json["verified"], true);
            assert_eq!(json["componentId"], cases["componentId"]);
            assert_eq!(json["imageId"], cases["imageIds"][0]);
            assert_eq!(json["development"], false);
            assert!(json["payload"].as_str().unwrap().starts_with("{\"points\""));
            let table = verify(file, "table", &cases);
            assert!(table.status.success());
            assert!(String::from_utf8_lossy(&table.stdout).contains("Signed at"));
        } else {
            assert_eq!(run.status.code(), Some(1), "{file} must be refused");
            assert!(run.stdout.is_empty(), "{file}: nothing printed as verified");
            assert!(
                stderr.contains(&format!("refused ({verdict})")),
                "{file}: {stderr}"
            );
        }
    }
}

#[test]
fn a_missing_image_id_or_a_bad_ca_file_is_a_usage_error() {
    let run = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args(["telemetry", "verify", "--tenant-ca"])
        .arg(vectors().join("tenant-ca.pem"))
        .arg(vectors().join("valid.cose"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--image-id"));
    let run = Command::new(env!("CARGO_BIN_EXE_ferro"))
        .args([
            "telemetry",
            "verify",
            "--image-id",
            "1a9e0000-0000-4000-8000-000000000001",
        ])
        .arg("--tenant-ca")
        .arg(
            vectors()
                .join("other-tenant-ca.pem")
                .with_file_name("README.md"),
        )
        .arg(vectors().join("valid.cose"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("is not a tenant CA bundle"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
