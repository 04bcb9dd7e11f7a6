//! Signed identity documents: round trips, known answers, and every refusal with its own error.

use std::collections::BTreeMap;

use ciborium::value::{Integer, Value};
use ferro_pki::time::{OffsetDateTime, macros::datetime};
use ferro_pki::*;
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{
    DeviceId, KeyId, Purpose, SoftwareSigningKey, TrustedKeys, VerifyError, parse_unverified, sign1,
};

const TEST_KEY: &str = include_str!("../../../../test-vectors/keys/test-only-signing-key.pem");
const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

fn fixed_key() -> SoftwareSigningKey {
    SoftwareSigningKey::from_pkcs8_pem(TEST_KEY).unwrap()
}

fn record(key: &SoftwareSigningKey) -> RegistrationRecord {
    RegistrationRecord {
        device_key: key.public_key().clone(),
        root_of_trust: RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ManufacturingState::DeviceComplete,
        created_at: T0,
        tpm_attestation_key: None,
    }
}

type Pairs = Vec<(Value, Value)>;
type Decoder = Box<dyn Fn(&[u8]) -> Result<(), DocumentError>>;

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn uint(n: u64) -> Value {
    Value::Integer(Integer::from(n))
}

#[test]
fn registration_record_known_answer_payload() {
    // The payload layout of docs/identity-documents.md, byte for byte (test-only key).
    let key = fixed_key();
    let payload = record(&key).to_cbor().unwrap();
    let id = DeviceId::from_public_key(key.public_key());
    let mut expected = vec![0xa6, 0x01, 0x01, 0x02, 0x58, 0x40];
    expected.extend_from_slice(id.as_bytes());
    expected.extend_from_slice(&[0x03, 0x58, 91]);
    expected.extend_from_slice(&key.public_key().to_spki_der());
    expected.extend_from_slice(&[0x04, 0x01, 0x06, 0x02, 0x07, 0x1a]);
    expected.extend_from_slice(&(T0.unix_timestamp() as u32).to_be_bytes());
    assert_eq!(hex::encode(&payload), hex::encode(&expected));
    // RFC 6979 (`deterministic()`): the whole envelope is deterministic too.
    assert_eq!(
        record(&key).sign(&key.deterministic()).unwrap(),
        record(&key).sign(&key.deterministic()).unwrap()
    );
}

#[test]
fn registration_record_round_trip_and_proof_of_possession() {
    let key = SoftwareSigningKey::generate();
    let signed = record(&key).sign(&key).unwrap();
    let v = verify_registration_record(&signed).unwrap();
    assert_eq!(v.device_id(), DeviceId::from_public_key(key.public_key()));
    assert_eq!(v.record(), &record(&key));

    // TPM record with an EK certificate (any DER certificate stands in for one here).
    let ek_issuer = SoftwareSigningKey::generate();
    let ek = issue_platform_root_certificate(&ek_issuer, T0).unwrap();
    let tpm = RegistrationRecord {
        root_of_trust: RootOfTrust::Tpm,
        tpm_ek_certificate: Some(ek.der().to_vec()),
        manufacturing_state: ManufacturingState::Blank,
        ..record(&key)
    };
    let v = verify_registration_record(&tpm.sign(&key).unwrap()).unwrap();
    assert_eq!(v.into_record(), tpm);

    // EK certificate rules.
    let bad_ek = RegistrationRecord {
        tpm_ek_certificate: Some(b"not a certificate".to_vec()),
        ..tpm.clone()
    };
    assert_eq!(
        bad_ek.to_cbor().unwrap_err().code(),
        "document-invalid-field"
    );
    let soft_with_ek = RegistrationRecord {
        root_of_trust: RootOfTrust::Software,
        ..tpm
    };
    assert_eq!(
        soft_with_ek.to_cbor().unwrap_err().code(),
        "document-invalid-field"
    );
}

