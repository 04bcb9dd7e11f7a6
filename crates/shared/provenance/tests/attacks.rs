//! Every way a batch can be forged or damaged is refused with its own error; the device's batch
//! verifies and says what it proves.

mod common;

use std::collections::BTreeSet;

use common::*;
use coset::cbor::value::Value;
use coset::{CoseSign1, TaggedCborSerializable};
use ferro_pki::{FileKeyStore, RcgenSigner, TenantCa, create_tenant_ca};
use ferro_provenance::{
    ProvenanceError, SignBatchError, TenantAnchors, label, sign_batch, verify_batch,
};
use ferro_signing::{
    HeaderValue, PublicKey, Purpose, SignError, Signature, Signer, SoftwareSigningKey, sign1,
    sign1_with_headers,
};
use time::Duration;

fn refused(bytes: &[u8], anchors: &TenantAnchors) -> ProvenanceError {
    verify_batch(bytes, anchors, NOW, &expected()).expect_err("the batch must be refused")
}

/// The batch's protected header parameters as the device would put them, for hand-made
/// envelopes: `chain` as x5chain, the fixture's claims otherwise.
fn headers(f: &Fixture, chain: Vec<Vec<u8>>) -> Vec<(i64, HeaderValue)> {
    vec![
        (label::X5CHAIN, HeaderValue::BytesArray(chain)),
        (
            label::DEVICE_ID,
            HeaderValue::Bytes(f.device_id().as_bytes().to_vec()),
        ),
        (
            label::COMPONENT_ID,
            HeaderValue::Bytes(COMPONENT.as_bytes().to_vec()),
        ),
        (
            label::IMAGE_ID,
            HeaderValue::Bytes(IMAGE.as_bytes().to_vec()),
        ),
        (label::DEVELOPMENT, HeaderValue::Bool(false)),
        (label::BOOT_ID, HeaderValue::Bytes(BOOT.as_bytes().to_vec())),
        (label::SEQUENCE, HeaderValue::Uint(7)),
        (
            label::SIGNED_AT,
            HeaderValue::Uint(SIGNED_AT.unix_timestamp() as u64),
        ),
    ]
}

#[test]
fn the_device_batch_verifies_and_says_what_it_proves() {
    let f = Fixture::new();
    let v = verify_batch(&f.batch(), &f.anchors(), NOW, &expected()).unwrap();
    assert_eq!(v.payload(), PAYLOAD);
    assert_eq!(v.device_id(), &f.device_id());
    assert_eq!(v.tenant_id(), TENANT);
    assert_eq!(v.component_id(), COMPONENT);
    assert_eq!(v.image_id(), IMAGE);
    assert!(!v.development());
    assert_eq!(v.boot_id(), BOOT);
    assert_eq!(v.sequence(), 7);
    assert_eq!(v.signed_at(), SIGNED_AT);
    assert_eq!(v.key_id(), f.device_key.key_id());
    assert_eq!(v.ca_serial(), f.ca.serial_hex());
    // A batch stored and forwarded for days still verifies: the certificate was valid when it
    // was signed.
    verify_batch(
        &f.batch(),
        &f.anchors(),
        NOW + Duration::days(30),
        &expected(),
    )
    .unwrap();
    // The anchors may come as the PEM bundle `ferro ca-certificate download-chain` writes.
    let pem = format!("{}{}", f.ca.pem(), f.other_ca.pem());
    verify_batch(
        &f.batch(),
        &TenantAnchors::from_pem(&pem).unwrap(),
        NOW,
        &expected(),
    )
    .unwrap();
}

#[test]
fn a_changed_payload_is_refused() {
    let f = Fixture::new();
    let mut batch = f.batch();
    let at = batch
        .windows(PAYLOAD.len())
        .position(|w| w == PAYLOAD)
        .unwrap();
    batch[at + 22] ^= 0x01; // "12.5" becomes "02.5"
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::BadSignature
    ));
}

