//! Test vectors of the two update documents a device parses off the network
//! (test-vectors/updates/): device ownership documents and target sets, one valid file of each
//! and invalid files, each with the exact error it must produce. All are made here from the
//! checked-in TEST-ONLY keys with fixed times and RFC 6979 signatures, so they are byte-stable:
//! the test rebuilds each file and compares it byte for byte (`FERRO_BLESS=1` rewrites them
//! after an intended change), verifies each as a device would, and checks the outcome against
//! the table below, which the README repeats (a test checks that it does). The files also seed
//! the `update_documents` fuzz target.

use std::path::{Path, PathBuf};

use ferro_cbor::{Value, uint};
use ferro_pki::time::OffsetDateTime;
use ferro_pki::{
    DeviceOwnership, TargetImage, TargetKind, TargetSet, VerifiedOwnership, verify_ownership,
    verify_target_set,
};
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{DeviceId, Purpose, SoftwareSigningKey, TrustedKeys, sign1};
use uuid::Uuid;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn dir() -> PathBuf {
    repo().join("test-vectors/updates")
}

fn test_key(name: &str) -> SoftwareSigningKey {
    let pem = std::fs::read_to_string(repo().join("test-vectors/keys").join(name)).unwrap();
    SoftwareSigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// The "device" is the test-only signing key; the platform's tenant endorsement key and the
/// tenant's image and metadata keys are all the untrusted test key.
struct Parties {
    device: SoftwareSigningKey,
    tenant_keys: SoftwareSigningKey,
}

impl Parties {
    fn new() -> Parties {
        Parties {
            device: test_key("test-only-signing-key.pem"),
            tenant_keys: test_key("test-only-untrusted-key.pem"),
        }
    }

    fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(self.device.public_key())
    }

    fn endorsement_keys(&self) -> TrustedKeys {
        [self.tenant_keys.public_key().clone()]
            .into_iter()
            .collect()
    }

    fn ownership(&self) -> DeviceOwnership {
        DeviceOwnership {
            device_id: self.device_id(),
            tenant_id: TENANT,
            issued_at: at(1_790_000_000),
            image_keys: vec![self.tenant_keys.public_key().clone()],
            metadata_keys: vec![self.tenant_keys.public_key().clone()],
            ownership_epoch: 0,
        }
    }

    fn target_set(&self) -> TargetSet {
        TargetSet {
            device_id: self.device_id(),
            tenant_id: TENANT,
            device_group_id: Some(Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0002)),
            version: 3,
            issued_at: at(1_790_000_100),
            expires_at: at(1_790_086_500),
            manage_apps: true,
            images: vec![image(0xa, TargetKind::App), image(0xb, TargetKind::Os)],
        }
    }

    /// `payload` as its own signed envelope, signed by the tenant keys for `purpose`.
    fn signed(&self, purpose: Purpose, payload: &[u8]) -> Vec<u8> {
        sign1(&self.tenant_keys.deterministic(), purpose, payload, &[]).unwrap()
    }
}

const TENANT: Uuid = Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0001);

fn image(n: u128, kind: TargetKind) -> TargetImage {
    TargetImage {
        component_id: Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0100 + n),
        image_id: Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0200 + n),
        kind,
        version: "1.2.3".into(),
        security_version: 2,
        package_sha256: [n as u8; 32],
        package_size: 4096,
        payload_sha256: [0x80 | n as u8; 32],
    }
}

/// The entries of `payload`'s top-level map.
fn entries(payload: &[u8]) -> Vec<(Value, Value)> {
    match ferro_cbor::decode(payload).unwrap() {
        Value::Map(entries) => entries,
        other => panic!("not a map: {other:?}"),
    }
}

fn encode(entries: Vec<(Value, Value)>) -> Vec<u8> {
    ferro_cbor::encode(&Value::Map(entries)).unwrap()
}

/// `payload` with field `key` set to `value`, the map kept in ascending key order.
fn with_field(payload: &[u8], key: u64, value: Value) -> Vec<u8> {
    let mut entries: Vec<(Value, Value)> = entries(payload)
        .into_iter()
        .filter(|(k, _)| *k != uint(key))
        .collect();
    entries.push((uint(key), value));
    entries.sort_by_key(|(k, _)| ferro_cbor::as_u64(k));
    encode(entries)
}

/// What a device must make of a vector.
enum Kind {
    Ownership,
    TargetSet,
}