/// Format version 2: a TPM record with its attestation key (field 8). Version 1 records (no
/// field 8) are still read and written unchanged.
#[test]
fn registration_record_version_2_attestation_key() {
    let key = SoftwareSigningKey::generate();
    let ak = SoftwareSigningKey::generate();
    let tpm = RegistrationRecord {
        root_of_trust: RootOfTrust::Tpm,
        tpm_attestation_key: Some(ak.public_key().clone()),
        ..record(&key)
    };
    assert_eq!(tpm.format_version(), 2);
    assert_eq!(record(&key).format_version(), 1);
    let payload = tpm.to_cbor().unwrap();
    // a7 (7 fields), version 2, ..., then 08 58 5b <AK SPKI> last.
    assert_eq!(&payload[..3], &[0xa7, 0x01, 0x02]);
    let mut tail = vec![0x08, 0x58, 91];
    tail.extend_from_slice(&ak.public_key().to_spki_der());
    assert!(payload.ends_with(&tail));
    let v = verify_registration_record(&tpm.sign(&key).unwrap()).unwrap();
    assert_eq!(
        v.record().tpm_attestation_key.as_ref(),
        Some(ak.public_key())
    );
    assert_eq!(v.into_record(), tpm);
    // A version-1 TPM record (made before version 2) still verifies, without an attestation key.
    let v1 = RegistrationRecord {
        root_of_trust: RootOfTrust::Tpm,
        ..record(&key)
    };
    let v = verify_registration_record(&v1.sign(&key).unwrap()).unwrap();
    assert_eq!(v.record().tpm_attestation_key, None);

    // Rules: only TPM records have an attestation key, and it is not the device key.
    let soft = RegistrationRecord {
        root_of_trust: RootOfTrust::Software,
        ..tpm.clone()
    };
    assert_eq!(soft.to_cbor().unwrap_err().code(), "document-invalid-field");
    let same = RegistrationRecord {
        tpm_attestation_key: Some(key.public_key().clone()),
        ..tpm.clone()
    };
    assert_eq!(same.to_cbor().unwrap_err().code(), "document-invalid-field");

    // Hand-made payloads, correctly signed by the device key.
    let pairs = match ciborium::de::from_reader::<Value, _>(&payload[..]).unwrap() {
        Value::Map(p) => p,
        _ => unreachable!(),
    };
    let signed = |pairs: Pairs| {
        let bytes = cbor(&Value::Map(pairs));
        verify_registration_record(&sign1(&key, Purpose::RegistrationRecord, &bytes, &[]).unwrap())
    };
    // Version 1 with field 8: an unknown key in version 1.
    let mut v1_with_ak = pairs.clone();
    v1_with_ak[0].1 = uint(1);
    assert_eq!(
        signed(v1_with_ak).unwrap_err().code(),
        "document-unknown-key"
    );
    // Version 2 without field 8.
    let mut v2_without = pairs.clone();
    v2_without.pop();
    assert_eq!(
        signed(v2_without).unwrap_err().code(),
        "document-missing-field"
    );
    // Field 8 not a P-256 key.
    let mut bad_ak = pairs.clone();
    bad_ak.last_mut().unwrap().1 = Value::Bytes(vec![0x30, 0x00]);
    assert_eq!(signed(bad_ak).unwrap_err().code(), "document-invalid-field");
    // Version 3 is unknown.
    let mut v3 = pairs;
    v3[0].1 = uint(3);
    assert_eq!(
        signed(v3).unwrap_err().code(),
        "document-unsupported-version"
    );
}

