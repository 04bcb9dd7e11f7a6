//! The checked-in vectors under `test-vectors/provenance/`: a tenant CA, a batch the device
//! signed, and damaged or forged batches, each with the verdict `cases.json` names. Adding a
//! file and its case adds a test. `FERRO_BLESS=1 cargo test -p ferro-provenance --test vectors`
//! makes them again (new keys and certificates: the verdicts must not change).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use ferro_provenance::{ExpectedProvenance, TenantAnchors, sign_batch, verify_batch};
use ferro_signing::{Purpose, sign1};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn dir() -> PathBuf {
    repo_root().join("test-vectors/provenance")
}

/// Each vector: file, what it is, the verdict (`ok` or a `ProvenanceError::code`).
fn bless(dir: &Path) {
    let f = Fixture::new();
    let batch = f.batch();
    let mut cases: Vec<(String, Vec<u8>, &str, &str)> = Vec::new();
    cases.push((
        "valid.cose".into(),
        batch.clone(),
        "signed by the device for its app",
        "ok",
    ));

    let mut changed = batch.clone();
    let at = changed
        .windows(PAYLOAD.len())
        .position(|w| w == PAYLOAD)
        .unwrap();
    changed[at + 1] ^= 0x20;
    cases.push((
        "payload-changed.cose".into(),
        changed,
        "one payload byte changed",
        "bad-signature",
    ));

    let mut swapped = batch.clone();
    let at = swapped
        .windows(16)
        .position(|w| w == IMAGE.as_bytes())
        .unwrap();
    swapped[at..at + 16].copy_from_slice(OTHER_IMAGE.as_bytes());
    cases.push((
        "image-id-swapped.cose".into(),
        swapped,
        "the image ID header replaced by another expected image",
        "bad-signature",
    ));

    let other_cert = self_issue(
        &f.other_ca,
        &f.store,
        &f.device_key,
        OTHER_TENANT,
        CERT_START,
    );
    cases.push((
        "other-tenant.cose".into(),
        sign_batch(&f.device_key, &[other_cert], &f.claims(), PAYLOAD).unwrap(),
        "a device certificate of another tenant",
        "unknown-tenant",
    ));

    let mut late = f.claims();
    late.signed_at = CERT_START + Duration::hours(25);
    cases.push((
        "expired-certificate.cose".into(),
        sign_batch(&f.device_key, &f.chain(), &late, PAYLOAD).unwrap(),
        "signed after the certificate expired",
        "certificate-not-valid",
    ));

    let mut dev = f.claims();
    dev.development = true;
    cases.push((
        "development-image.cose".into(),
        sign_batch(&f.device_key, &f.chain(), &dev, PAYLOAD).unwrap(),
        "from an image sideloaded in development mode",
        "development-image",
    ));

    cases.push((
        "wrong-purpose.cose".into(),
        sign1(&f.device_key, Purpose::AttestationEvidence, PAYLOAD, &[]).unwrap(),
        "a device-key signature of another purpose",
        "wrong-purpose",
    ));
    cases.push((
        "truncated.cose".into(),
        batch[..batch.len() - 10].to_vec(),
        "the valid batch without its last 10 bytes",
        "malformed",
    ));
    cases.push((
        "garbage.cose".into(),
        b"\xd2\x84garbage".to_vec(),
        "tag 18 and an array header, then garbage",
        "malformed",
    ));

    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tenant-ca.pem"), f.ca.pem()).unwrap();
    std::fs::write(dir.join("other-tenant-ca.pem"), f.other_ca.pem()).unwrap();
    let mut json = Vec::new();
    for (file, bytes, what, verdict) in &cases {
        std::fs::write(dir.join(file), bytes).unwrap();
        json.push(serde_json::json!({"file": file, "what": what, "verdict": verdict}));
    }
    let doc = serde_json::json!({
        // Two days on: the batches were stored and forwarded; the expired one was signed late.
        "now": (NOW + Duration::days(2)).unix_timestamp(),
        "imageIds": [IMAGE, OTHER_IMAGE],
        "componentId": COMPONENT,
        "cases": json,
    });
    std::fs::write(
        dir.join("cases.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn every_vector_gets_its_verdict() {
    let dir = dir();
    if std::env::var_os("FERRO_BLESS").is_some() {
        bless(&dir);
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let anchors =
        TenantAnchors::from_pem(&std::fs::read_to_string(dir.join("tenant-ca.pem")).unwrap())
            .unwrap();
    let now = OffsetDateTime::from_unix_timestamp(doc["now"].as_i64().unwrap()).unwrap();
    let expected = ExpectedProvenance {
        image_ids: doc["imageIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Uuid::parse_str(v.as_str().unwrap()).unwrap())
            .collect::<BTreeSet<_>>(),
        component_id: Some(Uuid::parse_str(doc["componentId"].as_str().unwrap()).unwrap()),
        device_ids: None,
        allow_development: false,
    };
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 9, "vectors missing");
    let listed: BTreeSet<&str> = cases.iter().map(|c| c["file"].as_str().unwrap()).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".cose") {
            assert!(
                listed.contains(name.as_str()),
                "{name} has no case in cases.json"
            );
        }
    }
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let verdict = match verify_batch(&bytes, &anchors, now, &expected) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().to_owned(),
        };
        assert_eq!(verdict, case["verdict"].as_str().unwrap(), "{file}");
    }
}