/// One vector: file name, what it is, how it is made, and the error it must produce (`None`:
/// valid).
struct Vector {
    file: &'static str,
    kind: Kind,
    made: &'static str,
    bytes: Vec<u8>,
    error: Option<(&'static str, String)>,
}

fn vectors() -> Vec<Vector> {
    let p = Parties::new();
    let device_hex = p.device_id().to_string();
    let own = p.ownership().to_cbor().unwrap();
    let set = p.target_set().to_cbor().unwrap();
    let other_device = DeviceId::from_public_key(p.tenant_keys.public_key());
    let as_ownership = |bytes| p.signed(Purpose::DeviceOwnership, bytes);
    let as_target_set = |bytes| p.signed(Purpose::TargetSet, bytes);
    let invalid = |code, message: &str| Some((code, message.to_string()));
    let untrusted_signer = || {
        invalid(
            "unknown-key",
            &format!(
                "signature envelope refused: signed by key {}, which is not trusted here",
                p.device.public_key().key_id()
            ),
        )
    };
    let wrong_device = |document: &str| {
        invalid(
            "wrong-device",
            &format!("{document} is for device {other_device}, not for this device {device_hex}"),
        )
    };
    let mut swapped = entries(&own);
    swapped.swap(1, 2);
    let mut unsorted_images = entries(&set);
    if let Some((_, Value::Array(images))) = unsorted_images.last_mut() {
        images.reverse();
    }
    let mut unknown_kind = entries(&set);
    if let Some((_, Value::Array(images))) = unknown_kind.last_mut()
        && let Some(Value::Array(fields)) = images.first_mut()
    {
        fields[2] = uint(9);
    }
    let long_version = {
        // Set version 3 written in two bytes (`18 03`) instead of one: not the shortest form.
        let canonical = encode(vec![(uint(5), uint(3))]);
        let mut bytes = set.clone();
        let at = bytes
            .windows(canonical.len() - 1)
            .position(|w| w == &canonical[1..])
            .unwrap();
        bytes.splice(at + 1..at + 2, [0x18, 0x03]);
        bytes
    };
    vec![
        Vector {
            file: "ownership.cose",
            kind: Kind::Ownership,
            made: "ownership document (format version 1) for the test device, tenant 7e570000-0000-4000-8000-000000000001",
            bytes: as_ownership(&own),
            error: None,
        },
        Vector {
            file: "target-set.cose",
            kind: Kind::TargetSet,
            made: "target set version 3 for the test device and that tenant: one app, one OS bundle",
            bytes: as_target_set(&set),
            error: None,
        },
        Vector {
            file: "ownership-wrong-device.cose",
            kind: Kind::Ownership,
            made: "ownership document for another device",
            bytes: DeviceOwnership {
                device_id: other_device,
                ..p.ownership()
            }
            .sign(&p.tenant_keys.deterministic())
            .unwrap(),
            error: wrong_device("device ownership document"),
        },
        Vector {
            file: "ownership-untrusted-signer.cose",
            kind: Kind::Ownership,
            made: "valid payload signed by the device key, not a tenant endorsement key",
            bytes: sign1(
                &p.device.deterministic(),
                Purpose::DeviceOwnership,
                &own,
                &[],
            )
            .unwrap(),
            error: untrusted_signer(),
        },
        Vector {
            file: "ownership-wrong-purpose.cose",
            kind: Kind::Ownership,
            made: "valid payload signed for the target-set purpose",
            bytes: as_target_set(&own),
            error: invalid(
                "wrong-purpose",
                "signature envelope refused: signed for purpose application/vnd.ferrosphere.target-set+cbor, expected application/vnd.ferrosphere.device-ownership+cbor",
            ),
        },
        Vector {
            file: "ownership-unknown-key.cose",
            kind: Kind::Ownership,
            made: "extra map key 8",
            bytes: as_ownership(&with_field(&own, 8, uint(0))),
            error: invalid("document-unknown-key", "unknown key 8 in the document map"),
        },
        Vector {
            file: "ownership-non-canonical.cose",
            kind: Kind::Ownership,
            made: "map keys 2 and 3 swapped",
            bytes: as_ownership(&encode(swapped)),
            error: invalid(
                "document-malformed",
                "malformed CBOR: not in the deterministic encoding (shortest forms, ascending keys, no trailing bytes)",
            ),
        },
        Vector {
            file: "ownership-unsupported-version.cose",
            kind: Kind::Ownership,
            made: "format version 3",
            bytes: as_ownership(&with_field(&own, 1, uint(3))),
            error: invalid(
                "document-unsupported-version",
                "unsupported document format version 3",
            ),
        },
        Vector {
            file: "ownership-epoch-zero.cose",
            kind: Kind::Ownership,
            made: "format version 2 with ownership epoch 0",
            bytes: as_ownership(&with_field(&with_field(&own, 1, uint(2)), 7, uint(0))),
            error: invalid(
                "document-invalid-field",
                "invalid field ownership_epoch: 0 is written as format version 1",
            ),
        },
        Vector {
            file: "ownership-no-metadata-keys.cose",
            kind: Kind::Ownership,
            made: "empty list of metadata keys",
            bytes: as_ownership(&with_field(&own, 6, Value::Array(vec![]))),
            error: invalid(
                "document-invalid-field",
                "invalid field metadata_keys: array of the wrong length",
            ),
        },
        Vector {
            file: "ownership-duplicate-key.cose",
            kind: Kind::Ownership,
            made: "issued_at (key 4) twice",
            bytes: as_ownership(&encode(
                entries(&own)
                    .into_iter()
                    .flat_map(|(k, v)| {
                        let twice = k == uint(4);
                        std::iter::once((k.clone(), v.clone())).chain(twice.then_some((k, v)))
                    })
                    .collect(),
            )),
            error: invalid(
                "document-duplicate-key",
                "duplicate key 4 in the document map",
            ),
        },
        Vector {
            file: "ownership-missing-tenant.cose",
            kind: Kind::Ownership,
            made: "no tenant ID (key 3)",
            bytes: as_ownership(&encode(
                entries(&own)
                    .into_iter()
                    .filter(|(k, _)| *k != uint(3))
                    .collect(),
            )),
            error: invalid("document-missing-field", "missing field tenant_id"),
        },
        Vector {
            file: "ownership-too-large.cose",
            kind: Kind::Ownership,
            made: "8 KiB + 1 bytes",
            bytes: vec![0; 8 * 1024 + 1],
            error: invalid(
                "document-too-large",
                "document is 8193 bytes, more than the limit of 8192",
            ),
        },
        Vector {
            file: "target-set-wrong-device.cose",
            kind: Kind::TargetSet,
            made: "target set for another device",
            bytes: TargetSet {
                device_id: other_device,
                ..p.target_set()
            }
            .sign(&p.tenant_keys.deterministic())
            .unwrap(),
            error: wrong_device("target set"),
        },
        Vector {
            file: "target-set-wrong-tenant.cose",
            kind: Kind::TargetSet,
            made: "target set naming another tenant than the ownership document's",
            bytes: TargetSet {
                tenant_id: Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0009),
                ..p.target_set()
            }
            .sign(&p.tenant_keys.deterministic())
            .unwrap(),
            error: invalid(
                "document-invalid-field",
                "invalid field tenant_id: the target set names another tenant than the device's owner",
            ),
        },
        Vector {
            file: "target-set-untrusted-signer.cose",
            kind: Kind::TargetSet,
            made: "valid payload signed by the device key, not a metadata key of the ownership document",
            bytes: sign1(&p.device.deterministic(), Purpose::TargetSet, &set, &[]).unwrap(),
            error: untrusted_signer(),
        },
        Vector {
            file: "target-set-version-zero.cose",
            kind: Kind::TargetSet,
            made: "set version 0",
            bytes: as_target_set(&with_field(&set, 5, uint(0))),
            error: invalid(
                "document-invalid-field",
                "invalid field version: must be at least 1",
            ),
        },
        Vector {
            file: "target-set-expires-before-issued.cose",
            kind: Kind::TargetSet,
            made: "expires_at equal to issued_at",
            bytes: as_target_set(&with_field(&set, 7, uint(1_790_000_100))),
            error: invalid(
                "document-invalid-field",
                "invalid field expires_at: must be after issued_at",
            ),
        },
        Vector {
            file: "target-set-unsorted-images.cose",
            kind: Kind::TargetSet,
            made: "the two images in descending component order",
            bytes: as_target_set(&encode(unsorted_images)),
            error: invalid(
                "document-invalid-field",
                "invalid field images: must be sorted by component ID, one image per component",
            ),
        },
        Vector {
            file: "target-set-unknown-kind.cose",
            kind: Kind::TargetSet,
            made: "first image of kind 9",
            bytes: as_target_set(&encode(unknown_kind)),
            error: invalid(
                "document-invalid-field",
                "invalid field images.kind: unknown image kind",
            ),
        },
        Vector {
            file: "target-set-non-canonical.cose",
            kind: Kind::TargetSet,
            made: "set version 3 encoded in two bytes (`18 03`)",
            bytes: as_target_set(&long_version),
            error: invalid(
                "document-malformed",
                "malformed CBOR: not in the deterministic encoding (shortest forms, ascending keys, no trailing bytes)",
            ),
        },
        Vector {
            file: "target-set-trailing-byte.cose",
            kind: Kind::TargetSet,
            made: "one byte after the payload's map",
            bytes: as_target_set(&[set.as_slice(), &[0]].concat()),
            error: invalid(
                "document-malformed",
                "malformed CBOR: not in the deterministic encoding (shortest forms, ascending keys, no trailing bytes)",
            ),
        },
        Vector {
            file: "target-set-not-a-map.cose",
            kind: Kind::TargetSet,
            made: "payload is an array",
            bytes: as_target_set(&ferro_cbor::encode(&Value::Array(vec![uint(1)])).unwrap()),
            error: invalid("document-malformed", "malformed CBOR: not a map"),
        },
        Vector {
            file: "target-set-not-cbor.cose",
            kind: Kind::TargetSet,
            made: "payload is the single byte `ff`",
            bytes: as_target_set(&[0xff]),
            error: invalid("document-malformed", "malformed CBOR: not CBOR"),
        },
        Vector {
            file: "target-set-too-deep.cose",
            kind: Kind::TargetSet,
            made: "images field nested 17 arrays deep",
            bytes: as_target_set(&with_field(
                &set,
                9,
                (0..17).fold(uint(0), |inner, _| Value::Array(vec![inner])),
            )),
            error: invalid("document-malformed", "malformed CBOR: not CBOR"),
        },
    ]
}