#[test]
fn registration_record_refusals() {
    let key = SoftwareSigningKey::generate();
    let other = SoftwareSigningKey::generate();

    // Signing with a key other than the record's is refused at the source.
    assert_eq!(
        record(&key).sign(&other).unwrap_err().code(),
        "wrong-signer"
    );

    // A record signed by another key (forged with sign1 directly).
    let payload = record(&key).to_cbor().unwrap();
    let forged = sign1(&other, Purpose::RegistrationRecord, &payload, &[]).unwrap();
    let err = verify_registration_record(&forged).unwrap_err();
    assert!(
        matches!(err, DocumentError::NotSignedByDeviceKey { .. }),
        "{err}"
    );

    // Tampering with the payload inside the envelope: the signature fails.
    let signed = record(&key).sign(&key).unwrap();
    let mut tampered = signed.clone();
    let at = tampered.len() - 64 - 2 - 1; // last byte of created_at (before bstr(64) sig)
    tampered[at] ^= 0x01;
    assert_eq!(
        verify_registration_record(&tampered).unwrap_err().code(),
        "bad-signature"
    );
    // Tampering with the signature.
    let mut bad_sig = signed.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    assert_eq!(
        verify_registration_record(&bad_sig).unwrap_err().code(),
        "bad-signature"
    );

    // A device ID that is not the SHA-512 of the key, correctly signed by the device key.
    let mut pairs = match ciborium::de::from_reader::<Value, _>(&payload[..]).unwrap() {
        Value::Map(m) => m,
        _ => unreachable!(),
    };
    pairs[1].1 = Value::Bytes(vec![0xab; 64]);
    let wrong_id = sign1(
        &key,
        Purpose::RegistrationRecord,
        &cbor(&Value::Map(pairs)),
        &[],
    )
    .unwrap();
    let err = verify_registration_record(&wrong_id).unwrap_err();
    assert!(
        matches!(err, DocumentError::DeviceIdMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.code(), "device-id-mismatch");

    // Another purpose's envelope is not a registration record.
    let as_capability = sign1(&key, Purpose::CapabilityFile, &payload, &[]).unwrap();
    assert!(matches!(
        verify_registration_record(&as_capability),
        Err(DocumentError::Envelope(VerifyError::WrongPurpose { .. }))
    ));
    // Too large.
    assert_eq!(
        verify_registration_record(&vec![0u8; MAX_REGISTRATION_RECORD_LEN + 1])
            .unwrap_err()
            .code(),
        "document-too-large"
    );
}

/// Payload-level refusals shared by every document type: (description, payload, code).
fn malformed_payloads(valid: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let Value::Map(pairs) = ciborium::de::from_reader::<Value, _>(valid).unwrap() else {
        unreachable!()
    };
    let with = |f: &dyn Fn(&mut Pairs)| {
        let mut p = pairs.clone();
        f(&mut p);
        cbor(&Value::Map(p))
    };
    let mut trailing = valid.to_vec();
    trailing.push(0x00);
    // The same map with a non-shortest encoding of key 1 (0x18 0x01 instead of 0x01).
    let mut long_key = vec![valid[0], 0x18, 0x01];
    long_key.extend_from_slice(&valid[2..]);
    vec![
        (
            "unknown key",
            with(&|p| p.push((uint(99), uint(0)))),
            "document-unknown-key",
        ),
        (
            "text key",
            with(&|p| p.push((Value::Text("x".into()), uint(0)))),
            "document-unknown-key",
        ),
        (
            "duplicate key",
            with(&|p| {
                let first = p[0].clone();
                p.push(first)
            }),
            "document-duplicate-key",
        ),
        (
            "missing version",
            with(&|p| {
                p.remove(0);
            }),
            "document-missing-field",
        ),
        (
            "version 99",
            with(&|p| p[0].1 = uint(99)),
            "document-unsupported-version",
        ),
        ("keys out of order", with(&|p| p.swap(1, 2)), ""),
        ("trailing byte", trailing, "document-malformed"),
        ("non-shortest key", long_key, "document-malformed"),
        (
            "not a map",
            cbor(&Value::Array(vec![])),
            "document-malformed",
        ),
        ("not CBOR", vec![0xff, 0x00], "document-malformed"),
        ("empty", vec![], "document-malformed"),
    ]
}

#[test]
fn payload_strictness_is_the_same_for_every_document() {
    let key = SoftwareSigningKey::generate();
    let device = DeviceId::from_public_key(key.public_key());
    let cap = CapabilityFile::app_development(device, vec![key.key_id()], T0);
    let list = key_list(&key, 1);
    let checks: Vec<(Vec<u8>, Decoder)> = vec![
        (
            record(&key).to_cbor().unwrap(),
            Box::new(|b| RegistrationRecord::from_cbor(b).map(|_| ())),
        ),
        (
            cap.to_cbor().unwrap(),
            Box::new(|b| CapabilityFile::from_cbor(b).map(|_| ())),
        ),
        (
            list.to_cbor().unwrap(),
            Box::new(|b| KeyList::from_cbor(b).map(|_| ())),
        ),
        (
            DeviceOwnership {
                device_id: device,
                tenant_id: uuid::Uuid::from_u128(7),
                issued_at: T0,
                image_keys: vec![key.public_key().clone()],
                metadata_keys: vec![key.public_key().clone()],
                ownership_epoch: 0,
            }
            .to_cbor()
            .unwrap(),
            Box::new(|b| DeviceOwnership::from_cbor(b).map(|_| ())),
        ),
        (
            TargetSet {
                device_id: device,
                tenant_id: uuid::Uuid::from_u128(7),
                device_group_id: Some(uuid::Uuid::from_u128(8)),
                version: 1,
                issued_at: T0,
                expires_at: T0 + ferro_pki::time::Duration::days(7),
                manage_apps: true,
                images: vec![],
            }
            .to_cbor()
            .unwrap(),
            Box::new(|b| TargetSet::from_cbor(b).map(|_| ())),
        ),
    ];
    for (valid, decode) in checks {
        decode(&valid).unwrap();
        for (what, bytes, code) in malformed_payloads(&valid) {
            let err = decode(&bytes).expect_err(what);
            if !code.is_empty() {
                assert_eq!(err.code(), code, "{what}: {err}");
            }
        }
    }
}

#[test]
fn capability_files_bind_one_device_and_list_developer_keys() {
    let cap_key = SoftwareSigningKey::generate();
    let trusted: TrustedKeys = [cap_key.public_key().clone()].into_iter().collect();
    let device = DeviceId::from_public_key(SoftwareSigningKey::generate().public_key());
    let other_device = DeviceId::from_public_key(SoftwareSigningKey::generate().public_key());
    let dev_a = KeyId([0xaa; 32]);
    let dev_b = KeyId([0x0b; 32]);

    let file = CapabilityFile::app_development(device, vec![dev_a, dev_b, dev_a], T0);
    let signed = file.sign(&cap_key).unwrap();
    let v = verify_capability(&signed, &trusted, &device).unwrap();
    assert_eq!(v.device_id(), device);
    assert_eq!(
        v.capability(),
        &Capability::AppDevelopment {
            developer_keys: vec![dev_b, dev_a]
        }
    );
    assert_eq!(v.issued_at(), T0);
    assert_eq!(v.signer(), cap_key.key_id());
    assert!(v.allows_test_key(&dev_a) && v.allows_test_key(&dev_b));
    assert!(!v.allows_test_key(&KeyId([0; 32])));

    let err = verify_capability(&signed, &trusted, &other_device).unwrap_err();
    assert!(matches!(err, DocumentError::WrongDevice { .. }), "{err}");
    assert_eq!(err.code(), "wrong-device");

    let field = CapabilityFile {
        device_id: device,
        capability: Capability::FieldServicing,
        issued_at: T0,
    };
    let v = verify_capability(&field.sign(&cap_key).unwrap(), &trusted, &device).unwrap();
    assert_eq!(v.capability(), &Capability::FieldServicing);
    assert!(!v.allows_test_key(&dev_a));

    // Signed by an untrusted key / for another purpose.
    let rogue = SoftwareSigningKey::generate();
    assert_eq!(
        verify_capability(&file.sign(&rogue).unwrap(), &trusted, &device)
            .unwrap_err()
            .code(),
        "unknown-key"
    );
    let payload = file.to_cbor().unwrap();
    let as_keylist = sign1(&cap_key, Purpose::KeyList, &payload, &[]).unwrap();
    assert_eq!(
        verify_capability(&as_keylist, &trusted, &device)
            .unwrap_err()
            .code(),
        "wrong-purpose"
    );
    // No developer keys, or too many.
    let empty = CapabilityFile::app_development(device, vec![], T0);
    assert_eq!(
        empty.to_cbor().unwrap_err().code(),
        "document-invalid-field"
    );
    let many = CapabilityFile::app_development(
        device,
        (0..=MAX_DEVELOPER_KEYS as u8)
            .map(|i| KeyId([i; 32]))
            .collect(),
        T0,
    );
    assert_eq!(many.to_cbor().unwrap_err().code(), "document-invalid-field");
}

#[test]
fn capability_payload_rules() {
    let device = DeviceId::from_bytes([7; 64]);
    let app = CapabilityFile::app_development(device, vec![KeyId([1; 32])], T0);
    let Value::Map(pairs) =
        ciborium::de::from_reader::<Value, _>(&app.to_cbor().unwrap()[..]).unwrap()
    else {
        unreachable!()
    };
    // AppDevelopment without developer keys.
    let mut p = pairs.clone();
    p.pop();
    assert_eq!(
        CapabilityFile::from_cbor(&cbor(&Value::Map(p)))
            .unwrap_err()
            .code(),
        "document-missing-field"
    );
    // FieldServicing with developer keys.
    let mut p = pairs.clone();
    p[2].1 = uint(2);
    assert_eq!(
        CapabilityFile::from_cbor(&cbor(&Value::Map(p)))
            .unwrap_err()
            .code(),
        "document-invalid-field"
    );
    // Unknown type.
    let mut p = pairs.clone();
    p[2].1 = uint(3);
    assert_eq!(
        CapabilityFile::from_cbor(&cbor(&Value::Map(p)))
            .unwrap_err()
            .code(),
        "document-invalid-field"
    );
    // Short device ID.
    let mut p = pairs;
    p[1].1 = Value::Bytes(vec![7; 63]);
    assert_eq!(
        CapabilityFile::from_cbor(&cbor(&Value::Map(p)))
            .unwrap_err()
            .code(),
        "document-invalid-field"
    );
}

fn key_list(seed: &SoftwareSigningKey, version: u64) -> KeyList {
    let mut keys = BTreeMap::new();
    keys.insert(
        PlatformKeyRole::OsRelease,
        vec![
            seed.public_key().clone(),
            SoftwareSigningKey::generate().public_key().clone(),
        ],
    );
    keys.insert(
        PlatformKeyRole::Capability,
        vec![SoftwareSigningKey::generate().public_key().clone()],
    );
    KeyList {
        version,
        issued_at: T0,
        keys,
    }
}

#[test]
fn key_lists_are_signed_by_the_root() {
    let root = SoftwareSigningKey::generate();
    let os = SoftwareSigningKey::generate();
    let list = key_list(&os, 3);
    let signed = list.sign(&root).unwrap();
    let v = verify_key_list(&signed, root.public_key()).unwrap();
    assert_eq!(v.version(), 3);
    assert_eq!(v.issued_at(), T0);
    assert!(v.trusted(PlatformKeyRole::OsRelease).contains(&os.key_id()));
    assert_eq!(v.trusted(PlatformKeyRole::OsRelease).len(), 2);
    assert_eq!(v.key_ids(PlatformKeyRole::Capability).len(), 1);
    assert!(v.trusted(PlatformKeyRole::ServiceTls).is_empty());
    let mut sorted = list.clone();
    for keys in sorted.keys.values_mut() {
        keys.sort_by_key(|k| k.key_id());
    }
    assert_eq!(v.list(), &sorted);

    let other_root = SoftwareSigningKey::generate();
    assert_eq!(
        verify_key_list(&signed, other_root.public_key())
            .unwrap_err()
            .code(),
        "unknown-key"
    );
    assert_eq!(
        verify_key_list(&list.sign(&other_root).unwrap(), root.public_key())
            .unwrap_err()
            .code(),
        "unknown-key"
    );

    // Required roles, version >= 1, no duplicate keys.
    let mut no_cap = list.clone();
    no_cap.keys.remove(&PlatformKeyRole::Capability);
    assert_eq!(
        no_cap.to_cbor().unwrap_err().code(),
        "document-missing-field"
    );
    let mut v0 = list.clone();
    v0.version = 0;
    assert_eq!(v0.to_cbor().unwrap_err().code(), "document-invalid-field");
    let mut dup = list.clone();
    dup.keys.insert(
        PlatformKeyRole::ServiceTls,
        vec![os.public_key().clone(), os.public_key().clone()],
    );
    assert_eq!(dup.to_cbor().unwrap_err().code(), "document-invalid-field");

    // An envelope claiming the key-list purpose but carrying a capability payload.
    let payload =
        CapabilityFile::app_development(DeviceId::from_bytes([1; 64]), vec![KeyId([1; 32])], T0)
            .to_cbor()
            .unwrap();
    let wrong = sign1(&root, Purpose::KeyList, &payload, &[]).unwrap();
    assert!(verify_key_list(&wrong, root.public_key()).is_err());
}

#[test]
fn documents_are_standard_cose_with_their_purpose() {
    let key = SoftwareSigningKey::generate();
    let signed = record(&key).sign(&key).unwrap();
    let env = parse_unverified(&signed).unwrap();
    assert_eq!(env.claimed_purpose, Purpose::RegistrationRecord);
    assert_eq!(
        Purpose::RegistrationRecord.content_type(),
        "application/vnd.ferrosphere.registration-record+cbor"
    );
    assert_eq!(env.claimed_kid, key.key_id());
}
