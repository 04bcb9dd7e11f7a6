//! Update documents (docs/updates.md, docs/identity-documents.md): device ownership documents and
//! target sets (round trips, strict decoding, every refusal with its code), and device
//! certificates as the service verifies them for the update routes.

use ciborium::value::{Integer, Value};
use ferro_pki::time::{Duration, OffsetDateTime, macros::datetime};
use ferro_pki::*;
use ferro_signing::{DeviceId, Purpose, SoftwareSigningKey, TrustedKeys, VerifyError, sign1};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn uint(n: u64) -> Value {
    Value::Integer(Integer::from(n))
}

type Pairs = Vec<(Value, Value)>;

fn pairs(payload: &[u8]) -> Pairs {
    match ciborium::de::from_reader::<Value, _>(payload).unwrap() {
        Value::Map(m) => m,
        _ => unreachable!(),
    }
}

fn device() -> (SoftwareSigningKey, DeviceId) {
    let k = SoftwareSigningKey::generate();
    let id = DeviceId::from_public_key(k.public_key());
    (k, id)
}

/// The platform endorsement key, a tenant's image and metadata keys.
struct Keys {
    endorsement: SoftwareSigningKey,
    image: SoftwareSigningKey,
    metadata: SoftwareSigningKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            endorsement: SoftwareSigningKey::generate(),
            image: SoftwareSigningKey::generate(),
            metadata: SoftwareSigningKey::generate(),
        }
    }

    fn trusted(&self) -> TrustedKeys {
        [self.endorsement.public_key().clone()]
            .into_iter()
            .collect()
    }
}

fn ownership(keys: &Keys, device: DeviceId, tenant: Uuid) -> DeviceOwnership {
    DeviceOwnership {
        device_id: device,
        tenant_id: tenant,
        issued_at: T0,
        image_keys: vec![keys.image.public_key().clone()],
        metadata_keys: vec![keys.metadata.public_key().clone()],
        ownership_epoch: 0,
    }
}

fn image(component: u128, kind: TargetKind) -> TargetImage {
    TargetImage {
        component_id: Uuid::from_u128(component),
        image_id: Uuid::from_u128(component + 1000),
        kind,
        version: "1.2.3".into(),
        security_version: 4,
        package_sha256: [component as u8; 32],
        package_size: 4096 + component as u64,
        payload_sha256: [0xa0 | component as u8; 32],
    }
}

fn target_set(device: DeviceId, tenant: Uuid) -> TargetSet {
    TargetSet {
        device_id: device,
        tenant_id: tenant,
        device_group_id: Some(Uuid::from_u128(42)),
        version: 3,
        issued_at: T0,
        expires_at: T0 + Duration::days(7),
        manage_apps: true,
        images: vec![
            image(1, TargetKind::Os),
            image(2, TargetKind::App),
            image(3, TargetKind::RtApp),
            image(4, TargetKind::BoardConfig),
        ],
    }
}

