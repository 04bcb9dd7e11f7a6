//! The software root of trust: the shared suite plus file-specific checks.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ferro_trust::evidence::{DebugStatus, EvidenceError, create_evidence, verify_evidence};
use ferro_trust::{RootOfTrust, RootOfTrustKind, SoftwareRootOfTrust, TrustError};

fn open(dir: &tempfile::TempDir) -> SoftwareRootOfTrust {
    SoftwareRootOfTrust::open(dir.path().join("rot")).unwrap()
}

#[test]
fn suite_device_key_signs() {
    let d = tempfile::tempdir().unwrap();
    common::device_key_signs(&open(&d));
}

#[test]
fn suite_key_is_stable() {
    let d = tempfile::tempdir().unwrap();
    common::key_is_stable(&|| Box::new(open(&d)) as Box<dyn RootOfTrust>);
}

#[test]
fn suite_measurements_replay() {
    let d = tempfile::tempdir().unwrap();
    common::measurements_replay(&open(&d));
}

#[test]
fn suite_counters_only_go_up() {
    let d = tempfile::tempdir().unwrap();
    common::counters_only_go_up(&open(&d));
}

#[test]
fn suite_anchors_write_once() {
    let d = tempfile::tempdir().unwrap();
    common::anchors_write_once(&open(&d));
}

#[test]
fn suite_random_bytes() {
    let d = tempfile::tempdir().unwrap();
    common::random_bytes(&open(&d));
}

#[test]
fn suite_evidence_round_trip() {
    let d = tempfile::tempdir().unwrap();
    common::evidence_round_trip(&open(&d), RootOfTrustKind::Software);
}

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_private() {
    let d = tempfile::tempdir().unwrap();
    let rot = open(&d);
    rot.advance_counter("os", 1).unwrap();
    rot.write_trust_anchors(&common::anchors()).unwrap();
    assert_eq!(mode(rot.dir()), 0o700);
    for f in ["device-key.pem", "counters.sealed", "trust-anchors.sealed"] {
        assert_eq!(mode(&rot.dir().join(f)), 0o600, "{f}");
    }
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(rot.dir()).unwrap().count(), 3);
}

#[test]
fn state_persists_but_measurements_are_per_boot() {
    let d = tempfile::tempdir().unwrap();
    let a = common::anchors();
    {
        let rot = open(&d);
        rot.advance_counter("os", 5).unwrap();
        rot.write_trust_anchors(&a).unwrap();
        rot.extend_measurement(&common::event(1)).unwrap();
        rot.reset_measurements();
        assert!(rot.read_measurements().unwrap().log.is_empty());
        rot.extend_measurement(&common::event(1)).unwrap();
    }
    let rot = open(&d);
    assert_eq!(rot.counter("os").unwrap(), 5);
    assert_eq!(rot.read_trust_anchors().unwrap(), Some(a));
    let m = rot.read_measurements().unwrap();
    assert!(m.log.is_empty());
    assert_eq!(m.pcr_value, [0; 32]);
}