#[test]
fn a_swapped_image_id_is_refused_even_if_the_new_one_is_expected() {
    let f = Fixture::new();
    let mut batch = f.batch();
    let at = batch
        .windows(16)
        .position(|w| w == IMAGE.as_bytes())
        .unwrap();
    batch[at..at + 16].copy_from_slice(OTHER_IMAGE.as_bytes());
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::BadSignature
    ));
}

#[test]
fn an_authentic_batch_from_an_unexpected_image_app_or_device_is_refused() {
    let f = Fixture::new();
    let batch = f.batch();
    let mut e = expected();
    e.image_ids = BTreeSet::from([OTHER_IMAGE]);
    assert!(matches!(
        verify_batch(&batch, &f.anchors(), NOW, &e),
        Err(ProvenanceError::UnexpectedImage(id)) if id == IMAGE
    ));
    let mut e = expected();
    e.component_id = Some(IMAGE);
    assert!(matches!(
        verify_batch(&batch, &f.anchors(), NOW, &e),
        Err(ProvenanceError::UnexpectedComponent(_))
    ));
    let mut e = expected();
    e.device_ids = Some(BTreeSet::new());
    assert!(matches!(
        verify_batch(&batch, &f.anchors(), NOW, &e),
        Err(ProvenanceError::UnexpectedDevice)
    ));
    // A sideloaded development image is refused unless the verifier allows it.
    let mut claims = f.claims();
    claims.development = true;
    let dev = sign_batch(&f.device_key, &f.chain(), &claims, PAYLOAD).unwrap();
    assert!(matches!(
        verify_batch(&dev, &f.anchors(), NOW, &expected()),
        Err(ProvenanceError::DevelopmentImage)
    ));
    let mut e = expected();
    e.allow_development = true;
    assert!(
        verify_batch(&dev, &f.anchors(), NOW, &e)
            .unwrap()
            .development()
    );
}

#[test]
fn a_certificate_of_another_tenant_is_refused() {
    let f = Fixture::new();
    // The device is of the other tenant; the verifier trusts only the first tenant's CA.
    let cert = self_issue(
        &f.other_ca,
        &f.store,
        &f.device_key,
        OTHER_TENANT,
        CERT_START,
    );
    let batch = sign_batch(&f.device_key, &[cert], &f.claims(), PAYLOAD).unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::UnknownTenant(t) if t == OTHER_TENANT
    ));
}

#[test]
fn a_certificate_of_a_ca_posing_as_the_tenant_is_refused() {
    let f = Fixture::new();
    // A second CA for the same tenant that the verifier does not trust.
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    let rogue = create_tenant_ca(&store, TENANT, "Water works", CA_START).unwrap();
    let cert = self_issue(&rogue, &store, &f.device_key, TENANT, CERT_START);
    let batch = sign_batch(&f.device_key, &[cert], &f.claims(), PAYLOAD).unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::NotIssuedByTenantCa
    ));
}

#[test]
fn an_expired_certificate_is_refused() {
    let f = Fixture::new();
    let mut claims = f.claims();
    claims.signed_at = CERT_START + Duration::hours(25);
    let batch = sign_batch(&f.device_key, &f.chain(), &claims, PAYLOAD).unwrap();
    assert!(matches!(
        verify_batch(&batch, &f.anchors(), claims.signed_at, &expected()),
        Err(ProvenanceError::CertificateNotValid { .. })
    ));
    // And one signed before its certificate started.
    claims.signed_at = CERT_START - Duration::hours(1);
    let batch = sign_batch(&f.device_key, &f.chain(), &claims, PAYLOAD).unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::CertificateNotValid { .. }
    ));
}

