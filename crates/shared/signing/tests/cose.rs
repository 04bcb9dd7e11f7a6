//! Tests of the purpose-bound COSE_Sign1 profile: round trip and every refusal.

use coset::cbor::value::Value;
use coset::iana;
use coset::{
    CoseSign1, CoseSign1Builder, Header, HeaderBuilder, ProtectedHeader, TaggedCborSerializable,
};
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{
    KeyId, PublicKey, Purpose, SignError, Signature, Signer, SoftwareSigningKey, TrustedKeys,
    VerifyError, parse_unverified, sign1, verify1,
};
use proptest::prelude::*;

const TEST_KEY_PEM: &str = include_str!("../../../../test-vectors/keys/test-only-signing-key.pem");

fn key() -> SoftwareSigningKey {
    SoftwareSigningKey::from_pkcs8_pem(TEST_KEY_PEM).expect("test key")
}

fn trusted(k: &SoftwareSigningKey) -> TrustedKeys {
    [k.public_key().clone()].into_iter().collect()
}

/// Build an envelope with arbitrary headers, correctly signed by `k`.
fn custom(k: &SoftwareSigningKey, protected: Header, unprotected: Header, aad: &[u8]) -> Vec<u8> {
    CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(b"payload".to_vec())
        .create_signature(aad, |tbs| k.sign(tbs).unwrap().as_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap()
}

fn good_header(k: &SoftwareSigningKey) -> HeaderBuilder {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .content_type(Purpose::ImagePackage.content_type().to_string())
        .key_id(k.key_id().0.to_vec())
}

#[test]
fn round_trip() {
    let k = key();
    let env = sign1(&k, Purpose::ImagePackage, b"hello", b"aad").unwrap();
    let v = verify1(&env, Purpose::ImagePackage, &trusted(&k), b"aad").unwrap();
    assert_eq!(v.payload(), b"hello");
    assert_eq!(v.key_id(), k.key_id());
    assert_eq!(v.purpose(), Purpose::ImagePackage);
    // The key's own signatures are hedged (a fresh nonce each time): two envelopes differ but
    // both verify.
    let again = sign1(&k, Purpose::ImagePackage, b"hello", b"aad").unwrap();
    assert_ne!(env, again);
    verify1(&again, Purpose::ImagePackage, &trusted(&k), b"aad").unwrap();
    // RFC 6979 through `deterministic()`: the same bytes every time, and the hand-built "good"
    // envelope is byte-identical to sign1's output (one encoding only).
    let det = k.deterministic();
    let env = sign1(&det, Purpose::ImagePackage, b"hello", b"aad").unwrap();
    assert_eq!(
        env,
        sign1(&det, Purpose::ImagePackage, b"hello", b"aad").unwrap()
    );
    verify1(&env, Purpose::ImagePackage, &trusted(&k), b"aad").unwrap();
    let hand = CoseSign1Builder::new()
        .protected(good_header(&k).build())
        .payload(b"hello".to_vec())
        .create_signature(b"aad", |tbs| det.sign(tbs).unwrap().as_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap();
    assert_eq!(hand, env);
    let u = parse_unverified(&env).unwrap();
    assert_eq!(u.claimed_kid, k.key_id());
    assert_eq!(u.claimed_purpose, Purpose::ImagePackage);
    assert_eq!(u.unverified_payload, b"hello");
}

#[test]
fn purpose_confusion_refused_for_every_pair() {
    let k = key();
    for signed in Purpose::ALL {
        let env = sign1(&k, signed, b"x", b"").unwrap();
        for expected in Purpose::ALL {
            let r = verify1(&env, expected, &trusted(&k), b"");
            if signed == expected {
                assert!(r.is_ok());
            } else {
                assert_eq!(
                    r.unwrap_err(),
                    VerifyError::WrongPurpose {
                        expected,
                        found: signed
                    }
                );
            }
        }
    }
}

#[test]
fn unknown_key() {
    let k = key();
    let other = SoftwareSigningKey::generate();
    let env = sign1(&other, Purpose::ImagePackage, b"x", b"").unwrap();
    assert_eq!(
        verify1(&env, Purpose::ImagePackage, &trusted(&k), b"").unwrap_err(),
        VerifyError::UnknownKey(other.key_id())
    );
    assert_eq!(
        verify1(&env, Purpose::ImagePackage, &TrustedKeys::new(), b"").unwrap_err(),
        VerifyError::UnknownKey(other.key_id())
    );
}

#[test]
fn wrong_aad_is_bad_signature() {
    let k = key();
    let env = sign1(&k, Purpose::ImagePackage, b"x", b"aad-1").unwrap();
    assert_eq!(
        verify1(&env, Purpose::ImagePackage, &trusted(&k), b"aad-2").unwrap_err(),
        VerifyError::BadSignature
    );
}

#[test]
fn kid_of_another_trusted_key_is_bad_signature() {
    let k = key();
    let other = SoftwareSigningKey::generate();
    // Claims k's kid but is signed by `other`.
    let env = custom(&other, good_header(&k).build(), Header::default(), b"");
    assert_eq!(
        verify1(&env, Purpose::ImagePackage, &trusted(&k), b"").unwrap_err(),
        VerifyError::BadSignature
    );
}

#[test]
fn malformed() {
    let t = trusted(&key());
    for bad in [
        &b""[..],
        b"\xd2",
        b"\x84\x40\xa0\x40\x40",
        b"garbage",
        b"\xd2\x80",
    ] {
        assert!(matches!(
            verify1(bad, Purpose::ImagePackage, &t, b""),
            Err(VerifyError::Malformed(_))
        ));
    }
    // Untagged COSE_Sign1 (tag 18 is required).
    let env = sign1(&key(), Purpose::ImagePackage, b"x", b"").unwrap();
    assert!(matches!(
        verify1(&env[1..], Purpose::ImagePackage, &t, b""),
        Err(VerifyError::Malformed(_))
    ));
    // Trailing byte after the envelope.
    let mut long = env.clone();
    long.push(0);
    assert!(verify1(&long, Purpose::ImagePackage, &t, b"").is_err());
}

#[test]
fn too_large() {
    let big = vec![0u8; ferro_signing::MAX_ENVELOPE_LEN + 1];
    assert!(matches!(
        verify1(&big, Purpose::ImagePackage, &TrustedKeys::new(), b""),
        Err(VerifyError::TooLarge { .. })
    ));
}

#[test]
fn non_canonical_signature_length_refused() {
    let k = key();
    let env = sign1(&k, Purpose::ImagePackage, b"x", b"").unwrap();
    // The signature is the last item: 0x58 0x40 <64 bytes>. Re-encode its length as 0x59 0x0040.
    let pos = env.len() - 66;
    assert_eq!(&env[pos..pos + 2], &[0x58, 0x40]);
    let mut nc = env[..pos].to_vec();
    nc.extend_from_slice(&[0x59, 0x00, 0x40]);
    nc.extend_from_slice(&env[pos + 2..]);
    assert_eq!(
        verify1(&nc, Purpose::ImagePackage, &trusted(&k), b"").unwrap_err(),
        VerifyError::NonCanonical
    );
}

#[test]
fn non_canonical_protected_header_refused_even_if_correctly_signed() {
    let k = key();
    // Protected map in non-deterministic key order {4, 1, 3}; signed over those exact bytes.
    let map = Value::Map(vec![
        (
            Value::Integer(4.into()),
            Value::Bytes(k.key_id().0.to_vec()),
        ),
        (Value::Integer(1.into()), Value::Integer((-7).into())),
        (
            Value::Integer(3.into()),
            Value::Text(Purpose::ImagePackage.content_type().into()),
        ),
    ]);
    let mut original = Vec::new();
    coset::cbor::ser::into_writer(&map, &mut original).unwrap();
    let mut s = CoseSign1 {
        protected: ProtectedHeader {
            original_data: Some(original),
            header: good_header(&k).build(),
        },
        payload: Some(b"x".to_vec()),
        ..Default::default()
    };
    s.signature = k.sign(&s.tbs_data(b"")).unwrap().as_bytes().to_vec();
    let env = s.to_tagged_vec().unwrap();
    assert_eq!(
        verify1(&env, Purpose::ImagePackage, &trusted(&k), b"").unwrap_err(),
        VerifyError::NonCanonical
    );
}

#[test]
fn header_profile_violations() {
    let k = key();
    let t = trusted(&k);
    let kid = k.key_id().0.to_vec();
    let ct = Purpose::ImagePackage.content_type().to_string();
    let cases: Vec<(Header, Header, VerifyError)> = vec![
        (
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES384)
                .content_type(ct.clone())
                .key_id(kid.clone())
                .build(),
            Header::default(),
            VerifyError::WrongAlgorithm,
        ),
        (
            HeaderBuilder::new()
                .content_type(ct.clone())
                .key_id(kid.clone())
                .build(),
            Header::default(),
            VerifyError::WrongAlgorithm,
        ),
        (
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .content_type(ct.clone())
                .build(),
            Header::default(),
            VerifyError::MissingKid,
        ),
        (
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .content_type(ct.clone())
                .key_id(kid[..31].to_vec())
                .build(),
            Header::default(),
            VerifyError::MissingKid,
        ),
        (
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .key_id(kid.clone())
                .build(),
            Header::default(),
            VerifyError::MissingPurpose,
        ),
        (
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .content_format(iana::CoapContentFormat::Cbor)
                .key_id(kid.clone())
                .build(),
            Header::default(),
            VerifyError::MissingPurpose,
        ),
        (
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .content_type("application/cbor".into())
                .key_id(kid.clone())
                .build(),
            Header::default(),
            VerifyError::UnknownPurpose("application/cbor".into()),
        ),
        (
            good_header(&k)
                .add_critical(iana::HeaderParameter::Alg)
                .build(),
            Header::default(),
            VerifyError::UnexpectedHeaderParameter("crit"),
        ),
        (
            good_header(&k).value(-65537, Value::Bool(true)).build(),
            Header::default(),
            VerifyError::UnexpectedHeaderParameter("other label"),
        ),
        (
            good_header(&k).build(),
            HeaderBuilder::new().key_id(kid.clone()).build(),
            VerifyError::UnprotectedHeaderNotEmpty,
        ),
    ];
    for (i, (p, u, want)) in cases.into_iter().enumerate() {
        let env = custom(&k, p, u, b"");
        let got = verify1(&env, Purpose::ImagePackage, &t, b"");
        assert_eq!(got.unwrap_err(), want, "case {i}");
    }
}

#[test]
fn detached_payload_refused() {
    let k = key();
    let env = CoseSign1Builder::new()
        .protected(good_header(&k).build())
        .create_detached_signature(b"p", b"", |tbs| k.sign(tbs).unwrap().as_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap();
    assert_eq!(
        verify1(&env, Purpose::ImagePackage, &trusted(&k), b"").unwrap_err(),
        VerifyError::DetachedPayload
    );
}

#[test]
fn bad_signature_lengths_and_values() {
    let k = key();
    for sig in [
        vec![],
        vec![0u8; 64],
        vec![0xffu8; 64],
        vec![1u8; 63],
        vec![1u8; 65],
    ] {
        let mut s = CoseSign1Builder::new()
            .protected(good_header(&k).build())
            .payload(b"x".to_vec())
            .build();
        s.signature = sig;
        let env = s.to_tagged_vec().unwrap();
        assert_eq!(
            verify1(&env, Purpose::ImagePackage, &trusted(&k), b"").unwrap_err(),
            VerifyError::BadSignature
        );
    }
}

struct FaultySigner(SoftwareSigningKey);
impl Signer for FaultySigner {
    fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let mut s = self.0.sign(message)?;
        s.0[10] ^= 1;
        Ok(s)
    }
}

#[test]
fn faulty_signer_is_caught_before_emitting() {
    let f = FaultySigner(key());
    assert!(matches!(
        sign1(&f, Purpose::ImagePackage, b"x", b""),
        Err(SignError::SelfCheckFailed(_))
    ));
}

#[test]
fn every_single_byte_change_is_refused() {
    let k = key();
    let t = trusted(&k);
    let env = sign1(&k, Purpose::ImagePackage, b"small", b"aad").unwrap();
    for i in 0..env.len() {
        for mask in [0x01u8, 0x80, 0xff, 0x20] {
            let mut m = env.clone();
            m[i] ^= mask;
            assert!(
                verify1(&m, Purpose::ImagePackage, &t, b"aad").is_err(),
                "flip {mask:#x} at {i} accepted"
            );
        }
    }
    for cut in 0..env.len() {
        assert!(verify1(&env[..cut], Purpose::ImagePackage, &t, b"aad").is_err());
    }
}

proptest! {
    #[test]
    fn any_byte_change_is_refused(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                  pos in any::<prop::sample::Index>(), value in any::<u8>()) {
        let k = key();
        let env = sign1(&k, Purpose::TargetSet, &payload, b"").unwrap();
        let i = pos.index(env.len());
        prop_assume!(env[i] != value);
        let mut m = env.clone();
        m[i] = value;
        prop_assert!(verify1(&m, Purpose::TargetSet, &trusted(&k), b"").is_err());
    }

    #[test]
    fn round_trip_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..512),
                              aad in proptest::collection::vec(any::<u8>(), 0..32)) {
        let k = key();
        let env = sign1(&k, Purpose::KeyList, &payload, &aad).unwrap();
        let v = verify1(&env, Purpose::KeyList, &trusted(&k), &aad).unwrap();
        prop_assert_eq!(v.payload(), &payload[..]);
    }
}

