//! Interoperability with an independent COSE implementation: Python pycose 1.1.0.
//! Fails (never skips) when python3 or pycose is missing: `pip install pycose==1.1.0 'cbor2<6'`.

mod common;

use std::process::Command;

use common::*;
use ferro_image::{FixedHeader, verify};
use ferro_signing::{Purpose, verify1};

/// The interpreter with pycose: `FERRO_PYTHON` (set by scripts/test.sh to its venv), else `python3`.
fn python_interpreter() -> String {
    std::env::var("FERRO_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = repo_root().join("tests/interop").join(script);
    let out = Command::new(python_interpreter())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install Python 3 and `pip install -r tests/interop/requirements.txt` (scripts/test.sh does it in a venv)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named") || stderr.contains("cannot be decoded as COSE") {
        panic!(
            "pycose 1.1.0 (with cbor2 < 6) is missing: run `pip install pycose==1.1.0 'cbor2<6'` \
             (or `pip install -r tests/interop/requirements.txt`)\n{stderr}"
        );
    }
    assert!(out.status.success(), "{script} failed:\n{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pycose_verifies_our_package_signature() {
    let pkg = pack_app_bytes(false, &key());
    let (env_start, payload_start) = sections(&pkg);
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("envelope.cose");
    std::fs::write(&env, &pkg[env_start..payload_start]).unwrap();
    let pem = dir.path().join("public.pem");
    std::fs::write(&pem, key().public_key().to_pem()).unwrap();
    let aad = hex::encode(FixedHeader::new(0).external_aad());
    assert_eq!(aad, hex::encode(&pkg[..12]));
    let out = python(
        "pycose_verify.py",
        &[
            env.as_os_str(),
            aad.as_ref(),
            pem.as_os_str(),
            Purpose::ImagePackage.content_type().as_ref(),
        ],
    );
    assert!(out.contains("pycose: signature verified"), "{out}");
    assert!(out.contains("HelloWorld"), "{out}");
    let md: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        md["9"].as_u64().unwrap(),
        (pkg.len() - payload_start) as u64
    );
    assert_eq!(
        md["10"].as_str().unwrap(),
        hex::encode(sha256(&pkg[payload_start..]))
    );

    // And pycose refuses it with the wrong external AAD (the header binding is real).
    let bad = Command::new(python_interpreter())
        .arg(repo_root().join("tests/interop/pycose_verify.py"))
        .args([
            env.as_os_str(),
            "00".as_ref(),
            pem.as_os_str(),
            Purpose::ImagePackage.content_type().as_ref(),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn we_verify_a_pycose_signed_envelope_and_package() {
    let pkg = pack_app_bytes(false, &key());
    let (_, payload_start) = sections(&pkg);
    let md = metadata_of(&pkg);
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("metadata.cbor");
    std::fs::write(&payload, md.to_cbor().unwrap()).unwrap();
    let out_path = dir.path().join("signed.cose");
    let key_path = repo_root().join("test-vectors/keys/test-only-signing-key.pem");
    let aad = hex::encode(FixedHeader::new(0).external_aad());
    // ECDSA in pycose (OpenSSL) uses random nonces: try several signatures, so high-S and
    // low-S forms both occur.
    for _ in 0..8 {
        python(
            "pycose_sign.py",
            &[
                key_path.as_os_str(),
                payload.as_os_str(),
                aad.as_ref(),
                Purpose::ImagePackage.content_type().as_ref(),
                out_path.as_os_str(),
            ],
        );
        let env = std::fs::read(&out_path).unwrap();
        let v = verify1(
            &env,
            Purpose::ImagePackage,
            &trusted(),
            &FixedHeader::new(0).external_aad(),
        )
        .unwrap_or_else(|e| panic!("pycose envelope refused: {e}"));
        assert_eq!(v.payload(), md.to_cbor().unwrap());
        assert_eq!(v.key_id(), key().key_id());
        // Wrong purpose still refused.
        assert!(
            verify1(
                &env,
                Purpose::TargetSet,
                &trusted(),
                &FixedHeader::new(0).external_aad()
            )
            .is_err()
        );
        let assembled = craft_with_envelope(&env, &pkg[payload_start..]);
        let vi = verify(&assembled[..], &trusted(), &mut std::io::sink()).unwrap();
        assert_eq!(vi.metadata(), &md);
    }
}