#[test]
fn a_batch_signed_in_the_future_is_refused() {
    let f = Fixture::new();
    assert!(matches!(
        verify_batch(
            &f.batch(),
            &f.anchors(),
            SIGNED_AT - Duration::minutes(10),
            &expected()
        ),
        Err(ProvenanceError::SignedInTheFuture { .. })
    ));
    // Within the allowed skew it verifies.
    verify_batch(
        &f.batch(),
        &f.anchors(),
        SIGNED_AT - Duration::minutes(4),
        &expected(),
    )
    .unwrap();
}

#[test]
fn a_self_signed_device_certificate_is_refused() {
    let f = Fixture::new();
    let device_id = f.device_id().to_string();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device_id);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        TENANT.hyphenated().to_string(),
    );
    params.not_before = CERT_START;
    params.not_after = CERT_START + Duration::hours(24);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42; 16]));
    let signer = RcgenSigner::new(&f.device_key);
    let cert = params.self_signed(&signer).unwrap().der().to_vec();
    let batch = sign_batch(&f.device_key, &[cert], &f.claims(), PAYLOAD).unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::NotIssuedByTenantCa
    ));
}

#[test]
fn a_valid_signature_by_a_key_the_certificate_does_not_certify_is_refused() {
    let f = Fixture::new();
    let attacker = SoftwareSigningKey::generate();
    // The device refuses to sign with a chain that is not its own.
    assert!(matches!(
        sign_batch(&attacker, &f.chain(), &f.claims(), PAYLOAD),
        Err(SignBatchError::LeafKeyMismatch)
    ));
    // The attacker's own kid beside the device's certificate.
    let batch = sign1_with_headers(
        &attacker,
        Purpose::TelemetryBatch,
        &headers(&f, f.chain()),
        PAYLOAD,
        &[],
    )
    .unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::KeyMismatch { .. }
    ));
    // The device's kid, the attacker's signature.
    let posing = Posing {
        public: f.device_key.public_key().clone(),
        key: attacker,
    };
    let batch = sign1_with_headers(
        &posing,
        Purpose::TelemetryBatch,
        &headers(&f, f.chain()),
        PAYLOAD,
        &[],
    )
    .unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::BadSignature
    ));
}

/// Claims one public key, signs with another key.
struct Posing {
    public: PublicKey,
    key: SoftwareSigningKey,
}

impl Signer for Posing {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        self.key.sign(message)
    }
    fn needs_self_check(&self) -> bool {
        false
    }
}

#[test]
fn an_unknown_critical_header_is_refused() {
    let f = Fixture::new();
    let batch = f.batch();
    // Re-make the device's envelope with a crit parameter naming a private label, signed by
    // the device key (so only the header decides).
    let mut sign1 = CoseSign1::from_tagged_slice(&batch).unwrap();
    sign1.protected.original_data = None;
    sign1
        .protected
        .header
        .crit
        .push(coset::RegisteredLabelWithPrivate::PrivateUse(-70300));
    let sign1 = coset::CoseSign1Builder::new()
        .protected(sign1.protected.header.clone())
        .payload(PAYLOAD.to_vec())
        .create_signature(&[], |tbs| {
            f.device_key.sign(tbs).unwrap().as_bytes().to_vec()
        })
        .build();
    let bytes = sign1.to_tagged_vec().unwrap();
    assert!(matches!(
        refused(&bytes, &f.anchors()),
        ProvenanceError::UnknownCriticalHeader
    ));
}