#[test]
fn ownership_round_trip_and_verification() {
    let keys = Keys::new();
    let (_, dev) = device();
    let tenant = Uuid::from_u128(7);
    let doc = ownership(&keys, dev, tenant);
    let payload = doc.to_cbor().unwrap();
    assert_eq!(DeviceOwnership::from_cbor(&payload).unwrap(), doc);
    // The payload layout of docs/identity-documents.md: keys 1..=6 ascending.
    let p = pairs(&payload);
    let ks: Vec<Value> = p.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(ks, (1..=6).map(uint).collect::<Vec<_>>());
    assert_eq!(p[0].1, uint(1));
    assert_eq!(p[2].1, Value::Bytes(tenant.as_bytes().to_vec()));

    let signed = doc.sign(&keys.endorsement).unwrap();
    assert!(signed.len() <= MAX_OWNERSHIP_LEN);
    let v = verify_ownership(&signed, &keys.trusted(), &dev).unwrap();
    assert_eq!(v.document(), &doc);
    assert_eq!(v.tenant_id(), tenant);
    assert_eq!(v.signer(), keys.endorsement.key_id());
    assert!(v.image_keys().contains(&keys.image.key_id()));
    assert!(v.metadata_keys().contains(&keys.metadata.key_id()));
    assert!(!v.metadata_keys().contains(&keys.image.key_id()));
    assert_eq!(
        ferro_signing::parse_unverified(&signed)
            .unwrap()
            .claimed_purpose,
        Purpose::DeviceOwnership
    );
    assert_eq!(
        Purpose::DeviceOwnership.content_type(),
        "application/vnd.ferrosphere.device-ownership+cbor"
    );

    // A device that changed tenant: version 2, field 7 the epoch; epoch 0 stays version 1.
    let mut moved = doc.clone();
    moved.ownership_epoch = 3;
    let moved_payload = moved.to_cbor().unwrap();
    let p = pairs(&moved_payload);
    assert_eq!(p[0].1, uint(2));
    assert_eq!(p.last().unwrap(), &(uint(7), uint(3)));
    assert_eq!(DeviceOwnership::from_cbor(&moved_payload).unwrap(), moved);
    let v = verify_ownership(
        &moved.sign(&keys.endorsement).unwrap(),
        &keys.trusted(),
        &dev,
    );
    assert_eq!(v.unwrap().document().ownership_epoch, 3);

    // Several keys (rotation overlap) are encoded sorted by key ID, whatever the given order.
    let extra: Vec<SoftwareSigningKey> = (0..3).map(|_| SoftwareSigningKey::generate()).collect();
    let mut many = doc.clone();
    many.metadata_keys = extra.iter().map(|k| k.public_key().clone()).collect();
    many.metadata_keys.push(keys.metadata.public_key().clone());
    let back = DeviceOwnership::from_cbor(&many.to_cbor().unwrap()).unwrap();
    let mut sorted = many.metadata_keys.clone();
    sorted.sort_by_key(|k| k.key_id());
    assert_eq!(back.metadata_keys, sorted);
}

