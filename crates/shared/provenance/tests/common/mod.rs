//! A tenant with a CA, a device with a key and a 24-hour certificate, and a second tenant: what
//! the provenance tests sign and verify with. Fixed times, so the vectors' verdicts are stable.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use ferro_pki::{FileKeyStore, TenantCa, create_tenant_ca, issue_device_certificate};
use ferro_provenance::{BatchClaims, ExpectedProvenance, TenantAnchors, sign_batch};
use ferro_signing::{DeviceId, SoftwareSigningKey};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub const TENANT: Uuid = Uuid::from_u128(0x7e7a_0000_0000_4000_8000_0000_0000_0001);
pub const OTHER_TENANT: Uuid = Uuid::from_u128(0x7e7a_0000_0000_4000_8000_0000_0000_0002);
pub const COMPONENT: Uuid = Uuid::from_u128(0x9a4d_0000_0000_4000_8000_0000_0000_0001);
pub const IMAGE: Uuid = Uuid::from_u128(0x1a9e_0000_0000_4000_8000_0000_0000_0001);
pub const OTHER_IMAGE: Uuid = Uuid::from_u128(0x1a9e_0000_0000_4000_8000_0000_0000_0002);
pub const BOOT: Uuid = Uuid::from_u128(0xb007_0000_0000_4000_8000_0000_0000_0001);

/// When the CAs start.
pub const CA_START: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
/// When the device certificate starts (it lasts 24 hours).
pub const CERT_START: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);
/// When the batches are signed.
pub const SIGNED_AT: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
/// When they are verified.
pub const NOW: OffsetDateTime = datetime!(2026-06-01 12:01 UTC);

pub const PAYLOAD: &[u8] = br#"{"points":[{"name":"flow","value":12.5,"quality":"good"}]}"#;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// A tenant, its CA, a device of it and a CA of another tenant.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub store: FileKeyStore,
    pub ca: TenantCa,
    pub other_ca: TenantCa,
    pub device_key: SoftwareSigningKey,
    pub device_cert: Vec<u8>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(&dir.path().join("keys")).unwrap();
        let ca = create_tenant_ca(&store, TENANT, "Water works", CA_START).unwrap();
        let other_ca = create_tenant_ca(&store, OTHER_TENANT, "Other works", CA_START).unwrap();
        let device_key = SoftwareSigningKey::generate();
        let device_cert = self_issue(&ca, &store, &device_key, TENANT, CERT_START);
        Fixture {
            _dir: dir,
            store,
            ca,
            other_ca,
            device_key,
            device_cert,
        }
    }

    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(self.device_key.public_key())
    }

    /// The device certificate and its tenant CA, as the device sends them.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.device_cert.clone(), self.ca.der().to_vec()]
    }

    pub fn anchors(&self) -> TenantAnchors {
        TenantAnchors::new(vec![self.ca.clone()])
    }

    pub fn claims(&self) -> BatchClaims {
        BatchClaims {
            component_id: COMPONENT,
            image_id: IMAGE,
            development: false,
            boot_id: BOOT,
            sequence: 7,
            signed_at: SIGNED_AT,
        }
    }

    /// A batch as the device signs it.
    pub fn batch(&self) -> Vec<u8> {
        sign_batch(&self.device_key, &self.chain(), &self.claims(), PAYLOAD).unwrap()
    }
}

/// A device certificate of `tenant` for `key` from `ca`, starting at `start`, for 24 hours.
pub fn self_issue(
    ca: &TenantCa,
    store: &FileKeyStore,
    key: &SoftwareSigningKey,
    tenant: Uuid,
    start: OffsetDateTime,
) -> Vec<u8> {
    issue_device_certificate(
        ca,
        store,
        &DeviceId::from_public_key(key.public_key()),
        tenant,
        key.public_key(),
        start,
        Duration::hours(24),
    )
    .unwrap()
    .der()
    .to_vec()
}

pub fn expected() -> ExpectedProvenance {
    ExpectedProvenance {
        image_ids: BTreeSet::from([IMAGE, OTHER_IMAGE]),
        component_id: Some(COMPONENT),
        device_ids: None,
        allow_development: false,
    }
}