#[test]
fn extra_missing_and_unprotected_headers_are_refused() {
    let f = Fixture::new();
    let mut extra = headers(&f, f.chain());
    extra.push((-70200, HeaderValue::Uint(1)));
    let batch =
        sign1_with_headers(&f.device_key, Purpose::TelemetryBatch, &extra, PAYLOAD, &[]).unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::UnexpectedHeader(_)
    ));
    let mut missing = headers(&f, f.chain());
    missing.pop();
    let batch = sign1_with_headers(
        &f.device_key,
        Purpose::TelemetryBatch,
        &missing,
        PAYLOAD,
        &[],
    )
    .unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::BadHeader { name: "signed at" }
    ));
    let mut wrong_type = headers(&f, f.chain());
    wrong_type[3].1 = HeaderValue::Uint(1);
    let batch = sign1_with_headers(
        &f.device_key,
        Purpose::TelemetryBatch,
        &wrong_type,
        PAYLOAD,
        &[],
    )
    .unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::BadHeader { name: "image ID" }
    ));
    // An unprotected header (which the signature would not cover).
    let mut sign1 = CoseSign1::from_tagged_slice(&f.batch()).unwrap();
    sign1.unprotected.rest.push((
        coset::Label::Int(label::IMAGE_ID),
        Value::Bytes(OTHER_IMAGE.as_bytes().to_vec()),
    ));
    assert!(matches!(
        refused(&sign1.to_tagged_vec().unwrap(), &f.anchors()),
        ProvenanceError::UnexpectedHeader(_)
    ));
}

#[test]
fn another_device_id_than_the_certificate_s_is_refused() {
    let f = Fixture::new();
    let mut h = headers(&f, f.chain());
    h[1].1 = HeaderValue::Bytes(vec![0xab; 64]);
    let batch =
        sign1_with_headers(&f.device_key, Purpose::TelemetryBatch, &h, PAYLOAD, &[]).unwrap();
    assert!(matches!(
        refused(&batch, &f.anchors()),
        ProvenanceError::DeviceIdMismatch
    ));
}

#[test]
fn a_signature_of_another_purpose_is_refused() {
    let f = Fixture::new();
    let evidence = sign1(&f.device_key, Purpose::AttestationEvidence, PAYLOAD, &[]).unwrap();
    assert!(matches!(
        refused(&evidence, &f.anchors()),
        ProvenanceError::WrongPurpose(Purpose::AttestationEvidence)
    ));
}

#[test]
fn truncated_and_garbage_bytes_are_refused() {
    let f = Fixture::new();
    let batch = f.batch();
    for len in [0, 1, 10, batch.len() / 2, batch.len() - 1] {
        assert!(
            matches!(
                refused(&batch[..len], &f.anchors()),
                ProvenanceError::Malformed(_)
            ),
            "truncated to {len}"
        );
    }
    let mut longer = batch.clone();
    longer.push(0);
    assert!(matches!(
        refused(&longer, &f.anchors()),
        ProvenanceError::Malformed(_)
    ));
    assert!(matches!(
        refused(b"not cbor at all", &f.anchors()),
        ProvenanceError::Malformed(_)
    ));
    assert!(matches!(
        refused(
            &vec![0u8; ferro_provenance::MAX_BATCH_LEN + 1],
            &f.anchors()
        ),
        ProvenanceError::TooLarge { .. }
    ));
}

#[test]
fn the_device_refuses_to_sign_an_oversized_batch() {
    let f = Fixture::new();
    let big = vec![0u8; ferro_provenance::MAX_BATCH_PAYLOAD + 1];
    assert!(matches!(
        sign_batch(&f.device_key, &f.chain(), &f.claims(), &big),
        Err(SignBatchError::TooLarge { .. })
    ));
    let max = vec![0u8; ferro_provenance::MAX_BATCH_PAYLOAD];
    let batch = sign_batch(&f.device_key, &f.chain(), &f.claims(), &max).unwrap();
    verify_batch(&batch, &f.anchors(), NOW, &expected()).unwrap();
}

#[test]
fn a_tenant_ca_that_was_not_valid_at_the_signing_time_is_refused() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    // A CA that starts after the batch was signed.
    let late: TenantCa = create_tenant_ca(&store, TENANT, "Water works", NOW).unwrap();
    assert!(matches!(
        refused(&f.batch(), &TenantAnchors::new(vec![late])),
        ProvenanceError::TenantCaNotValid(_)
    ));
}