#[test]
fn ownership_refusals() {
    let keys = Keys::new();
    let (_, dev) = device();
    let (_, other_dev) = device();
    let doc = ownership(&keys, dev, Uuid::from_u128(7));
    let signed = doc.sign(&keys.endorsement).unwrap();

    // Another device.
    let err = verify_ownership(&signed, &keys.trusted(), &other_dev).unwrap_err();
    assert!(matches!(err, DocumentError::WrongDevice { .. }), "{err}");
    assert_eq!(err.code(), "wrong-device");
    // Signed by a key that is not an endorsement key (here: the tenant's own metadata key).
    let by_tenant = doc.sign(&keys.metadata).unwrap();
    assert_eq!(
        verify_ownership(&by_tenant, &keys.trusted(), &dev)
            .unwrap_err()
            .code(),
        "unknown-key"
    );
    // The endorsement key, but another purpose (a key list's, a target set's).
    let payload = doc.to_cbor().unwrap();
    for purpose in [
        Purpose::KeyList,
        Purpose::TargetSet,
        Purpose::CapabilityFile,
    ] {
        let wrong = sign1(&keys.endorsement, purpose, &payload, &[]).unwrap();
        assert!(matches!(
            verify_ownership(&wrong, &keys.trusted(), &dev),
            Err(DocumentError::Envelope(VerifyError::WrongPurpose { .. }))
        ));
    }
    // Tampered signature.
    let mut bad = signed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        verify_ownership(&bad, &keys.trusted(), &dev)
            .unwrap_err()
            .code(),
        "bad-signature"
    );
    // Too large.
    assert_eq!(
        verify_ownership(&vec![0; MAX_OWNERSHIP_LEN + 1], &keys.trusted(), &dev)
            .unwrap_err()
            .code(),
        "document-too-large"
    );

    // Key lists: none, too many, a key twice.
    let mut none = doc.clone();
    none.image_keys.clear();
    assert_eq!(none.to_cbor().unwrap_err().code(), "document-invalid-field");
    let mut five = doc.clone();
    five.metadata_keys = (0..=MAX_TENANT_KEYS)
        .map(|_| SoftwareSigningKey::generate().public_key().clone())
        .collect();
    assert_eq!(five.to_cbor().unwrap_err().code(), "document-invalid-field");
    let mut twice = doc.clone();
    twice.metadata_keys.push(keys.metadata.public_key().clone());
    assert_eq!(
        twice.to_cbor().unwrap_err().code(),
        "document-invalid-field"
    );

    // Payload-level refusals, each re-signed by the endorsement key so only the payload is wrong.
    let p = pairs(&payload);
    let edit = |f: &dyn Fn(&mut Pairs)| {
        let mut q = p.clone();
        f(&mut q);
        cbor(&Value::Map(q))
    };
    let two_keys = {
        let mut k = [
            keys.image.public_key().clone(),
            keys.metadata.public_key().clone(),
        ];
        k.sort_by_key(|k| k.key_id());
        k
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown key 7",
            edit(&|q| q.push((uint(7), uint(0)))),
            "document-unknown-key",
        ),
        (
            "duplicate key",
            edit(&|q| {
                let d = q[1].clone();
                q.insert(2, d)
            }),
            "document-duplicate-key",
        ),
        (
            "missing metadata keys",
            edit(&|q| {
                q.pop();
            }),
            "document-missing-field",
        ),
        (
            "version 3",
            edit(&|q| q[0].1 = uint(3)),
            "document-unsupported-version",
        ),
        (
            "version 2 without the ownership epoch",
            edit(&|q| q[0].1 = uint(2)),
            "document-missing-field",
        ),
        (
            "version 2 with ownership epoch 0",
            edit(&|q| {
                q[0].1 = uint(2);
                q.push((uint(7), uint(0)))
            }),
            "document-invalid-field",
        ),
        (
            "version 2 with an unknown key 8",
            edit(&|q| {
                q[0].1 = uint(2);
                q.push((uint(7), uint(1)));
                q.push((uint(8), uint(0)))
            }),
            "document-unknown-key",
        ),
        (
            "short device ID",
            edit(&|q| q[1].1 = Value::Bytes(vec![1; 63])),
            "document-invalid-field",
        ),
        (
            "tenant ID of 15 bytes",
            edit(&|q| q[2].1 = Value::Bytes(vec![1; 15])),
            "document-invalid-field",
        ),
        (
            "tenant ID as text",
            edit(&|q| q[2].1 = Value::Text(Uuid::from_u128(7).to_string())),
            "document-invalid-field",
        ),
        (
            "issued_at negative",
            edit(&|q| q[3].1 = Value::Integer(Integer::from(-1))),
            "document-invalid-field",
        ),
        (
            "image keys empty",
            edit(&|q| q[4].1 = Value::Array(vec![])),
            "document-invalid-field",
        ),
        (
            "a key that is not an SPKI",
            edit(&|q| q[4].1 = Value::Array(vec![Value::Bytes(vec![4; 65])])),
            "document-invalid-field",
        ),
        (
            "keys not sorted by key ID",
            edit(&|q| {
                q[5].1 = Value::Array(vec![
                    Value::Bytes(two_keys[1].to_spki_der()),
                    Value::Bytes(two_keys[0].to_spki_der()),
                ])
            }),
            "document-malformed",
        ),
        (
            "a key listed twice",
            edit(&|q| {
                q[5].1 = Value::Array(vec![
                    Value::Bytes(two_keys[0].to_spki_der()),
                    Value::Bytes(two_keys[0].to_spki_der()),
                ])
            }),
            "document-invalid-field",
        ),
        (
            "keys out of order",
            edit(&|q| q.swap(3, 4)),
            "document-malformed",
        ),
        (
            "non-shortest version",
            {
                let mut b = vec![payload[0], 0x18, 0x01];
                b.extend_from_slice(&payload[2..]);
                b
            },
            "document-malformed",
        ),
        (
            "trailing byte",
            {
                let mut b = payload.clone();
                b.push(0);
                b
            },
            "document-malformed",
        ),
    ];
    for (what, bytes, code) in cases {
        let err = DeviceOwnership::from_cbor(&bytes).expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
        let signed = sign1(&keys.endorsement, Purpose::DeviceOwnership, &bytes, &[]).unwrap();
        let err = verify_ownership(&signed, &keys.trusted(), &dev).expect_err(what);
        assert_eq!(err.code(), code, "{what} (signed): {err}");
    }
}

