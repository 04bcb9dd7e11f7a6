//! The batch format checked by an independent COSE implementation, Python pycose 1.1.0
//! (`tests/interop/pycose_provenance.py`): pycose verifies what the device signs, and a batch
//! pycose signs with a device's key and certificate verifies here. Fails (never skips) when
//! Python or pycose is missing: `pip install -r tests/interop/requirements.txt`.

mod common;

use std::ffi::OsStr;
use std::process::{Command, Output};

use common::*;
use ferro_provenance::{ProvenanceError, verify_batch};

/// The interpreter with pycose: `FERRO_PYTHON` (set by scripts/test.sh to its venv), else `python3`.
fn python(args: &[&OsStr]) -> Output {
    let interpreter = std::env::var("FERRO_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(interpreter)
        .arg(repo_root().join("tests/interop/pycose_provenance.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install Python 3 and `pip install -r tests/interop/requirements.txt` (scripts/test.sh does it in a venv)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "pycose 1.1.0 (with cbor2 < 6) is missing: run `pip install -r tests/interop/requirements.txt`\n{stderr}"
    );
    out
}

#[test]
fn pycose_verifies_the_device_s_batch_and_refuses_a_tampered_one() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("tenant-ca.pem");
    std::fs::write(&ca, f.ca.pem()).unwrap();
    let batch = dir.path().join("batch.cose");
    std::fs::write(&batch, f.batch()).unwrap();
    let out = python(&["verify".as_ref(), batch.as_os_str(), ca.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(json["deviceId"], f.device_id().to_string());
    assert_eq!(json["componentId"], COMPONENT.to_string());
    assert_eq!(json["imageId"], IMAGE.to_string());
    assert_eq!(json["bootId"], BOOT.to_string());
    assert_eq!(json["sequence"], 7);
    assert_eq!(json["signedAt"], SIGNED_AT.unix_timestamp());
    assert_eq!(json["development"], false);
    assert_eq!(json["payload"].as_str().unwrap().as_bytes(), PAYLOAD);

    let mut tampered = f.batch();
    let last = tampered.len() - 70; // inside the payload, before the 64-byte signature
    tampered[last] ^= 0x01;
    std::fs::write(&batch, &tampered).unwrap();
    let out = python(&["verify".as_ref(), batch.as_os_str(), ca.as_os_str()]);
    assert!(!out.status.success(), "pycose accepted a tampered batch");
    // And a batch whose certificate the other tenant's CA did not issue.
    std::fs::write(&batch, f.batch()).unwrap();
    std::fs::write(&ca, f.other_ca.pem()).unwrap();
    let out = python(&["verify".as_ref(), batch.as_os_str(), ca.as_os_str()]);
    assert!(!out.status.success(), "pycose accepted another tenant's CA");
}

#[test]
fn a_batch_pycose_signed_with_a_device_key_verifies_here() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device-key.pem");
    std::fs::write(&key, f.device_key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let leaf = dir.path().join("device.der");
    std::fs::write(&leaf, &f.device_cert).unwrap();
    let ca = dir.path().join("ca.der");
    std::fs::write(&ca, f.ca.der()).unwrap();
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, PAYLOAD).unwrap();
    let out_path = dir.path().join("pycose.cose");
    let claims = serde_json::json!({
        "componentId": COMPONENT, "imageId": IMAGE, "bootId": BOOT,
        "development": false, "sequence": 41, "signedAt": SIGNED_AT.unix_timestamp(),
    })
    .to_string();
    // OpenSSL's ECDSA nonces are random: several signatures, so high-S and low-S both occur.
    for _ in 0..6 {
        let out = python(&[
            "sign".as_ref(),
            key.as_os_str(),
            payload.as_os_str(),
            out_path.as_os_str(),
            claims.as_ref(),
            leaf.as_os_str(),
            ca.as_os_str(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&out_path).unwrap();
        let v = verify_batch(&bytes, &f.anchors(), NOW, &expected())
            .unwrap_or_else(|e| panic!("pycose batch refused: {e} ({})", e.code()));
        assert_eq!(v.payload(), PAYLOAD);
        assert_eq!(v.sequence(), 41);
        assert_eq!(v.image_id(), IMAGE);
        assert_eq!(v.device_id(), &f.device_id());
        // Equal to what the device would have signed, but for the signature and sequence.
        let mut e = expected();
        e.image_ids.clear();
        assert!(matches!(
            verify_batch(&bytes, &f.anchors(), NOW, &e),
            Err(ProvenanceError::UnexpectedImage(_))
        ));
    }
}
