//! Golden test vectors of the signed identity documents (test-vectors/identity/): made from the
//! checked-in TEST-ONLY key with fixed times, so ECDSA's RFC 6979 nonces (`deterministic()`) make them byte-stable.
//! The test rebuilds each document and compares it with the checked-in file byte for byte
//! (`FERRO_BLESS=1` rewrites them after an intended format change), then verifies each file and
//! checks that a one-byte change is refused. The files also seed the `identity_documents` fuzzer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferro_pki::time::OffsetDateTime;
use ferro_pki::{
    CapabilityFile, KeyList, ManufacturingState, PlatformKeyRole, RegistrationRecord, RootOfTrust,
    verify_capability, verify_key_list, verify_registration_record,
};
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{DeviceId, SoftwareSigningKey, TrustedKeys};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn test_key(name: &str) -> SoftwareSigningKey {
    let pem = std::fs::read_to_string(repo().join("test-vectors/keys").join(name)).unwrap();
    SoftwareSigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// Compares with (or, blessing, writes) `test-vectors/identity/<name>`; returns the bytes.
fn golden(name: &str, bytes: Vec<u8>) -> Vec<u8> {
    let path = repo().join("test-vectors/identity").join(name);
    if std::env::var_os("FERRO_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let stored = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with FERRO_BLESS=1", path.display()));
    assert_eq!(
        stored, bytes,
        "{name} drifted: FERRO_BLESS=1 rewrites it after an intended change"
    );
    stored
}

fn flipped(bytes: &[u8]) -> Vec<u8> {
    let mut copy = bytes.to_vec();
    let middle = copy.len() / 2;
    copy[middle] ^= 0x01;
    copy
}

#[test]
fn identity_document_vectors() {
    // The "device" is the test-only signing key; the "platform" the untrusted test key.
    let device = test_key("test-only-signing-key.pem");
    let platform = test_key("test-only-untrusted-key.pem");
    let device_id = DeviceId::from_public_key(device.public_key());

    let record = RegistrationRecord {
        device_key: device.public_key().clone(),
        root_of_trust: RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ManufacturingState::DeviceComplete,
        created_at: at(1_790_000_000),
        tpm_attestation_key: None,
    };
    let bytes = golden(
        "registration-record.cose",
        record.sign(&device.deterministic()).unwrap(),
    );
    let verified = verify_registration_record(&bytes).unwrap();
    assert_eq!(verified.device_id(), device_id);
    assert!(verify_registration_record(&flipped(&bytes)).is_err());

    // Format version 2: a TPM record with its attestation key (the untrusted test key).
    let tpm_record = RegistrationRecord {
        root_of_trust: RootOfTrust::Tpm,
        tpm_attestation_key: Some(platform.public_key().clone()),
        ..record.clone()
    };
    let bytes = golden(
        "registration-record-tpm-v2.cose",
        tpm_record.sign(&device.deterministic()).unwrap(),
    );
    let verified = verify_registration_record(&bytes).unwrap();
    assert_eq!(verified.record(), &tpm_record);
    assert!(verify_registration_record(&flipped(&bytes)).is_err());

    let capability = CapabilityFile::app_development(
        device_id,
        vec![platform.key_id(), device.key_id()],
        at(1_790_000_100),
    );
    let bytes = golden(
        "capability-app-development.cose",
        capability.sign(&platform.deterministic()).unwrap(),
    );
    let trusted: TrustedKeys = [platform.public_key().clone()].into_iter().collect();
    let verified = verify_capability(&bytes, &trusted, &device_id).unwrap();
    assert!(verified.allows_test_key(&device.key_id()));
    assert!(verify_capability(&flipped(&bytes), &trusted, &device_id).is_err());
    let other = DeviceId::from_public_key(platform.public_key());
    assert!(verify_capability(&bytes, &trusted, &other).is_err());

    let list = KeyList {
        version: 1,
        issued_at: at(1_790_000_200),
        keys: BTreeMap::from([
            (
                PlatformKeyRole::OsRelease,
                vec![platform.public_key().clone()],
            ),
            (
                PlatformKeyRole::Capability,
                vec![platform.public_key().clone()],
            ),
        ]),
    };
    let bytes = golden(
        "key-list.cose",
        list.sign(&platform.deterministic()).unwrap(),
    );
    let verified = verify_key_list(&bytes, platform.public_key()).unwrap();
    assert_eq!(verified.version(), 1);
    assert!(verify_key_list(&bytes, device.public_key()).is_err());
    assert!(verify_key_list(&flipped(&bytes), platform.public_key()).is_err());
}