#[test]
fn target_set_round_trip_and_verification() {
    let keys = Keys::new();
    let (_, dev) = device();
    let tenant = Uuid::from_u128(7);
    let owner = verify_ownership(
        &ownership(&keys, dev, tenant)
            .sign(&keys.endorsement)
            .unwrap(),
        &keys.trusted(),
        &dev,
    )
    .unwrap();
    let set = target_set(dev, tenant);
    let payload = set.to_cbor().unwrap();
    assert_eq!(TargetSet::from_cbor(&payload).unwrap(), set);
    let p = pairs(&payload);
    let ks: Vec<Value> = p.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(ks, (1..=9).map(uint).collect::<Vec<_>>());
    // An image is an array of 8 fields in the documented order.
    let Value::Array(images) = &p[8].1 else {
        panic!("images")
    };
    let Value::Array(first) = &images[0] else {
        panic!("image")
    };
    assert_eq!(first.len(), 8);
    assert_eq!(first[2], uint(3)); // Os
    assert_eq!(first[3], Value::Text("1.2.3".into()));
    assert_eq!(set.os().unwrap().component_id, Uuid::from_u128(1));

    let signed = set.sign(&keys.metadata).unwrap();
    let v = verify_target_set(&signed, &owner, &dev).unwrap();
    assert_eq!(v.target_set(), &set);
    assert_eq!(v.signer(), keys.metadata.key_id());

    // No group (key 4 absent), no images, manage_apps false: still a valid set.
    let bare = TargetSet {
        device_group_id: None,
        manage_apps: false,
        images: vec![],
        ..set.clone()
    };
    let payload = bare.to_cbor().unwrap();
    assert!(pairs(&payload).iter().all(|(k, _)| *k != uint(4)));
    assert_eq!(TargetSet::from_cbor(&payload).unwrap(), bare);
    assert!(bare.os().is_none());
    let v = verify_target_set(&bare.sign(&keys.metadata).unwrap(), &owner, &dev).unwrap();
    assert_eq!(v.target_set(), &bare);
}

