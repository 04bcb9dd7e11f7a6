//! Property tests: CBOR round trips of every document, and decoders/verifiers that never panic
//! on arbitrary or mutated input.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ferro_pki::time::OffsetDateTime;
use ferro_pki::*;
use ferro_signing::{DeviceId, KeyId, PublicKey, SoftwareSigningKey, TrustedKeys};
use proptest::prelude::*;

/// A few fixed keys (key generation is too slow to do per case).
fn keys() -> &'static Vec<SoftwareSigningKey> {
    static KEYS: OnceLock<Vec<SoftwareSigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..6).map(|_| SoftwareSigningKey::generate()).collect())
}

fn public(i: usize) -> PublicKey {
    keys()[i % keys().len()].public_key().clone()
}

fn time() -> impl Strategy<Value = OffsetDateTime> {
    (0u64..=253_402_300_799).prop_map(|s| OffsetDateTime::from_unix_timestamp(s as i64).unwrap())
}

fn record() -> impl Strategy<Value = RegistrationRecord> {
    // `ak`: None = a software record (version 1); Some(j) = a TPM record whose attestation key
    // is fixed key k + 1 + j (never the device key), format version 2.
    (0usize..6, 0u64..3, time(), proptest::option::of(0usize..5)).prop_map(|(k, state, t, ak)| {
        RegistrationRecord {
            device_key: public(k),
            root_of_trust: if ak.is_some() {
                RootOfTrust::Tpm
            } else {
                RootOfTrust::Software
            },
            tpm_ek_certificate: None,
            manufacturing_state: match state {
                0 => ManufacturingState::Blank,
                1 => ManufacturingState::Module1Complete,
                _ => ManufacturingState::DeviceComplete,
            },
            created_at: t,
            tpm_attestation_key: ak.map(|j| public(k + 1 + j)),
        }
    })
}

fn capability() -> impl Strategy<Value = CapabilityFile> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<[u8; 32]>(), 1..=MAX_DEVELOPER_KEYS),
        any::<bool>(),
        time(),
    )
        .prop_map(|(a, b, dev, field, t)| {
            let mut id = [0u8; 64];
            id[..32].copy_from_slice(&a);
            id[32..].copy_from_slice(&b);
            let device = DeviceId::from_bytes(id);
            if field {
                CapabilityFile {
                    device_id: device,
                    capability: Capability::FieldServicing,
                    issued_at: t,
                }
            } else {
                CapabilityFile::app_development(device, dev.into_iter().map(KeyId).collect(), t)
            }
        })
}

fn key_list() -> impl Strategy<Value = KeyList> {
    (
        1u64..,
        time(),
        proptest::sample::subsequence((0..6).collect::<Vec<usize>>(), 1..=6),
        proptest::sample::subsequence((0..6).collect::<Vec<usize>>(), 1..=6),
        proptest::option::of(proptest::sample::subsequence(
            (0..6).collect::<Vec<usize>>(),
            1..=6,
        )),
    )
        .prop_map(|(version, issued_at, os, cap, tls)| {
            let mut keys = BTreeMap::new();
            let sorted = |idx: Vec<usize>| {
                let mut v: Vec<PublicKey> = idx.into_iter().map(public).collect();
                v.sort_by_key(PublicKey::key_id);
                v
            };
            keys.insert(PlatformKeyRole::OsRelease, sorted(os));
            keys.insert(PlatformKeyRole::Capability, sorted(cap));
            if let Some(tls) = tls {
                keys.insert(PlatformKeyRole::ServiceTls, sorted(tls));
            }
            KeyList {
                version,
                issued_at,
                keys,
            }
        })
}

fn target_image() -> impl Strategy<Value = TargetImage> {
    (
        any::<u128>(),
        0usize..4,
        "[0-9.]{1,32}",
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(image, kind, version, security_version, package, size, payload)| TargetImage {
                // Set by `target_set()`: one image per component.
                component_id: uuid::Uuid::nil(),
                image_id: uuid::Uuid::from_u128(image),
                kind: [
                    TargetKind::App,
                    TargetKind::RtApp,
                    TargetKind::BoardConfig,
                    TargetKind::Os,
                ][kind],
                version,
                security_version,
                package_sha256: package,
                package_size: size,
                payload_sha256: payload,
            },
        )
}

