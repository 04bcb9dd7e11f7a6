//! The behavioural suite every root of trust backend must pass.
#![allow(dead_code)]

use ferro_signing::{DeviceId, Purpose, SoftwareSigningKey, TrustedKeys, sign1, verify1};
use ferro_trust::evidence::{DebugStatus, EvidenceError, create_evidence, verify_evidence};
use ferro_trust::{MeasurementEvent, RootOfTrust, RootOfTrustKind, TrustAnchors, TrustError};
use uuid::Uuid;

pub fn event(n: u8) -> MeasurementEvent {
    MeasurementEvent {
        component_id: Uuid::from_bytes([n; 16]),
        image_id: Uuid::from_bytes([n ^ 0x5a; 16]),
        version: format!("1.{n}.0"),
        digest: [n; 32],
    }
}

pub fn device_key_signs(rot: &dyn RootOfTrust) {
    let key = rot.device_key();
    assert_eq!(key.public_key(), &rot.public_key());
    assert_eq!(
        rot.device_id(),
        DeviceId::from_public_key(&rot.public_key())
    );
    let env = sign1(key.as_ref(), Purpose::RegistrationRecord, b"hello", &[]).unwrap();
    let trusted: TrustedKeys = [rot.public_key()].into_iter().collect();
    let v = verify1(&env, Purpose::RegistrationRecord, &trusted, &[]).unwrap();
    assert_eq!(v.payload(), b"hello");
}

pub fn key_is_stable(open: &dyn Fn() -> Box<dyn RootOfTrust>) {
    // One instance at a time (a TPM without a resource manager serves one client).
    let keys = || {
        let rot = open();
        (rot.public_key(), rot.attestation_key())
    };
    assert_eq!(keys(), keys());
}

pub fn measurements_replay(rot: &dyn RootOfTrust) {
    let m0 = rot.read_measurements().unwrap();
    assert!(m0.log.is_empty());
    assert_eq!(m0.pcr_value, [0u8; 32], "a new boot starts at zero");
    for n in 1..=3 {
        let entry = rot.extend_measurement(&event(n)).unwrap();
        assert_eq!(entry.digest, event(n).entry_digest());
    }
    let m = rot.read_measurements().unwrap();
    assert_eq!(m.log.len(), 3);
    assert!(m.replays());
    assert_eq!(m.log.replay(), m.pcr_value);
    assert_ne!(m.pcr_value, [0u8; 32]);
    let order: Vec<_> = m.log.entries().iter().map(|e| e.event.clone()).collect();
    assert_eq!(order, vec![event(1), event(2), event(3)]);
    let bad = MeasurementEvent {
        version: String::new(),
        ..event(9)
    };
    assert!(matches!(
        rot.extend_measurement(&bad),
        Err(TrustError::InvalidEvent(_))
    ));
    assert_eq!(
        rot.read_measurements().unwrap(),
        m,
        "a refused event changes nothing"
    );
}

pub fn counters_only_go_up(rot: &dyn RootOfTrust) {
    assert_eq!(rot.counter("os").unwrap(), 0);
    rot.advance_counter("os", 3).unwrap();
    assert_eq!(rot.counter("os").unwrap(), 3);
    rot.advance_counter("os", 3).unwrap();
    match rot.advance_counter("os", 2) {
        Err(TrustError::CounterRollback {
            current, requested, ..
        }) => assert_eq!((current, requested), (3, 2)),
        other => panic!("expected rollback refusal, got {other:?}"),
    }
    assert_eq!(rot.counter("os").unwrap(), 3);
    rot.advance_counter("apps.target-set", 7).unwrap();
    assert_eq!(rot.counter("apps.target-set").unwrap(), 7);
    assert_eq!(rot.counter("os").unwrap(), 3, "counters are independent");
    for bad in ["", "UPPER", "a/b", &"x".repeat(33)] {
        assert!(matches!(
            rot.counter(bad),
            Err(TrustError::InvalidCounterName(_))
        ));
    }
}