#[test]
fn target_set_refusals() {
    let keys = Keys::new();
    let (_, dev) = device();
    let (_, other_dev) = device();
    let tenant = Uuid::from_u128(7);
    let owner = verify_ownership(
        &ownership(&keys, dev, tenant)
            .sign(&keys.endorsement)
            .unwrap(),
        &keys.trusted(),
        &dev,
    )
    .unwrap();
    let set = target_set(dev, tenant);
    let signed = set.sign(&keys.metadata).unwrap();

    // The ownership document's device is checked by the caller; the set's device here.
    let err = verify_target_set(&signed, &owner, &other_dev).unwrap_err();
    assert_eq!(err.code(), "wrong-device", "{err}");
    // A set for another device, signed by the right key.
    let for_other = target_set(other_dev, tenant).sign(&keys.metadata).unwrap();
    assert_eq!(
        verify_target_set(&for_other, &owner, &dev)
            .unwrap_err()
            .code(),
        "wrong-device"
    );
    // Signed by the tenant image key, the endorsement key, another tenant's metadata key.
    let other_tenant = Keys::new();
    for wrong_key in [&keys.image, &keys.endorsement, &other_tenant.metadata] {
        assert_eq!(
            verify_target_set(&set.sign(wrong_key).unwrap(), &owner, &dev)
                .unwrap_err()
                .code(),
            "unknown-key"
        );
    }
    // Another tenant's metadata key, with another tenant's genuine ownership document for this
    // device: the set verifies only under that (other) ownership, never under ours.
    let other_owner = verify_ownership(
        &ownership(&other_tenant, dev, Uuid::from_u128(8))
            .sign(&keys.endorsement)
            .unwrap(),
        &keys.trusted(),
        &dev,
    )
    .unwrap();
    let theirs = target_set(dev, Uuid::from_u128(8))
        .sign(&other_tenant.metadata)
        .unwrap();
    assert!(verify_target_set(&theirs, &other_owner, &dev).is_ok());
    assert_eq!(
        verify_target_set(&theirs, &owner, &dev).unwrap_err().code(),
        "unknown-key"
    );
    // Signed by our metadata key but naming another tenant than the ownership document.
    let renamed = target_set(dev, Uuid::from_u128(8))
        .sign(&keys.metadata)
        .unwrap();
    let err = verify_target_set(&renamed, &owner, &dev).unwrap_err();
    assert!(
        matches!(
            err,
            DocumentError::InvalidField {
                field: "tenant_id",
                ..
            }
        ),
        "{err}"
    );
    // The right key, another purpose.
    let payload = set.to_cbor().unwrap();
    for purpose in [
        Purpose::ImagePackage,
        Purpose::DeviceOwnership,
        Purpose::CapabilityFile,
    ] {
        let wrong = sign1(&keys.metadata, purpose, &payload, &[]).unwrap();
        assert_eq!(
            verify_target_set(&wrong, &owner, &dev).unwrap_err().code(),
            "wrong-purpose"
        );
    }
    // Too large.
    assert_eq!(
        verify_target_set(&vec![0; MAX_TARGET_SET_LEN + 1], &owner, &dev)
            .unwrap_err()
            .code(),
        "document-too-large"
    );

    // Encoding refusals.
    let refused = |s: TargetSet, what: &str| {
        let err = s.to_cbor().expect_err(what);
        assert_eq!(err.code(), "document-invalid-field", "{what}: {err}");
        assert!(s.sign(&keys.metadata).is_err(), "{what}");
    };
    refused(
        TargetSet {
            version: 0,
            ..set.clone()
        },
        "version 0",
    );
    refused(
        TargetSet {
            expires_at: set.issued_at - Duration::seconds(1),
            ..set.clone()
        },
        "expiry before issue",
    );
    refused(
        TargetSet {
            expires_at: set.issued_at,
            ..set.clone()
        },
        "expiry at issue",
    );
    let mut unsorted = set.clone();
    unsorted.images.swap(1, 2);
    refused(unsorted, "unsorted components");
    let mut duplicate = set.clone();
    duplicate.images[2].component_id = duplicate.images[1].component_id;
    refused(duplicate, "duplicate component");
    let mut two_os = set.clone();
    two_os.images[1].kind = TargetKind::Os;
    refused(two_os, "two OS images");
    let mut long_version = set.clone();
    long_version.images[0].version = "1".repeat(33);
    refused(long_version, "version text of 33 characters");
    let mut empty_version = set.clone();
    empty_version.images[0].version.clear();
    refused(empty_version, "empty version text");
    let mut many = set.clone();
    many.images = (0..=MAX_TARGET_IMAGES as u128)
        .map(|i| image(10 + i, TargetKind::App))
        .collect();
    refused(many, "65 images");

    // Decoding refusals, each re-signed by the metadata key so only the payload is wrong.
    let p = pairs(&payload);
    let edit = |f: &dyn Fn(&mut Pairs)| {
        let mut q = p.clone();
        f(&mut q);
        cbor(&Value::Map(q))
    };
    let edit_image = |i: usize, f: &dyn Fn(&mut Vec<Value>)| {
        edit(&|q| {
            let Value::Array(images) = &mut q[8].1 else {
                unreachable!()
            };
            let Value::Array(fields) = &mut images[i] else {
                unreachable!()
            };
            f(fields);
        })
    };
    let images_of = |q: &mut Pairs| -> Vec<Value> {
        let Value::Array(images) = q[8].1.clone() else {
            unreachable!()
        };
        images
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown key 10",
            edit(&|q| q.push((uint(10), uint(0)))),
            "document-unknown-key",
        ),
        (
            "negative key",
            edit(&|q| q.push((Value::Integer(Integer::from(-1)), uint(0)))),
            "document-unknown-key",
        ),
        (
            "duplicate key",
            edit(&|q| {
                let d = q[4].clone();
                q.insert(5, d)
            }),
            "document-duplicate-key",
        ),
        (
            "missing images",
            edit(&|q| {
                q.pop();
            }),
            "document-missing-field",
        ),
        (
            "missing manage_apps",
            edit(&|q| {
                q.remove(7);
            }),
            "document-missing-field",
        ),
        (
            "version 2 of the format",
            edit(&|q| q[0].1 = uint(2)),
            "document-unsupported-version",
        ),
        (
            "set version 0",
            edit(&|q| q[4].1 = uint(0)),
            "document-invalid-field",
        ),
        (
            "expiry before issue",
            edit(&|q| q[6].1 = uint(T0.unix_timestamp() as u64 - 1)),
            "document-invalid-field",
        ),
        (
            "manage_apps not a boolean",
            edit(&|q| q[7].1 = uint(1)),
            "document-invalid-field",
        ),
        (
            "device ID of 65 bytes",
            edit(&|q| q[1].1 = Value::Bytes(vec![1; 65])),
            "document-invalid-field",
        ),
        (
            "group ID of 17 bytes",
            edit(&|q| q[3].1 = Value::Bytes(vec![1; 17])),
            "document-invalid-field",
        ),
        (
            "unsorted components",
            edit(&|q| {
                let mut images = images_of(q);
                images.swap(0, 3);
                q[8].1 = Value::Array(images);
            }),
            "document-invalid-field",
        ),
        (
            "duplicate component",
            edit(&|q| {
                let mut images = images_of(q);
                let d = images[1].clone();
                images.insert(1, d);
                q[8].1 = Value::Array(images);
            }),
            "document-invalid-field",
        ),
        (
            "two OS images",
            edit_image(1, &|f| f[2] = uint(3)),
            "document-invalid-field",
        ),
        (
            "unknown image kind",
            edit_image(1, &|f| f[2] = uint(5)),
            "document-invalid-field",
        ),
        (
            "an image of 7 fields",
            edit_image(1, &|f| {
                f.pop();
            }),
            "document-invalid-field",
        ),
        (
            "an image of 9 fields",
            edit_image(1, &|f| f.push(uint(0))),
            "document-invalid-field",
        ),
        (
            "package digest of 31 bytes",
            edit_image(1, &|f| f[5] = Value::Bytes(vec![1; 31])),
            "document-invalid-field",
        ),
        (
            "payload digest of 33 bytes",
            edit_image(1, &|f| f[7] = Value::Bytes(vec![1; 33])),
            "document-invalid-field",
        ),
        (
            "version as bytes",
            edit_image(1, &|f| f[3] = Value::Bytes(b"1.0.0".to_vec())),
            "document-invalid-field",
        ),
        (
            "security version above 32 bits",
            edit_image(1, &|f| f[4] = uint(u64::from(u32::MAX) + 1)),
            "document-invalid-field",
        ),
        (
            "component ID as text",
            edit_image(1, &|f| f[0] = Value::Text(Uuid::from_u128(2).to_string())),
            "document-invalid-field",
        ),
        (
            "keys out of order",
            edit(&|q| q.swap(4, 5)),
            "document-malformed",
        ),
        (
            "non-shortest set version",
            {
                // Key 5 holds 3 (0x03); encode it as 0x18 0x03.
                let at = payload.windows(2).position(|w| w == [0x05, 0x03]).unwrap();
                let mut b = payload[..=at].to_vec();
                b.extend_from_slice(&[0x18, 0x03]);
                b.extend_from_slice(&payload[at + 2..]);
                b
            },
            "document-malformed",
        ),
        (
            "indefinite-length map",
            {
                let mut b = vec![0xbf];
                b.extend_from_slice(&payload[1..]);
                b.push(0xff);
                b
            },
            "document-malformed",
        ),
        (
            "trailing byte",
            {
                let mut b = payload.clone();
                b.push(0);
                b
            },
            "document-malformed",
        ),
        (
            "not a map",
            cbor(&Value::Array(vec![])),
            "document-malformed",
        ),
    ];
    for (what, bytes, code) in cases {
        let err = TargetSet::from_cbor(&bytes).expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
        let signed = sign1(&keys.metadata, Purpose::TargetSet, &bytes, &[]).unwrap();
        let err = verify_target_set(&signed, &owner, &dev).expect_err(what);
        assert_eq!(err.code(), code, "{what} (signed): {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Device certificates

fn tenant(n: u128) -> Uuid {
    Uuid::from_u128(0x1111_2222_3333_4444_8555_0000_0000_0000 + n)
}

/// A certificate for `subject_key` named `CN=<cn>, O=<tenant>`, issued by `ca` with rcgen
/// directly (so it can say what `issue_device_certificate` refuses to).
fn forged_device_certificate(
    ca: &TenantCa,
    store: &FileKeyStore,
    ca_org: &str,
    cn: &str,
    tenant_id: Uuid,
    subject_key: &SoftwareSigningKey,
) -> Vec<u8> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, Issuer};
    let ca_signer = store.signer(ca.key_name()).unwrap();
    let mut issuer_dn = DistinguishedName::new();
    issuer_dn.push(
        DnType::CommonName,
        format!("{TENANT_CA_CN_PREFIX}{}", ca.tenant_id().hyphenated()),
    );
    issuer_dn.push(DnType::OrganizationName, ca_org);
    let mut ip = CertificateParams::default();
    ip.distinguished_name = issuer_dn;
    ip.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let issuer = Issuer::new(ip, RcgenSigner::new(ca_signer.as_ref()));
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, tenant_id.hyphenated().to_string());
    p.distinguished_name = dn;
    p.not_before = T0;
    p.not_after = T0 + Duration::hours(24);
    p.is_ca = IsCa::ExplicitNoCa;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42; 16]));
    p.signed_by(&RcgenSigner::new(subject_key), &issuer)
        .unwrap()
        .der()
        .to_vec()
}