fn target_set() -> impl Strategy<Value = TargetSet> {
    (
        any::<[u8; 32]>(),
        any::<u128>(),
        proptest::option::of(any::<u128>()),
        1u64..,
        0u64..=253_402_300_000,
        1u64..=799,
        any::<bool>(),
        proptest::collection::btree_set(any::<u128>(), 0..=8),
        proptest::collection::vec(target_image(), 8),
    )
        .prop_map(
            |(id, tenant, group, version, issued, life, manage_apps, components, images)| {
                let mut device = [0u8; 64];
                device[..32].copy_from_slice(&id);
                let issued_at = OffsetDateTime::from_unix_timestamp(issued as i64).unwrap();
                let mut os_seen = false;
                let images = components
                    .into_iter()
                    .zip(images)
                    .map(|(c, mut i)| {
                        i.component_id = uuid::Uuid::from_u128(c);
                        // At most one OS bundle per set.
                        if i.kind == TargetKind::Os && std::mem::replace(&mut os_seen, true) {
                            i.kind = TargetKind::App;
                        }
                        i
                    })
                    .collect();
                TargetSet {
                    device_id: DeviceId::from_bytes(device),
                    tenant_id: uuid::Uuid::from_u128(tenant),
                    device_group_id: group.map(uuid::Uuid::from_u128),
                    version,
                    issued_at,
                    expires_at: issued_at + ferro_pki::time::Duration::seconds(life as i64),
                    manage_apps,
                    images,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn target_sets_round_trip(s in target_set()) {
        let bytes = s.to_cbor().unwrap();
        prop_assert_eq!(TargetSet::from_cbor(&bytes).unwrap(), s.clone());
        let owner = DeviceOwnership {
            device_id: s.device_id,
            tenant_id: s.tenant_id,
            issued_at: s.issued_at,
            image_keys: vec![public(3)],
            metadata_keys: vec![public(2)],
            ownership_epoch: 0,
        };
        let endorsement: TrustedKeys = [public(4)].into_iter().collect();
        let owner = verify_ownership(&owner.sign(&keys()[4]).unwrap(), &endorsement, &s.device_id)
            .unwrap();
        let v = verify_target_set(&s.sign(&keys()[2]).unwrap(), &owner, &s.device_id).unwrap();
        prop_assert_eq!(v.target_set(), &s);
        // Never under the image key.
        prop_assert!(verify_target_set(&s.sign(&keys()[3]).unwrap(), &owner, &s.device_id).is_err());
    }

    #[test]
    fn registration_records_round_trip(r in record()) {
        let bytes = r.to_cbor().unwrap();
        prop_assert_eq!(RegistrationRecord::from_cbor(&bytes).unwrap(), r.clone());
        let signer = keys().iter().find(|k| k.public_key() == &r.device_key).unwrap();
        let v = verify_registration_record(&r.sign(signer).unwrap()).unwrap();
        prop_assert_eq!(v.record(), &r);
    }

    #[test]
    fn capability_files_round_trip(c in capability()) {
        let bytes = c.to_cbor().unwrap();
        prop_assert_eq!(CapabilityFile::from_cbor(&bytes).unwrap(), c.clone());
        let trusted: TrustedKeys = [public(0)].into_iter().collect();
        let v = verify_capability(&c.sign(&keys()[0]).unwrap(), &trusted, &c.device_id).unwrap();
        prop_assert_eq!(v.capability(), &c.capability);
    }

    #[test]
    fn key_lists_round_trip(l in key_list()) {
        let bytes = l.to_cbor().unwrap();
        prop_assert_eq!(KeyList::from_cbor(&bytes).unwrap(), l.clone());
        let v = verify_key_list(&l.sign(&keys()[1]).unwrap(), &public(1)).unwrap();
        prop_assert_eq!(v.list(), &l);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = RegistrationRecord::from_cbor(&bytes);
        let _ = CapabilityFile::from_cbor(&bytes);
        let _ = KeyList::from_cbor(&bytes);
        let _ = DeviceOwnership::from_cbor(&bytes);
        let _ = TargetSet::from_cbor(&bytes);
        let _ = DeviceCertificate::parse(&bytes);
        let _ = verify_registration_record(&bytes);
        let trusted: TrustedKeys = [public(0)].into_iter().collect();
        let _ = verify_capability(&bytes, &trusted, &DeviceId::from_bytes([0; 64]));
        let _ = verify_key_list(&bytes, &public(0));
        let _ = TenantCa::from_der(&bytes);
        let _ = Certificate::from_der(&bytes);
    }

    #[test]
    fn mutated_documents_never_verify_as_something_else(
        r in record(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let signer = keys().iter().find(|k| k.public_key() == &r.device_key).unwrap();
        let signed = r.sign(signer).unwrap();
        let mut m = signed.clone();
        for (i, x) in &flips {
            let i = i.index(m.len());
            m[i] ^= x;
        }
        // Any mutation either fails or (never, in practice) yields exactly the same record.
        if let Ok(v) = verify_registration_record(&m) {
            prop_assert_eq!(v.record(), &r);
        }
        let truncated = &signed[..cut.index(signed.len())];
        prop_assert!(verify_registration_record(truncated).is_err());
    }

    #[test]
    fn key_names_never_escape(s in "[a-z0-9/._\\\\-]{0,40}") {
        if let Ok(name) = KeyName::new(&s) {
            prop_assert!(!name.as_str().contains(".."));
            prop_assert!(!name.as_str().starts_with('/'));
            prop_assert!(!name.as_str().contains('.'));
            prop_assert!(name.segments().all(|seg| !seg.is_empty()));
        }
    }
}