/// Verifies `bytes` as a device does: the ownership document under the endorsement keys, the
/// target set under the (valid) ownership document's metadata keys.
fn verify(kind: &Kind, bytes: &[u8]) -> Result<(), ferro_pki::DocumentError> {
    let p = Parties::new();
    match kind {
        Kind::Ownership => verify_ownership(bytes, &p.endorsement_keys(), &p.device_id()).map(drop),
        Kind::TargetSet => verify_target_set(bytes, &owner(), &p.device_id()).map(drop),
    }
}

fn owner() -> VerifiedOwnership {
    let p = Parties::new();
    let bytes = std::fs::read(dir().join("ownership.cose")).unwrap();
    verify_ownership(&bytes, &p.endorsement_keys(), &p.device_id()).unwrap()
}

#[test]
fn update_document_vectors() {
    let bless = std::env::var_os("FERRO_BLESS").is_some();
    let mut problems = Vec::new();
    for v in vectors() {
        let path = dir().join(v.file);
        if bless {
            std::fs::write(&path, &v.bytes).unwrap();
        }
        let stored = std::fs::read(&path)
            .unwrap_or_else(|_| panic!("{} missing: run with FERRO_BLESS=1", path.display()));
        if stored != v.bytes {
            problems.push(format!(
                "{} drifted: FERRO_BLESS=1 rewrites it after an intended change",
                v.file
            ));
        }
        let outcome = verify(&v.kind, &stored).map_err(|e| (e.code(), e.to_string()));
        let expected = match &v.error {
            None => Ok(()),
            Some((code, message)) => Err((*code, message.clone())),
        };
        if outcome != expected {
            problems.push(format!(
                "{}: expected {expected:?}, got {outcome:?}",
                v.file
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README lists every vector with how it was made and its exact error, and no other file.
#[test]
fn the_readme_lists_every_vector_with_its_error() {
    let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
    let vectors = vectors();
    let missing: Vec<String> = vectors
        .iter()
        .map(|v| {
            let expected = match &v.error {
                None => "valid".to_string(),
                Some((code, message)) => format!("`{code}`: {message}"),
            };
            format!("| `{}` | {} | {} |", v.file, v.made, expected)
        })
        .filter(|row| !readme.lines().any(|line| line == row))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md lacks these rows:\n{}",
        missing.join("\n")
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "README.md")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = vectors.iter().map(|v| v.file.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "files in test-vectors/updates/");
}