#[test]
fn key_id_is_sha256_of_spki_and_formats() {
    use sha2::{Digest, Sha256};
    let k = key();
    let der = k.public_key().to_spki_der();
    assert_eq!(k.key_id().0, <[u8; 32]>::from(Sha256::digest(&der)));
    let from_der = PublicKey::from_spki_der(&der).unwrap();
    let from_pem = PublicKey::from_pem(&k.public_key().to_pem()).unwrap();
    assert_eq!(from_der, from_pem);
    assert_eq!(from_der.key_id(), k.key_id());
    let kid: KeyId = k.key_id().to_string().parse().unwrap();
    assert_eq!(kid, k.key_id());
    assert_eq!(k.key_id().to_string().len(), 64);
    assert!(PublicKey::from_spki_der(b"nope").is_err());
    assert!(SoftwareSigningKey::from_pkcs8_pem("nope").is_err());
}

#[test]
fn debug_never_shows_the_private_key() {
    let k = key();
    let dbg = format!("{k:?}");
    assert!(dbg.contains(&k.key_id().to_string()));
    assert!(!dbg.contains("PRIVATE"));
    let pem = k.to_pkcs8_pem().unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!dbg.contains(line));
    }
}

mod purpose_headers {
    //! A purpose's own protected parameters (`sign1_with_headers` / `parse_with_headers`):
    //! exactly the labels named, in their order, of the supported types; nothing else.
    use super::*;
    use ferro_signing::{HeaderValue, parse_with_headers, sign1_with_headers};