pub fn anchors() -> TrustAnchors {
    TrustAnchors {
        platform_root: SoftwareSigningKey::generate().public_key().to_spki_der(),
        service_url: "https://ferrosphere.example:8443".into(),
    }
}

pub fn anchors_write_once(rot: &dyn RootOfTrust) {
    assert_eq!(rot.read_trust_anchors().unwrap(), None);
    let a = anchors();
    rot.write_trust_anchors(&a).unwrap();
    assert_eq!(rot.read_trust_anchors().unwrap(), Some(a.clone()));
    assert!(matches!(
        rot.write_trust_anchors(&anchors()),
        Err(TrustError::AnchorsAlreadyWritten)
    ));
    assert!(matches!(
        rot.write_trust_anchors(&a),
        Err(TrustError::AnchorsAlreadyWritten)
    ));
    assert_eq!(rot.read_trust_anchors().unwrap(), Some(a));
}

pub fn random_bytes(rot: &dyn RootOfTrust) {
    assert!(rot.random(0).unwrap().is_empty());
    let a = rot.random(100).unwrap();
    let b = rot.random(100).unwrap();
    assert_eq!(a.len(), 100);
    assert_ne!(a, b);
    assert!(matches!(
        rot.random(ferro_trust::MAX_RANDOM_LEN + 1),
        Err(TrustError::RandomTooLong { .. })
    ));
}

pub fn evidence_round_trip(rot: &dyn RootOfTrust, kind: RootOfTrustKind) {
    rot.extend_measurement(&event(1)).unwrap();
    rot.extend_measurement(&event(2)).unwrap();
    let nonce = rot.random(32).unwrap();
    let ev = create_evidence(rot, &nonce, DebugStatus::Disabled).unwrap();
    let ak = rot.attestation_key();
    assert_eq!(ak.is_some(), kind == RootOfTrustKind::Tpm);
    let v = verify_evidence(&ev, &rot.public_key(), ak.as_ref(), &nonce).unwrap();
    assert_eq!(v.device_id(), rot.device_id());
    assert_eq!(v.root_of_trust(), kind);
    assert_eq!(v.nonce(), nonce.as_slice());
    assert_eq!(v.debug_status(), DebugStatus::Disabled);
    assert_eq!(v.measurements(), &[event(1), event(2)]);
    assert_eq!(v.pcr_value(), rot.read_measurements().unwrap().pcr_value);
    assert_eq!(v.quote().is_some(), kind == RootOfTrustKind::Tpm);

    // Another nonce.
    let mut other = nonce.clone();
    other[0] ^= 1;
    assert_eq!(
        verify_evidence(&ev, &rot.public_key(), ak.as_ref(), &other).unwrap_err(),
        EvidenceError::NonceMismatch
    );
    // Another key.
    let stranger = SoftwareSigningKey::generate();
    assert_eq!(
        verify_evidence(&ev, stranger.public_key(), ak.as_ref(), &nonce)
            .unwrap_err()
            .code(),
        "evidence-envelope"
    );
    // Evidence for the right nonce but signed by another device names another device.
    let forged = sign1(
        &stranger,
        Purpose::AttestationEvidence,
        &ferro_signing::parse_unverified(&ev)
            .unwrap()
            .unverified_payload,
        &[],
    )
    .unwrap();
    assert_eq!(
        verify_evidence(&forged, stranger.public_key(), ak.as_ref(), &nonce).unwrap_err(),
        EvidenceError::WrongDevice
    );
    // Every single-byte change is refused.
    for i in 0..ev.len() {
        let mut t = ev.clone();
        t[i] ^= 0x01;
        assert!(
            verify_evidence(&t, &rot.public_key(), ak.as_ref(), &nonce).is_err(),
            "flip at byte {i} accepted"
        );
    }
    // Bad nonces are refused when creating.
    assert!(matches!(
        create_evidence(rot, &[0u8; 7], DebugStatus::Enabled),
        Err(TrustError::InvalidNonce(7))
    ));
    assert!(matches!(
        create_evidence(rot, &[0u8; 65], DebugStatus::Enabled),
        Err(TrustError::InvalidNonce(65))
    ));
}