fn flip_last_payload_byte(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    // The payload is the first bstr of the map; flip a byte inside it (byte 5 is well inside).
    bytes[5] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

#[test]
fn tampered_counters_are_detected() {
    let d = tempfile::tempdir().unwrap();
    let rot = open(&d);
    rot.advance_counter("os", 5).unwrap();
    let path = rot.dir().join("counters.sealed");
    let good = fs::read(&path).unwrap();
    flip_last_payload_byte(&path);
    assert!(matches!(
        rot.counter("os"),
        Err(TrustError::Tampered { .. })
    ));
    assert!(matches!(
        rot.advance_counter("os", 9),
        Err(TrustError::Tampered { .. })
    ));
    // Sealed by another device's key: refused too.
    let other = tempfile::tempdir().unwrap();
    let other_rot = open(&other);
    other_rot.advance_counter("os", 0).unwrap();
    other_rot.advance_counter("os", 1).unwrap();
    fs::copy(other_rot.dir().join("counters.sealed"), &path).unwrap();
    assert!(matches!(
        rot.counter("os"),
        Err(TrustError::Tampered { .. })
    ));
    fs::write(&path, b"garbage").unwrap();
    assert!(matches!(
        rot.counter("os"),
        Err(TrustError::Tampered { .. })
    ));
    // What the software backend does NOT detect: an old, genuine copy (documented).
    fs::write(&path, &good).unwrap();
    assert_eq!(rot.counter("os").unwrap(), 5);
}

#[test]
fn tampered_anchors_are_detected() {
    let d = tempfile::tempdir().unwrap();
    let rot = open(&d);
    rot.write_trust_anchors(&common::anchors()).unwrap();
    let path = rot.dir().join("trust-anchors.sealed");
    flip_last_payload_byte(&path);
    assert!(matches!(
        rot.read_trust_anchors(),
        Err(TrustError::Tampered { .. })
    ));
    // A replaced file is still refused as "already written".
    assert!(matches!(
        rot.write_trust_anchors(&common::anchors()),
        Err(TrustError::AnchorsAlreadyWritten)
    ));
}

#[test]
fn seals_are_not_evidence() {
    // A sealed file's signature must not verify as any COSE envelope: seal messages carry a
    // domain prefix. Check a sealed counters file is not accepted as evidence.
    let d = tempfile::tempdir().unwrap();
    let rot = open(&d);
    rot.advance_counter("os", 1).unwrap();
    let sealed = fs::read(rot.dir().join("counters.sealed")).unwrap();
    assert!(verify_evidence(&sealed, &rot.public_key(), None, &[0; 32]).is_err());
}

/// A software root of trust has no measured boot: its evidence says so explicitly (a CBOR null,
/// not zeros that would look like a measurement), and firmware PCR values it claims (nothing
/// could vouch for them) are refused, as is evidence without the claim or with another form.
#[test]
fn software_evidence_says_no_firmware_measurements() {
    let d = tempfile::tempdir().unwrap();
    let rot = open(&d);
    assert_eq!(rot.firmware_pcrs().unwrap(), None);
    let nonce = [7u8; 32];
    let ev = create_evidence(&rot, &nonce, DebugStatus::Disabled).unwrap();
    let payload = ferro_signing::parse_unverified(&ev)
        .unwrap()
        .unverified_payload;
    let mut claims = ferro_trust::evidence::decode_claims(&payload).unwrap();
    assert_eq!(claims.firmware_pcrs, None);
    // The claim is present, as null (key -70004 = 0x3a 0x00 0x01 0x11 0x73, then 0xf6).
    let null_claim = [0x3a, 0x00, 0x01, 0x11, 0x73, 0xf6];
    assert!(payload.windows(6).any(|w| w == null_claim), "explicit null");
    let verified = verify_evidence(&ev, &rot.public_key(), None, &nonce).unwrap();
    assert_eq!(verified.firmware_pcrs(), None);

    claims.firmware_pcrs = Some([[0; 32]; 8]);
    let key = rot.device_key();
    let sign = |payload: &[u8]| {
        ferro_signing::sign1(
            key.as_ref(),
            ferro_signing::Purpose::AttestationEvidence,
            payload,
            &[],
        )
        .unwrap()
    };
    let claimed = sign(&ferro_trust::evidence::encode_claims(&claims).unwrap());
    assert_eq!(
        verify_evidence(&claimed, &rot.public_key(), None, &nonce).unwrap_err(),
        EvidenceError::UnexpectedFirmwarePcrs
    );
    // Without the claim, or with 7 values: malformed.
    let without: Vec<u8> = {
        let mut p = payload.clone();
        let at = p.windows(6).position(|w| w == null_claim).unwrap();
        p.drain(at..at + 6);
        p[0] -= 1; // one entry fewer in the map header (a small map)
        p
    };
    assert!(matches!(
        verify_evidence(&sign(&without), &rot.public_key(), None, &nonce).unwrap_err(),
        EvidenceError::Malformed(_)
    ));
}

#[test]
fn software_evidence_with_a_quote_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let rot = open(&d);
    let nonce = [7u8; 32];
    let ev = create_evidence(&rot, &nonce, DebugStatus::Enabled).unwrap();
    let payload = ferro_signing::parse_unverified(&ev)
        .unwrap()
        .unverified_payload;
    let mut claims = ferro_trust::evidence::decode_claims(&payload).unwrap();
    claims.tpm_quote = Some(ferro_trust::TpmQuote {
        attest: vec![1, 2, 3],
        signature: [0; 64],
        attestation_key: rot.public_key().to_spki_der(),
    });
    let key = rot.device_key();
    let forged = ferro_signing::sign1(
        key.as_ref(),
        ferro_signing::Purpose::AttestationEvidence,
        &ferro_trust::evidence::encode_claims(&claims).unwrap(),
        &[],
    )
    .unwrap();
    assert_eq!(
        verify_evidence(&forged, &rot.public_key(), None, &nonce).unwrap_err(),
        EvidenceError::UnexpectedQuote
    );
    // And TPM kind without a quote.
    claims.tpm_quote = None;
    claims.root_of_trust = RootOfTrustKind::Tpm;
    let forged = ferro_signing::sign1(
        key.as_ref(),
        ferro_signing::Purpose::AttestationEvidence,
        &ferro_trust::evidence::encode_claims(&claims).unwrap(),
        &[],
    )
    .unwrap();
    assert_eq!(
        verify_evidence(&forged, &rot.public_key(), None, &nonce).unwrap_err(),
        EvidenceError::MissingQuote
    );
}

#[test]
fn rot_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SoftwareRootOfTrust>();
    let d = tempfile::tempdir().unwrap();
    let rot: std::sync::Arc<dyn RootOfTrust> = std::sync::Arc::new(open(&d));
    let handles: Vec<_> = (0..4u8)
        .map(|n| {
            let rot = rot.clone();
            std::thread::spawn(move || rot.extend_measurement(&common::event(n)).unwrap())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(rot.read_measurements().unwrap().replays());
}