    const LABELS: [i64; 3] = [33, -70001, -70002];

    fn headers() -> Vec<(i64, HeaderValue)> {
        vec![
            (33, HeaderValue::BytesArray(vec![vec![1, 2], vec![3]])),
            (-70001, HeaderValue::Uint(7)),
            (-70002, HeaderValue::Bool(true)),
        ]
    }

    #[test]
    fn round_trip_and_the_signature_binds_them() {
        let k = key();
        let bytes = sign1_with_headers(&k, Purpose::TelemetryBatch, &headers(), b"p", &[]).unwrap();
        let env = parse_with_headers(&bytes, Purpose::TelemetryBatch, &LABELS).unwrap();
        assert_eq!(env.claimed_kid(), k.key_id());
        assert_eq!(env.header(-70001), Some(&HeaderValue::Uint(7)));
        assert_eq!(env.header(-70003), None);
        let verified = env.verify(k.public_key(), &[]).unwrap();
        assert_eq!(verified.payload(), b"p");
        assert_eq!(verified.purpose(), Purpose::TelemetryBatch);
        // Another key: refused by its key ID before any signature check.
        let other = SoftwareSigningKey::generate();
        let env = parse_with_headers(&bytes, Purpose::TelemetryBatch, &LABELS).unwrap();
        assert_eq!(
            env.verify(other.public_key(), &[]).unwrap_err(),
            VerifyError::UnknownKey(k.key_id())
        );
        // The plain verifier refuses what it does not know.
        assert_eq!(
            verify1(&bytes, Purpose::TelemetryBatch, &trusted(&k), &[]).unwrap_err(),
            VerifyError::UnexpectedHeaderParameter("other label")
        );
    }