#[test]
fn device_certificates_verify_against_their_tenant_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileKeyStore::open(&tmp.path().join("keys")).unwrap();
    let ca_a = create_tenant_ca(&store, tenant(1), "A", T0).unwrap();
    let ca_b = create_tenant_ca(&store, tenant(2), "B", T0).unwrap();
    let (key, dev) = device();
    let at = T0 + Duration::hours(1);
    let cert = issue_device_certificate(
        &ca_a,
        &store,
        &dev,
        tenant(1),
        key.public_key(),
        T0,
        DEVICE_CERT_VALIDITY,
    )
    .unwrap();

    let parsed = DeviceCertificate::parse(cert.der()).unwrap();
    assert_eq!(parsed.device_id, dev);
    assert_eq!(parsed.tenant_id, tenant(1));
    assert_eq!(&parsed.public_key, key.public_key());
    assert_eq!(parsed.not_before, T0);
    assert_eq!(parsed.not_after, T0 + DEVICE_CERT_VALIDITY);
    let v = verify_device_certificate(cert.der(), &[ca_b.clone(), ca_a.clone()], at).unwrap();
    assert_eq!(v.certificate(), &parsed);
    assert_eq!(v.ca_serial(), ca_a.serial_hex());

    let code = |r: Result<VerifiedDeviceCertificate, CertError>| match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    // Only another tenant's CA, or none.
    let e = code(verify_device_certificate(
        cert.der(),
        std::slice::from_ref(&ca_b),
        at,
    ));
    assert!(matches!(e, CertError::InvalidCertificate { .. }), "{e}");
    code(verify_device_certificate(cert.der(), &[], at));
    // A self-made CA for the same tenant (same names, another key) is not the tenant's CA.
    let tmp2 = tempfile::tempdir().unwrap();
    let rogue_store = FileKeyStore::open(&tmp2.path().join("keys")).unwrap();
    let rogue = create_tenant_ca(&rogue_store, tenant(1), "A", T0).unwrap();
    let rogue_cert = issue_device_certificate(
        &rogue,
        &rogue_store,
        &dev,
        tenant(1),
        key.public_key(),
        T0,
        DEVICE_CERT_VALIDITY,
    )
    .unwrap();
    code(verify_device_certificate(
        rogue_cert.der(),
        std::slice::from_ref(&ca_a),
        at,
    ));
    // Tenant B's CA issuing a certificate that names tenant A (subject O) is refused: only the
    // named tenant's CAs count (a CA of another tenant cannot vouch for this one's devices).
    let b_naming_a =
        forged_device_certificate(&ca_b, &store, "B", &dev.to_string(), tenant(1), &key);
    DeviceCertificate::parse(&b_naming_a).unwrap();
    code(verify_device_certificate(
        &b_naming_a,
        &[ca_a.clone(), ca_b.clone()],
        at,
    ));
    // Expired, and not yet valid.
    code(verify_device_certificate(
        cert.der(),
        std::slice::from_ref(&ca_a),
        T0 + DEVICE_CERT_VALIDITY + Duration::seconds(1),
    ));
    code(verify_device_certificate(
        cert.der(),
        std::slice::from_ref(&ca_a),
        T0 - Duration::seconds(1),
    ));
    // A CA certificate is not a device certificate (even presented with itself as the CA).
    let e = code(verify_device_certificate(
        ca_a.der(),
        std::slice::from_ref(&ca_a),
        at,
    ));
    assert!(matches!(e, CertError::InvalidCertificate { .. }), "{e}");
    assert!(DeviceCertificate::parse(ca_a.der()).is_err());
    // A certificate whose CN is a device ID that is not the SHA-512 of its key, genuinely
    // signed by the tenant CA.
    let (other_key, _) = device();
    let mismatched =
        forged_device_certificate(&ca_a, &store, "A", &dev.to_string(), tenant(1), &other_key);
    let e = code(verify_device_certificate(
        &mismatched,
        std::slice::from_ref(&ca_a),
        at,
    ));
    assert!(matches!(e, CertError::DeviceKeyMismatch(_)), "{e}");
    // The same forgery with a consistent CN verifies: the refusal above is the CN check.
    let consistent = forged_device_certificate(
        &ca_a,
        &store,
        "A",
        &DeviceId::from_public_key(other_key.public_key()).to_string(),
        tenant(1),
        &other_key,
    );
    verify_device_certificate(&consistent, std::slice::from_ref(&ca_a), at).unwrap();
    // CN not a device ID; O not a UUID; not a certificate at all.
    let not_id = forged_device_certificate(&ca_a, &store, "A", "device", tenant(1), &key);
    code(verify_device_certificate(
        &not_id,
        std::slice::from_ref(&ca_a),
        at,
    ));
    assert!(DeviceCertificate::parse(b"not a certificate").is_err());
    // Tampered signature.
    let mut tampered = cert.der().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(verify_device_certificate(&tampered, std::slice::from_ref(&ca_a), at).is_err());
}