    #[test]
    fn missing_extra_reordered_mistyped_and_reserved_labels_are_refused() {
        let k = key();
        let sign = |h: &[(i64, HeaderValue)]| {
            sign1_with_headers(&k, Purpose::TelemetryBatch, h, b"p", &[]).unwrap()
        };
        let parse = |b: &[u8]| parse_with_headers(b, Purpose::TelemetryBatch, &LABELS).unwrap_err();
        let mut h = headers();
        h.pop();
        assert_eq!(
            parse(&sign(&h)),
            VerifyError::MissingHeaderParameter(-70002)
        );
        let mut h = headers();
        h.push((-70003, HeaderValue::Uint(1)));
        assert_eq!(
            parse(&sign(&h)),
            VerifyError::UnexpectedHeaderParameter("other label")
        );
        let mut h = headers();
        h.swap(1, 2);
        assert_eq!(parse(&sign(&h)), VerifyError::NonCanonical);
        let mut h = headers();
        h[1].1 = HeaderValue::Bytes(vec![]);
        let b = sign(&h);
        let env = parse_with_headers(&b, Purpose::TelemetryBatch, &LABELS).unwrap();
        assert_eq!(env.header(-70001), Some(&HeaderValue::Bytes(vec![])));
        // A text value is no HeaderValue type.
        let protected = good_header(&k)
            .content_type(Purpose::TelemetryBatch.content_type().to_string())
            .value(33, Value::Bytes(vec![1]))
            .value(-70001, Value::Text("7".into()))
            .value(-70002, Value::Bool(true))
            .build();
        let b = custom(&k, protected, Header::default(), &[]);
        assert_eq!(parse(&b), VerifyError::BadHeaderValue(-70001));
        // Another purpose, even with the right labels.
        let b = sign1_with_headers(&k, Purpose::ImagePackage, &headers(), b"p", &[]).unwrap();
        assert!(matches!(parse(&b), VerifyError::WrongPurpose { .. }));
        // COSE's own labels cannot be smuggled in as a purpose's.
        for reserved in 1..=7 {
            assert!(matches!(
                sign1_with_headers(
                    &k,
                    Purpose::TelemetryBatch,
                    &[(reserved, HeaderValue::Uint(0))],
                    b"p",
                    &[]
                ),
                Err(SignError::Encoding(_))
            ));
        }
    }
}
